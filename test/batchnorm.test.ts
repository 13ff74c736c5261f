// batchNorm against the float64 BN contract (test/helpers/bn-reference.ts), on the pure-JS cpu backend and on wasm;
// and the EMA update trainStep performs.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { initWasmBackend } from '../src/backend/wasm.js';
import { batchNorm, affine, collectObservations, type BNContext, type LayerStats } from '../src/nn/batchnorm.js';
import { bnBatchBackward, bnBatchForward, bnPopulationForward, groupsOf as groups, type Shape } from './helpers/bn-reference.js';
import { validateConfig } from '../src/config/load.js';
import { createState, type RunState } from '../src/train/state.js';
import { trainStep, type StepOptions } from '../src/train/step.js';
import type { Batch } from '../src/data/loader.js';
import { disposeState } from '../src/train/trainer.js';
import { maxRelErr } from './helpers/compare.js';
import { rand64 } from './helpers/random.js';


function tensorOf(x: Float64Array, shape: number[]): tf.Tensor {
  return tf.tensor(Float32Array.from(x), shape);
}

beforeAll(async () => {
  await initWasmBackend({ threads: 1 });
}, 60_000);

const cases: { name: string; shape: Shape; nbs: number; eps: number }[] = [
  { name: 'nbs divides N', shape: [8, 3, 2, 3], nbs: 4, eps: 1e-5 },
  { name: 'N not a multiple of nbs (remainder group of 2)', shape: [8, 2, 3, 2], nbs: 3, eps: 1e-5 },
  { name: 'remainder of 1 sample, large eps', shape: [7, 2, 2, 3], nbs: 3, eps: 0.05 },
  { name: 'nbs = N (plain BN)', shape: [5, 2, 2, 4], nbs: 5, eps: 1e-3 },
  { name: 'nbs > N (one group of N)', shape: [4, 3, 3, 2], nbs: 32, eps: 1e-5 },
  { name: 'nbs 2, 1x1 spatial', shape: [6, 1, 1, 3], nbs: 2, eps: 1e-5 },
];

