// The training loop: epochs of SGD steps, then PreciseBN, evaluation with each estimate of the
// population statistics, one CSV row and a checkpoint. Deterministic given the seed, and
// resumable at any step with the same result as an uninterrupted run.
import { epochSeed } from '../config/seed.js';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { dumpConfig } from '../config/load.js';
import { microBatch, type Config } from '../config/schema.js';
import type { Dataset } from '../data/dataset.js';
import type { Batch } from '../data/loader.js';
import { prefetch } from '../data/prefetch.js';
import { epochJobs, evaluateWith } from '../bn/modes.js';
import { MODE, MODE_COLUMNS, MODE_FACTS, type ModeFacts, STATS_MODES } from '../bn/columns.js';
import { composedLength, composeEpoch, compositionOf, compositionProblem } from '../bn/composition.js';
import { disposePopulation } from '../bn/population.js';
import { estimatePrecise, preciseRequest } from '../bn/precise.js';
import type { Logger } from '../util/log.js';
import type { EvalTime, Progress } from '../util/progress.js';
import { copyFileAtomic, newestGoodCheckpoint, writeCheckpoint } from '../run/checkpoint.js';
import { isNewBest, keptEpochs, pruneEpochCheckpoints, savesEpochFile } from '../run/retention.js';
import { runPaths } from '../run/paths.js';
import { appendMetrics, metricsCells, restoreMetrics, type MetricsRow } from '../run/metrics.js';
import { learningRate } from './schedule.js';
import { createState, emptyProgress, loadCheckpointInto, tensorProblem, toCheckpoint, type RunMeta, type RunState } from './state.js';
import { originProblem } from '../run/identity.js';
import { trainStep } from './step.js';
import { bytesPerSample, chooseMicroBatch, memoryBudget } from './memory.js';
import { appendTrace, checkTraceConfig, traceRows, truncateTrace } from './trace.js';
import { frozenFrom, type Fork } from './fork.js';
import { openStepLog, type StepLog } from './steplog.js';

export class TrainingError extends Error {}

export interface TrainOptions {
  outDir: string;
  resume: boolean;
  log: Logger;
  progress: Progress;
  /** Polled after every step; true saves a mid-epoch checkpoint and stops (Ctrl-C). */
  interrupted?: () => boolean;
  /** Start from another run's state at the end of an epoch (fork.ts), not from scratch. */
  fork?: Fork;
  /** The run's id (run.json): every checkpoint carries it, and a resume loads only checkpoints that do. */
  runId?: string;
}

export interface TrainResult {
  state: RunState;
  interrupted: boolean;
  rows: MetricsRow[];
}


function saveCheckpoint(state: RunState, dir: string, epochFile: boolean): void {
  const p = runPaths(dir);
  const ckpt = toCheckpoint(state);
  if (!epochFile) return writeCheckpoint(p.last, ckpt);
  const file = p.epoch(state.meta.epoch);
  writeCheckpoint(file, ckpt);
  // last.ckpt as a copy (not a hard link: damage to one must not damage both).
  copyFileAtomic(file, p.last);
}

/** best.ckpt when this epoch is the best so far, then the epoch files beyond checkpoint.keep_last. */
function retainCheckpoints(training: Training, epochFileSaved: boolean): void {
  const { cfg, state, o, paths } = training;
  const metric = cfg.checkpoint.best_metric;
  if (metric !== 'none' && isNewBest(state.meta.history ?? [], metric)) {
    if (epochFileSaved) copyFileAtomic(paths.epoch(state.meta.epoch), paths.best);
    else writeCheckpoint(paths.best, toCheckpoint(state));
  }
  const gone = pruneEpochCheckpoints(paths, cfg.checkpoint.keep_last);
  if (gone.length) o.log(`  removed the checkpoint of epoch ${gone.join(', ')} (checkpoint.keep_last ${cfg.checkpoint.keep_last})`);
}

/** Temporary files of a writer that died mid-write (the caller holds the run folder's lock). */
function removeStaleTemporaries(dir: string): void {
  for (const d of [dir, join(dir, 'checkpoints')]) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (/\.(tmp|link|copy)-\d+$/.test(f)) rmSync(join(d, f), { force: true });
  }
}

