// `bnlab export` (issue 32): a run's weights and population statistics as a PyTorch state_dict in
// safetensors, loaded with load_state_dict(strict=True) by Debian's PyTorch into
// scripts/torch_resnet.py's CIFAR ResNet and into torchvision.models.resnet50, whose eval-mode
// logits on the same images must equal bnlab's own evaluation of the checkpoint with the same
// statistics. The ResNet-50 case is also bnlab's ResNet-50 against the reference implementation.
// Tolerance: both sides compute in float32 in different orders (oneDNN/wasm vs PyTorch's CPU
// kernels), so each is compared with PyTorch in float64: max |logit - ref| / max |ref| below 1e-4,
// as test/torch-crosscheck.test.ts holds population-mode logits (measured: ~1e-6, printed below).
// A wrong name, layout or statistic moves logits by O(1). Needs /usr/bin/python3 with python3-torch
// and python3-torchvision (CI installs both); fails, never skips, without them.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { readConfigFile, validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { foldAll } from '../src/eval/evaluate.js';
import type { BNContext } from '../src/nn/batchnorm.js';
import { torchvisionModule } from '../src/nn/torch-names.js';
import { readCheckpoint } from '../src/run/checkpoint.js';
import { inspectFolder } from '../src/run/folder.js';
import { runPaths } from '../src/run/paths.js';
import { createState, emaStats, loadCheckpointInto, type RunMeta } from '../src/train/state.js';
import { disposeState } from '../src/train/trainer.js';
import { tempDirs } from './helpers/run.js';
import { maxRelErr } from './helpers/compare.js';

const PYTHON = '/usr/bin/python3';
const HELPER = join(__dirname, 'helpers', 'torch_export_ref.py');
const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const env = { ...process.env, BNLAB_WASM_THREADS: '1' };
const bnlab = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 180_000, env });
const TOL = 1e-4;

const cifar = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=128', '--set', 'data.synthetic.size=8', '--set', 'data.synthetic.channels=3',
  '--set', 'model.width=4', '--set', 'model.zero_init_last_gamma=false', '--set', 'optim.batch_size=32', '--set', 'bn.nbs=8',
  '--set', 'precise.samples=64', '--set', 'epochs=2', '--quiet',
];
// ResNet-50 as torchvision builds it (width 64, 3 channels), at 64x64: one SGD step of 8 images,
// then PreciseBN on 8 (real statistics of the trained weights, not the initial 0 / 1).
const r50 = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=8', '--set', 'data.synthetic.val=4', '--set', 'data.synthetic.size=64',
  '--set', 'data.synthetic.channels=3', '--set', 'model.arch=resnet50', '--set', 'model.zero_init_last_gamma=false', '--set', 'optim.batch_size=8',
  '--set', 'bn.nbs=4', '--set', 'precise.samples=8', '--set', 'precise.batch_size=4', '--set', 'epochs=1', '--quiet',
];

const temp = tempDirs('bnlab-export-');
const root = temp();
const runs = { cifar: join(root, 'cifar'), frozen: join(root, 'frozen'), r50: join(root, 'r50') };

beforeAll(async () => {
  const t = spawnSync(PYTHON, ['-c', 'import torch, torchvision, numpy'], { encoding: 'utf8', timeout: 120_000 });
  if (t.status !== 0) throw new Error(`${PYTHON} cannot import torch/torchvision (${(t.error?.message ?? t.stderr).trim().split('\n').pop()}): apt-get install python3-torch python3-torchvision`);
  for (const [out, args] of [[runs.cifar, cifar], [runs.frozen, [...cifar, '--set', 'bn.frozen_last_epochs=1']], [runs.r50, r50]] as const) {
    const r = bnlab(['train', ...args, '--out', out]);
    if (r.status !== 0) throw new Error(r.stderr);
  }
  await initBackend('wasm', 1);
}, 300_000);

type Stats = 'ema' | 'precise' | 'frozen';

/** bnlab's own evaluation of a checkpoint (population statistics `stats`, folded as evaluate() does): the logits of the first `n` validation images. */
async function bnlabLogits(run: string, ckptPath: string, stats: Stats, n?: number) {
  const cfg = validateConfig(readConfigFile(runPaths(run).config), 'config');
  const data = await loadDataset(cfg.data, { quiet: true });
  const s = createState(cfg, data.val.channels, data.numClasses);
  loadCheckpointInto(s, readCheckpoint<RunMeta>(ckptPath), ckptPath);
  const population = stats === 'ema' ? emaStats(s) : s[stats]!;
  const ctx: BNContext = { source: 'population', eps: cfg.bn.eps, population };
  const folded = foldAll(s.net, s.params, ctx);
  const b = await data.val.load(Int32Array.from({ length: n ?? data.val.n }, (_, i) => i), { augment: false, seed: 0, epoch: 0 });
  const logits = tf.tidy(() => s.net.forward(s.params, tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]), { ...ctx, folded }));
  const out = { x: b.x, shape: [b.n, b.height, b.width, b.channels], y: b.y, logits: logits.dataSync() as Float32Array, classes: data.numClasses, cfg };
  logits.dispose();
  folded?.forEach((f) => tf.dispose([f.scale, f.shift]));
  disposeState(s);
  return out;
}

