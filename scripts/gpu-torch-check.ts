// bnlab on a device against PyTorch in float64 (scripts/torch_crosscheck.py, the reference of
// test/torch-crosscheck.test.ts), from the same weights and inputs: one training step's forward
// (train-mode logits under ghost BN, each BN layer's batch statistics) and backward (gradients of
// sum(logits * R), a loss that reaches every parameter), the gradients with frozen population
// statistics (FrozenBN), and population-mode logits. The SGD update itself is a golden case of
// scripts/gpu-golden.ts. Exit 1 when a comparison is outside its tolerance.
//   npx tsx scripts/gpu-torch-check.ts [--python python3] [--keep DIR] [device flags]
import '@tensorflow/tfjs'; // gradients
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { useCudaBackend } from '../src/backend/cuda/index.js';
import { collectObservations, type BNContext, type LayerStats } from '../src/nn/batchnorm.js';
import { buildNetwork, initParams, type ModelConfig } from '../src/nn/resnet.js';
import { DEVICE_FLAGS, DEVICE_HELP, deviceOptions, openDevice } from './gpu/device.js';

const SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), 'torch_crosscheck.py');
const EPS = 1e-5;

/** The test's tolerances (what bnlab on wasm meets): max-relative for logits and statistics, norm-wise for gradients. */
const TOL = { logits: 1e-4, stats: 1e-4, grads: 1e-3 };
const GRAD_F32 = 4;

interface Case {
  label: string;
  model: ModelConfig;
  input: [number, number, number, number];
  classes: number;
  nbs: number;
  seed: number;
  /** scale of the random gammas of each block's last BN (else 1 ± 0.3): keeps ResNet-50's gradients finite at init */
  lastGamma?: { name: RegExp; scale: number };
}

const CASES: Case[] = [
  { label: 'resnet-cifar-20 width 16, 32x32, batch 32, NBS 8', model: { arch: 'resnet-cifar', depth: 20, width: 16, zero_init_last_gamma: false }, input: [32, 32, 32, 3], classes: 10, nbs: 8, seed: 21 },
  // 64x64: at 32x32 ResNet-50's last stage is 1x1, and BN over 2 values is too ill-conditioned
  // for float32 to be compared with float64 at all (test/torch-crosscheck.test.ts)
  { label: 'resnet50 width 4, 64x64, batch 4, NBS 2', model: { arch: 'resnet50', depth: 50, width: 4, zero_init_last_gamma: false }, input: [4, 64, 64, 3], classes: 7, nbs: 2, seed: 12, lastGamma: { name: /\.bn3\.gamma$/, scale: 0.3 } },
];

function uniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}
const rand = (n: number, r: () => number) => Float32Array.from({ length: n }, r);

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < b.length; i++) (e = Math.max(e, Math.abs(a[i] - b[i]))), (s = Math.max(s, Math.abs(b[i])));
  return a.length === b.length ? e / Math.max(s, 1e-30) : Infinity;
}
function normRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < b.length; i++) (e += (a[i] - b[i]) ** 2), (s += b[i] ** 2);
  return a.length === b.length ? Math.sqrt(e / Math.max(s, 1e-300)) : Infinity;
}

