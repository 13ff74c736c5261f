// `bnlab eval`: evaluate a trained checkpoint under every answer to "which batch?" at test time —
// EMA, PreciseBN (re-estimated with any N, B, estimator, repeats and domain), mini-batch
// statistics, FrozenBN — printing a table and appending to <run>/eval.csv. Flags -> checks ->
// plan (eval-plan.ts, pure) -> each mode's statistics and evaluation (bn/modes) -> eval.csv.
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'csv-stringify/sync';
import { initBackend } from '../backend/index.js';
import { ConfigError, parseBackend, readConfigFile, validateConfig } from '../config/load.js';
import { BACKENDS, type Config } from '../config/schema.js';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { evaluateWith, MODES, STATS_MODES, type StatsEnv } from '../bn/modes.js';
import { createProgress, type Progress } from '../util/progress.js';
import { firstNonFinite, readCheckpoint, type Checkpoint } from '../run/checkpoint.js';
import { folderInTheWay } from '../run/folder.js';
import { originProblem } from '../run/identity.js';
import { readRunInfo } from '../run/metadata.js';
import { readMetrics } from '../run/metrics.js';
import { checkpointFor } from '../run/retention.js';
import { createState, disposeState, loadCheckpointInto, type RunMeta } from '../run/state.js';
import { acquireLock } from '../run/lock.js';
import { runPaths, type RunPaths } from '../run/paths.js';
import { EVAL_COLUMNS, evalRows, parseEvalFlags, planEval, type EvalFlags, type EvalPlan, type EvalRequest, type EvalCsvRow } from './eval-plan.js';

export { EVAL_COLUMNS } from './eval-plan.js';

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
    .action(runEval);
}

/** flags -> checks (before the backend starts: a refusal costs nothing) -> plan and computation -> eval.csv -> table or JSON. */
async function runEval(f: EvalFlags): Promise<void> {
  const backendChoice = f.backend === undefined ? undefined : parseBackend(f.backend);
  const runDir = resolve(f.run);
  const paths = runPaths(runDir);
  const recorded = sayWhatWasRecordedOnStop(paths);
  const { cfg, req, ckpt, ckptPath, runId } = checkRequest(f, paths);
  const backend = await initBackend(backendChoice ?? cfg.backend, cfg.threads, cfg.cuda);
  if (!f.json && !f.quiet) process.stderr.write(`backend: ${backend.name} — ${backend.reason}\n`);
  const progress = createProgress(!!f.quiet || !!f.json);
  const done = await evaluateCheckpoint(f, req, cfg, ckpt, ckptPath, progress);
  const rows = evalRows(done.plan, done.epoch, done.results.map((r) => r.errs));
  await appendEvalRows(paths, runId, rows.map((r) => EVAL_COLUMNS.map((c) => r[c])));
  recorded.appended = true;
  if (f.json) return void process.stdout.write(JSON.stringify({ run: runDir, checkpoint: ckptPath, rows: jsonRows(rows, done.results) }, null, 2) + '\n');
  process.stdout.write(table(runDir, done, rows));
}

