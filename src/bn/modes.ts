// The answers to "which batch?" at test time, one object per mode, shared by `bnlab train` (end of
// every epoch), `bnlab eval`, the metrics columns, the summary and the report: population
// statistics (EMA, PreciseBN, FrozenBN's fixed ones) or mini-batch statistics of NBS test samples.
// Each entry of MODES owns what differs between modes: its label, help and metrics.csv column(s),
// which evaluations it adds at the end of a training epoch, what `bnlab eval` computes for it (its
// plan: repeats and eval.csv cells, or why it cannot run) and where its statistics come from for
// one repeat. Adding a mode is its name and facts in columns.ts, an entry in MODES (and, if it
// needs new statistics, a case in ModeStats) and its schema key that switches it on during training.
import type * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../config/schema.js';
import type { Split } from '../data/dataset.js';
import { permutation, sampleWithoutReplacement } from '../data/loader.js';
import { composeEpoch, compositionOf, compositionProblem, type Composition } from './composition.js';
import { complement } from './domain.js';
import { emaPopulation, type EmaBuffers } from './ema.js';
import type { Estimator } from './estimators.js';
import { evaluate } from '../eval/evaluate.js';
import type { LayerStats } from '../nn/batchnorm.js';
import type { Network } from '../nn/resnet.js';
import { hashSeed } from '../util/rng.js';
import type { Progress } from '../util/progress.js';
import { disposePopulation, type Population } from './population.js';
import { estimatePrecise, type PreciseRequest } from './precise.js';

import { MODE_FACTS, STATS_MODES, type ModeFacts, type StatsMode } from './columns.js';
export { STATS_MODES, type StatsMode };

/** What a mode evaluates with: population statistics, or the size of the test mini-batches. */
export type ModeStats =
  | { mode: 'ema' | 'precise' | 'frozen'; population: ReadonlyMap<string, LayerStats> }
  | { mode: 'minibatch'; nbs: number }
  | { mode: 'composed'; composition: Composition };

/** The statistics a run state holds (train/state's RunState is one). */
export interface HeldStats {
  ema: EmaBuffers;
  precise: Population | null;
  frozen: Population | null;
}

/** Where the end of a training epoch stands, for the modes that report on it. */
export interface EpochContext {
  cfg: Config;
  held: HeldStats;
  /** This epoch trained with FrozenBN. */
  frozen: boolean;
  /** A PreciseBN pass ran this epoch. */
  preciseRan: boolean;
  /** Training images (a mode may report a training-set error on a subset of them). */
  trainImages: number;
}

/** One evaluation at the end of an epoch: a metrics.csv column, filled with the error under `stats` on `split`. */
export interface EpochJob {
  column: string;
  split: 'train' | 'val';
  stats: ModeStats;
  order?: Int32Array;
  label?: string;
}

/** What `bnlab eval` asks of every mode: its flags parsed, its data chosen (no backend needed). */
export interface EvalAsk {
  cfg: Config;
  /** --batch: NBS of the mini-batch modes, B of PreciseBN. */
  batch?: number;
  /** --samples: PreciseBN's N. */
  samples?: number;
  /** --estimator. */
  estimator?: Estimator;
  repeats: number;
  /** Re-estimate PreciseBN even when the checkpoint holds its statistics (--precise-bn and the flags that imply it). */
  reestimate: boolean;
  /** Images of the statistics set / of the evaluation set, the latter's classes. */
  statsImages: number;
  evalImages: number;
  numClasses: number;
  /** --data as given ('' for the default), for messages. */
  dataText: string;
  /** Statistics and evaluation draw on the same images: keep them apart (Table 4's protocol). */
  disjoint: boolean;
  /** Apply training augmentation to the statistics images. */
  statsAugment: boolean;
  /** Statistics the checkpoint holds. */
  held: { precise: boolean; frozen: boolean };
}

/** A mode's part of an evaluation: how often, its eval.csv cells, and what its statistics are made from. */
export interface ModePlan {
  mode: StatsMode;
  repeats: number;
  /** eval.csv's samples / batch / estimator cells ('' where the mode has none). */
  samples: number | '';
  batch: number | '';
  estimator: string;
  /** Its statistics come from the statistics set (--stats-data): eval.csv's stats_data cell. */
  usesStatsData: boolean;
  /** PreciseBN re-estimated with N = samples, B = batch, this estimator (else: the checkpoint's);
   *  disjoint: its images are left out of the evaluation. */
  reestimate?: { augment: boolean; disjoint: boolean };
  /** Mini-batch modes: the NBS groups. */
  nbs?: number;
  composition?: Composition;
}

