// The composition of each NBS group: which samples BatchNorm normalizes together. 'random' is a
// shuffle; 'classes' draws every group from K classes with NBS/K samples of each (the paper's
// "information leakage within a batch", Fig. 8: a model trained on such groups learns to read the
// pattern through the batch statistics). An epoch's order is consecutive NBS groups, so every
// other part of the pipeline (total batch, micro-batches of whole groups, ghost groups,
// prefetch, resume mid-epoch) slices it exactly as it slices a shuffle.
import type { Config } from '../config/schema.js';
import { hashSeed, mulberry32, permutation } from '../data/loader.js';

export type CompositionKind = Config['bn']['composition'];

export interface Composition {
  kind: CompositionKind;
  /** 'classes': classes per NBS group (K); NBS must be a multiple of it. */
  classes: number;
  /** Samples per group (NBS). */
  nbs: number;
}

/** The training composition a config asks for. */
export const compositionOf = (cfg: Pick<Config, 'bn'>): Composition => ({ kind: cfg.bn.composition, classes: cfg.bn.composition_classes, nbs: cfg.bn.nbs });

/** Why a composition cannot be built for these labels (null: it can). */
export function compositionProblem(c: Composition, numClasses: number): string | null {
  if (c.kind === 'random') return null;
  if (c.nbs % c.classes !== 0) return `bn.composition_classes ${c.classes} does not divide NBS ${c.nbs}: each group takes NBS/K samples of each of its K classes`;
  if (c.classes > numClasses) return `bn.composition_classes ${c.classes} exceeds the dataset's ${numClasses} classes`;
  return null;
}

/**
 * One epoch's sample order: NBS groups one after another. Deterministic in (seed, epoch).
 *
 * 'classes': each class is shuffled and cut into pieces of m = NBS/K samples (a class's last
 * n_c mod m samples sit out this epoch: a different few each epoch). Groups are then made
 * greedily from the K classes with the most pieces left (ties broken at random), which uses every
 * piece when classes are equal in size and leaves pieces only of the largest classes otherwise
 * (those that outnumber the other K-1 together). Groups are shuffled, and the samples in each.
 * The length is the same every epoch: it depends on the class sizes only.
 */
export function composeEpoch(labels: Int32Array, c: Composition, seed: number, epoch: number): Int32Array {
  if (c.kind === 'random') return permutation(labels.length, seed, epoch);
  const m = c.nbs / c.classes;
  const rng = mulberry32(hashSeed(seed, epoch, 0xc1a55));
  const byClass = new Map<number, number[]>();
  const shuffled = permutation(labels.length, seed, epoch);
  for (const i of shuffled) {
    const list = byClass.get(labels[i]) ?? [];
    list.push(i);
    byClass.set(labels[i], list);
  }
  // Pieces of each class, taken from the end of its list.
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const left = new Map(classes.map((k) => [k, Math.floor(byClass.get(k)!.length / m)]));
  const groups: number[][] = [];
  for (;;) {
    const top = topClasses(classes, left, c.classes, rng);
    if (!top) break;
    const group: number[] = [];
    for (const k of top) {
      const p = left.get(k)! - 1;
      left.set(k, p);
      group.push(...byClass.get(k)!.slice(p * m, (p + 1) * m));
    }
    groups.push(group);
  }
  const order = new Int32Array(groups.length * c.nbs);
  permutation(groups.length, seed, epoch ^ 0x9e37).forEach((g, at) => {
    const group = groups[g];
    for (let i = group.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [group[i], group[j]] = [group[j], group[i]];
    }
    order.set(group, at * c.nbs);
  });
  return order;
}

/**
 * The K classes with the most pieces left, ties broken by a fresh random draw per class (one
 * draw for each class with pieces left, in class order); null when fewer than K have any. A
 * running top-K instead of a sort keeps an ImageNet-sized epoch (40,000 groups of 1000 classes) fast.
 */
function topClasses(classes: number[], left: Map<number, number>, K: number, rng: () => number): number[] | null {
  const top: { k: number; n: number; tie: number }[] = [];
  let seen = 0;
  for (const k of classes) {
    const n = left.get(k)!;
    if (n === 0) continue;
    seen++;
    const tie = rng();
    if (top.length === K && (n < top[K - 1].n || (n === top[K - 1].n && tie > top[K - 1].tie))) continue;
    let at = top.length;
    while (at > 0 && (top[at - 1].n < n || (top[at - 1].n === n && top[at - 1].tie > tie))) at--;
    top.splice(at, 0, { k, n, tie });
    if (top.length > K) top.pop();
  }
  return seen < K ? null : top.map((t) => t.k);
}

/**
 * Samples an epoch of `composeEpoch` holds (fixed for given labels): NBS times the most groups of
 * K distinct classes the pieces allow, the largest t with sum_k min(pieces_k, t) >= K t (which
 * the greedy grouping reaches), without composing an epoch.
 */
export function composedLength(labels: Int32Array, c: Composition): number {
  if (c.kind === 'random') return labels.length;
  const m = c.nbs / c.classes;
  const sizes = new Map<number, number>();
  for (const y of labels) sizes.set(y, (sizes.get(y) ?? 0) + 1);
  const pieces = [...sizes.values()].map((n) => Math.floor(n / m));
  const fits = (t: number) => pieces.reduce((a, p) => a + Math.min(p, t), 0) >= c.classes * t;
  let lo = 0;
  let hi = Math.floor(pieces.reduce((a, p) => a + p, 0) / c.classes);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo * c.nbs;
}
