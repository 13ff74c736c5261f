// The paper's figures from run CSVs: a vega-lite spec per figure, rendered headless in Node
// (vega View.toSVG, no browser) and rasterised by sharp. Figs. 5-6 reuse the table builder so the
// plotted numbers are exactly the reported ones; the paper's values appear as a faint series.
import type { TopLevelSpec } from 'vega-lite';
import { sharp } from '../util/sharp.js';
import { readTrace, recipeOf, type Run } from './runs.js';
import { buildTable, compositionLabel, divergedAt, fig8Runs, isPatterned, leftOutOfSweep, nbsSweep } from './tables.js';
import { FIG8 } from './paper.js';
import { MODE_FACTS } from '../bn/columns.js';

export const FIG_IDS = ['2', '3', '4', '5', '6', '8'] as const;
export type FigId = (typeof FIG_IDS)[number];
export interface Figure {
  name: string; // file stem, e.g. fig5 or fig2-s1.b1.bn1-c0
  title: string;
  spec: TopLevelSpec;
  notes?: string[]; // runs the figure leaves out and why (also in its subtitle)
}

/** Words to lines of at most `width` characters (vega does not wrap titles). */
export function wrap(text: string, width = 125): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (cur && cur.length + 1 + w.length > width) lines.push(cur), (cur = w);
    else cur = cur ? `${cur} ${w}` : w;
  }
  return cur ? [...lines, cur] : lines;
}
const base = (title: string, subtitle: string | string[]) => ({
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: { text: title, subtitle: (Array.isArray(subtitle) ? subtitle : [subtitle]).flatMap((l) => wrap(l)), anchor: 'start' as const, fontSize: 15, subtitleFontSize: 11, subtitleColor: '#555' },
  width: 520,
  height: 300,
  background: 'white',
  config: { axis: { labelFontSize: 12, titleFontSize: 13, grid: true, gridColor: '#eee' }, legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 400, symbolStrokeWidth: 2.5, symbolOpacity: 1 } },
});
// A legend that shows the dash pattern (a grey line), not the filled dot of the line's points.
const LINE_LEGEND = { symbolType: 'stroke', symbolSize: 400, encode: { symbols: { update: { stroke: { value: '#444' }, fill: { value: 'transparent' } } } } } as const;
const ERR = { title: 'error (%)', type: 'quantitative' as const, scale: { zero: false } };

/** A round tick step (1, 2 or 5 times a power of ten) giving about `count` ticks over [lo, hi]. */
function tickStep(lo: number, hi: number, count = 6): number {
  const raw = Math.max(hi - lo, 1) / count; // errors in %: a span under a point is shown as one point
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return p * (f >= 7.07 ? 10 : f >= 3.16 ? 5 : f >= 1.41 ? 2 : 1);
}
/**
 * An error axis whose ends are ticks beyond the data: vega's own "nice" domain can end
 * exactly at the largest value (or a hair below it), leaving that point on the frame with no
 * tick above it.
 */
export function errAxis(values: number[]): { domain: [number, number]; ticks: number[] } {
  const [lo, hi] = values.length ? [Math.min(...values), Math.max(...values)] : [0, 100];
  const step = tickStep(lo, hi);
  // at least a tenth of a step between the data and the frame, so no point's marker touches it
  const top = Math.ceil(hi / step + 0.1) * step;
  const bottom = Math.max(0, Math.floor(lo / step - 0.1) * step);
  const ticks = Array.from({ length: Math.round((top - bottom) / step) + 1 }, (_, i) => +(bottom + i * step).toFixed(10));
  return { domain: [+bottom.toFixed(10), +top.toFixed(10)], ticks };
}
const errY = (field: string, values: number[]) => {
  const { domain, ticks } = errAxis(values);
  return { field, ...ERR, scale: { domain, nice: false, zero: false }, axis: { values: ticks } };
};

/** Quantile q of sorted values, linear interpolation between order statistics (numpy's default). */
function quantile(sorted: number[], q: number): number {
  const h = (sorted.length - 1) * q;
  const i = Math.floor(h);
  return i + 1 < sorted.length ? sorted[i] + (h - i) * (sorted[i + 1] - sorted[i]) : sorted[i];
}

