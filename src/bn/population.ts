// Population statistics: the per-layer mean and (unbiased) variance inference normalizes with.
// EMA, PreciseBN and FrozenBN statistics all take this one shape once they leave their estimator.
import * as tf from '@tensorflow/tfjs-core';
import type { LayerStats } from '../nn/batchnorm.js';
import type { PopulationStats } from './estimators.js';

/** Every BN layer's population statistics, as tensors (the holder disposes them). */
export type Population = Map<string, LayerStats>;

/** float64 estimator results -> tensors. */
export function toPopulation(stats: ReadonlyMap<string, PopulationStats>): Population {
  return new Map([...stats].map(([k, v]) => [k, { mean: tf.tensor1d(Float32Array.from(v.mean)), variance: tf.tensor1d(Float32Array.from(v.variance)) }]));
}

export const clonePopulation = (m: Population): Population =>
  new Map([...m].map(([k, v]) => [k, { mean: v.mean.clone(), variance: v.variance.clone() }]));

export function disposePopulation(stats: Population | null): void {
  for (const v of stats?.values() ?? []) {
    v.mean.dispose();
    v.variance.dispose();
  }
}
