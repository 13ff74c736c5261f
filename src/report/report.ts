// Whole-folder reports: every table that can be built (markdown), and one self-contained HTML
// page with the tables and inline SVG figures (no scripts, no network).
import { buildFigures, FIG_IDS, render, type FigId } from './figures.js';
import { distinctRuns, type Run } from './runs.js';
import { findingsTable, type FindingRuns } from './findings.js';
import { esc, hasOurs, textHtml, textMarkdown, toHtml, toMarkdown, type Table, type TextTable } from './table.js';
import { regimeTable } from './regime.js';
import { buildTable, TABLE_IDS, type TableId } from './tables.js';
import { sweepTables } from './sweeps.js';
import { isTwin, twinTable } from './twin.js';

// A results folder laid out as <experiment>/<run>/ (results/mini/table1/..): when an experiment
// folder's name names a table, that table uses only its runs, so sweeps for different tables don't mix.
const FOLDER: Record<TableId | `f${FigId}`, RegExp> = {
  table1: /table-?1|tab1/i,
  table2: /table-?2|tab2/i,
  fig5: /fig-?[56]|nbs/i,
  fig6: /fig-?[56]|nbs|frozen/i,
  table4: /table-?[14]|tab[14]|domain|corrupt/i, // Table 4 evaluates Table 1's standard model
  fig8: /fig-?8|leak|composition/i,
  f2: /fig-?2|trace|table-?1|tab1/i, // the trace is recorded by Table 1's small-batch run
  f3: /fig-?[34]|table-?1|tab1/i,
  f4: /fig-?[34]|table-?1|tab1/i,
  f5: /fig-?[56]|nbs/i,
  f6: /fig-?[56]|nbs|frozen/i,
  f8: /fig-?8|leak|composition/i,
};
export function runsFor(key: keyof typeof FOLDER, runs: Run[]): Run[] {
  const top = (r: Run) => r.name.split(/[\\/]/)[0];
  const mine = runs.filter((r) => r.name.includes('/') && FOLDER[key].test(top(r)));
  // Laid out by experiment, a table whose folder is not there (yet) is not built from other
  // experiments' runs (Table 2 from Table 1's models, say); a flat folder of runs serves every table.
  const layered = runs.some((r) => r.name.includes('/'));
  return distinctRuns(layered ? mine : runs);
}

export interface TableResult {
  tables: Table[];
  skipped: { id: TableId; why: string }[];
}
const WHY: Record<TableId, string> = {
  table1: 'no run with EMA/PreciseBN validation errors (eval.csv precise rows with samples N, or metrics.csv)',
  table2: 'no run with eval.csv PreciseBN rows at several batch sizes B (or EMA errors)',
  fig5: 'no NBS sweep with train_err_nbs / val_err_precise / val_err_minibatch',
  fig6: 'no NBS sweep or FrozenBN run (bn.frozen_last_epochs > 0)',
  table4: 'no eval.csv rows with another stats_data or data (bnlab eval on corrupted data)',
  fig8: 'no run with val_err_composed (a bn.composition run with eval.composed)',
};
export function allTables(runs: Run[]): TableResult {
  const out: TableResult = { tables: [], skipped: [] };
  for (const id of TABLE_IDS) {
    const t = buildTable(id, runsFor(id, runs));
    hasOurs(t) ? out.tables.push(t) : out.skipped.push({ id, why: WHY[id] });
  }
  return out;
}

/** The runs the findings read, picked per experiment as the tables pick theirs; twins from anywhere. */
export const findingRuns = (runs: Run[]): FindingRuns => ({
  table1: runsFor('table1', runs), table2: runsFor('table2', runs), fig6: runsFor('fig6', runs),
  table4: runsFor('table4', runs), fig8: runsFor('fig8', runs), twin: distinctRuns(runs.filter(isTwin)),
});
/** The findings with their verdicts, then the twin beside bnlab (when there is a twin run). */
export function verdictTables(runs: Run[]): TextTable[] {
  const f = findingsTable(findingRuns(runs));
  const twin = twinTable(runsFor('fig5', runs), runs);
  return [...(f.rows.length ? [f] : []), ...(twin ? [twin] : [])];
}

