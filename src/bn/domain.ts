// Where statistics come from versus what is evaluated (Table 4's protocol): when both draw on the
// same images, the images used for statistics are left out of the evaluation.

/** Two dataset choices name the same images: same split of the same dataset at the same path. */
export const sameImages = (a: { split: string; data: { name: string; path: string | null } }, b: { split: string; data: { name: string; path: string | null } }): boolean =>
  a.split === b.split && a.data.name === b.data.name && a.data.path === b.data.path;

/** The samples 0..n-1 not in `used`, in order (so statistics and evaluation never share images). */
export function complement(n: number, used: ArrayLike<number>): Int32Array {
  const taken = new Uint8Array(n);
  for (let i = 0; i < used.length; i++) taken[used[i]] = 1;
  return Int32Array.from({ length: n }, (_, i) => i).filter((i) => !taken[i]);
}
