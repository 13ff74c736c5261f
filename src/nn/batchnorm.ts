// BatchNorm with a choosable "batch": the one place where the paper's question is answered.
// Normalization only; the per-channel affine (gamma, beta) is a separate layer (affine()).
import * as tf from '@tensorflow/tfjs-core';
import { addRelu } from './fused.js';
import { ADD_RELU, BN_APPLY, BN_APPLY_ADD_RELU, BN_BACKWARD, BN_FORWARD, hasKernel as hasFused, runKernel as run } from '../backend/kernels/names.js';

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
  /** `population` with each layer's statistics and affine already folded (foldPopulation), so a
   *  pass over many batches computes them once (evaluation); absent layers are folded per call. */
  folded?: ReadonlyMap<string, Folded>;
  /** Collect the batch statistics each layer observed (kept tensors; the caller disposes them). */
  observe?: boolean;
  /** Layers that normalize with these statistics whatever `source` says (exact B = N PreciseBN
   *  fixes the layers below the one it estimates). */
  fixed?: ReadonlyMap<string, LayerStats>;
  /** End the forward pass (throwing StopForward) once this layer's statistics are observed:
   *  exact B = N PreciseBN estimates one layer per pass and needs nothing after it. */
  stopAfter?: string;
}

/** Thrown by the layer ctx.stopAfter names, after its observation; tf.tidy frees the pass. */
export class StopForward extends Error {}

/** The context a layer actually uses: `population` with ctx.fixed's statistics for fixed layers. */
const forLayer = (ctx: BNContext, layer: string): BNContext => (ctx.fixed?.has(layer) ? { ...ctx, source: 'population', population: ctx.fixed, folded: undefined } : ctx);

/** Population normalization and affine as one per-channel map y = x*scale + shift. */
export type Folded = { scale: tf.Tensor1D; shift: tf.Tensor1D };

/** scale = gamma / sqrt(var + eps), shift = beta - mean*scale: the ops every population pass
 *  uses, whether folded once per evaluation or per call, so both give the same bits. */
export function foldPopulation(gamma: tf.Tensor1D, beta: tf.Tensor1D, pop: LayerStats, eps: number): Folded {
  const scale = tf.mul(gamma, tf.rsqrt(tf.add(pop.variance, eps))) as tf.Tensor1D;
  return { scale, shift: tf.sub(beta, tf.mul(pop.mean, scale)) as tf.Tensor1D };
}

/** Whether a gradient tape is recording (training, FrozenBN): else no op needs a gradient. */
const recording = (): boolean => (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();

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
  if (x.dtype === 'float32' && hasFused(BN_FORWARD)) return fusedGroupNormalize(x, x.shape[0] / groupSize, eps);
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

/**
 * The same as the tf-op path above (and optionally the affine and a ReLU after it), as two
 * fused kernels: one pass for the moments and one for the output forward; two passes backward,
 * recomputing xhat from x (so only x and the [G,C] statistics are kept for the backward).
 */
function fusedGroupNormalize<T extends tf.Tensor>(
  x: T, groups: number, eps: number, affine?: { gamma: tf.Tensor1D; beta: tf.Tensor1D; relu: boolean },
): { y: T; mean: tf.Tensor2D; variance: tf.Tensor2D } {
  let mean!: tf.Tensor2D;
  let variance!: tf.Tensor2D;
  const attrs = { groups, eps, relu: affine?.relu ?? false };
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const [xIn, gamma, beta] = args.slice(0, -1) as tf.Tensor[];
    const [y, m, v] = run(BN_FORWARD, affine ? { x: xIn, gamma, beta } : { x: xIn }, attrs) as tf.Tensor[];
    mean = tf.keep(m) as tf.Tensor2D;
    variance = tf.keep(v) as tf.Tensor2D;
    save(affine ? [xIn, m, v, gamma, beta] : [xIn, m, v]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ms, vs, gs, bs] = saved;
        const [dx, dgamma, dbeta] = run(BN_BACKWARD, affine ? { dy, x: xs, mean: ms, variance: vs, gamma: gs, beta: bs } : { dy, x: xs, mean: ms, variance: vs }, attrs) as tf.Tensor[];
        if (affine) return [dx, dgamma, dbeta];
        dgamma.dispose();
        dbeta.dispose();
        return dx;
      },
    };
  });
  const y = (affine ? f(x, affine.gamma, affine.beta) : f(x)) as T;
  return { y, mean, variance };
}

/**
 * normalize -> affine (-> ReLU) in one: the same result as `affine(batchNorm(...))` (then
 * `tf.relu`), computed by fused kernels where the backend has them (wasm), else by exactly that
 * composition. Statistics are observed as in batchNorm().
 */
