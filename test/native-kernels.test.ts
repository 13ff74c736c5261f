// The small native kernels (native/addon/sgd.cc, eltwise.cc) against float64 references and
// against the tf-op path they replace: the SGD-with-momentum update and relu(a + b) with its
// gradient, max pooling's gradient (pool.cc). Needs the native addon (CI builds it; see test/dnnl-conv.test.ts).
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative } from '../src/backend/native-addon.js';
import { ADD_RELU, GAP } from '../src/backend/kernels/eltwise.js';
import { EMA_KERNEL, SGD_KERNEL } from '../src/backend/kernels/state-updates.js';
import { emaUpdate } from '../src/bn/estimators.js';
import { initWasmBackend, setWasmKernels } from '../src/backend/wasm.js';
import { addRelu, globalAvgPool } from '../src/nn/fused.js';
import { sgdStep } from '../src/train/sgd.js';
import { maxRelErr } from './helpers/compare.js';
import { rand32 } from './helpers/random.js';


beforeAll(async () => {
  const { addon, reason } = loadNative();
  if (!addon) throw new Error(`native addon ${reason}`);
  await initWasmBackend({ threads: 2 });
  addon.setThreads(2);
});
afterAll(() => void setWasmKernels());

describe('fused SGD (BnlabSGD)', () => {
  // float64 reference of src/train/sgd.ts' rule over `steps` steps
  function reference(w0: Float32Array, grads: Float32Array[], lr: number, m: number, wd: number, nesterov: boolean) {
    const w = Float64Array.from(w0), v = new Float64Array(w0.length);
    for (const g of grads) {
      for (let i = 0; i < w.length; i++) {
        const d = g[i] + wd * w[i];
        v[i] = m * v[i] + d;
        w[i] -= lr * (nesterov ? d + m * v[i] : v[i]);
      }
    }
    return { w, v };
  }

  function run(w0: Float32Array, grads: Float32Array[], lr: number, m: number, wd: number, nesterov: boolean) {
    const shape = [w0.length];
    const [wt, vt] = [tf.tensor(w0, shape), tf.zeros(shape)];
    const params = new Map([['p', tf.variable(wt, true, `p${Math.random()}`)]]);
    const velocity = new Map([['p', tf.variable(vt, false, `v${Math.random()}`)]]);
    tf.dispose([wt, vt]);
    for (const g of grads) {
      const gt = tf.tensor(g, shape);
      sgdStep(params, new Map([['p', gt]]), velocity, new Map([['p', wd]]), lr, { momentum: m, nesterov });
      gt.dispose();
    }
    const out = { w: params.get('p')!.dataSync().slice(), v: velocity.get('p')!.dataSync().slice() };
    params.get('p')!.dispose();
    velocity.get('p')!.dispose();
    return out;
  }

  it.each([[false, 0], [false, 1e-4], [true, 5e-4], [true, 0]] as const)('nesterov %s, weight decay %s: matches float64 and the tf-op path', (nesterov, wd) => {
    tf.setBackend('wasm');
    const n = 1000;
    const w0 = rand32(n, 1), grads = [2, 3, 4, 5].map((s) => rand32(n, s));
    const ref = reference(w0, grads, 0.1, 0.9, wd, nesterov);
    expect(tf.getKernel(SGD_KERNEL, 'wasm')).toBeDefined();
    const fused = run(w0, grads, 0.1, 0.9, wd, nesterov);
    expect(maxRelErr(fused.w, ref.w)).toBeLessThan(1e-6);
    expect(maxRelErr(fused.v, ref.v)).toBeLessThan(1e-6);
    try {
      expect(setWasmKernels({ fusedSGD: false })).not.toContain('fusedSGD');
      expect(tf.getKernel(SGD_KERNEL, 'wasm')).toBeUndefined();
      const ops = run(w0, grads, 0.1, 0.9, wd, nesterov);
      expect(maxRelErr(fused.w, ops.w)).toBeLessThan(1e-6);
    } finally {
      setWasmKernels();
    }
  });

  it('does not leak tensors', () => {
    tf.setBackend('wasm');
    run(rand32(10, 1), [rand32(10, 2)], 0.1, 0.9, 0, false);
    const before = tf.memory().numTensors;
    run(rand32(10, 1), [rand32(10, 2), rand32(10, 3)], 0.1, 0.9, 1e-4, true);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('fused EMA (BnlabEMA)', () => {
  it('matches emaUpdate (float64) for one group and the mean of unbiased variances for several', () => {
    tf.setBackend('wasm');
    expect(tf.getKernel(EMA_KERNEL, 'wasm')).toBeDefined();
    const C = 7, G = 3, counts = [8, 8, 2];
    const pop = { mean: rand32(C, 1), variance: rand32(C, 2).map((v) => v + 1.5) };
    const obsM = rand32(G * C, 3), obsV = rand32(G * C, 4).map((v) => v + 1.2);
    const run = (g: number) => tf.tidy(() => {
      const out = tf.engine().runKernel(EMA_KERNEL, {
        mean: tf.tensor1d(pop.mean), variance: tf.tensor1d(pop.variance),
        obsMean: tf.tensor2d(obsM.slice(0, g * C), [g, C]), obsVariance: tf.tensor2d(obsV.slice(0, g * C), [g, C]),
      }, { decay: 0.9, counts: counts.slice(0, g) }) as tf.Tensor[];
      return out.map((t) => t.dataSync().slice());
    });
    // one group: exactly the exported pure function
    const one = emaUpdate({ mean: Float64Array.from(pop.mean), variance: Float64Array.from(pop.variance) }, { mean: obsM.slice(0, C), variance: obsV.slice(0, C), count: counts[0] }, 0.9);
    const [m1, v1] = run(1);
    expect(maxRelErr(m1, one.mean)).toBeLessThan(1e-6);
    expect(maxRelErr(v1, one.variance)).toBeLessThan(1e-6);
    // three groups with unequal counts, float64 by hand
    const m = new Float64Array(C), v = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let sm = 0, su = 0;
      for (let g = 0; g < G; g++) { sm += obsM[g * C + c]; su += obsV[g * C + c] * counts[g] / (counts[g] - 1); }
      m[c] = 0.9 * pop.mean[c] + 0.1 * sm / G;
      v[c] = 0.9 * pop.variance[c] + 0.1 * su / G;
    }
    const [m3, v3] = run(3);
    expect(maxRelErr(m3, m)).toBeLessThan(1e-6);
    expect(maxRelErr(v3, v)).toBeLessThan(1e-6);
  });
});

describe('global average pooling (BnlabGAP / BnlabGAPGrad)', () => {
  it.each([[[2, 3, 5, 4]], [[1, 1, 1, 3]], [[32, 8, 8, 64]]])('shape %j: value and gradient match float64', (shape) => {
    tf.setBackend('wasm');
    expect(tf.getKernel(GAP, 'wasm')).toBeDefined();
    const [B, H, W, C] = shape;
    const x = rand32(B * H * W * C, 21), w = rand32(B * C, 22);
    const got = tf.tidy(() => {
      const tx = tf.tensor4d(x, shape as [number, number, number, number]), tw = tf.tensor2d(w, [B, C]);
      const y = globalAvgPool(tx).dataSync().slice();
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(globalAvgPool(v as tf.Tensor4D), tw)))(tx).dataSync().slice();
      return { y, g };
    });
    const y = new Float64Array(B * C), g = new Float64Array(x.length);
    for (let b = 0; b < B; b++) for (let p = 0; p < H * W; p++) for (let c = 0; c < C; c++) {
      y[b * C + c] += x[(b * H * W + p) * C + c] / (H * W);
      g[(b * H * W + p) * C + c] = w[b * C + c] / (H * W);
    }
    expect(maxRelErr(got.y, y)).toBeLessThan(1e-5);
    expect(maxRelErr(got.g, g)).toBeLessThan(1e-6);
  });
});

describe('BatchMatMul through the native sgemm', () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[32, 64], [64, 10], false, false], // a CIFAR ResNet's classifier
    [[64, 32], [64, 10], true, false], // its weight gradient (x^T dy)
    [[32, 10], [64, 10], false, true], // its input gradient (dy W^T)
    [[3, 5, 7], [3, 7, 2], false, false], // batched
    [[3, 7, 5], [1, 2, 7], true, true], // batch 1 broadcasts, both transposed
    [[1, 1], [1, 1], false, false],
  ];
  it.each(cases)('%j x %j (transposeA %s, transposeB %s) matches cpu', (as, bs, ta, tb) => {
    const [a, b] = [rand32(as.reduce((p, x) => p * x, 1), 5), rand32(bs.reduce((p, x) => p * x, 1), 6)];
    const run = (backend: string) => {
      tf.setBackend(backend);
      return tf.tidy(() => tf.matMul(tf.tensor(a, as), tf.tensor(b, bs), ta, tb).dataSync().slice());
    };
    expect(tf.getKernel('BatchMatMul', 'wasm')).toBeDefined();
    expect(maxRelErr(run('wasm'), run('cpu'))).toBeLessThan(1e-5);
  });

  it('switches off to the transpose fix over XNNPACK', () => {
    const on = tf.getKernel('BatchMatMul', 'wasm');
    try {
      expect(setWasmKernels({ nativeMatMul: false })).not.toContain('nativeMatMul');
      expect(tf.getKernel('BatchMatMul', 'wasm')).not.toBe(on);
      tf.setBackend('wasm');
      const y = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([5, 6, 7, 8], [2, 2]), false, true).dataSync());
      expect(Array.from(y)).toEqual([17, 23, 39, 53]);
    } finally {
      expect(setWasmKernels()).toContain('nativeMatMul');
    }
  });
});

