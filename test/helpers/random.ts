// Deterministic test data: one LCG (Numerical Recipes' constants), the same numbers on every
// backend and run, and independent of src/util/rng.ts (a test must not share the generator it checks).

/** Uniform [0, 1): k / 2^32 for the LCG's 32-bit state k. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Uniform [-1, 1): the LCG's numbers times 2 minus 1. */
export function uniform(seed: number): () => number {
  const next = lcg(seed);
  return () => next() * 2 - 1;
}

/** `len` uniform [-1, 1) values from `seed`, each times `scale` plus `shift`, as float32. */
export function rand32(len: number, seed: number, scale = 1, shift = 0): Float32Array {
  const r = uniform(seed);
  return Float32Array.from({ length: len }, () => r() * scale + shift);
}

/** rand32's values in float64 (no rounding to float32). */
export function rand64(len: number, seed: number, scale = 1, shift = 0): Float64Array {
  const r = uniform(seed);
  return Float64Array.from({ length: len }, () => r() * scale + shift);
}

/** Deterministic uniform [-1, 1) float32 values for a shape. */
export function uniformData(shape: readonly number[], seed: number): Float32Array {
  const next = uniform(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => next());
}
