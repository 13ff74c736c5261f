// The findings' statistics against values computed by hand in float64 (closed forms of Student's t
// for 1 and 2 degrees of freedom, published quantiles, the interval formula written out), the
// verdict rule on each side of zero, and the findings / twin tables on run data made up here:
// pairing by seed, the paper's side, a twin still training left out.
import { validateConfig } from '../src/config/load.js';
import { describe, expect, it } from 'vitest';
import { findings, findingsTable, MIN_PAPER_EFFECT } from '../src/report/findings.js';
import { regimeTable } from '../src/report/regime.js';
import type { Num, Run } from '../src/report/runs.js';
import { tCdf, tInterval, tQuantile, verdict, welch } from '../src/report/stats.js';
import { textHtml, textMarkdown } from '../src/report/table.js';
import { completeTwins, twinTable } from '../src/report/twin.js';
import { variantsOf, variantTable } from '../src/report/variant.js';
import { variantFigures } from '../src/report/figures.js';
import { runsFor, verdictTables } from '../src/report/report.js';
import { buildTable } from '../src/report/tables.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('statistics', () => {
  it("Student's t quantiles: closed forms for df 1 and 2, published values for 4 and 9, fractional df", () => {
    expect(tQuantile(0.975, 1)).toBeCloseTo(Math.tan(0.475 * Math.PI), 10); // Cauchy: 12.7062047361747
    expect(tQuantile(0.975, 2)).toBeCloseTo(0.95 / Math.sqrt(2 * 0.975 * 0.025), 10); // 4.30265272974946
    expect(tQuantile(0.975, 4)).toBeCloseTo(2.7764451051977934, 10);
    expect(tQuantile(0.975, 9)).toBeCloseTo(2.2621571627982053, 10);
    expect(tQuantile(0.975, 2.5)).toBeCloseTo(3.5746548420036817, 9);
    expect(tCdf(-1.5, 3)).toBeCloseTo(0.11529193262241147, 12);
    expect(() => tQuantile(0.4, 3)).toThrow(RangeError);
  });
  it('the paired interval is mean ± t·std/√n (Table 1 b1024 epoch 3 per-seed differences)', () => {
    const [d1, d2] = [0.95, 5.42];
    const iv = tInterval([d1, d2]);
    const std = Math.abs(d2 - d1) / Math.SQRT2;
    const half = (Math.tan(0.475 * Math.PI) * std) / Math.SQRT2;
    expect(iv.mean).toBeCloseTo(3.185, 12);
    expect(iv.std).toBeCloseTo(3.1607673119038675, 12);
    expect(iv.lo!).toBeCloseTo((d1 + d2) / 2 - half, 9);
    expect(iv.hi!).toBeCloseTo(-25.21336758535044 + 2 * 28.39836758535044, 9);
    expect(iv.t!).toBeCloseTo(12.706204736174707, 9);
    // five seeds: t(0.975, 4) = 2.7764...
    const five = tInterval([1, 1.5, 0.5, 2, 1.25]);
    expect([five.n, five.mean]).toEqual([5, 1.25]);
    expect(five.lo!).toBeCloseTo(0.5558887237005516, 10);
    expect(five.hi!).toBeCloseTo(1.9441112762994484, 10);
    expect(tInterval([2]).lo).toBeNull(); // one seed: no interval
  });
  it('the verdict rule: the paper\'s side, the other side, or undecided', () => {
    const pos = tInterval([1, 1.1]); // [+0.41, +1.69]
    const neg = tInterval([-1, -1.1]);
    const wide = tInterval([0.95, 5.42]);
    expect([verdict(pos, 1), verdict(pos, -1)]).toEqual(['holds', 'does not hold']);
    expect([verdict(neg, -1), verdict(neg, 1)]).toEqual(['holds', 'does not hold']);
    expect([verdict(wide, 1), verdict(wide, -1)]).toEqual(['undecided', 'undecided']);
    expect(verdict(tInterval([3]), 1)).toBe('undecided');
  });
  it("Welch's interval for two unpaired groups (df by Welch–Satterthwaite)", () => {
    const w = welch([18.47, 17.92], [18.81, 18.15, 18.5]);
    expect(w.diff).toBeCloseTo(0.2916666666666643, 12);
    expect(w.df!).toBeCloseTo(1.9651947763719306, 10);
    expect(w.lo!).toBeCloseTo(-1.1727936859664854, 8);
    expect(w.hi!).toBeCloseTo(1.756127019299814, 8);
    expect(welch([1], [2, 3]).lo).toBeNull();
  });
});

