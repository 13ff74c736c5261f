// Reading run folders (config.yaml + metrics.csv + eval.csv + bn_trace.csv) for reports and plots.
// Runs are identified by their resolved config, never by folder names, so any layout works.
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { parse as parseYaml } from 'yaml';
import { lastSession, type Session } from '../run/metadata.js';
import { withFrozenColumn } from '../run/metrics.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { ReportRole } from '../config/schema.js';
import { MODE } from '../bn/columns.js';

/** A number or null; an empty CSV cell means "not computed". */
export type Num = number | null;

export interface EvalRow {
  epoch: number;
  stats: string; // ema | precise | minibatch
  stats_data: string; // '' = the run's training data
  data: string; // '' = the run's val set
  samples: Num;
  batch: Num;
  estimator: string;
  repeats: Num;
  err_mean: Num;
  err_std: Num;
  errs: number[];
}

export interface TraceRow {
  epoch: number;
  iter: number;
  layer: string;
  channel: number;
  kind: string; // ema | batch | population
  value: number;
}

export interface Run {
  dir: string;
  name: string; // path relative to the folder the user named, for labels and footnotes
  batch: number;
  nbs: number;
  frozen: number;
  epochs: number;
  preciseBatch: number;
  /** the paper's tables and figures it declares it stands in for (report.roles; none before that key existed) */
  roles: ReportRole[];
  config: Config;
  /** A PyTorch twin's framework ("pytorch 1.13"; scripts/torch_twin.py), null for bnlab's runs. */
  framework: string | null;
  metrics: Record<string, Num>[];
  evals: EvalRow[];
  tracePath: string | null; // read lazily: traces can be large
  /** how its last session stands (run.json with the lock: 'died' = killed without a word); null: no run.json */
  session: Session['status'] | null;
}

const num = (s: string | undefined): Num => (s === undefined || s.trim() === '' || Number.isNaN(Number(s)) ? null : Number(s));
const csv = (path: string): Record<string, string>[] =>
  existsSync(path) ? parseCsv(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true, relax_column_count: true }) : [];

/** Thrown for a run folder whose files cannot be read as a run (the report skips it, naming it). */
export class RunReadError extends Error {}

const isNumber = (c: string) => c.trim() !== '' && Number.isFinite(Number(c));
const isCount = (c: string) => c === '' || /^\d+$/.test(c);

/** Why an eval.csv row cannot be trusted (null: it can): a write cut short glues or truncates rows. */
function evalRowProblem(cells: string[], width: number): string | null {
  if (cells.length !== width) return `${cells.length} cells, not ${width}`;
  const [epoch, stats, , , samples, batch, , repeats, errMean, errStd, errs] = cells;
  if (!/^\d+$/.test(epoch)) return `epoch '${epoch}' is not a whole number`;
  if (!/^[a-z][a-z-]*$/.test(stats)) return `stats '${stats}' is not a statistics mode`;
  if (![samples, batch, repeats].every(isCount)) return 'samples, batch or repeats is not a whole number';
  if (!isNumber(errMean) || !isNumber(errStd)) return 'err_mean or err_std is not a number';
  const each = errs.split(';').filter((e) => e !== '');
  if (!each.every(isNumber) || (repeats !== '' && each.length !== Number(repeats))) return `errs '${errs}' does not hold ${repeats} numbers`;
  const mean = each.reduce((a, e) => a + Number(e), 0) / each.length;
  // bnlab writes each to 4 decimals (hand-made tables round further); a cut-off cell is off by far more
  if (Math.abs(mean - Number(errMean)) > 0.01) return `err_mean ${errMean} is not the mean of errs (${mean.toFixed(4)})`;
  return null;
}

