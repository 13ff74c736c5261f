// The miniature's findings, each decided by one written rule: for every comparison the paper makes
// (A below B, ...), the per-seed difference A − B paired by seed, its 95% t-interval, and the
// verdict the rule gives. The values come from the tables' own per-run readers (tables.ts), so a
// finding's numbers are the tables' numbers seed by seed; the rule lives in stats.ts.
import { FIG5, FIG5_NBS, FIG8, TABLE1, TABLE1_N, TABLE2, TABLE4, type Fig5Series } from './paper.js';
import { lastEpoch, seedOf, type Run } from './runs.js';
import { tInterval, verdict, type Interval, type Verdict } from './stats.js';
import { signed, type Stat, type TextTable } from './table.js';
import { compositionLabel, earlyEpoch, evalValue, fig56At, fig8At, fig8Runs, isPatterned, nbsSweep, table1At, table1Roles, table2At, table2Roles, table4Pick, table4Runs, trainPopulationAt } from './tables.js';
import { completeTwins } from './twin.js';
import { variantsOf, type Variant } from './variant.js';
import { MODE, MODE_FACTS } from '../bn/columns.js';

/**
 * Below this many points the paper's own difference is no direction to test (its Fig. 5-6 values
 * are read off a plot to ±0.2, so two readings differ by up to 0.4): such a comparison is listed
 * in a note, not given a verdict.
 */
export const MIN_PAPER_EFFECT = 0.5;

export interface Pair {
  seed: number;
  d: number; // A − B for this seed (the mean over its continuations when it has several)
  /** each continuation's A − B, when the seed's model was continued several times from one fork */
  draws?: number[];
}
export interface Comparison {
  finding: string; // the paper's claim, in words
  where: string; // which model, epoch or NBS
  a: string;
  b: string;
  paper: number | null; // the paper's A − B; null where it draws a curve without a number
  sign: 1 | -1; // the side of zero the paper is on
  pairs: Pair[];
  basis?: string; // where the side comes from when the paper gives no number
}
export interface Finding extends Comparison {
  iv: Interval;
  verdict: Verdict;
}
/** The runs each experiment's findings are read from (report.ts picks them as it does for the tables). */
export interface FindingRuns {
  table1: Run[];
  table2: Run[];
  fig6: Run[];
  table4: Run[];
  fig8: Run[];
  twin: Run[];
  /** Figs. 5-6 in a changed regime (report.roles fig5-6.variant), never pooled with fig6's runs */
  variant: Run[];
  /** more continuations of Fig. 6's forks (report.roles fig6.continuation) */
  continuations: Run[];
}

type Val = (run: Run) => number | null;
const val = (s: Stat | null) => s?.mean ?? null;
/** One draw of a seed's training: its seed and, for a fork's other continuations, continuation.seed. */
const drawOf = (run: Run) => `${seedOf(run)}/${run.config.continuation?.seed ?? ''}`;
/** One pair per seed: a seed continued several times from one fork counts once, with the mean of its draws. */
function perSeed(ps: { seed: number; d: number }[]): Pair[] {
  const seeds = [...new Set(ps.map((p) => p.seed))].sort((x, y) => x - y);
  return seeds.map((seed) => {
    const ds = ps.filter((p) => p.seed === seed).map((p) => p.d);
    return ds.length === 1 ? { seed, d: ds[0] } : { seed, d: ds.reduce((x, y) => x + y, 0) / ds.length, draws: ds };
  });
}

/** A − B measured on the same run (model): one pair per run that has both. */
function within(runs: Run[], a: Val, b: Val): Pair[] {
  return perSeed(runs.flatMap((run) => {
    const [x, y] = [a(run), b(run)];
    return x === null || y === null ? [] : [{ seed: seedOf(run), d: x - y }];
  }));
}
/** A on one recipe's runs, B on another's, paired by seed (and continuation); a run without its partner is left out. */
function across(as: Run[], bs: Run[], a: Val, b: Val): Pair[] {
  return perSeed(as.flatMap((ra) => {
    const rb = bs.find((run) => drawOf(run) === drawOf(ra));
    const [x, y] = [a(ra), rb ? b(rb) : null];
    return x === null || y === null ? [] : [{ seed: seedOf(ra), d: x - y }];
  }));
}
const comp = (finding: string, where: string, a: string, b: string, paper: number | null, pairs: Pair[], side?: { sign: 1 | -1; basis: string }): Comparison => ({
  finding, where, a, b, paper, pairs, sign: side?.sign ?? (paper !== null && paper < 0 ? -1 : 1), ...(side ? { basis: side.basis } : {}),
});

