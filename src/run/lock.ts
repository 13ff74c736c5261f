// One writer per run folder: a lock file created exclusively (O_EXCL), holding the writer's PID,
// its start time (as the kernel counts it), host, Slurm job and command, its mtime refreshed every
// minute (a heartbeat other hosts can see, as proper-lockfile does; our own file because the
// holder's identity goes into it). A lock whose process is gone (same host: PID not alive, or
// alive but started after the lock, a reused PID; another host: no heartbeat for 10 min, or an
// earlier run of the same Slurm job) is stale and taken over, saying so; so is an empty or
// unreadable lock older than a few seconds (what a full disk or a kill mid-write leaves). A live
// one refuses the second writer, naming the holder.
import { closeSync, existsSync, openSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';

export class LockError extends Error {}

export interface LockHolder {
  pid: number;
  /** A Slurm task's job id and restart count: a requeued task of the same job takes over its own lock. */
  slurm?: { job: string; restart: string };
  /** The process's start time in clock ticks since boot (/proc/PID/stat field 22): tells a reused PID. */
  pid_start?: number;
  host: string;
  started: string;
  command: string;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

function readHolder(path: string): LockHolder | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
  } catch {
    return null; // being written right now, or garbage (see unreadableIsStale)
  }
}

/** A process's start time in clock ticks since boot (null: no /proc, or no such process). */
export function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from the last ')'
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return null;
  }
}

/** The holder's process still runs: its PID is alive and, where the lock recorded it, started when the lock's did. */
function holderAlive(h: LockHolder): boolean {
  if (!alive(h.pid)) return false;
  const ticks = processStart(h.pid);
  if (ticks === null) return true;
  if (h.pid_start !== undefined) return ticks === h.pid_start;
  // A lock without pid_start: the process must have started before the lock was written
  // (USER_HZ is 100 on Linux; 2 s of slack for clock granularity).
  const boot = bootTimeMs();
  const lockedAt = Date.parse(h.started);
  return boot === null || Number.isNaN(lockedAt) || boot + ticks * 10 <= lockedAt + 2000;
}

function bootTimeMs(): number | null {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return m ? Number(m[1]) * 1000 : null;
  } catch {
    return null;
  }
}

/** Writing a lock takes microseconds: an unreadable one this old was left by a writer that died or a full disk. */
const UNREADABLE_STALE_MS = 5000;

/** The holder refreshes the lock's mtime this often; a lock from another host silent for HEARTBEAT_STALE_MS is stale. */
const HEARTBEAT_MS = 60_000;
const HEARTBEAT_STALE_MS = 10 * 60_000;
const slurmTask = (): LockHolder['slurm'] => (process.env.SLURM_JOB_ID ? { job: process.env.SLURM_JOB_ID, restart: process.env.SLURM_RESTART_COUNT ?? '0' } : undefined);
const ageMs = (path: string) => {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

/**
 * Why the lock at `path` no longer protects a live writer (null: it may). Same host: the PID is
 * gone or was reused. Another host (which cannot be asked): an earlier run of this very Slurm
 * job (requeued), or no heartbeat for HEARTBEAT_STALE_MS. Any host: empty or unreadable for
 * longer than a write takes.
 */
function staleReason(path: string, h: LockHolder | null): string | null {
  if (!h) return ageMs(path) > UNREADABLE_STALE_MS ? `empty or unreadable for over ${UNREADABLE_STALE_MS / 1000} s (left by a writer that died mid-write, or a full disk)` : null;
  const mine = slurmTask();
  if (h.slurm && mine && h.slurm.job === mine.job && h.slurm.restart !== mine.restart) return `left by an earlier run of this Slurm job (${h.slurm.job}, restart ${h.slurm.restart}; this is restart ${mine.restart})`;
  if (h.host === hostname()) return holderAlive(h) ? null : alive(h.pid) ? 'whose PID now belongs to another process (started after the lock)' : 'which is no longer running';
  const age = ageMs(path);
  return age > HEARTBEAT_STALE_MS ? `whose heartbeat stopped ${Math.round(age / 60_000)} min ago (its host ${h.host} died or lost the file system)` : null;
}

/**
 * Whether a run folder's writer is alive, from its lock alone: 'live' (a process on this host
 * holds it), 'elsewhere' (held from another host, heartbeat recent), 'stale' (the holder is
 * gone), 'none' (no lock file).
 */
export function lockState(path: string): 'live' | 'elsewhere' | 'stale' | 'none' {
  if (!existsSync(path)) return 'none';
  const h = readHolder(path);
  if (staleReason(path, h)) return 'stale';
  return h && h.host !== hostname() ? 'elsewhere' : 'live';
}

const describe = (h: LockHolder) => `PID ${h.pid} on ${h.host} (${h.command}, since ${h.started})`;

/**
 * Take the lock at `path` for `what` (e.g. "bnlab train"); returns the release function (also run
 * at process exit). `waitMs` > 0 retries a live lock until then (short critical sections such as
 * an append to eval.csv); 0 refuses at once.
 */
export async function acquireLock(path: string, what: string, o: { waitMs?: number; onStale?: (msg: string) => void } = {}): Promise<() => void> {
  const start = processStart(process.pid);
  const me: LockHolder = { pid: process.pid, ...(start !== null ? { pid_start: start } : {}), ...(slurmTask() ? { slurm: slurmTask() } : {}), host: hostname(), started: new Date().toISOString(), command: process.argv.slice(1).join(' ') || what };
  const deadline = Date.now() + (o.waitMs ?? 0);
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, JSON.stringify(me));
      } finally {
        closeSync(fd);
      }
      let released = false;
      // The heartbeat: other hosts cannot ask whether this process lives, but can see the mtime.
      const beat = setInterval(() => {
        try {
          utimesSync(path, new Date(), new Date());
        } catch {
          // taken over or deleted: release() will not remove what is not ours
        }
      }, HEARTBEAT_MS);
      beat.unref();
      const release = () => {
        if (released) return;
        released = true;
        clearInterval(beat);
        process.off('exit', release);
        // Only remove our own lock (a stale-lock takeover by another process must not be undone).
        if (readHolder(path)?.pid === me.pid && readHolder(path)?.host === me.host) rmSync(path, { force: true });
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new LockError(`cannot create the lock ${path}: ${(e as Error).message}`);
    }
    const holder = readHolder(path);
    const stale = staleReason(path, holder);
    if (stale) {
      o.onStale?.(`removed a stale lock ${path}${holder ? ` left by ${describe(holder)}` : ''}, ${stale}`);
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const who = holder ? describe(holder) : 'an unknown writer (unreadable lock file)';
    const clear = holder && holder.host !== me.host ? ` bnlab cannot ask ${holder.host} whether that process lives; its lock counts as stale ${HEARTBEAT_STALE_MS / 60_000} min after its last heartbeat (the file's mtime), or delete ${path} if you are sure it is gone.` : ` If you are sure no bnlab process uses this folder, delete ${path}.`;
    throw new LockError(`${what}: ${path} is held by ${who}; one writer per run folder. Wait for it to finish, or use another --out.${clear}`);
  }
}