/** bnlab's side on the current backend, and the files torch_crosscheck.py reads. */
function ours(c: Case, dir: string) {
  const net = buildNetwork(c.model, c.input[3], c.classes);
  const r = uniform(c.seed);
  const values = initParams(net.params, c.seed);
  for (const s of net.params) {
    const v = values.get(s.name)!;
    if (s.kind === 'gamma') for (let i = 0; i < v.length; i++) v[i] = c.lastGamma?.name.test(s.name) ? c.lastGamma.scale * r() : 1 + 0.3 * r();
    if (s.kind === 'beta' || s.kind === 'bias') for (let i = 0; i < v.length; i++) v[i] = 0.2 * r();
    if (s.kind === 'fc') for (let i = 0; i < v.length; i++) v[i] = 0.3 * r();
  }
  const [n, , , ch] = c.input;
  const x = rand(n * c.input[1] * c.input[2] * ch, r), R = rand(n * c.classes, r);
  const params = net.params.map((s) => tf.tensor(values.get(s.name)!, s.shape));
  const asMap = (ts: tf.Tensor[]) => new Map(net.params.map((s, i) => [s.name, ts[i]]));
  const xT = tf.tensor4d(x, c.input), rT = tf.tensor2d(R, [n, c.classes]);
  const batchCtx: BNContext = { source: 'batch', nbs: c.nbs, eps: EPS };
  const out = { logitsTrain: new Float32Array() as Float32Array<ArrayBufferLike>, logitsEval: new Float32Array() as Float32Array<ArrayBufferLike>, stats: new Map<string, [Float32Array, Float32Array]>(), grads: new Map<string, Float32Array>(), frozen: new Map<string, Float32Array>() };

  const watcher = collectObservations();
  const logits = tf.tidy(() => net.forward(asMap(params), xT, { ...batchCtx, observer: watcher }));
  const obs = watcher.observed;
  out.logitsTrain = logits.dataSync() as Float32Array;
  for (const o of obs) out.stats.set(o.layer, [o.mean.dataSync() as Float32Array, o.variance.dataSync() as Float32Array]);
  tf.dispose([logits, ...obs.flatMap((o) => [o.mean, o.variance])]);
  const grads = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(net.forward(asMap(ts), xT, batchCtx), rT)))(params);
  net.params.forEach((s, i) => out.grads.set(s.name, grads[i].dataSync() as Float32Array));
  tf.dispose(grads);

  // population statistics: the first group's, perturbed (as the test does)
  const pop = new Map<string, [Float32Array, Float32Array]>();
  for (const { name, channels } of net.bnLayers) {
    const [m, v] = out.stats.get(name)!;
    pop.set(name, [Float32Array.from({ length: channels }, (_, k) => m[k] + 0.1 * r() * Math.sqrt(v[k])), Float32Array.from({ length: channels }, (_, k) => v[k] * (1 + 0.3 * r()) + 1e-3)]);
  }
  const popMap = new Map<string, LayerStats>([...pop].map(([k, [m, v]]) => [k, { mean: tf.tensor1d(m), variance: tf.tensor1d(v) }]));
  const popCtx: BNContext = { source: 'population', eps: EPS, population: popMap };
  const le = tf.tidy(() => net.forward(asMap(params), xT, popCtx));
  out.logitsEval = le.dataSync() as Float32Array;
  const gf = tf.grads((...ts: tf.Tensor[]) => tf.sum(tf.mul(net.forward(asMap(ts), xT, popCtx), rT)))(params);
  net.params.forEach((s, i) => out.frozen.set(s.name, gf[i].dataSync() as Float32Array));
  tf.dispose([le, ...gf, ...params, xT, rT, ...[...popMap.values()].flatMap((v) => [v.mean, v.variance])]);

  // torch_crosscheck.py's input: input.json (model, eps, nbs, tensor index) + input.bin (float32)
  const ts: [string, number[], Float32Array][] = [['x', c.input, x], ['R', [n, c.classes], R]];
  for (const s of net.params) ts.push([`param/${s.name}`, s.shape, values.get(s.name)!]);
  for (const [k, [m, v]] of pop) ts.push([`pop_mean/${k}`, [m.length], m], [`pop_var/${k}`, [v.length], v]);
  const index: Record<string, { shape: number[]; offset: number }> = {};
  let off = 0;
  for (const [k, shape, d] of ts) (index[k] = { shape, offset: off }), (off += d.length);
  const blob = new Float32Array(off);
  for (const [k, , d] of ts) blob.set(d, index[k].offset);
  writeFileSync(join(dir, 'input.bin'), new Uint8Array(blob.buffer));
  const model = { arch: c.model.arch, depth: c.model.depth, width: c.model.width, in_ch: ch, classes: c.classes };
  writeFileSync(join(dir, 'input.json'), JSON.stringify({ model, eps: EPS, nbs: c.nbs, tensors: index }));
  return { net, out };
}

