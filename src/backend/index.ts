// Choose and initialise a tfjs backend, and say which one and why: never a silent fallback.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs'; // registers gradients and chained ops; tfjs-core alone registers none
import '@tensorflow/tfjs-backend-cpu';
import { loadCuda } from './cuda.js';
import { initWasmBackend, registerCpuFixes, poolStartState } from './wasm.js';
import { cpuBudget } from '../util/cpus.js';
import { StartupTimeout, startupDeadlineSeconds, withDeadline } from './watchdog.js';

export type BackendChoice = 'auto' | 'cuda' | 'wasm' | 'cpu';

export interface BackendReport {
  name: 'cuda' | 'wasm' | 'cpu';
  tfName: string;
  reason: string;
  details: string[];
  /** wasm: XNNPACK threads actually running */
  threads?: number;
}

export class BackendError extends Error {}

export async function initBackend(choice: BackendChoice, threads = 0): Promise<BackendReport> {
  const notes: string[] = [];
  if (choice === 'cuda' || choice === 'auto') {
    const cuda = await loadCuda();
    if (cuda.gpu) return { name: 'cuda', tfName: tf.getBackend(), reason: cuda.detail, details: [] };
    if (choice === 'cuda') throw new BackendError(`--backend cuda: ${cuda.detail}. Run 'bnlab doctor' for details, or use --backend wasm.`);
    notes.push(`CUDA not used: ${cuda.detail}`);
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