/**
 * Fig. 2. The batch means of each trace point (100 in the paper's protocol) are drawn as their
 * spread: a thin rule from the smallest to the largest and a thick one over the middle half
 * (quartiles), not one dot each (2,200 dots made a 770 KB SVG). The EMA and the population mean
 * (the average of the batch means, as traced) are lines.
 */
function fig2(run: Run): Figure[] {
  const rows = readTrace(run.tracePath!);
  const keys = [...new Set(rows.map((r) => `${r.layer}\t${r.channel}`))];
  const SPREAD = 'batch means: min–max, quartiles';
  const names = { ema: 'EMA', batch: SPREAD, population: 'population mean' } as Record<string, string>;
  return keys.map((k) => {
    const [layer, ch] = k.split('\t');
    const mine = rows.filter((r) => r.layer === layer && String(r.channel) === ch);
    const lines = mine.filter((r) => r.kind !== 'batch').map((r) => ({ iter: r.iter, value: r.value, series: names[r.kind] ?? r.kind }));
    const byIter = new Map<number, number[]>();
    for (const r of mine) if (r.kind === 'batch') byIter.set(r.iter, [...(byIter.get(r.iter) ?? []), r.value]);
    const spread = [...byIter].map(([iter, vs]) => {
      const s = [...vs].sort((a, b) => a - b);
      return { iter, min: s[0], q1: quantile(s, 0.25), q3: quantile(s, 0.75), max: s[s.length - 1], n: s.length, series: SPREAD };
    });
    const counts = [...new Set(spread.map((p) => p.n))].sort((a, b) => a - b);
    const perPoint = counts.length === 1 ? `${counts[0]}` : `${counts[0]}-${counts[counts.length - 1]}`;
    const color = { field: 'series', type: 'nominal', title: null, scale: { domain: Object.values(names), range: ['#d62728', '#9e9e9e', '#1f77b4'] } } as const;
    const x = { field: 'iter', type: 'quantitative', title: 'SGD iteration' } as const;
    const yTitle = `BN mean, ${layer} channel ${ch}`;
    const y = { field: 'value', type: 'quantitative', title: yTitle, scale: { zero: false } } as const;
    const ySpread = (lo: string, hi: string) => ({ y: { field: lo, type: 'quantitative', title: yTitle, scale: { zero: false } }, y2: { field: hi } }) as const;
    return {
      name: `fig2-${layer}-c${ch}`,
      title: `Fig. 2 — ${layer} channel ${ch}, seed ${run.config.seed ?? 0}`,
      spec: {
        ...base(
          `Fig. 2 — EMA vs the current model's batch means (${layer}, channel ${ch}; seed ${run.config.seed ?? 0})`,
          `run ${run.name} (one seed of its recipe: the trace is one training's); grey: the spread of the current model's ${perPoint} batch means at each point (thin: min–max, thick: middle half); population mean = their average`,
        ),
        layer: [
          { data: { values: spread }, mark: { type: 'rule', strokeWidth: 1.5, opacity: 0.7 }, encoding: { x, ...ySpread('min', 'max'), color } },
          { data: { values: spread }, mark: { type: 'rule', strokeWidth: 6, opacity: 0.7 }, encoding: { x, ...ySpread('q1', 'q3'), color } },
          { data: { values: lines }, mark: { type: 'line', point: { size: 25 }, strokeWidth: 2 }, encoding: { x, y, color } },
        ],
      } as TopLevelSpec,
    };
  });
}

/** Per-epoch mean of a metrics column over a recipe's seeds (epochs any of them has). */
function seedMean(rs: Run[], col: string): { epoch: number; err: number }[] {
  const at = new Map<number, number[]>();
  for (const run of rs) for (const m of run.metrics) if (m.epoch !== null && m[col] !== null && m[col] !== undefined) at.set(m.epoch, [...(at.get(m.epoch) ?? []), m[col] as number]);
  return [...at].sort(([a], [b]) => a - b).map(([epoch, vs]) => ({ epoch, err: vs.reduce((a, b) => a + b, 0) / vs.length }));
}