export function batchNormAffine(
  x: tf.Tensor, layer: string, ctxIn: BNContext, gamma: tf.Tensor1D, beta: tf.Tensor1D, relu: boolean, observed?: Observation[],
): tf.Tensor {
  const ctx = forLayer(ctxIn, layer);
  const composed = () => {
    const y = affine(batchNorm(x, layer, ctx, observed), gamma, beta);
    return relu ? tf.relu(y) : y;
  };
  if (x.dtype !== 'float32' || x.rank < 2 || !hasFused(BN_FORWARD)) return composed();
  const n = x.shape[0];
  const rows = x.size / x.shape[x.rank - 1];
  if (ctx.source === 'population') {
    // y = act(x*scale + shift): one pass. Gradients (FrozenBN training) by the chain rule in tf ops.
    const { scale, shift } = foldedFor(ctx, layer, gamma, beta);
    if (!recording()) return run(BN_APPLY, { x, scale, shift }, { relu }) as tf.Tensor;
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args[3] as tf.GradSaveFunc;
      const [xIn, sc, sh] = args as tf.Tensor[];
      const y = run(BN_APPLY, { x: xIn, scale: sc, shift: sh }, { relu }) as tf.Tensor;
      save([xIn, sc, y]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, [xs, scs, ys]: tf.Tensor[]) => {
          const dz = relu ? tf.mul(dy, tf.step(ys)) : dy;
          const axes = [...Array(xs.rank - 1).keys()];
          return [tf.mul(dz, scs), tf.sum(tf.mul(dz, xs), axes), tf.sum(dz, axes)];
        },
      };
    });
    return f(x, scale, shift);
  }
  const nbs = Math.min(ctx.nbs, n);
  if (n % nbs !== 0) return composed(); // a remainder group: rare (last eval batch)
  const groups = n / nbs;
  const perSample = rows / n;
  const r = fusedGroupNormalize(x, groups, ctx.eps, { gamma, beta, relu });
  if (ctx.observe && observed) {
    observed.push({ layer, mean: r.mean, variance: r.variance, counts: new Array(groups).fill(nbs * perSample) });
    if (ctx.stopAfter === layer) throw new StopForward(layer);
  } else {
    r.mean.dispose();
    r.variance.dispose();
  }
  return r.y;
}

function foldedFor(ctx: BNContext, layer: string, gamma: tf.Tensor1D, beta: tf.Tensor1D): Folded {
  const folded = ctx.folded?.get(layer);
  if (folded) return folded;
  const pop = ctx.population?.get(layer);
  if (!pop) throw new Error(`BN layer ${layer}: no population statistics were given`);
  return foldPopulation(gamma, beta, pop, ctx.eps);
}

/**
 * The end of a residual block: relu(BN(x) + shortcut()), BN with its affine. At inference with
 * population statistics one fused pass where the backend has it; otherwise (training, batch
 * statistics) exactly batchNormAffine then addRelu, with the shortcut computed between the two
 * as before (the order BN layers are observed in). The same bits either way.
 */
export function batchNormAffineAddRelu(
  x: tf.Tensor, layer: string, ctxIn: BNContext, gamma: tf.Tensor1D, beta: tf.Tensor1D, shortcut: () => tf.Tensor, observed?: Observation[],
): tf.Tensor {
  const ctx = forLayer(ctxIn, layer);
  // the fused kernel replaces BnlabBNApply and BnlabAddRelu: only where both would have run
  const fusable = ctx.source === 'population' && x.dtype === 'float32' && hasFused(BN_APPLY_ADD_RELU) && hasFused(ADD_RELU) && !recording();
  if (!fusable) {
    const y = batchNormAffine(x, layer, ctxIn, gamma, beta, false, observed);
    return addRelu(y, shortcut());
  }
  const z = shortcut();
  if (z.dtype !== 'float32' || !tf.util.arraysEqual(z.shape, x.shape)) return addRelu(batchNormAffine(x, layer, ctxIn, gamma, beta, false, observed), z);
  const { scale, shift } = foldedFor(ctx, layer, gamma, beta);
  return run(BN_APPLY_ADD_RELU, { x, z, scale, shift }) as tf.Tensor;
}

/** BN normalization of x [N,H,W,C] (or [N,C]) under the context's statistics source. */
export function batchNorm(x: tf.Tensor, layer: string, ctxIn: BNContext, observed?: Observation[]): tf.Tensor {
  const ctx = forLayer(ctxIn, layer);
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
      if (ctx.stopAfter === layer && i === parts.length - 1) throw new StopForward(layer);
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
