// `bnlab eval`: evaluate a trained checkpoint under every answer to "which batch?" at test time —
// EMA, PreciseBN (re-estimated with any N, B, estimator, repeats and domain), mini-batch
// statistics, FrozenBN — printing a table and appending to <run>/eval.csv.
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'csv-stringify/sync';
import { initBackend } from '../backend/index.js';
import { applyOverride, ConfigError, parseBackend, readConfigFile, validateConfig } from '../config/load.js';
import { BACKENDS, type Config } from '../config/schema.js';
import { loadDataset, type Dataset, type Split } from '../data/dataset.js';
import { sampleWithoutReplacement } from '../data/loader.js';
import { complement, sameImages } from '../bn/domain.js';
import { evaluateWith, MODES, STATS_MODES, testOrder, type StatsMode } from '../bn/modes.js';
import { compositionOf, compositionProblem } from '../bn/composition.js';
import { disposePopulation, type Population } from '../bn/population.js';
import { estimatePrecise } from '../bn/precise.js';
import { hashSeed } from '../util/rng.js';
import { createProgress } from '../util/progress.js';
import { firstNonFinite, readCheckpoint, type Checkpoint } from '../run/checkpoint.js';
import { folderInTheWay } from '../run/folder.js';
import { originProblem } from '../run/identity.js';
import { readRunInfo } from '../run/metadata.js';
import { readMetrics } from '../run/metrics.js';
import { checkpointFor } from '../run/retention.js';
import { createState, emaStats, loadCheckpointInto, type RunMeta } from '../train/state.js';
import { acquireLock } from '../run/lock.js';
import { runPaths, type RunPaths } from '../run/paths.js';
import { disposeState } from '../train/trainer.js';

export const EVAL_COLUMNS = ['epoch', 'stats', 'stats_data', 'data', 'samples', 'batch', 'estimator', 'repeats', 'err_mean', 'err_std', 'errs'] as const;

interface EvalFlags {
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
interface DataSpec {
  text: string;
  split: 'train' | 'val';
  augment: boolean | null;
  data: Config['data'];
}

function parseSpec(text: string | undefined, cfg: Config, defaultSplit: 'train' | 'val'): DataSpec {
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

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1)) : 0);

/**
 * Refuse a checkpoint eval cannot trust: a NaN or infinity (training checks finiteness, and so must
 * eval), another run's or another config's checkpoint, and by default a last.ckpt older than the
 * run's metrics (its final checkpoint is gone: evaluating silently an earlier epoch would mislabel it).
 */
function checkEvaluable(ckpt: Checkpoint<RunMeta>, path: string, cfg: Config, runId: string | undefined, paths: RunPaths, byDefault: boolean): void {
  const bad = firstNonFinite(ckpt);
  if (bad) throw new ConfigError(`${path} holds a non-finite value (${bad}): the model it holds cannot be evaluated; evaluate another epoch (--epoch N)`);
  const foreign = originProblem(ckpt.meta, cfg, runId);
  if (foreign) throw new ConfigError(`${path} cannot be evaluated as part of ${paths.config.replace(/\/config\.yaml$/, '')}: ${foreign}; ${foreign.includes('config.yaml') ? `if ${paths.config} was edited after training, restore it; otherwise ` : ''}evaluate it with --run set to the run that wrote it`);
  const recorded = readMetrics(paths.metrics).at(-1);
  if (byDefault && recorded && Number(recorded.epoch) > ckpt.meta.epoch) {
    throw new ConfigError(`${path} holds epoch ${ckpt.meta.epoch} but metrics.csv records ${recorded.epoch} epochs: the run's final checkpoint is missing; finish the run again with bnlab train --out ${paths.config.replace(/\/config\.yaml$/, '')} --resume, or evaluate epoch ${ckpt.meta.epoch} by name with --epoch ${ckpt.meta.epoch}`);
  }
}

/**
 * Append rows to eval.csv under its lock, and only to the run they were computed for: if the folder
 * was retrained (--overwrite) meanwhile, the rows are refused. A file that ends in half a row (a
 * disk that filled mid-write) gets its own line ended first, so the new rows are never glued to it
 * (the report then skips the broken row, naming it).
 */
