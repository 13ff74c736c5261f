// Local sweep execution: each run is a child `bnlab train` (its own process, so a crash or an
// out-of-memory kills one run, not the sweep), K at a time, one GPU per parallel slot.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { cpuBudget } from '../util/cpus.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkArg, type Sweep, type SweepRun } from './spec.js';
import { trackSweep } from './progress.js';
import { finalErrors, runStatus, sessionNote, type FolderState, type RunStatus } from './status.js';

export const BNLAB_BIN = fileURLToPath(new URL('../../bin/bnlab.js', import.meta.url));

/** Quote for bash (single quotes unless the word is plainly safe). */
export const shq = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * `bnlab train` arguments for a run: --auto-resume lets the trainer decide between continuing and
 * starting, with the same checks as --resume (so a run with epoch checkpoints but no last.ckpt
 * is continued, never started over); a fork's source is used only when it starts.
 */
export function trainArgs(sweep: Sweep, run: SweepRun, extraSets: string[] = []): string[] {
  const sets = [...run.sets, ...extraSets].flatMap((s) => ['--set', s]);
  const fork = run.fork ? ['--fork', forkArg(run)!] : [];
  return ['train', ...sweep.base.flatMap((b) => ['--config', b]), ...sets, '--out', run.dir, '--quiet', '--auto-resume', ...fork];
}

/**
 * The `bnlab train` arguments the local runner uses for a run: trainArgs plus the thread count
 * parallel CPU runs share (a dry run prints exactly these).
 */
export function localTrainArgs(sweep: Sweep, run: SweepRun, o: { jobs: number; gpus: string[] }): string[] {
  // CPU runs in parallel share the cores (wasm would otherwise start one thread per core each).
  const shared = o.gpus.length === 0 && o.jobs > 1 && !run.sets.some((s) => s.startsWith('threads='));
  return trainArgs(sweep, run, shared ? [`threads=${Math.max(1, Math.floor(cpuBudget().cpus / o.jobs))}`] : []);
}

export const logPath = (sweep: Sweep, run: SweepRun) => join(sweep.out, 'logs', `${run.name}.log`);

export interface LocalOptions {
  jobs: number;
  gpus: string[];
  print: (line: string) => void;
  /** true after Ctrl-C: start no further runs (running ones save a checkpoint and exit). */
  stopped?: () => boolean;
  /** no progress bar or lines (start/done lines are still printed) */
  quiet?: boolean;
}

const secs = (ms: number) => (ms < 60e3 ? `${(ms / 1e3).toFixed(1)}s` : `${Math.floor(ms / 60e3)}m${String(Math.round((ms % 60e3) / 1e3)).padStart(2, '0')}s`);

/** Runs every unfinished run; resolves to the runs that failed (after all others finished). */
export async function runLocal(sweep: Sweep, o: LocalOptions): Promise<SweepRun[]> {
  const n = sweep.runs.length;
  const tag = (r: SweepRun) => `[${r.index + 1}/${n}] ${r.name}`;
  const todo: { run: SweepRun; state: FolderState; st: RunStatus }[] = [];
  for (const run of sweep.runs) {
    const st = runStatus(run);
    if (st.state === 'finished') o.print(`${tag(run)}: finished, skipped (${finalErrors(run)})`);
    else todo.push({ run, state: st.state, st });
  }
  mkdirSync(join(sweep.out, 'logs'), { recursive: true });
  const progress = trackSweep(todo.map((t) => t.run), { quiet: o.quiet, print: o.print });
  const timer = setInterval(() => progress.tick(), 2000);
  const failed: SweepRun[] = [];
  // Forks start from other runs' checkpoints: they run once every other run has ended.
  let queue = todo.filter((t) => !t.run.fork);
  let next = 0;
  const worker = async (slot: number) => {
    while (next < queue.length && !o.stopped?.()) {
      const { run, state, st } = queue[next++];
      if (run.fork && failed.includes(run.fork.from)) {
        failed.push(run);
        o.print(`${tag(run)}: FAILED: not started, its source ${run.fork.from.name} failed`);
        continue;
      }
      const gpu = o.gpus.length ? o.gpus[slot % o.gpus.length] : undefined;
      const args = localTrainArgs(sweep, run, o);
      const log = logPath(sweep, run);
      const how = state === 'resume' ? ` (resuming after epoch ${st.lastEpoch}${sessionNote(st)})` : state === 'restart' ? ` (starting over: no checkpoint to resume from${sessionNote(st)})` : '';
      o.print(`${tag(run)}: start${how}${gpu !== undefined ? ` on GPU ${gpu}` : ''}`);
      const t0 = Date.now();
      const code = await spawnLogged(args, log, gpu);
      if (code === 0) {
        o.print(`${tag(run)}: done in ${secs(Date.now() - t0)} (${finalErrors(run)})`);
      } else {
        failed.push(run);
        const tail = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-3).map((l) => `    ${l}`).join('\n');
        o.print(`${tag(run)}: FAILED (exit ${code}) after ${secs(Date.now() - t0)}; log: ${log}\n${tail}`);
      }
    }
  };
  const pool = () => Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs, queue.length)) }, (_, s) => worker(s)));
  try {
    await pool();
    [queue, next] = [todo.filter((t) => t.run.fork), 0];
    await pool();
  } finally {
    clearInterval(timer);
    progress.stop();
  }
  return failed;
}

const running = new Set<ChildProcess>();

/** Pass a stop signal to every running run (each finishes its step, saves a checkpoint, exits 130). */
export function stopRuns(signal: NodeJS.Signals): void {
  for (const child of running) child.kill(signal);
}

function spawnLogged(args: string[], log: string, gpu: string | undefined): Promise<number> {
  return new Promise((resolvePromise) => {
    const out = createWriteStream(log, { flags: 'a' });
    out.write(`\n$ bnlab ${args.map(shq).join(' ')}${gpu !== undefined ? `  (CUDA_VISIBLE_DEVICES=${gpu})` : ''}\n`);
    const env = gpu !== undefined ? { ...process.env, CUDA_VISIBLE_DEVICES: gpu } : process.env;
    // Each run in a process group of its own: a signal reaches it once, from the sweep (stopRuns),
    // whether the sweep got Ctrl-C from a terminal or SIGTERM from Slurm or kill.
    const child = spawn(process.execPath, [BNLAB_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    let done = false;
    const finish = (code: number, note: string) => {
      if (done) return;
      done = true;
      running.delete(child);
      out.end(note, () => resolvePromise(code));
    };
    child.on('error', (e) => finish(127, `bnlab sweep: could not start: ${e.message}\n`));
    child.on('close', (code, signal) => finish(code ?? 1, code === 0 ? '' : `bnlab sweep: exit ${code ?? signal}\n`));
  });
}
