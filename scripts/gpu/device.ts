// How the GPU scripts get a Device: the fake one (host memory, bnlab's CPU kernels) for self-tests
// here, or the CUDA addon (src/backend/cuda/addon.ts) with the four NVIDIA libraries named by a
// flag, an environment variable, or else found by src/backend/cuda/libs.ts.
import { cudaAddonStatus, loadCudaDevice } from '../../src/backend/cuda/addon.js';
import type { Device } from '../../src/backend/cuda/device.js';
import { FakeDevice } from '../../src/backend/cuda/fake-device.js';
import { findCudaLibraries, missingLine } from '../../src/backend/cuda/libs.js';
import { kernelCacheDir } from '../../src/backend/cuda/start.js';

export const LIBS = ['driver', 'nvrtc', 'cublas', 'cudnn'] as const;
export type LibName = (typeof LIBS)[number];
export const LIB_ENV: Record<LibName, string> = { driver: 'BNLAB_CUDA_DRIVER', nvrtc: 'BNLAB_CUDA_NVRTC', cublas: 'BNLAB_CUDA_CUBLAS', cudnn: 'BNLAB_CUDA_CUDNN' };

export interface DeviceOptions {
  fake: boolean;
  tf32: boolean;
  deterministic: boolean;
  libs: Partial<Record<LibName, string>>;
  cacheDir: string;
}

/** The parseArgs options every GPU script shares, and what they mean. */
export const DEVICE_FLAGS = {
  fake: { type: 'boolean' },
  tf32: { type: 'string', default: 'off' },
  deterministic: { type: 'boolean' },
  cache: { type: 'string' },
  driver: { type: 'string' },
  nvrtc: { type: 'string' },
  cublas: { type: 'string' },
  cudnn: { type: 'string' },
} as const;
export const DEVICE_HELP = `device:
  --fake                the fake device (host memory, bnlab's CPU addon) instead of the GPU
  --tf32 on|off         let cuDNN and cuBLAS use TF32 tensor cores (default off)
  --deterministic       ask the addon for deterministic convolution algorithms
  --cache DIR           the addon's compiled-kernel cache (default: bnlab's, BNLAB_CUDA_CACHE or ~/.cache/bnlab/cuda)
  --driver, --nvrtc, --cublas, --cudnn PATH
                        a library file; else ${Object.values(LIB_ENV).join(', ')}; else found as bnlab doctor finds them`;

export function deviceOptions(v: { fake?: boolean; tf32?: string; deterministic?: boolean; cache?: string } & Partial<Record<LibName, string>>): DeviceOptions {
  if (v.tf32 !== 'on' && v.tf32 !== 'off') throw new Error(`--tf32 takes on or off, not ${v.tf32}`);
  const libs: Partial<Record<LibName, string>> = {};
  for (const l of LIBS) if (v[l] ?? process.env[LIB_ENV[l]]) libs[l] = v[l] ?? process.env[LIB_ENV[l]];
  return { fake: !!v.fake, tf32: v.tf32 === 'on', deterministic: !!v.deterministic, libs, cacheDir: v.cache ?? kernelCacheDir() };
}

/** The device, with a line saying what it is and how it was set up. */
export async function openDevice(o: DeviceOptions): Promise<{ device: Device; label: string }> {
  if (o.fake) return { device: new FakeDevice(), label: 'fake device (host memory, bnlab CPU kernels)' };
  const status = cudaAddonStatus();
  if (!status.built) throw new Error(`the CUDA addon is not built: ${status.reason} (npm run build:native)`);
  const libs = { ...o.libs };
  if (LIBS.some((l) => !libs[l])) {
    const found = findCudaLibraries();
    for (const l of LIBS) libs[l] ??= found.libs[l]?.path;
    const still = LIBS.filter((l) => !libs[l]);
    if (still.length) throw new Error(`no ${still.join(', ')} library: ${found.missing.map(missingLine).join('; ') || 'not found'} (or name it with --${still[0]} / ${LIB_ENV[still[0]]})`);
  }
  const device = loadCudaDevice({ driver: libs.driver!, nvrtc: libs.nvrtc!, cublas: libs.cublas!, cudnn: libs.cudnn!, cacheDir: o.cacheDir, tf32: o.tf32, deterministic: o.deterministic });
  const info = device.info();
  return { device, label: `${info.name} (cc ${info.cc.join('.')}), TF32 ${o.tf32 ? 'on' : 'off'}, deterministic ${o.deterministic ? 'on' : 'off'}; ${Object.entries(info.libs).map(([k, v]) => `${k} ${v}`).join('; ')}` };
}
