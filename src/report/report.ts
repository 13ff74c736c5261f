// Whole-folder reports: every table that can be built (markdown), and one self-contained HTML
// page with the tables and inline SVG figures (no scripts, no network).
import { buildFigures, FIG_IDS, render, type FigId } from './figures.js';
import { distinctRuns, type Run } from './runs.js';
import { findingsTable, type FindingRuns } from './findings.js';
import { esc, hasOurs, textHtml, textMarkdown, toHtml, toMarkdown, type Table, type TextTable } from './table.js';
import { regimeTable } from './regime.js';
import { buildTable, TABLE_IDS, type TableId } from './tables.js';
import type { ReportRole } from '../config/schema.js';
import { sweepTables } from './sweeps.js';
import { isTwin, twinTable } from './twin.js';
import { variantTable } from './variant.js';

// Which declared roles (report.roles) put a run into each table and figure: a run is in a paper
// table only when it says it stands in for that table, whatever its folder or batch size.
const TABLE_ROLES: Record<TableId, ReportRole[]> = {
  table1: ['table1.small-batch', 'table1.large-batch'],
  table2: ['table2.regular-nbs', 'table2.small-nbs'],
  fig5: ['fig5-6'],
  fig6: ['fig5-6'],
  table4: ['table4'],
  fig8: ['fig8'],
};
// the figures read the runs of their table; the BN trace is recorded by Table 1's small-batch run
const ROLES_OF: Record<TableId | `f${FigId}` | 'fig56variant' | 'fig6continuation', ReportRole[]> = {
  ...TABLE_ROLES,
  fig56variant: ['fig5-6.variant'],
  fig6continuation: ['fig6.continuation'],
  f2: ['table1.small-batch'],
  f3: TABLE_ROLES.table1,
  f4: TABLE_ROLES.table1,
  f5: TABLE_ROLES.fig5,
  f6: TABLE_ROLES.fig6,
  f8: TABLE_ROLES.fig8,
};
export function runsFor(key: keyof typeof ROLES_OF, runs: Run[]): Run[] {
  // a PyTorch twin copies its bnlab run's config, roles included: it sits beside bnlab, never in its tables
  return distinctRuns(runs.filter((run) => !isTwin(run) && run.roles.some((role) => ROLES_OF[key].includes(role))));
}

export interface TableResult {
  tables: Table[];
  skipped: { id: TableId; why: string }[];
}
const WHY: Record<TableId, string> = {
  table1: 'with EMA/PreciseBN validation errors (eval.csv precise rows with samples N, or metrics.csv)',
  table2: 'with eval.csv PreciseBN rows at several batch sizes B (or EMA errors)',
  fig5: 'with train_err_nbs / val_err_precise / val_err_minibatch',
  fig6: 'with those errors, or a FrozenBN run (bn.frozen_last_epochs > 0)',
  table4: 'with eval.csv rows with another stats_data or data (bnlab eval on corrupted data)',
  fig8: 'with val_err_composed (a bn.composition run with eval.composed)',
};
/** Why a table was not built: no run declares its roles, or none that does has its numbers. */
const whyNot = (id: TableId, runs: Run[]) =>
  runsFor(id, runs).length
    ? `no run declaring report.roles ${ROLES_OF[id].join(' or ')} ${WHY[id]}`
    : `no run declares report.roles ${ROLES_OF[id].join(' or ')} (a sweep file sets it; re-running the sweep records it in finished runs)`;
export function allTables(runs: Run[]): TableResult {
  const out: TableResult = { tables: [], skipped: [] };
  for (const id of TABLE_IDS) {
    const t = buildTable(id, runsFor(id, runs));
    hasOurs(t) ? out.tables.push(t) : out.skipped.push({ id, why: whyNot(id, runs) });
  }
  return out;
}

/** The runs the findings read, picked per experiment as the tables pick theirs; twins from anywhere. */
export const findingRuns = (runs: Run[]): FindingRuns => ({
  table1: runsFor('table1', runs), table2: runsFor('table2', runs), fig6: runsFor('fig6', runs),
  table4: runsFor('table4', runs), fig8: runsFor('fig8', runs), twin: distinctRuns(runs.filter(isTwin)), variant: runsFor('fig56variant', runs),
  continuations: runsFor('fig6continuation', runs),
});
/** The findings with their verdicts, then the twin and any changed regime beside Figs. 5-6's runs. */
export function verdictTables(runs: Run[]): TextTable[] {
  const f = findingsTable(findingRuns(runs));
  const twin = twinTable(runsFor('fig5', runs), runs);
  const variant = variantTable(runsFor('fig5', runs), runsFor('fig56variant', runs));
  return [...(f.rows.length ? [f] : []), ...(twin ? [twin] : []), ...(variant ? [variant] : [])];
}

/**
 * Runs that declare no paper role (a batch-size sweep, a user's own grid), each experiment folder
 * as a plain table of its varied keys against final errors.
 */
export function otherSweeps(runs: Run[]): TextTable[] {
  return sweepTables(distinctRuns(runs.filter((run) => run.roles.length === 0 && !isTwin(run))));
}

/** Runs with fewer epochs than their config asks, and how their last session ended. */
export function unfinished(runs: Run[]): string[] {
  const how: Record<string, string> = {
    running: 'still running', died: 'died without a word (killed, aborted or out of memory): resume it with --resume',
    interrupted: 'interrupted: resume it with --resume', failed: 'failed (see its train.log)', finished: 'finished early',
  };
  // a PyTorch twin writes no run.json: it is either still training or was stopped
  const why = (run: Run) => (run.session ? how[run.session] : isTwin(run) ? 'PyTorch twin (scripts/torch_twin.py) still training or stopped; not used' : 'no run.json');
  return runs.filter((run) => Math.max(0, ...run.metrics.map((m) => m.epoch ?? 0)) < run.epochs)
    .map((run) => `${run.name}: ${Math.max(0, ...run.metrics.map((m) => m.epoch ?? 0))}/${run.epochs} epochs, ${why(run)}`);
}

export function markdownReport(dir: string, runs: Run[]): string {
  const { tables, skipped } = allTables(runs);
  const parts = [`# bnlab report: ${dir}`, '', `${runs.length} run folders. Each cell: ours (paper); the paper's numbers are ImageNet / ResNet-50.`, ''];
  for (const t of verdictTables(runs)) parts.push(textMarkdown(t));
  for (const t of tables) parts.push(toMarkdown(t));
  for (const t of otherSweeps(runs)) parts.push(textMarkdown(t));
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
${otherSweeps(runs).map(textHtml).join('\n')}
${regime.rows.length ? toHtml(regime) : ''}
<h2>Figures</h2>
${figs.join('\n')}
${missing.length ? `<h2>Not built</h2><ul>${missing.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : ''}
${open.length ? `<h2>Unfinished runs</h2><p>Their last epochs are missing from the tables above.</p><ul>${open.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : ''}
</body></html>
`;
}
