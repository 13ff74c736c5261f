// `bnlab report` / `bnlab plot` on fixture run folders (test/fixtures/report: synthetic numbers,
// for layout only): the paper's table layout, "ours (paper)" cells, missing runs shown as "—",
// figures with the expected series, and the HTML page rendered by headless Chromium.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { validateConfig } from '../src/config/load.js';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFigures, render, type FigId } from '../src/report/figures.js';
import { htmlReport, markdownReport, runsFor } from '../src/report/report.js';
import { findRuns, lastEpoch, type Num, type Run } from '../src/report/runs.js';
import { fmtCell, toCsv, toMarkdown } from '../src/report/table.js';
import { buildTable, divergedAt, domainKey, isPatterned } from '../src/report/tables.js';
import { regimeTable } from '../src/report/regime.js';

const FX = 'test/fixtures/report';
const all = findRuns([FX]);
const cells = (t: ReturnType<typeof buildTable>) => t.rows.map((r) => r.cells.map(fmtCell));
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'bnlab-report-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('runs', () => {
  it('finds run folders two levels down and reads their configs', () => {
    expect(all.map((r) => r.name)).toContain('table1/b1024-nbs16');
    const r = all.find((x) => x.name === 'fig6/frozen-nbs2')!;
    expect([r.batch, r.nbs, r.frozen, r.epochs]).toEqual([128, 2, 2, 10]);
    expect(r.metrics[9].bn_mode).toBe(1); // 'frozen'
  });
  it('maps dataset specs to Table 4 domains', () => {
    expect(domainKey('corruption.type=gaussian-noise,corruption.severity=5')).toBe('gaussian_noise');
    expect(domainKey('split=val,augment=false')).toBe('val-noaug');
    expect(domainKey('split=val')).toBe('val-noaug'); // statistics from the (never augmented) val split
    expect(domainKey('split=val', 'on')).toBe('');
    expect(domainKey('')).toBe('');
  });
});

