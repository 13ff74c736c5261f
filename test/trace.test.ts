// Fig. 2's trace (bn_trace.csv) on a tiny run: where the rows are written (every K iterations in
// the first epoch(s), then once per epoch) and what they hold (the EMA of the run, M batch means
// of the current model and their average).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { readCheckpoint } from '../src/run/checkpoint.js';
import type { RunMeta } from '../src/train/state.js';
import { runPaths } from '../src/run/paths.js';
import { disposeState, train } from '../src/train/trainer.js';

const quiet = { log: () => {}, progress: { start() {}, update() {}, stop() {} } };
const dir = mkdtempSync(join(tmpdir(), 'bnlab-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LAYERS = ['stem.bn', 's2.b1.bn1'];
const CHANNELS = [0, 2];
const M = 3;
// 96 training images in batches of 16: 6 SGD steps per epoch.
const cfg = validateConfig({
  epochs: 2,
  data: { name: 'synthetic', synthetic: { classes: 4, train: 96, val: 32, size: 8, channels: 1, seed: 5 } },
  model: { depth: 8, width: 4 },
  bn: { nbs: 8 },
  optim: { batch_size: 16, base_lr: 0.8 },
  precise: { samples: 32, batch_size: 16 },
  eval: { batch_size: 32 },
  trace: { layers: LAYERS, channels: CHANNELS, batches: M, every_iters: 2, until_epoch: 1 },
});
const STEPS = 6;

type TraceRow = { epoch: string; iter: string; layer: string; channel: string; kind: string; value: string };
let header: string[];
let rows: TraceRow[];
beforeAll(async () => {
  await initBackend('wasm', 1);
  const data = await loadDataset(cfg.data);
  const r = await train(cfg, data, { outDir: dir, resume: false, ...quiet });
  disposeState(r.state);
  const text = readFileSync(runPaths(dir).trace, 'utf8');
  header = text.split('\n')[0].split(',');
  rows = parse(text, { columns: true });
}, 60_000);

const at = (iter: number, layer: string, channel: number, kind: string) =>
  rows.filter((r) => Number(r.iter) === iter && r.layer === layer && Number(r.channel) === channel && r.kind === kind).map((r) => Number(r.value));

describe('bn_trace.csv', () => {
  it('has the documented columns and rows at iteration 0, every 2 iterations of epoch 1, and each epoch end', () => {
    expect(header).toEqual(['epoch', 'iter', 'layer', 'channel', 'kind', 'value']);
    const iters = [...new Set(rows.map((r) => Number(r.iter)))];
    // epoch 1: 0, 2, 4 and its end (6); epoch 2 (past until_epoch): only its end (12)
    expect(iters).toEqual([0, 2, 4, STEPS, 2 * STEPS]);
    const epochOf = new Map(rows.map((r) => [Number(r.iter), Number(r.epoch)]));
    expect([...epochOf.values()]).toEqual([0, +(2 / STEPS).toFixed(4), +(4 / STEPS).toFixed(4), 1, 2]);
    for (const iter of iters) {
      for (const layer of LAYERS) {
        for (const c of CHANNELS) {
          expect(at(iter, layer, c, 'ema'), `${iter} ${layer} ${c}`).toHaveLength(1);
          expect(at(iter, layer, c, 'batch')).toHaveLength(M);
          expect(at(iter, layer, c, 'population')).toHaveLength(1);
        }
      }
    }
    // nothing else: (1 EMA + M batches + 1 average) per layer, channel and trace point
    expect(rows).toHaveLength(iters.length * LAYERS.length * CHANNELS.length * (M + 2));
    expect(new Set(rows.map((r) => r.kind))).toEqual(new Set(['ema', 'batch', 'population']));
  });

  it('the EMA column is the run\'s EMA: zero at the start, the checkpoint\'s at each epoch end, moving in between', () => {
    for (const layer of LAYERS) {
      for (const c of CHANNELS) {
        expect(at(0, layer, c, 'ema')[0]).toBe(0); // PyTorch's initial running mean
        for (const epoch of [1, 2]) {
          const ckpt = readCheckpoint<RunMeta>(runPaths(dir).epoch(epoch));
          const ema = ckpt.tensors.get(`ema/${layer}/mean`)!.data[c];
          expect(at(epoch * STEPS, layer, c, 'ema')[0]).toBeCloseTo(ema, 6);
        }
        const series = [0, 2, 4, STEPS, 2 * STEPS].map((i) => at(i, layer, c, 'ema')[0]);
        expect(new Set(series).size).toBe(series.length);
      }
    }
  });

  it('the population value is the average of the recorded batch means, which vary between batches and over training', () => {
    for (const iter of [0, 2, 4, STEPS, 2 * STEPS]) {
      for (const layer of LAYERS) {
        for (const c of CHANNELS) {
          const batch = at(iter, layer, c, 'batch');
          const avg = batch.reduce((a, b) => a + b, 0) / batch.length;
          expect(at(iter, layer, c, 'population')[0]).toBeCloseTo(avg, 6);
          expect(new Set(batch).size, `${iter} ${layer} ${c}`).toBe(M);
        }
      }
    }
    // the model changes: the average of batch means at the end differs from the start
    expect(at(2 * STEPS, 's2.b1.bn1', 0, 'population')[0]).not.toBeCloseTo(at(0, 's2.b1.bn1', 0, 'population')[0], 4);
  });
});