function curves(groups: Run[][], fig: '3' | '4', left: Run[] = []): Figure {
  const runs = groups.map((g) => g[0]);
  const label = (g: Run[]) => `batch ${g[0].batch}, NBS ${g[0].nbs}`;
  const series: [string, string][] = [['val, EMA', MODE_FACTS.ema.valColumn], ['val, PreciseBN', MODE_FACTS.precise.valColumn], ...(fig === '3' ? [['train (augmented, batch stats)', 'train_err'] as [string, string]] : [])];
  const values = groups.flatMap((g) => series.flatMap(([name, col]) => seedMean(g, col).map((p) => ({ ...p, series: name, run: label(g) }))));
  // each seed's own curve, thin, under the mean: with few seeds the spread is the seeds themselves
  const perSeed = groups.filter((g) => g.length > 1).flatMap((g) =>
    g.flatMap((run) => series.flatMap(([name, col]) => seedMean([run], col).map((p) => ({ ...p, series: name, run: label(g), seed: run.name })))),
  );
  const seeds = (g: Run[]) => (g.length > 1 ? `${g.map((run) => run.name).join(', ')} (thick: mean of ${g.length} seeds; thin: each seed)` : g[0].name);
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } } as const;
  const runNames = groups.map(label); // legend in batch order, not alphabetical
  const enc =
    fig === '3'
      ? { x, y: errY('err', [...values, ...perSeed].map((v) => v.err as number)), color: { field: 'series', type: 'nominal', title: null, scale: { domain: ['val, EMA', 'val, PreciseBN', 'train (augmented, batch stats)'], range: ['#ff7f0e', '#1f77b4', '#7f7f7f'] } } }
      : {
          x,
          y: errY('err', [...values, ...perSeed].map((v) => v.err as number)),
          color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: runNames } },
          strokeDash: { field: 'series', type: 'nominal', title: 'statistics', scale: { domain: ['val, PreciseBN', 'val, EMA'], range: [[1, 0], [5, 3]] }, legend: LINE_LEGEND },
        };
  const sub = fig === '3' ? `run ${seeds(groups[0])} (batch ${runs[0].batch}, NBS ${runs[0].nbs}); paper: ResNet-50, ImageNet, batch 256` : `runs: ${groups.map(seeds).join('; ')}; paper: batch 256 and 8192`;
  const notes = left.length ? [`Left out: ${left.map((run) => `${run.name} (batch ${run.batch}, NBS ${run.nbs}${run.frozen ? ', FrozenBN' : ''})`).join(', ')}: one regular-BN run per total batch, the NBS nearest the paper's 32.`] : [];
  return {
    name: `fig${fig}`,
    title: fig === '3' ? 'Fig. 3 — validation error with EMA and PreciseBN' : 'Fig. 4 — EMA vs PreciseBN, small and large batch',
    notes,
    spec: {
      ...base(fig === '3' ? 'Fig. 3 — per-epoch error: validation with EMA and PreciseBN, and training' : 'Fig. 4 — validation error with EMA (dashed) and PreciseBN (solid)', [sub, ...notes]),
      layer: [
        ...(perSeed.length ? [{ data: { values: perSeed }, mark: { type: 'line', strokeWidth: 1, opacity: 0.45 }, encoding: { ...enc, detail: { field: 'seed' } } }] : []),
        { data: { values }, mark: { type: 'line', point: { size: 30 }, strokeWidth: 2.2 }, encoding: enc },
      ],
    } as TopLevelSpec,
  };
}

const DIVERGED = 'diverged (clipped at the top)';

/**
 * Figs. 5-6, from the same table the report prints. A diverged run (error >= 85% of chance level,
 * see divergedAt) would stretch the y-axis to chance and squash the rest, so the y domain fits the
 * other values (ours and the paper's) and a diverged point is drawn at the top edge as a triangle
 * labelled "diverged 89.7%": clipped, not hidden.
 */
