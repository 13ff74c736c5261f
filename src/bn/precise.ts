// PreciseBN: freeze the model, run it on N training samples in batches of B with batch
// statistics, and aggregate every batch's per-channel statistics with equal weight per sample.
// No gradients; all BN layers are estimated from the same forward passes (as fvcore does),
// except B = N, which is computed exactly one layer at a time (exactFullBatch).
import * as tf from '@tensorflow/tfjs-core';
import type { Split } from '../data/dataset.js';
import { sampleWithoutReplacement } from '../data/loader.js';
import { prefetch } from '../data/prefetch.js';
import { StopForward, type BNContext, type LayerStats, type Observation } from '../nn/batchnorm.js';
import type { Batch } from '../data/loader.js';
import type { Network } from '../nn/resnet.js';
import type { Config } from '../config/schema.js';
import { microBatch } from '../config/schema.js';
import type { Progress } from '../util/progress.js';
import { createEstimator, type Estimator, type PopulationStats } from './estimators.js';
import { toPopulation, type Population } from './population.js';

/** One PreciseBN estimate: which samples, in what batches, aggregated how. */
export interface PreciseRequest {
  samples: number; // N
  batchSize: number; // B
  estimator: Estimator;
  /** Apply the dataset's training augmentation to the samples. */
  augment: boolean;
  seed: number;
  epoch: number;
  /** Use exactly these samples (default: N drawn without replacement from seed and epoch). */
  indices?: Int32Array;
}

/** How the passes run (no effect on the result but memory and progress). */
export interface PreciseRuntime {
  eps: number;
  /** Samples per forward pass (rounded down to a multiple of B, at least B). */
  forwardBatch: number;
  onProgress?: (done: number, total: number) => void;
}

type PreciseOptions = PreciseRequest & PreciseRuntime;

/** The request a run's config makes at the end of an epoch (the trainer and FrozenBN's switch). */
export const preciseRequest = (cfg: Config, epoch: number): PreciseRequest => ({
  samples: cfg.precise.samples,
  batchSize: cfg.precise.batch_size,
  estimator: cfg.precise.estimator,
  augment: cfg.precise.augment,
  seed: cfg.seed,
  epoch,
});

/** The samples as forward passes of `per`, loaded ahead. */
function passes(set: Split, indices: Int32Array, per: number, o: PreciseOptions): AsyncGenerator<Batch> {
  const n = indices.length;
  const jobs = function* () {
    for (let start = 0; start < n; start += per) yield () => set.load(indices.subarray(start, Math.min(n, start + per)), { augment: o.augment, seed: o.seed, epoch: o.epoch });
  };
  return prefetch(jobs(), 2);
}

/** One forward pass without gradients; the statistics each BN layer observed (caller disposes). */
function observe(net: Network, params: ReadonlyMap<string, tf.Tensor>, b: Batch, ctx: BNContext): Observation[] {
  const observed: Observation[] = [];
  try {
    tf.tidy(() => void net.forward(params, tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]), ctx, observed));
  } catch (e) {
    if (!(e instanceof StopForward)) throw e;
  }
  return observed;
}

/** Population statistics per BN layer in float64, from N samples of `set`. */
export async function preciseBNStats(net: Network, params: ReadonlyMap<string, tf.Tensor>, set: Split, r: PreciseRequest, run: PreciseRuntime): Promise<Map<string, PopulationStats>> {
  const o: PreciseOptions = { ...r, ...run };
  const indices = o.indices ?? preciseSamples(set.n, o.samples, o.seed, o.epoch);
  const n = indices.length;
  if (o.batchSize >= n) return exactFullBatch(net, params, set, indices, o);
  const per = Math.max(o.batchSize, Math.floor(o.forwardBatch / o.batchSize) * o.batchSize);
  const acc = new Map(net.bnLayers.map((l) => [l.name, createEstimator(o.estimator, l.channels)]));
  let done = 0;
  for await (const b of passes(set, indices, per, o)) {
    const observed = observe(net, params, b, { source: 'batch', nbs: o.batchSize, eps: o.eps, observe: true });
    for (const ob of observed) {
      const means = ob.mean.dataSync();
      const vars = ob.variance.dataSync();
      const c = ob.mean.shape[1];
      ob.counts.forEach((count, g) => acc.get(ob.layer)!.add({ mean: means.subarray(g * c, (g + 1) * c), variance: vars.subarray(g * c, (g + 1) * c), count }));
      ob.mean.dispose();
      ob.variance.dispose();
    }
    done += b.n;
    o.onProgress?.(done, n);
  }
  return new Map([...acc].map(([k, a]) => [k, a.result()]));
}

