// Choosing a backend: the optional tensorflow route (tfjs-node-gpu) fails with a message, never a
// crash; --backend cuda says which libraries are missing; a mistyped name is refused the same
// way by train and eval.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BackendError, initBackend } from '../src/backend/index.js';
import { loadTensorflow, locateTfLibs, tfLibsProblem, usesGpu, TF_CUDA_LIBS } from '../src/backend/tensorflow.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const bnlab = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BNLAB_WASM_THREADS: '1' } });

describe('the tensorflow route (tfjs-node-gpu)', () => {
  it('reads isUsingGpuDevice as tfjs-node 4.22 has it (a boolean) or as a method', () => {
    expect(usesGpu({ isUsingGpuDevice: true })).toBe(true);
    expect(usesGpu({ isUsingGpuDevice: false })).toBe(false);
    expect(usesGpu({ isUsingGpuDevice: () => true })).toBe(true);
    expect(usesGpu({ isUsingGpuDevice: () => { throw new Error('binding gone'); } })).toBe(false);
    expect(usesGpu({})).toBe(false);
    expect(usesGpu(undefined)).toBe(false);
  });

  it('turns a package that throws at load or at setBackend into a probe', async () => {
    const base = { installed: () => true, libs: () => [], gpus: () => 1, backend: async () => ({ isUsingGpuDevice: true }) };
    const load = await loadTensorflow({ ...base, importPackage: async () => { throw new Error('libtensorflow.so.2: cannot open shared object file\nstack'); }, setBackend: async () => true });
    expect(load).toMatchObject({ installed: true, loaded: false, gpu: false });
    expect(load.detail).toMatch(/failed to load: libtensorflow\.so\.2: cannot open shared object file \(.*npm rebuild/);
    const set = await loadTensorflow({ ...base, importPackage: async () => ({}), setBackend: async () => { throw new TypeError('backend.isUsingGpuDevice is not a function'); } });
    expect(set).toMatchObject({ installed: true, loaded: true, gpu: false });
    expect(set.detail).toMatch(/loaded but its backend did not start: backend\.isUsingGpuDevice is not a function/);
    const ok = await loadTensorflow({ ...base, importPackage: async () => ({}), setBackend: async () => true });
    expect(ok).toMatchObject({ loaded: true, gpu: true });
    const cpu = await loadTensorflow({ ...base, importPackage: async () => ({}), setBackend: async () => true, backend: async () => ({ isUsingGpuDevice: false }), libs: () => TF_CUDA_LIBS.map((name) => ({ name, path: null, elsewhere: null })) });
    expect(cpu.detail).toMatch(/sees no GPU: libtensorflow 2\.9\.1 needs CUDA 11\.x \+ cuDNN 8 .*built for CUDA 11\.2 \+ cuDNN 8\.1.*missing libcudart\.so\.11\.0.*nvidia-cudnn-cu11<9/);
  });

  it('looks for the CUDA 11 libraries where libtensorflow would, and names one off the loader path', () => {
    const fs = { exists: (p: string) => ['/ld/libcudart.so.11.0', '/venv/nvidia/cudnn/lib/libcudnn.so.8'].includes(p), readdir: () => [] };
    const libs = locateTfLibs(['/ld'], '\tlibcublas.so.11 (libc6,x86-64) => /cache/libcublas.so.11', ['/venv/nvidia/cudnn/lib'], fs);
    expect(libs.slice(0, 2).map((l) => l.path)).toEqual(['/ld/libcudart.so.11.0', '/cache/libcublas.so.11']);
    expect(libs.find((l) => l.name === 'libcudnn.so.8')).toEqual({ name: 'libcudnn.so.8', path: null, elsewhere: '/venv/nvidia/cudnn/lib/libcudnn.so.8' });
    expect(tfLibsProblem(libs)).toMatch(/libcudnn\.so\.8 found but not on the loader's path \(export LD_LIBRARY_PATH=\/venv\/nvidia\/cudnn\/lib:\$LD_LIBRARY_PATH/);
  });

  it("initBackend('tensorflow') without the package rejects with a message naming the fix", async () => {
    const err = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect((err as Error).message).toMatch(/--backend tensorflow \(tfjs-node-gpu, CUDA 11\.2 \+ cuDNN 8\.1 only\): .*not installed: npm install @tensorflow\/tfjs-node-gpu@4\.22\.0/);
  });
});

describe('choosing a backend', () => {
  it("--backend cuda names what bnlab's CUDA backend lacks", async () => {
    const err = await initBackend('cuda').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    // without the libraries: each missing one with its fix; with them but no GPU (or a failed start): why
    expect((err as Error).message).toMatch(/--backend cuda: bnlab's CUDA backend needs an NVIDIA GPU with its driver \(libcuda\.so\.1\), NVRTC, cuBLAS and cuDNN 9.*(missing:\n  - .*Fix: |: (no NVIDIA GPU|the CUDA))/s);
  });

  it('train and eval refuse a mistyped --backend with exit 2, naming the choices', () => {
    for (const args of [['eval', '--run', '/nonexistent-run', '--backend', 'cdua'], ['train', '--backend', 'cdua']]) {
      const r = bnlab(args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain("--backend 'cdua' is not a backend (did you mean 'cuda'?); use one of: auto, cuda, tensorflow, wasm, cpu");
    }
  }, 60_000);
});