interface TorchOut {
  metadata: Record<string, string>;
  keys: number;
  eps: number[];
  f32: number[];
  f64: number[];
}

/** The export loaded strictly into the reference model, run in eval mode on `x` (NHWC). */
function torchLogits(file: string, model: 'torchvision' | 'torch_resnet', ours: Awaited<ReturnType<typeof bnlabLogits>>): TorchOut {
  const d = temp();
  const m = ours.cfg.model;
  writeFileSync(join(d, 'case.json'), JSON.stringify({ file, model, arch: m.arch, depth: m.depth, width: m.width, in_ch: ours.shape[3], classes: ours.classes, eps: ours.cfg.bn.eps, x_shape: ours.shape }));
  writeFileSync(join(d, 'x.bin'), Buffer.from(ours.x.buffer, ours.x.byteOffset, ours.x.byteLength));
  const p = spawnSync(PYTHON, [HELPER, d], { encoding: 'utf8', timeout: 240_000 });
  if (p.status !== 0) throw new Error(`torch_export_ref.py failed (${p.status}):\n${p.error?.message ?? ''}${p.stderr}`);
  return JSON.parse(readFileSync(join(d, 'out.json'), 'utf8')) as TorchOut;
}

/** Percent of rows whose argmax is not the label. */
const errorOf = (logits: ArrayLike<number>, y: Int32Array, k: number) => {
  let wrong = 0;
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (logits[i * k + j] > logits[i * k + best]) best = j;
    if (best !== y[i]) wrong++;
  }
  return (100 * wrong) / y.length;
};

function exportRun(args: string[]): string {
  const r = bnlab(['export', ...args]);
  expect(r.status, r.stderr).toBe(0);
  return /^wrote (.+?) \(/m.exec(r.stdout)![1];
}

describe('bnlab export: CIFAR ResNet into scripts/torch_resnet.py', () => {
  for (const [run, stats] of [['cifar', 'precise'], ['cifar', 'ema'], ['frozen', 'frozen']] as const) {
    it(`${run} run, --stats ${stats}: strict load, the same logits as bnlab's evaluation, and bnlab eval's error`, async () => {
      const dir = runs[run];
      const file = exportRun([dir, '--stats', stats]);
      expect(file).toBe(join(dir, `model-${stats}.safetensors`));
      const ours = await bnlabLogits(dir, runPaths(dir).last, stats);
      const ref = torchLogits(file, 'torch_resnet', ours);
      expect(ref.metadata).toMatchObject({ names: 'scripts/torch_resnet.py', stats, epoch: '2', arch: 'resnet-cifar' });
      const e = maxRelErr(ours.logits, ref.f64);
      const e32 = maxRelErr(ref.f32, ref.f64);
      console.log(`resnet-cifar-8 (${run}, ${stats}, ${ours.y.length} images): bnlab vs PyTorch float64 max rel err ${e.toExponential(2)}; PyTorch float32 vs float64 ${e32.toExponential(2)}`);
      expect(e).toBeLessThan(TOL);
      // `bnlab eval` of the same checkpoint and statistics: the same error as PyTorch's logits give.
      const ev = bnlab(['eval', '--run', dir, '--stats', stats, '--json', '--quiet']);
      expect(ev.status, ev.stderr).toBe(0);
      const row = (JSON.parse(ev.stdout) as { rows: { err_mean: number }[] }).rows[0];
      expect(row.err_mean).toBeCloseTo(errorOf(ref.f32, ours.y, ours.classes), 3); // eval.csv rounds to 4 decimals
    }, 240_000);
  }

  it('default statistics: FrozenBN\'s after the switch, else PreciseBN when the checkpoint holds them; --epoch picks the file; a run bnlab --overwrite cleans', () => {
    const file = exportRun([runs.cifar]);
    expect(file).toBe(join(runs.cifar, 'model-precise.safetensors'));
    const statsOf = (f: string) => {
      const b = readFileSync(f);
      return JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString('utf8')).__metadata__.stats;
    };
    const d = temp();
    // the FrozenBN run: its FrozenBN statistics at the end (epoch 2), PreciseBN's before the switch (epoch 1)
    expect([exportRun([runs.frozen, '--out', join(d, 'f.safetensors')]), exportRun([runs.frozen, '--epoch', '1', '--out', join(d, 'f1.safetensors')])].map(statsOf)).toEqual(['frozen', 'precise']);
    const out = join(temp(), 'e1.safetensors');
    exportRun(['--run', runs.cifar, '--epoch', '1', '--stats', 'ema', '--out', out]);
    const n = readFileSync(out).readBigUInt64LE(0);
    const header = JSON.parse(readFileSync(out).subarray(8, 8 + Number(n)).toString('utf8'));
    expect(header.__metadata__).toMatchObject({ epoch: '1', stats: 'ema', checkpoint: runPaths(runs.cifar).epoch(1) });
    expect(header['stem.bn.num_batches_tracked']).toEqual({ dtype: 'I64', shape: [], data_offsets: [0, 8] });
    // bnlab's own files: `train --overwrite` deletes them with the run's, and they never make the folder a user's.
    expect(inspectFolder(runs.cifar).outputs).toEqual(expect.arrayContaining(['model-precise.safetensors', 'model-ema.safetensors']));
    expect(inspectFolder(runs.cifar).foreign).toEqual([]);
  }, 120_000);
});