/** Every parameter and population statistic is finite (a NaN never reaches a checkpoint or a table). */
function checkFinite(state: RunState, when: string): void {
  const groups: [string, Iterable<[string, tf.Tensor]>][] = [
    ['parameter', state.params],
    ['EMA mean', [...state.ema].map(([k, v]) => [k, v.mean] as [string, tf.Tensor])],
    ['EMA variance', [...state.ema].map(([k, v]) => [k, v.variance] as [string, tf.Tensor])],
    ['PreciseBN mean', [...(state.precise ?? [])].map(([k, v]) => [k, v.mean] as [string, tf.Tensor])],
    ['PreciseBN variance', [...(state.precise ?? [])].map(([k, v]) => [k, v.variance] as [string, tf.Tensor])],
  ];
  for (const [kind, tensors] of groups) {
    for (const [name, t] of tensors) {
      const bad = (t.dataSync() as Float32Array).findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) {
        throw new TrainingError(`${when}: ${kind} '${name}' holds a non-finite value at index ${bad}; the run diverged (lower optim.base_lr or add optim.warmup_epochs, then start again with --overwrite). The last good checkpoint is kept.`);
      }
    }
  }
}

/** --resume: the newest checkpoint that verifies (null: none was ever written). */
function loadResumePoint(state: RunState, cfg: Config, o: TrainOptions): boolean {
  const dir = o.outDir;
  const p = runPaths(dir);
  const found = newestGoodCheckpoint<RunMeta>(p.last, keptEpochs(p).map(p.epoch), (c) => originProblem(c.meta, cfg, o.runId) ?? tensorProblem(state, c));
  const log = o.log;
  if (found.path === null) {
    if (found.rejected.length) {
      const edited = found.rejected.some((r) => r.includes("differs from the run's config.yaml"));
      const fix = edited
        ? `If ${p.config} was edited after training, restore it (each checkpoint holds the config it was trained with); to train with the new config, start again with --overwrite or into another --out.`
        : 'Start the run again with --overwrite.';
      throw new TrainingError(`--resume: no checkpoint of ${dir} can be trusted:\n  ${found.rejected.join('\n  ')}\n${fix}`);
    }
    return false;
  }
  for (const r of found.rejected) log(`refused ${r}`);
  if (found.path !== p.last) log(`resuming from ${found.path} instead of ${p.last}`);
  loadCheckpointInto(state, found.ckpt, found.path);
  return true;
}


/** One training run in progress: what every phase of it shares. */
interface Training {
  cfg: Config;
  data: Dataset;
  o: TrainOptions;
  state: RunState;
  paths: ReturnType<typeof runPaths>;
  micro: number;
  stepsPerEpoch: number;
  /** First epoch trained with FrozenBN (Infinity: never). */
  frozenFrom: number;
  trace: (epochPos: number, iter: number) => Promise<void>;
  stepLog: StepLog;
  firstStepLogged?: boolean;
  /** This session's evaluation phases: seconds spent, and the last one's (the run's ETA counts those to come). */
  evalTime: { spent: number; last: number | null };
}

/** Sums of one epoch's training phase, for its CSV row and log line. */
interface EpochTraining {
  interrupted: boolean;
  dataWait: number;
}

export async function train(cfg: Config, data: Dataset, o: TrainOptions): Promise<TrainResult> {
  const training = await setUp(cfg, data, o);
  try {
    return await trainEpochs(training);
  } finally {
    training.stepLog.close();
  }
}

async function trainEpochs(training: Training): Promise<TrainResult> {
  const { cfg, o } = training;
  const rows: MetricsRow[] = [];
  for (let epoch = training.state.meta.epoch; epoch < cfg.epochs; epoch++) {
    await switchToFrozenBN(training, epoch);
    const t = await trainEpoch(training, epoch);
    if (t.interrupted) return { state: training.state, interrupted: true, rows };
    const row = await endOfEpoch(training, epoch, t);
    rows.push(row);
    if (o.interrupted?.() && epoch + 1 < cfg.epochs) {
      o.log(`interrupted after epoch ${epoch + 1}: checkpoint saved; continue with --resume`);
      return { state: training.state, interrupted: true, rows };
    }
  }
  return { state: training.state, interrupted: false, rows };
}