/** Slurm and `kill` send SIGTERM: say what was (not) recorded, and exit as the README says. */
function sayWhatWasRecordedOnStop(paths: RunPaths): { appended: boolean } {
  const recorded = { appended: false };
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nbnlab eval: ${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopped; ${recorded.appended ? 'its rows were already appended to' : 'nothing was appended to'} ${paths.eval}\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return recorded;
}

/** The run's config, the flags as a request, the checkpoint they name, checked before the backend and data start. */
function checkRequest(f: EvalFlags, paths: RunPaths) {
  if (!existsSync(paths.config)) throw new ConfigError(`--run ${f.run}: no config.yaml there; pass a folder written by bnlab train`);
  const cfg = validateConfig(readConfigFile(paths.config), paths.config);
  const inTheWay = folderInTheWay(resolve(f.run));
  if (inTheWay) throw new ConfigError(inTheWay);
  const req = parseEvalFlags(f, cfg);
  const ckptPath = checkpointFor(paths, { epoch: req.epoch, checkpoint: req.checkpoint });
  const ckpt = readCheckpoint<RunMeta>(ckptPath);
  const runId = readRunInfo(paths.runInfo)?.id;
  checkEvaluable(ckpt, ckptPath, cfg, runId, paths, !f.checkpoint && f.epoch === undefined);
  return { cfg, req, ckpt, ckptPath, runId };
}

interface ModeResult {
  errs: number[];
  /** Images evaluated (fewer than the set's where statistics images are left out, or composed groups leave some). */
  evaluated: number;
}

interface Evaluated {
  plan: EvalPlan;
  epoch: number;
  results: ModeResult[];
  evalImages: number;
}

/** The data and the model loaded, the plan made (every mode checked), then each mode's repeats computed. */
async function evaluateCheckpoint(f: EvalFlags, req: EvalRequest, cfg: Config, ckpt: Checkpoint<RunMeta>, ckptPath: string, progress: Progress): Promise<Evaluated> {
  const cache = new Map<string, Dataset>();
  const load = async (d: Config['data']) => {
    const key = JSON.stringify(d);
    if (!cache.has(key)) cache.set(key, await loadDataset(d));
    return cache.get(key)!;
  };
  const evalSet = await load(req.dataSpec.data);
  const evalSplit = evalSet[req.dataSpec.split];
  const statsSplit = (await load(req.statsSpec.data))[req.statsSpec.split];
  const state = createState(cfg, evalSplit.channels, evalSet.numClasses);
  loadCheckpointInto(state, ckpt, ckptPath);
  const epoch = state.meta.epoch;
  if (state.meta.progress.step > 0 && !f.checkpoint) {
    throw new ConfigError(
      `${ckptPath} was saved mid-epoch (epoch ${epoch + 1}, step ${state.meta.progress.step}) by an interrupted run: finish it with bnlab train --out ${f.run} --resume, ` +
        `pick a finished epoch with --epoch N, or pass the file with --checkpoint to evaluate it anyway`,
    );
  }
  const plan = planEval(req, cfg, { statsImages: statsSplit.n, evalImages: evalSplit.n, numClasses: evalSet.numClasses, held: { precise: !!state.precise, frozen: !!state.frozen } });
  const env: StatsEnv = { net: state.net, params: state.params, cfg, held: state, statsSplit, evalSplit, epoch, progress };
  const results: ModeResult[] = [];
  for (const p of plan.modes) {
    const errs: number[] = [];
    let evaluated = evalSplit.n;
    for (let r = 0; r < p.repeats; r++) {
      const st = await MODES[p.mode].statistics(p, r, env);
      evaluated = st.order?.length ?? evalSplit.n;
      errs.push(await evaluateWith(state.net, state.params, evalSplit, cfg, st.stats, { progress, order: st.order, label: st.label }));
      st.dispose();
    }
    results.push({ errs, evaluated });
  }
  disposeState(state);
  return { plan, epoch, results, evalImages: evalSplit.n };
}

/** --json: numbers as numbers, absent values as null, the per-repeat errors as an array. */
const jsonRows = (rows: EvalCsvRow[], results: ModeResult[]) =>
  rows.map((r, i) => ({
    ...r,
    samples: r.samples === '' ? null : r.samples,
    batch: r.batch === '' ? null : r.batch,
    estimator: r.estimator || null,
    errs: results[i].errs.map((e) => +e.toFixed(4)),
    evaluated: results[i].evaluated,
  }));

/** The results as a table, and which images statistics took away from the evaluation. */
function table(runDir: string, done: Evaluated, rows: EvalCsvRow[]): string {
  const { plan, results, evalImages } = done;
  const head = ['stats', 'N', 'B', 'estimator', 'stats from', 'evaluated on', 'images', 'error %'];
  const body = rows.map((r, i) => [
    String(r.stats),
    String(r.samples),
    String(r.batch),
    String(r.estimator),
    plan.modes[i].usesStatsData ? plan.statsSpec.text || 'train' : '',
    plan.dataSpec.text || 'val',
    String(results[i].evaluated),
    Number(r.repeats) > 1 ? `${Number(r.err_mean).toFixed(2)} ± ${Number(r.err_std).toFixed(2)} (${r.repeats} runs)` : Number(r.err_mean).toFixed(2),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join('  ');
  let out = `${runDir} @ epoch ${done.epoch}\n${line(head)}\n${line(w.map((x) => '-'.repeat(x)))}\n${body.map(line).join('\n')}\n`;
  const cut = results.find((v, i) => plan.modes[i].usesStatsData && v.evaluated < evalImages);
  if (cut) out += `the ${evalImages - cut.evaluated} images PreciseBN statistics came from are left out of the evaluation: precise evaluated on ${cut.evaluated} of ${evalImages} images\n`;
  return out;
}
