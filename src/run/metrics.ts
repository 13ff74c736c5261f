// metrics.csv: one row per epoch (timm's convention), the file rewritten atomically at each epoch;
// a resumed run continues it, checked against the epoch history its checkpoint carries.
// metrics.jsonl beside it holds the same rows as JSON objects (numbers as numbers, null where not
// computed), always written from the same cells so the two files never disagree.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './checkpoint.js';
import { stringify } from 'csv-stringify/sync';
import { parse } from 'csv-parse/sync';
import { MODE, MODE_COLUMNS, MODE_FACTS } from '../bn/columns.js';

// A file's column order is fixed once written: columns are only ever appended. These are the
// columns of the first releases; every mode column added since (bn/columns.ts) follows them.
const FIRST_COLUMNS = [
  'epoch',
  'lr',
  'train_loss',
  'train_err',
  MODE_FACTS.ema.valColumn,
  MODE_FACTS.precise.valColumn,
  'epoch_seconds',
  'train_images_per_s',
  'precise_seconds',
  MODE_FACTS.minibatch.trainColumn,
  MODE_FACTS.minibatch.valColumn,
  'bn_mode',
  MODE_FACTS.composed.valColumn,
];
export const METRIC_COLUMNS: readonly string[] = [...FIRST_COLUMNS, ...MODE_COLUMNS.filter((c) => !FIRST_COLUMNS.includes(c))];

/** Numbers, a label (bn_mode: batch | frozen), or null for "not computed this epoch" (empty cell). */
export type MetricsRow = Record<string, number | string | null>;

const fmt = (v: number | string | null) =>
  v === null || v === undefined ? '' : typeof v === 'string' ? v : Number.isInteger(v) ? String(v) : v.toPrecision(6);

/** A row as the CSV cells it is written as (what a checkpoint's epoch history stores). */
export const metricsCells = (row: MetricsRow): string[] => METRIC_COLUMNS.map((c) => fmt(row[c]));

const csvText = (rows: readonly string[][]) => stringify([METRIC_COLUMNS as unknown as string[], ...rows]);

/** metrics.jsonl for a metrics.csv path. */
export const jsonlPath = (csvPath: string) => csvPath.replace(/\.csv$/, '') + '.jsonl';

/** One row's cells as JSON: numbers as numbers, an empty cell as null, labels as strings. */
export function metricsRecord(cells: readonly string[]): Record<string, number | string | null> {
  const value = (c: string) => (c === '' ? null : Number.isFinite(Number(c)) ? Number(c) : c);
  return Object.fromEntries(METRIC_COLUMNS.map((col, i) => [col, value(cells[i] ?? '')]));
}

const jsonlText = (rows: readonly string[][]) => rows.map((r) => JSON.stringify(metricsRecord(r)) + '\n').join('');

const readText = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : null);

/** A row from a checkpoint written before a column was added (columns are only ever appended). */
const padded = (r: readonly string[]) => METRIC_COLUMNS.map((_, i) => r[i] ?? '');

/** Rewrite both files atomically: a crash or full disk leaves the old file, never half a row. */
export function writeMetrics(path: string, rows: readonly string[][]): void {
  writeFileAtomic(path, [Buffer.from(csvText(rows.map(padded)), 'utf8')]);
  writeFileAtomic(jsonlPath(path), [Buffer.from(jsonlText(rows), 'utf8')]);
}

/** The file's rows as written. */
const parseMetrics = (path: string): Record<string, string>[] => (existsSync(path) ? parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true }) : []);

/**
 * A row as the modes define it now. Until FrozenBN had its own column, a FrozenBN epoch (bn_mode
 * frozen) wrote its error into val_err_precise: such a row's value moves to val_err_frozen, so an
 * old run reads as a new one does.
 */
export function withFrozenColumn(row: Record<string, string>): Record<string, string> {
  const [precise, frozen] = [MODE_FACTS.precise.valColumn, MODE_FACTS.frozen.valColumn];
  if (row.bn_mode !== MODE.frozen || (row[frozen] ?? '') !== '' || (row[precise] ?? '') === '') return row;
  return { ...row, [frozen]: row[precise], [precise]: '' };
}

/** metrics.csv's rows by column name (old FrozenBN rows read as new ones: withFrozenColumn). */
export const readMetrics = (path: string): Record<string, string>[] => parseMetrics(path).map(withFrozenColumn);

const readCells = (path: string): string[][] => parseMetrics(path).map((r) => METRIC_COLUMNS.map((c) => r[c] ?? ''));

export function appendMetrics(path: string, row: MetricsRow): void {
  writeMetrics(path, [...readCells(path), metricsCells(row)]);
}

/**
 * On resume, metrics.csv is made to match the checkpoint's epoch history exactly: rows written
 * after the checkpoint (a crash between the CSV write and the checkpoint rename) are dropped, and a
 * missing, truncated or edited file is rebuilt. Returns what was repaired (null: nothing).
 * Checkpoints without a history (older bnlab) only drop rows past their epoch.
 */
export function restoreMetrics(path: string, lastEpoch: number, history: readonly string[][] | undefined): string | null {
  const existed = existsSync(path);
  const have = readCells(path);
  const want = (history ?? have.filter((r) => Number(r[0]) <= lastEpoch)).map(padded);
  const csvOk = JSON.stringify(have) === JSON.stringify(want) && (existed || want.length === 0);
  const jsonlBefore = readText(jsonlPath(path));
  const jsonlOk = jsonlBefore === (want.length || existed ? jsonlText(want) : null);
  if (csvOk && jsonlOk) return null;
  writeMetrics(path, want);
  if (csvOk) return `unchanged; metrics.jsonl ${jsonlBefore === null ? 'written' : 'rebuilt'} from it`;
  if (!history) return `dropped rows after epoch ${lastEpoch}`;
  const epochs = (rs: readonly string[][]) => rs.map((r) => r[0]).join(' ') || 'none';
  return !existed || have.length === 0
    ? `rebuilt from the checkpoint's history (epochs ${epochs(want)})`
    : `rebuilt from the checkpoint's history: the file had epochs ${epochs(have)}, the checkpoint ${epochs(want)}`;
}
