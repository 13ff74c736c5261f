// `bnlab report`: the paper's tables with our numbers beside the paper's, from run folders.
import { ConfigError } from '../config/load.js';
import { writeOutput } from '../run/checkpoint.js';
import { join } from 'node:path';
import type { Command } from 'commander';
import { allTables, htmlReport, markdownReport, runsFor } from '../report/report.js';
import { findRuns } from '../report/runs.js';
import { hasOurs, toCsv, toHtml, toMarkdown } from '../report/table.js';
import { buildTable, TABLE_IDS, type TableId } from '../report/tables.js';

interface Opts {
  table?: string;
  format: string;
  all?: boolean;
  html?: boolean;
  out?: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description("the paper's tables (each cell: ours (paper)) from run folders or a results folder of run folders")
    .argument('<dirs...>', 'run folders, or folders holding them (searched up to three levels down)')
    .option('-t, --table <id>', `one table: ${TABLE_IDS.join('|')}`)
    .option('-f, --format <fmt>', 'md | csv | html (with --table)', 'md')
    .option('--all', 'every table that can be built, into <dir>/report.md (what `bnlab report DIR` does without --table)')
    .option('--html', 'one self-contained HTML page with tables and figures, into <dir>/report.html')
    .option('-o, --out <file>', 'write here instead (default: stdout for --table, <first dir>/report.{md,html} otherwise)')
    .addHelpText('after', '\nIn a results folder laid out as <experiment>/<run>/, an experiment folder named after a table\n(table1, table2, fig5/fig6/nbs/frozen, table4/domain, fig8/leak) feeds only that table.')
    .action(async (dirs: string[], o: Opts) => {
      const runs = findRuns(dirs, (m) => process.stderr.write(`bnlab: ${m}\n`));
      if (!runs.length) throw new Error(`no run folders (with config.yaml) under ${dirs.join(', ')}`);
      if (o.all || o.html || o.table === undefined) {
        const path = o.out ?? join(dirs[0], o.html ? 'report.html' : 'report.md');
        if (o.html) writeOutput(path, await htmlReport(dirs.join(', '), runs));
        else writeOutput(path, markdownReport(dirs.join(', '), runs));
        const { tables, skipped } = allTables(runs);
        process.stdout.write(`wrote ${path} (${runs.length} runs): ${tables.map((t) => t.id).join(', ') || 'no tables'}\n`);
        for (const s of skipped) process.stdout.write(`not built: ${s.id}: ${s.why}\n`);
        return;
      }
      if (!o.table || !(TABLE_IDS as readonly string[]).includes(o.table)) throw new ConfigError(`--table must be one of ${TABLE_IDS.join(', ')} (or use --all / --html)`);
      const t = buildTable(o.table as TableId, runsFor(o.table as TableId, runs));
      if (!hasOurs(t)) process.stderr.write(`bnlab: warning: no measurement of ours for ${o.table} in these runs; showing the paper's numbers only\n`);
      const text = o.format === 'csv' ? toCsv(t) : o.format === 'html' ? toHtml(t) : toMarkdown(t);
      if (o.out) writeOutput(o.out, text);
      else process.stdout.write(text);
    });
}

