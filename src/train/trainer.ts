// The training loop: epochs of SGD steps, then PreciseBN, evaluation with each estimate of the
// population statistics, one CSV row and a checkpoint. Deterministic given the seed, and
// resumable at any step with the same result as an uninterrupted run.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { dumpConfig } from '../config/load.js';
import { microBatch, type Config } from '../config/schema.js';
import type { Dataset } from '../data/dataset.js';
import { permutation, type Batch } from '../data/loader.js';
import { prefetch } from '../data/prefetch.js';
import { estimatePrecise, evalMinibatch, evalPopulation, type PreciseRequest } from '../eval/stats-modes.js';
import type { Logger } from '../util/log.js';
import type { Progress } from '../util/progress.js';
import { fsyncDir, newestGoodCheckpoint, writeCheckpoint } from '../run/checkpoint.js';
import { runPaths } from '../run/paths.js';
import { appendMetrics, metricsCells, restoreMetrics, type MetricsRow } from '../run/metrics.js';
import { learningRate } from './schedule.js';
import { cloneStats, createState, disposeStats, emaStats, emptyProgress, loadCheckpointInto, toCheckpoint, type RunMeta, type RunState } from './state.js';
import { trainStep } from './step.js';
import { bytesPerSample, chooseMicroBatch, memoryBudget } from './memory.js';
import { appendTrace, checkTraceConfig, traceRows, truncateTrace } from './trace.js';

export class TrainingError extends Error {}

/** SGD steps of data loaded ahead of the one training. */
const PREFETCH_STEPS = 2;

export interface TrainOptions {
  outDir: string;
  resume: boolean;
  log: Logger;
  progress: Progress;
  /** Polled after every step; true saves a mid-epoch checkpoint and stops (Ctrl-C). */
  interrupted?: () => boolean;
}

export interface TrainResult {
  state: RunState;
  interrupted: boolean;
  rows: MetricsRow[];
}


function saveCheckpoint(s: RunState, dir: string, epochFile: boolean): void {
  const p = runPaths(dir);
  const ckpt = toCheckpoint(s);
  if (!epochFile) return writeCheckpoint(p.last, ckpt);
  const file = p.epoch(s.meta.epoch);
  writeCheckpoint(file, ckpt);
  // last.ckpt as a copy (not a hard link: damage to one must not damage both), swapped in atomically.
  const tmp = `${p.last}.copy-${process.pid}`;
  copyFileSync(file, tmp);
  renameSync(tmp, p.last);
  fsyncDir(p.checkpoints);
}

/** Temporary files of a writer that died mid-write (the caller holds the run folder's lock). */
function removeStaleTemporaries(dir: string): void {
  for (const d of [dir, join(dir, 'checkpoints')]) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) if (/\.(tmp|link|copy)-\d+$/.test(f)) rmSync(join(d, f), { force: true });
  }
}