/**
 * B = N: the statistics every BN layer would see if all N samples were one batch, without holding
 * N samples' activations. One layer at a time in forward order (bnLayers is topological): the
 * layers before it normalize with the full-set statistics already found, so its input no longer
 * depends on how the samples are chunked, and pooling the chunks' moments gives its full-set
 * mean and variance exactly. Costs one pass over the N samples per BN layer, each ending at that
 * layer (on average half the network). With one batch the
 * two estimators coincide (count/(count-1) times the biased variance).
 */
async function exactFullBatch(net: Network, params: ReadonlyMap<string, tf.Tensor>, set: Split, indices: Int32Array, o: PreciseOptions): Promise<Map<string, PopulationStats>> {
  const n = indices.length;
  const per = Math.max(1, o.forwardBatch);
  const fixed = new Map<string, LayerStats>();
  const out = new Map<string, PopulationStats>();
  const total = n * net.bnLayers.length;
  try {
    for (const [k, layer] of net.bnLayers.entries()) {
      const acc = createEstimator('pooled', layer.channels);
      let done = 0;
      for await (const b of passes(set, indices, per, o)) {
        // the pass ends at this layer: what comes after it cannot change its statistics
        for (const ob of observe(net, params, b, { source: 'batch', nbs: b.n, eps: o.eps, observe: true, fixed, stopAfter: layer.name })) {
          if (ob.layer === layer.name) acc.add({ mean: ob.mean.dataSync(), variance: ob.variance.dataSync(), count: ob.counts[0] });
          ob.mean.dispose();
          ob.variance.dispose();
        }
        done += b.n;
        o.onProgress?.(k * n + done, total);
      }
      const stats = acc.result();
      out.set(layer.name, stats);
      // One batch of N normalizes with its biased variance: fix the layer with exactly that.
      const c = acc.count;
      const biased = { mean: stats.mean, variance: stats.variance.map((v) => (v * (c - 1)) / c) };
      fixed.set(layer.name, toPopulation(new Map([[layer.name, biased]])).get(layer.name)!);
    }
  } finally {
    for (const s of fixed.values()) (s.mean.dispose(), s.variance.dispose());
  }
  return out;
}

/** The N samples a PreciseBN pass reads: a function of (seed, epoch) only, so it is reproducible. */
export const preciseSamples = (total: number, samples: number, seed: number, epoch: number) =>
  sampleWithoutReplacement(total, Math.min(samples, total), seed * 1000003 + epoch);

/** PreciseBN population statistics as tensors (the caller disposes them), with progress. */
export async function estimatePrecise(net: Network, params: ReadonlyMap<string, tf.Tensor>, split: Split, cfg: Config, r: PreciseRequest, progress?: Progress): Promise<Population> {
  const n = r.indices?.length ?? Math.min(r.samples, split.n);
  // B = N is computed exactly, one pass per BN layer.
  if (r.batchSize >= n) progress?.start(`PreciseBN B=N (${net.bnLayers.length} layers)`, n * net.bnLayers.length);
  else progress?.start('PreciseBN', n);
  const stats = await preciseBNStats(net, params, split, r, {
    eps: cfg.bn.eps,
    forwardBatch: Math.max(microBatch(cfg), cfg.eval.batch_size),
    onProgress: (d) => progress?.update(d),
  });
  progress?.stop();
  return toPopulation(stats);
}
