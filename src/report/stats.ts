// The statistics behind the report's verdicts, in float64 and free of any run data: a paired
// per-seed difference with its Student-t interval, the verdict rule, and Welch's interval for two
// unpaired groups (bnlab vs the PyTorch twin: independent initialisations, nothing to pair).

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n - 1); 0 for fewer than two values. */
export const sd = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

/** ln Γ(x), Lanczos (g = 7, 9 terms): about 15 significant digits for x > 0. */
function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The regularized incomplete beta I_x(a, b), by its continued fraction (Lentz). */
function betaInc(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // the fraction converges fast only below the mean; above it use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
  if (x > (a + 1) / (a + b + 2)) return 1 - betaInc(1 - x, b, a);
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x)) / a;
  const tiny = 1e-300;
  let f = 1, c = 1, d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = Math.floor(i / 2);
    const num = i === 0 ? 1 : i % 2 === 0 ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)) : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    d = 1 / (Math.abs(d) < tiny ? tiny : d);
    c = 1 + num / c;
    if (Math.abs(c) < tiny) c = tiny;
    f *= c * d;
    if (Math.abs(1 - c * d) < 1e-15) break;
  }
  return front * (f - 1);
}

/** Student-t CDF with df degrees of freedom (df may be fractional, as Welch's is). */
export function tCdf(t: number, df: number): number {
  const tail = 0.5 * betaInc(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t (p in (0.5, 1)), by bisection on the CDF to float64 precision. */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0.5 && p < 1) || !(df > 0)) throw new RangeError(`tQuantile(${p}, ${df}): p in (0.5, 1), df > 0`);
  let lo = 0, hi = 1;
  while (tCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = (lo + hi) / 2;
    tCdf(mid, df) < p ? (lo = mid) : (hi = mid);
  }
  return (lo + hi) / 2;
}

export interface Interval {
  mean: number;
  std: number; // of the values (paired: of the per-seed differences)
  n: number;
  t: number | null; // the 97.5% t quantile used; null with one value (no interval)
  lo: number | null;
  hi: number | null;
}

/** Mean with its two-sided 95% t-interval, mean ± t(0.975, n-1)·std/√n. */
export function tInterval(xs: number[]): Interval {
  const n = xs.length;
  const m = mean(xs), s = sd(xs);
  if (n < 2) return { mean: m, std: s, n, t: null, lo: null, hi: null };
  const t = tQuantile(0.975, n - 1);
  const half = (t * s) / Math.sqrt(n);
  return { mean: m, std: s, n, t, lo: m - half, hi: m + half };
}

export const VERDICTS = ['holds', 'does not hold', 'undecided'] as const;
export type Verdict = (typeof VERDICTS)[number];
/**
 * The report's rule: "holds" when the interval excludes zero on the side the paper's difference
 * is on (sign +1 or -1), "does not hold" when it excludes zero on the other side, else "undecided"
 * (an interval touching zero, or none: one seed).
 */
export function verdict(iv: Interval, sign: 1 | -1): Verdict {
  if (iv.lo === null || iv.hi === null) return 'undecided';
  const [lo, hi] = sign > 0 ? [iv.lo, iv.hi] : [-iv.hi, -iv.lo];
  return lo > 0 ? 'holds' : hi < 0 ? 'does not hold' : 'undecided';
}

export interface Welch {
  diff: number; // mean(b) - mean(a)
  df: number | null;
  lo: number | null;
  hi: number | null;
}
/** mean(b) - mean(a) with Welch's 95% interval (Welch–Satterthwaite df); none when a side has one value or no spread. */
export function welch(a: number[], b: number[]): Welch {
  const diff = mean(b) - mean(a);
  const [va, vb] = [sd(a) ** 2 / a.length, sd(b) ** 2 / b.length];
  if (a.length < 2 || b.length < 2 || va + vb === 0) return { diff, df: null, lo: null, hi: null };
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const half = tQuantile(0.975, df) * Math.sqrt(va + vb);
  return { diff, df, lo: diff - half, hi: diff + half };
}
