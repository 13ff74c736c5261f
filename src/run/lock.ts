// One writer per run folder: a lock file created exclusively (O_EXCL), holding the writer's PID,
// host and command. A lock whose process is gone (same host, PID not alive) is stale and taken
// over, saying so; a live one refuses the second writer with a message naming the holder.
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';

export class LockError extends Error {}

export interface LockHolder {
  pid: number;
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
    return null; // being written right now, or garbage: treated as held by an unknown writer
  }
}

/**
 * Whether a run folder's writer is alive, from its lock alone: 'live' (a process on this host
 * holds it), 'elsewhere' (held from another host: cannot be checked from here), 'stale' (the
 * holder is gone), 'none' (no lock file).
 */
export function lockState(path: string): 'live' | 'elsewhere' | 'stale' | 'none' {
  if (!existsSync(path)) return 'none';
  const h = readHolder(path);
  if (!h) return 'live'; // being written right now
  if (h.host !== hostname()) return 'elsewhere';
  return alive(h.pid) ? 'live' : 'stale';
}

const describe = (h: LockHolder) => `PID ${h.pid} on ${h.host} (${h.command}, since ${h.started})`;

/**
 * Take the lock at `path` for `what` (e.g. "bnlab train"); returns the release function (also run
 * at process exit). `waitMs` > 0 retries a live lock until then (short critical sections such as
 * an append to eval.csv); 0 refuses at once.
 */
export async function acquireLock(path: string, what: string, o: { waitMs?: number; onStale?: (msg: string) => void } = {}): Promise<() => void> {
  const me: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command: process.argv.slice(1).join(' ') || what };
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
      const release = () => {
        if (released) return;
        released = true;
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
    if (holder && holder.host === me.host && !alive(holder.pid)) {
      o.onStale?.(`removed a stale lock ${path} left by ${describe(holder)}, which is no longer running`);
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    const who = holder ? describe(holder) : 'an unknown writer (unreadable lock file)';
    const other = holder && holder.host !== me.host ? ` If that process is gone, delete ${path}.` : '';
    throw new LockError(`${what}: ${path} is held by ${who}; one writer per run folder. Wait for it to finish, or use another --out.${other}`);
  }
}
