// Any sweep as a plain table: for each experiment folder (or a flat folder of runs), the config
// keys its runs vary against their final errors, seeds pooled as mean ± std. This is the table
// of a batch-size sweep (scripts/sweep-batch-size.sh) and of any sweep the paper's tables do not
// know (runs declaring no report.roles), read from what the runs' configs say, not from folder names.
import { configDiff, RESUMABLE_KEYS } from '../config/load.js';
import { valueAt } from '../run/identity.js';
import { lastEpoch, metricsAt, type Run } from './runs.js';
import type { TextTable } from './table.js';
import { MODE_FACTS, STATS_MODES } from '../bn/columns.js';

/** Keys that differ between runs without making them different experiments. */
const NOT_VARIED = new Set([...RESUMABLE_KEYS, 'seed', 'data.synthetic.seed']);
/** The training error as trained, then each statistics mode's validation error. */
const COLUMNS: [string, string][] = [['train_err', 'train err % (as trained)'], ...STATS_MODES.map((m): [string, string] => [MODE_FACTS[m].valColumn, `val ${MODE_FACTS[m].label} %`])];

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** The dotted config keys whose values differ among `runs` (seed and keys a resume may change aside). */
export function variedKeys(runs: Run[]): string[] {
  const keys = new Set<string>();
  for (const run of runs.slice(1)) for (const k of configDiff(runs[0].config, run.config)) if (!NOT_VARIED.has(k)) keys.add(k);
  return [...keys].sort();
}

function meanStd(xs: number[]): string {
  if (!xs.length) return '—';
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length === 1) return m.toFixed(2);
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
  return `${m.toFixed(2)} ± ${sd.toFixed(2)}`;
}

/** One experiment's table (null when its runs vary nothing but the seed, or there is one run). */
export function sweepTable(title: string, runs: Run[]): TextTable | null {
  const finished = runs.filter((run) => lastEpoch(run) >= run.epochs);
  const keys = variedKeys(finished);
  if (finished.length < 2 || keys.length === 0) return null;
  const groups = new Map<string, Run[]>();
  for (const run of finished) {
    const id = keys.map((k) => show(valueAt(run.config, k))).join('\u0000');
    groups.set(id, [...(groups.get(id) ?? []), run]);
  }
  const cols = COLUMNS.filter(([c]) => finished.some((run) => typeof metricsAt(run, run.epochs)?.[c] === 'number'));
  const numeric = (id: string) => id.split('\u0000').map((v) => (Number.isFinite(Number(v)) ? Number(v) : v));
  const order = [...groups.keys()].sort((a, b) => {
    const [x, y] = [numeric(a), numeric(b)];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return typeof x[i] === 'number' && typeof y[i] === 'number' ? (x[i] as number) - (y[i] as number) : String(x[i]).localeCompare(String(y[i]));
    return 0;
  });
  const rows = order.map((id) => {
    const rs = groups.get(id)!;
    const at = (c: string) => rs.map((run) => metricsAt(run, run.epochs)?.[c]).filter((v): v is number => typeof v === 'number');
    return [...id.split('\u0000'), String(rs.length), ...cols.map(([c]) => meanStd(at(c)))];
  });
  return {
    title: `Sweep ${title}: final errors by what its runs vary`,
    intro: [`The final epoch's errors (metrics.csv) of each finished run, grouped by the config keys its runs vary (${keys.join(', ')}); several seeds as mean ± std.`],
    head: [...keys, 'runs', ...cols.map(([, h]) => h)],
    rows,
    notes: runs.length > finished.length ? [`${runs.length - finished.length} unfinished run(s) left out.`] : [],
  };
}

/**
 * A table per experiment folder (the first part of each run's name; '.' for a flat folder of
 * runs): the report passes the runs that declare no paper role.
 */
export function sweepTables(runs: Run[]): TextTable[] {
  const groups = new Map<string, Run[]>();
  for (const run of runs) {
    const top = run.name.includes('/') ? run.name.split(/[\\/]/)[0] : '.';
    groups.set(top, [...(groups.get(top) ?? []), run]);
  }
  return [...groups].map(([name, rs]) => sweepTable(name, rs)).filter((t): t is TextTable => t !== null);
}