function table1Findings(runs: Run[]): Comparison[] {
  const [small, large] = table1Roles(runs);
  const nMax = TABLE1_N[TABLE1_N.length - 1];
  const rows: [Run[], (run: Run) => number, number][] = [[small, lastEpoch, 0], [large, earlyEpoch, 1], [large, lastEpoch, 2]];
  return rows.flatMap(([rs, at, i]) => {
    if (!rs.length) return [];
    const p = TABLE1[i];
    const where = `batch ${rs[0].batch}, epoch ${at(rs[0])} of ${rs[0].epochs}`;
    const cell = (n: number | typeof MODE.ema): Val => (run) => val(table1At(run, at(run), n).stat);
    return [
      comp('EMA worse than PreciseBN (Table 1)', where, 'EMA', `PreciseBN N=${nMax}`, p.ema.mean - p.n[3].mean, within(rs, cell(MODE.ema), cell(nMax))),
      comp('PreciseBN with N = 10 samples worse than with 10^4 (Table 1)', where, 'N=10', `N=${nMax}`, p.n[0].mean - p.n[3].mean, within(rs, cell(10), cell(nMax))),
    ];
  });
}

/** The last epoch before the first lr decay (a step schedule's first step), else 30% of the run. */
const highLrEpochs = (run: Run) => (run.config.optim?.schedule === 'step' && run.config.optim?.steps?.length ? Math.min(...run.config.optim.steps) : Math.round(0.3 * run.epochs));
/** Figs. 3-4's gap: per epoch up to the first decay, val EMA − val PreciseBN; their mean. */
const earlyGap: Val = (run) => {
  const [ema, precise] = [MODE_FACTS.ema.valColumn, MODE_FACTS.precise.valColumn];
  const ds = run.metrics.filter((m) => (m.epoch ?? 0) >= 1 && (m.epoch ?? 0) <= highLrEpochs(run) && typeof m[ema] === 'number' && typeof m[precise] === 'number').map((m) => m[ema]! - m[precise]!);
  return ds.length ? ds.reduce((x, y) => x + y, 0) / ds.length : null;
};
function fig34Findings(runs: Run[]): Comparison[] {
  return table1Roles(runs).filter((rs) => rs.length).map((rs) =>
    // the paper draws this as curves (no number): its side is EMA above PreciseBN early on
    comp('EMA noisier than PreciseBN while the lr is high (Figs. 3-4)', `batch ${rs[0].batch}, mean over epochs 1-${highLrEpochs(rs[0])} (before the first lr decay)`, 'EMA', 'PreciseBN', null, within(rs, earlyGap, () => 0), { sign: 1, basis: 'its curves' }),
  );
}

function table2Findings(runs: Run[]): Comparison[] {
  return table2Roles(runs).flatMap((rs, i) => {
    if (!rs.length) return [];
    const p = TABLE2[i];
    const where = `NBS-${rs[0].nbs} model (ResNet-${rs[0].config.model?.depth ?? '?'}), last epoch`;
    const at = (b: number | 'N' | typeof MODE.ema, est?: string): Val => (run) => val(table2At(run, b, est));
    return [
      comp('A small PreciseBN batch B hurts (Table 2)', where, 'B=2', 'B=1000', p.b[0].mean - p.b[3].mean, within(rs, at(2), at(1000))),
      // not in the paper: the original BN paper's estimator, which misses the spread of the batch means
      comp("The BN paper's mean-of-var estimator worse than pooled at B = 2 (ours)", where, 'mean-of-var B=2', 'pooled B=2', null, within(rs, at(2, 'mean-of-var'), at(2)), { sign: 1, basis: 'not in the paper; expected' }),
      comp('EMA worse than PreciseBN (Table 2)', where, 'EMA', 'PreciseBN B=N', p.ema.mean - p.bN.mean, within(rs, at(MODE.ema), at('N'))),
    ];
  });
}