describe('bnlab export: ResNet-50 into torchvision.models.resnet50', () => {
  it('strict load; eval-mode logits equal bnlab\'s (bnlab\'s ResNet-50 against the reference)', async () => {
    const dir = runs.r50;
    const file = exportRun([dir]);
    const ours = await bnlabLogits(dir, runPaths(dir).last, 'precise');
    const ref = torchLogits(file, 'torchvision', ours);
    expect(ref.keys).toBe(320); // torchvision resnet50's state_dict: 161 weights/biases, 53 BNs x 3 buffers
    expect(ref.eps).toEqual([1e-5]);
    expect(ref.metadata).toMatchObject({ names: 'torchvision.models.resnet50', stats: 'precise', num_classes: '4' });
    const e = maxRelErr(ours.logits, ref.f64);
    const e32 = maxRelErr(ref.f32, ref.f64);
    console.log(`resnet50 64x64 (${ours.y.length} images, PreciseBN): bnlab vs torchvision float64 max rel err ${e.toExponential(2)}; torchvision float32 vs float64 ${e32.toExponential(2)}; file ${(statSync(file).size / 2 ** 20).toFixed(1)} MiB`);
    expect(e).toBeLessThan(TOL);
  }, 240_000);

  it('names: stem -> conv1/bn1, s<i>.b<j> -> layer<i>.<j-1>, proj -> downsample.0/.1', () => {
    expect(['stem.conv', 'stem.bn', 's1.b1.conv1', 's2.b1.proj', 's4.b3.bn3', 's3.b6.proj_bn'].map(torchvisionModule)).toEqual(['conv1', 'bn1', 'layer1.0.conv1', 'layer2.0.downsample.0', 'layer4.2.bn3', 'layer3.5.downsample.1']);
    expect(() => torchvisionModule('s1.b1.gamma')).toThrow(/no torchvision name/);
  });
});

describe('bnlab export refuses, naming why (exit 2, nothing written)', () => {
  const refused = (args: string[], message: RegExp) => {
    const out = join(mkdtempSync(join(root, 'refused-')), 'x.safetensors');
    const r = bnlab(['export', ...args, '--out', out]);
    expect(r.status, r.stdout).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  };
  it('an unknown --stats, and mini-batch statistics', () => {
    refused([runs.cifar, '--stats', 'emma'], /--stats: unknown statistics 'emma' \(use ema, precise, frozen\)/);
    refused([runs.cifar, '--stats', 'minibatch'], /no population statistics to export/);
  }, 60_000);
  it('--stats frozen when the run has no FrozenBN statistics', () => {
    refused([runs.cifar, '--stats', 'frozen'], /--stats frozen: .*last\.ckpt has no FrozenBN statistics \(the run has bn\.frozen_last_epochs = 0/);
  }, 60_000);
  it("another run's checkpoint", () => {
    refused([runs.cifar, '--checkpoint', runPaths(runs.frozen).last], /cannot be exported as part of .*cifar: it belongs to another run/);
  }, 60_000);
  it('an epoch that is not kept, and another format', () => {
    refused([runs.cifar, '--epoch', '7'], /--epoch 7 is not kept\); the run keeps epochs 1, 2/);
    refused([runs.cifar, '--format', 'onnx'], /--format: 'onnx' is not supported \(use safetensors\)/);
  }, 60_000);
});
