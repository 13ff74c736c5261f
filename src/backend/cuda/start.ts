// Starting bnlab's cuda backend on a GPU machine: the driver must show a GPU, the libraries
// must be found (./libs.ts), the addon built, and the device must initialise (NVRTC compiles
// the kernels for the GPU's architecture, cached on disk). Each failure says which and the fix.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cudaAddonStatus, loadCudaDevice } from './addon.js';
import { findCudaLibraries, missingLine, readDriver } from './libs.js';
import { useCudaBackend } from './index.js';

export interface CudaOptions {
  tf32: boolean;
  deterministic: boolean;
}

export type CudaStart = { ok: true; reason: string; details: string[] } | { ok: false; why: string; details: string[] };

/** Where compiled kernels are kept between runs (NVRTC takes seconds; the cache is keyed by source, options and GPU). */
export const kernelCacheDir = () => process.env.BNLAB_CUDA_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'bnlab', 'cuda');

export async function startCuda(o: CudaOptions): Promise<CudaStart> {
  // The driver first: cheap, and on a machine without a GPU nothing else (python, ldconfig) runs.
  const driver = readDriver();
  if (!driver.present || driver.gpus.length === 0) return { ok: false, why: `no NVIDIA GPU (${driver.detail})`, details: [] };
  const libs = findCudaLibraries();
  if (!libs.ok) return { ok: false, why: `missing ${libs.missing.map(missingLine).join('; ')}`, details: libs.notes };
  const addon = cudaAddonStatus();
  if (!addon.built) return { ok: false, why: `the CUDA addon is not built (${addon.reason}); run npm run build:native`, details: libs.notes };
  const p = (k: 'driver' | 'nvrtc' | 'cublas' | 'cudnn') => libs.libs[k]!.path;
  try {
    const device = loadCudaDevice({ driver: p('driver'), nvrtc: p('nvrtc'), cublas: p('cublas'), cudnn: p('cudnn'), cacheDir: kernelCacheDir(), tf32: o.tf32, deterministic: o.deterministic });
    await useCudaBackend(device);
    const info = device.info();
    const libLine = Object.entries(info.libs).map(([k, v]) => `${k} ${v}`).join(', ');
    return {
      ok: true,
      reason: `cuda (bnlab's own: ${info.name}, sm_${info.cc.join('')}, ${(info.totalBytes / 2 ** 30).toFixed(0)} GiB; TF32 ${o.tf32 ? 'on' : 'off'}; ${o.deterministic ? 'deterministic' : 'fastest'} cuDNN algorithms; ${libLine})`,
      details: libs.notes,
    };
  } catch (e) {
    return { ok: false, why: `the CUDA device did not initialise: ${(e as Error).message}`, details: libs.notes };
  }
}