describe('addRelu (BnlabAddRelu / BnlabReluGrad)', () => {
  // value and gradients of sum(relu(a + b) * w), with a float64 reference
  function grads(a: Float32Array, b: Float32Array, w: Float32Array, shape: number[]) {
    return tf.tidy(() => {
      const [ta, tb, tw] = [a, b, w].map((d) => tf.tensor(d, shape));
      const y = addRelu(ta, tb);
      const g = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(addRelu(x, z), tw)))([ta, tb]);
      return { y: y.dataSync().slice(), da: g[0].dataSync().slice(), db: g[1].dataSync().slice() };
    });
  }

  it.each([[[2, 5, 5, 3]], [[1, 1, 1, 1]], [[4, 32, 32, 16]]])('shape %j: value and both gradients match float64', (shape) => {
    tf.setBackend('wasm');
    expect(tf.getKernel(ADD_RELU, 'wasm')).toBeDefined();
    const n = shape.reduce((p, x) => p * x, 1);
    const a = rand32(n, 7), b = rand32(n, 8), w = rand32(n, 9);
    const got = grads(a, b, w, shape);
    const y = new Float64Array(n), d = new Float64Array(n);
    for (let i = 0; i < n; i++) { const s = a[i] + b[i]; y[i] = s > 0 ? s : 0; d[i] = s > 0 ? w[i] : 0; }
    expect(maxRelErr(got.y, y)).toBeLessThan(1e-6);
    expect(maxRelErr(got.da, d)).toBeLessThan(1e-6);
    expect(maxRelErr(got.db, d)).toBeLessThan(1e-6);
    tf.setBackend('cpu');
    const cpu = grads(a, b, w, shape); // the tf-op path (its zeros may be -0: dy * 0)
    expect(maxRelErr(cpu.da, got.da)).toBe(0);
  });

  it('Add: large same-shape float32 natively, everything else (broadcast, int32, small) stock; all exact', () => {
    tf.setBackend('wasm');
    const big = [4, 32, 32, 16], n = 65536;
    const a = rand32(n, 11), b = rand32(n, 12);
    const sum = tf.tidy(() => tf.add(tf.tensor(a, big), tf.tensor(b, big)).dataSync().slice());
    for (let i = 0; i < n; i++) expect(sum[i]).toBe(Math.fround(a[i] + b[i]));
    // broadcasting and int32 take the stock kernel and stay right
    const bc = tf.tidy(() => tf.add(tf.tensor(a, big), tf.tensor(b.slice(0, 16), [16])).dataSync().slice());
    for (const i of [0, 17, n - 1]) expect(bc[i]).toBe(Math.fround(a[i] + b[i % 16]));
    const ints = tf.tidy(() => tf.add(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')).dataSync());
    expect(Array.from(ints)).toEqual([5, 7, 9]);
  });

  it('small binary ops (softmax, loss, bias) in JS match the cpu backend exactly, broadcasting included', () => {
    const cases: [string, number[], number[]][] = [['sub', [32, 10], [32, 1]], ['mul', [32, 1], [32, 10]], ['add', [32, 10], [10]], ['sub', [1], [7, 3]]];
    for (const [op, as, bs] of cases) {
      const a = rand32(as.reduce((p, x) => p * x, 1), 31), b = rand32(bs.reduce((p, x) => p * x, 1), 32);
      const run = (backend: string) => {
        tf.setBackend(backend);
        return tf.tidy(() => {
          const [ta, tb] = [tf.tensor(a, as), tf.tensor(b, bs)];
          return (op === 'sub' ? tf.sub(ta, tb) : op === 'mul' ? tf.mul(ta, tb) : tf.add(ta, tb)).dataSync().slice();
        });
      };
      const [w, c] = [run('wasm'), run('cpu')];
      expect(w.length, op).toBe(c.length);
      expect(maxRelErr(w, c), `${op} ${as} ${bs}`).toBe(0);
    }
  });

  it('switches off to tf.relu(tf.add()) and does not leak', () => {
    tf.setBackend('wasm');
    const shape = [2, 4, 4, 3];
    const a = rand32(96, 1), b = rand32(96, 2), w = rand32(96, 3);
    grads(a, b, w, shape);
    const before = tf.memory().numTensors;
    const on = grads(a, b, w, shape);
    expect(tf.memory().numTensors).toBe(before);
    try {
      process.env.BNLAB_WASM_KERNELS = 'fusedBN';
      expect(setWasmKernels()).toEqual(['fusedBN']);
      expect(tf.getKernel(ADD_RELU, 'wasm')).toBeUndefined();
      expect(maxRelErr(grads(a, b, w, shape).da, on.da)).toBe(0);
    } finally {
      delete process.env.BNLAB_WASM_KERNELS;
      setWasmKernels();
    }
  });
});

