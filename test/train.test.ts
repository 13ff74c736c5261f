// End-to-end trainer behaviour on the wasm backend: it learns real data, resumes exactly,
// and stops with a clear message when the loss explodes.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { quiet, tempDirs } from './helpers/run.js';
import { initBackend } from '../src/backend/index.js';
import { validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { readCheckpoint } from '../src/run/checkpoint.js';
import { readMetrics } from '../src/run/metrics.js';
import { runPaths } from '../src/run/paths.js';
import { disposeState, train, TrainingError } from '../src/train/trainer.js';

const tmp = tempDirs('bnlab-train-');

beforeAll(async () => {
  await initBackend('wasm', 1);
});

const tiny = (extra: Record<string, unknown> = {}) =>
  validateConfig({
    epochs: 3,
    data: { name: 'synthetic', synthetic: { classes: 4, train: 96, val: 64, size: 8, channels: 1, seed: 1 } },
    model: { depth: 8, width: 4 },
    bn: { nbs: 8 },
    optim: { batch_size: 32, micro_batch: 16, base_lr: 0.8, steps: [2] },
    precise: { samples: 64, batch_size: 16 },
    eval: { batch_size: 64 },
    ...extra,
  });

describe('trainer', () => {
  it('learns real Fashion-MNIST: validation error far below chance (90%) after two short epochs', async () => {
    const cfg = validateConfig({
      epochs: 2,
      data: { train_limit: 3072, val_limit: 500 },
      model: { depth: 8, width: 8 },
      bn: { nbs: 16 },
      optim: { batch_size: 32, base_lr: 1.6, schedule: 'cosine' },
      precise: { samples: 512 },
    });
    const data = await loadDataset(cfg.data);
    const dir = tmp();
    const r = await train(cfg, data, { outDir: dir, resume: false, ...quiet });
    const rows = readMetrics(runPaths(dir).metrics);
    expect(rows.map((x) => Number(x.epoch))).toEqual([1, 2]);
    const last = rows[1];
    // PyTorch with the same model and recipe reaches ~31-37% here (scratch check); chance is 90%.
    expect(Number(last.val_err_precise)).toBeLessThan(50);
    expect(Number(last.val_err_ema)).toBeLessThan(60);
    expect(Number(last.train_loss)).toBeLessThan(Number(rows[0].train_loss));
    disposeState(r.state);
  }, 120_000);

  it('--resume after an interruption mid-epoch gives the same CSV and weights as an uninterrupted run', async () => {
    const cfg = tiny();
    const data = await loadDataset(cfg.data);
    const a = tmp();
    const ra = await train(cfg, data, { outDir: a, resume: false, ...quiet });
    disposeState(ra.state);

    const b = tmp();
    let steps = 0; // 3 steps per epoch: stop after step 2 of epoch 2
    const rb1 = await train(cfg, data, { outDir: b, resume: false, ...quiet, interrupted: () => ++steps === 5 });
    expect(rb1.interrupted).toBe(true);
    expect(readMetrics(runPaths(b).metrics)).toHaveLength(1);
    disposeState(rb1.state);
    const rb2 = await train(cfg, data, { outDir: b, resume: true, ...quiet });
    expect(rb2.interrupted).toBe(false);
    disposeState(rb2.state);

    const timing = new Set(['epoch_seconds', 'train_images_per_s', 'precise_seconds']);
    const strip = (rows: Record<string, string>[]) => rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !timing.has(k))));
    const ma = strip(readMetrics(runPaths(a).metrics));
    expect(ma).toHaveLength(3);
    expect(strip(readMetrics(runPaths(b).metrics))).toEqual(ma);
    const ca = readCheckpoint(runPaths(a).last);
    const cb = readCheckpoint(runPaths(b).last);
    expect([...cb.tensors.keys()]).toEqual([...ca.tensors.keys()]);
    for (const [k, t] of ca.tensors) expect(Buffer.from(cb.tensors.get(k)!.data.buffer).equals(Buffer.from(t.data.buffer)), k).toBe(true);
  }, 120_000);

  it('a resumed run after a crash between CSV append and checkpoint keeps each epoch once', async () => {
    const cfg = tiny({ epochs: 2 });
    const data = await loadDataset(cfg.data);
    const dir = tmp();
    const r1 = await train({ ...cfg, epochs: 1 }, data, { outDir: dir, resume: false, ...quiet });
    disposeState(r1.state);
    // Simulate the crash: a CSV row for epoch 2 exists, but no checkpoint for it.
    const csv = runPaths(dir).metrics;
    const text = readFileSync(csv, 'utf8');
    const { appendFileSync } = await import('node:fs');
    appendFileSync(csv, text.trim().split('\n')[1].replace(/^1,/, '2,') + '\n');
    const r2 = await train(cfg, data, { outDir: dir, resume: true, ...quiet });
    disposeState(r2.state);
    expect(readMetrics(csv).map((x) => x.epoch)).toEqual(['1', '2']);
  }, 60_000);

  it('stops with a clear message when the loss explodes', async () => {
    const cfg = tiny({ optim: { batch_size: 32, base_lr: 1e6, momentum: 0.9 }, max_loss: 50 });
    const data = await loadDataset(cfg.data);
    const before = tf.memory().numTensors;
    await expect(train(cfg, data, { outDir: tmp(), resume: false, ...quiet })).rejects.toThrow(TrainingError);
    await expect(train(cfg, data, { outDir: tmp(), resume: false, ...quiet })).rejects.toThrow(/diverged.*Lower optim.base_lr/);
    tf.disposeVariables();
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 1);
  }, 60_000);
});
