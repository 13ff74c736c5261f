// Starting bnlab's cuda backend on a GPU machine: the driver must show a GPU, the libraries
// must be found (./libs.ts), the addon built, and the device must initialise (NVRTC compiles
// the kernels for the GPU's architecture, cached on disk). Each failure says which and the fix.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cudaAddonStatus, loadCudaDevice } from './addon.js';
import { findCudaLibraries, missingLine, readDriver } from './libs.js';
import { useCudaBackend } from './index.js';
import type { Device } from './device.js';

export interface CudaOptions {
  tf32: boolean;
  deterministic: boolean;
}

export type CudaStart = { ok: true; reason: string; details: string[] } | { ok: false; why: string; details: string[] };

/** Where compiled kernels are kept between runs (NVRTC takes seconds; the cache is keyed by source, options and GPU). */
export const kernelCacheDir = () => process.env.BNLAB_CUDA_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'bnlab', 'cuda');

/** The device, or why not: driver and GPU, libraries, addon, then the device's own start-up. */
export function openCudaDevice(o: CudaOptions): { device: Device; notes: string[] } | { why: string; notes: string[] } {
  // The driver first: cheap, and on a machine without a GPU nothing else (python, ldconfig) runs.
  const driver = readDriver();
  if (!driver.present || driver.gpus.length === 0) return { why: `no NVIDIA GPU (${driver.detail})`, notes: [] };
  const libs = findCudaLibraries();
  if (!libs.ok) return { why: `missing ${libs.missing.map(missingLine).join('; ')}`, notes: libs.notes };
  const addon = cudaAddonStatus();
  if (!addon.built) return { why: `the CUDA addon is not built (${addon.reason}); run npm run build:native`, notes: libs.notes };
  const p = (k: 'driver' | 'nvrtc' | 'cublas' | 'cudnn') => libs.libs[k]!.path;
  try {
    const device = loadCudaDevice({ driver: p('driver'), nvrtc: p('nvrtc'), cublas: p('cublas'), cudnn: p('cudnn'), cacheDir: kernelCacheDir(), tf32: o.tf32, deterministic: o.deterministic });
    return { device, notes: libs.notes };
  } catch (e) {
    return { why: `the CUDA device did not initialise: ${(e as Error).message}`, notes: libs.notes };
  }
}

/** One line about a device: what it is and what runs on it. */
export function describeDevice(device: Device, o: CudaOptions): string {
  const info = device.info();
  const libLine = Object.entries(info.libs).map(([k, v]) => `${k} ${v}`).join(', ');
  return `${info.name}, sm_${info.cc.join('')}, ${(info.totalBytes / 2 ** 30).toFixed(0)} GiB; TF32 ${o.tf32 ? 'on' : 'off'}; ${o.deterministic ? 'deterministic' : 'fastest'} cuDNN algorithms; ${libLine}`;
}

export async function startCuda(o: CudaOptions): Promise<CudaStart> {
  const r = openCudaDevice(o);
  if ('why' in r) return { ok: false, why: r.why, details: r.notes };
  await useCudaBackend(r.device);
  return { ok: true, reason: `cuda (bnlab's own: ${describeDevice(r.device, o)})`, details: r.notes };
}
