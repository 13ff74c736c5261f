// The EMA estimate of population statistics, updated once per SGD step from the batch statistics
// training observed: mu <- decay*mu + (1-decay)*mu_B, var <- decay*var + (1-decay)*n/(n-1)*var_B
// (PyTorch's convention: the buffer holds the unbiased variance). The float64 reference is
// emaUpdate() in estimators.ts; the fused kernel (native/addon/ema.cc) computes the same.
import * as tf from '@tensorflow/tfjs-core';
import { EMA_KERNEL, hasKernel, runKernel } from '../backend/kernels/names.js';
import type { Observation } from '../nn/batchnorm.js';
import { besselFactor } from './estimators.js';
import type { Population } from './population.js';

/** The EMA buffers of every BN layer (tf Variables: updated in place every step). */
export type EmaBuffers = Map<string, { mean: tf.Variable; variance: tf.Variable }>;

/** The EMA buffers as population statistics (a view: the tensors stay the buffers'). */
export const emaPopulation = (ema: EmaBuffers): Population =>
  new Map([...ema].map(([k, v]) => [k, { mean: v.mean as tf.Tensor1D, variance: v.variance as tf.Tensor1D }]));

export interface EmaOptions {
  decay: number;
  /** 'one': a single worker's EMA sees only group 0 of the first micro-batch (the paper's
   *  multi-GPU setting); 'all': every group's mean and unbiased variance are averaged. */
  groups: 'one' | 'all';
}

export function updateEma(ema: EmaBuffers, observations: readonly Observation[], o: EmaOptions): void {
  const byLayer = new Map<string, Observation[]>();
  for (const ob of observations) byLayer.set(ob.layer, [...(byLayer.get(ob.layer) ?? []), ob]);
  // One kernel per layer when the backend has it and one micro-batch observed the layer.
  const fused = hasKernel(EMA_KERNEL);
  tf.tidy(() => {
    for (const [layer, obs] of byLayer) {
      const buf = ema.get(layer)!;
      if (fused && (o.groups === 'one' || obs.length === 1)) {
        const counts = o.groups === 'one' ? obs[0].counts.slice(0, 1) : obs[0].counts;
        const rows = (t: tf.Tensor) => (counts.length === t.shape[0] ? t : tf.slice(t, [0, 0], [counts.length, -1]));
        const [mean, variance] = runKernel(EMA_KERNEL, {
          mean: buf.mean, variance: buf.variance, obsMean: rows(obs[0].mean), obsVariance: rows(obs[0].variance),
        }, { decay: o.decay, counts }) as tf.Tensor[];
        buf.mean.assign(mean);
        buf.variance.assign(variance);
        continue;
      }
      let mean: tf.Tensor;
      let unbiased: tf.Tensor;
      if (o.groups === 'one') {
        mean = tf.squeeze(tf.slice(obs[0].mean, [0, 0], [1, -1]), [0]);
        unbiased = tf.mul(tf.squeeze(tf.slice(obs[0].variance, [0, 0], [1, -1]), [0]), besselFactor(obs[0].counts[0]));
      } else {
        const means = tf.concat(obs.map((ob) => ob.mean), 0);
        const vars = tf.concat(obs.map((ob) => tf.mul(ob.variance, tf.tensor2d(ob.counts.map(besselFactor), [ob.counts.length, 1]))), 0);
        mean = tf.mean(means, 0);
        unbiased = tf.mean(vars, 0);
      }
      buf.mean.assign(tf.add(tf.mul(buf.mean, o.decay), tf.mul(mean, 1 - o.decay)));
      buf.variance.assign(tf.add(tf.mul(buf.variance, o.decay), tf.mul(unbiased, 1 - o.decay)));
    }
  });
}
