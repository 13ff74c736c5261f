// BatchNorm with a choosable "batch": the one place where the paper's question is answered.
// Normalization only; the per-channel affine (gamma, beta) is a separate layer (affine()).
import * as tf from '@tensorflow/tfjs-core';
import { addRelu } from './fused.js';
import { ADD_RELU, BN_APPLY, BN_APPLY_ADD_RELU, BN_BACKWARD, BN_FORWARD, hasKernel as hasFused, runKernel as run } from '../backend/kernels/names.js';

/** Population statistics of one BN layer, as tensors (variance is the unbiased estimate). */
export interface LayerStats {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
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
 * Receives the batch statistics each BN layer computes, in forward order (kept tensors: the
 * observer owns them). `done` tells the network it needs nothing more from this pass, so a
 * statistics-only pass (Network.observe) returns there.
 */
export interface BNObserver {
  observe(o: Observation): void;
  readonly done: boolean;
}

/**
 * Where a forward pass takes its normalization statistics from:
 * - `batch`: statistics of groups of `nbs` samples, each group normalized on its own (training,
 *   PreciseBN, and evaluation with mini-batch statistics); the last group may be smaller when N is
 *   not a multiple. `fixed` layers normalize with those population statistics instead (exact
 *   B = N PreciseBN fixes the layers below the one it estimates).
 * - `population`: fixed population statistics (inference with EMA or PreciseBN estimates; FrozenBN
 *   training, where gradients flow through the fixed normalization). `folded`: some layers'
 *   statistics and affine already folded (foldPopulation), so a pass over many batches computes
 *   them once (evaluation); absent layers are folded per call.
 * The math each implementation computes (TS ops, the wasm and CUDA kernels) is docs/bn-contract.md.
 */
export type BNContext =
  | { source: 'batch'; nbs: number; eps: number; observer?: BNObserver; fixed?: ReadonlyMap<string, LayerStats> }
  | { source: 'population'; eps: number; population: ReadonlyMap<string, LayerStats>; folded?: ReadonlyMap<string, Folded> };
export type StatsSource = BNContext['source'];

/**
 * An observer that keeps every observation in `observed`; with `stopAfter`, done once that layer
 * is observed (later layers' statistics, computed before the pass returns, are freed).
 */
export function collectObservations(stopAfter?: string): BNObserver & { observed: Observation[] } {
  const observed: Observation[] = [];
  let done = false;
  return {
    observed,
    get done() {
      return done;
    },
    observe(o) {
      if (done && o.layer !== stopAfter) return void (o.mean.dispose(), o.variance.dispose());
      observed.push(o);
      if (o.layer === stopAfter) done = true;
    },
  };
}

/** Whether a statistics-only pass may return now (its observer has what it needs). */
export const passDone = (ctx: BNContext): boolean => ctx.source === 'batch' && ctx.observer?.done === true;

/** The context a layer actually uses: `population` with ctx.fixed's statistics for fixed layers. */
const forLayer = (ctx: BNContext, layer: string): BNContext =>
  ctx.source === 'batch' && ctx.fixed?.has(layer) ? { source: 'population', eps: ctx.eps, population: ctx.fixed } : ctx;

/**
 * The one place fused kernels are chosen: float32 input of rank >= 2 on a backend that registered
 * every kernel named (wasm, cuda); everywhere else the composition of tf ops, with the same math.
 */
const fusable = (x: tf.Tensor, ...kernels: string[]): boolean => x.dtype === 'float32' && x.rank >= 2 && kernels.every(hasFused);

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

/**
 * Normalize x [N,H,W,C] over independent groups of `nbs` samples, with an analytic backward
 * (d/dx through the batch mean and variance), which is as fast as autodiff and keeps fewer
 * intermediates alive on the tape.
 */
function groupNormalize(x: tf.Tensor4D, groupSize: number, eps: number): { y: tf.Tensor4D; mean: tf.Tensor2D; variance: tf.Tensor2D } {
  if (fusable(x, BN_FORWARD)) return fusedGroupNormalize(x, x.shape[0] / groupSize, eps);
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
export function batchNormAffine(x: tf.Tensor, layer: string, ctxIn: BNContext, gamma: tf.Tensor1D, beta: tf.Tensor1D, relu: boolean): tf.Tensor {
  const ctx = forLayer(ctxIn, layer);
  const composed = () => {
    const y = affine(batchNorm(x, layer, ctx), gamma, beta);
    return relu ? tf.relu(y) : y;
  };
  if (!fusable(x, ctx.source === 'population' ? BN_APPLY : BN_FORWARD)) return composed();
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
  if (ctx.observer) ctx.observer.observe({ layer, mean: r.mean, variance: r.variance, counts: new Array(groups).fill(nbs * perSample) });
  else {
    r.mean.dispose();
    r.variance.dispose();
  }
  return r.y;
}

function foldedFor(ctx: Extract<BNContext, { source: 'population' }>, layer: string, gamma: tf.Tensor1D, beta: tf.Tensor1D): Folded {
  const folded = ctx.folded?.get(layer);
  if (folded) return folded;
  const pop = ctx.population.get(layer);
  if (!pop) throw new Error(`BN layer ${layer}: no population statistics were given`);
  return foldPopulation(gamma, beta, pop, ctx.eps);
}

/**
 * The end of a residual block: relu(BN(x) + shortcut()), BN with its affine. At inference with
 * population statistics one fused pass where the backend has it; otherwise (training, batch
 * statistics) exactly batchNormAffine then addRelu, with the shortcut computed between the two
 * as before (the order BN layers are observed in). The same bits either way.
 */
export function batchNormAffineAddRelu(x: tf.Tensor, layer: string, ctxIn: BNContext, gamma: tf.Tensor1D, beta: tf.Tensor1D, shortcut: () => tf.Tensor): tf.Tensor {
  const ctx = forLayer(ctxIn, layer);
  // the fused kernel replaces BnlabBNApply and BnlabAddRelu: only where both would have run
  if (ctx.source !== 'population' || recording() || !fusable(x, BN_APPLY, BN_APPLY_ADD_RELU, ADD_RELU)) {
    const y = batchNormAffine(x, layer, ctxIn, gamma, beta, false);
    return addRelu(y, shortcut());
  }
  const z = shortcut();
  if (!fusable(z) || !tf.util.arraysEqual(z.shape, x.shape)) return addRelu(batchNormAffine(x, layer, ctxIn, gamma, beta, false), z);
  const { scale, shift } = foldedFor(ctx, layer, gamma, beta);
  return run(BN_APPLY_ADD_RELU, { x, z, scale, shift }) as tf.Tensor;
}

/** BN normalization of x [N,H,W,C] (or [N,C]) under the context's statistics source. */
export function batchNorm(x: tf.Tensor, layer: string, ctxIn: BNContext): tf.Tensor {
  const ctx = forLayer(ctxIn, layer);
  const x4 = (x.rank === 2 ? tf.reshape(x, [x.shape[0]!, 1, 1, x.shape[1]!]) : x) as tf.Tensor4D;
  const [n, h, w] = x4.shape;
  if (ctx.source === 'population') {
    const pop = ctx.population.get(layer);
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
    if (ctx.observer) {
      const groups = p.shape[0] / size;
      ctx.observer.observe({ layer, mean: tf.keep(r.mean), variance: tf.keep(r.variance), counts: new Array(groups).fill(size * h * w) });
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
