// The `tensorflow` route: @tensorflow/tfjs-node-gpu 4.22, i.e. libtensorflow 2.9.1, built for
// CUDA 11.2 + cuDNN 8.1 and for nothing newer (CUDA 12/13 and cuDNN 9 do not serve it). Optional
// and never chosen by `auto`: it is loaded only for --backend tensorflow, and every way it can
// fail (absent, a load error, a backend that will not start, no GPU) becomes a probe, not a crash.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ldconfigOutput, nodeFs, parseLdconfig, readDriver, type LibFs, type SearchDir } from './cuda/libs.js';

export interface TensorflowProbe {
  installed: boolean;
  loaded: boolean;
  gpu: boolean;
  detail: string;
}

export const TF_ROUTE = 'tfjs-node-gpu (libtensorflow 2.9.1: CUDA 11.2 + cuDNN 8.1 only)';

/** Libraries libtensorflow 2.9.1 dlopens for the GPU; missing ones make it run on CPU quietly. */
export const TF_CUDA_LIBS = ['libcudart.so.11.0', 'libcublas.so.11', 'libcublasLt.so.11', 'libcufft.so.10', 'libcurand.so.10', 'libcusolver.so.11', 'libcusparse.so.11', 'libcudnn.so.8'];

export const TF_LIBS_FIX =
  "pip install nvidia-cuda-runtime-cu11 nvidia-cublas-cu11 nvidia-cufft-cu11 nvidia-curand-cu11 nvidia-cusolver-cu11 nvidia-cusparse-cu11 'nvidia-cudnn-cu11<9' " +
  'and put each site-packages/nvidia/*/lib on LD_LIBRARY_PATH, or install the cuda-11-2 toolkit and cuDNN 8.1 and put their lib64 on LD_LIBRARY_PATH (export it before starting bnlab)';

export interface TfLib {
  name: string;
  /** where libtensorflow's dlopen finds it (LD_LIBRARY_PATH, the ldconfig cache, the default folders) */
  path: string | null;
  /** found only off the loader's path: libtensorflow will not see it until its folder is on LD_LIBRARY_PATH */
  elsewhere: string | null;
}

/** Folders dlopen searches without RPATH: glibc's defaults, multiarch first. */
const LOADER_DEFAULTS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];
const TOOLKITS = ['/usr/local/cuda-11.2/lib64', '/usr/local/cuda/lib64'];

/** Where libtensorflow's dlopen by soname would find each library, and where it would not look. */
export function locateTfLibs(loaderDirs: string[], ldconfig: string, elsewhere: string[], fs: LibFs): TfLib[] {
  const cache = parseLdconfig(ldconfig);
  return TF_CUDA_LIBS.map((name) => {
    const inDir = loaderDirs.find((d) => fs.exists(join(d, name)));
    const cached = cache.find((e) => e.name === name)?.path;
    const path = inDir ? join(inDir, name) : cached ?? null;
    const off = path ? undefined : elsewhere.find((d) => fs.exists(join(d, name)));
    return { name, path, elsewhere: off ? join(off, name) : null };
  });
}

/** A sentence on what the libraries lack and the fix, or null when all are on the loader's path. */
export function tfLibsProblem(libs: TfLib[]): string | null {
  const missing = libs.filter((l) => !l.path);
  if (!missing.length) return null;
  const off = missing.filter((l) => l.elsewhere);
  const absent = missing.filter((l) => !l.elsewhere);
  const parts = [
    ...(off.length ? [`${off.map((l) => l.elsewhere).join(', ')} found but not on the loader's path (export LD_LIBRARY_PATH=${[...new Set(off.map((l) => dirname(l.elsewhere!)))].join(':')}:$LD_LIBRARY_PATH before starting bnlab)`] : []),
    ...(absent.length ? [`missing ${absent.map((l) => l.name).join(', ')} (${TF_LIBS_FIX})`] : []),
  ];
  return `libtensorflow 2.9.1 needs CUDA 11.x + cuDNN 8 libraries (built for CUDA 11.2 + cuDNN 8.1; CUDA 12/13 and cuDNN 9 do not serve it): ${parts.join('; ')}`;
}

/** `searched`: extra folders to look in for libraries off the loader's path (findCudaLibraries().searched). */
export function findTfCudaLibs(searched: SearchDir[] = [], env: Record<string, string | undefined> = process.env): TfLib[] {
  const loader = [...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...LOADER_DEFAULTS];
  return locateTfLibs(loader, ldconfigOutput(), [...TOOLKITS, ...searched.map((d) => d.dir)], nodeFs);
}

/** tfjs-node 4.22 makes isUsingGpuDevice a boolean property; older code called it as a method. */
export function usesGpu(backend: unknown): boolean {
  try {
    const v = (backend as { isUsingGpuDevice?: unknown } | null | undefined)?.isUsingGpuDevice;
    return typeof v === 'function' ? v.call(backend) === true : v === true;
  } catch {
    return false;
  }
}

export interface TfDeps {
  installed(): boolean;
  importPackage(): Promise<unknown>;
  setBackend(name: string): Promise<boolean>;
  backend(): Promise<unknown>;
  libs(): TfLib[];
  gpus(): number;
}

const PKG = '@tensorflow/tfjs-node-gpu';
const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

export const tfGpuInstalled = (): boolean => {
  try {
    createRequire(import.meta.url).resolve(PKG);
    return true;
  } catch {
    return false;
  }
};

const realDeps: TfDeps = {
  installed: tfGpuInstalled,
  importPackage: () => import(PKG as string),
  setBackend: async (name) => (await import('@tensorflow/tfjs-core')).setBackend(name),
  backend: async () => (await import('@tensorflow/tfjs-core')).backend(),
  libs: () => findTfCudaLibs(),
  gpus: () => readDriver().gpus.length,
};

/** Load tfjs-node-gpu (it registers the 'tensorflow' backend), select it, and say whether it runs on a GPU. */
export async function loadTensorflow(deps: Partial<TfDeps> = {}): Promise<TensorflowProbe> {
  const d: TfDeps = { ...realDeps, ...deps };
  if (!d.installed()) {
    return { installed: false, loaded: false, gpu: false, detail: `${PKG} is not installed: npm install ${PKG}@4.22.0 on a machine with network access (its install script downloads libtensorflow 2.9.1; package.json's allowScripts permits it)` };
  }
  try {
    await d.importPackage();
  } catch (e) {
    return { installed: true, loaded: false, gpu: false, detail: `${PKG} failed to load: ${firstLine(e)} (if libtensorflow is missing, its install script did not run: npm rebuild ${PKG} with network access)` };
  }
  try {
    if (!(await d.setBackend('tensorflow'))) throw new Error("tf.setBackend('tensorflow') returned false");
  } catch (e) {
    return { installed: true, loaded: true, gpu: false, detail: `${PKG} loaded but its backend did not start: ${firstLine(e)}` };
  }
  let backend: unknown;
  try {
    backend = await d.backend();
  } catch {
    backend = undefined;
  }
  if (usesGpu(backend)) return { installed: true, loaded: true, gpu: true, detail: 'libtensorflow 2.9.1 reports a GPU device' };
  const problem = tfLibsProblem(d.libs());
  const why = problem ?? (d.gpus() === 0 ? 'no NVIDIA driver/GPU found (/proc/driver/nvidia/gpus)' : 'the CUDA 11 libraries were found, yet libtensorflow sees no GPU (CUDA 11 needs NVIDIA driver >= 450.80)');
  return { installed: true, loaded: true, gpu: false, detail: `libtensorflow sees no GPU: ${why}` };
}
