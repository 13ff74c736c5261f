// Which run a checkpoint belongs to. Every checkpoint carries its run's id (run.json's `id`) and
// the config it was trained with; a resume, an eval or a fork compares both with the run's own
// before trusting a tensor, so a checkpoint of another run, seed or depth, or a config.yaml edited
// after training, is refused by name instead of loaded by whatever tensor names happen to match.
import { randomUUID } from 'node:crypto';
import { configDiff, RESUMABLE_KEYS, validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

export const newRunId = (): string => randomUUID();

/** What a checkpoint says about its run (the rest of its metadata does not matter here). */
export interface CheckpointOrigin {
  run_id?: string;
  config: unknown;
}

/** The value at a dotted config key path (undefined where absent). */
export const valueAt = (o: unknown, key: string): unknown => key.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);
const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));

/**
 * A config stored by an older bnlab (a checkpoint's, a run's) with the keys added since filled
 * in by their defaults, as the run's own config.yaml is when read; one this version would refuse
 * is returned as it is and still compares key by key.
 */
export function withDefaults(config: unknown): unknown {
  try {
    return validateConfig(config, 'stored config');
  } catch {
    return config;
  }
}

/**
 * Why a checkpoint cannot be taken as a state of the run with config `cfg` and id `runId` (null:
 * it can). Keys a resume may change (epochs, backend, threads, ...) may differ; `alsoAllowed`
 * adds more (a fork's bn.frozen_last_epochs). A checkpoint written before ids existed is judged
 * by its config alone.
 */
export function originProblem(origin: CheckpointOrigin, cfg: Config, runId: string | undefined, alsoAllowed: ReadonlySet<string> = new Set()): string | null {
  if (runId && origin.run_id && origin.run_id !== runId) return `it belongs to another run (run id ${origin.run_id}; this run's, in its run.json, is ${runId})`;
  const theirs = withDefaults(origin.config);
  const changed = configDiff(theirs, cfg).filter((k) => !RESUMABLE_KEYS.has(k) && !alsoAllowed.has(k));
  if (!changed.length) return null;
  const shown = changed.slice(0, 4).map((k) => `${k} (checkpoint ${show(valueAt(theirs, k))}, run ${show(valueAt(cfg, k))})`);
  return `it was trained with a config that differs from the run's config.yaml in ${shown.join(', ')}${changed.length > 4 ? ` and ${changed.length - 4} more` : ''}`;
}
