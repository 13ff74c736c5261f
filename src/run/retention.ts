// Checkpoint retention: the newest K epoch files (checkpoint.keep_last), best.ckpt by a metrics
// column (checkpoint.best_metric), last.ckpt always; and which file `bnlab eval` means by
// --epoch N or --checkpoint best|last, with an error naming what is kept when it is gone.
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import { fsyncDir, readCheckpointMeta } from './checkpoint.js';
import { METRIC_COLUMNS } from './metrics.js';
import type { RunPaths } from './paths.js';
import type { Config } from '../config/schema.js';

const EPOCH_FILE = /^epoch-(\d+)\.ckpt$/;

/** Whether the end of `epoch` (1-based) writes an epoch file: every checkpoint_every epochs and the last. */
export const savesEpochFile = (cfg: Pick<Config, 'epochs' | 'checkpoint_every'>, epoch: number): boolean => epoch % cfg.checkpoint_every === 0 || epoch === cfg.epochs;

/** Epoch files a run of this config holds when it finishes (the saved ones, pruned to keep_last). */
export function keptAtEnd(cfg: Pick<Config, 'epochs' | 'checkpoint_every' | 'checkpoint'>): number[] {
  const saved = Array.from({ length: cfg.epochs }, (_, i) => i + 1).filter((e) => savesEpochFile(cfg, e));
  return cfg.checkpoint.keep_last > 0 ? saved.slice(-cfg.checkpoint.keep_last) : saved;
}

/** Epochs whose checkpoint file is in the run folder, ascending. */
export function keptEpochs(p: RunPaths): number[] {
  if (!existsSync(p.checkpoints)) return [];
  return readdirSync(p.checkpoints)
    .map((f) => EPOCH_FILE.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Delete epoch files older than the newest `keepLast` (0 = keep all). Returns the deleted epochs. */
export function pruneEpochCheckpoints(p: RunPaths, keepLast: number): number[] {
  if (keepLast <= 0) return [];
  const gone = keptEpochs(p).slice(0, -keepLast);
  for (const e of gone) rmSync(p.epoch(e), { force: true });
  if (gone.length) fsyncDir(p.checkpoints);
  return gone;
}

/**
 * Whether the newest row of `history` (metrics cells, as in the checkpoint) is the best so far by
 * `column`: computed this epoch and strictly lower than every earlier value (ties: the earlier).
 */
export function isNewBest(history: readonly string[][], column: string): boolean {
  const i = METRIC_COLUMNS.indexOf(column as (typeof METRIC_COLUMNS)[number]);
  if (i < 0 || history.length === 0) return false;
  const cell = history[history.length - 1][i];
  if (cell === '' || cell === undefined) return false;
  const earlier = history.slice(0, -1).map((r) => r[i]).filter((c) => c !== '' && c !== undefined).map(Number);
  return earlier.every((v) => Number(cell) < v);
}

interface SavedPoint {
  epoch: number;
  progress?: { step: number };
}

/** The epoch a checkpoint holds (null: missing or unreadable; mid-epoch files count as not one). */
function epochOf(path: string): number | null {
  if (!existsSync(path)) return null;
  try {
    const m = readCheckpointMeta<SavedPoint>(path);
    return (m.progress?.step ?? 0) === 0 ? m.epoch : null;
  } catch {
    return null;
  }
}

/** What a run folder keeps, for messages: "epochs 8, 9, 10; best.ckpt (epoch 7); last.ckpt (epoch 10)". */
export function describeKept(p: RunPaths): string {
  const epochs = keptEpochs(p);
  const parts = [epochs.length ? `epoch${epochs.length > 1 ? 's' : ''} ${epochs.join(', ')}` : 'no epoch checkpoints'];
  for (const [name, path] of [['best.ckpt', p.best], ['last.ckpt', p.last]] as const) {
    if (!existsSync(path)) continue;
    const e = epochOf(path);
    parts.push(`${name}${e === null ? '' : ` (epoch ${e})`}`);
  }
  return parts.join('; ');
}

/**
 * The checkpoint `bnlab eval` reads: `--checkpoint FILE | best | last` (the words are always the
 * run's best.ckpt / last.ckpt; a file of that name elsewhere is passed as ./last), or `--epoch N` (its epoch
 * file, else best.ckpt or last.ckpt when either holds that finished epoch), else last.ckpt.
 */
export function checkpointFor(p: RunPaths, o: { epoch?: number; checkpoint?: string }): string {
  const { epoch, checkpoint } = o;
  if (checkpoint === 'best' || checkpoint === 'last') {
    // Always the run's own file: a file named `last` in the current folder is ./last.
    const path = p[checkpoint];
    if (!existsSync(path)) {
      const why = checkpoint === 'best' ? ' (best.ckpt is written when checkpoint.best_metric is set)' : '';
      throw new ConfigError(`--checkpoint ${checkpoint}: ${path} does not exist${why}; the run keeps ${describeKept(p)}`);
    }
    return path;
  }
  if (checkpoint !== undefined) {
    if (!existsSync(checkpoint)) throw new ConfigError(`checkpoint not found: ${checkpoint}`);
    return checkpoint;
  }
  if (epoch === undefined) {
    if (!existsSync(p.last)) throw new ConfigError(`checkpoint not found: ${p.last} (has the run written its first checkpoint?)`);
    return p.last;
  }
  if (existsSync(p.epoch(epoch))) return p.epoch(epoch);
  const same = [p.best, p.last].find((f) => epochOf(f) === epoch);
  if (same) return same;
  throw new ConfigError(
    `checkpoint not found: ${p.epoch(epoch)} (--epoch ${epoch} is not kept); the run keeps ${describeKept(p)} ` +
      `(checkpoint.keep_last and checkpoint_every decide which epochs are kept); pass one of those epochs, or --checkpoint best|last`,
  );
}