function fig56(runs: Run[], fig: '5' | '6'): Figure {
  const t = buildTable(fig === '5' ? 'fig5' : 'fig6', runs);
  const { batch, sweep, frozen } = nbsSweep(runs);
  const limit = divergedAt(fig === '6' ? [...sweep, ...frozen] : sweep);
  // Ours only at the NBS we measured, as points with bars (± std over seeds): a line between them
  // would draw values at NBS never run. Points of one NBS are spread a little sideways (in log2
  // units) so their bars do not hide each other. The paper's curve was measured at every NBS.
  const dodge = (k: number) => 2 ** ((k - (t.rows.length - 1) / 2) * 0.06);
  const values = t.rows.flatMap((r, k) =>
    r.cells.flatMap((c, j) => {
      const nbs = Number(t.columns[j]);
      const out = [];
      const sd = c.ours?.std ?? 0;
      if (c.ours) out.push({ nbs, x: nbs * dodge(k), err: c.ours.mean, y: c.ours.mean, lo: c.ours.mean - sd, hi: c.ours.mean + sd, series: r.labels[0], source: 'ours', diverged: c.ours.mean >= limit });
      if (c.paper) out.push({ nbs, x: nbs, err: c.paper.mean, y: c.paper.mean, lo: c.paper.mean, hi: c.paper.mean, series: r.labels[0], source: 'paper (ImageNet)', diverged: false });
      return out;
    }),
  );
  const nbsVals = [...new Set(values.map((v) => v.nbs))].sort((a, b) => a - b);
  const kept = values.filter((v) => !v.diverged).flatMap((v) => [v.lo, v.hi]);
  const gone = values.filter((v) => v.diverged);
  const y = errY('y', kept.length ? kept : values.map((v) => v.err));
  const marks: { nbs: number; x: number; y: number; labelY: number; label: string; series: string; marker: string; right: boolean }[] = [];
  if (gone.length && kept.length) {
    const domain = y.scale.domain;
    const top = domain[1];
    const step = 0.07 * (domain[1] - domain[0]);
    gone.forEach((v) => {
      v.y = top;
      const k = marks.filter((m) => m.nbs === v.nbs).length; // stack labels of points at one NBS
      marks.push({ nbs: v.nbs, x: v.x, y: top, labelY: top - k * step, label: `diverged ${v.err.toFixed(1)}%`, series: v.series, marker: DIVERGED, right: v.nbs === nbsVals[nbsVals.length - 1] });
    });
  }
  const x = { field: 'x', type: 'quantitative', title: 'normalization batch size (log2)', scale: { type: 'log', base: 2, nice: false }, axis: { values: nbsVals, format: 'd' } } as const;
  const color = { field: 'series', type: 'nominal', title: null, scale: { domain: t.rows.map((r) => r.labels[0]) } } as const;
  const frozenEpochs = [...new Set(frozen.map((run) => `last ${run.frozen} of ${run.epochs} epochs`))];
  const leftOut = leftOutOfSweep(runs, fig === '5' ? 'fig5' : 'fig6');
  // NBS in parentheses unless the run's name already says it (nbs32, nbs-32)
  const used = fig === '6' ? [...sweep, ...frozen] : sweep;
  const dirs = new Set(used.map((run) => run.name.slice(0, run.name.lastIndexOf('/') + 1)));
  const dir = dirs.size === 1 ? [...dirs][0] : ''; // a common folder is named once
  const names = (rs: Run[]) =>
    rs.map((run) => (new RegExp(`nbs[-_=]?${run.nbs}(?!\\d)`, 'i').test(run.name) ? run.name : `${run.name} (NBS ${run.nbs})`).slice(dir.length)).join(', ') || '—';
  const subtitle = [
    `Ours: total batch ${batch ?? '—'} (paper 1024), last epoch of each run: points at the NBS we ran, bars ± std over seeds (over a single run's evaluation repeats where there is one run); faint dashed lines: the paper (ImageNet, read off a plot).`,
    `Regular BN runs${dir ? ` in ${dir}` : ''}, by NBS: ${names(sweep)}.`,
    ...(fig === '6' ? [`FrozenBN runs${dir ? ` in ${dir}` : ''} (${frozenEpochs.join(', ') || '—'}; paper: last 20 of 100), by NBS: ${names(frozen)}.`] : []),
    ...(marks.length ? [`Diverged = error ≥ ${+limit.toFixed(1)}% (85% of chance level): drawn as a triangle at the top edge, its value in the label.`] : []),
    ...(leftOut ? [leftOut] : []),
  ];
  const textMark = (right: boolean) => ({
    data: { values: marks.filter((m) => m.right === right) },
    // at the right edge: left of the marker, just above the plot (the line climbs to it from the lower left)
    mark: { type: 'text', align: right ? 'right' : 'left', baseline: right ? 'bottom' : 'top', dx: right ? -12 : 10, dy: right ? -2 : 2, fontSize: 12, fontWeight: 'bold' },
    encoding: { x, y: { ...y, field: 'labelY' }, text: { field: 'label' }, color },
  });
  return {
    name: `fig${fig}`,
    title: fig === '5' ? 'Fig. 5 — error vs normalization batch size' : 'Fig. 6 — fixes for train/test inconsistency',
    notes: leftOut ? [leftOut] : [],
    spec: {
      ...base(fig === '5' ? 'Fig. 5 — error vs normalization batch size (NBS)' : 'Fig. 6 — mini-batch stats at inference and FrozenBN vs NBS', subtitle),
      layer: [
        {
          data: { values },
          transform: [{ filter: "datum.source !== 'ours'" }],
          mark: { type: 'line', point: { size: 18 }, strokeWidth: 2, strokeDash: [4, 3], opacity: 0.35 },
          encoding: { x, y, color },
        },
        { data: { values }, transform: [{ filter: "datum.source === 'ours' && !datum.diverged" }], mark: { type: 'rule', strokeWidth: 1.8 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
        { data: { values }, transform: [{ filter: "datum.source === 'ours'" }], mark: { type: 'point', filled: true, size: 55, opacity: 1 }, encoding: { x, y, color } },
        ...(marks.length
          ? [
              {
                data: { values: marks },
                mark: { type: 'point', filled: true, size: 170, stroke: '#000', strokeWidth: 1, opacity: 1 },
                encoding: { x, y: { ...y, field: 'y' }, color, shape: { field: 'marker', type: 'nominal', title: null, scale: { domain: [DIVERGED], range: ['triangle-up'] } } },
              },
              ...[false, true].filter((r) => marks.some((m) => m.right === r)).map(textMark),
            ]
          : []),
      ],
    } as TopLevelSpec,
  };
}

/**
 * Fig. 8: per epoch, validation error of the patterned model with mini-batch statistics of test
 * groups composed like training's, of random test groups, and with PreciseBN (seeds averaged,
 * their spread as a band); the paper's epoch-100 values as marks at the right edge. A control
 * trained on random groups, where there is one, is a dashed grey line: its PreciseBN error, what
 * the same recipe reaches without a pattern to read.
 */
function fig8(patterned: Run[], controls: Run[]): Figure {
  const CONTROL = 'control (random groups): PreciseBN';
  // a control without per-epoch PreciseBN (precise.every_epoch off) has no line: no legend entry
  const control = controls.filter((run) => run.metrics.some((m) => typeof m[MODE_FACTS.precise.valColumn] === 'number'));
  const SERIES = [
    ['mini-batch, composed test groups', MODE_FACTS.composed.valColumn, FIG8.composed, patterned],
    ['mini-batch, random test groups', MODE_FACTS.minibatch.valColumn, FIG8.random, patterned],
    ['PreciseBN (population)', MODE_FACTS.precise.valColumn, FIG8.precise, patterned],
    ...(control.length ? [[CONTROL, MODE_FACTS.precise.valColumn, null, control] as const] : []),
  ] as const;
  const epochs = [...new Set([...patterned, ...control].flatMap((run) => run.metrics.map((m) => m.epoch as number)))].sort((a, b) => a - b);
  const values = SERIES.flatMap(([series, col, , runs]) =>
    epochs.flatMap((epoch) => {
      const v = runs.map((run) => run.metrics.find((m) => m.epoch === epoch)?.[col]).filter((x): x is number => x !== null && x !== undefined);
      if (!v.length) return [];
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      return [{ epoch, series, err: mean, lo: Math.min(...v), hi: Math.max(...v) }];
    }),
  );
  const last = epochs[epochs.length - 1] ?? 1;
  const paper = SERIES.flatMap(([series, , err]) => (err === null ? [] : [{ epoch: last, series, err }]));
  const domain = SERIES.map(([s]) => s);
  // one legend of coloured strokes, so the control's entry shows its dashes
  const legend = { symbolType: 'stroke', symbolSize: 400, symbolStrokeWidth: 2.5 } as const;
  const color = { field: 'series', type: 'nominal', title: null, legend, scale: { domain, range: ['#2ca02c', '#ff7f0e', '#1f77b4', '#777777'] } } as const;
  const dash = { field: 'series', type: 'nominal', title: null, legend, scale: { domain, range: domain.map((s) => (s === CONTROL ? [6, 4] : [1, 0])) } } as const;
  const x = { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } } as const;
  const y = errY('err', [...values.flatMap((v) => [v.lo, v.hi]), ...paper.map((p) => p.err)]);
  const names = (rs: Run[]) => `${rs.map((run) => run.name).join(', ')} (${rs.length > 1 ? 'mean of the seeds, band: min-max' : 'one seed'})`;
  const sub = [
    `trained on ${compositionLabel(patterned[0])}; runs: ${names(patterned)}`,
    ...(control.length ? [`control (same recipe, ${compositionLabel(control[0])}): ${names(control)}`] : []),
    `hollow diamonds: the paper's values at epoch 100 (ResNet-50, ImageNet; read off its plot), drawn at our last epoch`,
  ];
  return {
    name: 'fig8',
    title: 'Fig. 8 — information leakage within a batch',
    spec: {
      ...base('Fig. 8 — information leakage: validation error of a model trained on patterned NBS groups', sub),
      layer: [
        { data: { values }, mark: { type: 'area', opacity: 0.15 }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } },
        { data: { values }, mark: { type: 'line', point: { size: 30 }, strokeWidth: 2 }, encoding: { x, y, color, strokeDash: dash } },
        { data: { values: paper }, mark: { type: 'point', shape: 'diamond', size: 120, filled: false, strokeWidth: 2 }, encoding: { x, y, color } },
      ],
    } as TopLevelSpec,
  };
}

