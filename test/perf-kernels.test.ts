// bnlab's own speed kernels on wasm (src/backend/kernels/batchnorm-fused.ts, native/bn.c):
// fused BN (+affine, +ReLU) forward and backward against a float64 reference and against the
// composed tf-op path on the pure-JS cpu backend, on random shapes including batch 1-2; and
// the switches that turn them off.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initWasmBackend, setWasmKernels } from '../src/backend/wasm.js';
import { loadNative } from '../src/backend/native-addon.js';
import { BN_FORWARD } from '../src/backend/kernels/batchnorm-fused.js';
import { batchNormAffine, collectObservations, type BNContext, type LayerStats } from '../src/nn/batchnorm.js';
import { maxRelErr as relErr } from './helpers/compare.js';
import { rand32 } from './helpers/random.js';
import { bnBatchBackward, bnBatchForward, type Shape } from './helpers/bn-reference.js';


/** The BN contract in float64 (test/helpers/bn-reference.ts): y = act(gamma*xhat + beta) over groups of nbs samples; grads of sum(y * w). */
function reference(x: Float32Array, shape: Shape, nbs: number, eps: number, gamma: Float32Array, beta: Float32Array, relu: boolean, wgt: Float32Array) {
  const affine = { gamma, beta, relu };
  const { dx, dgamma: dg, dbeta: db } = bnBatchBackward(x, shape, nbs, eps, affine, wgt);
  return { y: bnBatchForward(x, shape, nbs, eps, affine).y, dx, dg, db };
}

function run(x: Float32Array, shape: Shape, ctx: BNContext, gamma: Float32Array, beta: Float32Array, relu: boolean, wgt: Float32Array) {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, shape), g = tf.tensor1d(gamma), b = tf.tensor1d(beta), wt = tf.tensor4d(wgt, shape);
    const f = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(batchNormAffine(xi, 'l', ctx, gi as tf.Tensor1D, bi as tf.Tensor1D, relu), wt));
    const y = batchNormAffine(xt, 'l', ctx, g, b, relu);
    const [dx, dg, db] = tf.grads(f)([xt, g, b]);
    return { y: y.dataSync(), dx: dx.dataSync(), dg: dg.dataSync(), db: db.dataSync() };
  });
}

beforeAll(async () => {
  await initWasmBackend({ threads: 1 });
}, 60_000);
afterAll(() => {
  setWasmKernels();
});

// batch 1-2, odd channel counts (SIMD tails), groups, offset means (conditioning)
const cases: { shape: Shape; nbs: number; relu: boolean; shift?: number }[] = [
  { shape: [1, 3, 3, 5], nbs: 1, relu: true },
  { shape: [2, 4, 4, 3], nbs: 1, relu: false },
  { shape: [2, 5, 3, 16], nbs: 2, relu: true },
  { shape: [4, 6, 6, 7], nbs: 2, relu: true, shift: 30 },
  { shape: [6, 8, 8, 32], nbs: 3, relu: false },
  { shape: [8, 17, 3, 12], nbs: 8, relu: true },
  { shape: [3, 1, 1, 9], nbs: 3, relu: true },
];

// Both implementations of the same kernels: the native addon (3 OpenMP threads, so uneven row
// splits and the cross-thread combine are exercised) and bnlab's WebAssembly module.
const IMPLS = [['native (3 threads)', true], ['wasm module', false]] as const;

