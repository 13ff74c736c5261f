// Logging between epochs: every log.every_steps SGD steps, the training loss, learning rate,
// throughput and data wait averaged over those steps, as one line of scalars.jsonl and (with
// log.tensorboard) TensorBoard scalars under train/; every epoch's metrics.csv row as epoch/<column>.
// The x axis is the global step (epoch x steps per epoch + step), so a resumed run continues its
// curves: scalars.jsonl is cut back to the checkpoint's step and a new event file is started.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { writeFileAtomic } from '../run/checkpoint.js';
import { METRIC_COLUMNS, type MetricsRow } from '../run/metrics.js';
import type { RunPaths } from '../run/paths.js';
import { openEventWriter, type EventWriter } from '../run/tensorboard.js';

export interface StepScalars {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  images_per_s: number;
  data_wait_s: number;
  time: string;
}

export interface StepLog {
  /** One SGD step's sums; a line is written every log.every_steps steps. */
  step(globalStep: number, epochPos: number, s: { lossSum: number; n: number; seconds: number; dataWait: number; lr: number }): void;
  epoch(globalStep: number, row: MetricsRow): void;
  close(): void;
}

/** scalars.jsonl without the lines past `step` (a resume repeats those) or a line cut short by a kill. */
export function truncateScalars(path: string, step: number): void {
  if (!existsSync(path)) return;
  const keep = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => {
      try {
        return (JSON.parse(l) as StepScalars).step <= step;
      } catch {
        return false;
      }
    });
  writeFileAtomic(path, [Buffer.from(keep.map((l) => `${l}\n`).join(''), 'utf8')]);
}

export function openStepLog(cfg: Config, paths: RunPaths, resumedStep: number): StepLog {
  const every = cfg.log.every_steps;
  truncateScalars(paths.scalars, resumedStep);
  const tb: EventWriter | null = cfg.log.tensorboard ? openEventWriter(paths.tensorboard) : null;
  let acc = { lossSum: 0, n: 0, seconds: 0, dataWait: 0, steps: 0 };
  return {
    step(globalStep, epochPos, s) {
      if (every <= 0) return;
      acc = { lossSum: acc.lossSum + s.lossSum, n: acc.n + s.n, seconds: acc.seconds + s.seconds, dataWait: acc.dataWait + s.dataWait, steps: acc.steps + 1 };
      if (globalStep % every !== 0) return;
      const row: StepScalars = {
        step: globalStep,
        epoch: +epochPos.toFixed(4),
        loss: acc.lossSum / acc.n,
        lr: s.lr,
        images_per_s: acc.n / acc.seconds,
        data_wait_s: acc.dataWait / 1000 / acc.steps,
        time: new Date().toISOString(),
      };
      appendFileSync(paths.scalars, `${JSON.stringify(row)}\n`);
      tb?.scalars(globalStep, { 'train/loss': row.loss, 'train/lr': row.lr, 'train/images_per_s': row.images_per_s, 'train/data_wait_s': row.data_wait_s });
      acc = { lossSum: 0, n: 0, seconds: 0, dataWait: 0, steps: 0 };
    },
    epoch(globalStep, row) {
      const values = Object.fromEntries(METRIC_COLUMNS.filter((c) => c !== 'epoch' && typeof row[c] === 'number').map((c) => [`epoch/${c}`, row[c] as number]));
      tb?.scalars(globalStep, values);
    },
    close: () => tb?.close(),
  };
}
