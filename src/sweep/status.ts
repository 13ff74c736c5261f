// What a sweep run's folder already holds, so a re-run skips finished runs and resumes the rest.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, configDiff, RESUMABLE_KEYS, readConfigFile, validateConfig } from '../config/load.js';
import { readMetrics } from '../run/metrics.js';
import { runPaths } from '../run/paths.js';
import { lastSession, type Session } from '../run/metadata.js';
import type { SweepRun } from './spec.js';

/** new: empty folder; resume: has last.ckpt; restart: has outputs but nothing to resume from. */
export type RunState = 'finished' | 'resume' | 'restart' | 'new';
export interface RunStatus {
  state: RunState;
  lastEpoch: number;
  valErrPrecise?: string;
  valErrEma?: string;
  /** how the run's last session stands (run.json with its lock): 'died' = killed without a word */
  session?: Session['status'];
}


export function runStatus(run: SweepRun): RunStatus {
  const p = runPaths(run.dir);
  if (existsSync(p.config)) {
    // A folder from another sweep (or an edited grid) must not be counted as this run.
    const saved = validateConfig(readConfigFile(p.config), p.config);
    const changed = configDiff(saved, run.cfg).filter((k) => !RESUMABLE_KEYS.has(k));
    if (changed.length) {
      throw new ConfigError(`${run.dir} holds a run with a different config (${changed.join(', ')}); delete that folder or give this sweep another out/name`);
    }
  }
  const rows = readMetrics(p.metrics);
  const last = rows.at(-1);
  const lastEpoch = last ? Number(last.epoch) : 0;
  const res = { lastEpoch, valErrPrecise: last?.val_err_precise || undefined, valErrEma: last?.val_err_ema || undefined, session: lastSession(run.dir)?.status };
  if (lastEpoch >= run.cfg.epochs) return { state: 'finished', ...res };
  if (existsSync(p.last)) return { state: 'resume', ...res };
  if (rows.length || existsSync(join(p.checkpoints))) return { state: 'restart', ...res };
  return { state: 'new', ...res };
}

/** "; its last session died without a word ..." for a run killed without writing its end ('' otherwise). */
export function sessionNote(st: RunStatus): string {
  return st.state !== 'finished' && st.session === 'died' ? '; its last session died without a word (killed, aborted or out of memory)' : '';
}

/** "val_err_precise 12.3 val_err_ema 14.0" from the last metrics row (what a finished run reports). */
export function finalErrors(run: SweepRun): string {
  const last = readMetrics(runPaths(run.dir).metrics).at(-1);
  if (!last) return 'no metrics';
  const f = (v: string | undefined) => (v ? Number(v).toFixed(2) : '-');
  return `epoch ${last.epoch}: val_err_precise ${f(last.val_err_precise)}  val_err_ema ${f(last.val_err_ema)}`;
}