/** A CSV's rows as arrays with their line numbers, the header first (empty when absent). */
function rowsOf(path: string): { line: number; cells: string[] }[] {
  if (!existsSync(path)) return [];
  if (statSync(path).isDirectory()) throw new RunReadError(`${path} is a folder, not bnlab's CSV file`);
  const bytes = readFileSync(path);
  if (bytes.subarray(0, 4096).includes(0)) throw new RunReadError(`${path} is not text (it holds NUL bytes)`);
  let rows: string[][];
  try {
    rows = parseCsv(bytes.toString('utf8'), { relax_column_count: true, relax_quotes: true, skip_empty_lines: false });
  } catch (e) {
    throw new RunReadError(`${path} is not a CSV file: ${(e as Error).message}`);
  }
  return rows.map((cells, i) => ({ line: i + 1, cells })).filter((r) => !(r.cells.length === 1 && r.cells[0] === ''));
}

/** The rows of a run's CSV that are whole, as objects; each broken one is named through `warn` and left out. */
function checkedRows(path: string, problem: (cells: string[], width: number) => string | null, warn: (msg: string) => void): Record<string, string>[] {
  const [head, ...body] = rowsOf(path);
  if (!head) return [];
  const out: Record<string, string>[] = [];
  for (const r of body) {
    const why = problem(r.cells, head.cells.length);
    if (why) warn(`${path} line ${r.line} skipped (${why}; a write cut short?)`);
    else out.push(Object.fromEntries(head.cells.map((h, i) => [h, r.cells[i]])));
  }
  return out;
}

const metricsRowProblem = (cells: string[], width: number): string | null =>
  cells.length !== width ? `${cells.length} cells, not ${width}` : !/^\d+$/.test(cells[0]) ? `epoch '${cells[0]}' is not a whole number` : null;

/**
 * A run's config.yaml read through the config schema (keys a run from before them lacks take
 * their defaults); a PyTorch twin's `framework` key (scripts/torch_twin.py) is kept beside it.
 */
