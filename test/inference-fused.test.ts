// Inference with population statistics takes shortcuts that must not change a single bit:
// each layer's scale and shift folded once per evaluation (foldPopulation), BNApply without the
// gradient wrapper when no tape records, and a residual block's end (BN apply + shortcut + ReLU)
// as one native kernel, BnlabBNApplyAddRelu. Checked against the kernels they replace and float64.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { BN_APPLY, BN_APPLY_ADD_RELU, ADD_RELU, runKernel } from '../src/backend/kernels/names.js';
import { setWasmKernels } from '../src/backend/wasm.js';
import { loadNative } from '../src/backend/native-addon.js';
import { validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { evaluate, foldAll } from '../src/eval/evaluate.js';
import { foldPopulation, type BNContext, type LayerStats } from '../src/nn/batchnorm.js';
import { buildNetwork, initParams, type ModelConfig } from '../src/nn/resnet.js';
import { rand32 } from './helpers/random.js';

const bits = (t: tf.Tensor) => Buffer.from((t.dataSync() as Float32Array).slice().buffer).toString('hex');

beforeAll(async () => {
  if (!loadNative().addon) throw new Error('the native addon is not built (CI builds it: apt-get install libdnnl-dev, npm ci)');
  await initBackend('wasm', 2);
});
afterAll(() => void setWasmKernels());

describe('BnlabBNApplyAddRelu', () => {
  it.each([[[2, 5, 5, 3]], [[3, 7, 7, 17]], [[128, 8, 8, 64]], [[1, 1, 1, 1]]])('shape %j: bit for bit BNApply then AddRelu, and float64 within rounding', (shape) => {
    expect(tf.getKernel(BN_APPLY_ADD_RELU, 'wasm')).toBeDefined();
    const C = shape[3], n = shape.reduce((a, b) => a * b, 1);
    const xv = rand32(n, 1, 3), zv = rand32(n, 2, 3), sv = rand32(C, 3, 2), hv = rand32(C, 4, 1);
    tf.tidy(() => {
      const [x, z, scale, shift] = [tf.tensor(xv, shape), tf.tensor(zv, shape), tf.tensor1d(sv), tf.tensor1d(hv)];
      const fused = runKernel(BN_APPLY_ADD_RELU, { x, z, scale, shift }) as tf.Tensor;
      const twoPass = runKernel(ADD_RELU, { a: runKernel(BN_APPLY, { x, scale, shift }, { relu: false }) as tf.Tensor, b: z }) as tf.Tensor;
      expect(bits(fused)).toBe(bits(twoPass));
      const out = fused.dataSync();
      let zeros = 0, worst = 0;
      for (let i = 0; i < n; i++) {
        const ref = Math.max(0, xv[i] * sv[i % C] + hv[i % C] + zv[i]);
        worst = Math.max(worst, Math.abs(out[i] - ref) / (1 + Math.abs(xv[i] * sv[i % C]) + Math.abs(hv[i % C]) + Math.abs(zv[i])));
        if (out[i] === 0) zeros++;
      }
      expect(worst).toBeLessThan(1e-6);
      if (n > 100) expect(zeros).toBeGreaterThan(n / 10); // the ReLU was exercised
    });
  });

  it('rejects a shortcut of another shape', () => {
    tf.tidy(() => {
      expect(() => runKernel(BN_APPLY_ADD_RELU, { x: tf.zeros([2, 2, 2, 3]), z: tf.zeros([2, 2, 2, 4]), scale: tf.ones([3]), shift: tf.zeros([3]) })).toThrow(/shortcut/);
    });
  });
});

describe('foldPopulation', () => {
  it('scale = gamma / sqrt(var + eps), shift = beta - mean*scale, against float64', () => {
    const C = 37, g = rand32(C, 11, 0.5, 1), b = rand32(C, 12, 0.5), m = rand32(C, 13, 2), v = rand32(C, 14, 0.9, 1);
    tf.tidy(() => {
      const f = foldPopulation(tf.tensor1d(g), tf.tensor1d(b), { mean: tf.tensor1d(m), variance: tf.tensor1d(v) }, 1e-5);
      const [sc, sh] = [f.scale.dataSync(), f.shift.dataSync()];
      for (let c = 0; c < C; c++) {
        const scale = g[c] / Math.sqrt(v[c] + 1e-5);
        expect(Math.abs(sc[c] - scale)).toBeLessThan(1e-6 * Math.abs(scale) + 1e-7);
        expect(Math.abs(sh[c] - (b[c] - m[c] * scale))).toBeLessThan(1e-6 * (Math.abs(b[c]) + Math.abs(m[c] * scale)) + 1e-7);
      }
    });
  });
});

describe('inference with population statistics: the same bits with and without the shortcuts', () => {
  const models: [string, ModelConfig, number][] = [
    ['ResNet-20 (basic blocks, projections)', { arch: 'resnet-cifar', depth: 20, width: 8, zero_init_last_gamma: false }, 16],
    ['ResNet-50 layout (bottlenecks)', { arch: 'resnet50', depth: 50, width: 4, zero_init_last_gamma: false }, 32],
  ];
  it.each(models)('%s: logits with folding + the fused block end equal per-call folding, two passes, and the taped path', (_, model, size) => {
    const net = buildNetwork(model, 3, 10);
    const params = new Map([...initParams(net.params, 7)].map(([k, v], i) => {
      const spec = net.params.find((s) => s.name === k)!;
      // gammas and betas away from 1 and 0, so a fold that ignored them would show
      const val = spec.kind === 'gamma' ? rand32(v.length, 100 + i, 0.4, 1) : spec.kind === 'beta' ? rand32(v.length, 100 + i, 0.3) : v;
      return [k, tf.tensor(val, spec.shape)];
    }));
    const population = new Map<string, LayerStats>(net.bnLayers.map((l, i) => [l.name, {
      mean: tf.tensor1d(rand32(l.channels, 200 + i, 0.5)), variance: tf.tensor1d(rand32(l.channels, 300 + i, 0.5, 1.2)),
    }]));
    const ctx: BNContext = { source: 'population', eps: 1e-5, population };
    const x = tf.tensor4d(rand32(6 * size * size * 3, 9), [6, size, size, 3]);
    try {
      const folded = foldAll(net, params, ctx)!;
      expect(folded.size).toBe(net.bnLayers.length);
      const fast = tf.tidy(() => bits(net.forward(params, x, { ...ctx, folded })));
      const perCall = tf.tidy(() => bits(net.forward(params, x, ctx)));
      tf.unregisterKernel(BN_APPLY_ADD_RELU, 'wasm');
      const twoPass = tf.tidy(() => bits(net.forward(params, x, ctx)));
      setWasmKernels();
      // under a tape (FrozenBN training): BNApply inside its custom gradient, no fused block end
      let taped = '';
      tf.tidy(() => { tf.grad((v: tf.Tensor) => { const y = net.forward(params, v as tf.Tensor4D, ctx); taped = bits(y); return tf.sum(y); })(x); });
      expect(perCall).toBe(fast);
      expect(twoPass).toBe(fast);
      expect(taped).toBe(fast);
      folded.forEach((f) => tf.dispose([f.scale, f.shift]));
    } finally {
      setWasmKernels();
      tf.dispose([x, ...params.values(), ...[...population.values()].flatMap((s) => [s.mean, s.variance])]);
    }
  });

  it('evaluate(): the same error and loss with the fused block end off, and no tensor left behind', async () => {
    const cfg = validateConfig({ data: { name: 'synthetic', synthetic: { classes: 4, train: 64, val: 100, size: 8, channels: 3, seed: 5 } }, model: { depth: 8, width: 8 } });
    const data = await loadDataset(cfg.data);
    const net = buildNetwork(cfg.model, 3, 4);
    const params = new Map([...initParams(net.params, 1)].map(([k, v]) => [k, tf.tensor(v, net.params.find((s) => s.name === k)!.shape)]));
    const population = new Map<string, LayerStats>(net.bnLayers.map((l, i) => [l.name, {
      mean: tf.tensor1d(rand32(l.channels, 400 + i, 0.2)), variance: tf.tensor1d(rand32(l.channels, 500 + i, 0.3, 1)),
    }]));
    const o = { ctx: { source: 'population' as const, nbs: 8, eps: 1e-5, population }, batchSize: 32 };
    try {
      const before = tf.memory().numTensors;
      const fused = await evaluate(net, params, data.val, o);
      expect(tf.memory().numTensors).toBe(before);
      tf.unregisterKernel(BN_APPLY_ADD_RELU, 'wasm');
      const plain = await evaluate(net, params, data.val, o);
      expect(fused).toEqual(plain);
      expect(fused.n).toBe(100);
    } finally {
      setWasmKernels();
      tf.dispose([...params.values(), ...[...population.values()].flatMap((s) => [s.mean, s.variance])]);
    }
  });
});
