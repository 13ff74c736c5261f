// The table model every report uses: cells hold our measurement and the paper's number side by side,
// rendered as "ours (paper)". A missing value is shown as "—" and never filled in.
import type { PaperValue } from './paper.js';

export interface Stat {
  mean: number;
  std?: number; // over repeats (eval.csv) or over runs (seeds); absent for a single measurement
  n?: number;
}
export interface Cell {
  ours: Stat | null;
  paper: PaperValue | null;
}
export interface Table {
  id: string;
  title: string;
  rowHeader: string[]; // names of the label columns
  columns: string[];
  rows: { labels: string[]; cells: Cell[] }[];
  notes: string[];
  oursOnly?: boolean; // no paper column to sit beside (e.g. the training-regime table)
}

export const DASH = '—';
/** A difference with its sign always shown and a true minus sign: +1.23, −0.40, 0.00. */
export const signed = (x: number, digits = 2) => `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(x).toFixed(digits)}`;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (n-1), the usual "± std" over repeats or seeds. */
export const std = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

/** Several runs (seeds) filling one cell: the mean and std of their values. */
export function combine(stats: (Stat | null)[]): Stat | null {
  const s = stats.filter((x): x is Stat => x !== null);
  if (s.length <= 1) return s[0] ?? null;
  const m = s.map((x) => x.mean);
  return { mean: mean(m), std: std(m), n: s.length };
}

export function fmtStat(s: Stat | PaperValue | null): string {
  if (!s) return DASH;
  if (s.std === undefined || s.std === null) return s.mean.toFixed(1);
  const d = s.std < 0.095 ? 2 : 1; // the paper's convention: 23.57±0.05 but 28.1±0.5
  return `${s.mean.toFixed(d)}±${s.std.toFixed(d)}`;
}
/** "ours (paper)", both printed as the paper prints: one decimal, two when the std is below 0.1. */
export const fmtCell = (c: Cell) => `${fmtStat(c.ours)} (${fmtStat(c.paper)})`;
export const hasOurs = (t: Table) => t.rows.some((r) => r.cells.some((c) => c.ours));

export function toMarkdown(t: Table): string {
  const head = [...t.rowHeader, ...t.columns];
  const lines = [`### ${t.title}`, '', `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < t.rowHeader.length ? '---' : '---:')).join('|')}|`];
  for (const r of t.rows) lines.push(`| ${[...r.labels, ...r.cells.map((c) => (t.oursOnly ? fmtStat(c.ours) : fmtCell(c)))].join(' | ')} |`);
  lines.push('', t.oursOnly ? 'Cells: ours; "—" = not computed.' : 'Cells: ours (paper); "—" = not measured (ours) or not in the paper.');
  t.notes.forEach((n, i) => lines.push(`${i === 0 ? '\n' : ''}${i + 1}. ${n}`));
  return lines.join('\n') + '\n';
}

const csvField = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
const num = (x: number | undefined | null) => (x === undefined || x === null ? '' : String(+x.toFixed(4)));
/** Long format, one line per cell: easy to load elsewhere. */
export function toCsv(t: Table): string {
  const lines = [['table', ...t.rowHeader.map((h) => `row_${h.toLowerCase().replace(/\W+/g, '_')}`), 'column', 'ours', 'ours_std', 'ours_n', 'paper', 'paper_std'].join(',')];
  for (const r of t.rows)
    r.cells.forEach((c, j) =>
      lines.push([t.id, ...r.labels, t.columns[j], num(c.ours?.mean), num(c.ours?.std), num(c.ours?.n), num(c.paper?.mean), num(c.paper?.std)].map(csvField).join(',')),
    );
  return lines.join('\n') + '\n';
}

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
export function toHtml(t: Table): string {
  const th = [...t.rowHeader, ...t.columns].map((h) => `<th>${esc(h)}</th>`).join('');
  const cell = (c: Cell) => `<td><b>${esc(fmtStat(c.ours))}</b>${t.oursOnly ? '' : ` <span class="paper">(${esc(fmtStat(c.paper))})</span>`}</td>`;
  const trs = t.rows.map((r) => `<tr>${r.labels.map((l) => `<th>${esc(l)}</th>`).join('')}${r.cells.map(cell).join('')}</tr>`).join('\n');
  const notes = t.notes.length ? `<ol class="notes">${t.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ol>` : '';
  return `<h3>${esc(t.title)}</h3>\n<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>\n${notes}\n`;
}

/**
 * A table of pre-formatted text (the findings and the twin comparison, whose cells hold intervals
 * and per-seed lists rather than one "ours (paper)" value), with what the reader needs before it.
 */
export interface TextTable {
  title: string;
  intro: string[]; // paragraphs above the table (the verdict rule)
  head: string[];
  rows: string[][];
  notes: string[];
}
export function textMarkdown(t: TextTable): string {
  const lines = [`### ${t.title}`, '', ...t.intro.flatMap((p) => [p, '']), `| ${t.head.join(' | ')} |`, `|${t.head.map(() => '---').join('|')}|`];
  for (const r of t.rows) lines.push(`| ${r.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`);
  t.notes.forEach((n, i) => lines.push(`${i === 0 ? '\n' : ''}${i + 1}. ${n}`));
  return lines.join('\n') + '\n';
}
// esc'd text with the markdown bold the verdicts use (**holds**) as <b>
const inline = (s: string) => esc(s).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>');
export function textHtml(t: TextTable): string {
  const th = t.head.map((h) => `<th>${esc(h)}</th>`).join('');
  const trs = t.rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th>${inline(c)}</th>` : `<td>${inline(c)}</td>`)).join('')}</tr>`).join('\n');
  const notes = t.notes.length ? `<ol class="notes">${t.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ol>` : '';
  return `<h3>${esc(t.title)}</h3>\n${t.intro.map((p) => `<p>${inline(p)}</p>`).join('\n')}\n<table><thead><tr>${th}</tr></thead><tbody>\n${trs}\n</tbody></table>\n${notes}\n`;
}
