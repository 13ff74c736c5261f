// bnlab's CUDA device layer (native/cuda) on a machine without a GPU, as CI is: the addon builds
// (npm run build:native) and loads with no CUDA installed, init() names a missing or wrong library
// with the fix, and the addon exports every method of the Device contract, read from
// src/backend/cuda/device.ts itself so that a method added there fails here until the addon has
// it. Nothing here runs on a GPU: the kernels are compile-checked by scripts/cuda-compile-check.sh.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CUDA_ADDON_PATH, type CudaAddon, type CudaDeviceOptions, cudaAddonStatus, loadCudaDevice } from '../src/backend/cuda/addon.js';

/** The method names of `export interface Device { ... }` in device.ts. */
function contractMethods(): string[] {
  const src = readFileSync(new URL('../src/backend/cuda/device.ts', import.meta.url), 'utf8');
  const start = src.indexOf('export interface Device {');
  expect(start, 'device.ts declares export interface Device').toBeGreaterThan(-1);
  const body = src.slice(start, src.indexOf('\n}', start));
  return [...body.matchAll(/^\s+(\w+)\(/gm)].map((m) => m[1]);
}

const addon = () => createRequire(import.meta.url)(CUDA_ADDON_PATH) as CudaAddon & Record<string, unknown>;

// Paths that exist nowhere, so that only the library under test decides what init() says.
const options = (o: Partial<CudaDeviceOptions>): CudaDeviceOptions => ({
  driver: '/nonexistent/libcuda.so.1',
  nvrtc: '/nonexistent/libnvrtc.so.13',
  cublas: '/nonexistent/libcublas.so.13',
  cudnn: '/nonexistent/libcudnn.so.9',
  cacheDir: join(tmpdir(), 'bnlab-cuda-addon-test'),
  tf32: false,
  deterministic: true,
  ...o,
});

describe('CUDA device layer without a GPU', () => {
  it('is built and loads with no CUDA library present', () => {
    const status = cudaAddonStatus();
    expect(status.built, status.reason).toBe(true);
    expect(status.reason).toMatch(/CUDA device layer/);
  });

  it('exports every method of the Device contract', () => {
    const methods = contractMethods();
    expect(methods).toEqual(expect.arrayContaining(['info', 'alloc', 'upload', 'download', 'conv', 'bnBackward', 'matmul', 'oneHot']));
    const a = addon();
    const missing = methods.filter((m) => typeof a[m] !== 'function');
    expect(missing, `device.ts methods the addon lacks`).toEqual([]);
    expect(typeof a.init).toBe('function');
  });

  it('names a library that is not there, and the fix', () => {
    expect(() => loadCudaDevice(options({}))).toThrow(
      /cannot load the CUDA driver \(libcuda\.so\.1\) from '\/nonexistent\/libcuda\.so\.1' \(init option 'driver'\): .*No such file.*Fix: install the NVIDIA driver/,
    );
    expect(() => loadCudaDevice(options({ driver: '' }))).toThrow(/init option 'driver' is empty\. Fix: /);
  });

  it('names the missing symbol when a library is not the one asked for', () => {
    expect(() => loadCudaDevice(options({ driver: 'libm.so.6' }))).toThrow(
      /'libm\.so\.6' \(init option 'driver'\) has no symbol cuInit: it is not the CUDA driver.*Fix: /,
    );
  });

  it('checks init options and refuses device calls before init', () => {
    const a = addon();
    expect(() => a.init({ ...options({}), kernelDir: '/nonexistent', tf32: 'yes' as unknown as boolean })).toThrow(/option 'tf32' must be a boolean/);
    expect(() => (a.init as (o?: unknown) => void)()).toThrow(/init takes 1 arguments, got 0/);
    // the failed init()s above left no half-made device behind
    expect(() => a.alloc(256)).toThrow(/call init\(\) first/);
    expect(() => a.memory()).toThrow(/call init\(\) first/);
    return expect(a.download(0, 4)).rejects.toThrow(/call init\(\) first/);
  });
});
