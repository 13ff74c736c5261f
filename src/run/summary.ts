// The end of a run at a glance: final and best validation error of each statistics source with
// their epochs, training time and throughput, and where each file is. Written to summary.json
// and, as a few lines, to train.log (and stdout unless --quiet).
import { existsSync } from 'node:fs';
import { MODE_FACTS, STATS_MODES, type ValColumn } from '../bn/columns.js';
import { formatDuration } from '../util/progress.js';
import type { RunPaths } from './paths.js';
import { describeKept } from './retention.js';

export interface ErrAt {
  epoch: number;
  err: number;
}

export interface SourceSummary {
  /** The mode's label: "EMA", "PreciseBN", "FrozenBN", ... */
  source: string;
  column: ValColumn;
  final: ErrAt;
  best: ErrAt;
}

export interface RunSummary {
  run: string;
  finished: boolean;
  epochs: { done: number; total: number };
  sources: SourceSummary[];
  /** Sum of epoch_seconds over every session: training, PreciseBN and evaluation. */
  train_seconds: number;
  /** Wall-clock seconds of every session (run.json), when known. */
  wall_seconds: number | null;
  /** Training images per second over the whole run (each epoch trains on as many images). */
  train_images_per_s: number | null;
  files: Record<string, string>;
  checkpoints: string;
}

type Row = Record<string, string>;

/** One mode's final and best (lowest; ties: the earlier epoch) over the rows that computed it. */
function sourceSummary(rows: readonly Row[], source: string, column: ValColumn): SourceSummary | null {
  const done = rows.filter((r) => r[column] !== undefined && r[column] !== '');
  if (!done.length) return null;
  const at = (r: Row): ErrAt => ({ epoch: Number(r.epoch), err: Number(r[column]) });
  const best = done.map(at).reduce((a, b) => (b.err < a.err ? b : a));
  return { source, column, final: at(done[done.length - 1]), best };
}

/** Overall img/s: every epoch trains on the same number of images, so a harmonic mean. */
function throughput(rows: readonly Row[]): number | null {
  const ips = rows.map((r) => Number(r.train_images_per_s)).filter((v) => v > 0);
  return ips.length ? ips.length / ips.reduce((a, v) => a + 1 / v, 0) : null;
}

export function summarizeRun(dir: string, p: RunPaths, rows: readonly Row[], totalEpochs: number, wallSeconds: number | null = null): RunSummary {
  const sources = STATS_MODES.map((m) => sourceSummary(rows, MODE_FACTS[m].label, MODE_FACTS[m].valColumn)).filter((s): s is SourceSummary => s !== null);
  const files: Record<string, string> = { metrics: p.metrics, metrics_jsonl: p.metricsJsonl, log: p.log, config: p.config, run_info: p.runInfo, summary: p.summary, last_checkpoint: p.last };
  if (existsSync(p.best)) files.best_checkpoint = p.best;
  if (existsSync(p.trace)) files.trace = p.trace;
  if (existsSync(p.eval)) files.eval = p.eval;
  const done = rows.length ? Number(rows[rows.length - 1].epoch) : 0;
  return {
    run: dir,
    finished: done >= totalEpochs,
    epochs: { done, total: totalEpochs },
    sources,
    train_seconds: rows.reduce((a, r) => a + (Number(r.epoch_seconds) || 0), 0),
    wall_seconds: wallSeconds,
    train_images_per_s: throughput(rows),
    files,
    checkpoints: describeKept(p),
  };
}

const pct = (e: ErrAt) => `${e.err.toFixed(2)}% (epoch ${e.epoch})`;

/** The summary as train.log lines. */
export function summaryLines(s: RunSummary): string[] {
  const time = `${formatDuration(s.train_seconds)} of epochs${s.wall_seconds !== null ? `, ${formatDuration(s.wall_seconds)} wall-clock` : ''}`;
  const speed = s.train_images_per_s !== null ? `, training ${s.train_images_per_s.toFixed(0)} img/s` : '';
  const width = Math.max(0, ...s.sources.map((x) => x.source.length));
  return [
    `summary: ${s.finished ? 'finished' : 'stopped at'} ${s.epochs.done}/${s.epochs.total} epochs, ${time}${speed}`,
    ...s.sources.map((x) => `  val_err ${x.source.padEnd(width)}  final ${pct(x.final)}  best ${pct(x.best)}`),
    `  files in ${s.run}: metrics.csv, metrics.jsonl, train.log, config.yaml, run.json, summary.json${s.files.trace ? ', bn_trace.csv' : ''}${s.files.eval ? ', eval.csv' : ''}`,
    `  checkpoints/: ${s.checkpoints}`,
  ];
}
