// Progress of a local sweep. Its runs train with --quiet (their own lines go to logs/), so the
// sweep reports for them: epochs finished over all runs, read from each run's metrics.csv, and
// the sweep's ETA from this session's rate. A terminal gets a cli-progress bar; other output
// (nohup, Slurm, tee) a plain line every BNLAB_PROGRESS_SECONDS; --quiet gets neither.
import cliProgress from 'cli-progress';
import { readMetrics } from '../run/metrics.js';
import { runPaths } from '../run/paths.js';
import { formatDuration, progressInterval } from '../util/progress.js';
import type { SweepRun } from './spec.js';

const epochsDone = (run: SweepRun) => Math.min(run.cfg.epochs, Number(readMetrics(runPaths(run.dir).metrics).at(-1)?.epoch ?? 0));

/** The ETA of `left` more units at the rate of `done` units in `seconds`; null before the first. */
export const etaOf = (done: number, left: number, seconds: number): string | null => (done > 0 ? formatDuration((seconds * left) / done) : null);

export interface SweepProgress {
  /** Re-read the runs' epochs and show them (the runner calls it every 2 s). */
  tick(): void;
  stop(): void;
}

export function trackSweep(runs: SweepRun[], o: { quiet?: boolean; tty?: boolean; print: (line: string) => void; intervalSeconds?: number }): SweepProgress {
  if (o.quiet || runs.length === 0) return { tick() {}, stop() {} };
  const from = runs.map(epochsDone); // a resumed run counts from where it stood
  const total = runs.reduce((a, r, i) => a + r.cfg.epochs - from[i], 0);
  const t0 = performance.now();
  const state = () => {
    const now = runs.map(epochsDone);
    const done = now.reduce((a, e, i) => a + e - from[i], 0);
    const finished = now.filter((e, i) => e >= runs[i].cfg.epochs).length;
    const eta = etaOf(done, total - done, (performance.now() - t0) / 1000);
    return { done, finished, eta };
  };
  if (o.tty ?? process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: 'sweep {bar} {value}/{total} epochs | {runs} | ETA {eta_text}', stream: process.stderr, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { runs: `0/${runs.length} runs done`, eta_text: '...' });
    return {
      tick() {
        const s = state();
        bar.update(s.done, { runs: `${s.finished}/${runs.length} runs done`, eta_text: s.eta ?? '...' });
      },
      stop: () => bar.stop(),
    };
  }
  const every = (o.intervalSeconds ?? progressInterval()) * 1000;
  let last = performance.now();
  return {
    tick() {
      if (performance.now() - last < every) return;
      last = performance.now();
      const s = state();
      o.print(`sweep: ${s.done}/${total} epochs, ${s.finished}/${runs.length} runs done${s.eta ? `, ETA ${s.eta}` : ''}`);
    },
    stop() {},
  };
}
