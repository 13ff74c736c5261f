// Fig. 2's trace: for chosen BN channels, the EMA mean next to the means of M batches of the
// *current* model and their average (the population mean). Early in training the EMA often lies
// outside the batch means: it averages over past models.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';
import { microBatch, type Config } from '../config/schema.js';
import type { Split } from '../data/dataset.js';
import { sampleWithoutReplacement } from '../data/loader.js';
import { collectObservations } from '../nn/batchnorm.js';
import { checkTracedLayers } from '../nn/resnet.js';
import type { RunState } from './state.js';
import { MODE } from '../bn/columns.js';

export const TRACE_COLUMNS = ['epoch', 'iter', 'layer', 'channel', 'kind', 'value'] as const;

/** trace.* against the model's BN layers (the check lives with the model: config/ runs it at load). */
export function checkTraceConfig(cfg: Config, layers?: readonly { name: string; channels: number }[]): void {
  checkTracedLayers(cfg.trace, cfg.model, layers);
}

/** Trace rows at one point of training: `epoch` is fractional progress, `iter` the global SGD step. */
export async function traceRows(state: RunState, split: Split, cfg: Config, epoch: number, iter: number): Promise<(string | number)[][]> {
  const t = cfg.trace;
  const bs = t.batch_size ?? cfg.bn.nbs;
  const m = Math.max(1, Math.min(t.batches, Math.floor(split.n / bs)));
  const idx = sampleWithoutReplacement(split.n, m * bs, cfg.seed * 7919 + iter);
  const per = Math.max(bs, Math.floor(Math.max(microBatch(cfg), cfg.eval.batch_size) / bs) * bs);
  const means = new Map<string, number[][]>(t.layers.map((l) => [l, t.channels.map(() => [])]));
  for (let start = 0; start < idx.length; start += per) {
    const b = await split.load(idx.subarray(start, start + per), { augment: true, seed: cfg.seed, epoch: iter });
    const observer = collectObservations();
    tf.tidy(() => state.net.observe(state.params, tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]), { source: 'batch', nbs: bs, eps: cfg.bn.eps, observer }));
    for (const ob of observer.observed) {
      const list = means.get(ob.layer);
      if (list) {
        const v = ob.mean.arraySync();
        t.channels.forEach((c, k) => v.forEach((row) => list[k].push(row[c])));
      }
      tf.dispose([ob.mean, ob.variance]);
    }
  }
  const rows: (string | number)[][] = [];
  const ep = +epoch.toFixed(4);
  for (const layer of t.layers) {
    const ema = state.ema.get(layer)!.mean.dataSync();
    t.channels.forEach((c, k) => {
      const bm = means.get(layer)![k];
      rows.push([ep, iter, layer, c, MODE.ema, ema[c]]);
      for (const v of bm) rows.push([ep, iter, layer, c, 'batch', v]);
      rows.push([ep, iter, layer, c, 'population', bm.reduce((a, b) => a + b, 0) / bm.length]);
    });
  }
  return rows;
}

export function appendTrace(path: string, rows: (string | number)[][]): void {
  if (!existsSync(path)) writeFileSync(path, stringify([TRACE_COLUMNS as unknown as string[]]));
  appendFileSync(path, stringify(rows));
}

/** On resume, drop trace rows written after the checkpoint's iteration (they will be redone). */
export function truncateTrace(path: string, lastIter: number): void {
  if (!existsSync(path)) return;
  const rows = parse(readFileSync(path, 'utf8'), { columns: true }) as Record<string, string>[];
  writeFileSync(path, stringify([TRACE_COLUMNS as unknown as string[], ...rows.filter((r) => Number(r.iter) <= lastIter).map((r) => TRACE_COLUMNS.map((c) => r[c]))]));
}