/** The run's state (fresh or resumed), its saved config, the micro-batch that fits, the trace. */
async function setUp(cfg: Config, data: Dataset, o: TrainOptions): Promise<Training> {
  const p = runPaths(o.outDir);
  mkdirSync(p.checkpoints, { recursive: true });
  const state = createState(cfg, data.train.channels, data.numClasses);
  removeStaleTemporaries(o.outDir);
  // Groups of the training composition: how many images (and so steps) an epoch has.
  const problem = compositionProblem(compositionOf(cfg), data.numClasses);
  if (problem) throw new TrainingError(problem);
  const perEpoch = composedLength(data.train.labels, compositionOf(cfg));
  const stepsPerEpoch = Math.floor(perEpoch / cfg.optim.batch_size);
  if (stepsPerEpoch < 1) throw new TrainingError(`optim.batch_size ${cfg.optim.batch_size} is larger than the ${perEpoch} training images an epoch can use (bn.composition ${cfg.bn.composition}); lower it or use more data`);
  if (perEpoch < data.train.n) o.log(`bn.composition ${cfg.bn.composition}: ${perEpoch} of ${data.train.n} training images fit whole groups of ${cfg.bn.composition_classes} classes x ${cfg.bn.nbs / cfg.bn.composition_classes} each per epoch`);
  let resumed = false;
  if (o.resume) {
    resumed = loadResumePoint(state, cfg, o);
    if (resumed) {
      if (state.meta.epoch > cfg.epochs) {
        throw new TrainingError(`--resume: ${o.outDir} has already trained ${state.meta.epoch} epochs, more than epochs ${cfg.epochs}; epochs can only be raised on a resume (--set epochs=${state.meta.epoch} or more), or evaluate an earlier epoch with bnlab eval --epoch N`);
      }
      const repaired = restoreMetrics(p.metrics, state.meta.epoch, state.meta.history);
      if (repaired) o.log(`metrics.csv ${repaired}`);
      truncateTrace(p.trace, state.meta.epoch * stepsPerEpoch + state.meta.progress.step);
      if (state.meta.epoch >= cfg.epochs) o.log(`${o.outDir} is already finished (${state.meta.epoch} of ${cfg.epochs} epochs); raise epochs with --set epochs=N to train further`);
      else o.log(`resuming ${o.outDir} at epoch ${state.meta.epoch + 1}, step ${state.meta.progress.step}`);
    } else {
      // Killed before its first checkpoint: nothing to continue, so start from scratch.
      for (const f of [p.metrics, p.trace]) rmSync(f, { force: true });
      o.log(`--resume: ${o.outDir} has no checkpoint yet; starting the run from the beginning`);
    }
  } else if (o.fork) {
    startFromFork(state, o.fork, o.outDir, stepsPerEpoch, o.runId);
    o.log(`forked from ${o.fork.run} at epoch ${o.fork.epoch} (${o.fork.checkpoint}): epochs 1-${o.fork.epoch} are that run's`);
    resumed = true;
  }
  state.meta.run_id = o.runId; // a fork's first checkpoint is this run's, not its source's
  // The config in effect, also after a resume that changed epochs/backend/threads.
  writeFileSync(`${p.config}.tmp`, dumpConfig(cfg));
  renameSync(`${p.config}.tmp`, p.config);

  const bs = cfg.optim.batch_size;
  const perSample = await bytesPerSample(state, [data.train.height, data.train.width, data.train.channels]);
  const micro = chooseMicroBatch(cfg, perSample, memoryBudget(tf.getBackend()));
  if (micro !== microBatch(cfg)) o.log(`micro-batch ${micro} (of ${bs}) to fit ${(memoryBudget(tf.getBackend()) / 2 ** 30).toFixed(1)} GB at ~${(perSample / 2 ** 20).toFixed(1)} MB per sample`);
  checkTraceConfig(cfg, state.net.bnLayers);
  const trace = async (epochPos: number, iter: number) => {
    if (cfg.trace.layers.length) appendTrace(p.trace, await traceRows(state, data.train, cfg, epochPos, iter));
  };
  if (!resumed) await trace(0, 0);
  const stepLog = openStepLog(cfg, p, state.meta.epoch * stepsPerEpoch + state.meta.progress.step);
  return { cfg, data, o, state, paths: p, micro, stepsPerEpoch, frozenFrom: frozenFrom(cfg), trace, stepLog, evalTime: { spent: 0, last: null } };
}

