// bnlab's ResNets against an independent float64 PyTorch implementation (scripts/torch_resnet.py)
// loaded with the same weights: parameter names/counts, train-mode logits under ghost BN, the
// batch statistics each BN layer observed, parameter gradients, and population-mode logits.
// Needs Debian's python3-torch for /usr/bin/python3; fails (never skips) without it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { collectObservations, type BNContext, type LayerStats } from '../src/nn/batchnorm.js';
import { buildNetwork, countParams, initParams, type ModelConfig } from '../src/nn/resnet.js';
import { uniform } from './helpers/random.js';

const PYTHON = '/usr/bin/python3';
const SCRIPTS = fileURLToPath(new URL('../scripts/', import.meta.url));
const EPS = 1e-5;

function requireTorch(): void {
  // Importing torch takes ~1 s on an idle machine and several on a busy one: bound it, generously.
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    throw new Error(
      `${PYTHON} cannot import torch/numpy (${(r.error?.message ?? r.stderr).trim().split('\n').pop()}). ` +
        'This cross-check needs PyTorch: run `apt-get install python3-torch` (CI installs it).',
    );
  }
}

const randArray = (len: number, r: () => number, scale = 1, shift = 0) => Float32Array.from({ length: len }, () => r() * scale + shift);

type Tensors = Record<string, { shape: number[]; data: Float32Array | Float64Array }>;

function writeTensors(dir: string, stem: string, header: Record<string, unknown>, ts: Tensors): void {
  const index: Record<string, { shape: number[]; offset: number }> = {};
  let off = 0;
  for (const [k, t] of Object.entries(ts)) {
    index[k] = { shape: t.shape, offset: off };
    off += t.data.length;
  }
  const blob = new Float32Array(off);
  for (const [k, t] of Object.entries(ts)) blob.set(t.data, index[k].offset);
  writeFileSync(join(dir, `${stem}.bin`), Buffer.from(blob.buffer));
  writeFileSync(join(dir, `${stem}.json`), JSON.stringify({ ...header, tensors: index }));
}

interface TorchResult {
  torch: string;
  param_count: number;
  param_shapes: Record<string, number[]>;
  get(name: string): { shape: number[]; data: Float64Array };
}

function readResult(dir: string): TorchResult {
  const hdr = JSON.parse(readFileSync(join(dir, 'output.json'), 'utf8'));
  const buf = readFileSync(join(dir, 'output.bin'));
  const all = new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return {
    ...hdr,
    get(name: string) {
      const t = hdr.tensors[name];
      if (!t) throw new Error(`PyTorch output has no tensor ${name}`);
      const size = t.shape.reduce((a: number, b: number) => a * b, 1);
      return { shape: t.shape, data: all.subarray(t.offset, t.offset + size) };
    },
  };
}

/** max |a-b| / max |b|: error relative to the tensor's scale. */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    e = Math.max(e, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return e / Math.max(s, 1e-30);
}
/** ||a-b|| / ||b||. */
function normRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    e += (a[i] - b[i]) ** 2;
    s += b[i] ** 2;
  }
  return Math.sqrt(e / Math.max(s, 1e-300));
}

interface Case {
  label: string;
  model: ModelConfig;
  input: [number, number, number, number]; // NHWC
  classes: number;
  nbs: number;
  seed: number;
  /** Scale of the random gammas of each residual branch's last BN (default: like the others, 1 ± 0.3). */
  lastGamma?: { name: RegExp; scale: number };
}

const CASES: Case[] = [
  { label: 'resnet-cifar depth 8 width 4', model: { arch: 'resnet-cifar', depth: 8, width: 4, zero_init_last_gamma: false }, input: [8, 8, 8, 3], classes: 5, nbs: 4, seed: 11 },
  // 64x64, not 32x32: at 32x32 stage 4 is 1x1, so with nbs 2 its BNs normalize two values each;
  // their backward is catastrophic cancellation (dx ~ eps/var), and even PyTorch's own float32 is
  // then 5-45% off float64 in some gradients. Likewise last-BN gammas of 1 ± 0.3 let gradients
  // explode through 16 blocks at init (1e4-1e6): non-zero gammas in ±0.3 keep every path live and
  // the case well conditioned (PyTorch float32 vs float64: ~1e-5).
  {
    label: 'resnet50 width 4',
    model: { arch: 'resnet50', depth: 50, width: 4, zero_init_last_gamma: false },
    input: [4, 64, 64, 3],
    classes: 7,
    nbs: 2,
    seed: 12,
    lastGamma: { name: /\.bn3\.gamma$/, scale: 0.3 },
  },
];

