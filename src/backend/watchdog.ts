// A bound on backend start-up: an unattended run (a sweep, a Slurm array) must never wait
// forever. Two guards: a timer on the main thread (enough when the event loop is idle, as in every
// hang seen), and a backstop on its own thread that ends the process if the main thread is
// blocked and cannot even run that timer.
import { Worker } from 'node:worker_threads';

export class StartupTimeout extends Error {
  override name = 'StartupTimeout';
}

/** BNLAB_BACKEND_TIMEOUT_S, default 120 s (a start takes ~1 s idle, ~10 s on a loaded node). */
export function startupDeadlineSeconds(): number {
  const v = Number(process.env.BNLAB_BACKEND_TIMEOUT_S);
  return Number.isFinite(v) && v > 0 ? v : 120;
}

const BACKSTOP = `
const { workerData } = require('node:worker_threads');
setTimeout(() => {
  require('node:fs').writeSync(2, workerData.message);
  process.kill(process.pid, 'SIGKILL');
}, workerData.ms);`;

/**
 * `work` or a StartupTimeout after `seconds`; `diagnose` says what was still pending (for the
 * message). The backstop kills the process `graceSeconds` later if the rejection cannot run.
 */
export async function withDeadline<T>(work: Promise<T>, seconds: number, what: string, diagnose: () => string, graceSeconds = 15): Promise<T> {
  const message = (detail: string) =>
    `${what} did not initialise within ${seconds} s${detail ? ` (${detail})` : ''}. Nothing was trained (no checkpoint or metrics written); ` +
    'run the command again. If it recurs, set BNLAB_WASM_THREADS=1 (single-threaded start-up) or raise BNLAB_BACKEND_TIMEOUT_S, and report it.';
  const backstop = new Worker(BACKSTOP, {
    eval: true,
    execArgv: [],
    workerData: { ms: (seconds + graceSeconds) * 1000, message: `\nbnlab: ${message('main thread blocked; process killed')}\n` },
  });
  backstop.unref();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StartupTimeout(message(diagnose()))), seconds * 1000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await backstop.terminate();
  }
}