/** The fork point becomes this run's: state, metrics rows and trace up to it, and its checkpoint (so --resume works at once). */
function startFromFork(state: RunState, f: Fork, dir: string, stepsPerEpoch: number, runId: string | undefined): void {
  const p = runPaths(dir);
  loadCheckpointInto(state, f.ckpt, f.checkpoint);
  state.meta.run_id = runId;
  restoreMetrics(p.metrics, state.meta.epoch, state.meta.history);
  const source = runPaths(f.run).trace;
  if (existsSync(source)) {
    copyFileSync(source, p.trace);
    truncateTrace(p.trace, f.epoch * stepsPerEpoch);
  } else rmSync(p.trace, { force: true });
  saveCheckpoint(state, dir, true);
}

/** The switch to FrozenBN: population statistics of the model as it is now, by PreciseBN. */
async function switchToFrozenBN(training: Training, epoch: number): Promise<void> {
  const { cfg, state, o } = training;
  if (epoch < training.frozenFrom || state.frozen) return;
  state.frozen = await estimatePrecise(state.net, state.params, training.data.train, cfg, preciseRequest(cfg, epoch), o.progress);
  // From here the model is trained and evaluated with these statistics (val_err_frozen); an
  // earlier PreciseBN estimate would describe another model (bnlab eval --stats precise re-estimates).
  disposePopulation(state.precise);
  state.precise = null;
  o.log(`epoch ${epoch + 1}: switching to FrozenBN (population statistics from PreciseBN on ${Math.min(cfg.precise.samples, training.data.train.n)} samples)`);
}