// A made-up run: metrics rows (epoch 1 and the last) and eval rows.
const mk = (name: string, o: { nbs: number; seed: number; frozen?: number; epochs?: number; last?: Record<string, number>; evals?: Partial<Run['evals'][number]>[]; framework?: string; done?: number; roles?: Run['roles']; depth?: number; cont?: number }): Run => {
  const epochs = o.epochs ?? 10;
  const done = o.done ?? epochs;
  return {
    dir: `/nonexistent/${name}`, name, batch: 128, nbs: o.nbs, frozen: o.frozen ?? 0, epochs, preciseBatch: 32,
    config: validateConfig({ seed: o.seed, epochs, model: { arch: 'resnet-cifar', depth: o.depth ?? 20 }, data: { name: 'fashion-mnist', train_limit: 2000 }, optim: { batch_size: 128 }, bn: { nbs: o.nbs }, ...(o.cont === undefined ? {} : { continuation: { seed: o.cont, after_epoch: 8 } }) }),
    framework: o.framework ?? null,
    metrics: [{ epoch: 1, val_err_precise: 80 }, { epoch: done, ...o.last }] as Record<string, Num>[],
    evals: (o.evals ?? []).map((e) => ({ epoch: done, stats: '', stats_data: '', data: '', samples: null, batch: null, estimator: '', repeats: 1, err_mean: null, err_std: null, errs: [], ...e })),
    tracePath: null, session: 'finished', roles: o.roles ?? [],
  };
};
const none = { table1: [], table2: [], fig6: [], table4: [], fig8: [], twin: [], variant: [], continuations: [] };
const sweepRun = (nbs: number, seed: number, pop: number, mb: number, train = 5) => mk(`fig5-6/nbs${nbs}_frozen0_seed${seed}`, { nbs, seed, last: { val_err_precise: pop, val_err_minibatch: mb, train_err_nbs: train } });

