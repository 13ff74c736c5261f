// Evaluation under a chosen statistics source: population statistics (EMA or PreciseBN) or
// mini-batch statistics of test batches.
import * as tf from '@tensorflow/tfjs-core';
import type { Split } from '../data/dataset.js';
import { prefetch } from '../data/prefetch.js';
import { foldPopulation, type BNContext, type Folded } from '../nn/batchnorm.js';
import type { Network } from '../nn/resnet.js';
import { crossEntropy } from '../nn/loss.js';

export interface EvalOptions {
  ctx: BNContext;
  batchSize: number;
  /** Samples to evaluate, in this order (default: all, in order). Mini-batch statistics need a
   *  shuffled order: a class-sorted validation set would give one-class batches. */
  order?: ArrayLike<number>;
  onBatch?: (done: number, total: number) => void;
}

export interface EvalResult {
  err: number; // percent
  loss: number;
  n: number;
}

export async function evaluate(net: Network, params: ReadonlyMap<string, tf.Tensor>, set: Split, o: EvalOptions): Promise<EvalResult> {
  const order = o.order ?? Int32Array.from({ length: set.n }, (_, i) => i);
  const n = order.length;
  const jobs = function* () {
    for (let start = 0; start < n; start += o.batchSize) {
      const idx = Int32Array.from({ length: Math.min(o.batchSize, n - start) }, (_, i) => order[start + i]);
      yield () => set.load(idx, { augment: false, seed: 0, epoch: 0 });
    }
  };
  let errors = 0;
  let lossSum = 0;
  let done = 0;
  let folded: Map<string, Folded> | undefined;
  try {
    folded = foldAll(net, params, o.ctx);
    // evaluation observes nothing; population statistics folded once for the whole pass
    const ctx: BNContext = o.ctx.source === 'population' ? { ...o.ctx, folded: folded ?? o.ctx.folded } : { ...o.ctx, observer: undefined };
    for await (const b of prefetch(jobs(), 2)) {
      const [wrong, loss] = tf.tidy(() => {
        const x = tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]);
        const y = tf.tensor1d(b.y, 'int32');
        const logits = net.forward(params, x, ctx);
        return [tf.sum(tf.notEqual(tf.argMax(logits, 1), y).toInt()), tf.sum(crossEntropy(logits, y))];
      });
      errors += wrong.dataSync()[0];
      lossSum += loss.dataSync()[0];
      wrong.dispose();
      loss.dispose();
      done += b.n;
      o.onBatch?.(done, n);
    }
  } finally {
    folded?.forEach((f) => tf.dispose([f.scale, f.shift]));
  }
  return { err: (100 * errors) / n, loss: lossSum / n, n };
}

/** With population statistics, every layer's scale and shift (foldPopulation) once for the whole
 *  pass instead of once per batch: 5 small ops per layer and batch. */
export function foldAll(net: Network, params: ReadonlyMap<string, tf.Tensor>, ctx: BNContext): Map<string, Folded> | undefined {
  if (ctx.source !== 'population' || ctx.folded) return undefined;
  const pop = ctx.population;
  const out = new Map<string, Folded>();
  for (const l of net.bnLayers) {
    if (!pop.has(l.name)) continue;
    const { gamma, beta } = net.bnAffine(params, l.name);
    if (!gamma || !beta) continue; // left to batchnorm.ts, which says what is missing
    out.set(l.name, tf.tidy(() => foldPopulation(gamma, beta, pop.get(l.name)!, ctx.eps)));
  }
  return out;
}
