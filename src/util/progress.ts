// Progress of a run. On a terminal (stderr a TTY): one cli-progress bar for the phase under way
// (an epoch's SGD steps, an evaluation, a PreciseBN pass) that clears itself when the phase ends,
// so finished bars do not pile up, each showing the ETA of the whole run. Otherwise (Slurm, nohup,
// tee): a plain line on stdout every BNLAB_PROGRESS_SECONDS (default 30). --quiet: nothing.
import cliProgress from 'cli-progress';

export interface Progress {
  /** A phase of `total` units: SGD steps (training) or images (evaluation, PreciseBN). */
  start(label: string, total: number): void;
  /** `info` is shown as given; a phase without it (images) gets its img/s computed. */
  update(value: number, info?: string): void;
  stop(): void;
  /**
   * SGD steps of the whole run done so far and in total (a resume starts part-way), and the
   * evaluation phases (PreciseBN, evaluations between epochs): seconds spent on them in this
   * session, and an estimate of those still to come (null: none measured yet). The run's ETA.
   */
  runSteps?(done: number, total: number, evals?: EvalTime): void;
}

export const DEFAULT_PROGRESS_SECONDS = 30;

/** Seconds between plain progress lines: env BNLAB_PROGRESS_SECONDS, else 30. */
export function progressInterval(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.BNLAB_PROGRESS_SECONDS);
  return env.BNLAB_PROGRESS_SECONDS !== undefined && env.BNLAB_PROGRESS_SECONDS !== '' && Number.isFinite(v) && v >= 0 ? v : DEFAULT_PROGRESS_SECONDS;
}

/** "1h02m", "4m10s", "12.3s". */
export function formatDuration(seconds: number): string {
  if (seconds < 59.95) return `${Math.max(0, seconds).toFixed(1)}s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export interface EvalTime {
  spentSeconds: number;
  /** seconds the remaining evaluation phases will take, from the last one measured; null: none measured, some remain */
  remainingSeconds: number | null;
}

/**
 * The run's ETA: the remaining SGD steps at this session's seconds per step (evaluation time
 * taken out), plus the remaining evaluation phases at the measured cost of the last one. Before
 * one is measured the ETA says "+ evaluations" rather than leave them out silently.
 */
class RunClock {
  private t0 = 0;
  private done0 = 0;
  private done = 0;
  private total = 0;
  private evals: EvalTime = { spentSeconds: 0, remainingSeconds: 0 };

  set(done: number, total: number, evals?: EvalTime): void {
    if (this.t0 === 0) [this.t0, this.done0] = [performance.now(), done];
    [this.done, this.total] = [done, total];
    if (evals) this.evals = evals;
  }

  /** null until a step of this session has finished. */
  eta(): string | null {
    const stepped = this.done - this.done0;
    if (stepped <= 0) return null;
    const training = (performance.now() - this.t0) / 1000 - this.evals.spentSeconds;
    const rest = (Math.max(0, training) * (this.total - this.done)) / stepped;
    return this.evals.remainingSeconds === null ? `${formatDuration(rest)} + evaluations` : formatDuration(rest + this.evals.remainingSeconds);
  }

  get fraction(): string {
    return this.total ? `run ${this.done}/${this.total} steps (${Math.floor((100 * this.done) / this.total)}%)` : '';
  }
}

/** img/s of a phase counted in images, from its start. */
const rateInfo = (value: number, from: number, t0: number) => {
  const s = (performance.now() - t0) / 1000;
  return s > 0 && value > from ? `${((value - from) / s).toFixed(0)} img/s` : '';
};

function terminalProgress(): Progress {
  const clock = new RunClock();
  let bar: cliProgress.SingleBar | null = null;
  let phase = { from: -1, t0: 0 };
  return {
    start(label, total) {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        { format: `${label.padEnd(16)} {bar} {percentage}% | {value}/{total} | {info} | run ETA {run_eta}`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { info: '', run_eta: clock.eta() ?? '...' });
      phase = { from: -1, t0: 0 };
    },
    update(value, info) {
      if (phase.from < 0) phase = { from: value, t0: performance.now() };
      bar?.update(value, { info: info ?? rateInfo(value, phase.from, phase.t0), run_eta: clock.eta() ?? '...' });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
    runSteps: (done, total, evals) => clock.set(done, total, evals),
  };
}

function plainProgress(intervalSeconds: number, write: (line: string) => void): Progress {
  const clock = new RunClock();
  let last = performance.now();
  let phase = { label: '', total: 0, from: -1, t0: 0 };
  return {
    start(label, total) {
      phase = { label, total, from: -1, t0: performance.now() };
    },
    update(value, info) {
      // A resumed epoch starts at its saved step: rates count from the first update.
      if (phase.from < 0) phase = { ...phase, from: value, t0: performance.now() };
      const now = performance.now();
      if (now - last < intervalSeconds * 1000) return;
      last = now;
      const eta = clock.eta();
      const parts = [`${phase.label}: ${value}/${phase.total}`, info ?? rateInfo(value, phase.from, phase.t0), clock.fraction, eta ? `ETA ${eta}` : ''];
      write(parts.filter(Boolean).join(' | '));
    },
    stop() {},
    runSteps: (done, total, evals) => clock.set(done, total, evals),
  };
}

/** Bars on a terminal, plain lines every `intervalSeconds` otherwise, nothing when quiet. */
export function createProgress(quiet: boolean, o: { tty?: boolean; intervalSeconds?: number; write?: (line: string) => void } = {}): Progress {
  if (quiet) return { start() {}, update() {}, stop() {} };
  if (o.tty ?? process.stderr.isTTY) return terminalProgress();
  return plainProgress(o.intervalSeconds ?? progressInterval(), o.write ?? ((l) => process.stdout.write(l + '\n')));
}