describe.each(['cpu', 'wasm'])('batchNorm on %s', (backend) => {
  beforeAll(async () => {
    expect(await tf.setBackend(backend)).toBe(true);
    expect(tf.getBackend()).toBe(backend);
  });

  describe("source 'batch': forward and observed statistics", () => {
    it.each(cases)('$name', ({ shape, nbs, eps }) => {
      const len = shape.reduce((a, b) => a * b);
      // Per-channel offsets and scales so channels and groups differ.
      const xs = rand64(len, 11 + len, 2).map((v, i) => v * (1 + (i % shape[3])) + 3 * (i % shape[3]) + Math.floor(i / (len / shape[0])) * 0.3);
      const ref = bnBatchForward(xs, shape, nbs, eps);
      const observer = collectObservations();
      const observed = observer.observed;
      const before = tf.memory().numTensors;
      const [yShape, yData] = tf.tidy(() => {
        const y = batchNorm(tensorOf(xs, shape), 'L', { source: 'batch', nbs, eps, observer });
        return [y.shape, y.dataSync()] as const;
      });
      expect(yShape).toEqual(shape);
      expect(maxRelErr(yData, ref.y)).toBeLessThan(2e-5);

      const gs = groups(shape[0], Math.min(nbs, shape[0]));
      const means = observed.flatMap((o) => o.mean.arraySync());
      const vars = observed.flatMap((o) => o.variance.arraySync());
      const counts = observed.flatMap((o) => o.counts);
      expect(observed.every((o) => o.layer === 'L')).toBe(true);
      expect(counts).toEqual(gs.map(([a, b]) => (b - a) * shape[1] * shape[2]));
      expect(counts).toEqual(ref.counts);
      expect(means.length).toBe(gs.length);
      expect(maxRelErr(means.flat(), ref.means.flat())).toBeLessThan(1e-5);
      expect(maxRelErr(vars.flat(), ref.vars.flat())).toBeLessThan(1e-5);
      for (const o of observed) {
        o.mean.dispose();
        o.variance.dispose();
      }
      // The observations are the only tensors that outlive a tidy (callers always run BN in one).
      expect(tf.memory().numTensors).toBe(before);
    });

    it('rank-2 [N,C] input, without an observer (the groups\' statistics are not kept)', () => {
      const xs = rand64(10 * 3, 5, 1.5, 0.5);
      const before = tf.memory().numTensors;
      const y = tf.tidy(() => batchNorm(tensorOf(xs, [10, 3]), 'fc', { source: 'batch', nbs: 4, eps: 1e-5 }));
      expect(tf.memory().numTensors - before).toBe(1);
      expect(y.shape).toEqual([10, 3]);
      expect(maxRelErr(y.dataSync(), bnBatchForward(xs, [10, 1, 1, 3], 4, 1e-5).y)).toBeLessThan(2e-5);
    });
  });

  describe("source 'batch': backward", () => {
    it.each(cases.slice(0, 4))('d/dx sum(y*R) matches float64 central differences ($name)', ({ shape, nbs, eps }) => {
      const len = shape.reduce((a, b) => a * b);
      const xs = rand64(len, 21 + len, 1.5).map((v, i) => v + (i % shape[3]));
      const R = rand64(len, 99 + len);
      const f = (x: Float64Array) => bnBatchForward(x, shape, nbs, eps).y.reduce((a, y, i) => a + y * R[i], 0);
      const num = new Float64Array(len);
      const hStep = 1e-6;
      for (let i = 0; i < len; i++) {
        const p = Float64Array.from(xs), m = Float64Array.from(xs);
        p[i] += hStep;
        m[i] -= hStep;
        num[i] = (f(p) - f(m)) / (2 * hStep);
      }
      const Rt = tensorOf(R, shape);
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(batchNorm(x, 'L', { source: 'batch', nbs, eps }), Rt)))(tensorOf(xs, shape));
      expect(g.shape).toEqual(shape);
      expect(maxRelErr(g.dataSync(), num)).toBeLessThan(1e-4);
      // the contract's analytic backward (identity affine) is the numerical gradient too
      const identity = { gamma: new Array(shape[3]).fill(1), beta: new Array(shape[3]).fill(0), relu: false };
      expect(maxRelErr(bnBatchBackward(xs, shape, nbs, eps, identity, R).dx, num)).toBeLessThan(1e-6);
      // The gradient within each group sums to zero per channel (mean subtraction).
      const gd = g.dataSync();
      const per = shape[1] * shape[2] * shape[3];
      for (const [a, b] of groups(shape[0], nbs)) {
        for (let ch = 0; ch < shape[3]; ch++) {
          let s = 0;
          for (let i = a * per + ch; i < b * per; i += shape[3]) s += gd[i];
          expect(Math.abs(s)).toBeLessThan(1e-4);
        }
      }
    });

    it('the gradient through affine(bn(x)) agrees with the numerical one too', () => {
      const shape: Shape = [6, 2, 2, 2];
      const len = 48;
      const xs = rand64(len, 3, 2), R = rand64(len, 4);
      const gamma = [1.5, -0.7], beta = [0.2, 0.1];
      const f = (x: Float64Array) => bnBatchForward(x, shape, 3, 1e-5, { gamma, beta, relu: false }).y.reduce((a, y, i) => a + y * R[i], 0);
      const num = Float64Array.from({ length: len }, (_, i) => {
        const p = Float64Array.from(xs), m = Float64Array.from(xs);
        p[i] += 1e-6;
        m[i] -= 1e-6;
        return (f(p) - f(m)) / 2e-6;
      });
      const g = tf.grad((x: tf.Tensor) =>
        tf.sum(tf.mul(affine(batchNorm(x, 'L', { source: 'batch', nbs: 3, eps: 1e-5 }), tf.tensor1d(gamma), tf.tensor1d(beta)), tensorOf(R, shape))),
      )(tensorOf(xs, shape));
      expect(maxRelErr(g.dataSync(), num)).toBeLessThan(1e-4);
    });
  });

  it('ghost normalization equals normalizing each group by its own call', () => {
    for (const { shape, nbs } of [
      { shape: [12, 2, 2, 3] as Shape, nbs: 4 },
      { shape: [11, 2, 2, 3] as Shape, nbs: 4 },
    ]) {
      tf.tidy(() => {
        const len = shape.reduce((a, b) => a * b);
        const x = tensorOf(rand64(len, 77 + len, 2).map((v, i) => v + Math.floor(i / (len / shape[0]))), shape);
        const ctx: BNContext = { source: 'batch', nbs, eps: 1e-5 };
        const whole = batchNorm(x, 'L', ctx);
        const parts = groups(shape[0], nbs).map(([a, b]) =>
          batchNorm(tf.slice(x, [a, 0, 0, 0], [b - a, -1, -1, -1]), 'L', { ...ctx, nbs: b - a }),
        );
        expect(maxRelErr(whole.dataSync(), tf.concat(parts, 0).dataSync())).toBeLessThan(1e-6);
        // and it is not plain BN over the whole batch (the groups have different means)
        expect(maxRelErr(whole.dataSync(), batchNorm(x, 'L', { ...ctx, nbs: shape[0] }).dataSync())).toBeGreaterThan(0.05);
      });
    }
  });

  it("source 'population' computes (x - mean) / sqrt(var + eps)", () => {
    const shape: Shape = [3, 2, 2, 4];
    const xs = rand64(48, 8, 3);
    const mean = [0.5, -1, 2, 0], variance = [0.25, 4, 1, 0.01];
    const eps = 1e-3;
    const population = new Map<string, LayerStats>([['L', { mean: tf.tensor1d(mean), variance: tf.tensor1d(variance) }]]);
    const y = batchNorm(tensorOf(xs, shape), 'L', { source: 'population', eps, population });
    const ref = bnPopulationForward(xs, 4, mean, variance, eps);
    expect(maxRelErr(y.dataSync(), ref)).toBeLessThan(1e-5);
    // rank 2
    const y2 = batchNorm(tensorOf(xs.slice(0, 8), [2, 4]), 'L', { source: 'population', eps, population });
    expect(y2.shape).toEqual([2, 4]);
    expect(maxRelErr(y2.dataSync(), ref.slice(0, 8))).toBeLessThan(1e-5);
    expect(() => batchNorm(tensorOf(xs, shape), 'other', { source: 'population', eps, population })).toThrow(/other.*no population statistics/);
  });
});

