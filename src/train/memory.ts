// Micro-batches that fit memory: measure the peak tensor bytes of one forward/backward pass per
// sample, then pick the largest micro-batch (a multiple of NBS that divides the total batch)
// within the backend's budget. An NBS that does not fit cannot be split — that would silently
// normalize over fewer samples — so the run stops and says how much memory it would need.
import * as tf from '@tensorflow/tfjs-core';
import { microBatch, type Config } from '../config/schema.js';
import type { RunState } from './state.js';
import { crossEntropy } from '../nn/loss.js';

/**
 * Bytes the backend can hold: the wasm heap is capped at 4 GB and never shrinks; on the cuda
 * backend, what the driver says is free plus what bnlab's pool holds, less 20% for cuDNN's
 * workspaces and the allocator's rounding.
 */
export function memoryBudget(backend: string): number {
  const gb = Number(process.env.BNLAB_MEMORY_GB);
  if (gb > 0) return gb * 2 ** 30;
  if (backend === 'cuda') {
    const m = tf.backend().memory() as { numBytesFreeOnDevice?: number; numBytesPooled?: number };
    if (m.numBytesFreeOnDevice != null) return 0.8 * (m.numBytesFreeOnDevice + (m.numBytesPooled ?? 0));
  }
  return backend === 'wasm' ? 3.2 * 2 ** 30 : 8 * 2 ** 30;
}

/** Peak bytes per sample of a training pass, measured on a small batch. */
export async function bytesPerSample(state: RunState, shape: [number, number, number], probe = 4): Promise<number> {
  const vars = [...state.params.values()];
  const info = await tf.profile(() => {
    tf.tidy(() => {
      const x = tf.randomNormal([probe, ...shape]) as tf.Tensor4D;
      const y = tf.zeros([probe], 'int32') as tf.Tensor1D;
      const { grads } = tf.variableGrads(() => tf.mean(crossEntropy(state.net.forward(state.params, x, { source: 'batch', nbs: probe, eps: state.meta.config.bn.eps }), y)) as tf.Scalar, vars);
      tf.dispose(Object.values(grads));
    });
  });
  const paramBytes = vars.reduce((a, v) => a + v.size * 4, 0);
  return Math.max(1, (info.peakBytes - paramBytes * 2) / probe);
}

export function chooseMicroBatch(cfg: Config, perSample: number, budget: number): number {
  const nbs = cfg.bn.nbs;
  const fits = Math.floor(budget / perSample);
  const gb = (b: number) => (b / 2 ** 30).toFixed(1);
  if (cfg.optim.micro_batch !== null) {
    if (cfg.optim.micro_batch > fits) {
      throw new Error(`optim.micro_batch ${cfg.optim.micro_batch} needs ~${gb(cfg.optim.micro_batch * perSample)} GB per pass; about ${fits} samples fit in ${gb(budget)} GB. Lower optim.micro_batch (a multiple of bn.nbs = ${nbs}).`);
    }
    return cfg.optim.micro_batch;
  }
  if (nbs > fits) {
    throw new Error(
      `bn.nbs ${nbs} needs ~${gb(nbs * perSample)} GB for one forward/backward pass, but about ${fits} samples fit in ${gb(budget)} GB ` +
        `(set BNLAB_MEMORY_GB on a larger machine). An NBS group cannot be split across passes without changing what BN normalizes over.`,
    );
  }
  return microBatch(cfg, Math.min(Math.max(256, nbs), fits));
}