describe('findings', () => {
  it('Figs. 5-6: the paper\'s side at each NBS decides the verdict (NBS 2: mini-batch better; NBS 128: worse)', () => {
    const fig6 = [sweepRun(2, 0, 20, 18), sweepRun(2, 1, 21, 19.1), sweepRun(128, 0, 18, 19), sweepRun(128, 1, 18, 17.5)];
    const { rows } = findings({ ...none, fig6 });
    const mb = rows.filter((r) => r.finding.startsWith('Mini-batch vs population'));
    expect(mb.map((r) => [r.where, r.sign, r.verdict])).toEqual([
      ['NBS 2, last epoch', -1, 'holds'], // paper 26.0 − 32.5 < 0; ours −2, −1.9
      ['NBS 128, last epoch', 1, 'undecided'], // paper +1.3; ours +1, −0.5
    ]);
    expect(mb[0].pairs).toEqual([{ seed: 0, d: -2 }, { seed: 1, d: expect.closeTo(-1.9, 12) }]);
    // the same data the other way round: excludes zero against the paper
    const rev = findings({ ...none, fig6: [sweepRun(2, 0, 18, 20), sweepRun(2, 1, 19, 21.1)] }).rows.find((r) => r.where === 'NBS 2, last epoch')!;
    expect(rev.verdict).toBe('does not hold');
  });
  it('pairs two recipes by config seed, not by order; a seed without its partner is left out', () => {
    const fig6 = [sweepRun(2, 0, 20, 22), sweepRun(2, 1, 21, 22), sweepRun(2, 2, 30, 31)];
    // names that sort against the seeds: the report lists runs by name
    const frozen = [mk('f/nbs2_frozen10_a', { nbs: 2, seed: 1, frozen: 2, last: { val_err_frozen: 20.5 } }), mk('f/nbs2_frozen10_b', { nbs: 2, seed: 0, frozen: 2, last: { val_err_frozen: 19 } })];
    const f = findings({ ...none, fig6: [...fig6, ...frozen] }).rows.find((r) => r.finding.startsWith('FrozenBN'))!;
    expect(f.pairs).toEqual([{ seed: 0, d: -1 }, { seed: 1, d: -0.5 }]);
    expect(f.iv.n).toBe(2);
  });
  it("Fig. 6 with several continuations per fork: paired by continuation, averaged per seed, the seeds compared", () => {
    const fig6 = [sweepRun(2, 0, 20, 22), sweepRun(2, 1, 21, 22)];
    const frozen = [0, 1].map((s) => mk(`fig5-6/nbs2_frozen2_seed${s}`, { nbs: 2, seed: s, frozen: 2, last: { val_err_frozen: 19 + s } }));
    // continuation k of seed s: regular 20 + s + k/10, FrozenBN 19 + s − k/10, so d = −1 − k/5
    const conts = [0, 1].flatMap((s) => [1, 2].flatMap((k) => [
      mk(`cont/nbs2_frozen0_seed${s}_cont${k}`, { nbs: 2, seed: s, cont: k, last: { val_err_precise: 20 + s + k / 10 } }),
      mk(`cont/nbs2_frozen2_seed${s}_cont${k}`, { nbs: 2, seed: s, cont: k, frozen: 2, last: { val_err_frozen: 19 + s - k / 10 } }),
    ]));
    const f = findings({ ...none, fig6: [...fig6, ...frozen], continuations: conts }).rows.find((r) => r.finding.startsWith('FrozenBN'))!;
    expect(f.where).toBe("NBS 2, last epoch; mean of each seed's 3 continuations of its fork");
    expect(f.iv.n).toBe(2); // seeds, not continuations
    expect(f.pairs.map((p) => [p.seed, +p.d.toFixed(10), p.draws!.map((d) => +d.toFixed(10))])).toEqual([[0, -1.2, [-1, -1.2, -1.4]], [1, -1.2, [-1, -1.2, -1.4]]]);
    expect(textMarkdown(findingsTable({ ...none, fig6: [...fig6, ...frozen], continuations: conts }))).toContain('s0: −1.20 (−1.00, −1.20, −1.40)');
    // without the continuations, the same seeds' forks alone
    expect(findings({ ...none, fig6: [...fig6, ...frozen] }).rows.find((r) => r.finding.startsWith('FrozenBN'))!.where).toBe('NBS 2, last epoch');
  });
  it(`a comparison the paper gives under ${MIN_PAPER_EFFECT} point has no verdict, and is listed`, () => {
    const fig6 = [sweepRun(8, 0, 17, 19), sweepRun(8, 1, 17, 19.2)];
    const frozen = [0, 1].map((s) => mk(`f/nbs8_frozen10_seed${s}`, { nbs: 8, seed: s, frozen: 2, last: { val_err_frozen: 17 } }));
    const { rows, noSide } = findings({ ...none, fig6: [...fig6, ...frozen] });
    expect(rows.some((r) => r.finding.startsWith('FrozenBN'))).toBe(false); // paper at NBS 8: 24.2 − 24.3
    expect(noSide.map((c) => c.finding)).toEqual(['FrozenBN for the last epochs vs regular BN (Fig. 6)']);
    const md = textMarkdown(findingsTable({ ...none, fig6: [...fig6, ...frozen] }));
    expect(md.indexOf('Rule (applied by code')).toBeLessThan(md.indexOf('| Finding |')); // the rule is above the table
    expect(md).toMatch(/No side in the paper .*FrozenBN .*NBS 8, last epoch: paper −0\.1/);
    expect(md).toContain('| s0: +2.00, s1: +2.20 | **holds** |');
    const html = textHtml(findingsTable({ ...none, fig6: [...fig6, ...frozen] }));
    expect(html).toContain('<td><b>holds</b></td>');
    expect(html).not.toContain('**');
  });
  it('Table 2: B = 2 vs B = 1000 and mean-of-var vs pooled from eval.csv rows', () => {
    const ev = (b: number, err: number, estimator = 'pooled') => ({ stats: 'precise', samples: 10000, batch: b, estimator, err_mean: err });
    const t2 = [0, 1].flatMap((s) => [
      mk(`table2/nbs32_seed${s}`, { nbs: 32, seed: s, roles: ['table2.regular-nbs'], evals: [ev(2, 19 + s), ev(10, 18), ev(1000, 18 - s / 10), ev(2, 20, 'mean-of-var')] }),
      mk(`table2/nbs2_seed${s}`, { nbs: 2, seed: s, roles: ['table2.small-nbs'], evals: [ev(2, 21), ev(10, 21), ev(1000, 21)] }),
    ]);
    const rows = findings({ ...none, table2: t2 }).rows;
    const b2 = rows.filter((r) => r.a === 'B=2');
    expect(b2.map((r) => [r.where.slice(0, 12), r.pairs.map((p) => +p.d.toFixed(10))])).toEqual([['NBS-32 model', [1, 2.1]], ['NBS-2 model ', [0, 0]]]);
    expect(b2[0].paper).toBeCloseTo(28.8 - 23.5, 12);
    const mov = rows.find((r) => r.a === 'mean-of-var B=2')!;
    expect([mov.paper, mov.sign, mov.pairs.map((p) => p.d)]).toEqual([null, 1, [1, 0]]);
    expect(textMarkdown(findingsTable({ ...none, table2: t2 }))).toContain('| not in the paper; expected: > 0 |');
  });
});

