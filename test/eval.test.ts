// Evaluation under each statistics source, and the FrozenBN switch, on a tiny model (wasm).
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { evaluate } from '../src/eval/evaluate.js';
import { collectObservations } from '../src/nn/batchnorm.js';
import { evaluateWith } from '../src/bn/modes.js';
import { estimatePrecise } from '../src/bn/precise.js';
import { readCheckpoint } from '../src/run/checkpoint.js';
import { readMetrics } from '../src/run/metrics.js';
import { createState, loadCheckpointInto, type RunMeta } from '../src/train/state.js';
import { initParams } from '../src/nn/resnet.js';
import { runPaths } from '../src/run/paths.js';
import { disposeState, train } from '../src/train/trainer.js';

const quiet = { log: () => {}, progress: { start() {}, update() {}, stop() {} } };
const dirs: string[] = [];
beforeAll(async () => {
  await initBackend('wasm', 1);
});
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const cfg = validateConfig({
  epochs: 2,
  data: { name: 'synthetic', synthetic: { classes: 4, train: 96, val: 48, size: 8, channels: 1, seed: 3 } },
  model: { depth: 8, width: 4 },
  bn: { nbs: 8, frozen_last_epochs: 1 },
  optim: { batch_size: 32, base_lr: 0.8 },
  precise: { samples: 64, batch_size: 16 },
  eval: { batch_size: 48, minibatch: true, train_minibatch: true },
});

describe('initial parameters', () => {
  it('createState uploads the seed\'s draws bit for bit (streamed one parameter at a time; pinned by a hash of the draws before streaming)', () => {
    const s = createState(cfg, 1, 4);
    const want = initParams(s.net.params, cfg.seed);
    expect([...s.params.keys()]).toEqual([...want.keys()]);
    const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const h = createHash('sha256');
    for (const [name, v] of s.params) {
      const got = v.dataSync() as Float32Array;
      expect(bytes(got).equals(bytes(want.get(name)!)), name).toBe(true);
      h.update(bytes(got));
    }
    // sha256 of every initial value of this ResNet-8 (width 4, 1 channel, 4 classes, seed 0), computed
    // with initParams as of commit bad9f7e, before createState streamed them
    expect(h.digest('hex')).toBe('6d14fbf0f6a18c0b1beed75baca54f7a2f74c0d798299d8fbdd0e76c9ad98ec0');
    disposeState(s);
  });
});

