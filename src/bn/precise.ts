// PreciseBN: freeze the model, run it on N training samples in batches of B with batch
// statistics, and aggregate every batch's per-channel statistics with equal weight per sample.
// No gradients; all BN layers are estimated from the same forward passes (as fvcore does),
// except B = N, which is computed exactly one layer at a time (exactFullBatch).
import { epochSeed } from '../config/seed.js';
import * as tf from '@tensorflow/tfjs-core';
import type { Split } from '../data/dataset.js';
import { sampleWithoutReplacement } from '../data/loader.js';
import { prefetch } from '../data/prefetch.js';
import { collectObservations, type BNContext, type BNObserver, type LayerStats, type Observation } from '../nn/batchnorm.js';

type BatchContext = Extract<BNContext, { source: 'batch' }> & { observer: BNObserver };
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
  /** B = N: memory its staged schedule may use (default 2 GiB; beyond it, layer by layer). */
  exactBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

type PreciseOptions = PreciseRequest & PreciseRuntime;

/** The request a run's config makes at the end of an epoch (the trainer and FrozenBN's switch). */
export const preciseRequest = (cfg: Config, epoch: number): PreciseRequest => ({
  samples: cfg.precise.samples,
  batchSize: cfg.precise.batch_size,
  estimator: cfg.precise.estimator,
  augment: cfg.precise.augment,
  seed: epochSeed(cfg, epoch),
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

/** A statistics-only pass (or part of one: it returns once `stopAfter` is observed) without gradients; what each BN layer observed (caller disposes). */
function observe(pass: (observer: BNObserver) => void, stopAfter?: string): Observation[] {
  const observer = collectObservations(stopAfter);
  tf.tidy(() => pass(observer));
  return observer.observed;
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
    const observed = observe((observer) => net.observe(params, tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]), { source: 'batch', nbs: o.batchSize, eps: o.eps, observer }));
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
 * B = N: the statistics every BN layer would see if all N samples were one batch, without one
 * pass over N samples. One layer at a time in forward order (bnLayers is topological): the layers
 * before it normalize with the full-set statistics already found, so its input no longer depends
 * on how the samples are chunked, and pooling the chunks' moments gives its full-set mean and
 * variance exactly. With one batch the two estimators coincide (count/(count-1) times the biased
 * variance). Two schedules, the same numbers bit for bit (the same ops on the same chunks):
 * - staged, when N samples' activations at two consecutive stages fit in `exactBytes` of memory:
 *   each stage's input for all N samples is kept, so a layer's pass runs only its own stage
 *   (ResNet-56: about 3 forward passes' work instead of 28);
 * - layer by layer otherwise (ImageNet-sized activations): one pass from the input per BN layer,
 *   each ending at that layer (on average half the network).
 */
async function exactFullBatch(net: Network, params: ReadonlyMap<string, tf.Tensor>, set: Split, indices: Int32Array, o: PreciseOptions): Promise<Map<string, PopulationStats>> {
  const n = indices.length;
  const fixed = new Map<string, LayerStats>();
  const out = new Map<string, PopulationStats>();
  const channels = new Map(net.bnLayers.map((l) => [l.name, l.channels]));
  let passesDone = 0; // progress: N samples per BN layer
  /** Pools one layer's chunk moments and fixes the layer with the statistics of one batch of N. */
  const estimateLayer = async (layer: string, chunks: AsyncIterable<{ n: number; run: (ctx: BatchContext) => void }>) => {
    const acc = createEstimator('pooled', channels.get(layer)!);
    let done = 0;
    for await (const c of chunks) {
      // the pass ends at this layer: what comes after it cannot change its statistics
      for (const ob of observe((observer) => c.run({ source: 'batch', nbs: c.n, eps: o.eps, observer, fixed }), layer)) {
        if (ob.layer === layer) acc.add({ mean: ob.mean.dataSync(), variance: ob.variance.dataSync(), count: ob.counts[0] });
        ob.mean.dispose();
        ob.variance.dispose();
      }
      done += c.n;
      o.onProgress?.(passesDone * n + done, n * net.bnLayers.length);
    }
    passesDone++;
    const stats = acc.result();
    out.set(layer, stats);
    // One batch of N normalizes with its biased variance: fix the layer with exactly that.
    const biased = { mean: stats.mean, variance: stats.variance.map((v) => (v * (acc.count - 1)) / acc.count) };
    fixed.set(layer, toPopulation(new Map([[layer, biased]])).get(layer)!);
  };
  const per = Math.max(1, o.forwardBatch);
  try {
    if (stagedBytes(net, params, set, n, o.eps) <= (o.exactBytes ?? EXACT_BYTES)) {
      // Stage inputs of every chunk, in JS memory (not the backend's); starts as the samples.
      let xs: { x: Float32Array; shape: [number, number, number, number] }[] = [];
      for await (const b of passes(set, indices, per, o)) xs.push({ x: b.x, shape: [b.n, b.height, b.width, b.channels] });
      for (const [k, stage] of net.stages.entries()) {
        const chunks = async function* () {
          for (const c of xs) yield { n: c.shape[0], run: (ctx: BatchContext) => void stage.run(params, tf.tensor4d(c.x, c.shape), ctx) };
        };
        for (const layer of stage.bnLayers) await estimateLayer(layer, chunks());
        if (k === net.stages.length - 1) break;
        // every layer of the stage is fixed now: its output is the next stage's input
        xs = xs.map((c) => {
          const y = tf.tidy(() => stage.run(params, tf.tensor4d(c.x, c.shape), { source: 'population', eps: o.eps, population: fixed }));
          const next = { x: y.dataSync() as Float32Array, shape: y.shape };
          y.dispose();
          return next;
        });
      }
    } else {
      for (const layer of net.bnLayers) {
        const chunks = async function* () {
          for await (const b of passes(set, indices, per, o)) yield { n: b.n, run: (ctx: BatchContext) => net.observe(params, tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]), ctx) };
        };
        await estimateLayer(layer.name, chunks());
      }
    }
  } finally {
    for (const s of fixed.values()) (s.mean.dispose(), s.variance.dispose());
  }
  return out;
}