describe('the PyTorch twin', () => {
  const bnlab = [sweepRun(2, 0, 18.6, 20.3, 13.7), sweepRun(2, 1, 19, 20.4, 15.2), sweepRun(32, 0, 18.5, 19.1), sweepRun(32, 1, 17.9, 18.5)];
  const twin = (nbs: number, seed: number, done: number, pop = 18, mb = 19) => mk(`twin/nbs${nbs}_frozen0_seed${seed}`, { nbs, seed, epochs: 50, done, framework: 'pytorch 1.13', last: { val_err_precise: pop, val_err_minibatch: mb, train_err_nbs: 3 } });
  it('only a twin with every epoch is used; a partial one is named as left out', () => {
    const twins = [twin(32, 0, 50, 18.8, 19.6), twin(32, 1, 50, 18.2, 19.3), twin(2, 0, 24)];
    expect(completeTwins(twins).map((r) => r.name)).toEqual(['twin/nbs32_frozen0_seed0', 'twin/nbs32_frozen0_seed1']);
    const t = twinTable(bnlab, [...bnlab, ...twins])!;
    const row = (nbs: string, m: string) => t.rows.find((r) => r[0] === nbs && r[1].startsWith(m))!;
    expect(row('32', 'val, population')[3]).toBe('18.50 ± 0.42 (2)');
    expect(row('32', 'val, population')[4]).toBe('+0.30'); // 18.5 − 18.2
    expect(row('2', 'val, population')[3]).toBe('—'); // 24 of 50 epochs: not used
    expect(t.notes.join(' ')).toContain('twin/nbs2_frozen0_seed0 (24 of 50 epochs)');
    const f = findings({ ...none, fig6: bnlab, twin: twins }).rows.filter((r) => r.finding.endsWith('PyTorch twin'));
    expect(f.map((r) => r.where)).toEqual(['NBS 32, last epoch (scripts/torch_twin.py)']);
  });
  it('the training-regime table leaves out a twin still training', () => {
    const twins = [twin(2, 0, 24), twin(32, 0, 50)].map((r) => ({ ...r, dir: process.cwd() })); // regimeTable resolves folders
    expect(regimeTable(twins).rows.map((r) => r.labels[0])).toEqual(['twin/nbs32_frozen0']);
  });
  it('no twin run, no twin table', () => {
    expect(twinTable(bnlab, bnlab)).toBeNull();
  });
});

