// The PyTorch twin of a bnlab run (scripts/torch_twin.py) and the script that names bnlab's data for
// it (scripts/subset-indices.ts): the same images, parameter count, augmentation and lr schedule as
// bnlab, bnlab's metrics.csv columns, and a refusal (exit 2) of what the twin does not implement.
// Needs Debian's python3-torch for /usr/bin/python3 (as test/torch-crosscheck.test.ts); uses the
// shipped fashion-mnist-mini, so no dataset package.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { channelStats, loadDataset, MINI_DIR, PACKAGE_ROOT, type ImageSet, type MemorySplit } from '../src/data/dataset.js';
import { readFashionMnistDir } from '../src/data/fashion-mnist.js';
import { makeBatch } from '../src/data/loader.js';
import { buildNetwork, countParams } from '../src/nn/resnet.js';
import { METRIC_COLUMNS, readMetrics } from '../src/run/metrics.js';
import { learningRate, type ScheduleConfig } from '../src/train/schedule.js';
import { tempDirs } from './helpers/run.js';

const ROOT = resolve(__dirname, '..');
const PYTHON = '/usr/bin/python3';
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');
const TWIN = join(ROOT, 'scripts', 'torch_twin.py');
const tmp = tempDirs('bnlab-twin-');

const sets = [
  'data.name=fashion-mnist-mini', 'data.train_limit=300', 'data.val_limit=100', 'model.width=4', 'optim.batch_size=64',
  'bn.nbs=16', 'precise.samples=128', 'precise.batch_size=16', 'eval.minibatch=true', 'eval.train_minibatch=true',
  'eval.train_minibatch_samples=64', 'epochs=1',
];
const setArgs = (s: string[]) => s.flatMap((x) => ['--set', x]);
const twin = (args: string[]) =>
  spawnSync(PYTHON, [TWIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd: ROOT, env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' } });

const classCounts = (labels: ArrayLike<number>) => Array.from(labels).reduce((c, l) => ((c[l] = (c[l] ?? 0) + 1), c), [] as number[]);

describe('PyTorch twin', () => {
  it("subset-indices names exactly the images bnlab's loader keeps (class-balanced, original order) and bnlab's eval orders", async () => {
    const r = spawnSync(TSX, [join(ROOT, 'scripts', 'subset-indices.ts'), ...setArgs(sets), '--seed', '5'], { encoding: 'utf8', timeout: 60_000, cwd: ROOT });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.config.seed).toBe(5);
    expect(out.config.data.train_limit).toBe(300);

    const cfg = loadConfig(undefined, [...sets, 'seed=5']);
    const full = readFashionMnistDir(resolve(PACKAGE_ROOT, MINI_DIR));
    const data = await loadDataset(cfg.data, { quiet: true });
    for (const [split, fullSet, idx] of [
      ['train', full.train, out.train_indices],
      ['val', full.test, out.val_indices],
    ] as [string, ImageSet, number[]][]) {
      const limited = data[split as 'train' | 'val'] as MemorySplit;
      expect(idx).toHaveLength(limited.n);
      expect(idx.every((v, k) => k === 0 || v > idx[k - 1])).toBe(true); // kept in file order, no repeats
      const size = fullSet.height * fullSet.width * fullSet.channels;
      idx.forEach((i, k) => {
        expect(fullSet.labels[i]).toBe(limited.labels[k]);
        expect(Buffer.compare(fullSet.images.subarray(i * size, (i + 1) * size), limited.images.subarray(k * size, (k + 1) * size))).toBe(0);
      });
      expect(classCounts(limited.labels)).toEqual(new Array(10).fill(limited.n / 10));
    }
    expect(out.dataset.mean).toEqual(data.mean);
    expect(out.dataset.std).toEqual(data.std);
    const vm: number[] = out.eval_orders.val_minibatch;
    expect([...vm].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(vm).not.toEqual([...vm].sort((a, b) => a - b)); // a shuffle: sorted groups would be one-class
    const tm: number[] = out.eval_orders.train_minibatch;
    expect(tm).toHaveLength(64);
    expect(new Set(tm).size).toBe(64);
    expect(tm.every((i) => i >= 0 && i < 300)).toBe(true);
  }, 60_000);

  it("trains a 1-epoch run on bnlab's images (SHA-256 checked) with bnlab's parameter count, writing bnlab's columns", () => {
    const out = join(tmp(), 'run');
    const r = twin([...setArgs(sets), '--seed', '1', '--out', out, '--threads', '1']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const params = Number(/\((\d+) parameters\)/.exec(r.stdout)?.[1]);
    const cfg = loadConfig(undefined, [...sets, 'seed=1']);
    expect(params).toBe(countParams(buildNetwork(cfg.model, 1, 10).params));

    const header = readFileSync(join(out, 'metrics.csv'), 'utf8').split('\n')[0].split(',');
    expect(header).toEqual(METRIC_COLUMNS.filter((c) => !['val_err_ema', 'val_err_composed'].includes(c)));
    const rows = readMetrics(join(out, 'metrics.csv'));
    expect(rows).toHaveLength(1);
    const row = rows[0];
    expect(row.epoch).toBe('1');
    expect(Number(row.lr)).toBeCloseTo(learningRate(cfg.optim, 0, 1), 12);
    expect(row.bn_mode).toBe('batch');
    for (const c of ['train_err', 'val_err_precise', 'val_err_minibatch', 'train_err_nbs']) {
      expect(row[c]).not.toBe('');
      expect(Number(row[c])).toBeGreaterThanOrEqual(0);
      expect(Number(row[c])).toBeLessThanOrEqual(100);
    }
    // val_limit 100 and 64 train_err_nbs samples: errors are multiples of 1% and 1/64.
    expect(Number.isInteger(Number(row.val_err_minibatch))).toBe(true);
    const wrongNbs = (Number(row.train_err_nbs) * 64) / 100;
    expect(Math.abs(wrongNbs - Math.round(wrongNbs))).toBeLessThan(1e-3);
    expect(Number(row.train_loss)).toBeGreaterThan(0);
    const yaml = readFileSync(join(out, 'config.yaml'), 'utf8');
    expect(yaml).toMatch(/^framework: pytorch \d/m);
    expect(yaml).toMatch(/^seed: 1$/m);
  }, 90_000);

  it('refuses config values it does not implement, with exit 2 and no output folder', () => {
    const out = join(tmp(), 'refused');
    const r = twin([...setArgs([...sets, 'bn.composition=classes', 'eval.composed=true', 'precise.batch_size=300', 'continuation.seed=1']), '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('bn.composition classes');
    expect(r.stderr).toContain('continuation.seed: other continuations of a fork are not implemented');
    expect(r.stderr).toContain('eval.composed');
    expect(r.stderr).toContain('precise.batch_size 300 >= N = 128');
    expect(existsSync(out)).toBe(false);
    // bnlab's own config errors come through as bnlab words them, also exit 2.
    const bad = twin([...setArgs(['optim.batchsize=64']), '--out', out]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown key 'optim.batchsize'");
  }, 60_000);

  it("applies bnlab's pad-crop/flip and normalization exactly, and bnlab's learning rate at every point", () => {
    // Six 8x8 images with distinct pixels, so every crop/flip gives a different batch.
    const n = 6, S = 8;
    const set: ImageSet = {
      images: Uint8Array.from({ length: n * S * S }, (_, i) => (i * 37 + 11) % 256),
      labels: Int32Array.from({ length: n }, (_, i) => i % 3),
      n, height: S, width: S, channels: 1,
    };
    const norm = channelStats(set);
    const idx = [4, 0, 5, 2, 1, 3];
    const opts = { pad_crop: 2, flip: true, seed: 7, epoch: 3, ...norm };
    const aug = makeBatch(set, idx, { ...opts, augment: true });
    const plain = makeBatch(set, idx, { ...opts, augment: false });
    const base: ScheduleConfig = { batch_size: 128, base_lr: 0.2, schedule: 'step', steps: [3, 6.5], gamma: 0.1, warmup_epochs: 0, warmup_factor: 0.1 };
    const cases = [
      ...[0, 2.99, 3, 5, 6.5, 9].map((e) => ({ c: base, e, total: 10 })),
      ...[0, 0.4, 1, 1.5, 7].map((e) => ({ c: { ...base, warmup_epochs: 1.5, warmup_factor: 0.25 }, e, total: 10 })),
      ...[0, 0.3, 2.5, 5, 10].map((e) => ({ c: { ...base, schedule: 'cosine' as const, warmup_epochs: 0.5 }, e, total: 10 })),
    ];
    const dir = tmp();
    writeFileSync(join(dir, 'in.json'), JSON.stringify({
      images: Array.from(set.images), labels: Array.from(set.labels), n, S, mean: norm.mean, std: norm.std, pad: 2, idx,
      aug: Array.from(aug.x), plain: Array.from(plain.x), lr: cases.map((k) => [k.c, k.e, k.total]),
    }));
    const code = `
import itertools, json, sys
import numpy as np
sys.path.insert(0, ${JSON.stringify(join(ROOT, 'scripts'))})
import torch_twin as tt
d = json.load(open(sys.argv[1]))
S, n = d['S'], d['n']
imgs = np.array(d['images'], dtype=np.uint8).reshape(n, S, S, 1)
data = tt.Images(imgs, np.array(d['labels']), d['mean'], d['std'], d['pad'], True)
want = np.array(d['aug'], dtype=np.float32).reshape(n, S, S, 1)
matches = []
for k, i in enumerate(d['idx']):
    found = 0
    for oy, ox, f in itertools.product(range(2 * d['pad'] + 1), range(2 * d['pad'] + 1), (False, True)):
        x, _ = data.augmented([i], [oy], [ox], [f])
        found += bool(np.array_equal(x.permute(0, 2, 3, 1).numpy()[0], want[k]))
    matches.append(found)
x, y = data.batch(d['idx'])
plain = np.array_equal(x.permute(0, 2, 3, 1).numpy(), np.array(d['plain'], dtype=np.float32).reshape(n, S, S, 1))
xr, _ = data.batch(d['idx'], np.random.default_rng(0))
json.dump({'matches': matches, 'plain': plain, 'labels': y.tolist(), 'aug_shape': list(xr.shape),
           'lr': [tt.learning_rate(c, e, t) for c, e, t in d['lr']]}, sys.stdout)
`;
    const r = spawnSync(PYTHON, ['-c', code, join(dir, 'in.json')], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout);
    // Each of bnlab's augmented images is exactly one of the twin's (2p+1)^2 x 2 crops/flips.
    expect(got.matches).toEqual(new Array(n).fill(1));
    expect(got.plain).toBe(true);
    expect(got.labels).toEqual(idx.map((i) => set.labels[i]));
    expect(got.aug_shape).toEqual([n, 1, S, S]);
    cases.forEach((k, j) => expect(got.lr[j]).toBeCloseTo(learningRate(k.c, k.e, k.total), 14));
  }, 60_000);

  it("PreciseBN's pooled and mean-of-var estimates follow bnlab's definitions; weight decay splits the parameters as bnlab does", () => {
    // The first BN layer's input does not depend on BN, so its pooled estimate over groups of B must
    // equal the unbiased statistics of all N samples at once (bnlab's pooled estimator is exact there);
    // mean-of-var is sum_i c_i var_i c_i/(c_i-1) / C. N = 22, B = 4: a remainder group of 2.
    const code = `
import json, sys
import numpy as np, torch
sys.path.insert(0, ${JSON.stringify(join(ROOT, 'scripts'))})
import torch_twin as tt, torch_resnet as tr
torch.manual_seed(0)
model = tr.build_model('resnet-cifar', 8, 4, 1, 10)
for m in tr.bn_layers(model).values():
    m.momentum = 0.0
imgs = np.random.default_rng(0).integers(0, 256, (22, 8, 8, 1), dtype=np.uint8)
data = tt.Images(imgs, np.zeros(22, dtype=np.int64), [0.5], [0.25], 0, False)
idx = np.arange(22)
pooled = tt.precise_bn(model, data, idx, 4, 'pooled', 8, None)
mov = tt.precise_bn(model, data, idx, 4, 'mean-of-var', 8, None)
x, _ = data.batch(idx)
with torch.no_grad():
    z = model.stem.conv(x).double()
mean, var = z.mean((0, 2, 3)), z.var((0, 2, 3), unbiased=True)
mov_ref = sum(g.shape[0] * 64 * g.var((0, 2, 3), unbiased=True) for g in torch.split(z, 4)) / (22 * 64)
rel = lambda a, b: float(((a.double() - b).abs().max() / b.abs().max()))
groups = tt.param_groups(model, 1e-4, 0.0)
json.dump({
    'pooled_mean': rel(pooled['stem.bn'][0], mean), 'pooled_var': rel(pooled['stem.bn'][1], var),
    'mov_mean': rel(mov['stem.bn'][0], mean), 'mov_var': rel(mov['stem.bn'][1], mov_ref),
    'layers': list(pooled), 'buffers_untouched': all(bool((m.running_mean == 0).all() and (m.running_var == 1).all()) for m in tr.bn_layers(model).values()),
    'wd': [sum(p.numel() for p in g['params']) for g in groups], 'wd_values': [g['weight_decay'] for g in groups],
}, sys.stdout)
`;
    const r = spawnSync(PYTHON, ['-c', code], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = JSON.parse(r.stdout);
    for (const k of ['pooled_mean', 'pooled_var', 'mov_mean', 'mov_var']) expect(got[k], k).toBeLessThan(1e-5); // a wrong Bessel factor: 7e-4
    const net = buildNetwork({ arch: 'resnet-cifar', depth: 8, width: 4, zero_init_last_gamma: true }, 1, 10);
    expect(got.layers).toEqual(net.bnLayers.map((l) => l.name));
    expect(got.buffers_untouched).toBe(true);
    const size = (kinds: string[]) => net.params.filter((p) => kinds.includes(p.kind)).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    expect(got.wd).toEqual([size(['conv', 'fc']), size(['gamma', 'beta', 'bias'])]);
    expect(got.wd_values).toEqual([1e-4, 0]);
  }, 60_000);
});
