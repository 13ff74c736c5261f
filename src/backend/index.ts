// Choose and initialise a tfjs backend, and say which one and why: never a silent fallback.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs'; // registers gradients and chained ops; tfjs-core alone registers none
import '@tensorflow/tfjs-backend-cpu';
import type { BackendName } from '../config/schema.js';
import { findCudaLibraries, missingLine } from './cuda/libs.js';
import { kernelCacheDir, startCuda, type CudaOptions } from './cuda/start.js';
import { loadTensorflow } from './tensorflow.js';
import { initWasmBackend, registerCpuFixes, poolStartState } from './wasm.js';
import { cpuBudget } from '../util/cpus.js';
import { StartupTimeout, startupDeadlineSeconds, withDeadline } from './watchdog.js';

export type BackendChoice = BackendName;

export interface BackendReport {
  name: 'cuda' | 'tensorflow' | 'wasm' | 'cpu';
  tfName: string;
  reason: string;
  details: string[];
  /** wasm: XNNPACK threads actually running */
  threads?: number;
}

export class BackendError extends Error {}

export async function initBackend(choice: BackendChoice, threads = 0, cuda: CudaOptions = { tf32: true, deterministic: false }): Promise<BackendReport> {
  const notes: string[] = [];
  if (choice === 'tensorflow') {
    const probe = await loadTensorflow();
    if (probe.gpu) return { name: 'tensorflow', tfName: tf.getBackend(), reason: `tfjs-node-gpu: ${probe.detail}`, details: [] };
    throw new BackendError(`--backend tensorflow (tfjs-node-gpu, CUDA 11.2 + cuDNN 8.1 only): ${probe.detail}. Run 'bnlab doctor' for details, or use --backend wasm.`);
  }
  if (choice === 'cuda' || choice === 'auto') {
    // auto never tries tfjs-node-gpu: its libtensorflow needs CUDA 11.2 and would fall to CPU quietly
    const r = await withDeadline(startCuda(cuda), startupDeadlineSeconds(), 'the cuda backend', () => `a first start compiles the CUDA kernels with NVRTC into ${kernelCacheDir()}`);
    if (r.ok) return { name: 'cuda', tfName: 'cuda', reason: r.reason, details: r.details };
    if (choice === 'cuda') throw new BackendError(`${cudaUnavailable(r.why)}`);
    notes.push(`CUDA not used: ${r.why}`);
  }
  if (choice === 'wasm' || choice === 'auto') {
    try {
      const info = await withDeadline(initWasmBackend({ threads: threads > 0 ? threads : 'auto' }), startupDeadlineSeconds(), 'the wasm backend', poolStartState);
      const sized = threads > 0 ? 'as configured' : `CPUs: ${cpuBudget().reason}`;
      const reason = `wasm (SIMD ${info.simd ? 'on' : 'off'}, ${info.threads} thread${info.threads === 1 ? '' : 's'} (${sized}), kernel fixes: ${info.fixes.join(', ') || 'none'}; own kernels: ${info.kernels?.join(', ') || 'none'})`;
      return { name: 'wasm', tfName: 'wasm', threads: info.threads, reason: choice === 'auto' ? `${reason}; CPU fallback because CUDA is unavailable` : reason, details: [...notes, ...info.notes] };
    } catch (e) {
      // A start-up that hung leaves the backend half-made: stop, never fall back past it.
      if (e instanceof StartupTimeout) throw e;
      if (choice === 'wasm') throw new BackendError(`--backend wasm failed to initialise: ${(e as Error).message}`);
      notes.push(`wasm not used: ${(e as Error).message}`);
    }
  }
  await tf.setBackend('cpu');
  const fixes = registerCpuFixes();
  return { name: 'cpu', tfName: 'cpu', reason: `pure-JS cpu backend (slow; kernel fixes: ${fixes.join(', ') || 'none'})`, details: notes };
}

/** Why --backend cuda cannot run: each library piece that is missing with its fix, or what failed. */
function cudaUnavailable(why: string): string {
  const libs = findCudaLibraries();
  const head = "--backend cuda: bnlab's CUDA backend needs an NVIDIA GPU with its driver (libcuda.so.1), NVRTC, cuBLAS and cuDNN 9, found at run time";
  const tail = "Run 'bnlab doctor' to see where bnlab looked, or use --backend wasm (or --backend tensorflow for tfjs-node-gpu with CUDA 11.2).";
  if (!libs.ok) return [`${head}; missing:`, ...libs.missing.map((m) => `  - ${missingLine(m)}`), ...(libs.driver.present ? [] : [`  (${libs.driver.detail})`]), tail].join('\n');
  return `${head}: ${why}. ${tail}`;
}
