// Deterministic batching and augmentation in plain JS: the order and every crop/flip are functions of
// (seed, epoch, image index) only, so runs are reproducible and a resumed run sees the same batches.
import type { Batch, ImageSet } from './types.js';
import { hashSeed, mulberry32 } from '../util/rng.js';

export { hashSeed, mulberry32 };

export type { Batch } from './types.js';

export interface BatchOptions {
  augment: boolean;
  pad_crop: number;
  flip: boolean;
  seed: number;
  epoch: number;
  mean: number[];
  std: number[];
}

export function permutation(n: number, seed: number, epoch: number): Int32Array {
  const rng = mulberry32(hashSeed(seed, epoch, 0x5eed));
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

/** k distinct indices from [0, n), in random order (partial Fisher-Yates). */
export function sampleWithoutReplacement(n: number, k: number, seed: number): Int32Array {
  if (!(k >= 0 && k <= n)) throw new Error(`sampleWithoutReplacement: cannot draw ${k} of ${n}`);
  const rng = mulberry32(hashSeed(seed, 0x5a3e1e));
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng() * (n - i));
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p.slice(0, k);
}

export function makeBatch(set: ImageSet, indices: ArrayLike<number>, opts: BatchOptions): Batch {
  const { height: H, width: W, channels: C } = set;
  const n = indices.length;
  if (opts.mean.length !== C || opts.std.length !== C) {
    throw new Error(`makeBatch: mean/std have ${opts.mean.length}/${opts.std.length} entries for ${C} channels`);
  }
  // One lookup table per channel turns normalization into a table read.
  const lut = new Float32Array(256 * C);
  for (let c = 0; c < C; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - opts.mean[c]) / opts.std[c];
  const x = new Float32Array(n * H * W * C);
  const y = new Int32Array(n);
  const hwc = H * W * C;
  const p = opts.augment ? opts.pad_crop : 0;
  for (let b = 0; b < n; b++) {
    const idx = indices[b];
    if (!(idx >= 0 && idx < set.n)) throw new Error(`makeBatch: index ${idx} outside 0..${set.n - 1}`);
    y[b] = set.labels[idx];
    let dy = 0, dx = 0, flip = false;
    if (opts.augment) {
      // Always draw all three numbers so toggling one augmentation leaves the others unchanged.
      const rng = mulberry32(hashSeed(opts.seed, opts.epoch, idx));
      const oy = Math.floor(rng() * (2 * p + 1));
      const ox = Math.floor(rng() * (2 * p + 1));
      const f = rng() < 0.5;
      dy = oy - p;
      dx = ox - p;
      flip = opts.flip && f;
    }
    const src = idx * hwc;
    const dst = b * hwc;
    // Output (r, c) reads the source at (r + dy, c' + dx), c' = mirrored column when flipping
    // (crop, then flip, as torchvision); outside the image it is raw pixel 0, as zero padding.
    for (let r = 0; r < H; r++) {
      const sr = r + dy;
      for (let col = 0; col < W; col++) {
        const sc = (flip ? W - 1 - col : col) + dx;
        const o = dst + (r * W + col) * C;
        const inside = sr >= 0 && sr < H && sc >= 0 && sc < W;
        const s = src + (sr * W + sc) * C;
        for (let c = 0; c < C; c++) x[o + c] = lut[c * 256 + (inside ? set.images[s + c] : 0)];
      }
    }
  }
  return { x, y, n, height: H, width: W, channels: C };
}

export function* batches(
  set: ImageSet,
  order: ArrayLike<number>,
  batchSize: number,
  opts: BatchOptions & { dropLast: boolean },
): Generator<Batch> {
  if (!(batchSize >= 1)) throw new Error(`batches: batch size must be >= 1, got ${batchSize}`);
  for (let start = 0; start < order.length; start += batchSize) {
    const end = Math.min(start + batchSize, order.length);
    if (end - start < batchSize && opts.dropLast) return;
    yield makeBatch(set, Array.prototype.slice.call(order, start, end) as number[], opts);
  }
}
