// run.json: what made a run, to trust its numbers months later: per session (a resume adds one,
// never erasing the earlier) the command line, bnlab version and git commit, Node and tfjs
// versions, backend and why, host, CPUs, start and end time and how the session ended.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { version_core as tfjsVersion } from '@tensorflow/tfjs-core';
import { cpuBudget } from '../util/cpus.js';
import { writeFileAtomic } from './checkpoint.js';
import { newRunId } from './identity.js';
import { lockState } from './lock.js';
import { runPaths } from './paths.js';

export interface Session {
  command: string[];
  cwd: string;
  start: string;
  end: string | null;
  /**
   * running | finished | interrupted (Ctrl-C, SIGTERM) | failed (an error, said) | died: ended
   * without writing its end (kill -9, an abort, out of memory), found by whoever reads run.json
   * next while no process holds the run's lock (lastSession; a resume records it).
   */
  status: 'running' | 'finished' | 'interrupted' | 'failed' | 'died';
  error?: string;
  /** Completed epochs when the session ended. */
  epochs_done: number | null;
  bnlab_version: string;
  git: { commit: string; dirty: boolean } | null;
  node: string;
  tfjs: string;
  backend: { name: string; reason: string };
  host: string;
  /** usable: what thread pools were sized by (affinity, cgroup quota, SLURM_CPUS_PER_TASK; `limits` says which). */
  cpus: { available: number; cores: number; usable: number; limits: string; model: string; affinity: string | null };
  slurm_job_id?: string;
  /** bnlab train --fork: the run, checkpoint and epoch this run started from */
  forked_from?: { run: string; checkpoint: string; epoch: number };
}

export interface RunInfo {
  run: string;
  /** The run's id, kept for its life (resumes keep it, --overwrite makes a new run): every checkpoint carries it. */
  id?: string;
  /** First session's start; last session's end (null while one runs). */
  start: string;
  end: string | null;
  sessions: Session[];
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const bnlabVersion = (): string => (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The commit of bnlab's own checkout (null: not a checkout, or git missing or slow). */
export function gitCommit(root = ROOT): Session['git'] {
  if (!existsSync(join(root, '.git'))) return null;
  const git = (...args: string[]) => execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { commit: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', '--untracked-files=no') !== '' };
  } catch {
    return null;
  }
}

/** The CPUs this process may run on (taskset, Slurm's cpuset), as the kernel lists them. */
function affinity(): string | null {
  try {
    return /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1].trim() ?? null;
  } catch {
    return null;
  }
}

/** Everything about this process a session records, except how it ends. */
export function describeSession(backend: Session['backend'], start: Date): Omit<Session, 'end' | 'status' | 'epochs_done'> {
  const cpus = os.cpus();
  const budget = cpuBudget();
  return {
    command: ['bnlab', ...process.argv.slice(2)],
    cwd: process.cwd(),
    start: start.toISOString(),
    bnlab_version: bnlabVersion(),
    git: gitCommit(),
    node: process.version,
    tfjs: tfjsVersion,
    backend,
    host: os.hostname(),
    cpus: { available: os.availableParallelism(), cores: cpus.length, usable: budget.cpus, limits: budget.reason, model: cpus[0]?.model ?? 'unknown', affinity: affinity() },
    ...(process.env.SLURM_JOB_ID ? { slurm_job_id: process.env.SLURM_JOB_ID } : {}),
  };
}

export function readRunInfo(path: string): RunInfo | null {
  if (!existsSync(path)) return null;
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as RunInfo;
    return Array.isArray(info.sessions) ? info : null;
  } catch {
    return null; // damaged: a new file is started (the run's results do not depend on it)
  }
}

const write = (path: string, info: RunInfo) => writeFileAtomic(path, [Buffer.from(JSON.stringify(info, null, 2) + '\n', 'utf8')]);

/** Wall-clock seconds of every ended session. */
export const wallSeconds = (info: RunInfo | null): number | null =>
  info ? info.sessions.reduce((a, s) => a + (s.end ? (Date.parse(s.end) - Date.parse(s.start)) / 1000 : 0), 0) : null;

export interface OpenSession {
  /** The run's id as run.json now holds it (the earlier sessions' when there were some). */
  id: string;
  /** Set when an unreadable run.json was moved aside: what to tell the user. */
  note?: string;
  /** Record how the session ended (rewrites run.json). */
  end(status: Exclude<Session['status'], 'running'>, epochsDone: number | null, error?: string): RunInfo;
  /** Forget this session (it trained nothing, e.g. a resume of a finished run). */
  discard(): void;
}

export const DIED = 'ended without writing its end (killed with SIGKILL, aborted, or out of memory); see train.log for its last line';

/** Sessions left 'running' by a process that is gone become 'died' (the caller knows none runs). */
function settleDead(info: RunInfo): RunInfo {
  for (const s of info.sessions) if (s.status === 'running') Object.assign(s, { status: 'died', error: DIED });
  return info;
}

/**
 * How a run folder's last session stands, as its run.json and lock tell together: a session
 * that says 'running' while no live process holds the lock died without a word. null: no run.json.
 * (A lock held from another host cannot be checked: its session is taken as running.)
 */
export function lastSession(runDir: string): Session | null {
  const p = runPaths(runDir);
  const info = readRunInfo(p.runInfo);
  const last = info?.sessions.at(-1);
  if (!info || !last) return null;
  const lock = lockState(p.lock);
  return last.status === 'running' && (lock === 'stale' || lock === 'none') ? settleDead(info).sessions.at(-1)! : last;
}

/** Append a running session to run.json (created if missing); the caller holds the run's lock,
 *  so an earlier session still marked running died without a word and is recorded so. */
export function startSession(path: string, runDir: string, s: Omit<Session, 'end' | 'status' | 'epochs_done'>, id: string = newRunId()): OpenSession {
  const read = readRunInfo(path);
  let note: string | undefined;
  if (!read && existsSync(path)) {
    // Its history is the user's record of how the numbers were made: keep it, never overwrite it.
    const aside = `${path}.damaged-${s.start.replace(/[:.]/g, '-')}`;
    renameSync(path, aside);
    note = `${path} could not be read (damaged); kept as ${aside}, and a new run.json started with this session`;
  }
  const before = read && settleDead(read);
  const session: Session = { ...s, end: null, status: 'running', epochs_done: null };
  const info: RunInfo = { run: runDir, id: before?.id ?? id, start: before?.start ?? s.start, end: null, sessions: [...(before?.sessions ?? []), session] };
  write(path, info);
  return {
    id: info.id!,
    ...(note ? { note } : {}),
    end(status, epochsDone, error) {
      Object.assign(session, { end: new Date().toISOString(), status, epochs_done: epochsDone, ...(error ? { error } : {}) });
      info.end = session.end;
      write(path, info);
      return info;
    },
    discard() {
      if (before) write(path, before);
    },
  };
}