/** The SGD steps of one epoch (from where a resume left off), prefetching data ahead. */
async function trainEpoch(training: Training, epoch: number): Promise<EpochTraining> {
  const { cfg, data, state, o, micro, stepsPerEpoch } = training;
  const bs = cfg.optim.batch_size;
  const seed = epochSeed(cfg, epoch);
  const order = composeEpoch(data.train.labels, compositionOf(cfg), seed, epoch);
  const prog = state.meta.progress;
  const frozen = epoch >= training.frozenFrom;
  o.progress.start(`epoch ${epoch + 1}/${cfg.epochs}`, stepsPerEpoch);
  o.progress.runSteps?.(epoch * stepsPerEpoch + prog.step, cfg.epochs * stepsPerEpoch, evalEstimate(training, epoch));
  o.progress.update(prog.step);
  // Each job loads one SGD step's micro-batches; the next steps load while this one trains.
  const jobs = function* () {
    for (let step = prog.step; step < stepsPerEpoch; step++) {
      const start = step * bs;
      const starts = Array.from({ length: bs / micro }, (_, k) => start + k * micro);
      yield () => Promise.all(starts.map((m) => data.train.load(order.subarray(m, m + micro), { augment: true, seed, epoch })));
    }
  };
  let t0 = performance.now();
  // Time the step loop spent waiting for data: ~0 when decoding overlaps training.
  let dataWait = 0;
  for await (const batches of prefetch<Batch[]>(jobs(), cfg.data.prefetch)) {
    const waited = performance.now() - t0;
    dataWait += waited;
    const lr = learningRate(cfg.optim, epoch + prog.step / stepsPerEpoch, cfg.epochs);
    const res = trainStep(state, batches, {
      nbs: cfg.bn.nbs,
      eps: cfg.bn.eps,
      emaDecay: cfg.bn.ema_decay,
      emaGroups: cfg.bn.ema_groups,
      lr,
      momentum: cfg.optim.momentum,
      nesterov: cfg.optim.nesterov,
      frozen: frozen ? state.frozen! : undefined,
    });
    const loss = res.lossSum / res.n;
    if (!Number.isFinite(loss) || loss > cfg.max_loss) {
      o.progress.stop();
      throw new TrainingError(
        `training diverged at epoch ${epoch + 1}, step ${prog.step + 1}: loss ${loss} (max_loss ${cfg.max_loss}). ` +
          `Lower optim.base_lr or add warmup (optim.warmup_epochs) and start again with --overwrite${state.meta.epoch > 0 ? ` (checkpoints up to epoch ${state.meta.epoch} are kept)` : ''}.`,
      );
    }
    if (!training.firstStepLogged) {
      // Start-up cost as a user waits for it: process start (Node, modules, backend, data) to a trained step.
      training.firstStepLogged = true;
      o.log(`first step done ${(performance.now() / 1000).toFixed(2)} s after the process started`);
    }
    prog.step++;
    prog.lossSum += res.lossSum;
    prog.errors += res.errors;
    prog.seen += res.n;
    const now = performance.now();
    prog.seconds += (now - t0) / 1000;
    const iter = epoch * stepsPerEpoch + prog.step;
    training.stepLog.step(iter, epoch + prog.step / stepsPerEpoch, { lossSum: res.lossSum, n: res.n, seconds: (now - t0) / 1000, dataWait: waited, lr });
    t0 = now;
    if (cfg.trace.every_iters > 0 && epoch < cfg.trace.until_epoch && iter % cfg.trace.every_iters === 0 && prog.step < stepsPerEpoch) {
      await training.trace(epoch + prog.step / stepsPerEpoch, iter);
    }
    o.progress.runSteps?.(epoch * stepsPerEpoch + prog.step, cfg.epochs * stepsPerEpoch, evalEstimate(training, epoch));
    o.progress.update(prog.step, `loss ${(prog.lossSum / prog.seen).toFixed(3)} | ${(prog.seen / prog.seconds).toFixed(0)} img/s`);
    if (o.interrupted?.() && prog.step < stepsPerEpoch) {
      o.progress.stop();
      saveCheckpoint(state, o.outDir, false);
      o.log(`interrupted at epoch ${epoch + 1}, step ${prog.step}/${stepsPerEpoch}: checkpoint saved; continue with --resume`);
      return { interrupted: true, dataWait };
    }
  }
  o.progress.stop();
  await training.trace(epoch + 1, (epoch + 1) * stepsPerEpoch);
  return { interrupted: false, dataWait };
}

/** A PreciseBN pass when due (never under FrozenBN: its statistics are fixed). Returns its seconds (null: none ran). */
async function estimatePopulation(training: Training, epoch: number): Promise<number | null> {
  const { cfg, state } = training;
  const last = epoch + 1 === cfg.epochs;
  if (epoch >= training.frozenFrom) return null;
  if (!cfg.precise.enabled || ((epoch + 1) % cfg.precise.every !== 0 && !last)) return null;
  const t = performance.now();
  const stats = await estimatePrecise(state.net, state.params, training.data.train, cfg, preciseRequest(cfg, epoch), training.o.progress);
  disposePopulation(state.precise);
  state.precise = stats;
  return (performance.now() - t) / 1000;
}

/** Whether the end of `epoch` (0-based) evaluates (eval.every, and always the last). */
const evaluates = (cfg: Config, epoch: number) => (epoch + 1) % cfg.eval.every === 0 || epoch + 1 === cfg.epochs;

/** For the run's ETA: evaluation time spent, and the remaining phases (from `epoch` on) at the last one's cost. */
function evalEstimate(training: Training, epoch: number): EvalTime {
  let remaining = 0;
  for (let e = epoch; e < training.cfg.epochs; e++) if (evaluates(training.cfg, e)) remaining++;
  return { spentSeconds: training.evalTime.spent, remainingSeconds: remaining === 0 ? 0 : training.evalTime.last === null ? null : remaining * training.evalTime.last };
}

/** The epoch's evaluations, as { metrics column: error % }: each mode's (bn/modes epochJobs), a statistics mode on a split. */
async function evaluateModes(training: Training, epoch: number, preciseRan: boolean): Promise<Partial<MetricsRow>> {
  const { cfg, data, state, o } = training;
  const jobs = epochJobs({ cfg, held: state, frozen: epoch >= training.frozenFrom, preciseRan, trainImages: data.train.n });
  const errs: Partial<MetricsRow> = {};
  for (const j of jobs) errs[j.column as keyof MetricsRow] = await evaluateWith(state.net, state.params, data[j.split], cfg, j.stats, { progress: o.progress, order: j.order, label: j.label });
  return errs;
}

