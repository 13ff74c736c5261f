// Progress bars with ETA on a terminal; silent when stderr is not a TTY or with --quiet.
import cliProgress from 'cli-progress';

export interface Progress {
  start(label: string, total: number): void;
  update(value: number, info?: string): void;
  stop(): void;
}

export function createProgress(quiet: boolean): Progress {
  if (quiet || !process.stderr.isTTY) return { start() {}, update() {}, stop() {} };
  let bar: cliProgress.SingleBar | null = null;
  return {
    start(label, total) {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        { format: `${label.padEnd(16)} {bar} {percentage}% | {value}/{total} | ETA {eta_formatted} | {info}`, stream: process.stderr, hideCursor: true, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { info: '' });
    },
    update(value, info = '') {
      bar?.update(value, { info });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