const dirs: string[] = [];
beforeAll(async () => {
  await initBackend('wasm', 1);
});
// BNLAB_KEEP_TMP=1 keeps the exchange directories (input/output .json + .bin) for debugging.
afterAll(() => process.env.BNLAB_KEEP_TMP || dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

it(`${PYTHON} has PyTorch (python3-torch)`, () => requireTorch(), 120_000);

for (const c of CASES) {
  describe(`PyTorch cross-check: ${c.label}`, () => {
    const net = buildNetwork(c.model, c.input[3], c.classes);
    const ours = {
      logitsTrain: new Float32Array() as Float32Array<ArrayBufferLike>,
      logitsEval: new Float32Array() as Float32Array<ArrayBufferLike>,
      stats: new Map<string, { mean: Float32Array; variance: Float32Array; shape: number[] }>(),
      grads: new Map<string, Float32Array>(),
      gradsFrozen: new Map<string, Float32Array>(),
    };
    let ref!: TorchResult;

    beforeAll(() => {
      requireTorch();
      const r = uniform(c.seed);
      // Weights: bnlab's init, then non-trivial gammas/betas (zero-init off, so every path matters).
      const values = initParams(net.params, c.seed);
      for (const s of net.params) {
        const v = values.get(s.name)!;
        if (s.kind === 'gamma') for (let i = 0; i < v.length; i++) v[i] = c.lastGamma?.name.test(s.name) ? c.lastGamma.scale * r() : 1 + 0.3 * r();
        if (s.kind === 'beta' || s.kind === 'bias') for (let i = 0; i < v.length; i++) v[i] = 0.2 * r();
        if (s.kind === 'fc') for (let i = 0; i < v.length; i++) v[i] = 0.3 * r();
      }
      const [n, h, w, ch] = c.input;
      const x = randArray(n * h * w * ch, r);
      const R = randArray(n * c.classes, r);

      const tensors = net.params.map((s) => tf.tensor(values.get(s.name)!, s.shape));
      const asMap = (ts: tf.Tensor[]) => new Map(net.params.map((s, i) => [s.name, ts[i]]));
      const xT = tf.tensor4d(x, c.input);
      const rT = tf.tensor2d(R, [n, c.classes]);
      const batchCtx: BNContext = { source: 'batch', nbs: c.nbs, eps: EPS };

      // Train-mode logits and observed statistics.
      const watcher = collectObservations();
      const logits = tf.tidy(() => net.forward(asMap(tensors), xT, { ...batchCtx, observer: watcher }));
      const obs = watcher.observed;
      ours.logitsTrain = logits.dataSync() as Float32Array;
      logits.dispose();
      for (const o of obs) {
        expect(ours.stats.has(o.layer), `layer ${o.layer} observed twice`).toBe(false);
        ours.stats.set(o.layer, { mean: o.mean.dataSync() as Float32Array, variance: o.variance.dataSync() as Float32Array, shape: o.mean.shape });
        o.mean.dispose();
        o.variance.dispose();
      }
      expect([...ours.stats.keys()]).toEqual(net.bnLayers.map((l) => l.name));

      // Gradients of sum(logits * R).
      const grads = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(net.forward(asMap(ts), xT, batchCtx), rT)))(tensors);
      net.params.forEach((s, i) => ours.grads.set(s.name, grads[i].dataSync() as Float32Array));
      tf.dispose(grads);

      // Population statistics: the observed statistics of the first group, perturbed.
      const pop: Record<string, { mean: Float32Array; variance: Float32Array }> = {};
      for (const { name, channels } of net.bnLayers) {
        const st = ours.stats.get(name)!;
        pop[name] = {
          mean: Float32Array.from({ length: channels }, (_, k) => st.mean[k] + 0.1 * r() * Math.sqrt(st.variance[k])),
          variance: Float32Array.from({ length: channels }, (_, k) => st.variance[k] * (1 + 0.3 * r()) + 1e-3),
        };
      }
      const popMap = new Map<string, LayerStats>(Object.entries(pop).map(([k, v]) => [k, { mean: tf.tensor1d(v.mean), variance: tf.tensor1d(v.variance) }]));
      const le = tf.tidy(() => net.forward(asMap(tensors), xT, { source: 'population', eps: EPS, population: popMap }));
      ours.logitsEval = le.dataSync() as Float32Array;
      le.dispose();
      // FrozenBN training: gradients through the fixed normalization.
      const popCtx: BNContext = { source: 'population', eps: EPS, population: popMap };
      const gf = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(net.forward(asMap(ts), xT, popCtx), rT)))(tensors);
      net.params.forEach((s, i) => ours.gradsFrozen.set(s.name, gf[i].dataSync() as Float32Array));
      tf.dispose(gf);
      for (const v of popMap.values()) tf.dispose([v.mean, v.variance]);
      tf.dispose([...tensors, xT, rT]);

      // The PyTorch reference.
      const dir = mkdtempSync(join(tmpdir(), 'bnlab-torch-'));
      dirs.push(dir);
      const ts: Tensors = { x: { shape: c.input, data: x }, R: { shape: [n, c.classes], data: R } };
      for (const s of net.params) ts[`param/${s.name}`] = { shape: s.shape, data: values.get(s.name)! };
      for (const [k, v] of Object.entries(pop)) {
        ts[`pop_mean/${k}`] = { shape: [v.mean.length], data: v.mean };
        ts[`pop_var/${k}`] = { shape: [v.variance.length], data: v.variance };
      }
      const model = { arch: c.model.arch, depth: c.model.depth, width: c.model.width, in_ch: ch, classes: c.classes };
      writeTensors(dir, 'input', { model, eps: EPS, nbs: c.nbs }, ts);
      const p = spawnSync(PYTHON, [join(SCRIPTS, 'torch_crosscheck.py'), dir], { encoding: 'utf8', timeout: 240_000 });
      if (p.status !== 0) throw new Error(`torch_crosscheck.py failed (${p.status}):\n${p.error?.message ?? ''}${p.stderr}`);
      ref = readResult(dir);
    }, 300_000);

    it('has the same parameters (names, shapes, count)', () => {
      expect(ref.param_shapes).toEqual(Object.fromEntries(net.params.map((s) => [s.name, s.shape])));
      expect(ref.param_count).toBe(countParams(net.params));
    });

    it('computes the same train-mode logits (ghost BN over groups of nbs)', () => {
      const t = ref.get('logits_train');
      expect(t.shape).toEqual([c.input[0], c.classes]);
      const e = maxRel(ours.logitsTrain, t.data);
      console.log(`${c.label}: logits (batch) max rel err ${e.toExponential(2)} (PyTorch float32: ${maxRel(ref.get('f32/logits_train').data, t.data).toExponential(2)})`);
      expect(e).toBeLessThan(1e-4);
    });

    it('observes the same per-group batch means and biased variances', () => {
      let worst = 0;
      for (const { name } of net.bnLayers) {
        const st = ours.stats.get(name)!;
        const m = ref.get(`stat_mean/${name}`), v = ref.get(`stat_var/${name}`);
        expect(m.shape, name).toEqual(st.shape);
        const em = maxRel(st.mean, m.data), ev = maxRel(st.variance, v.data);
        expect(em, `${name} mean`).toBeLessThan(1e-4);
        expect(ev, `${name} variance`).toBeLessThan(1e-4);
        worst = Math.max(worst, em, ev);
      }
      console.log(`${c.label}: BN stats max rel err ${worst.toExponential(2)}`);
    });

    it('computes the same parameter gradients', () => {
      let worst = 0, at = '', worst32 = 0;
      for (const s of net.params) {
        const g = ref.get(`grad/${s.name}`).data;
        const e = normRel(ours.grads.get(s.name)!, g);
        if (e > worst) [worst, at] = [e, s.name];
        worst32 = Math.max(worst32, normRel(ref.get(`f32/grad/${s.name}`).data, g));
      }
      console.log(`${c.label}: gradients max norm-wise rel err ${worst.toExponential(2)} (${at}; PyTorch float32: ${worst32.toExponential(2)})`);
      for (const s of net.params) expect(normRel(ours.grads.get(s.name)!, ref.get(`grad/${s.name}`).data), s.name).toBeLessThan(1e-3);
    });

    it('computes the same gradients with frozen population statistics (FrozenBN training)', () => {
      let worst = 0;
      for (const s of net.params) {
        const e = normRel(ours.gradsFrozen.get(s.name)!, ref.get(`grad_frozen/${s.name}`).data);
        worst = Math.max(worst, e);
        expect(e, s.name).toBeLessThan(1e-3);
      }
      console.log(`${c.label}: FrozenBN gradients max norm-wise rel err ${worst.toExponential(2)}`);
    });

    it('computes the same population-mode logits', () => {
      const t = ref.get('logits_eval').data;
      const e = maxRel(ours.logitsEval, t);
      console.log(`${c.label}: logits (population) max rel err ${e.toExponential(2)} (PyTorch float32: ${maxRel(ref.get('f32/logits_eval').data, t).toExponential(2)})`);
      expect(e).toBeLessThan(1e-4);
    });
  });
}