describe('EMA update in trainStep', () => {
  const H = 8;
  const cfg = validateConfig({
    data: { name: 'synthetic', synthetic: { size: H, channels: 1, classes: 4 } },
    model: { depth: 8, width: 4 },
    bn: { nbs: 4 },
    optim: { batch_size: 8 },
  });
  const makeBatch = (n: number, seed: number, shift: number): Batch => ({
    x: Float32Array.from(rand64(n * H * H, seed, 1, 0).map((v, i) => v + shift * Math.floor(i / (H * H)))),
    y: Int32Array.from({ length: n }, (_, i) => i % 4),
    n,
    height: H,
    width: H,
    channels: 1,
  });
  const slice = (b: Batch, a: number, e: number): Batch => ({ ...b, x: b.x.slice(a * H * H, e * H * H), y: b.y.slice(a, e), n: e - a });
  /** Spatial size each BN layer sees on an 8x8 input: stage 1 at 8x8, stage 2 at 4x4, stage 3 at 2x2. */
  const hw = (layer: string) => (layer.startsWith('s2') ? 16 : layer.startsWith('s3') ? 4 : 64);

  /** Per-layer (mean, unbiased var) of one group, from a forward pass on that group alone. */
  function groupStats(s: RunState, b: Batch): Map<string, { mean: number[]; variance: number[] }> {
    const observer = collectObservations();
    tf.tidy(() => s.net.observe(s.params, tf.tensor4d(b.x, [b.n, H, H, 1]), { source: 'batch', nbs: b.n, eps: cfg.bn.eps, observer }));
    const observed = observer.observed;
    const out = new Map<string, { mean: number[]; variance: number[] }>();
    for (const o of observed) {
      const n = b.n * hw(o.layer);
      expect(o.counts).toEqual([n]);
      out.set(o.layer, { mean: o.mean.arraySync()[0], variance: o.variance.arraySync()[0].map((v) => (v * n) / (n - 1)) });
      o.mean.dispose();
      o.variance.dispose();
    }
    return out;
  }

  function setup(backend: string) {
    tf.setBackend(backend); // both already initialised: switches synchronously
    expect(tf.getBackend()).toBe(backend);
    const s = createState(cfg, 1, 4);
    // Non-trivial initial EMA so decay * init is tested, not just the 0/1 PyTorch defaults.
    const init = new Map<string, { mean: number[]; variance: number[] }>();
    let k = 0;
    for (const [name, e] of s.ema) {
      const c = e.mean.shape[0];
      const m = Array.from(rand64(c, 500 + k++, 0.5));
      const v = Array.from(rand64(c, 900 + k++, 0.4, 1));
      e.mean.assign(tf.tensor1d(m));
      e.variance.assign(tf.tensor1d(v));
      init.set(name, { mean: m, variance: v });
    }
    return { s, init };
  }

  const opts = (emaGroups: 'one' | 'all'): StepOptions => ({
    nbs: 4, eps: cfg.bn.eps, emaDecay: 0.9, emaGroups, lr: 0, momentum: 0.9, nesterov: false,
  });

  function check(s: RunState, init: Map<string, { mean: number[]; variance: number[] }>, expected: Map<string, { mean: number[]; variance: number[] }>) {
    expect([...expected.keys()].sort()).toEqual([...s.ema.keys()].sort());
    expect(s.ema.size).toBe(s.net.bnLayers.length);
    for (const [name, e] of s.ema) {
      const ex = expected.get(name)!, i0 = init.get(name)!;
      const m = ex.mean.map((v, j) => 0.9 * i0.mean[j] + 0.1 * v);
      const v = ex.variance.map((v, j) => 0.9 * i0.variance[j] + 0.1 * v);
      expect(maxRelErr(e.mean.dataSync(), m), `${name} mean`).toBeLessThan(1e-5);
      expect(maxRelErr(e.variance.dataSync(), v), `${name} variance`).toBeLessThan(1e-5);
    }
  }

  it.each(['cpu', 'wasm'])("'one': group 0 of the first micro-batch, unbiased variance (%s)", (backend) => {
    const { s, init } = setup(backend);
    // Groups differ a lot: group 1 shifted, and a second micro-batch shifted further.
    onTestFinished(() => disposeState(s)); // variables are named: the next createState needs them gone
    const b1 = makeBatch(8, 1, 0.6), b2 = makeBatch(8, 2, 3);
    const expected = groupStats(s, slice(b1, 0, 4));
    const paramsBefore = new Map([...s.params].map(([k, v]) => [k, v.dataSync().slice()]));
    const r = trainStep(s, [b1, b2], opts('one'));
    expect(r.n).toBe(16);
    check(s, init, expected);
    // lr = 0: parameters did not move, so the expected stats were of the same model.
    for (const [k, v] of s.params) expect(Array.from(v.dataSync()), k).toEqual(Array.from(paramsBefore.get(k)!));
    // Sanity: group 1 would have given different statistics (the check above can tell them apart).
    const other = groupStats(s, slice(b1, 4, 8));
    expect(maxRelErr(other.get('stem.bn')!.mean, expected.get('stem.bn')!.mean)).toBeGreaterThan(0.01);
  });

  it("'all': the average over every group of every micro-batch", () => {
    const { s, init } = setup('cpu');
    onTestFinished(() => disposeState(s));
    const b1 = makeBatch(8, 3, 0.6), b2 = makeBatch(8, 4, 3);
    const per = [slice(b1, 0, 4), slice(b1, 4, 8), slice(b2, 0, 4), slice(b2, 4, 8)].map((g) => groupStats(s, g));
    const expected = new Map(
      [...per[0].keys()].map((k) => [
        k,
        {
          mean: per[0].get(k)!.mean.map((_, j) => per.reduce((a, p) => a + p.get(k)!.mean[j], 0) / 4),
          variance: per[0].get(k)!.variance.map((_, j) => per.reduce((a, p) => a + p.get(k)!.variance[j], 0) / 4),
        },
      ]),
    );
    trainStep(s, [b1, b2], opts('all'));
    check(s, init, expected);
  });

  // one micro-batch of several groups: on wasm with the native addon this is the fused EMA kernel
  it.each(['cpu', 'wasm'])("'all' with one micro-batch of two groups (%s)", (backend) => {
    const { s, init } = setup(backend);
    onTestFinished(() => disposeState(s));
    const b1 = makeBatch(8, 5, 2);
    const per = [slice(b1, 0, 4), slice(b1, 4, 8)].map((g) => groupStats(s, g));
    const expected = new Map([...per[0].keys()].map((k) => [k, {
      mean: per[0].get(k)!.mean.map((_, j) => (per[0].get(k)!.mean[j] + per[1].get(k)!.mean[j]) / 2),
      variance: per[0].get(k)!.variance.map((_, j) => (per[0].get(k)!.variance[j] + per[1].get(k)!.variance[j]) / 2),
    }]));
    trainStep(s, [b1], opts('all'));
    check(s, init, expected);
  });
});