describe('max pooling gradient (native MaxPoolGrad)', () => {
  // d/dx sum(maxPool(relu(x)) * dy): relu makes whole windows of zeros, where the gradient goes
  // to the first maximum in row-major window order (tfjs' and PyTorch's choice)
  const grad = (backend: string, shape: [number, number, number, number], k: number, s: number, pad: 'same' | 'valid', seed: number) => {
    tf.setBackend(backend);
    return tf.tidy(() => {
      const x = tf.tensor4d(rand32(shape.reduce((a, b) => a * b), seed), shape);
      const y = tf.maxPool(tf.relu(x), k, s, pad);
      const dy = tf.tensor(rand32(y.size, seed + 1), y.shape);
      return tf.grad((t) => tf.maxPool(tf.relu(t as tf.Tensor4D), k, s, pad).mul(dy).sum())(x).dataSync() as Float32Array;
    });
  };
  it.each([
    [[2, 16, 16, 8], 3, 2, 'same'], // ResNet-50's stem pooling
    [[8, 32, 32, 64], 3, 2, 'same'], // its 64x64 bench size (batch 8: threaded, and the cpu reference stays quick)
    [[3, 7, 9, 5], 3, 2, 'same'],
    [[2, 8, 8, 3], 2, 2, 'valid'],
    [[1, 9, 9, 4], 3, 1, 'valid'],
    [[2, 5, 6, 3], 3, 3, 'same'],
  ] as const)('%j k%i s%i %s matches the cpu backend', (shape, k, s, pad) => {
    const want = grad('cpu', [...shape], k, s, pad, 5);
    const got = grad('wasm', [...shape], k, s, pad, 5);
    expect(maxRelErr(got, want)).toBeLessThan(1e-6);
    // and the stock wasm kernel it replaces agrees too (off: nativeEltwise)
    try {
      setWasmKernels({ nativeEltwise: false });
      expect(maxRelErr(grad('wasm', [...shape], k, s, pad, 5), want)).toBeLessThan(1e-6);
    } finally {
      setWasmKernels();
    }
  }, 60_000);
  it('is the native kernel when nativeEltwise is on, the stock one when off', () => {
    const on = tf.getKernel('MaxPoolGrad', 'wasm');
    setWasmKernels({ nativeEltwise: false });
    const off = tf.getKernel('MaxPoolGrad', 'wasm');
    setWasmKernels();
    expect(on?.kernelFunc).not.toBe(off?.kernelFunc);
    expect(tf.getKernel('MaxPoolGrad', 'wasm')?.kernelFunc).not.toBe(off?.kernelFunc);
  });
});