/** Runs for Figs. 3-4: regular BN, one per batch size, NBS nearest the paper's 32. */
function curveRuns(runs: Run[]): Run[][] {
  const reg = runs.filter((run) => run.frozen === 0 && run.metrics.length);
  const byBatch = new Map<number, Run>();
  const d = (run: Run) => Math.abs(Math.log2(run.nbs / 32));
  for (const run of reg) if (!byBatch.has(run.batch) || d(run) < d(byBatch.get(run.batch)!)) byBatch.set(run.batch, run);
  // the chosen recipe of each batch with all its seeds
  return [...byBatch.values()].sort((a, b) => a.batch - b.batch).map((c) => reg.filter((run) => run.batch === c.batch && run.nbs === c.nbs && recipeOf(run) === recipeOf(c)));
}

/** The figures that can be drawn from these runs, with a reason for each one that cannot. */
export function buildFigures(runs: Run[], which: FigId[]): { figures: Figure[]; skipped: string[] } {
  const figures: Figure[] = [];
  const skipped: string[] = [];
  for (const f of which) {
    if (f === '2') {
      const r = runs.find((x) => x.tracePath);
      r ? figures.push(...fig2(r)) : skipped.push('Fig. 2: no bn_trace.csv (set trace.layers in the config)');
    } else if (f === '8') {
      const all = fig8Runs(runs);
      const rs = all.filter(isPatterned);
      rs.length ? figures.push(fig8(rs, all.filter((run) => !isPatterned(run)))) : skipped.push('Fig. 8: no run trained with a bn.composition pattern and eval.composed');
    } else if (f === '3' || f === '4') {
      const rs = curveRuns(runs);
      if (!rs.length) skipped.push(`Fig. ${f}: no run with metrics.csv`);
      else if (f === '4' && rs.length < 2) skipped.push('Fig. 4: needs runs of two batch sizes');
      else figures.push(f === '3' ? curves(rs.slice(0, 1), f) : curves(rs, f, runs.filter((run) => run.metrics.length && !rs.flat().includes(run)).sort((a, b) => a.batch - b.batch || a.nbs - b.nbs)));
    } else {
      const fig = fig56(runs, f);
      const ours = (fig.spec as { layer: { data: { values: { source?: string; nbs: number }[] } }[] }).layer[0].data.values.filter((v) => v.source === 'ours');
      const nbs = [...new Set(ours.map((v) => v.nbs))];
      if (nbs.length >= 2) figures.push(fig);
      else if (!nbs.length) skipped.push(`Fig. ${f}: no run of an NBS sweep${f === '6' ? ' or FrozenBN' : ''} with the needed metrics`);
      // One point is not a curve over NBS (e.g. a batch-size sweep, all at NBS 32).
      else skipped.push(`Fig. ${f}: needs runs at two or more NBS values at one total batch (an NBS sweep); these runs give NBS ${nbs[0]} only`);
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
  // vega and vega-lite (~40 MB resident) load here, not with every command
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(fig.spec).spec), { renderer: 'none' });
  await view.runAsync();
  const svg = await tightSvg(await view.toSVG());
  const legend: string[] = [];
  const walk = (n: any) => {
    if (!n || typeof n !== 'object') return;
    if (n.role === 'legend-label') for (const it of n.items ?? []) legend.push(String(it.text));
    for (const c of n.items ?? []) walk(c);
  };
  walk((view.scenegraph() as any).root);
  view.finalize();
  const png = await (await sharp(Buffer.from(svg), { density: 144 })).flatten({ background: '#fff' }).png().toBuffer();
  return { svg, png, legend };
}