/** What one repeat's statistics are computed on and with. */
export interface StatsEnv {
  net: Network;
  params: ReadonlyMap<string, tf.Tensor>;
  cfg: Config;
  held: HeldStats;
  statsSplit: Split;
  evalSplit: Split;
  /** Completed epochs of the checkpoint (PreciseBN's request). */
  epoch: number;
  progress?: Progress;
}

/** One repeat's statistics: what to evaluate with, on which samples (default: all), and what frees them. */
export interface RepeatStats {
  stats: ModeStats;
  order?: Int32Array;
  label?: string;
  dispose(): void;
}

/** A mode: its facts (label, help, metrics.csv columns: bn/columns.ts) and its behaviour. */
export interface ModeInfo extends ModeFacts {
  /** The evaluations it adds at the end of a training epoch (none: not reported then). */
  epochJobs(e: EpochContext): EpochJob[];
  /** `bnlab eval`: why it cannot be computed for this ask (null: it can). Checked for every mode before any is computed. */
  problem(a: EvalAsk): string | null;
  /** `bnlab eval`: what it computes for this ask. */
  plan(a: EvalAsk): ModePlan;
  /** `bnlab eval`: the statistics of repeat `r` of a plan. */
  statistics(p: ModePlan, r: number, env: StatsEnv): Promise<RepeatStats>;
}

const keep = () => {};

/** A mode that evaluates with population statistics a run state holds (EMA, FrozenBN). */
function held(mode: 'ema' | 'frozen', get: (h: HeldStats) => Population | null): Pick<ModeInfo, 'plan' | 'statistics'> {
  return {
    plan: () => ({ mode, repeats: 1, samples: '', batch: '', estimator: '', usesStatsData: false }),
    statistics: async (_p, _r, env) => ({ stats: { mode, population: get(env.held)! }, dispose: keep }),
  };
}

/** The NBS `bnlab eval` uses for the mini-batch modes. */
const evalNbs = (a: EvalAsk) => a.batch ?? a.cfg.bn.nbs;
/** The composition of the 'composed' mode's test groups: the run's training composition at eval's NBS. */
const evalComposition = (a: EvalAsk): Composition => ({ ...compositionOf(a.cfg), nbs: evalNbs(a) });

/** PreciseBN re-estimated (the flags ask for it, or the checkpoint holds none). */
const reestimates = (a: EvalAsk) => a.reestimate || !a.held.precise;

/** Repeat `r` of a re-estimated PreciseBN: N samples of the statistics set, drawn per repeat. */
export function evalPreciseRequest(p: ModePlan, r: number, cfg: Config, statsImages: number, epoch: number): PreciseRequest {
  const n = p.samples as number;
  return {
    samples: n,
    batchSize: p.batch as number,
    estimator: p.estimator as Estimator,
    augment: p.reestimate!.augment,
    seed: cfg.seed + r,
    epoch,
    indices: sampleWithoutReplacement(statsImages, n, hashSeed(cfg.seed, r, 0x9e7a)),
  };
}

