// metrics.csv: one row per epoch, appended (timm's convention); a resumed run continues the file.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';

export const METRIC_COLUMNS = [
  'epoch',
  'lr',
  'train_loss',
  'train_err',
  'val_err_ema',
  'val_err_precise',
  'epoch_seconds',
  'train_images_per_s',
  'precise_seconds',
  'train_err_nbs',
  'val_err_minibatch',
  'bn_mode',
] as const;

/** Numbers, a label (bn_mode: batch | frozen), or null for "not computed this epoch" (empty cell). */
export type MetricsRow = Record<(typeof METRIC_COLUMNS)[number], number | string | null>;

const fmt = (v: number | string | null) =>
  v === null || v === undefined ? '' : typeof v === 'string' ? v : Number.isInteger(v) ? String(v) : v.toPrecision(6);

export function appendMetrics(path: string, row: MetricsRow): void {
  if (!existsSync(path)) writeFileSync(path, stringify([METRIC_COLUMNS as unknown as string[]]));
  appendFileSync(path, stringify([METRIC_COLUMNS.map((c) => fmt(row[c]))]));
}

export function readMetrics(path: string): Record<string, string>[] {
  if (!existsSync(path)) return [];
  return parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true });
}

/**
 * On resume, rows written after the last checkpoint (a crash between the CSV append and the
 * checkpoint rename) are dropped, so the finished file has each epoch exactly once.
 */
export function truncateMetrics(path: string, lastEpoch: number): void {
  if (!existsSync(path)) return;
  const rows = readMetrics(path).filter((r) => Number(r.epoch) <= lastEpoch);
  writeFileSync(path, stringify([METRIC_COLUMNS as unknown as string[], ...rows.map((r) => METRIC_COLUMNS.map((c) => r[c] ?? ''))]));
}