function fig56Findings(runs: Run[], twins: Run[], variants: Variant[], continuations: Run[]): Comparison[] {
  const { sweep, frozen } = nbsSweep(runs);
  const paper = (s: Fig5Series, nbs: number) => (FIG5_NBS.includes(nbs as (typeof FIG5_NBS)[number]) ? FIG5[s][FIG5_NBS.indexOf(nbs as (typeof FIG5_NBS)[number])] : null);
  const gap = (s: Fig5Series, t: Fig5Series, n: number) => (paper(s, n) === null || paper(t, n) === null ? null : paper(s, n)! - paper(t, n)!);
  const at = (s: Fig5Series): Val => (run) => val(fig56At(run, s));
  const nbsOf = (rs: Run[]) => [...new Set(rs.map((run) => run.nbs))].sort((x, y) => x - y);
  const of = (rs: Run[], n: number) => rs.filter((run) => run.nbs === n);
  const out: Comparison[] = [];
  const MB = 'Mini-batch vs population statistics at inference (Fig. 5)';
  const minibatchGap = (rs: Run[], finding: string, where: string) =>
    nbsOf(rs).map((n) => comp(finding, `NBS ${n}, last epoch${where}`, 'val, mini-batch stats', 'val, population stats', gap('val_minibatch', 'val_population', n), within(of(rs, n), at('val_minibatch'), at('val_population'))));
  out.push(...minibatchGap(sweep, MB, ''));
  out.push(...minibatchGap(completeTwins(twins), `${MB}, PyTorch twin`, ' (scripts/torch_twin.py)'));
  for (const v of variants) out.push(...minibatchGap(v.runs, `${MB}, changed regime`, `; ${v.label}`));
  const ns = nbsOf(sweep);
  if (ns.length >= 2) {
    const [lo, hi] = [ns[0], ns[ns.length - 1]];
    for (const [claim, s] of [['Smaller NBS, higher training error (Fig. 5)', 'train_nbs'], ['Smaller NBS, higher validation error with population statistics (Fig. 5)', 'val_population']] as const)
      out.push(comp(claim, `NBS ${lo} vs NBS ${hi}, last epoch`, `NBS ${lo}`, `NBS ${hi}`, paper(s, lo) === null || paper(s, hi) === null ? null : paper(s, lo)! - paper(s, hi)!, across(of(sweep, lo), of(sweep, hi), at(s), at(s))));
  }
  // a fork's other continuations join their seed's pair (averaged with it), never count as seeds
  const [frozenAll, regularAll] = [[...frozen, ...continuations.filter((run) => run.frozen > 0)], [...sweep, ...continuations.filter((run) => run.frozen === 0)]];
  for (const n of nbsOf(frozen)) {
    const pairs = across(of(frozenAll, n), of(regularAll, n), at('val_frozen'), at('val_population'));
    const k = [...new Set(pairs.map((p) => p.draws?.length ?? 1))];
    const draws = k.length === 1 && k[0] > 1 ? `; mean of each seed's ${k[0]} continuations of its fork` : k.length > 1 ? `; mean of each seed's ${Math.min(...k)}-${Math.max(...k)} continuations of its fork` : '';
    out.push(comp('FrozenBN for the last epochs vs regular BN (Fig. 6)', `NBS ${n}, last epoch${draws}`, 'FrozenBN', 'regular BN, population stats', gap('val_frozen', 'val_population', n), pairs));
  }
  // Ours: the inconsistency itself, on the very images the model fit, at the NBS where the paper
  // shows it on val (mini-batch statistics better than population ones there).
  const shown = (n: number) => (gap('val_minibatch', 'val_population', n) ?? 0) <= -MIN_PAPER_EFFECT;
  const trainPop: Val = (run) => val(trainPopulationAt(run));
  const inconsistency = (rs: Run[], where: string) =>
    nbsOf(rs).filter(shown).map((n) => comp('Train/test inconsistency: population statistics worse than mini-batch ones on its own training images (ours)', `NBS ${n}, last epoch${where}`, 'train, population stats', 'train, mini-batch stats', null, within(of(rs, n), trainPop, at('train_nbs')), { sign: 1, basis: 'not in the paper; inconsistency means' }));
  // a Fig. 5 NBS the paper did not plot has no side to test
  return [...out.filter((c) => c.paper !== null), ...inconsistency(sweep, ''), ...variants.flatMap((v) => inconsistency(v.runs, `; ${v.label}`))];
}

const DOMAIN: Record<string, string> = { '': 'clean val', contrast: 'contrast', gaussian_noise: 'gaussian noise', jpeg: 'JPEG', 'val-noaug': 'val without augmentation' };
function table4Findings(runs: Run[]): Comparison[] {
  const cands = table4Runs(runs);
  const err = (on: string, from: string) => TABLE4.find((x) => x.on === on && x.from === from)?.err ?? null;
  return TABLE4.filter((x) => x.from !== '').flatMap(({ on, from }) => {
    const cell = (f: string): Val => (run) => val(evalValue(table4Pick(run, on, f)));
    const pairs = within(cands, cell(from), cell(''));
    const p = err(on, from) === null || err(on, '') === null ? null : err(on, from)! - err(on, '')!;
    return [comp('Population statistics re-estimated on another domain (Table 4)', `evaluated on ${DOMAIN[on] ?? on}`, `stats from ${DOMAIN[from] ?? from}`, 'stats from train', p, pairs)];
  });
}