describe('tables', () => {
  it('Table 1: paper layout, rows by batch-size role, early epoch mapped to 30% with a footnote', () => {
    const t = buildTable('table1', runsFor('table1', all));
    expect(t.columns).toEqual(['EMA', 'N=10', 'N=100', 'N=1000', 'N=10000']);
    expect(t.rows.map((r) => r.labels)).toEqual([
      ['64 (paper 256)', '10 of 10 (paper 100 of 100)'],
      ['1024 (paper 8192)', '3 of 10 (paper 30 of 100)'],
      ['1024 (paper 8192)', '10 of 10 (paper 100 of 100)'],
    ]);
    const c = cells(t);
    expect(c[0][0]).toBe('11.3 (23.7)'); // EMA: one measurement, no ±
    expect(c[0][1]).toBe('16.0±0.5 (28.1±0.5)'); // err_mean ± err_std over 5 repeats
    expect(c[0][3]).toBe('11.10±0.04 (23.57±0.05)');
    expect(c[1][4]).toBe('— (39.42±0.03)'); // not evaluated: shown missing, not invented
    expect(t.notes.join(' ')).toMatch(/epoch 30 of 100" is mapped to epoch 3 of 10/);
    const md = toMarkdown(t);
    expect(md).toContain('| Batch size | Epoch | EMA | N=10 | N=100 | N=1000 | N=10000 |');
    expect(toCsv(t).trim().split('\n')).toHaveLength(1 + 3 * 5);
  });
  it('Table 1 with a missing run: the large-batch rows keep the paper numbers and show ours as —', () => {
    const t = buildTable('table1', findRuns([join(FX, 'table1/b64-nbs16')]));
    expect(t.rows[0].cells[0].ours?.mean).toBeCloseTo(11.3);
    for (const r of t.rows.slice(1)) {
      expect(r.labels[0]).toBe('— (paper 8192)');
      expect(r.cells.every((c) => c.ours === null && c.paper !== null)).toBe(true);
    }
    expect(t.notes.join(' ')).toMatch(/No run for the large-batch rows/);
  });
  it('Table 2: rows by NBS role, B columns and B=N', () => {
    const t = buildTable('table2', runsFor('table2', all));
    expect(t.columns).toEqual(['EMA', 'B=2', 'B=10', 'B=100', 'B=1000', 'B=N']);
    expect(t.rows.map((r) => r.labels[0])).toEqual(['NBS=16 (paper 32), batch 64', 'NBS=2, batch 64']);
    expect(cells(t)[1][1]).toBe('16.5±0.1 (34.4)');
    expect(t.notes[0]).toMatch(/N \(PreciseBN samples\) = 2000/);
  });
  it('Table 2: mean-of-var evaluations as extra rows after the paper\'s pooled rows, no paper value, missing cells —', () => {
    const t = buildTable('table2', findRuns(['test/fixtures/report-estimators']));
    expect(t.rows.map((r) => r.labels[0])).toEqual(['NBS=32', 'NBS=2', 'NBS=32, mean-of-var', 'NBS=2, mean-of-var']);
    const c = cells(t);
    // the paper's rows: pooled only; a B with only a mean-of-var row stays missing (not filled from it)
    expect(c[0]).toEqual(['16.4 (23.7)', '16.3 (28.8)', '16.2 (24.0)', '16.1 (23.5)', '— (23.5)', '16.0 (23.5)']);
    expect(c[1]).toEqual(['20.1 (35.5)', '20.1 (34.4)', '19.7 (32.3)', '19.7 (32.0)', '19.5 (32.0)', '— (32.0)']);
    // mean-of-var rows: ours where evaluated (last epoch, train statistics), — elsewhere; EMA does not apply
    expect(c[2]).toEqual(['— (—)', '16.6 (—)', '16.1 (—)', '— (—)', '16.1 (—)', '— (—)']);
    expect(c[3]).toEqual(['— (—)', '19.9±0.1 (—)', '19.7 (—)', '— (—)', '— (—)', '— (—)']);
    expect(t.rows.slice(2).every((r) => r.cells.every((x) => x.paper === null))).toBe(true);
    expect(t.rows[3].cells[1].ours).toMatchObject({ mean: 19.85, std: 0.12, n: 3 });
    expect(t.notes.join(' ')).toMatch(/rows ending in mean-of-var .*the paper has no such row/);
    expect(toCsv(t).trim().split('\n')).toHaveLength(1 + 4 * 6);
    // the first fixture has no other estimator: the paper's two rows only
    expect(buildTable('table2', runsFor('table2', all)).rows).toHaveLength(2);
  });
  it('Fig. 5/6 tables: NBS columns (ours and the paper\'s), three or four series, seeds averaged', () => {
    const runs = runsFor('fig6', all);
    const f5 = buildTable('fig5', runs);
    const f6 = buildTable('fig6', runs);
    expect(f5.rows).toHaveLength(3);
    expect(f6.rows).toHaveLength(4);
    expect(f6.columns).toEqual(['1024', '512', '256', '128', '64', '32', '16', '8', '4', '2']);
    expect(cells(f6)[3][9]).toBe('15.2 (25.2)'); // FrozenBN run, NBS 2
    expect(cells(f6)[3][3]).toBe('— (24.4)'); // no FrozenBN run at NBS 128
    // two copies of one run act as two seeds: mean ± std across runs
    const seeds = buildTable('fig5', [...runs, ...findRuns([join(FX, 'fig5/nbs2')])]);
    expect(seeds.rows[1].cells[9].ours).toMatchObject({ mean: 15.6, std: 0, n: 2 });
  });
  it('Figs. 5/6: training images with population statistics (an eval on split=train,augment=false) add our own row; such runs stay out of Table 4', () => {
    const runs = runsFor('fig6', all).map((r) => ({ ...r, evals: [...r.evals] }));
    const trainEval = (r: Run, err: number) => ({ epoch: lastEpoch(r), stats: 'precise', stats_data: '', data: 'split=train,augment=false', samples: 100, batch: 32, estimator: 'pooled', repeats: 1, err_mean: err, err_std: 0, errs: [err] });
    const nbs2 = runs.filter((r) => r.nbs === 2 && r.frozen === 0);
    expect(nbs2.length).toBeGreaterThan(0);
    nbs2.forEach((r) => r.evals.push(trainEval(r, 3.25)));
    for (const id of ['fig5', 'fig6'] as const) {
      const t = buildTable(id, runs);
      expect(t.rows).toHaveLength(id === 'fig5' ? 4 : 5);
      expect(t.rows[1].labels).toEqual(['train, population stats, no aug']);
      expect(t.rows[1].cells[9]).toEqual({ ours: expect.objectContaining({ mean: 3.25 }), paper: null });
      expect(t.rows[1].cells[3].ours).toBeNull(); // no such evaluation at NBS 128
      expect(t.notes.join(' ')).toMatch(/is ours \(the paper has no such curve\)/);
    }
    // without such an evaluation the tables are the paper's three / four rows (the test above)
    const t4 = buildTable('table4', runsFor('table4', all));
    expect(buildTable('table4', [...runsFor('table4', all), ...runs]).rows.map((r) => r.cells.map(fmtCell))).toEqual(t4.rows.map((r) => r.cells.map(fmtCell)));
  });
  it('Table 4: the paper\'s nine rows, ours where eval.csv has the combination', () => {
    const t = buildTable('table4', runsFor('table4', all));
    expect(t.rows).toHaveLength(9);
    expect(cells(t)[1][0]).toBe('24.5±0.3 (33.1)');
    expect(cells(t)[4][0]).toBe('— (40.4)'); // jpeg not evaluated
    expect(t.rows[8].labels).toEqual(['val (clean)', 'val without augmentation']);
  });
  it('--all: every buildable table, and why the others are not', () => {
    const md = markdownReport(FX, all);
    for (const h of ['Table 1', 'Table 2', 'Figure 5', 'Figure 6', 'Table 4', 'Fig. 8']) expect(md).toContain(`### ${h}`);
    // a run with only corrupted-data evaluations: Table 4 and nothing else
    const d = join(tmp(), 'run');
    mkdirSync(d);
    copyFileSync(join(FX, 'table4/model/config.yaml'), join(d, 'config.yaml'));
    const ev = readFileSync(join(FX, 'table4/model/eval.csv'), 'utf8').split('\n');
    writeFileSync(join(d, 'eval.csv'), [ev[0], ...ev.filter((l) => l.includes('corruption'))].join('\n'));
    const only4 = markdownReport('x', findRuns([d]));
    expect(only4).toContain('### Table 4');
    expect(only4).toContain('## Not built');
    expect(only4).toMatch(/- fig6: no run declares report.roles fig5-6 \(a sweep file sets it/);
    expect(only4).not.toContain('### Table 1');
  });
  it('a run is in a paper table only when it declares that role: the same runs without report.roles are a plain sweep table, never Table 1', () => {
    const d = tmp();
    for (const r of ['b64-nbs16', 'b1024-nbs16']) {
      mkdirSync(join(d, 'mysweep', r), { recursive: true });
      for (const f of ['metrics.csv', 'eval.csv']) copyFileSync(join(FX, 'table1', r, f), join(d, 'mysweep', r, f));
      writeFileSync(join(d, 'mysweep', r, 'config.yaml'), readFileSync(join(FX, 'table1', r, 'config.yaml'), 'utf8').replace(/report:\n  roles: \[[^\]]*\]\n/, ''));
    }
    const runs = findRuns([d]);
    expect(runs.map((r) => r.roles)).toEqual([[], []]);
    const md = markdownReport(d, runs);
    expect(md).not.toContain('### Table 1');
    expect(md).toMatch(/- table1: no run declares report.roles table1.small-batch or table1.large-batch/);
    expect(md).toMatch(/Sweep mysweep: final errors by what its runs vary/);
    // one role declared: that run alone fills its row, the other row stays empty
    const cfg = join(d, 'mysweep', 'b1024-nbs16', 'config.yaml');
    writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}report:\n  roles: [table1.large-batch]\n`);
    const t = buildTable('table1', runsFor('table1', findRuns([d])));
    expect(t.rows.map((r) => r.labels[0])).toEqual(['— (paper 256)', '1024 (paper 8192)', '1024 (paper 8192)']);
    // a PyTorch twin (framework in its config) copies its bnlab run's roles: never in bnlab's tables
    writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}framework: pytorch 1.13\n`);
    expect(runsFor('table1', findRuns([d]))).toEqual([]);
  });
});