export async function appendEvalRows(paths: RunPaths, runId: string | undefined, rows: (string | number)[][]): Promise<void> {
  const csv = paths.eval;
  const release = await acquireLock(`${csv}.lock`, 'bnlab eval', { waitMs: 30_000 });
  try {
    const now = readRunInfo(paths.runInfo)?.id;
    if (runId && now !== runId) {
      throw new EvalRecordError(`${csv}: the run in that folder was replaced while this evaluation ran (run id ${runId} is now ${now ?? 'gone'}); its rows belong to the old run and were not appended`);
    }
    let lead = '';
    if (existsSync(csv) && statSync(csv).size > 0) {
      const text = readFileSync(csv, 'utf8');
      const header = text.slice(0, text.indexOf('\n') >>> 0);
      if (header !== EVAL_COLUMNS.join(',')) throw new EvalRecordError(`${csv} does not start with bnlab's eval.csv header (${EVAL_COLUMNS.join(',')}); move it away and evaluate again`);
      if (!text.endsWith('\n')) {
        lead = '\n';
        process.stderr.write(`bnlab eval: ${csv} ended in half a row (line ${text.split('\n').length}, a write cut short); left as it is, on its own line: bnlab report skips it\n`);
      }
    } else writeFileSync(csv, stringify([EVAL_COLUMNS as unknown as string[]]));
    appendFileSync(csv, lead + stringify(rows));
  } finally {
    release();
  }
}