describe.each(IMPLS)('fused BN + affine (+ReLU) on wasm, %s', (_name, nativeBN) => {
  beforeAll(() => {
    const on = setWasmKernels({ nativeBN });
    expect(on.includes('nativeBN'), loadNative().reason).toBe(nativeBN);
    loadNative().addon?.setThreads(nativeBN ? 3 : 1);
  });
  afterAll(() => loadNative().addon?.setThreads(1));

  it('is registered by default', () => {
    tf.setBackend('wasm');
    expect(tf.getKernel(BN_FORWARD, 'wasm')).toBeDefined();
  });

  it.each(cases)('%o: forward and gradients match float64 and the cpu composition', ({ shape, nbs, relu, shift = 0 }) => {
    expect(tf.getKernel(BN_FORWARD, 'wasm'), 'fused kernels registered').toBeDefined();
    const len = shape.reduce((a, b) => a * b, 1), c = shape[3];
    const x = rand32(len, 1 + len, 2, shift), gamma = rand32(c, 7, 1, 0.5), beta = rand32(c, 9, 0.5), wgt = rand32(len, 11);
    const ctx: BNContext = { source: 'batch', nbs, eps: 1e-5 };
    const ref = reference(x, shape, nbs, 1e-5, gamma, beta, relu, wgt);
    tf.setBackend('wasm');
    const got = run(x, shape, ctx, gamma, beta, relu, wgt);
    tf.setBackend('cpu');
    const cpu = run(x, shape, ctx, gamma, beta, relu, wgt);
    tf.setBackend('wasm');
    const tol = shift ? 1e-4 : 1e-5;
    expect(relErr(got.y, ref.y)).toBeLessThan(tol);
    expect(relErr(got.dx, ref.dx)).toBeLessThan(tol * 10);
    expect(relErr(got.dg, ref.dg)).toBeLessThan(tol);
    expect(relErr(got.db, ref.db)).toBeLessThan(tol);
    expect(relErr(got.dx, cpu.dx)).toBeLessThan(tol * 10);
    expect(relErr(got.y, cpu.y)).toBeLessThan(tol);
  });

  it('observes the same statistics as the composed path', () => {
    const shape: Shape = [4, 3, 3, 6];
    const x = rand32(108 * 2, 5);
    const obs = (backend: string) => {
      tf.setBackend(backend);
      const observer = collectObservations();
      tf.tidy(() => void batchNormAffine(tf.tensor4d(x, shape), 'l', { source: 'batch', nbs: 2, eps: 1e-5, observer }, tf.ones([6]), tf.zeros([6]), true));
      const o = observer.observed;
      const r = { mean: o[0].mean.dataSync(), variance: o[0].variance.dataSync(), counts: o[0].counts, shape: o[0].mean.shape };
      o.forEach((b) => (b.mean.dispose(), b.variance.dispose()));
      return r;
    };
    const w = obs('wasm'), c = obs('cpu');
    tf.setBackend('wasm');
    expect(w.shape).toEqual([2, 6]);
    expect(w.counts).toEqual(c.counts);
    expect(relErr(w.mean, c.mean)).toBeLessThan(1e-5);
    expect(relErr(w.variance, c.variance)).toBeLessThan(1e-5);
  });

  it('population source (inference, FrozenBN): forward and gradients match the cpu composition', () => {
    const shape: Shape = [2, 4, 4, 8];
    const x = rand32(256, 3), gamma = rand32(8, 4, 1, 0.5), beta = rand32(8, 5), wgt = rand32(256, 6);
    const popArr = { mean: rand32(8, 8), variance: rand32(8, 9, 0.5, 1) };
    const go = (backend: string) => {
      tf.setBackend(backend);
      const pop = new Map<string, LayerStats>([['l', { mean: tf.tensor1d(popArr.mean), variance: tf.tensor1d(popArr.variance) }]]);
      const r = run(x, shape, { source: 'population', eps: 1e-5, population: pop }, gamma, beta, true, wgt);
      pop.get('l')!.mean.dispose();
      pop.get('l')!.variance.dispose();
      return r;
    };
    const w = go('wasm'), c = go('cpu');
    tf.setBackend('wasm');
    for (const k of ['y', 'dx', 'dg', 'db'] as const) expect(relErr(w[k], c[k]), k).toBeLessThan(1e-5);
  });

  it('a remainder group falls back to the composed path', () => {
    const shape: Shape = [5, 2, 2, 3];
    const x = rand32(60, 12), g = rand32(3, 13, 1, 0.5), b = rand32(3, 14), wgt = rand32(60, 15);
    const ref = reference(x, shape, 2, 1e-5, g, b, true, wgt);
    tf.setBackend('wasm');
    const got = run(x, shape, { source: 'batch', nbs: 2, eps: 1e-5 }, g, b, true, wgt);
    expect(relErr(got.y, ref.y)).toBeLessThan(1e-5);
    expect(relErr(got.dx, ref.dx)).toBeLessThan(1e-4);
  });

  it('Identity shares data and clones stay valid after the original is disposed', () => {
    tf.setBackend('wasm');
    const a = tf.tensor1d([1, 2, 3]);
    const b = tf.clone(a);
    a.dispose();
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3]);
    b.dispose();
  });

  it('does not leak tensors', () => {
    tf.setBackend('wasm');
    const x = tf.tensor4d(rand32(2 * 3 * 3 * 4, 2), [2, 3, 3, 4]), g = tf.ones([4]) as tf.Tensor1D, b = tf.zeros([4]) as tf.Tensor1D;
    const before = tf.memory().numTensors;
    const d = tf.grads((xi: tf.Tensor) => tf.sum(batchNormAffine(xi, 'l', { source: 'batch', nbs: 2, eps: 1e-5 }, g, b, true)))([x]);
    d.forEach((t) => t.dispose());
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, g, b]);
  });

  it('switches off (option and BNLAB_WASM_KERNELS=none) and back on', () => {
    expect(setWasmKernels({ fusedBN: false, nativeBN })).not.toContain('fusedBN');
    expect(tf.getKernel(BN_FORWARD, 'wasm')).toBeUndefined();
    try {
      process.env.BNLAB_WASM_KERNELS = 'none';
      expect(setWasmKernels()).toEqual([]);
      // the composed path still gives the right answer
      const shape: Shape = [2, 3, 3, 4];
      const x = rand32(72, 21), g = rand32(4, 22, 1, 0.5), b = rand32(4, 23), wgt = rand32(72, 24);
      const ref = reference(x, shape, 2, 1e-5, g, b, true, wgt);
      tf.setBackend('wasm');
      const got = run(x, shape, { source: 'batch', nbs: 2, eps: 1e-5 }, g, b, true, wgt);
      expect(relErr(got.dx, ref.dx)).toBeLessThan(1e-4);
    } finally {
      delete process.env.BNLAB_WASM_KERNELS;
    }
    expect(setWasmKernels({ nativeBN })).toEqual(expect.arrayContaining(['fusedBN', 'sharedIdentity']));
    expect(tf.getKernel(BN_FORWARD, 'wasm')).toBeDefined();
  });
});