describe('an observer ends a statistics-only pass by being done', () => {
  it('Network.observe returns after the layer collectObservations(stopAfter) waits for; forward refuses a done observer', () => {
    const cfg = validateConfig({ data: { name: 'synthetic', synthetic: { size: 8, channels: 1, classes: 4 } }, model: { depth: 8, width: 4 }, bn: { nbs: 4 }, optim: { batch_size: 8 } });
    const s = createState(cfg, 1, 4);
    onTestFinished(() => disposeState(s));
    const x = () => tf.tensor4d(Float32Array.from(rand64(4 * 64, 3)), [4, 8, 8, 1]);
    const layers = s.net.bnLayers.map((l) => l.name);
    const observeUpTo = (stopAfter?: string) => {
      const observer = collectObservations(stopAfter);
      const before = tf.memory().numTensors;
      tf.tidy(() => s.net.observe(s.params, x(), { source: 'batch', nbs: 4, eps: 1e-5, observer }));
      const seen = observer.observed.map((o) => o.layer);
      // what the observer kept is all that is left: statistics observed after it was done are freed
      expect(tf.memory().numTensors - before).toBe(2 * seen.length);
      observer.observed.forEach((o) => tf.dispose([o.mean, o.variance]));
      return { seen, done: observer.done };
    };
    expect(observeUpTo()).toEqual({ seen: layers, done: false });
    for (const stop of [layers[0], 's2.b1.bn1', 's2.b1.bn2', layers.at(-1)!]) {
      const { seen, done } = observeUpTo(stop);
      expect(done).toBe(true);
      expect(seen.at(-1)).toBe(stop);
      expect(seen).toEqual(layers.slice(0, layers.indexOf(stop) + 1).filter((l) => seen.includes(l)));
      expect(seen.length).toBeGreaterThanOrEqual(layers.slice(0, layers.indexOf(stop)).filter((l) => !l.endsWith('proj_bn')).length);
    }
    const done = collectObservations(layers[0]);
    tf.tidy(() => s.net.observe(s.params, x(), { source: 'batch', nbs: 4, eps: 1e-5, observer: done }));
    expect(() => tf.tidy(() => s.net.forward(s.params, x(), { source: 'batch', nbs: 4, eps: 1e-5, observer: done }))).toThrow(/observer ended the pass early/);
    done.observed.forEach((o) => tf.dispose([o.mean, o.variance]));
  });
});