function readRunConfig(path: string): { config: Config; framework: string | null } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(path, 'utf8')) ?? {};
  } catch (e) {
    throw new RunReadError(`${path} is not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RunReadError(`${path} is not a mapping of config keys`);
  const { framework, ...rest } = raw as Record<string, unknown>;
  try {
    return { config: validateConfig(rest, path), framework: typeof framework === 'string' ? framework : null };
  } catch (e) {
    throw new RunReadError((e as Error).message.split('\n')[0]);
  }
}

export function loadRun(dir: string, root = dir, warn: (msg: string) => void = () => {}): Run {
  const { config, framework } = readRunConfig(join(dir, 'config.yaml'));
  const metrics = checkedRows(join(dir, 'metrics.csv'), metricsRowProblem, warn).map((r) => {
    const o: Record<string, Num> = {};
    for (const [k, v] of Object.entries(withFrozenColumn(r))) o[k] = k === 'bn_mode' ? (v === MODE.frozen ? 1 : v === 'batch' ? 0 : null) : num(v);
    return o;
  });
  const evals = checkedRows(join(dir, 'eval.csv'), evalRowProblem, warn).map(
    (r): EvalRow => ({
      epoch: Number(r.epoch),
      stats: r.stats ?? '',
      stats_data: r.stats_data ?? '',
      data: r.data ?? '',
      samples: num(r.samples),
      batch: num(r.batch),
      estimator: r.estimator ?? '',
      repeats: num(r.repeats),
      err_mean: num(r.err_mean),
      err_std: num(r.err_std),
      errs: (r.errs ?? '').split(';').filter((s) => s.trim() !== '').map(Number),
    }),
  );
  const trace = join(dir, 'bn_trace.csv');
  const lastEpoch = Math.max(0, ...metrics.map((m) => m.epoch ?? 0));
  return {
    dir,
    name: relative(root, dir) || basename(dir),
    batch: config.optim.batch_size,
    nbs: config.bn.nbs,
    frozen: config.bn.frozen_last_epochs,
    epochs: config.epochs,
    preciseBatch: config.precise.batch_size,
    roles: config.report.roles,
    config,
    framework,
    metrics,
    evals,
    tracePath: existsSync(trace) ? trace : null,
    session: lastSession(dir)?.status ?? null,
  };
}

export function readTrace(path: string): TraceRow[] {
  return csv(path).map((r) => ({
    epoch: Number(r.epoch),
    iter: Number(r.iter),
    layer: r.layer,
    channel: Number(r.channel),
    kind: r.kind,
    value: Number(r.value),
  }));
}

const isRun = (d: string) => existsSync(join(d, 'config.yaml'));

/**
 * Run folders under the given paths: each path is a run, or a sweep folder whose runs sit one to
 * three levels down (results/mini/<experiment>/<run>/ works from results/mini or an experiment).
 * A run folder that cannot be read, and each broken CSV row, is named through `warn` and left out.
 */
export function findRuns(paths: string[], warn: (msg: string) => void = () => {}): Run[] {
  const runs: Run[] = [];
  const walk = (d: string, root: string, depth: number) => {
    if (isRun(d)) {
      // One unreadable run folder must not hide every other run: skip it, naming why.
      try {
        runs.push(loadRun(d, root, warn));
      } catch (e) {
        if (!(e instanceof RunReadError)) throw e;
        warn(`${d} skipped: ${e.message}`);
      }
      return;
    }
    if (depth === 0) return;
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (!e.startsWith('.') && e !== 'checkpoints' && statSync(p).isDirectory()) walk(p, root, depth - 1);
    }
  };
  for (const p of paths) {
    if (!existsSync(p)) throw new Error(`no such folder: ${p}`);
    walk(p, isRun(p) ? join(p, '..') : p, 3);
  }
  return runs;
}

/** A run's metrics row for an epoch, or undefined. */
/**
 * Each run folder once: a run one experiment shares with another through a symlink (Table 2's
 * nbs32 and Fig. 8's control are Table 1's small-batch run) is one run, not two seeds, listed
 * under its own folder when that is among the runs, else under its first link.
 */
export function distinctRuns(runs: Run[]): Run[] {
  const real = runs.map((run) => realpathSync(run.dir));
  const link = runs.map((run) => lstatSync(run.dir).isSymbolicLink());
  const seen = new Set(real.filter((_, i) => !link[i]));
  return runs.filter((_, i) => !link[i] || (!seen.has(real[i]) && (seen.add(real[i]), true)));
}

export const metricsAt = (run: Run, epoch: number) => run.metrics.find((m) => m.epoch === epoch);
/** config.yaml's seed (0 where a run predates the key). */
export const seedOf = (run: Run) => Number(run.config.seed ?? 0);
/** A reader's value on each run that has one, with the run's seed, in seed order. */
export const seedValues = (rs: Run[], f: (run: Run) => number | null): { seed: number; v: number }[] =>
  rs.flatMap((run) => {
    const v = f(run);
    return v === null ? [] : [{ seed: seedOf(run), v }];
  }).sort((a, b) => a.seed - b.seed);
/** The recipe a run belongs to: its name without the seed (`b128_seed1` -> `b128`) and a fork's continuation (`_cont1`). */
export const recipeOf = (run: Run) => run.name.replace(/_seed\d+(_cont\d+)?$/, '');

/** The last epoch the run has written (metrics or eval), which is config.epochs when it finished. */
export const lastEpoch = (run: Run) => Math.max(0, ...run.metrics.map((m) => m.epoch ?? 0), ...run.evals.map((e) => e.epoch));
/** Number of classes of a run's dataset, from its config; null when the config does not say (imagefolder). */
export function numClasses(run: Run): number | null {
  const d = run.config.data ?? {};
  const name = d.name ?? 'fashion-mnist-mini'; // the schema's defaults
  if (name === 'synthetic') return d.synthetic?.classes ?? 4;
  if (['mnist', 'fashion-mnist', 'fashion-mnist-mini', 'cifar10'].includes(name)) return 10;
  return null;
}
