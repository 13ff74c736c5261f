// What a sweep run's folder already holds, so a re-run skips finished runs and resumes the rest.
import { existsSync, readFileSync } from 'node:fs';
import { stringify as stringifyYaml } from 'yaml';
import { ConfigError, configDiff, RESUMABLE_KEYS, readConfigFile, validateConfig } from '../config/load.js';
import { writeOutput } from '../run/checkpoint.js';
import { unionRoles } from '../config/schema.js';
import { VAL_COLUMNS } from '../bn/columns.js';
import { readCheckpointMeta } from '../run/checkpoint.js';
import { readMetrics } from '../run/metrics.js';
import { keptEpochs } from '../run/retention.js';
import { runPaths } from '../run/paths.js';
import { lastSession, type Session } from '../run/metadata.js';
import type { SweepRun } from './spec.js';

/**
 * What a sweep run's folder holds. finished: every epoch in metrics.csv and a checkpoint that holds the final epoch (or, checkpoints
 * all removed, a summary.json that says finished); resume: has a
 * checkpoint; restart: has outputs but no checkpoint (the run stopped in its first epoch); new:
 * nothing yet. Only for what the sweep prints and skips: what to do with an unfinished run is
 * `bnlab train --auto-resume`'s decision, the same one a resume makes.
 */
export type FolderState = 'finished' | 'resume' | 'restart' | 'new';
export interface RunStatus {
  state: FolderState;
  lastEpoch: number;
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
  const res = { lastEpoch, session: lastSession(run.dir)?.status };
  const ckpts = keptEpochs(p);
  // metrics.csv alone does not make a run finished: the final checkpoint is what eval reads. A run
  // whose checkpoints were all removed on purpose (committed results keep only their CSVs) is
  // finished when its summary.json says so: nothing is left that eval could misread.
  const finalKept = Math.max(checkpointEpoch(p.last), ...ckpts) >= run.cfg.epochs;
  const archived = !existsSync(p.last) && ckpts.length === 0 && summaryFinished(p.summary);
  if (lastEpoch >= run.cfg.epochs && (finalKept || archived)) return { state: 'finished', ...res };
  if (existsSync(p.last) || ckpts.length) return { state: 'resume', ...res };
  if (rows.length || existsSync(p.checkpoints)) return { state: 'restart', ...res };
  return { state: 'new', ...res };
}

const summaryFinished = (path: string): boolean => {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as { finished?: boolean }).finished === true;
  } catch {
    return false;
  }
};

/** The finished epoch a checkpoint holds (its header, checked; 0: missing, unreadable or mid-epoch). */
function checkpointEpoch(path: string): number {
  try {
    const m = readCheckpointMeta<{ epoch: number; progress?: { step: number } }>(path);
    return (m.progress?.step ?? 0) === 0 ? m.epoch : 0;
  } catch {
    return 0;
  }
}

/** "; its last session died without a word ..." for a run killed without writing its end ('' otherwise). */
export function sessionNote(st: RunStatus): string {
  return st.state !== 'finished' && st.session === 'died' ? '; its last session died without a word (killed, aborted or out of memory)' : '';
}

/** "epoch 10: val_err_ema 14.00  val_err_precise 12.30": the last metrics row's errors, every mode that computed one. */
export function finalErrors(run: SweepRun): string {
  const last = readMetrics(runPaths(run.dir).metrics).at(-1);
  if (!last) return 'no metrics';
  const errs = VAL_COLUMNS.filter((c) => last[c]).map((c) => `${c} ${Number(last[c]).toFixed(2)}`);
  return `epoch ${last.epoch}: ${errs.join('  ') || 'no errors computed'}`;
}

/**
 * The sweep's report.roles added to a finished run's config.yaml when it lacks any (a sweep file
 * that gained its roles after its runs finished, or a run two experiments share); only that key
 * changes, every other line as trained. Returns the run's roles now, or null when nothing changed.
 */
export function recordRoles(run: SweepRun): string[] | null {
  const path = runPaths(run.dir).config;
  const raw = readConfigFile(path);
  const had = validateConfig(raw, path).report.roles;
  const roles = unionRoles(had, run.cfg.report.roles);
  if (roles.length === had.length) return null;
  writeOutput(path, stringifyYaml({ ...raw, report: { ...((raw.report as object) ?? {}), roles } }));
  return roles;
}

/** recordRoles for each finished run of a sweep, saying which runs it relabelled. */
export function recordFinishedRoles(states: (RunStatus & { run: SweepRun })[], print: (line: string) => void): void {
  for (const s of states) {
    const roles = s.state === 'finished' ? recordRoles(s.run) : null;
    if (roles) print(`  ${s.run.name}: finished; report.roles now ${roles.join(', ')} (added to its config.yaml)`);
  }
}