/**
 * Sweeps no paper table recognises (a batch-size sweep, a user's own grid), each as a plain table
 * of its varied keys against final errors; a flat folder of runs only when no paper table was built.
 */
export function otherSweeps(runs: Run[], builtAny: boolean): TextTable[] {
  const known = (top: string) => Object.values(FOLDER).some((re) => re.test(top)) || /twin/.test(top);
  return sweepTables(distinctRuns(runs), (top) => (top === '.' ? !builtAny : !known(top)));
}

/** Runs with fewer epochs than their config asks, and how their last session ended. */
export function unfinished(runs: Run[]): string[] {
  const how: Record<string, string> = {
    running: 'still running', died: 'died without a word (killed, aborted or out of memory): resume it with --resume',
    interrupted: 'interrupted: resume it with --resume', failed: 'failed (see its train.log)', finished: 'finished early',
  };
  // a PyTorch twin writes no run.json: it is either still training or was stopped
  const why = (r: Run) => (r.session ? how[r.session] : isTwin(r) ? 'PyTorch twin (scripts/torch_twin.py) still training or stopped; not used' : 'no run.json');
  return runs.filter((r) => Math.max(0, ...r.metrics.map((m) => m.epoch ?? 0)) < r.epochs)
    .map((r) => `${r.name}: ${Math.max(0, ...r.metrics.map((m) => m.epoch ?? 0))}/${r.epochs} epochs, ${why(r)}`);
}

export function markdownReport(dir: string, runs: Run[]): string {
  const { tables, skipped } = allTables(runs);
  const parts = [`# bnlab report: ${dir}`, '', `${runs.length} run folders. Each cell: ours (paper); the paper's numbers are ImageNet / ResNet-50.`, ''];
  for (const t of verdictTables(runs)) parts.push(textMarkdown(t));
  for (const t of tables) parts.push(toMarkdown(t));
  for (const t of otherSweeps(runs, tables.length > 0)) parts.push(textMarkdown(t));
  const regime = regimeTable(runs);
  if (regime.rows.length) parts.push(toMarkdown(regime));
  if (skipped.length) parts.push('## Not built', '', ...skipped.map((s) => `- ${s.id}: ${s.why}`), '');
  const open = unfinished(runs);
  if (open.length) parts.push('## Unfinished runs', '', 'Their last epochs are missing from the tables above.', '', ...open.map((l) => `- ${l}`), '');
  return parts.join('\n');
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
thead th{background:#f3f3f3}tbody th{text-align:left;font-weight:normal;background:#fafafa}
td{white-space:nowrap}.paper{color:#888}.notes{color:#555;font-size:12px}figure{margin:24px 0}figure svg{display:block;width:100%;height:auto}figcaption{color:#555}`;

export async function htmlReport(dir: string, runs: Run[]): Promise<string> {
  const { tables, skipped } = allTables(runs);
  const figs: string[] = [];
  const figSkipped: string[] = [];
  for (const f of FIG_IDS) {
    const { figures, skipped: s } = buildFigures(runsFor(`f${f}`, runs), [f]);
    figSkipped.push(...s);
    for (const fig of figures) figs.push(`<figure>${(await render(fig)).svg}<figcaption>${esc(fig.title)}</figcaption></figure>`);
  }
  const missing = [...skipped.map((s) => `${s.id}: ${s.why}`), ...figSkipped];
  const regime = regimeTable(runs);
  const open = unfinished(runs);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bnlab report: ${esc(dir)}</title><style>${CSS}</style></head>
<body><h1>bnlab report</h1><p>${esc(dir)} — ${runs.length} run folders. Table cells: <b>ours</b> <span class="paper">(paper, ImageNet / ResNet-50)</span>; “—” = not measured.</p>
<h2>Findings</h2>
${verdictTables(runs).map(textHtml).join('\n')}
<h2>Tables</h2>
${tables.map(toHtml).join('\n')}
${otherSweeps(runs, tables.length > 0).map(textHtml).join('\n')}
${regime.rows.length ? toHtml(regime) : ''}
<h2>Figures</h2>
${figs.join('\n')}
${missing.length ? `<h2>Not built</h2><ul>${missing.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : ''}
${open.length ? `<h2>Unfinished runs</h2><p>Their last epochs are missing from the tables above.</p><ul>${open.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : ''}
</body></html>
`;
}