function reference(dir: string, python: string): (name: string) => Float64Array {
  const p = spawnSync(python, [SCRIPT, dir], { encoding: 'utf8', timeout: 300_000 });
  if (p.status !== 0) throw new Error(`${python} torch_crosscheck.py failed (${p.status ?? p.signal}): ${(p.error?.message ?? p.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  const hdr = JSON.parse(readFileSync(join(dir, 'output.json'), 'utf8')) as { torch: string; tensors: Record<string, { shape: number[]; offset: number }> };
  const all = new Float64Array(new Uint8Array(readFileSync(join(dir, 'output.bin'))).buffer);
  console.log(`  reference: PyTorch ${hdr.torch}, float64 on the CPU`);
  return (name) => {
    const t = hdr.tensors[name];
    if (!t) throw new Error(`PyTorch output has no tensor ${name}`);
    return all.subarray(t.offset, t.offset + t.shape.reduce((a, b) => a * b, 1));
  };
}

async function main(): Promise<number> {
  const v = parseArgs({ options: { python: { type: 'string', default: process.env.BNLAB_PYTHON ?? 'python3' }, keep: { type: 'string' }, help: { type: 'boolean' }, ...DEVICE_FLAGS } }).values;
  if (v.help) return console.log(`usage: gpu-torch-check.ts [--python EXE] [--keep DIR]\n${DEVICE_HELP}`), 0;
  const o = deviceOptions(v);
  if (o.tf32 && !o.fake) console.log('note: TF32 on; the tolerances below are those of full float32 math');
  const { device, label } = await openDevice(o);
  await useCudaBackend(device);
  console.log(`device: ${label}`);
  console.log(`tolerances: logits and BN statistics max |diff| / max |ref| ${TOL.logits}; gradients ||diff|| / ||ref|| per parameter ${TOL.grads}, or ${GRAD_F32}x PyTorch float32's own error there if larger`);
  let failed = 0;
  for (const [i, c] of CASES.entries()) {
    const dir = v.keep ? join(v.keep, String(i)) : mkdtempSync(join(tmpdir(), 'bnlab-torch-'));
    mkdirSync(dir, { recursive: true });
    console.log(`${c.label}:`);
    try {
      const { net, out } = ours(c, dir);
      const ref = reference(dir, v.python!);
      const worst = (names: string[], f: (n: string) => number) => names.reduce<[number, string]>((w, n) => (f(n) > w[0] ? [f(n), n] : w), [-Infinity, '']);
      const stat = worst(net.bnLayers.map((l) => l.name), (n) => Math.max(maxRel(out.stats.get(n)![0], ref(`stat_mean/${n}`)), maxRel(out.stats.get(n)![1], ref(`stat_var/${n}`))));
      const names = net.params.map((s) => s.name);
      // A gradient that cancels heavily (a beta behind a BN) is as far off in PyTorch's own
      // float32: such a parameter may be off by GRAD_F32 times that, whichever is larger.
      const gradTol = (n: string) => Math.max(TOL.grads, GRAD_F32 * normRel(ref(`f32/grad/${n}`), ref(`grad/${n}`)));
      const grad = worst(names, (n) => normRel(out.grads.get(n)!, ref(`grad/${n}`)) / gradTol(n));
      const frozen = worst(names, (n) => normRel(out.frozen.get(n)!, ref(`grad_frozen/${n}`)));
      const g = (n: string) => normRel(out.grads.get(n)!, ref(`grad/${n}`));
      const rows: [string, number, number, string][] = [
        ['train-mode logits', maxRel(out.logitsTrain, ref('logits_train')), TOL.logits, `PyTorch float32 ${maxRel(ref('f32/logits_train'), ref('logits_train')).toExponential(1)}`],
        ['BN batch statistics', stat[0], TOL.stats, stat[1]],
        ['gradients', g(grad[1]), gradTol(grad[1]), `closest to its tolerance: ${grad[1]}; PyTorch float32 ${normRel(ref(`f32/grad/${grad[1]}`), ref(`grad/${grad[1]}`)).toExponential(1)} there`],
        ['FrozenBN gradients', frozen[0], TOL.grads, frozen[1]],
        ['population-mode logits', maxRel(out.logitsEval, ref('logits_eval')), TOL.logits, `PyTorch float32 ${maxRel(ref('f32/logits_eval'), ref('logits_eval')).toExponential(1)}`],
      ];
      for (const [what, e, t, note] of rows) {
        if (!(e <= t)) failed++;
        console.log(`${e <= t ? 'PASS' : 'FAIL'}  ${what.padEnd(24)} err ${e.toExponential(2)}  tol ${+t.toPrecision(2)}  (${note})`);
      }
    } catch (e) {
      failed++;
      console.log(`FAIL  ${(e as Error).message.split('\n')[0]}`);
    } finally {
      if (!v.keep) rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`torch: ${failed ? `${failed} FAIL` : 'all PASS'}`);
  return failed ? 1 : 0;
}

process.exitCode = await main().catch((e: Error) => (console.error(`gpu-torch-check: ${e.message}`), 1));
