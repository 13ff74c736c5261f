// BatchNorm with a choosable "batch": the one place where the paper's question is answered.
// Normalization only; the per-channel affine (gamma, beta) is a separate layer (affine()).
import * as tf from '@tensorflow/tfjs-core';

/**
 * Where a forward pass takes its normalization statistics from:
 * - `batch`: statistics of groups of `nbs` samples, each group normalized on its own (training,
 *   PreciseBN, and evaluation with mini-batch statistics).
 * - `population`: fixed population statistics (inference with EMA or PreciseBN estimates; FrozenBN
 *   training, where gradients flow through the fixed normalization).
 */
export type StatsSource = 'batch' | 'population';

/** Population statistics of one BN layer, as tensors (variance is the unbiased estimate). */
export interface LayerStats {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

export interface BNContext {
  source: StatsSource;
  /** Normalization batch size for `batch`; the last group may be smaller when N is not a multiple. */
  nbs: number;
  eps: number;
  /** Per-layer population statistics, required for `population`. */
  population?: ReadonlyMap<string, LayerStats>;
  /** Collect the batch statistics each layer observed (kept tensors; the caller disposes them). */
  observe?: boolean;
}

/** What one BN layer observed in one forward pass: per group g and channel c. */
export interface Observation {
  layer: string;
  mean: tf.Tensor2D; // [G, C]
  variance: tf.Tensor2D; // [G, C], biased
  /** Elements per channel behind each group's statistics (group size * H * W). */
  counts: number[];
}

/**
 * Normalize x [N,H,W,C] over independent groups of `nbs` samples, with an analytic backward
 * (d/dx through the batch mean and variance), which is as fast as autodiff and keeps fewer
 * intermediates alive on the tape.
 */
function groupNormalize(x: tf.Tensor4D, groupSize: number, eps: number): { y: tf.Tensor4D; mean: tf.Tensor2D; variance: tf.Tensor2D } {
  const [n, h, w, c] = x.shape;
  const g = n / groupSize;
  let mean!: tf.Tensor3D;
  let variance!: tf.Tensor3D;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const xg = tf.reshape(xIn, [g, groupSize * h * w, c]) as tf.Tensor3D;
    const m = tf.moments(xg, 1, true);
    mean = tf.keep(m.mean as tf.Tensor3D);
    variance = tf.keep(m.variance as tf.Tensor3D);
    const rstd = tf.rsqrt(tf.add(m.variance, eps));
    const xhat = tf.mul(tf.sub(xg, m.mean), rstd);
    save([xhat, rstd]);
    return {
      value: tf.reshape(xhat, x.shape),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, rs] = saved;
        const dyg = tf.reshape(dy, [g, groupSize * h * w, c]);
        const meanDy = tf.mean(dyg, 1, true);
        const meanDyXhat = tf.mean(tf.mul(dyg, xh), 1, true);
        const dx = tf.mul(rs, tf.sub(tf.sub(dyg, meanDy), tf.mul(xh, meanDyXhat)));
        return tf.reshape(dx, x.shape);
      },
    };
  });
  const y = f(x) as tf.Tensor4D;
  const out = { y, mean: tf.reshape(mean, [g, c]) as tf.Tensor2D, variance: tf.reshape(variance, [g, c]) as tf.Tensor2D };
  mean.dispose();
  variance.dispose();
  return out;
}

/** BN normalization of x [N,H,W,C] (or [N,C]) under the context's statistics source. */
export function batchNorm(x: tf.Tensor, layer: string, ctx: BNContext, observed?: Observation[]): tf.Tensor {
  const x4 = (x.rank === 2 ? tf.reshape(x, [x.shape[0]!, 1, 1, x.shape[1]!]) : x) as tf.Tensor4D;
  const [n, h, w] = x4.shape;
  if (ctx.source === 'population') {
    const pop = ctx.population?.get(layer);
    if (!pop) throw new Error(`BN layer ${layer}: no population statistics were given`);
    const y = tf.mul(tf.sub(x4, pop.mean), tf.rsqrt(tf.add(pop.variance, ctx.eps)));
    return x.rank === 2 ? tf.reshape(y, x.shape) : y;
  }
  // Groups of nbs samples; a remainder (e.g. the last eval batch) forms one smaller group.
  const nbs = Math.min(ctx.nbs, n);
  const full = Math.floor(n / nbs) * nbs;
  const parts = full === n ? [x4] : tf.split(x4, [full, n - full], 0);
  const ys: tf.Tensor4D[] = [];
  parts.forEach((p, i) => {
    const size = i === 0 ? nbs : n - full;
    const r = groupNormalize(p as tf.Tensor4D, size, ctx.eps);
    ys.push(r.y);
    if (ctx.observe && observed) {
      const groups = p.shape[0] / size;
      observed.push({ layer, mean: tf.keep(r.mean), variance: tf.keep(r.variance), counts: new Array(groups).fill(size * h * w) });
    } else {
      r.mean.dispose();
      r.variance.dispose();
    }
  });
  const y = ys.length === 1 ? ys[0] : tf.concat(ys, 0);
  return x.rank === 2 ? tf.reshape(y, x.shape) : y;
}

/** The per-channel affine that follows normalization: an ordinary layer trained by SGD. */
export function affine(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor {
  return tf.add(tf.mul(x, gamma), beta);
}
