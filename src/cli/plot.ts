// `bnlab plot`: the paper's figures (SVG + PNG) regenerated from run CSVs.
import { ConfigError } from '../config/load.js';
import { existsSync, statSync } from 'node:fs';
import { writeOutput } from '../run/checkpoint.js';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildFigures, FIG_IDS, render, variantFigures, type FigId } from '../report/figures.js';
import { runsFor } from '../report/report.js';
import { findRuns } from '../report/runs.js';
import { variantsOf } from '../report/variant.js';

export function registerPlot(program: Command): void {
  program
    .command('plot')
    .description("the paper's figures 2-6 and 8 as SVG and PNG from run folders (Figs. 5-6 with the paper's numbers as a faint series; a changed regime's runs, report.roles fig5-6.variant, as fig5-variant / fig6-variant)")
    .argument('<dirs...>', 'run folders, or folders holding them (searched up to three levels down)')
    .option('--fig <n>', `${FIG_IDS.join('|')}|all`, 'all')
    .option('-o, --out <dir>', 'output folder (default <first dir>/figures)')
    .action(async (dirs: string[], o: { fig: string; out?: string }) => {
      const which = o.fig === 'all' ? [...FIG_IDS] : o.fig.split(',').map((s) => s.trim());
      const bad = which.filter((f) => !(FIG_IDS as readonly string[]).includes(f));
      if (bad.length) throw new ConfigError(`--fig ${bad.join(',')}: use ${FIG_IDS.join(', ')} or all`);
      const out = o.out ?? join(dirs[0], 'figures');
      if (existsSync(out) && !statSync(out).isDirectory()) throw new ConfigError(`--out ${out} is a file; plot writes one SVG and one PNG per figure into a folder: pass a folder`);
      const runs = findRuns(dirs, (m) => process.stderr.write(`bnlab: ${m}\n`));
      if (!runs.length) throw new Error(`no run folders (with config.yaml) under ${dirs.join(', ')}`);
      const built = (which as FigId[]).map((f) => buildFigures(runsFor(`f${f}`, runs), [f]));
      // a changed regime of Figs. 5-6 (report.roles fig5-6.variant) as figures of its own
      const variants = variantsOf(runsFor('f5', runs), runsFor('fig56variant', runs));
      if (variants.length) built.push(variantFigures(variants, which as FigId[]));
      const skipped = built.flatMap((b) => b.skipped);
      if (!built.some((b) => b.figures.length)) throw new Error(`nothing drawn from ${dirs.join(', ')}:\n  ${skipped.join('\n  ')}`);
      for (const s of skipped) process.stderr.write(`bnlab: skipped ${s}\n`);
      for (const fig of built.flatMap((b) => b.figures)) {
        const r = await render(fig);
        writeOutput(join(out, `${fig.name}.svg`), r.svg);
        writeOutput(join(out, `${fig.name}.png`), r.png);
        process.stdout.write(`wrote ${join(out, fig.name)}.{svg,png}  (${r.legend.length} legend entries)\n`);
        for (const n of fig.notes ?? []) process.stderr.write(`bnlab: ${fig.title.split(' — ')[0]}: ${n}\n`);
      }
    });
}