/** Memory the staged B = N schedule may hold in stage activations (N samples, two stages). */
const EXACT_BYTES = 2 * 1024 ** 3;

/** Bytes the staged schedule holds at its peak: N samples' input and output of the largest stage. */
function stagedBytes(net: Network, params: ReadonlyMap<string, tf.Tensor>, set: Split, n: number, eps: number): number {
  const [h, w, c] = [set.height, set.width, set.channels];
  // one sample through the stages, only for the shapes
  const sizes = tf.tidy(() => {
    const out = [h * w * c];
    let y = tf.zeros([1, h, w, c]) as tf.Tensor4D;
    for (const s of net.stages) {
      y = s.run(params, y, { source: 'batch', nbs: 1, eps });
      out.push(y.size);
    }
    return out;
  });
  return 4 * n * Math.max(...sizes.slice(1).map((size, k) => size + sizes[k]));
}

/** The N samples a PreciseBN pass reads: a function of (seed, epoch) only, so it is reproducible. */
export const preciseSamples = (total: number, samples: number, seed: number, epoch: number) =>
  sampleWithoutReplacement(total, Math.min(samples, total), seed * 1000003 + epoch);

/** PreciseBN population statistics as tensors (the caller disposes them), with progress. */
export async function estimatePrecise(net: Network, params: ReadonlyMap<string, tf.Tensor>, split: Split, cfg: Config, r: PreciseRequest, progress?: Progress): Promise<Population> {
  const n = r.indices?.length ?? Math.min(r.samples, split.n);
  // B = N is computed exactly, one BN layer at a time; progress counts those layer passes.
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
