// The bnlab wasm kernels against the stock pure-JS cpu backend (the reference).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { getKernel } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelErr as relErr } from './helpers/compare.js';
import { lcg as rng, uniformData as data } from './helpers/random.js';
import { convAll, type Case, type Pad } from './helpers/conv.js';
import { initWasmBackend, registerCpuFixes, restoreCpuKernels, setWasmFixes, setWasmKernels } from '../src/backend/wasm.js';

/** dL/dx and dL/df of sum(conv2d(x, f) * dy) on the given backend, as plain arrays. */
const convGrads = (backend: string, c: Case, seed: number): Float32Array[] => convAll(backend, c, seed).slice(1);

const fixed: Case[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: 'same' },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 2, pad: 'same' }, // odd input, stride 2
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], s: 2, pad: 'same' }, // even input: asymmetric pads
  { x: [1, 9, 8, 5], f: [3, 3, 5, 2], s: 2, pad: 'valid' }, // unused trailing rows
  { x: [2, 8, 8, 4], f: [1, 1, 4, 6], s: 2, pad: 'same' },
  { x: [2, 7, 7, 4], f: [1, 1, 4, 6], s: 2, pad: 'valid' },
  { x: [2, 6, 6, 4], f: [1, 1, 4, 6], s: 1, pad: 'same' },
  { x: [2, 15, 16, 3], f: [7, 7, 3, 4], s: 2, pad: 'same' }, // ResNet stem-like
  { x: [1, 11, 11, 3], f: [7, 7, 3, 4], s: 1, pad: 'valid' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], s: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 6, 6, 3], f: [1, 1, 3, 2], s: 1, pad: [[0, 0], [1, 0], [0, 1], [0, 0]] }, // 1x1 with pads
  { x: [8, 10, 10, 8], f: [3, 3, 8, 8], s: 1, pad: 'same' }, // larger batch
];

function randomCases(n: number): Case[] {
  const r = rng(42);
  const pick = <T,>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  return Array.from({ length: n }, () => {
    const k = pick([1, 3, 3, 5, 7]);
    const h = k + Math.floor(r() * 9), w = k + Math.floor(r() * 9);
    return {
      x: [pick([1, 2, 3]), h, w, 1 + Math.floor(r() * 5)],
      f: [k, k, 0, 1 + Math.floor(r() * 5)], s: pick([1, 2]), pad: pick<Pad>(['same', 'valid']),
    };
  }).map((c) => ({ ...c, f: [c.f[0], c.f[1], c.x[3], c.f[3]] }));
}

beforeAll(async () => {
  const info = await initWasmBackend({ threads: 1 });
  expect(info.fixes).toEqual(['filterGrad', 'inputGrad', 'batchMatMul']);
  // the fixes themselves, not the native kernels layered on top (test/dnnl-conv.test.ts,
  // test/native-kernels.test.ts)
  const on = setWasmKernels({ dnnlConv: false, nativeMatMul: false });
  expect(on).not.toContain('dnnlConv');
  expect(on).not.toContain('nativeMatMul');
  restoreCpuKernels();
});

describe('conv2d gradients on wasm match stock cpu', () => {
  it.each([...fixed, ...randomCases(16)].map((c, i) => [i, JSON.stringify(c), c] as const))(
    'case %i %s', (i, _name, c) => {
      const cpu = convGrads('cpu', c, 7 * i);
      const wasm = convGrads('wasm', c, 7 * i);
      expect(relErr(wasm[0], cpu[0]), 'dx').toBeLessThan(1e-5);
      expect(relErr(wasm[1], cpu[1]), 'dfilter').toBeLessThan(1e-5);
    });

  it('handles NCHW in the filter gradient', () => {
    const run = (b: string) => {
      tf.setBackend(b);
      return tf.tidy(() => {
        const x = tf.tensor4d(data([2, 3, 9, 9], 1), [2, 3, 9, 9]), dy = tf.tensor4d(data([2, 4, 5, 5], 2), [2, 4, 5, 5]);
        const attrs = { strides: 2, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 4] };
        return (tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, attrs) as tf.Tensor).dataSync();
      });
    };
    expect(relErr(run('wasm'), run('cpu'))).toBeLessThan(1e-5);
  });

  it('frees every intermediate', () => {
    tf.setBackend('wasm');
    convGrads('wasm', fixed[2], 1); // warm up
    const before = tf.backend().numDataIds();
    for (const c of fixed) convGrads('wasm', c, 3);
    expect(tf.backend().numDataIds()).toBe(before);
  });
});

describe('cpu filter gradient fix', () => {
  it('matches the stock cpu kernel', () => {
    const cases = fixed.slice(0, 10);
    const stock = cases.map((c, i) => convGrads('cpu', c, i)[1]);
    expect(registerCpuFixes()).toEqual(['filterGrad']);
    try {
      cases.forEach((c, i) => expect(relErr(convGrads('cpu', c, i)[1], stock[i])).toBeLessThan(1e-5));
    } finally {
      restoreCpuKernels();
    }
  });
});