/**
 * vega estimates text widths without a canvas (generously) and sizes the SVG for that, leaving a
 * wide blank margin: a page that scales the SVG to its width would then show the plot at half
 * width with small text. Crop the SVG's viewBox to what is drawn (found by rasterising it at
 * 1 px per unit), plus an 8-unit margin.
 */
async function tightSvg(svg: string): Promise<string> {
  const { info } = await (await sharp(Buffer.from(svg), { density: 72 })).flatten({ background: '#fff' }).trim({ threshold: 5 }).toBuffer({ resolveWithObject: true });
  const pad = 8;
  const [x, y] = [-(info.trimOffsetLeft ?? 0) - pad, -(info.trimOffsetTop ?? 0) - pad];
  const [w, h] = [info.width + 2 * pad, info.height + 2 * pad];
  return svg.replace(/^<svg([^>]*?) width="[\d.]+" height="[\d.]+" viewBox="[^"]*"/, `<svg$1 width="${w}" height="${h}" viewBox="${x} ${y} ${w} ${h}"`);
}

/**
 * Figs. 5-6 drawn from a changed regime's runs (report.roles fig5-6.variant), each variant as its
 * own figure: its own file (fig5-variant, fig5-variant2, ...) and a title naming what it changes,
 * so it never overwrites or reads as the paper's figure.
 */
export function variantFigures(variants: { label: string; runs: Run[] }[], which: FigId[]): { figures: Figure[]; skipped: string[] } {
  const out: { figures: Figure[]; skipped: string[] } = { figures: [], skipped: [] };
  variants.forEach((v, i) => {
    const { figures, skipped } = buildFigures(v.runs, which.filter((f) => f === '5' || f === '6'));
    out.skipped.push(...skipped.map((s) => `${s} (changed regime: ${v.label})`));
    for (const fig of figures) {
      const title = `${fig.title}, changed regime: ${v.label}`;
      const spec = { ...fig.spec, title: { ...(fig.spec.title as object), text: title } } as TopLevelSpec;
      out.figures.push({ ...fig, name: `${fig.name}-variant${i ? i + 1 : ''}`, title, spec });
    }
  });
  return out;
}
