// `bnlab eval` without a backend: its flags parsed and checked, then the plan — which modes, on
// which data (the evaluation set and the statistics set), how many repeats, which eval.csv rows —
// as pure functions of the flags, the run's config and a few facts about the checkpoint and the
// data (test/eval-plan.test.ts). What each mode computes is its entry in MODES (bn/modes.ts).
import { applyOverride, ConfigError, validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { sameImages } from '../bn/domain.js';
import type { Estimator } from '../bn/estimators.js';
import { MODES, STATS_MODES, type EvalAsk, type ModePlan, type StatsMode } from '../bn/modes.js';
import { MODE } from '../bn/columns.js';

export const EVAL_COLUMNS = ['epoch', 'stats', 'stats_data', 'data', 'samples', 'batch', 'estimator', 'repeats', 'err_mean', 'err_std', 'errs'] as const;
/** One eval.csv line's cells as written (report/runs' EvalRow is one read back). */
export type EvalCsvRow = Record<(typeof EVAL_COLUMNS)[number], string | number>;

export interface EvalFlags {
  run: string;
  epoch?: string;
  checkpoint?: string;
  stats: string;
  preciseBn?: boolean;
  samples?: string;
  batch?: string;
  estimator?: string;
  repeats: string;
  statsData?: string;
  data?: string;
  json?: boolean;
  quiet?: boolean;
  backend?: string;
}

/** A dataset spec: `split=val,augment=false,corruption.type=contrast,...` (data.* overrides). */
export interface DataSpec {
  text: string;
  split: 'train' | 'val';
  augment: boolean | null;
  data: Config['data'];
}

export function parseSpec(text: string | undefined, cfg: Config, defaultSplit: 'train' | 'val'): DataSpec {
  const raw = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
  let split = defaultSplit;
  let augment: boolean | null = null;
  for (const part of (text ?? '').split(',').map((p) => p.trim()).filter(Boolean)) {
    const [k, v] = part.split('=', 2);
    if (v === undefined) throw new ConfigError(`dataset spec '${text}': '${part}' is not key=value (e.g. split=val,corruption.type=contrast)`);
    if (k === 'split') {
      if (v !== 'train' && v !== 'val') throw new ConfigError(`dataset spec: split must be train or val, got '${v}'`);
      split = v;
    } else if (k === 'augment') {
      if (v !== 'true' && v !== 'false') throw new ConfigError(`dataset spec: augment must be true or false, got '${v}'`);
      augment = v === 'true';
    } else {
      applyOverride(raw, `data.${k}=${v}`);
    }
  }
  return { text: text ?? '', split, augment, data: validateConfig(raw, `dataset spec '${text}'`).data };
}

/** What the flags ask for, checked (the checkpoint is chosen from epoch / checkpoint). */
export interface EvalRequest {
  modes: StatsMode[];
  repeats: number;
  samples?: number;
  batch?: number;
  estimator?: Estimator;
  epoch?: number;
  checkpoint?: string;
  /** Where PreciseBN statistics come from (default: the training set) and what is evaluated (default: the validation set). */
  statsSpec: DataSpec;
  dataSpec: DataSpec;
  /** Re-estimate PreciseBN even where the checkpoint holds its statistics. */
  reestimate: boolean;
}

const int = (v: string | undefined, name: string, min = 1) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name} must be an integer >= ${min}, got '${v}'`);
  return n;
};

/** The flags as a request (ConfigError: a usage error, exit 2). */
export function parseEvalFlags(f: EvalFlags, cfg: Config): EvalRequest {
  const modes = f.stats.split(',').map((m) => m.trim()) as StatsMode[];
  for (const m of modes) if (!STATS_MODES.includes(m)) throw new ConfigError(`--stats: unknown source '${m}' (use ${STATS_MODES.join(', ')})`);
  const repeats = int(f.repeats, '--repeats')!;
  const samples = int(f.samples, '--samples');
  const batch = int(f.batch, '--batch');
  if (f.estimator && f.estimator !== 'pooled' && f.estimator !== 'mean-of-var') throw new ConfigError(`--estimator must be pooled or mean-of-var, got '${f.estimator}'`);
  const epoch = int(f.epoch, '--epoch');
  const statsSpec = parseSpec(f.statsData, cfg, 'train');
  const dataSpec = parseSpec(f.data, cfg, 'val');
  const reestimate = !!(f.preciseBn || samples || f.estimator || f.statsData || repeats > 1 || (batch && modes.includes(MODE.precise)));
  return { modes, repeats, samples, batch, estimator: f.estimator as Estimator | undefined, epoch, checkpoint: f.checkpoint, statsSpec, dataSpec, reestimate };
}

/** What the plan needs to know about the checkpoint and the loaded data. */
export interface EvalFacts {
  statsImages: number;
  evalImages: number;
  numClasses: number;
  held: { precise: boolean; frozen: boolean };
}

export interface EvalPlan {
  /** Every requested mode, in order: its repeats, eval.csv cells and where its statistics come from. */
  modes: ModePlan[];
  statsSpec: DataSpec;
  dataSpec: DataSpec;
}

/** The request as the modes' plans; every mode is checked before any is computed (ConfigError: the first that cannot be). */
export function planEval(req: EvalRequest, cfg: Config, facts: EvalFacts): EvalPlan {
  const ask: EvalAsk = {
    cfg,
    batch: req.batch,
    samples: req.samples,
    estimator: req.estimator,
    repeats: req.repeats,
    reestimate: req.reestimate,
    ...facts,
    dataText: req.dataSpec.text,
    // Statistics and evaluation drawn from the same images: keep them apart (Table 4's protocol).
    disjoint: sameImages(req.statsSpec, req.dataSpec),
    statsAugment: req.statsSpec.augment ?? (req.statsSpec.split === 'train' ? cfg.precise.augment : false),
  };
  for (const m of req.modes) {
    const problem = MODES[m].problem(ask);
    if (problem) throw new ConfigError(problem);
  }
  return { modes: req.modes.map((m) => MODES[m].plan(ask)), statsSpec: req.statsSpec, dataSpec: req.dataSpec };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0);

/** The eval.csv rows of a plan's results: per mode, the error of every repeat. */
export function evalRows(plan: EvalPlan, epoch: number, errs: number[][]): EvalCsvRow[] {
  return plan.modes.map((p, i) => ({
    epoch,
    stats: p.mode,
    stats_data: p.usesStatsData ? plan.statsSpec.text : '',
    data: plan.dataSpec.text,
    samples: p.samples,
    batch: p.batch,
    estimator: p.estimator,
    repeats: errs[i].length,
    err_mean: +mean(errs[i]).toFixed(4),
    err_std: +std(errs[i]).toFixed(4),
    errs: errs[i].map((e) => e.toFixed(4)).join(';'),
  }));
}
