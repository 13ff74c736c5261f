// The BatchNorm contract (docs/bn-contract.md) in float64: what every implementation computes —
// the tf-op composition and the fused kernels in src/nn/batchnorm.ts, the wasm/native kernels
// (native/bn.c, native/addon/bn.cc) and the CUDA ones (native/cuda/kernels). Tests compare each
// against these functions; none of them calls bnlab code.

/** NHWC shape. */
export type Shape = [number, number, number, number];

/** Group boundaries [start, end) in samples: groups of `nbs`, a remainder forms one smaller group. */
export function groupsOf(n: number, nbs: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += nbs) out.push([s, Math.min(n, s + nbs)]);
  return out;
}

export interface Affine {
  gamma: ArrayLike<number>;
  beta: ArrayLike<number>;
  relu: boolean;
}

/**
 * Batch statistics: each group of `nbs` samples normalized by its own per-channel mean and
 * biased variance (divisor = elements per channel in the group), eps inside the square root;
 * then y = gamma*xhat + beta, then ReLU when asked. Returns y, each group's mean and biased
 * variance [g][c] and each group's element count per channel (what an observer receives).
 */
export function bnBatchForward(x: ArrayLike<number>, [n, h, w, c]: Shape, nbs: number, eps: number, affine?: Affine) {
  const y = new Float64Array(x.length);
  const means: number[][] = [];
  const vars: number[][] = [];
  const counts: number[] = [];
  const per = h * w * c;
  for (const [a, b] of groupsOf(n, Math.min(nbs, n))) {
    const m = new Array(c).fill(0);
    const v = new Array(c).fill(0);
    const cnt = (b - a) * h * w;
    for (let i = a * per; i < b * per; i++) m[i % c] += x[i] / cnt;
    for (let i = a * per; i < b * per; i++) v[i % c] += (x[i] - m[i % c]) ** 2 / cnt;
    for (let i = a * per; i < b * per; i++) {
      const k = i % c;
      const z = (x[i] - m[k]) / Math.sqrt(v[k] + eps);
      y[i] = affine ? act(affine.gamma[k] * z + affine.beta[k], affine.relu) : z;
    }
    means.push(m);
    vars.push(v);
    counts.push(cnt);
  }
  return { y, means, vars, counts };
}

/**
 * Gradients of sum(y * dy) for bnBatchForward with an affine: through the group's mean and
 * variance (training), dgamma and dbeta summed over every group.
 */
export function bnBatchBackward(x: ArrayLike<number>, [n, h, w, c]: Shape, nbs: number, eps: number, affine: Affine, dy: ArrayLike<number>) {
  const dx = new Float64Array(x.length);
  const dgamma = new Float64Array(c);
  const dbeta = new Float64Array(c);
  const per = h * w * c;
  const { means, vars } = bnBatchForward(x, [n, h, w, c], nbs, eps);
  groupsOf(n, Math.min(nbs, n)).forEach(([a, b], g) => {
    const [m, v] = [means[g], vars[g]];
    const cnt = (b - a) * h * w;
    const xh = (i: number) => (x[i] - m[i % c]) / Math.sqrt(v[i % c] + eps);
    const s1 = new Float64Array(c);
    const s2 = new Float64Array(c);
    const dz = new Float64Array(x.length);
    for (let i = a * per; i < b * per; i++) {
      const k = i % c;
      const z = affine.gamma[k] * xh(i) + affine.beta[k];
      dz[i] = affine.relu && z <= 0 ? 0 : dy[i];
      s1[k] += dz[i];
      s2[k] += dz[i] * xh(i);
    }
    for (let k = 0; k < c; k++) (dbeta[k] += s1[k], (dgamma[k] += s2[k]));
    for (let i = a * per; i < b * per; i++) {
      const k = i % c;
      dx[i] = ((affine.gamma[k] / Math.sqrt(v[k] + eps)) * (dz[i] - s1[k] / cnt - (xh(i) * s2[k]) / cnt));
    }
  });
  return { dx, dgamma, dbeta };
}

/**
 * Population statistics: y = (x - mean) / sqrt(variance + eps) with the given per-channel
 * statistics (the variance as stored: EMA and PreciseBN store the unbiased estimate), then the
 * affine and ReLU when asked. Gradients flow through x, gamma and beta only.
 */
export function bnPopulationForward(x: ArrayLike<number>, c: number, mean: ArrayLike<number>, variance: ArrayLike<number>, eps: number, affine?: Affine): Float64Array {
  return Float64Array.from({ length: x.length }, (_, i) => {
    const k = i % c;
    const z = (x[i] - mean[k]) / Math.sqrt(variance[k] + eps);
    return affine ? act(affine.gamma[k] * z + affine.beta[k], affine.relu) : z;
  });
}

const act = (z: number, relu: boolean) => (relu ? Math.max(0, z) : z);
