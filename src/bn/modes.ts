// The answers to "which batch?" at test time, as one type shared by `bnlab train` (end of every
// epoch), `bnlab eval`, the metrics columns and the report: population statistics (EMA, PreciseBN,
// FrozenBN's fixed ones) or mini-batch statistics of NBS test samples. Adding a mode means a new
// entry in STATS_MODES / MODES and, if it needs new statistics, a case in evaluateWith().
import type * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../config/schema.js';
import type { Split } from '../data/dataset.js';
import { permutation } from '../data/loader.js';
import { composeEpoch, type Composition } from './composition.js';
import { evaluate } from '../eval/evaluate.js';
import type { LayerStats } from '../nn/batchnorm.js';
import type { Network } from '../nn/resnet.js';
import type { Progress } from '../util/progress.js';

export const STATS_MODES = ['ema', 'precise', 'minibatch', 'composed', 'frozen'] as const;
export type StatsMode = (typeof STATS_MODES)[number];

export interface ModeInfo {
  /** As a researcher names it (log lines, tables). */
  label: string;
  /** Where the BN layers take their statistics from at inference. */
  source: 'population' | 'batch';
  /** metrics.csv column of its validation error (FrozenBN shares PreciseBN's: its statistics are
   *  the fixed ones training normalizes with, what PreciseBN would report after the switch). */
  valColumn: 'val_err_ema' | 'val_err_precise' | 'val_err_minibatch' | 'val_err_composed';
  /** metrics.csv column of its training-set error, where the trainer reports one. */
  trainColumn?: 'train_err_nbs';
  /** What `bnlab eval --stats` says it is. */
  help: string;
}

export const MODES: Record<StatsMode, ModeInfo> = {
  ema: { label: 'EMA', source: 'population', valColumn: 'val_err_ema', help: 'the EMA of batch statistics kept during training' },
  precise: { label: 'PreciseBN', source: 'population', valColumn: 'val_err_precise', help: 'PreciseBN: statistics of the frozen model on N samples in batches of B' },
  minibatch: { label: 'mini-batch', source: 'batch', valColumn: 'val_err_minibatch', trainColumn: 'train_err_nbs', help: 'each test batch of NBS samples normalized by its own statistics' },
  composed: {
    label: 'mini-batch (composed)', source: 'batch', valColumn: 'val_err_composed',
    help: "mini-batch statistics of test batches of NBS samples composed like training's (bn.composition: e.g. K classes each; paper Fig. 8)",
  },
  frozen: { label: 'FrozenBN', source: 'population', valColumn: 'val_err_precise', help: 'the fixed statistics FrozenBN training normalized with' },
};

/** What a mode evaluates with: population statistics, or the size of the test mini-batches. */
export type ModeStats =
  | { mode: 'ema' | 'precise' | 'frozen'; population: ReadonlyMap<string, LayerStats> }
  | { mode: 'minibatch'; nbs: number }
  | { mode: 'composed'; composition: Composition };

export interface EvalWithOptions {
  progress?: Progress;
  /** Samples to evaluate, in order. Default: all (population) or a fixed shuffle (mini-batch:
   *  a class-sorted set would give one-class batches). */
  order?: ArrayLike<number>;
  /** Seed offset of the mini-batch shuffle (bnlab eval --repeats). */
  repeat?: number;
  label?: string;
}

/** Error (%) of the model on `split` under one statistics mode. */
export async function evaluateWith(net: Network, params: ReadonlyMap<string, tf.Tensor>, split: Split, cfg: Config, m: ModeStats, o: EvalWithOptions = {}): Promise<number> {
  const batch = MODES[m.mode].source === 'batch';
  const nbs = m.mode === 'minibatch' ? m.nbs : m.mode === 'composed' ? m.composition.nbs : cfg.bn.nbs;
  const order = o.order ?? testOrder(split, cfg, m, o.repeat ?? 0);
  o.progress?.start(`eval ${o.label ?? MODES[m.mode].label}`, order?.length ?? split.n);
  const r = await evaluate(net, params, split, {
    ctx: 'population' in m ? { source: 'population', nbs, eps: cfg.bn.eps, population: m.population } : { source: 'batch', nbs, eps: cfg.bn.eps },
    // Mini-batch statistics: whole NBS groups per forward pass.
    batchSize: batch ? Math.max(nbs, Math.floor(cfg.eval.batch_size / nbs) * nbs) : cfg.eval.batch_size,
    order,
    onBatch: (d) => o.progress?.update(d),
  });
  o.progress?.stop();
  return r.err;
}

/** The test samples a mode evaluates, in order: all (population statistics), a fixed shuffle
 *  (mini-batch: a class-sorted set would give one-class batches), or NBS groups composed like
 *  training's (whole groups only: the few samples that fit no group are left out). */
export function testOrder(split: Split, cfg: Config, m: ModeStats, repeat = 0): Int32Array | undefined {
  if (m.mode === 'minibatch') return permutation(split.n, cfg.seed + repeat, 0x6d62);
  if (m.mode === 'composed') return composeEpoch(split.labels, m.composition, cfg.seed + repeat, 0x636d);
  return undefined;
}