describe('BatchMatMul with transposes', () => {
  it.each([[false, false], [true, false], [false, true], [true, true]])('transposeA=%s transposeB=%s', (ta, tb) => {
    const [B, m, k, n] = [3, 5, 7, 4];
    const run = (backend: string) => {
      tf.setBackend(backend);
      return tf.tidy(() => {
        const a = tf.tensor3d(data([B, m, k], 1), ta ? [B, k, m] : [B, m, k]);
        const b = tf.tensor3d(data([B, k, n], 2), tb ? [B, n, k] : [B, k, n]);
        const c2 = tf.matMul(tf.tensor2d(data([m, k], 3), ta ? [k, m] : [m, k]), tf.tensor2d(data([k, n], 4), tb ? [n, k] : [k, n]), ta, tb);
        return [tf.matMul(a, b, ta, tb).dataSync(), c2.dataSync()];
      });
    };
    const [cpu, wasm] = [run('cpu'), run('wasm')];
    expect(relErr(wasm[0], cpu[0])).toBeLessThan(1e-5);
    expect(relErr(wasm[1], cpu[1])).toBeLessThan(1e-5);
  });
});

describe('a small conv net', () => {
  // conv3x3 -> relu -> [conv3x3 s2 -> relu -> conv3x3] + conv1x1 s2 shortcut -> mean -> dense -> softmax CE.
  function netGrads(backend: string): Float32Array[] {
    tf.setBackend(backend);
    return tf.tidy(() => {
      const shapes = [[3, 3, 3, 8], [3, 3, 8, 16], [3, 3, 16, 16], [1, 1, 8, 16], [16, 5]];
      const params = shapes.map((s, i) => tf.tensor(data(s, 100 + i), s).mul(0.3));
      const x = tf.tensor4d(data([2, 9, 9, 3], 1), [2, 9, 9, 3]);
      const labels = tf.oneHot(tf.tensor1d([1, 3], 'int32'), 5);
      const loss = (w0: tf.Tensor4D, w1: tf.Tensor4D, w2: tf.Tensor4D, w3: tf.Tensor4D, w4: tf.Tensor2D) => {
        const h = tf.relu(tf.conv2d(x, w0, 1, 'same'));
        const r = tf.conv2d(tf.relu(tf.conv2d(h, w1, 2, 'same')), w2, 1, 'same');
        const y = tf.relu(r.add(tf.conv2d(h, w3, 2, 'same'))).mean([1, 2]) as tf.Tensor2D;
        return tf.losses.softmaxCrossEntropy(labels, tf.matMul(y, w4));
      };
      return tf.grads(loss as (...a: tf.Tensor[]) => tf.Tensor)(params).map((g) => g.dataSync() as Float32Array);
    });
  }

  it('has the same gradients on wasm and cpu', () => {
    const cpu = netGrads('cpu');
    const wasm = netGrads('wasm');
    cpu.forEach((g, i) => expect(relErr(wasm[i], g), `param ${i}`).toBeLessThan(1e-5));
  });
});

describe('switching fixes', () => {
  it('restores stock kernels per fix and honours BNLAB_WASM_FIXES=none', () => {
    try {
      expect(setWasmFixes({ inputGrad: false, batchMatMul: false })).toEqual(['filterGrad']);
      expect(getKernel('Conv2DBackpropInput', 'wasm')).toBeDefined(); // the stock one
      const c = fixed[1];
      expect(relErr(convGrads('wasm', c, 5)[0], convGrads('cpu', c, 5)[0])).toBeLessThan(1e-5);

      process.env.BNLAB_WASM_FIXES = 'none';
      expect(setWasmFixes()).toEqual([]);
      expect(getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined(); // stock wasm has none
    } finally {
      delete process.env.BNLAB_WASM_FIXES;
      expect(setWasmFixes()).toEqual(['filterGrad', 'inputGrad', 'batchMatMul']);
    }
  });
});

describe('threads', () => {
  // Thread count is fixed at backend init, so this runs in a fresh process. It must also exit
  // on its own (pool workers are unref()ed) and survive parent flags like --input-type.
  const code = `
    import * as tf from '@tensorflow/tfjs';
    import { initWasmBackend } from './src/backend/wasm.ts';
    const info = await initWasmBackend({ threads: 2 });
    const g = (b) => { tf.setBackend(b); return tf.tidy(() => {
      const x = tf.randomNormal([4, 16, 16, 8], 0, 1, 'float32', 1), f = tf.randomNormal([3, 3, 8, 16], 0, 1, 'float32', 2);
      return tf.grads((a, w) => tf.conv2d(a, w, 2, 'same').square().sum())([x, f]).map((t) => t.dataSync());
    }); };
    const [c, w] = [g('cpu'), g('wasm')];
    let rel = 0;
    c.forEach((ci, k) => { let d = 0, m = 0; ci.forEach((v, i) => { d = Math.max(d, Math.abs(v - w[k][i])); m = Math.max(m, Math.abs(v)); }); rel = Math.max(rel, d / m); });
    console.log(JSON.stringify({ threads: info.threads, notes: info.notes, rel }));`;

  it('runs conv gradients on 2 threads in Node and exits', () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: root, encoding: 'utf8', timeout: 60_000,
    });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.threads).toBe(Math.min(2, os.availableParallelism()));
    expect(out.rel).toBeLessThan(1e-5);
  }, 60_000);
});
