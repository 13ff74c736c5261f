// A fork is a new run that starts from another run's checkpoint at the end of epoch E, for an
// experiment that differs from it only after E: FrozenBN for the last epochs (paper Fig. 6), or
// more epochs. Training is deterministic given the config, so the fork's first E epochs would be
// the source's bit for bit; a fork copies them instead of training them again.
import { resolve } from 'node:path';
import { ConfigError, configDiff, RESUMABLE_KEYS } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { CheckpointError, firstNonFinite, readCheckpoint, type Checkpoint } from '../run/checkpoint.js';
import { withDefaults } from '../run/identity.js';
import { runPaths } from '../run/paths.js';
import { checkpointFor } from '../run/retention.js';
import type { RunMeta } from './state.js';

/** Keys a fork may change besides those a resume may: each acts only from some epoch on. */
export const FORKABLE_KEYS: ReadonlySet<string> = new Set([...RESUMABLE_KEYS, 'bn.frozen_last_epochs', 'continuation.seed', 'continuation.after_epoch']);

/** First epoch (0-based) a continuation draws from its own seed; Infinity: none. */
const continuesFrom = (cfg: Config): number => (cfg.continuation === undefined || cfg.continuation.seed === null ? Infinity : cfg.continuation.after_epoch);

/** First epoch (0-based) trained with FrozenBN; Infinity: none. */
export const frozenFrom = (cfg: Config): number => (cfg.bn.frozen_last_epochs > 0 ? Math.max(0, cfg.epochs - cfg.bn.frozen_last_epochs) : Infinity);

/**
 * Why a run with config `cfg` cannot take over the state `src` reached after `epoch` epochs
 * (empty: it can). It can when both configs train epochs 1..E identically: same keys apart from
 * FORKABLE_KEYS, neither in FrozenBN before E, and the same learning rates up to E.
 */
export function forkProblems(src: Config, cfg: Config, epoch: number): string[] {
  const problems: string[] = [];
  // a source trained before a key existed has its default (as a resume reads its config.yaml)
  const changed = configDiff(withDefaults(src), cfg).filter((k) => !FORKABLE_KEYS.has(k));
  if (changed.length) problems.push(`the config differs from the source run's in ${changed.join(', ')}; a fork may change only ${[...FORKABLE_KEYS].join(', ')}`);
  if (epoch >= cfg.epochs) problems.push(`epochs ${cfg.epochs} leaves nothing to train after the fork point (epoch ${epoch})`);
  for (const [who, c] of [['the source run', src], ['this run', cfg]] as const) {
    const f = frozenFrom(c);
    if (f < epoch) problems.push(`${who} trains with FrozenBN from epoch ${f + 1}, not after the fork point (the end of epoch ${epoch}); fork at epoch ${f} or earlier`);
  }
  // Another continuation may start at the fork point or later, never inside the epochs the fork copies.
  if (configDiff((withDefaults(src) as Config).continuation, cfg.continuation).length) {
    for (const [who, c] of [['the source run', src], ['this run', cfg]] as const) {
      const from = continuesFrom(c);
      if (from < epoch) problems.push(`${who} draws from continuation.seed ${c.continuation.seed} after epoch ${from}, before the fork point (the end of epoch ${epoch}): set continuation.after_epoch to ${epoch} or later`);
    }
  }
  // A cosine schedule's learning rate at every step depends on the total (a step schedule's does not).
  if (src.epochs !== cfg.epochs && cfg.optim.schedule === 'cosine') problems.push(`optim.schedule cosine: changing epochs (${src.epochs} -> ${cfg.epochs}) changes the learning rate of the epochs before the fork`);
  return problems;
}

export interface Fork {
  /** the source run folder */
  run: string;
  checkpoint: string;
  epoch: number;
  ckpt: Checkpoint<RunMeta>;
}

/** "results/x@40" or "results/x" (its last checkpoint) -> the source folder and epoch. */
export function parseForkSpec(spec: string): { run: string; epoch?: number } {
  const m = /^(.+?)(?:@(\d+))?$/.exec(spec.trim());
  if (!m || !m[1]) throw new ConfigError(`--fork ${JSON.stringify(spec)}: expected RUN_DIR or RUN_DIR@EPOCH, e.g. results/mini/fig5-6/nbs2_frozen0_seed0@40`);
  const epoch = m[2] === undefined ? undefined : Number(m[2]);
  if (epoch === 0) throw new ConfigError(`--fork ${spec}: epoch 0 is before any training; start the run without --fork`);
  return { run: resolve(m[1]), epoch };
}

/** Reads and verifies the source checkpoint and checks `cfg` may continue from it. */
export function loadFork(spec: string, cfg: Config, outDir: string): Fork {
  const { run, epoch } = parseForkSpec(spec);
  if (run === resolve(outDir)) throw new ConfigError(`--fork ${spec}: the source is this run's own folder; continue a run with --resume`);
  const checkpoint = checkpointFor(runPaths(run), { epoch });
  let ckpt: Checkpoint<RunMeta>;
  try {
    ckpt = readCheckpoint<RunMeta>(checkpoint);
  } catch (e) {
    if (e instanceof CheckpointError) throw new ConfigError(`--fork ${spec}: ${e.message}; fork from another epoch of that run`);
    throw e;
  }
  const bad = firstNonFinite(ckpt);
  if (bad) throw new ConfigError(`--fork ${spec}: ${checkpoint} holds a non-finite value (${bad}); that run diverged or the file was damaged: fork from an earlier epoch of it (RUN@EPOCH)`);
  const at = ckpt.meta.epoch;
  if (epoch !== undefined && at !== epoch) throw new ConfigError(`--fork ${spec}: ${checkpoint} holds epoch ${at}, not ${epoch}`);
  if (ckpt.meta.progress.step !== 0) throw new ConfigError(`--fork ${spec}: ${checkpoint} was saved in the middle of epoch ${at + 1}; fork from the end of an epoch (RUN@EPOCH)`);
  const problems = forkProblems(ckpt.meta.config, cfg, at);
  if (problems.length) throw new ConfigError(`--fork ${spec}: this run cannot continue from ${checkpoint} (epoch ${at}):\n  ${problems.join('\n  ')}`);
  return { run, checkpoint, epoch: at, ckpt };
}