describe('Figs. 5-6 in a changed regime (report.roles fig5-6.variant)', () => {
  // train, population stats: bnlab eval --stats precise --data split=train,augment=false
  const trainPop = (err: number) => ({ stats: 'precise', data: 'split=train,augment=false', samples: 2000, err_mean: err });
  const base = [0, 1].flatMap((s) => [
    mk(`fig5-6/nbs2_frozen0_seed${s}`, { nbs: 2, seed: s, roles: ['fig5-6'], last: { val_err_precise: 19, val_err_minibatch: 20.5, train_err_nbs: 14 + s }, evals: [trainPop(12.5 + s)] }),
    mk(`fig5-6/nbs32_frozen0_seed${s}`, { nbs: 32, seed: s, roles: ['fig5-6'], last: { val_err_precise: 18, val_err_minibatch: 19, train_err_nbs: 2 }, evals: [trainPop(2.5)] }),
  ]);
  // deeper: mini-batch statistics now better on val (−2, −2.2) and on its own training images (+3, +3.5)
  const deep = [0, 1].flatMap((s) => [
    mk(`fig5-6-deep/nbs2_seed${s}`, { nbs: 2, seed: s, depth: 56, roles: ['fig5-6.variant'], last: { val_err_precise: 22 + s / 5, val_err_minibatch: 20, train_err_nbs: 10 }, evals: [trainPop(13 + s / 2)] }),
    mk(`fig5-6-deep/nbs32_seed${s}`, { nbs: 32, seed: s, depth: 56, roles: ['fig5-6.variant'], last: { val_err_precise: 18, val_err_minibatch: 19 + s / 10, train_err_nbs: 1 } }),
  ]);
  it('a variant is named by the keys it changes and never pooled with the fig5-6 runs', () => {
    expect(variantsOf(base, deep).map((v) => [v.label, v.runs.length])).toEqual([['model.depth 20 → 56', 4]]);
    const rows = findings({ ...none, fig6: base, variant: deep }).rows;
    const mb = rows.filter((r) => r.finding.startsWith('Mini-batch vs population'));
    expect(mb.map((r) => [r.finding.endsWith('changed regime'), r.where, r.pairs.map((p) => +p.d.toFixed(10))])).toEqual([
      [false, 'NBS 2, last epoch', [1.5, 1.5]],
      [false, 'NBS 32, last epoch', [1, 1]],
      [true, 'NBS 2, last epoch; model.depth 20 → 56', [-2, -2.2]],
      [true, 'NBS 32, last epoch; model.depth 20 → 56', [1, 1.1]],
    ]);
    expect(mb.map((r) => r.verdict)).toEqual(['does not hold', 'holds', 'holds', 'holds']);
  });
  it('train/test inconsistency on the training images: only at an NBS where the paper shows it, each regime on its own', () => {
    const inc = findings({ ...none, fig6: base, variant: deep }).rows.filter((r) => r.finding.startsWith('Train/test inconsistency'));
    expect(inc.map((r) => [r.where, r.sign, r.pairs.map((p) => +p.d.toFixed(10)), r.verdict])).toEqual([
      ['NBS 2, last epoch', 1, [-1.5, -1.5], 'does not hold'], // population better on train: 12.5 vs 14, 13.5 vs 15
      ['NBS 2, last epoch; model.depth 20 → 56', 1, [3, 3.5], 'holds'],
    ]);
  });
  it('the report sets the variant beside the fig5-6 runs, NBS by NBS, and keeps it out of Figs. 5-6', () => {
    const t = variantTable(base, deep)!;
    const row = (nbs: string, m: string) => t.rows.find((r) => r[1] === nbs && r[2] === m)!;
    expect(row('2', 'train: population − mini-batch').slice(3, 5)).toEqual(['−1.50 ± 0.00 (2)', '3.25 ± 0.35 (2)']);
    expect(row('32', 'train, population stats, no aug')[4]).toBe('—'); // not evaluated in the variant
    expect(row('2', 'val: mini-batch − population')[6]).toBe('fig5-6 s0 1.50, s1 1.50; variant s0 −2.00, s1 −2.20');
    // −2.1 − 1.5; one side without spread leaves the other's: df = 1, half-width t(0.975, 1)·(0.1·√2)/√2
    const half = Math.tan(0.475 * Math.PI) * 0.1;
    expect(row('2', 'val: mini-batch − population')[5]).toBe(`−3.60 [${(-3.6 - half).toFixed(2).replace('-', '−')}, ${(-3.6 + half).toFixed(2).replace('-', '−')}]`);
    // the report picks runs by role (each needs a folder of its own: shared runs are counted once)
    const real = [...base, ...deep].map((run) => ({ ...run, dir: mkdtempSync(join(tmpdir(), 'bnlab-variant-')) }));
    const tables = verdictTables(real);
    expect(tables.map((x) => x.title.slice(0, 30))).toEqual(['Findings — paired per-seed dif', 'Figs. 5-6 in a changed regime ']);
    const fig5 = buildTable('fig5', runsFor('fig5', real));
    expect(fig5.notes.join(' ')).not.toContain('deep'); // the variant's runs are not Fig. 5's
    expect(variantTable(base, [])).toBeNull();
  });
  it('its Figs. 5-6 are figures of their own: another file, a title naming the change', () => {
    const { figures } = variantFigures(variantsOf(base, deep), ['5', '6']);
    expect(figures.map((f) => f.name)).toEqual(['fig5-variant', 'fig6-variant']);
    expect(figures[0].title).toBe('Fig. 5 — error vs normalization batch size, changed regime: model.depth 20 → 56');
    expect((figures[0].spec.title as { text: string }).text).toBe(figures[0].title);
    expect(JSON.stringify(figures[0].spec)).toContain('nbs2_seed1'); // the variant's runs, not the fig5-6 ones
    expect(JSON.stringify(figures[0].spec)).not.toContain('nbs2_frozen0_seed1');
  });
});
