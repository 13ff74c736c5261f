// PreciseBN aggregation and the EMA step against an independent float64 reference; the median bench figures use.
import { describe, expect, it } from 'vitest';
import { median } from '../src/util/median.js';
import { aggregateBatchStats, emaUpdate, StatsAccumulator, type BatchStats, type Estimator, type PopulationStats } from '../src/bn/estimators.js';
import { lcg } from './helpers/random.js';

/** LCG + Box-Muller: independent of src/util/rng.ts. */
function gaussian(seed: number): () => number {
  const next = lcg(seed);
  // (k + 0.5) / 2^32, never 0 (for the log): k / 2^32 + 2^-33 is exact in float64.
  const u = () => next() + 2 ** -33;
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** X[sample][element][channel], float64; `between` adds a per-batch offset (batches of `block` samples). */
function makeData(n: number, hw: number, c: number, seed: number, opts: { between?: number; block?: number } = {}): number[][][] {
  const g = gaussian(seed);
  const offsets: number[][] = [];
  return Array.from({ length: n }, (_, i) => {
    const b = Math.floor(i / (opts.block ?? 1));
    offsets[b] ??= Array.from({ length: c }, () => (opts.between ?? 0) * g());
    return Array.from({ length: hw }, () => Array.from({ length: c }, (_, j) => offsets[b][j] + 0.5 * (j + 1) * g() + j - 1));
  });
}

/** Per-batch (mean, biased var, count) of consecutive batches of `bs` samples (last may be smaller). */
function batchStats(x: number[][][], bs: number): BatchStats[] {
  const out: BatchStats[] = [];
  const c = x[0][0].length;
  for (let s = 0; s < x.length; s += bs) {
    const vals = x.slice(s, s + bs).flat();
    const mean = new Float64Array(c);
    const variance = new Float64Array(c);
    for (let j = 0; j < c; j++) {
      const m = vals.reduce((a, v) => a + v[j], 0) / vals.length;
      mean[j] = m;
      variance[j] = vals.reduce((a, v) => a + (v[j] - m) ** 2, 0) / vals.length;
    }
    out.push({ mean, variance, count: vals.length });
  }
  return out;
}

/** Population mean and unbiased variance of all elements, two-pass float64. */
function population(x: number[][][]): { mean: number[]; variance: number[] } {
  const vals = x.flat();
  const c = vals[0].length;
  const mean = Array.from({ length: c }, (_, j) => vals.reduce((a, v) => a + v[j], 0) / vals.length);
  const variance = mean.map((m, j) => vals.reduce((a, v) => a + (v[j] - m) ** 2, 0) / (vals.length - 1));
  return { mean, variance };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 1e-12) {
  expect(actual.length).toBe(expected.length);
  for (let j = 0; j < expected.length; j++) {
    expect(Math.abs(actual[j] - expected[j]), `index ${j}: ${actual[j]} vs ${expected[j]}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(expected[j])));
  }
}

describe('aggregateBatchStats', () => {
  const N = 24, HW = 5, C = 3;
  const x = makeData(N, HW, C, 1);
  const pop = population(x);

  it.each([1, 2, 3, 4, 6, 8, 12, 24])('pooled equals the population mean and unbiased variance (B=%i, HW=5)', (B) => {
    const r = aggregateBatchStats(batchStats(x, B), 'pooled');
    expectClose(r.mean, pop.mean);
    expectClose(r.variance, pop.variance);
  });

  it.each([2, 3, 4, 6, 8, 12, 24])('mean-of-var equals B*HW/(B*HW-1) * mean of biased batch variances (B=%i)', (B) => {
    const bs = batchStats(x, B);
    const n = B * HW;
    const expected = Array.from({ length: C }, (_, j) => (n / (n - 1)) * (bs.reduce((a, b) => a + b.variance[j], 0) / bs.length));
    const r = aggregateBatchStats(bs, 'mean-of-var');
    expectClose(r.mean, pop.mean);
    expectClose(r.variance, expected);
    if (B < N) expect(Math.abs(r.variance[0] - pop.variance[0])).toBeGreaterThan(1e-6); // really a different estimator
  });

  it('the two estimators agree when there is a single batch of all samples', () => {
    const bs = batchStats(x, N);
    expectClose(aggregateBatchStats(bs, 'mean-of-var').variance, aggregateBatchStats(bs, 'pooled').variance);
  });

  describe('B=2, HW=1', () => {
    it('pooled is still exact', () => {
      const x1 = makeData(24, 1, 2, 5);
      const r = aggregateBatchStats(batchStats(x1, 2), 'pooled');
      const p = population(x1);
      expectClose(r.mean, p.mean);
      expectClose(r.variance, p.variance);
    });

    it('mean-of-var drops the between-batch variance: far below pooled when batch means vary', () => {
      // Each batch of 2 samples shares an offset ~ N(0, 3^2); within-batch noise has variance 0.25 (channel 0).
      let pooled = 0, mov = 0, truth = 0;
      const trials = 40;
      for (let t = 0; t < trials; t++) {
        const xt = makeData(24, 1, 1, 100 + t, { between: 3, block: 2 });
        const bs = batchStats(xt, 2);
        const p = aggregateBatchStats(bs, 'pooled').variance[0];
        const m = aggregateBatchStats(bs, 'mean-of-var').variance[0];
        expect(m).toBeLessThan(p); // holds per trial with this much between-batch spread
        pooled += p / trials;
        mov += m / trials;
        truth += population(xt).variance[0] / trials;
      }
      expect(pooled).toBeCloseTo(truth, 10);
      expect(pooled).toBeGreaterThan(4); // ~ 9 + 0.25
      expect(mov).toBeLessThan(1); // ~ 0.25: only the within-batch part
      // Exact decomposition (equal batches): pooled*(N-1)/N = mean(var_i) + var(mu_i) (biased).
      const xt = makeData(24, 1, 1, 7, { between: 3, block: 2 });
      const bs = batchStats(xt, 2);
      const mus = bs.map((b) => b.mean[0]);
      const mm = mus.reduce((a, v) => a + v, 0) / mus.length;
      const within = bs.reduce((a, b) => a + b.variance[0], 0) / bs.length;
      const between = mus.reduce((a, v) => a + (v - mm) ** 2, 0) / mus.length;
      expectClose(aggregateBatchStats(bs, 'pooled').variance, [(24 / 23) * (within + between)]);
      expectClose(aggregateBatchStats(bs, 'mean-of-var').variance, [2 * within]);
    });

    it('for iid data both estimators are unbiased, but mean-of-var is noisier', () => {
      const p: number[] = [], m: number[] = [];
      for (let t = 0; t < 300; t++) {
        const bs = batchStats(makeData(24, 1, 1, 1000 + t), 2);
        p.push(aggregateBatchStats(bs, 'pooled').variance[0]);
        m.push(aggregateBatchStats(bs, 'mean-of-var').variance[0]);
      }
      const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
      const sd = (a: number[]) => Math.sqrt(mean(a.map((v) => (v - mean(a)) ** 2)));
      expect(Math.abs(mean(p) - 0.25)).toBeLessThan(0.03); // true variance of channel 0 is 0.5^2
      expect(Math.abs(mean(m) - 0.25)).toBeLessThan(0.04);
      expect(sd(m)).toBeGreaterThan(1.2 * sd(p));
    });
  });

  it('unequal batch sizes (remainder): every sample weighs the same', () => {
    const B = 5; // 24 = 4*5 + 4
    const bs = batchStats(x, B);
    expect(bs.map((b) => b.count)).toEqual([25, 25, 25, 25, 20]);
    const r = aggregateBatchStats(bs, 'pooled');
    expectClose(r.mean, pop.mean);
    expectClose(r.variance, pop.variance);
    const total = bs.reduce((a, b) => a + b.count, 0);
    const expected = Array.from({ length: C }, (_, j) => bs.reduce((a, b) => a + b.count * (b.count / (b.count - 1)) * b.variance[j], 0) / total);
    expectClose(aggregateBatchStats(bs, 'mean-of-var').variance, expected);
    // Order must not matter.
    expectClose(aggregateBatchStats([...bs].reverse(), 'pooled').variance, pop.variance);
  });

  it('a batch of count 1 contributes no variance of its own, and a single count-1 batch gives variance 0', () => {
    const one: BatchStats = { mean: [2], variance: [0], count: 1 };
    expect(Array.from(aggregateBatchStats([one], 'pooled').variance)).toEqual([0]);
    expect(Array.from(aggregateBatchStats([one], 'mean-of-var').variance)).toEqual([0]);
    // Two single samples 0 and 2: population unbiased variance 2.
    const r = aggregateBatchStats([{ mean: [0], variance: [0], count: 1 }, one], 'pooled');
    expectClose(r.mean, [1]);
    expectClose(r.variance, [2]);
  });

  describe('input validation', () => {
    const ok: BatchStats = { mean: [0, 1], variance: [1, 1], count: 4 };
    it('rejects an empty list', () => {
      expect(() => aggregateBatchStats([], 'pooled')).toThrow(/no batches/);
      expect(() => new StatsAccumulator(2).result('pooled')).toThrow(/no batches/);
    });
    it('rejects a channel mismatch (mean or variance)', () => {
      expect(() => aggregateBatchStats([ok, { mean: [0, 1, 2], variance: [1, 1, 1], count: 4 }], 'pooled')).toThrow(/needs 2 channels .*got mean 3, variance 3/);
      expect(() => aggregateBatchStats([ok, { mean: [0, 1], variance: [1], count: 4 }], 'pooled')).toThrow(/got mean 2, variance 1/);
    });
    it.each([0, -3, 0.5, NaN])('rejects count %s', (count) => {
      expect(() => aggregateBatchStats([{ ...ok, count }], 'pooled')).toThrow(/count must be >= 1/);
    });
    it('rejects an unknown estimator, naming it and the valid ones', () => {
      expect(() => aggregateBatchStats([ok], 'median' as Estimator)).toThrow(/unknown estimator 'median'.*pooled.*mean-of-var/);
    });
  });
});

describe('StatsAccumulator', () => {
  it('streaming gives exactly what aggregateBatchStats gives, and counts elements', () => {
    const x = makeData(30, 4, 2, 9);
    const bs = batchStats(x, 7); // 7,7,7,7,2 samples
    const acc = new StatsAccumulator(2);
    for (const b of bs) acc.add(b);
    expect(acc.count).toBe(30 * 4);
    for (const e of ['pooled', 'mean-of-var'] as const) {
      const a = acc.result(e), b = aggregateBatchStats(bs, e);
      expect(Array.from(a.mean)).toEqual(Array.from(b.mean));
      expect(Array.from(a.variance)).toEqual(Array.from(b.variance));
    }
    expectClose(acc.result('pooled').variance, population(x).variance);
    // result() does not consume the accumulator: more batches keep accumulating.
    const more = makeData(6, 4, 2, 10);
    for (const b of batchStats(more, 3)) acc.add(b);
    expectClose(acc.result('pooled').variance, population([...x, ...more]).variance);
  });
});

describe('emaUpdate (PyTorch convention: buffer holds the unbiased variance)', () => {
  const pop: PopulationStats = { mean: Float64Array.from([0.5, -1]), variance: Float64Array.from([2, 0.3]) };
  const batch: BatchStats = { mean: [1, 3], variance: [0.8, 1.6], count: 5 };

  it('matches the hand computation', () => {
    const r = emaUpdate(pop, batch, 0.9);
    // mean: 0.9*0.5 + 0.1*1 = 0.55; 0.9*-1 + 0.1*3 = -0.6
    // var: 0.9*2 + 0.1*0.8*5/4 = 1.9; 0.9*0.3 + 0.1*1.6*5/4 = 0.47
    expectClose(r.mean, [0.55, -0.6], 1e-14);
    expectClose(r.variance, [1.9, 0.47], 1e-14);
    // inputs untouched
    expect(Array.from(pop.mean)).toEqual([0.5, -1]);
  });

  it('decay 0 takes the batch statistics with the unbiased variance n/(n-1)', () => {
    const r = emaUpdate(pop, batch, 0);
    expectClose(r.mean, [1, 3], 1e-15);
    expectClose(r.variance, [0.8 * 1.25, 1.6 * 1.25], 1e-15);
  });

  it('decay 1 leaves the buffer unchanged', () => {
    const r = emaUpdate(pop, batch, 1);
    expect(Array.from(r.mean)).toEqual(Array.from(pop.mean));
    expect(Array.from(r.variance)).toEqual(Array.from(pop.variance));
  });

  it('count 1: no correction (and no division by zero)', () => {
    const r = emaUpdate(pop, { mean: [1, 1], variance: [0.4, 0.4], count: 1 }, 0);
    expectClose(r.variance, [0.4, 0.4], 1e-15);
  });

  it('repeated updates with a constant batch converge geometrically to its unbiased statistics', () => {
    let s = pop;
    for (let k = 0; k < 10; k++) s = emaUpdate(s, batch, 0.9);
    const w = 0.9 ** 10;
    expectClose(s.mean, [w * 0.5 + (1 - w) * 1, w * -1 + (1 - w) * 3], 1e-13);
    expectClose(s.variance, [w * 2 + (1 - w) * 1.0, w * 0.3 + (1 - w) * 2.0], 1e-13);
  });
});

describe('the package entry', () => {
  it('plain Node (no TypeScript loader) imports aggregateBatchStats from bnlab: dist/ built by npm ci', async () => {
    const { spawnSync } = await import('node:child_process');
    const code = `import { aggregateBatchStats } from 'bnlab';
      const r = aggregateBatchStats([{ mean: [0], variance: [1], count: 2 }, { mean: [2], variance: [1], count: 2 }], 'pooled');
      console.log(JSON.stringify([r.mean[0], r.variance[0], r.variance instanceof Float64Array]));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: `${__dirname}/..`, encoding: 'utf8' });
    expect(r.status, `${r.stderr}\n(build it with npm run prepare)`).toBe(0);
    // the batches hold the values {-1, 1} and {1, 3}: mean 1, unbiased variance 8/3
    expect(JSON.parse(r.stdout)).toEqual([1, 8 / 3, true]);
  });
});

describe('median (bench figures beside PyTorch\'s statistics.median)', () => {
  it('odd count: the middle value; even: the mean of the two middles; empty: NaN; input untouched', () => {
    const xs = [5, 1, 4, 2];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 4, 2]);
    expect(median([3, 9, 1])).toBe(3);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });
});
