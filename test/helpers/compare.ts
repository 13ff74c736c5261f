// Shared by the numerical tests: the largest absolute difference relative to the reference's scale.
import { expect } from 'vitest';

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 1e-12;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

/** A deterministic uniform [0, 1) generator (an LCG: the same numbers on every backend and run). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Deterministic uniform [-1, 1) values for a shape. */
export function uniformData(shape: readonly number[], seed: number): Float32Array {
  const next = lcg(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => next() * 2 - 1);
}