export const MODES: Record<StatsMode, ModeInfo> = {
  ema: {
    ...MODE_FACTS.ema,
    epochJobs: (e) => (e.frozen ? [] : [{ column: MODE_FACTS.ema.valColumn, split: 'val', stats: { mode: 'ema', population: emaPopulation(e.held.ema) } }]),
    problem: () => null,
    ...held('ema', (h) => emaPopulation(h.ema)),
  },
  precise: {
    ...MODE_FACTS.precise,
    epochJobs: (e) => (!e.frozen && e.preciseRan && e.held.precise ? [{ column: MODE_FACTS.precise.valColumn, split: 'val', stats: { mode: 'precise', population: e.held.precise } }] : []),
    problem(a) {
      const n = Math.min(a.samples ?? a.cfg.precise.samples, a.statsImages);
      if (reestimates(a) && a.disjoint && n >= a.evalImages) {
        return `--samples ${n}: the statistics would take every image of ${a.dataText}, leaving none to evaluate (statistics and evaluation images are kept apart); use --samples < ${a.evalImages}`;
      }
      return null;
    },
    plan(a) {
      const { cfg } = a;
      if (!reestimates(a)) {
        // the checkpoint's: what the run's PreciseBN pass used
        const n = Math.min(cfg.precise.samples, a.statsImages);
        return { mode: 'precise', repeats: 1, samples: n, batch: Math.min(cfg.precise.batch_size, n), estimator: cfg.precise.estimator, usesStatsData: true };
      }
      const n = Math.min(a.samples ?? cfg.precise.samples, a.statsImages);
      return {
        mode: 'precise',
        repeats: a.reestimate ? a.repeats : 1,
        samples: n,
        batch: Math.min(a.batch ?? cfg.precise.batch_size, n), // B >= N is B = N, computed exactly
        estimator: a.estimator ?? cfg.precise.estimator,
        usesStatsData: true,
        reestimate: { augment: a.statsAugment, disjoint: a.disjoint },
      };
    },
    async statistics(p, r, env) {
      if (!p.reestimate) return { stats: { mode: 'precise', population: env.held.precise! }, dispose: keep };
      const request = evalPreciseRequest(p, r, env.cfg, env.statsSplit.n, env.epoch);
      const population = await estimatePrecise(env.net, env.params, env.statsSplit, env.cfg, request, env.progress);
      // statistics drawn from the evaluation images: evaluate on the others
      return { stats: { mode: 'precise', population }, order: p.reestimate.disjoint ? complement(env.evalSplit.n, request.indices!) : undefined, dispose: () => disposePopulation(population) };
    },
  },
  minibatch: {
    ...MODE_FACTS.minibatch,
    epochJobs: ({ cfg, trainImages }) => [
      ...(cfg.eval.minibatch ? [{ column: MODE_FACTS.minibatch.valColumn, split: 'val' as const, stats: { mode: 'minibatch' as const, nbs: cfg.bn.nbs } }] : []),
      ...(cfg.eval.train_minibatch
        ? [{ column: MODE_FACTS.minibatch.trainColumn, split: 'train' as const, stats: { mode: 'minibatch' as const, nbs: cfg.bn.nbs }, label: 'train NBS', order: permutation(trainImages, cfg.seed, 0x7472).subarray(0, Math.min(cfg.eval.train_minibatch_samples, trainImages)) }]
        : []),
    ],
    problem: () => null,
    plan: (a) => ({ mode: 'minibatch', repeats: a.repeats, samples: '', batch: evalNbs(a), estimator: '', usesStatsData: false, nbs: evalNbs(a) }),
    async statistics(p, r, env) {
      const stats: ModeStats = { mode: 'minibatch', nbs: p.nbs! };
      return { stats, order: testOrder(env.evalSplit, env.cfg, stats, r), label: `mini-batch ${p.nbs}`, dispose: keep };
    },
  },
  composed: {
    ...MODE_FACTS.composed,
    epochJobs: ({ cfg }) => (cfg.eval.composed ? [{ column: MODE_FACTS.composed.valColumn, split: 'val', stats: { mode: 'composed', composition: compositionOf(cfg) } }] : []),
    problem(a) {
      const why = compositionProblem(evalComposition(a), a.numClasses);
      return why && `--stats composed: ${why}${a.batch ? ' (--batch sets NBS)' : ''}`;
    },
    // Test groups made like the run's training groups (NBS, and K classes each for 'classes').
    plan: (a) => ({ mode: 'composed', repeats: a.repeats, samples: '', batch: evalNbs(a), estimator: '', usesStatsData: false, composition: evalComposition(a) }),
    async statistics(p, r, env) {
      const stats: ModeStats = { mode: 'composed', composition: p.composition! };
      return { stats, order: testOrder(env.evalSplit, env.cfg, stats, r), label: `mini-batch ${p.composition!.nbs} (${env.cfg.bn.composition})`, dispose: keep };
    },
  },
  frozen: {
    ...MODE_FACTS.frozen,
    epochJobs: (e) => (e.frozen && e.held.frozen ? [{ column: MODE_FACTS.frozen.valColumn, split: 'val', stats: { mode: 'frozen', population: e.held.frozen } }] : []),
    problem: (a) => (a.held.frozen ? null : `--stats frozen: this checkpoint has no FrozenBN statistics (the run has bn.frozen_last_epochs = ${a.cfg.bn.frozen_last_epochs})`),
    ...held('frozen', (h) => h.frozen),
  },
};

/** Every evaluation the end of a training epoch makes, mode by mode in MODES order. */
export const epochJobs = (e: EpochContext): EpochJob[] => STATS_MODES.flatMap((m) => MODES[m].epochJobs(e));

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
    ctx: 'population' in m ? { source: 'population', eps: cfg.bn.eps, population: m.population } : { source: 'batch', nbs, eps: cfg.bn.eps },
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