/** An eval whose result cannot be recorded where it belongs (exit 1, not a usage error). */
class EvalRecordError extends Error {
  name = 'eval';
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate a run\'s checkpoint with EMA, PreciseBN, mini-batch or FrozenBN statistics; appends to <run>/eval.csv')
    .requiredOption('-r, --run <dir>', 'run folder (written by bnlab train)')
    .option('--epoch <n>', 'checkpoint of this epoch (default: the last)')
    .option('--checkpoint <file>', 'a checkpoint file of this run, or the words best / last: the run\'s checkpoints/best.ckpt (checkpoint.best_metric) / last.ckpt (a file named last here: ./last)')
    .option('--stats <list>', `statistics modes, comma-separated: ${STATS_MODES.map((m) => `${m} (${MODES[m].help})`).join('; ')}`, 'ema,precise')
    .option('--precise-bn', 're-estimate PreciseBN statistics (otherwise the checkpoint\'s are used when present)')
    .option('--samples <n>', 'PreciseBN: N samples (implies --precise-bn)')
    .option('--batch <b>', 'PreciseBN batch size B (B >= N: exactly B = N, one BN layer at a time), and the mini-batch size for --stats minibatch (default: precise.batch_size / bn.nbs)')
    .option('--estimator <name>', 'PreciseBN estimator: pooled | mean-of-var (implies --precise-bn)')
    .option('--repeats <r>', 'repeat with different random samples / batches and report mean ± std', '1')
    .option('--stats-data <spec>', 'where PreciseBN statistics come from: split=train|val,augment=true|false and data.* keys, e.g. split=val,corruption.type=contrast,corruption.severity=5')
    .option('--data <spec>', 'what to evaluate on (default: the run\'s validation set), same form as --stats-data')
    .option('--backend <name>', `${BACKENDS.join(' | ')} (default: the run's config)`)
    .option('--json', 'print JSON')
    .option('-q, --quiet', 'no progress bars')
    .action(async (f: EvalFlags) => {
      const backendChoice = f.backend === undefined ? undefined : parseBackend(f.backend);
      const runDir = resolve(f.run);
      const paths = runPaths(runDir);
      // Slurm and `kill` send SIGTERM: say what was (not) recorded, and exit as the README says.
      let appended = false;
      const onSignal = (sig: NodeJS.Signals) => {
        process.stderr.write(`\nbnlab eval: ${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopped; ${appended ? 'its rows were already appended to' : 'nothing was appended to'} ${paths.eval}\n`);
        process.exit(130);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      if (!existsSync(paths.config)) throw new ConfigError(`--run ${f.run}: no config.yaml there; pass a folder written by bnlab train`);
      const cfg = validateConfig(readConfigFile(paths.config), paths.config);
      const inTheWay = folderInTheWay(runDir);
      if (inTheWay) throw new ConfigError(inTheWay);
      const modes = f.stats.split(',').map((m) => m.trim()) as StatsMode[];
      for (const m of modes) if (!STATS_MODES.includes(m)) throw new ConfigError(`--stats: unknown source '${m}' (use ${STATS_MODES.join(', ')})`);
      const int = (v: string | undefined, name: string, min = 1) => {
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name} must be an integer >= ${min}, got '${v}'`);
        return n;
      };
      const repeats = int(f.repeats, '--repeats')!;
      const samples = int(f.samples, '--samples');
      const batch = int(f.batch, '--batch');
      if (f.estimator && f.estimator !== 'pooled' && f.estimator !== 'mean-of-var') throw new ConfigError(`--estimator must be pooled or mean-of-var, got '${f.estimator}'`);
      const ckptPath = checkpointFor(paths, { epoch: int(f.epoch, '--epoch'), checkpoint: f.checkpoint });
      const statsSpec = parseSpec(f.statsData, cfg, 'train');
      const dataSpec = parseSpec(f.data, cfg, 'val');
      const recompute = !!(f.preciseBn || samples || f.estimator || f.statsData || repeats > 1 || (batch && modes.includes('precise')));

      // Checked before the backend and data start: a refusal costs nothing.
      const ckpt = readCheckpoint<RunMeta>(ckptPath);
      const runId = readRunInfo(paths.runInfo)?.id;
      checkEvaluable(ckpt, ckptPath, cfg, runId, paths, !f.checkpoint && f.epoch === undefined);
      const backend = await initBackend(backendChoice ?? cfg.backend, cfg.threads, cfg.cuda);
      if (!f.json && !f.quiet) process.stderr.write(`backend: ${backend.name} — ${backend.reason}\n`);
      const progress = createProgress(!!f.quiet || !!f.json);
      const cache = new Map<string, Dataset>();
      const load = async (d: Config['data']) => {
        const key = JSON.stringify(d);
        if (!cache.has(key)) cache.set(key, await loadDataset(d));
        return cache.get(key)!;
      };
      const evalSet = await load(dataSpec.data);
      const evalSplit: Split = evalSet[dataSpec.split];
      const statsSet = await load(statsSpec.data);
      const statsSplit: Split = statsSet[statsSpec.split];
      const s = createState(cfg, evalSplit.channels, evalSet.numClasses);
      loadCheckpointInto(s, ckpt, ckptPath);
      const epoch = s.meta.epoch;
      if (s.meta.progress.step > 0 && !f.checkpoint) {
        throw new ConfigError(
          `${ckptPath} was saved mid-epoch (epoch ${epoch + 1}, step ${s.meta.progress.step}) by an interrupted run: finish it with bnlab train --out ${f.run} --resume, ` +
            `pick a finished epoch with --epoch N, or pass the file with --checkpoint to evaluate it anyway`,
        );
      }
      // Every requested mode must be computable before any is computed.
      const composedProblem = modes.includes('composed') && compositionProblem({ ...compositionOf(cfg), nbs: batch ?? cfg.bn.nbs }, evalSet.numClasses);
      if (composedProblem) throw new ConfigError(`--stats composed: ${composedProblem}${batch ? ' (--batch sets NBS)' : ''}`);
      if (modes.includes('frozen') && !s.frozen) throw new ConfigError(`--stats frozen: this checkpoint has no FrozenBN statistics (the run has bn.frozen_last_epochs = ${cfg.bn.frozen_last_epochs})`);
      // Statistics and evaluation drawn from the same images: keep them apart (Table 4's protocol).
      const disjoint = sameImages(statsSpec, dataSpec);
      const reestimates = modes.includes('precise') && (recompute || !s.precise);
      const statsN = Math.min(samples ?? cfg.precise.samples, statsSplit.n);
      if (reestimates && disjoint && statsN >= evalSplit.n) {
        throw new ConfigError(`--samples ${statsN}: the statistics would take every image of ${dataSpec.text}, leaving none to evaluate (statistics and evaluation images are kept apart); use --samples < ${evalSplit.n}`);
      }

      const rows: Record<(typeof EVAL_COLUMNS)[number], string | number>[] = [];
      const values: { errs: number[]; evaluated: number }[] = [];
      for (const mode of modes) {
        const errs: number[] = [];
        let n: number | '' = '';
        let b: number | '' = '';
        let est = '';
        let evaluated = evalSplit.n;
        for (let r = 0; r < (mode === 'ema' || mode === 'frozen' || (mode === 'precise' && !recompute) ? 1 : repeats); r++) {
          if (mode === 'ema') errs.push(await evaluateWith(s.net, s.params, evalSplit, cfg, { mode, population: emaStats(s) }, { progress }));
          else if (mode === 'frozen') errs.push(await evaluateWith(s.net, s.params, evalSplit, cfg, { mode, population: s.frozen! }, { progress }));
          else if (mode === 'minibatch') {
            b = batch ?? cfg.bn.nbs;
            errs.push(await evaluateWith(s.net, s.params, evalSplit, cfg, { mode, nbs: b }, { progress, repeat: r, label: `mini-batch ${b}` }));
          } else if (mode === 'composed') {
            // Test groups made like the run's training groups (NBS, and K classes each for 'classes').
            const m = { mode, composition: { ...compositionOf(cfg), nbs: batch ?? cfg.bn.nbs } } as const;
            b = m.composition.nbs;
            const order = testOrder(evalSplit, cfg, m, r)!;
            evaluated = order.length;
            errs.push(await evaluateWith(s.net, s.params, evalSplit, cfg, m, { progress, order, label: `mini-batch ${b} (${cfg.bn.composition})` }));
          } else {
            let stats: Population;
            let order: Int32Array | undefined;
            if (!recompute && s.precise) {
              stats = s.precise;
              n = Math.min(cfg.precise.samples, statsSplit.n); // what the run's PreciseBN pass used
              b = Math.min(cfg.precise.batch_size, n);
              est = cfg.precise.estimator;
            } else {
              n = statsN;
              b = Math.min(batch ?? cfg.precise.batch_size, n); // B >= N is B = N, computed exactly
              est = f.estimator ?? cfg.precise.estimator;
              const indices = sampleWithoutReplacement(statsSplit.n, n, hashSeed(cfg.seed, r, 0x9e7a));
              stats = await estimatePrecise(s.net, s.params, statsSplit, cfg, {
                samples: n,
                batchSize: b,
                estimator: est as 'pooled' | 'mean-of-var',
                augment: statsSpec.augment ?? (statsSpec.split === 'train' ? cfg.precise.augment : false),
                seed: cfg.seed + r,
                epoch,
                indices,
              }, progress);
              if (disjoint) order = complement(evalSplit.n, indices);
            }
            evaluated = order?.length ?? evalSplit.n;
            errs.push(await evaluateWith(s.net, s.params, evalSplit, cfg, { mode, population: stats }, { progress, order }));
            if (stats !== s.precise) disposePopulation(stats);
          }
        }
        rows.push({
          epoch,
          stats: mode,
          stats_data: mode === 'precise' ? statsSpec.text : '',
          data: dataSpec.text,
          samples: n,
          batch: b,
          estimator: est,
          repeats: errs.length,
          err_mean: +mean(errs).toFixed(4),
          err_std: +std(errs).toFixed(4),
          errs: errs.map((e) => e.toFixed(4)).join(';'),
        });
        values.push({ errs, evaluated });
      }
      disposeState(s);

      await appendEvalRows(paths, runId, rows.map((r) => EVAL_COLUMNS.map((c) => r[c])));
      appended = true;
      if (f.json) {
        // Numbers as numbers, absent values as null, the per-repeat errors as an array.
        const json = rows.map((r, i) => ({
          ...r,
          samples: r.samples === '' ? null : r.samples,
          batch: r.batch === '' ? null : r.batch,
          estimator: r.estimator || null,
          errs: values[i].errs.map((e) => +e.toFixed(4)),
          evaluated: values[i].evaluated,
        }));
        return void process.stdout.write(JSON.stringify({ run: runDir, checkpoint: ckptPath, rows: json }, null, 2) + '\n');
      }
      const head = ['stats', 'N', 'B', 'estimator', 'stats from', 'evaluated on', 'images', 'error %'];
      const body = rows.map((r) => [
        String(r.stats),
        String(r.samples),
        String(r.batch),
        String(r.estimator),
        r.stats === 'precise' ? statsSpec.text || 'train' : '',
        dataSpec.text || 'val',
        String(values[rows.indexOf(r)].evaluated),
        Number(r.repeats) > 1 ? `${Number(r.err_mean).toFixed(2)} ± ${Number(r.err_std).toFixed(2)} (${r.repeats} runs)` : Number(r.err_mean).toFixed(2),
      ]);
      const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
      const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join('  ');
      process.stdout.write(`${runDir} @ epoch ${epoch}\n${line(head)}\n${line(w.map((x) => '-'.repeat(x)))}\n${body.map(line).join('\n')}\n`);
      const cut = values.find((v) => v.evaluated < evalSplit.n);
      if (cut) process.stdout.write(`the ${evalSplit.n - cut.evaluated} images PreciseBN statistics came from are left out of the evaluation: precise evaluated on ${cut.evaluated} of ${evalSplit.n} images\n`);
    });
}
