// The CUDA path: @tensorflow/tfjs-node-gpu (libtensorflow 2.9.1, CUDA 11.2 + cuDNN 8.1).
// Kept small on purpose: load it, ask whether it sees a GPU, and say plainly why not.
// Untested on a GPU by this project's CI (no GPU there); the code only loads and asks.
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export interface CudaProbe {
  installed: boolean;
  loaded: boolean;
  gpu: boolean;
  detail: string;
}

/** Libraries libtensorflow 2.9.1 dlopens for the GPU; missing ones make it run on CPU quietly. */
export const CUDA_LIBS = ['libcudart.so.11.0', 'libcublas.so.11', 'libcublasLt.so.11', 'libcufft.so.10', 'libcurand.so.10', 'libcusolver.so.11', 'libcusparse.so.11', 'libcudnn.so.8'];

export function findCudaLibs(): Record<string, string | null> {
  const dirs = new Set<string>((process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean));
  for (const d of ['/usr/local/cuda/lib64', '/usr/local/cuda-11.2/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib64']) dirs.add(d);
  let ldcache = '';
  try {
    ldcache = execFileSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    /* no ldconfig: directories only */
  }
  const found: Record<string, string | null> = {};
  for (const lib of CUDA_LIBS) {
    const line = ldcache.split('\n').find((l) => l.trim().startsWith(lib + ' '));
    const inDir = [...dirs].find((d) => existsSync(`${d}/${lib}`));
    found[lib] = line ? line.split('=>')[1]?.trim() ?? lib : inDir ? `${inDir}/${lib}` : null;
  }
  return found;
}

export function cudaInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
    return true;
  } catch {
    return false;
  }
}

export function nvidiaGpus(): string[] {
  try {
    return readdirSync('/proc/driver/nvidia/gpus');
  } catch {
    return [];
  }
}

/** Load tfjs-node-gpu (registers the 'tensorflow' backend) and report whether it runs on a GPU. */
export async function loadCuda(): Promise<CudaProbe> {
  if (!cudaInstalled()) {
    return { installed: false, loaded: false, gpu: false, detail: '@tensorflow/tfjs-node-gpu is not installed (its install script downloads libtensorflow; it needs network access and allowScripts)' };
  }
  const missing = Object.entries(findCudaLibs()).filter(([, p]) => !p).map(([l]) => l);
  try {
    await import('@tensorflow/tfjs-node-gpu' as string);
  } catch (e) {
    return { installed: true, loaded: false, gpu: false, detail: `@tensorflow/tfjs-node-gpu failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
  const tf = await import('@tensorflow/tfjs-core');
  await tf.setBackend('tensorflow');
  const backend = tf.backend() as unknown as { isUsingGpuDevice?: () => boolean };
  const gpu = backend.isUsingGpuDevice?.() ?? false;
  const why = gpu
    ? 'libtensorflow reports a GPU device'
    : missing.length
      ? `libtensorflow sees no GPU: missing ${missing.join(', ')} (install CUDA 11.2 + cuDNN 8.1 and add them to LD_LIBRARY_PATH)`
      : nvidiaGpus().length === 0
        ? 'libtensorflow sees no GPU: no NVIDIA driver/GPU found (/proc/driver/nvidia/gpus)'
        : 'libtensorflow sees no GPU although the CUDA libraries were found';
  return { installed: true, loaded: true, gpu, detail: why };
}
