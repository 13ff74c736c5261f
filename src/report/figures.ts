// The paper's figures from run CSVs: a vega-lite spec per figure, rendered headless in Node
// (vega View.toSVG, no browser) and rasterised by sharp. Figs. 5-6 reuse the table builder so the
// plotted numbers are exactly the reported ones; the paper's values appear as a faint series.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import sharp from 'sharp';
import { readTrace, type Run } from './runs.js';
import { buildTable } from './tables.js';

export const FIG_IDS = ['2', '3', '4', '5', '6'] as const;
export type FigId = (typeof FIG_IDS)[number];
export interface Figure {
  name: string; // file stem, e.g. fig5 or fig2-s1.b1.bn1-c0
  title: string;
  spec: TopLevelSpec;
}

const base = (title: string, subtitle: string) => ({
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: { text: title, subtitle, anchor: 'start' as const, fontSize: 15, subtitleFontSize: 11, subtitleColor: '#555' },
  width: 520,
  height: 300,
  background: 'white',
  config: { axis: { labelFontSize: 12, titleFontSize: 13, grid: true, gridColor: '#eee' }, legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 400, symbolStrokeWidth: 2.5, symbolOpacity: 1 } },
});
// A legend that shows the dash pattern (a grey line), not the filled dot of the line's points.
const LINE_LEGEND = { symbolType: 'stroke', symbolSize: 400, encode: { symbols: { update: { stroke: { value: '#444' }, fill: { value: 'transparent' } } } } } as const;
const ERR = { title: 'error (%)', type: 'quantitative' as const, scale: { zero: false } };

function fig2(run: Run): Figure[] {
  const rows = readTrace(run.tracePath!);
  const keys = [...new Set(rows.map((r) => `${r.layer}\t${r.channel}`))];
  const names = { ema: 'EMA', batch: 'batch means (current model)', population: 'population mean' } as Record<string, string>;
  return keys.map((k) => {
    const [layer, ch] = k.split('\t');
    const values = rows.filter((r) => r.layer === layer && String(r.channel) === ch).map((r) => ({ iter: r.iter, value: r.value, series: names[r.kind] ?? r.kind }));
    const color = { field: 'series', type: 'nominal', title: null, scale: { domain: Object.values(names), range: ['#d62728', '#9e9e9e', '#1f77b4'] } } as const;
    const x = { field: 'iter', type: 'quantitative', title: 'SGD iteration' } as const;
    const y = { field: 'value', type: 'quantitative', title: `BN mean, ${layer} channel ${ch}`, scale: { zero: false } } as const;
    return {
      name: `fig2-${layer}-c${ch}`,
      title: `Fig. 2 — ${layer} channel ${ch}`,
      spec: {
        ...base(`Fig. 2 — EMA vs the current model's batch means (${layer}, channel ${ch})`, `run ${run.name}; batch means: one dot per batch; population mean = their average`),
        data: { values },
        layer: [
          { transform: [{ filter: "datum.series === 'batch means (current model)'" }], mark: { type: 'point', filled: true, size: 14, opacity: 0.35 }, encoding: { x, y, color } },
          { transform: [{ filter: "datum.series !== 'batch means (current model)'" }], mark: { type: 'line', point: { size: 25 }, strokeWidth: 2 }, encoding: { x, y, color } },
        ],
      } as TopLevelSpec,
    };
  });
}

function curves(runs: Run[], fig: '3' | '4'): Figure {
  const values = runs.flatMap((r) =>
    r.metrics.flatMap((m) =>
      [
        ['val, EMA', m.val_err_ema],
        ['val, PreciseBN', m.val_err_precise],
        ...(fig === '3' ? [['train (augmented, batch stats)', m.train_err] as const] : []),
      ]
        .filter(([, v]) => v !== null && v !== undefined)
        .map(([series, err]) => ({ epoch: m.epoch, err, series, run: `batch ${r.batch}, NBS ${r.nbs}` })),
    ),
  );
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } } as const;
  const runNames = runs.map((r) => `batch ${r.batch}, NBS ${r.nbs}`); // legend in batch order, not alphabetical
  const enc =
    fig === '3'
      ? { x, y: { field: 'err', ...ERR }, color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['val, EMA', 'val, PreciseBN', 'train (augmented, batch stats)'], range: ['#ff7f0e', '#1f77b4', '#7f7f7f'] } } }
      : {
          x,
          y: { field: 'err', ...ERR },
          color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: runNames } },
          strokeDash: { field: 'series', type: 'nominal', title: 'statistics', scale: { domain: ['val, PreciseBN', 'val, EMA'], range: [[1, 0], [5, 3]] }, legend: LINE_LEGEND },
        };
  const sub = fig === '3' ? `run ${runs[0].name} (batch ${runs[0].batch}, NBS ${runs[0].nbs}); paper: ResNet-50, ImageNet, batch 256` : `runs: ${runs.map((r) => r.name).join(', ')}; paper: batch 256 and 8192`;
  return {
    name: `fig${fig}`,
    title: fig === '3' ? 'Fig. 3 — validation error with EMA and PreciseBN' : 'Fig. 4 — EMA vs PreciseBN, small and large batch',
    spec: {
      ...base(fig === '3' ? 'Fig. 3 — per-epoch error: validation with EMA and PreciseBN, and training' : 'Fig. 4 — validation error with EMA (dashed) and PreciseBN (solid)', sub),
      data: { values },
      mark: { type: 'line', point: { size: 30 }, strokeWidth: 2 },
      encoding: enc,
    } as TopLevelSpec,
  };
}