describe('statistics sources at evaluation', () => {
  it('mini-batch statistics over the whole set equal population statistics pooled from that set', async () => {
    const data = await loadDataset(cfg.data);
    const s = createState(cfg, 1, 4);
    // Make the BN statistics non-trivial: a few SGD-free forward passes are not enough, so perturb the weights.
    for (const [, v] of s.params) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.2, 'float32', 7)));
    const n = data.val.n;
    const all = Int32Array.from({ length: n }, (_, i) => i);
    const pop = await estimatePrecise(s.net, s.params, data.val, cfg, { samples: n, batchSize: n, estimator: 'pooled', augment: false, seed: 0, epoch: 0, indices: all });
    const logits = async (ctx: Parameters<typeof evaluate>[3]['ctx']) => {
      const b = await data.val.load(all, { augment: false, seed: 0, epoch: 0 });
      return tf.tidy(() => s.net.forward(s.params, tf.tensor4d(b.x, [n, 8, 8, 1]), ctx).arraySync());
    };
    const a = await logits({ source: 'batch', nbs: n, eps: cfg.bn.eps });
    const p = await logits({ source: 'population', eps: cfg.bn.eps, population: pop });
    // Pooled variance is unbiased (count/(count-1)) where batch normalization uses the biased one;
    // undo that with each layer's element count and the two must agree to float32 precision.
    const observer = collectObservations();
    const xb = await data.val.load(all, { augment: false, seed: 0, epoch: 0 });
    tf.tidy(() => s.net.observe(s.params, tf.tensor4d(xb.x, [n, 8, 8, 1]), { source: 'batch', nbs: n, eps: cfg.bn.eps, observer }));
    const obs = observer.observed;
    const biased = new Map(obs.map((o) => [o.layer, { mean: pop.get(o.layer)!.mean, variance: tf.mul(pop.get(o.layer)!.variance, (o.counts[0] - 1) / o.counts[0]) as tf.Tensor1D }]));
    obs.forEach((o) => tf.dispose([o.mean, o.variance]));
    const q = await logits({ source: 'population', eps: cfg.bn.eps, population: biased });
    const maxDiff = (u: number[][], v: number[][]) => Math.max(...u.flatMap((row, i) => row.map((x, j) => Math.abs(x - v[i][j]))));
    expect(maxDiff(a, q)).toBeLessThan(2e-4);
    expect(maxDiff(a, p)).toBeGreaterThan(maxDiff(a, q) * 5);
    const errMini = await evaluateWith(s.net, s.params, data.val, { ...cfg, eval: { ...cfg.eval, batch_size: n } }, { mode: 'minibatch', nbs: n });
    const errPop = await evaluateWith(s.net, s.params, data.val, cfg, { mode: 'precise', population: biased });
    expect(errMini).toBeCloseTo(errPop, 6);
    // and small mini-batches really do use other statistics
    const errSmall = await evaluateWith(s.net, s.params, data.val, cfg, { mode: 'minibatch', nbs: 2 });
    expect(errSmall).not.toBe(errPop);
    disposeState(s);
  });

  it('FrozenBN: at the switch PreciseBN statistics are fixed; training then normalizes with them and the EMA stops', async () => {
    const data = await loadDataset(cfg.data);
    const dir = mkdtempSync(join(tmpdir(), 'bnlab-eval-'));
    dirs.push(dir);
    const r = await train(cfg, data, { outDir: dir, resume: false, ...quiet });
    disposeState(r.state);
    const rows = readMetrics(runPaths(dir).metrics);
    expect(rows.map((x) => x.bn_mode)).toEqual(['batch', 'frozen']);
    expect(rows[1].val_err_ema).toBe('');
    // FrozenBN has its own column: PreciseBN reports the batch-BN epoch, FrozenBN the frozen one
    expect([rows[0].val_err_frozen, rows[1].val_err_precise]).toEqual(['', '']);
    for (const [row, k] of [[0, 'val_err_precise'], [1, 'val_err_frozen']] as const) expect(Number(rows[row][k])).toBeGreaterThanOrEqual(0);
    for (const row of rows) for (const k of ['val_err_minibatch', 'train_err_nbs']) expect(Number(row[k])).toBeGreaterThanOrEqual(0);

    const e1 = readCheckpoint<RunMeta>(runPaths(dir).epoch(1));
    const e2 = readCheckpoint<RunMeta>(runPaths(dir).epoch(2));
    expect(e1.tensors.has('frozen/stem.bn/mean')).toBe(false);
    // no PreciseBN statistics once frozen: those of epoch 1 describe another model
    expect([e1.tensors.has('precise/stem.bn/mean'), e2.tensors.has('precise/stem.bn/mean')]).toEqual([true, false]);
    // The EMA is untouched during the frozen epoch.
    for (const [k, t] of e1.tensors) if (k.startsWith('ema/')) expect(Array.from(e2.tensors.get(k)!.data)).toEqual(Array.from(t.data));
    // The frozen statistics are PreciseBN of the epoch-1 model (same samples: seed and epoch index 1).
    const s = createState(cfg, 1, 4);
    loadCheckpointInto(s, e1, 'epoch-1');
    const expected = await estimatePrecise(s.net, s.params, data.train, cfg, { samples: 64, batchSize: 16, estimator: 'pooled', augment: true, seed: cfg.seed, epoch: 1 });
    for (const [layer, st] of expected) {
      const got = e2.tensors.get(`frozen/${layer}/mean`)!.data;
      const want = st.mean.dataSync();
      got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
      const gotVar = e2.tensors.get(`frozen/${layer}/variance`)!.data;
      st.variance.dataSync().forEach((v, i) => expect(gotVar[i]).toBeCloseTo(v, 4));
    }
    // Weights did train in the frozen epoch.
    expect(Array.from(e2.tensors.get('param/fc.weight')!.data)).not.toEqual(Array.from(e1.tensors.get('param/fc.weight')!.data));
    disposeState(s);
  }, 60_000);

  it('FrozenBN over 2 of 3 epochs: the statistics stay fixed while every BN gamma and beta keeps training', async () => {
    // No momentum and no weight decay on gamma/beta: a change in the frozen epochs can only come
    // from a gradient of that epoch (not from velocity carried over the switch, nor from decay).
    // No zero-init of the last gamma of a block either: behind a zero gamma the first BN's gamma
    // gets updates below float32 resolution at 1.0 and would not move in any epoch.
    const c = validateConfig({
      ...cfg,
      epochs: 3,
      model: { depth: 8, width: 4, zero_init_last_gamma: false },
      bn: { nbs: 8, frozen_last_epochs: 2 },
      optim: { batch_size: 32, base_lr: 0.8, momentum: 0, weight_decay_bn: 0 },
    });
    const data = await loadDataset(c.data);
    const dir = mkdtempSync(join(tmpdir(), 'bnlab-frozen2-'));
    dirs.push(dir);
    const r = await train(c, data, { outDir: dir, resume: false, ...quiet });
    const bnLayers = r.state.net.bnLayers.map((l) => l.name);
    disposeState(r.state);
    expect(readMetrics(runPaths(dir).metrics).map((x) => x.bn_mode)).toEqual(['batch', 'frozen', 'frozen']);
    const [e1, e2, e3] = [1, 2, 3].map((e) => readCheckpoint<RunMeta>(runPaths(dir).epoch(e)));
    const values = (ck: typeof e1, key: string) => {
      const t = ck.tensors.get(key);
      expect(t, key).toBeDefined();
      return Array.from(t!.data);
    };
    expect(bnLayers.length).toBeGreaterThan(3);
    expect(e1.tensors.has(`frozen/${bnLayers[0]}/mean`)).toBe(false);
    for (const layer of bnLayers) {
      for (const k of ['mean', 'variance']) {
        // fixed at the switch (after epoch 1) and identical after epoch 3
        const frozen = values(e2, `frozen/${layer}/${k}`);
        expect(values(e3, `frozen/${layer}/${k}`), `frozen/${layer}/${k}`).toEqual(frozen);
        // no PreciseBN statistics after the switch (none copied from FrozenBN's)
        expect(e3.tensors.has(`precise/${layer}/${k}`)).toBe(false);
        // not the EMA, which stands still in the frozen epochs
        expect(values(e3, `ema/${layer}/${k}`)).toEqual(values(e1, `ema/${layer}/${k}`));
        expect(frozen).not.toEqual(values(e1, `ema/${layer}/${k}`));
      }
      for (const p of ['gamma', 'beta']) {
        const key = `param/${layer}.${p}`;
        const [a, b, z] = [values(e1, key), values(e2, key), values(e3, key)];
        // every channel moves in each frozen epoch
        b.forEach((v, i) => expect(v, `${key}[${i}] in epoch 2`).not.toBe(a[i]));
        z.forEach((v, i) => expect(v, `${key}[${i}] in epoch 3`).not.toBe(b[i]));
      }
    }
    // momentum 0: the velocity buffer holds the last step's gradient, non-zero for the affine
    for (const layer of bnLayers) expect(values(e3, `velocity/${layer}.gamma`).some((v) => v !== 0)).toBe(true);
  }, 60_000);
});