describe('figures', () => {
  // legend entries and drawn line marks per figure: Fig. 4 = 2 runs x 2 estimators; Figs. 5/6 = one
  // entry per series, lines only the paper's (ours are points with bars at the NBS measured)
  const expected: Record<FigId, { legend: number; lines: number }> = {
    '2': { legend: 3, lines: 2 },
    '3': { legend: 3, lines: 3 },
    '4': { legend: 4, lines: 4 },
    '5': { legend: 3, lines: 3 },
    '6': { legend: 4, lines: 4 },
    '8': { legend: 4, lines: 4 }, // composed, random, PreciseBN + the random-groups control (dashed)
  };
  for (const f of Object.keys(expected) as FigId[])
    it(`Fig. ${f}: valid SVG and PNG with the expected series`, async () => {
      const { figures, skipped } = buildFigures(runsFor(`f${f}`, all), [f]);
      expect(skipped).toEqual([]);
      const r = await render(figures[0]);
      expect(r.svg.startsWith('<svg')).toBe(true);
      expect(r.svg.trim().endsWith('</svg>')).toBe(true);
      expect(r.legend).toHaveLength(expected[f].legend);
      expect(r.svg.match(/class="mark-line role-mark/g)).toHaveLength(expected[f].lines);
      const meta = await sharp(r.png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(600);
    }, 30_000);
  it('Figs. 5/6: subtitle lists every run used (FrozenBN too) by NBS, wrapped; no clipping without divergence', () => {
    for (const f of ['5', '6'] as const) {
      const fig = buildFigures(runsFor(`f${f}`, all), [f]).figures[0];
      const sub = (fig.spec as any).title.subtitle as string[];
      expect(sub.length).toBeGreaterThan(1);
      for (const l of sub) expect(l.length).toBeLessThanOrEqual(125);
      const text = sub.join(' ');
      if (f === '5') expect(text).toContain('Regular BN runs in fig5/, by NBS: nbs2, nbs8, nbs32, nbs128.'); // a common folder named once
      else {
        expect(text).toContain('Regular BN runs, by NBS: fig5/nbs2, fig5/nbs8, fig5/nbs32, fig5/nbs128.');
        expect(text).toContain('FrozenBN runs (last 2 of 10 epochs; paper: last 20 of 100), by NBS: fig6/frozen-nbs2, fig6/frozen-nbs32.');
      }
      const spec = fig.spec as any;
      expect(spec.layer).toHaveLength(3); // the paper's lines, our bars, our points: no marker or label layers
      expect(spec.layer.slice(1).map((l: any) => l.mark.type)).toEqual(['rule', 'point']); // no line through NBS we did not run
      expect(spec.layer[0].data.values.some((v: any) => v.diverged)).toBe(false);
      // the y-axis ends at ticks beyond every point (ours and the paper's)
      const ys = spec.layer[0].data.values.map((v: any) => v.y);
      const [lo, hi] = spec.layer[0].encoding.y.scale.domain;
      expect(hi).toBeGreaterThan(Math.max(...ys));
      expect(lo).toBeLessThan(Math.min(...ys));
      expect(spec.layer[0].encoding.y.axis.values).toEqual(expect.arrayContaining([lo, hi]));
    }
  });
  it('Fig. 5: a point at the top of the data has a tick above it, not the frame (74.95, 33.97)', async () => {
    for (const top of [74.95, 33.97]) {
      const d = tmp();
      for (const r of ['nbs2', 'nbs8', 'nbs32', 'nbs128']) {
        mkdirSync(join(d, 'fig5', r), { recursive: true });
        for (const f of ['config.yaml', 'metrics.csv']) copyFileSync(join(FX, 'fig5', r, f), join(d, 'fig5', r, f));
      }
      const m = join(d, 'fig5/nbs2/metrics.csv');
      writeFileSync(m, readFileSync(m, 'utf8').replace(/^10,0\.01,0\.35,12\.6,15\.96,15\.6,/m, `10,0.01,0.35,12.6,15.96,${top},`));
      const fig = buildFigures(findRuns([d]), ['5']).figures[0];
      const y = (fig.spec as any).layer[0].encoding.y;
      expect(y.scale.domain[1], String(top)).toBe(top > 70 ? 80 : 35);
      expect(y.axis.values.at(-1)).toBe(y.scale.domain[1]);
      expect((await render(fig)).svg).toContain(`>${top > 70 ? 80 : 35}</text>`);
    }
  }, 30_000);
  it('Figs. 5/6 need two NBS values: one run per batch size (a batch-size sweep) is skipped, saying why', () => {
    const { figures, skipped } = buildFigures(runsFor('f4', all), ['5', '6']);
    expect(figures).toEqual([]);
    expect(skipped).toEqual([
      'Fig. 5: needs runs at two or more NBS values at one total batch (an NBS sweep); these runs give NBS 16 only',
      'Fig. 6: needs runs at two or more NBS values at one total batch (an NBS sweep); these runs give NBS 16 only',
    ]);
  });
  it('runs at another total batch are left out of Figs. 5/6 (and their tables) with a note naming them', () => {
    const d = tmp();
    for (const [dir, batch] of [['fig5', 128], ['fig5-b64', 64]] as const)
      for (const r of ['nbs2', 'nbs8', 'nbs32']) {
        mkdirSync(join(d, dir, r), { recursive: true });
        copyFileSync(join(FX, 'fig5', r, 'metrics.csv'), join(d, dir, r, 'metrics.csv'));
        writeFileSync(join(d, dir, r, 'config.yaml'), readFileSync(join(FX, 'fig5', r, 'config.yaml'), 'utf8').replace('batch_size: 128', `batch_size: ${batch}`));
      }
    const runs = findRuns([d]);
    const fig = buildFigures(runs, ['5']).figures[0];
    const note = 'Left out: 3 runs at total batch 64 (fig5-b64/nbs2, fig5-b64/nbs8, fig5-b64/nbs32): NBS is compared at one total batch, 128 here';
    expect(fig.notes?.join(' ')).toContain(note);
    expect((fig.spec as any).title.subtitle.join(' ')).toContain('Left out: 3 runs at total batch 64');
    expect(buildTable('fig5', runs).notes.join(' ')).toContain(note);
    // Fig. 4 names the runs it does not draw (one per batch size)
    const f4 = buildFigures([...runsFor('f4', all), ...findRuns([join(FX, 'fig5')])], ['4']).figures[0];
    expect(f4.notes?.join(' ')).toMatch(/^Left out: nbs2 \(batch 128, NBS 2\), nbs8 \(batch 128, NBS 8\), nbs128 \(batch 128, NBS 128\): one regular-BN run per total batch/);
  });
  it('Fig. 6: a diverged run is clipped at the top edge with a marker and its value; the y-axis fits the rest', async () => {
    const d = tmp();
    for (const r of ['fig5/nbs2', 'fig5/nbs8', 'fig5/nbs32', 'fig5/nbs128', 'fig6/frozen-nbs2', 'fig6/frozen-nbs32']) {
      mkdirSync(join(d, r), { recursive: true });
      for (const f of ['config.yaml', 'metrics.csv']) copyFileSync(join(FX, r, f), join(d, r, f));
    }
    // FrozenBN at NBS 32 diverges: 89.7% error, chance level for 10 classes
    const m = join(d, 'fig6/frozen-nbs32/metrics.csv');
    writeFileSync(m, readFileSync(m, 'utf8').replace(/^10,0\.01,0\.35,7\.8,,10\.4,/m, '10,0.01,0.35,7.8,,89.7,'));
    const runs = findRuns([d]);
    expect(divergedAt(runs)).toBeCloseTo(76.5);
    const t = buildTable('fig6', runs);
    expect(cells(t)[3][5]).toBe('89.7 (24.3)'); // the table keeps the value
    expect(t.notes.join(' ')).toMatch(/Diverged \(error >= 76\.5%.*FrozenBN.*NBS 32 \(89\.7%\)/);
    const fig = buildFigures(runs, ['6']).figures[0];
    const spec = fig.spec as any;
    const [lo, hi] = spec.layer[0].encoding.y.scale.domain;
    expect(hi).toBeLessThan(40); // fits the other values (paper <= 32.5), not 0-90
    expect(lo).toBeGreaterThan(0);
    const pt = spec.layer[0].data.values.find((v: any) => v.diverged);
    expect(pt).toMatchObject({ nbs: 32, err: 89.7, y: hi, source: 'ours' }); // drawn at the top edge
    expect(spec.title.subtitle.join(' ')).toMatch(/Diverged = error ≥ 76\.5%/);
    const r = await render(fig);
    expect(r.svg).toContain('diverged 89.7%');
    expect(r.svg).toMatch(/class="mark-text role-mark/);
    expect(r.legend).toContain('diverged (clipped at the top)');
    expect(r.legend).toHaveLength(5); // 4 series + the diverged marker
    expect(r.svg.match(/class="mark-line role-mark/g)).toHaveLength(4); // the paper's
  }, 30_000);
  it('divergence threshold: 85% of chance-level error for the dataset\'s classes', () => {
    const run = (data: object) => ({ ...all[0], config: validateConfig({ ...all[0].config, data }) });
    expect(divergedAt([run({ name: 'fashion-mnist-mini' })])).toBeCloseTo(76.5);
    expect(divergedAt([run({ name: 'synthetic', synthetic: { classes: 4 } })])).toBeCloseTo(63.75);
    expect(divergedAt([run({ name: 'imagefolder' })])).toBeCloseTo(85); // classes unknown: chance taken as 100%
  });
  it('Fig. 2: 100 batch means per point drawn as their spread (min-max, quartiles), SVG under 200 KB', async () => {
    const d = join(tmp(), 'run');
    mkdirSync(d);
    copyFileSync(join(FX, 'table1/b64-nbs16/config.yaml'), join(d, 'config.yaml'));
    const lines = ['epoch,iter,layer,channel,kind,value'];
    const iters = Array.from({ length: 25 }, (_, i) => i * 40);
    for (const it of iters) {
      const batch = Array.from({ length: 100 }, (_, j) => Math.sin(it / 97) + ((j * 37) % 100) / 400 - 0.12);
      for (const v of batch) lines.push(`1,${it},s1.b1.bn1,0,batch,${v.toFixed(6)}`);
      lines.push(`1,${it},s1.b1.bn1,0,population,${(batch.reduce((a, b) => a + b, 0) / 100).toFixed(6)}`);
      lines.push(`1,${it},s1.b1.bn1,0,ema,${Math.sin((it - 60) / 97).toFixed(6)}`);
    }
    writeFileSync(join(d, 'bn_trace.csv'), lines.join('\n') + '\n');
    const fig = buildFigures(findRuns([d]), ['2']).figures[0];
    const spread = (fig.spec as any).layer[0].data.values;
    expect(spread).toHaveLength(25);
    // every batch mean lies within its point's min-max, and the quartiles inside that
    expect(spread[3]).toMatchObject({ iter: 120, n: 100, min: expect.closeTo(Math.sin(120 / 97) - 0.12, 5), max: expect.closeTo(Math.sin(120 / 97) + 0.99 / 4 - 0.12, 5) });
    for (const p of spread) expect(p.min <= p.q1 && p.q1 <= p.q3 && p.q3 <= p.max).toBe(true);
    const r = await render(fig);
    expect(r.svg.length).toBeLessThan(200_000);
    expect(r.legend).toEqual(['EMA', 'batch means: min–max, quartiles', 'population mean']);
    expect(r.svg.match(/class="mark-line role-mark/g)).toHaveLength(2); // EMA, population mean
    expect(r.svg.match(/class="mark-rule role-mark/g)).toHaveLength(2); // min-max and quartile rules
    expect((fig.spec as any).title.subtitle.join(' ')).toMatch(/spread of the current model's 100 batch means/);
  }, 30_000);
  it('says why a figure cannot be drawn', () => {
    const { figures, skipped } = buildFigures(findRuns([join(FX, 'table4')]), ['2', '4']);
    expect(figures).toEqual([]);
    expect(skipped.join('\n')).toMatch(/bn_trace\.csv[\s\S]*two batch sizes/);
  });
});

describe('CLI', () => {
  const bnlab = (...args: string[]) => spawnSync(process.execPath, ['bin/bnlab.js', ...args], { encoding: 'utf8', timeout: 60_000 });
  it('an unknown figure or table is a usage error (exit 2) listing the valid ones', () => {
    const p = bnlab('plot', FX, '--fig', '9');
    expect(p.status).toBe(2);
    expect(p.stderr).toContain('--fig 9: use 2, 3, 4, 5, 6, 8 or all');
    const r = bnlab('report', '--table', 'table9', FX);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--table must be one of table1, table2, fig5, fig6, table4, fig8');
  }, 60_000);
  it('report --table prints the table; plot writes SVG and PNG', () => {
    const r = bnlab('report', '--table', 'table2', '--format', 'csv', FX);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('table,row_model,column,ours,ours_std,ours_n,paper,paper_std');
    const out = tmp();
    const p = bnlab('plot', FX, '--fig', '5', '--out', out);
    expect(p.status, p.stderr).toBe(0);
    expect(existsSync(join(out, 'fig5.svg')) && existsSync(join(out, 'fig5.png'))).toBe(true);
    // nothing to draw: said, non-zero, nothing written
    const none = join(tmp(), 'none');
    const q = bnlab('plot', join(FX, 'fig5'), '--fig', '2', '--out', none);
    expect(q.status).toBe(1);
    expect(q.stderr).toContain('nothing drawn from');
    expect(q.stderr).toContain('Fig. 2: no bn_trace.csv');
    expect(existsSync(none)).toBe(false);
  }, 60_000);
});

describe('HTML report', () => {
  it('is self-contained and renders in headless Chromium', async () => {
    const chromium = '/usr/bin/chromium';
    if (!existsSync(chromium)) throw new Error(`${chromium} not found: apt-get install chromium (the HTML report test renders the page headless)`);
    const dir = tmp();
    const html = await htmlReport(FX, all);
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // no scripts, nothing fetched
    expect(html.match(/<svg/g)!.length).toBeGreaterThanOrEqual(5);
    // figures span the page's column (max-width 1100 px less 2 x 16 px padding): each SVG is cropped
    // to what it draws, so at that width its smallest text is at least 12 px
    expect(html).toContain('figure svg{display:block;width:100%;height:auto}');
    for (const svg of html.match(/<svg[\s\S]*?<\/svg>/g)!) {
      const width = Number(/^<svg[^>]* width="([\d.]+)"/.exec(svg)![1]);
      const smallest = Math.min(...[...svg.matchAll(/font-size="([\d.]+)px"/g)].map((m) => Number(m[1])));
      expect(smallest * (1068 / width), `${width} units wide, ${smallest} px text`).toBeGreaterThanOrEqual(12);
    }
    writeFileSync(join(dir, 'report.html'), html);
    const shot = join(dir, 'shot.png');
    const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
    const r = spawnSync(chromium, [...args, `--user-data-dir=${join(dir, 'profile')}`, `--screenshot=${shot}`, '--window-size=1200,2000', `file://${join(dir, 'report.html')}`], { encoding: 'utf8', timeout: 90_000 });
    expect(existsSync(shot), `chromium wrote no screenshot (status ${r.status}): ${r.stderr.slice(-500)}`).toBe(true);
    const stats = await sharp(readFileSync(shot)).stats();
    expect(stats.channels[0].stdev).toBeGreaterThan(10); // not a blank page
  }, 120_000);
});

describe('Fig. 8 table', () => {
  it('one row per trained composition, seeds combined; eval repeats preferred over metrics; paper values only beside the patterned row', () => {
    const t = buildTable('fig8', runsFor('fig8', all));
    expect(t.rows.map((r) => r.labels[0])).toEqual(['2 classes per group of 32', 'random groups of 32']);
    const [pat, ctrl] = t.rows;
    expect(pat.labels[2]).toBe('fig8/classes_seed0, fig8/classes_seed1');
    // composed at epoch 4: seed 0 from its eval.csv (23.9), seed 1 from metrics (40-16+0.8 = 24.8)
    expect(pat.cells[0].ours!.mean).toBeCloseTo((23.9 + 24.8) / 2, 6);
    expect(pat.cells[0].ours!.n).toBe(2);
    expect(pat.cells[1].ours!.mean).toBeCloseTo((33.1 + 33.8) / 2, 6);
    expect(pat.cells.slice(0, 3).map((c) => c.paper?.mean)).toEqual([23.5, 31, 51]);
    expect(ctrl.cells.every((c) => c.paper === null)).toBe(true);
    expect(ctrl.cells[2].ours!.mean).toBe(17);
  });
  it('PreciseBN of a control shared with Tables 1 and 2: the row of the most samples at the run\'s own B, not N = 10 or B = 2 with as many repeats', () => {
    const d = tmp();
    for (const r of ['classes_seed0', 'random_seed0']) {
      mkdirSync(join(d, 'fig8', r), { recursive: true });
      for (const f of ['config.yaml', 'metrics.csv']) copyFileSync(join(FX, 'fig8', r, f), join(d, 'fig8', r, f));
    }
    writeFileSync(
      join(d, 'fig8/random_seed0/eval.csv'),
      'epoch,stats,stats_data,data,samples,batch,estimator,repeats,err_mean,err_std,errs\n4,precise,,,10,10,pooled,3,40,1,39;40;41\n4,precise,,,10000,2,pooled,3,19,0.2,18.8;19;19.2\n4,precise,,,10000,32,pooled,3,16.5,0.1,16.4;16.5;16.6\n4,precise,,,1000,32,pooled,3,18,0.1,17.9;18;18.1\n',
    );
    const ctrl = buildTable('fig8', runsFor('fig8', findRuns([d]))).rows[1];
    expect(ctrl.labels[0]).toBe('random groups of 32');
    expect(ctrl.cells[2].ours).toEqual({ mean: 16.5, std: 0.1, n: 3 });
  });
  it('a run from before bn.composition existed counts as random groups in the figure as in the table', () => {
    const d = tmp();
    for (const r of ['classes_seed0', 'random_seed0']) {
      mkdirSync(join(d, 'fig8', r), { recursive: true });
      for (const f of ['config.yaml', 'metrics.csv']) copyFileSync(join(FX, 'fig8', r, f), join(d, 'fig8', r, f));
    }
    const cfgPath = join(d, 'fig8/random_seed0/config.yaml');
    writeFileSync(cfgPath, readFileSync(cfgPath, 'utf8').replace(/^\s*composition: random\n/m, ''));
    const runs = runsFor('f8', findRuns([d]));
    // read through the schema: a key the run's bnlab did not have takes its default
    expect(runs.find((r) => r.name === 'fig8/random_seed0')!.config.bn.composition).toBe('random');
    const spec = buildFigures(runs, ['8']).figures[0].spec as any;
    expect(spec.title.subtitle.join(' ')).toContain('runs: fig8/classes_seed0 (one seed)');
    expect(spec.title.subtitle.join(' ')).toContain('control (same recipe, random groups of 32): fig8/random_seed0');
  });
  it('the figure draws the control dashed and names its runs', () => {
    const spec = buildFigures(runsFor('f8', all), ['8']).figures[0].spec as any;
    const dash = spec.layer[1].encoding.strokeDash.scale;
    const at = dash.domain.indexOf('control (random groups): PreciseBN');
    expect(at).toBe(3);
    expect(dash.range[at]).toEqual([6, 4]);
    expect(dash.range.slice(0, 3)).toEqual([[1, 0], [1, 0], [1, 0]]);
    expect(spec.title.subtitle.join(' ')).toContain('control (same recipe, random groups of 32): fig8/random_seed0 (one seed)');
    // control values: its PreciseBN per epoch (17 at epoch 4 in the fixture)
    expect(spec.layer[1].data.values.find((v: any) => v.series.startsWith('control') && v.epoch === 4).err).toBe(17);
  });
  it('a control without per-epoch PreciseBN gets neither a line nor a legend entry', () => {
    const runs = runsFor('f8', all).map((r) => (isPatterned(r) ? r : { ...r, metrics: r.metrics.map((m) => ({ ...m, val_err_precise: null })) }));
    const spec = buildFigures(runs, ['8']).figures[0].spec as any;
    expect(spec.layer[1].encoding.strokeDash.scale.domain).toEqual(['mini-batch, composed test groups', 'mini-batch, random test groups', 'PreciseBN (population)']);
    expect(spec.title.subtitle.join(' ')).not.toContain('control');
  });
});


describe('training regime table', () => {
  const mk = (name: string, trainErr: number, valErr: number, extra: object = {}): Run => ({
    ...all[0], name, frozen: 0, metrics: [{ epoch: 1, train_err: 90, val_err_precise: 90 }, { epoch: 10, train_err: trainErr, val_err_precise: valErr, train_err_nbs: null }] as Record<string, Num>[],
    evals: [], config: validateConfig({ ...all[0].config, model: { arch: 'resnet-cifar', depth: 20 }, data: { name: 'fashion-mnist', train_limit: 5000 } }), ...extra,
  });
  it('one row per recipe, seeds combined into mean ± std of their last epoch; other recipes apart', () => {
    const t = regimeTable([mk('fig5-6/nbs2_seed0', 4, 12), mk('fig5-6/nbs2_seed1', 6, 14), mk('fig5-6/nbs32_seed0', 3, 9)]);
    expect(t.rows.map((r) => r.labels[0])).toEqual(['fig5-6/nbs2', 'fig5-6/nbs32']);
    const [two, one] = t.rows;
    expect(two.labels[3]).toBe('2');
    expect(two.labels[1]).toContain('ResNet-20, fashion-mnist (5000 train images)');
    expect(two.cells[0].ours).toEqual({ mean: 5, std: Math.SQRT2, n: 2 }); // train_err 4, 6
    // only the columns some run computed (no mini-batch or FrozenBN column here)
    expect(t.columns).toEqual(['train, as trained, batch stats', 'val, PreciseBN']);
    expect(two.cells[1].ours?.mean).toBe(13);
    expect(one.cells[0].ours).toEqual({ mean: 3 });
    const md = toMarkdown(t);
    expect(md).toContain('| 5.0±1.4 |');
    expect(md).not.toContain('(—)'); // ours only: no paper column
  });
  it("a fork's continuations are one recipe, counted by seed", () => {
    const t = regimeTable([mk('cont/nbs2_seed0_cont1', 4, 12), mk('cont/nbs2_seed0_cont2', 5, 13), mk('cont/nbs2_seed1_cont1', 6, 14)]);
    expect(t.rows.map((r) => [r.labels[0], r.labels[3]])).toEqual([['cont/nbs2', '2 (3 runs)']]);
  });
  it('is in the markdown report', () => {
    expect(markdownReport(FX, all)).toContain('### Training regime');
  });
  it('a run linked into a second experiment (Fig. 8\'s control is Table 1\'s b128) is one row, under its own folder', () => {
    const d = tmp();
    mkdirSync(join(d, 'table1', 'b128_seed0'), { recursive: true });
    for (const f of ['config.yaml', 'metrics.csv']) copyFileSync(join(FX, 'fig8', 'random_seed0', f), join(d, 'table1', 'b128_seed0', f));
    mkdirSync(join(d, 'fig8'));
    symlinkSync('../table1/b128_seed0', join(d, 'fig8', 'random_seed0'));
    const runs = findRuns([d]);
    expect(runs.map((r) => r.name).sort()).toEqual(['fig8/random_seed0', 'table1/b128_seed0']);
    expect(regimeTable(runs).rows.map((r) => r.labels[0])).toEqual(['table1/b128']);
  });
});