function fig8Findings(runs: Run[]): Comparison[] {
  const pat = fig8Runs(runs).filter(isPatterned);
  if (!pat.length) return [];
  const where = `trained on ${compositionLabel(pat[0])}, last epoch`;
  const at = (stats: string, col: string): Val => (run) => val(fig8At(run, stats, col));
  const [composed, random, precise] = [at(MODE.composed, MODE_FACTS.composed.valColumn), at(MODE.minibatch, MODE_FACTS.minibatch.valColumn), at(MODE.precise, MODE_FACTS.precise.valColumn)];
  return [
    comp('Leakage: composed test groups beat random ones (Fig. 8)', where, 'composed groups', 'random groups', FIG8.composed - FIG8.random, within(pat, composed, random)),
    comp('Leakage: random test groups beat population statistics (Fig. 8)', where, 'random groups', 'PreciseBN', FIG8.random - FIG8.precise, within(pat, random, precise)),
  ];
}

/** Every comparison with data, split into findings (with verdicts) and those the paper gives no side. */
export function findings(runs: FindingRuns): { rows: Finding[]; noSide: Comparison[] } {
  const all = [...table1Findings(runs.table1), ...fig34Findings(runs.table1), ...table2Findings(runs.table2), ...fig56Findings(runs.fig6, runs.twin, variantsOf(runs.fig6, runs.variant), runs.continuations), ...table4Findings(runs.table4), ...fig8Findings(runs.fig8)].filter((c) => c.pairs.length);
  const noSide = all.filter((c) => c.paper !== null && Math.abs(c.paper) < MIN_PAPER_EFFECT);
  const rows = all.filter((c) => !noSide.includes(c)).map((c) => {
    const iv = tInterval(c.pairs.map((p) => p.d));
    return { ...c, iv, verdict: verdict(iv, c.sign) };
  });
  return { rows, noSide };
}

export const RULE = [
  'Rule (applied by code, src/report/findings.ts and stats.ts, not by hand): for each comparison, d = A − B in points of error for each seed, A and B paired by seed (both measured on one run, or on two recipes\' runs with the same seed). Interval: mean(d) ± t·std(d)/√n, the two-sided 95% Student-t interval with n − 1 degrees of freedom (t = 12.71 for 2 seeds, 4.30 for 3, 2.78 for 5).',
  `Verdict: **holds** when the interval excludes zero on the paper's side (the sign of the paper's own A − B; where the paper gives no number, the side named in the Paper column); **does not hold** when it excludes zero on the other side; **undecided** otherwise, and with one seed (no interval). A comparison whose paper difference is under ${MIN_PAPER_EFFECT} point has no side and gets no verdict (listed below the table).`,
];

export function findingsTable(runs: FindingRuns): TextTable {
  const { rows, noSide } = findings(runs);
  const seeds = [...new Set(rows.map((r) => r.iv.n))].sort((x, y) => x - y);
  return {
    title: 'Findings — paired per-seed differences and verdicts',
    intro: RULE,
    head: ['Finding', 'Where', 'A − B', 'Paper', 'Ours: mean ± 95% half-width', '95% interval', 'Std', 'Seeds', 'Per seed', 'Verdict'],
    rows: rows.map((f) => [
      f.finding,
      f.where,
      `${f.a} − ${f.b}`,
      f.paper === null ? `${f.basis ?? 'no number'}: ${f.sign > 0 ? '> 0' : '< 0'}` : signed(f.paper, 1),
      f.iv.lo === null ? signed(f.iv.mean) : `${signed(f.iv.mean)} ± ${(f.iv.hi! - f.iv.mean).toFixed(2)}`,
      f.iv.lo === null ? '— (one seed)' : `[${signed(f.iv.lo)}, ${signed(f.iv.hi!)}]`,
      f.iv.std.toFixed(2),
      String(f.iv.n),
      f.pairs.map((p) => `s${p.seed}: ${signed(p.d)}${p.draws ? ` (${p.draws.map((d) => signed(d)).join(', ')})` : ''}`).join(', '),
      `**${f.verdict}**`,
    ]),
    notes: [
      ...(seeds.includes(2) ? ['With 2 seeds the interval is mean ± 6.35·|d₁ − d₂|: it excludes zero only when the two seeds\' differences agree to within about a sixth of their mean.'] : []),
      ...(noSide.length ? [`No side in the paper (|paper A − B| < ${MIN_PAPER_EFFECT}), so no verdict: ${noSide.map((c) => `${c.finding}, ${c.where}: paper ${signed(c.paper!, 1)}, ours ${signed(tInterval(c.pairs.map((p) => p.d)).mean)} (${c.pairs.length} seeds)`).join('; ')}.`] : []),
      'Paper values: its tables, or Figs. 5, 6, 8 read off the plots (±0.2 each). Seeds are config.yaml\'s `seed`. Equality claims (N = 1000 enough, B = N equal to B = 1000) are not tested by this rule: an interval around zero only says "undecided".',
    ],
  };
}
