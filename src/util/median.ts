/** The median as statistics.median and numpy give it: the mean of the two middle values for an
 *  even count (bench figures sit beside the PyTorch peer's, computed so). NaN when empty. */
export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