function fig56(runs: Run[], fig: '5' | '6'): Figure {
  const t = buildTable(fig === '5' ? 'fig5' : 'fig6', runs);
  const values = t.rows.flatMap((r) =>
    r.cells.flatMap((c, j) => {
      const nbs = Number(t.columns[j]);
      const out = [];
      if (c.ours) out.push({ nbs, err: c.ours.mean, series: r.labels[0], source: 'ours' });
      if (c.paper) out.push({ nbs, err: c.paper.mean, series: r.labels[0], source: 'paper (ImageNet)' });
      return out;
    }),
  );
  const nbsVals = [...new Set(values.map((v) => v.nbs))].sort((a, b) => a - b);
  const src = { domain: ['ours', 'paper (ImageNet)'] };
  return {
    name: `fig${fig}`,
    title: fig === '5' ? 'Fig. 5 — error vs normalization batch size' : 'Fig. 6 — fixes for train/test inconsistency',
    spec: {
      ...base(fig === '5' ? 'Fig. 5 — error vs normalization batch size (NBS)' : 'Fig. 6 — mini-batch stats at inference and FrozenBN vs NBS', t.notes[0]),
      data: { values },
      mark: { type: 'line', point: { size: 30 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'nbs', type: 'quantitative', title: 'normalization batch size (log2)', scale: { type: 'log', base: 2, nice: false }, axis: { values: nbsVals, format: 'd' } },
        y: { field: 'err', ...ERR },
        color: { field: 'series', type: 'nominal', title: null, scale: { domain: t.rows.map((r) => r.labels[0]) } },
        strokeDash: { field: 'source', type: 'ordinal', title: null, scale: { ...src, range: [[1, 0], [4, 3]] }, legend: LINE_LEGEND },
        opacity: { field: 'source', type: 'ordinal', title: null, scale: { ...src, range: [1, 0.3] } },
      },
    } as TopLevelSpec,
  };
}

/** Runs for Figs. 3-4: regular BN, one per batch size, NBS nearest the paper's 32. */
function curveRuns(runs: Run[]): Run[] {
  const reg = runs.filter((r) => r.frozen === 0 && r.metrics.length);
  const byBatch = new Map<number, Run>();
  const d = (r: Run) => Math.abs(Math.log2(r.nbs / 32));
  for (const r of reg) if (!byBatch.has(r.batch) || d(r) < d(byBatch.get(r.batch)!)) byBatch.set(r.batch, r);
  return [...byBatch.values()].sort((a, b) => a.batch - b.batch);
}

/** The figures that can be drawn from these runs, with a reason for each one that cannot. */
export function buildFigures(runs: Run[], which: FigId[]): { figures: Figure[]; skipped: string[] } {
  const figures: Figure[] = [];
  const skipped: string[] = [];
  for (const f of which) {
    if (f === '2') {
      const r = runs.find((x) => x.tracePath);
      r ? figures.push(...fig2(r)) : skipped.push('Fig. 2: no bn_trace.csv (set trace.layers in the config)');
    } else if (f === '3' || f === '4') {
      const rs = curveRuns(runs);
      if (!rs.length) skipped.push(`Fig. ${f}: no run with metrics.csv`);
      else if (f === '4' && rs.length < 2) skipped.push('Fig. 4: needs runs of two batch sizes');
      else figures.push(curves(f === '3' ? rs.slice(0, 1) : rs, f));
    } else {
      const fig = fig56(runs, f);
      const hasOurs = (fig.spec as { data: { values: { source: string }[] } }).data.values.some((v) => v.source === 'ours');
      hasOurs ? figures.push(fig) : skipped.push(`Fig. ${f}: no run of an NBS sweep${f === '6' ? ' or FrozenBN' : ''} with the needed metrics`);
    }
  }
  return { figures, skipped };
}

export interface Rendered {
  svg: string;
  png: Buffer;
  legend: string[]; // legend labels as drawn: tests count series with them
}
export async function render(fig: Figure): Promise<Rendered> {
  const view = new vega.View(vega.parse(compile(fig.spec).spec), { renderer: 'none' });
  await view.runAsync();
  const svg = await view.toSVG();
  const legend: string[] = [];
  const walk = (n: any) => {
    if (!n || typeof n !== 'object') return;
    if (n.role === 'legend-label') for (const it of n.items ?? []) legend.push(String(it.text));
    for (const c of n.items ?? []) walk(c);
  };
  walk((view.scenegraph() as any).root);
  view.finalize();
  // vega estimates text widths without a canvas (generously), so trim the blank margin it leaves.
  const png = await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#fff' }).trim({ threshold: 5 }).extend({ top: 16, bottom: 16, left: 16, right: 16, background: '#fff' }).png().toBuffer();
  return { svg, png, legend };
}