/** Every parameter and population statistic is finite (a NaN never reaches a checkpoint or a table). */
function checkFinite(s: RunState, when: string): void {
  const groups: [string, Iterable<[string, tf.Tensor]>][] = [
    ['parameter', s.params],
    ['EMA mean', [...s.ema].map(([k, v]) => [k, v.mean] as [string, tf.Tensor])],
    ['EMA variance', [...s.ema].map(([k, v]) => [k, v.variance] as [string, tf.Tensor])],
    ['PreciseBN mean', [...(s.precise ?? [])].map(([k, v]) => [k, v.mean] as [string, tf.Tensor])],
    ['PreciseBN variance', [...(s.precise ?? [])].map(([k, v]) => [k, v.variance] as [string, tf.Tensor])],
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
function loadResumePoint(s: RunState, dir: string, log: Logger): boolean {
  const p = runPaths(dir);
  const epochFiles = existsSync(p.checkpoints) ? readdirSync(p.checkpoints).filter((f) => /^epoch-\d+\.ckpt$/.test(f)).map((f) => join(p.checkpoints, f)) : [];
  const found = newestGoodCheckpoint<RunMeta>(p.last, epochFiles);
  if (found.path === null) {
    if (found.rejected.length) {
      throw new TrainingError(`--resume: no checkpoint of ${dir} can be trusted:\n  ${found.rejected.join('\n  ')}\nStart the run again with --overwrite.`);
    }
    return false;
  }
  for (const r of found.rejected) log(`refused ${r}`);
  if (found.path !== p.last) log(`resuming from ${found.path} instead of ${p.last}`);
  loadCheckpointInto(s, found.ckpt, found.path);
  return true;
}

const preciseRequest = (cfg: Config, epoch: number): PreciseRequest => ({
  samples: cfg.precise.samples,
  batchSize: cfg.precise.batch_size,
  estimator: cfg.precise.estimator,
  augment: cfg.precise.augment,
  seed: cfg.seed,
  epoch,
});

export async function train(cfg: Config, data: Dataset, o: TrainOptions): Promise<TrainResult> {
  const p = runPaths(o.outDir);
  mkdirSync(p.checkpoints, { recursive: true });
  const s = createState(cfg, data.train.channels, data.numClasses);
  removeStaleTemporaries(o.outDir);
  let resumed = false;
  if (o.resume) {
    resumed = loadResumePoint(s, o.outDir, o.log);
    if (resumed) {
      const repaired = restoreMetrics(p.metrics, s.meta.epoch, s.meta.history);
      if (repaired) o.log(`metrics.csv ${repaired}`);
      truncateTrace(p.trace, s.meta.epoch * Math.floor(data.train.n / cfg.optim.batch_size) + s.meta.progress.step);
      if (s.meta.epoch >= cfg.epochs) o.log(`${o.outDir} is already finished (${s.meta.epoch} of ${cfg.epochs} epochs); raise epochs with --set epochs=N to train further`);
      else o.log(`resuming ${o.outDir} at epoch ${s.meta.epoch + 1}, step ${s.meta.progress.step}`);
    } else {
      // Killed before its first checkpoint: nothing to continue, so start from scratch.
      for (const f of [p.metrics, p.trace]) rmSync(f, { force: true });
      o.log(`--resume: ${o.outDir} has no checkpoint yet; starting the run from the beginning`);
    }
  }
  // The config in effect, also after a resume that changed epochs/backend/threads.
  writeFileSync(`${p.config}.tmp`, dumpConfig(cfg));
  renameSync(`${p.config}.tmp`, p.config);

  const bs = cfg.optim.batch_size;
  const perSample = await bytesPerSample(s, [data.train.height, data.train.width, data.train.channels]);
  const micro = chooseMicroBatch(cfg, perSample, memoryBudget(tf.getBackend()));
  if (micro !== microBatch(cfg)) o.log(`micro-batch ${micro} (of ${bs}) to fit ${(memoryBudget(tf.getBackend()) / 2 ** 30).toFixed(1)} GB at ~${(perSample / 2 ** 20).toFixed(1)} MB per sample`);
  const stepsPerEpoch = Math.floor(data.train.n / bs);
  if (stepsPerEpoch < 1) throw new TrainingError(`optim.batch_size ${bs} is larger than the training set (${data.train.n} images); lower it or use more data`);
  const rows: MetricsRow[] = [];
  checkTraceConfig(cfg, s.net.bnLayers.map((l) => l.name));
  const trace = async (epochPos: number, iter: number) => {
    if (cfg.trace.layers.length) appendTrace(p.trace, await traceRows(s, data.train, cfg, epochPos, iter));
  };
  if (!resumed) await trace(0, 0);

  const frozenFrom = cfg.bn.frozen_last_epochs > 0 ? Math.max(0, cfg.epochs - cfg.bn.frozen_last_epochs) : Infinity;
  for (let epoch = s.meta.epoch; epoch < cfg.epochs; epoch++) {
    const order = permutation(data.train.n, cfg.seed, epoch);
    const prog = s.meta.progress;
    const frozen = epoch >= frozenFrom;
    if (frozen && !s.frozen) {
      // The switch to FrozenBN: population statistics of the model as it is now, by PreciseBN.
      s.frozen = await estimatePrecise(s.net, s.params, data.train, cfg, preciseRequest(cfg, epoch), o.progress);
      o.log(`epoch ${epoch + 1}: switching to FrozenBN (population statistics from PreciseBN on ${Math.min(cfg.precise.samples, data.train.n)} samples)`);
    }
    o.progress.start(`epoch ${epoch + 1}/${cfg.epochs}`, stepsPerEpoch);
    o.progress.update(prog.step);
    // Each job loads one SGD step's micro-batches; the next steps load while this one trains.
    const jobs = function* () {
      for (let step = prog.step; step < stepsPerEpoch; step++) {
        const start = step * bs;
        const starts = Array.from({ length: bs / micro }, (_, k) => start + k * micro);
        yield () => Promise.all(starts.map((m) => data.train.load(order.subarray(m, m + micro), { augment: true, seed: cfg.seed, epoch })));
      }
    };
    let t0 = performance.now();
    // Time the step loop spent waiting for data: ~0 when decoding overlaps training.
    let dataWait = 0;
    for await (const batches of prefetch<Batch[]>(jobs(), cfg.data.prefetch ?? PREFETCH_STEPS)) {
      dataWait += performance.now() - t0;
      const lr = learningRate(cfg.optim, epoch + prog.step / stepsPerEpoch, cfg.epochs);
      const r = trainStep(s, batches, {
        nbs: cfg.bn.nbs,
        eps: cfg.bn.eps,
        emaDecay: cfg.bn.ema_decay,
        emaGroups: cfg.bn.ema_groups,
        lr,
        momentum: cfg.optim.momentum,
        nesterov: cfg.optim.nesterov,
        frozen: frozen ? s.frozen! : undefined,
      });
      const loss = r.lossSum / r.n;
      if (!Number.isFinite(loss) || loss > cfg.max_loss) {
        o.progress.stop();
        throw new TrainingError(
          `training diverged at epoch ${epoch + 1}, step ${prog.step + 1}: loss ${loss} (max_loss ${cfg.max_loss}). ` +
            `Lower optim.base_lr or add warmup (optim.warmup_epochs) and start again with --overwrite${s.meta.epoch > 0 ? ` (checkpoints up to epoch ${s.meta.epoch} are kept)` : ''}.`,
        );
      }
      prog.step++;
      prog.lossSum += r.lossSum;
      prog.errors += r.errors;
      prog.seen += r.n;
      const now = performance.now();
      prog.seconds += (now - t0) / 1000;
      t0 = now;
      const iter = epoch * stepsPerEpoch + prog.step;
      if (cfg.trace.every_iters > 0 && epoch < cfg.trace.until_epoch && iter % cfg.trace.every_iters === 0 && prog.step < stepsPerEpoch) {
        await trace(epoch + prog.step / stepsPerEpoch, iter);
      }
      o.progress.update(prog.step, `loss ${(prog.lossSum / prog.seen).toFixed(3)} | ${(prog.seen / prog.seconds).toFixed(0)} img/s`);
      if (o.interrupted?.() && prog.step < stepsPerEpoch) {
        o.progress.stop();
        saveCheckpoint(s, o.outDir, false);
        o.log(`interrupted at epoch ${epoch + 1}, step ${prog.step}/${stepsPerEpoch}: checkpoint saved; continue with --resume`);
        return { state: s, interrupted: true, rows };
      }
    }
    o.progress.stop();
    const waitNote = dataWait > 0 ? `  (data wait ${(dataWait / 1000).toFixed(1)} s)` : '';
    await trace(epoch + 1, (epoch + 1) * stepsPerEpoch);

    const last = epoch + 1 === cfg.epochs;
    const tEnd = performance.now();
    let preciseSeconds: number | null = null;
    const evalDue = (epoch + 1) % cfg.eval.every === 0 || last;
    if (frozen) {
      // FrozenBN: the population statistics are the fixed ones training normalizes with.
      disposeStats(s.precise);
      s.precise = cloneStats(s.frozen!);
    } else if (cfg.precise.enabled && ((epoch + 1) % cfg.precise.every === 0 || last)) {
      const t = performance.now();
      const stats = await estimatePrecise(s.net, s.params, data.train, cfg, preciseRequest(cfg, epoch), o.progress);
      disposeStats(s.precise);
      s.precise = stats;
      preciseSeconds = (performance.now() - t) / 1000;
    }
    let errEma: number | null = null;
    let errPrecise: number | null = null;
    let errMinibatch: number | null = null;
    let trainErrNbs: number | null = null;
    if (evalDue) {
      if (!frozen) errEma = await evalPopulation(s.net, s.params, data.val, cfg, emaStats(s), 'EMA', o.progress);
      if (s.precise && (frozen || preciseSeconds !== null)) errPrecise = await evalPopulation(s.net, s.params, data.val, cfg, s.precise, frozen ? 'FrozenBN' : 'PreciseBN', o.progress);
      if (cfg.eval.minibatch) errMinibatch = await evalMinibatch(s.net, s.params, data.val, cfg, cfg.bn.nbs, 'mini-batch', o.progress);
      if (cfg.eval.train_minibatch) {
        const subset = permutation(data.train.n, cfg.seed, 0x7472).subarray(0, Math.min(cfg.eval.train_minibatch_samples, data.train.n));
        trainErrNbs = await evalMinibatch(s.net, s.params, data.train, cfg, cfg.bn.nbs, 'train NBS', o.progress, subset);
      }
    }
    const row: MetricsRow = {
      epoch: epoch + 1,
      lr: learningRate(cfg.optim, epoch, cfg.epochs),
      train_loss: prog.lossSum / prog.seen,
      train_err: (100 * prog.errors) / prog.seen,
      val_err_ema: errEma,
      val_err_precise: errPrecise,
      epoch_seconds: prog.seconds + (performance.now() - tEnd) / 1000,
      train_images_per_s: prog.seen / prog.seconds,
      precise_seconds: preciseSeconds,
      train_err_nbs: trainErrNbs,
      val_err_minibatch: errMinibatch,
      bn_mode: frozen ? 'frozen' : 'batch',
    };
    checkFinite(s, `epoch ${epoch + 1}`);
    appendMetrics(p.metrics, row);
    rows.push(row);
    s.meta.history = [...(s.meta.history ?? []), metricsCells(row)];
    s.meta.epoch = epoch + 1;
    s.meta.progress = emptyProgress();
    if ((epoch + 1) % cfg.checkpoint_every === 0 || last) saveCheckpoint(s, o.outDir, true);
    const pct = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}%`);
    const extra = [errMinibatch !== null ? `mini-batch ${pct(errMinibatch)}` : '', trainErrNbs !== null ? `train(NBS) ${pct(trainErrNbs)}` : ''].filter(Boolean).join('  ');
    o.log(
      `epoch ${epoch + 1}/${cfg.epochs}  lr ${Number(row.lr).toFixed(4)}  loss ${Number(row.train_loss).toFixed(4)}  train_err ${pct(Number(row.train_err))}  ` +
        `val_err EMA ${pct(errEma)}  ${frozen ? 'FrozenBN' : 'PreciseBN'} ${pct(errPrecise)}${extra ? '  ' + extra : ''}  ${Number(row.train_images_per_s).toFixed(0)} img/s  ${Number(row.epoch_seconds).toFixed(1)} s${waitNote}`,
    );
    for (const [k, sp] of [['train', data.train], ['val', data.val]] as const) { const bad = sp.failures?.() ?? []; if (bad.length) o.log(`  ${bad.length} unreadable ${k} images skipped so far (replaced by the next readable one), e.g. ${bad[0].file}: ${bad[0].error}`); }
    if (o.interrupted?.() && !last) {
      if ((epoch + 1) % cfg.checkpoint_every !== 0) saveCheckpoint(s, o.outDir, false);
      o.log(`interrupted after epoch ${epoch + 1}: checkpoint saved; continue with --resume`);
      return { state: s, interrupted: true, rows };
    }
  }
  return { state: s, interrupted: false, rows };
}

/** Free every tensor a run state holds (tests and benchmarks build several in one process). */
export function disposeState(s: RunState): void {
  for (const v of [...s.params.values(), ...s.velocity.values()]) v.dispose();
  for (const e of s.ema.values()) tf.dispose([e.mean, e.variance]);
  disposeStats(s.precise);
  disposeStats(s.frozen);
}
