// Seeded randomness shared by initialisation, shuffling, augmentation and sampling: the same
// seed gives the same stream on every platform, which makes runs reproducible and resumable.

/** mulberry32: tiny, fast, good enough for shuffles and augmentation; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes several integers into one 32-bit seed (murmur3 finalizer per step), so nearby inputs give unrelated streams. */
export function hashSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    // Keep high bits of seeds above 2^32 instead of silently dropping them.
    for (const part of [x >>> 0, Math.floor(x / 4294967296) >>> 0]) {
      h = Math.imul(h ^ part, 0x9e3779b1);
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
    }
  }
  return h >>> 0;
}

/** A stream of uniform and normal variates from mulberry32. */
export class Rng {
  private readonly u: () => number;
  private spare: number | null = null;
  constructor(...seed: number[]) {
    this.u = mulberry32(hashSeed(...seed));
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u();
  }
  /** Standard normal (Box-Muller, both variates used). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.u()));
    const t = 2 * Math.PI * this.u();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }
}