/** PreciseBN, evaluation under each statistics mode, one CSV row, a checkpoint, a log line. */
async function endOfEpoch(training: Training, epoch: number, t: EpochTraining): Promise<MetricsRow> {
  const { cfg, data, state, o, paths } = training;
  const prog = state.meta.progress;
  const frozen = epoch >= training.frozenFrom;
  const tEnd = performance.now();
  const preciseSeconds = await estimatePopulation(training, epoch);
  const evalDue = evaluates(cfg, epoch);
  const errs = evalDue ? await evaluateModes(training, epoch, preciseSeconds !== null) : {};
  const phase = (performance.now() - tEnd) / 1000;
  training.evalTime.spent += phase;
  if (evalDue) training.evalTime.last = phase;
  const row: MetricsRow = {
    epoch: epoch + 1,
    lr: learningRate(cfg.optim, epoch, cfg.epochs),
    train_loss: prog.lossSum / prog.seen,
    train_err: (100 * prog.errors) / prog.seen,
    ...Object.fromEntries(MODE_COLUMNS.map((c) => [c, null])),
    epoch_seconds: prog.seconds + (performance.now() - tEnd) / 1000,
    train_images_per_s: prog.seen / prog.seconds,
    precise_seconds: preciseSeconds,
    bn_mode: frozen ? MODE.frozen : 'batch',
    ...errs,
  };
  checkFinite(state, `epoch ${epoch + 1}`);
  appendMetrics(paths.metrics, row);
  training.stepLog.epoch((epoch + 1) * training.stepsPerEpoch, row);
  state.meta.history = [...(state.meta.history ?? []), metricsCells(row)];
  state.meta.epoch = epoch + 1;
  state.meta.progress = emptyProgress();
  // last.ckpt every epoch (a requeued Slurm task loses at most one); an epoch file every checkpoint_every.
  const saved = savesEpochFile(cfg, epoch + 1);
  saveCheckpoint(state, o.outDir, saved);
  o.log(epochLine(cfg, row, t.dataWait));
  retainCheckpoints(training, saved);
  for (const [k, sp] of [['train', data.train], ['val', data.val]] as const) {
    const bad = sp.failures?.() ?? [];
    if (bad.length) o.log(`  ${bad.length} unreadable ${k} images skipped so far (replaced by the next readable one), e.g. ${bad[0].file}: ${bad[0].error}`);
  }
  return row;
}

/** The epoch's log line: training numbers, then every mode's error this epoch computed ('-': due, not computed). */
function epochLine(cfg: Config, row: MetricsRow, dataWait: number): string {
  const pct = (v: number | string | null) => (v === null ? '-' : `${Number(v).toFixed(2)}%`);
  const facts: ModeFacts[] = STATS_MODES.map((m) => MODE_FACTS[m]);
  const val = facts.filter((f) => row[f.valColumn] !== null).map((f) => `${f.label} ${pct(row[f.valColumn])}`);
  const train = facts.flatMap((f) => (f.trainColumn && row[f.trainColumn] !== null ? [`${f.trainColumn} ${pct(row[f.trainColumn])}`] : []));
  const waitNote = dataWait > 0 ? `  (data wait ${(dataWait / 1000).toFixed(1)} s)` : '';
  return (
    `epoch ${row.epoch}/${cfg.epochs}  lr ${Number(row.lr).toFixed(4)}  loss ${Number(row.train_loss).toFixed(4)}  train_err ${pct(row.train_err)}  ` +
    `val_err ${val.join('  ') || '-'}${train.length ? `  ${train.join('  ')}` : ''}  ${Number(row.train_images_per_s).toFixed(0)} img/s  ${Number(row.epoch_seconds).toFixed(1)} s${waitNote}`
  );
}

/** Free every tensor a run state holds (run/state.ts; re-exported for the tests that train). */
export { disposeState } from '../run/state.js';
