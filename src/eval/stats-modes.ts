// The answers to "which batch?" at test time, as functions shared by `bnlab train` (end of every
// epoch) and `bnlab eval`: population statistics (EMA, PreciseBN, FrozenBN's fixed ones) or
// mini-batch statistics of NBS test samples.
import * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../config/schema.js';
import { microBatch } from '../config/schema.js';
import type { Split } from '../data/dataset.js';
import { permutation } from '../data/loader.js';
import type { LayerStats } from '../nn/batchnorm.js';
import type { Network } from '../nn/resnet.js';
import type { Estimator } from '../stats/aggregate.js';
import { preciseBNStats, toLayerStats } from '../stats/precise.js';
import type { Progress } from '../util/progress.js';
import { evaluate } from './evaluate.js';

const silent: Progress = { start() {}, update() {}, stop() {} };

export interface PreciseRequest {
  samples: number;
  batchSize: number;
  estimator: Estimator;
  augment: boolean;
  seed: number;
  epoch: number;
  indices?: Int32Array;
}

/** PreciseBN population statistics as tensors (the caller disposes them). */
export async function estimatePrecise(
  net: Network,
  params: ReadonlyMap<string, tf.Tensor>,
  split: Split,
  cfg: Config,
  r: PreciseRequest,
  progress: Progress = silent,
): Promise<Map<string, LayerStats>> {
  const n = r.indices?.length ?? Math.min(r.samples, split.n);
  // B = N is computed exactly, one pass per BN layer (precise.ts).
  if (r.batchSize >= n) progress.start(`PreciseBN B=N (${net.bnLayers.length} layers)`, n * net.bnLayers.length);
  else progress.start('PreciseBN', n);
  const stats = await preciseBNStats(net, params, split, {
    ...r,
    eps: cfg.bn.eps,
    forwardBatch: Math.max(microBatch(cfg), cfg.eval.batch_size),
    onProgress: (d) => progress.update(d),
  });
  progress.stop();
  return toLayerStats(stats);
}

/** Error (%) with fixed population statistics. */
export async function evalPopulation(
  net: Network,
  params: ReadonlyMap<string, tf.Tensor>,
  split: Split,
  cfg: Config,
  population: ReadonlyMap<string, LayerStats>,
  label: string,
  progress: Progress = silent,
  order?: ArrayLike<number>,
): Promise<number> {
  progress.start(`eval ${label}`, order?.length ?? split.n);
  const r = await evaluate(net, params, split, {
    ctx: { source: 'population', nbs: cfg.bn.nbs, eps: cfg.bn.eps, population },
    batchSize: cfg.eval.batch_size,
    order,
    onBatch: (d) => progress.update(d),
  });
  progress.stop();
  return r.err;
}

/**
 * Error (%) with mini-batch statistics: random batches of `nbs` samples (a fixed shuffle), each
 * normalized by its own statistics — no train/test inconsistency, at the price of depending on
 * the other samples of the batch.
 */
export async function evalMinibatch(
  net: Network,
  params: ReadonlyMap<string, tf.Tensor>,
  split: Split,
  cfg: Config,
  nbs: number,
  label: string,
  progress: Progress = silent,
  order: ArrayLike<number> = permutation(split.n, cfg.seed, 0x6d62),
): Promise<number> {
  progress.start(`eval ${label}`, order.length);
  const r = await evaluate(net, params, split, {
    ctx: { source: 'batch', nbs, eps: cfg.bn.eps },
    batchSize: Math.max(nbs, Math.floor(cfg.eval.batch_size / nbs) * nbs),
    order,
    onBatch: (d) => progress.update(d),
  });
  progress.stop();
  return r.err;
}
