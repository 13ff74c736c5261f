// The paper's tables built from run folders: which eval.csv row fills which cell. A run plays the
// role it declares (report.roles, set by the sweep files); miniature runs use other batch sizes and
// epochs, so their actual values are shown in the labels and footnotes.
import { FIG5, FIG5_LABELS, FIG5_NBS, FIG8, TABLE1, TABLE1_N, TABLE2, TABLE2_B, TABLE4, type Fig5Series } from './paper.js';
import { lastEpoch, metricsAt, numClasses, type EvalRow, type Run } from './runs.js';
import { combine, type Stat, type Table } from './table.js';
import type { ReportRole } from '../config/schema.js';
import { MODE, MODE_FACTS } from '../bn/columns.js';

export const TABLE_IDS = ['table1', 'table2', 'fig5', 'fig6', 'table4', 'fig8'] as const;
export type TableId = (typeof TABLE_IDS)[number];

const isBase = (e: EvalRow) => domainKey(e.stats_data) === '' && domainKey(e.data, 'on') === '';
const evalStat = (e: EvalRow | undefined): Stat | null => {
  if (!e) return null;
  const m = e.err_mean ?? (e.errs.length ? e.errs.reduce((a, b) => a + b, 0) / e.errs.length : null);
  if (m === null) return null;
  const reps = e.repeats ?? e.errs.length;
  return reps > 1 && e.err_std !== null ? { mean: m, std: e.err_std, n: reps } : { mean: m, n: reps || 1 };
};
const metricStat = (run: Run, epoch: number, col: string): Stat | null => {
  const v = metricsAt(run, epoch)?.[col];
  return v === null || v === undefined ? null : { mean: v };
};
/** Prefer the paper's estimator, then more repeats. */
const best = (rows: EvalRow[]) => [...rows].sort((a, b) => +(b.estimator === 'pooled') - +(a.estimator === 'pooled') || (b.repeats ?? 0) - (a.repeats ?? 0))[0];
const uniq = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
/** The regular-BN runs (seeds of one recipe together) that declare a role. */
const declaring = (runs: Run[], role: ReportRole) => runs.filter((run) => run.frozen === 0 && run.roles.includes(role));
const runList = (rs: Run[]) => rs.map((run) => run.name).join(', ');

/** Table 1's runs: [small batch, large batch], as the runs declare (report.roles). */
export const table1Roles = (runs: Run[]): [Run[], Run[]] => [declaring(runs, 'table1.small-batch'), declaring(runs, 'table1.large-batch')];
/** The epoch standing for the paper's "30 of 100": the evaluated epoch nearest 30% of the schedule. */
export function earlyEpoch(run: Run): number {
  const last = run.epochs; // the schedule's length: 30% of it, even if the run stopped early
  const target = 0.3 * last;
  const have = uniq([...run.evals.filter((e) => e.stats === MODE.precise).map((e) => e.epoch), ...run.metrics.map((m) => m.epoch ?? 0)]).filter((e) => e > 0 && e < last);
  return have.length ? have.reduce((a, b) => (Math.abs(b - target) < Math.abs(a - target) ? b : a)) : Math.max(1, Math.round(target));
}
/** One run's Table 1 cell at an epoch: EMA, or PreciseBN with N samples (and which B it used). */
export function table1At(run: Run, epoch: number, n: number | typeof MODE.ema): { stat: Stat | null; used?: string } {
  if (n === MODE.ema) return { stat: evalStat(best(run.evals.filter((e) => e.stats === MODE.ema && isBase(e) && e.epoch === epoch))) ?? metricStat(run, epoch, MODE_FACTS.ema.valColumn) };
  const rows = run.evals.filter((e) => e.stats === MODE.precise && isBase(e) && e.epoch === epoch && e.samples === n);
  const row = best(rows.filter((e) => e.batch === Math.min(run.preciseBatch, n))) ?? best(rows);
  if (row) return { stat: evalStat(row), used: `N=${n}: B=${row.batch}` };
  if (run.config.precise?.samples === n) return { stat: metricStat(run, epoch, MODE_FACTS.precise.valColumn), used: `N=${n}: metrics.csv val_err_precise` };
  return { stat: null };
}

function table1(runs: Run[]): Table {
  const notes: string[] = [];
  const [small, large] = table1Roles(runs);
  const early = (rs: Run[]) => {
    if (!rs.length) return null;
    const [e, last] = [earlyEpoch(rs[0]), rs[0].epochs];
    if (last !== 100 || e !== 30) notes.push(`Row 2: the paper's "epoch 30 of 100" is mapped to epoch ${e} of ${last} (${Math.round((100 * e) / last)}% of the run; target 30%).`);
    return e;
  };
  const bLabel = (rs: Run[], paper: number) => (rs.length ? `${rs[0].batch}${rs[0].batch === paper ? '' : ` (paper ${paper})`}` : `${DASHL} (paper ${paper})`);
  const eLabel = (e: number | null, of: number | undefined, paper: number) => (e === null ? `${DASHL} (paper ${paper})` : of === 100 && e === paper ? `${e}` : `${e} of ${of} (paper ${paper} of 100)`);
  const usedB = new Set<string>();
  const cellsAt = (rs: Run[], at: (run: Run) => number) =>
    ([MODE.ema, ...TABLE1_N] as const).map((n) =>
      combine(
        rs.map((run) => {
          const { stat, used } = table1At(run, at(run), n);
          if (used) usedB.add(used);
          return stat;
        }),
      ),
    );
  const earlyE = early(large);
  const rowDefs: [Run[], number | null, (typeof TABLE1)[number]][] = [
    [small, small.length ? lastEpoch(small[0]) : null, TABLE1[0]],
    [large, earlyE, TABLE1[1]],
    [large, large.length ? lastEpoch(large[0]) : null, TABLE1[2]],
  ];
  const rows = rowDefs.map(([rs, e, p], i) => ({
    labels: [bLabel(rs, p.batch), eLabel(e, rs[0]?.epochs, p.epoch)],
    cells: (rs.length && e !== null ? cellsAt(rs, (run) => (i === 1 ? e : lastEpoch(run))) : Array(5).fill(null)).map((ours, j) => ({ ours, paper: j === 0 ? p.ema : p.n[j - 1] })),
  }));
  const unfinished = [...small, ...large].filter((run) => lastEpoch(run) < run.epochs);
  if (unfinished.length) notes.push(`Unfinished runs (last row = last epoch written): ${unfinished.map((run) => `${run.name} at ${lastEpoch(run)} of ${run.epochs}`).join(', ')}.`);
  if (!small.length) notes.push('No run for the small-batch row.');
  if (!large.length) notes.push('No run for the large-batch rows.');
  const otherN = uniq([...small, ...large].flatMap((run) => [...run.evals.filter((e) => e.stats === MODE.precise && isBase(e)).map((e) => e.samples ?? 0), run.config.precise?.samples ?? 0]).filter((n) => n > 0 && !(TABLE1_N as readonly number[]).includes(n)));
  if (otherN.length) notes.push(`PreciseBN with N = ${otherN.join(', ')} was measured but is not one of the paper's columns (bnlab eval --samples N adds them).`);
  if (usedB.size) notes.push(`PreciseBN batch per column: ${[...usedB].sort().join('; ')}.`);
  notes.push(`Runs: small batch: ${runList(small) || DASHL}; large batch: ${runList(large) || DASHL}. ± = std over repeats (eval.csv) or over runs.`);
  return { id: 'table1', title: 'Table 1 — EMA vs PreciseBN with N samples: validation error (%)', rowHeader: ['Batch size', 'Epoch'], columns: ['EMA', ...TABLE1_N.map((n) => `N=${n}`)], rows, notes };
}
const DASHL = '—';

/** A PreciseBN row's estimator; rows written before the column existed used the paper's (pooled). */
const estimatorOf = (e: EvalRow) => e.estimator || 'pooled';

/**
 * Table 2. The paper's two rows (its pooled estimator) come first; eval.csv rows with another
 * estimator (mean-of-var: the original BN paper's B/(B-1) mean_i(var_i)) add one row per model and
 * estimator, with our cells where such an evaluation exists and no paper value (the paper has no such row).
 */
/** Table 2's runs: [regular-NBS model, small-NBS model], as the runs declare (report.roles). */
export const table2Roles = (runs: Run[]): [Run[], Run[]] => [declaring(runs, 'table2.regular-nbs'), declaring(runs, 'table2.small-nbs')];
const t2rows = (run: Run) => run.evals.filter((e) => e.stats === MODE.precise && isBase(e) && e.epoch === lastEpoch(run));
const t2N = (run: Run) => Math.max(0, ...t2rows(run).map((e) => e.samples ?? 0));
/** One run's Table 2 cell at its last epoch: EMA, or PreciseBN with an estimator at batch B (B = N: 'N'). */
export function table2At(run: Run, b: number | 'N' | typeof MODE.ema, est = 'pooled'): Stat | null {
  if (b === MODE.ema) return evalStat(best(run.evals.filter((e) => e.stats === MODE.ema && isBase(e) && e.epoch === lastEpoch(run)))) ?? metricStat(run, lastEpoch(run), MODE_FACTS.ema.valColumn);
  const batch = b === 'N' ? t2N(run) : b;
  return evalStat(best(t2rows(run).filter((e) => estimatorOf(e) === est && e.samples === t2N(run) && e.batch === batch)));
}

function table2(runs: Run[]): Table {
  const notes: string[] = [];
  const roles = table2Roles(runs);
  const ns = new Set<number>();
  const at = t2rows;
  const nOf = t2N;
  const label = (rs: Run[], i: number) => {
    const r0 = rs[0];
    const p = TABLE2[i];
    return r0 ? `NBS=${r0.nbs}${r0.nbs === p.nbs ? '' : ` (paper ${p.nbs})`}${r0.batch === 256 ? '' : `, batch ${r0.batch}`}` : `${DASHL} (paper NBS=${p.nbs})`;
  };
  const bCells = (rs: Run[], est: string) => [...TABLE2_B, 'N' as const].map((b) => combine(rs.map((run) => table2At(run, b, est))));
  const rows: Table['rows'] = roles.map((rs, i) => {
    const p = TABLE2[i];
    rs.forEach((run) => nOf(run) && ns.add(nOf(run)));
    const ema = combine(rs.map((run) => table2At(run, MODE.ema)));
    const cells = [ema, ...bCells(rs, 'pooled')];
    return { labels: [label(rs, i)], cells: cells.map((ours, j) => ({ ours, paper: j === 0 ? p.ema : j <= TABLE2_B.length ? p.b[j - 1] : p.bN })) };
  });
  // Other estimators: extra rows after the paper's, EMA not applicable (—), no paper value.
  const extra: string[] = [];
  roles.forEach((rs, i) => {
    const ests = [...new Set(rs.flatMap((run) => at(run).map(estimatorOf)))].filter((e) => e !== 'pooled').sort();
    for (const est of ests) {
      rows.push({ labels: [`${label(rs, i)}, ${est}`], cells: [null, ...bCells(rs, est)].map((ours) => ({ ours, paper: null })) });
      if (!extra.includes(est)) extra.push(est);
    }
  });
  notes.push(`N (PreciseBN samples) = ${ns.size ? [...ns].join(', ') : DASHL} (paper 10^4); last epoch of each run. Runs: ${runList(roles.flat()) || DASHL}.`);
  if (extra.length)
    notes.push(
      `The first two rows use the paper's pooled estimator; rows ending in ${extra.join(', ')} re-estimate the variance with ${extra.includes('mean-of-var') ? "the original BN paper's B/(B-1)·mean_i(var_i)" : 'that estimator'} (the paper has no such row: its value is —; EMA does not apply).`,
    );
  return { id: 'table2', title: 'Table 2 — PreciseBN batch size B for population statistics: validation error (%)', rowHeader: ['Model'], columns: ['EMA', ...TABLE2_B.map((b) => `B=${b}`), 'B=N'], rows, notes };
}

/** Run order for labels: by NBS, then by name. */
export const byNbs = (rs: Run[]) => [...rs].sort((a, b) => a.nbs - b.nbs || a.name.localeCompare(b.name));

/**
 * The runs Figs. 5-6 use: the NBS sweep (regular BN, the batch-size group with the most distinct
 * NBS values) and the FrozenBN runs (of that batch size when there are any), each sorted by NBS.
 */
export function nbsSweep(runs: Run[]): { batch: number | undefined; sweep: Run[]; frozen: Run[] } {
  const regular = runs.filter((run) => run.frozen === 0);
  const batches = uniq(regular.map((run) => run.batch));
  const batch = batches.sort((a, b) => uniq(regular.filter((run) => run.batch === b).map((run) => run.nbs)).length - uniq(regular.filter((run) => run.batch === a).map((run) => run.nbs)).length || b - a)[0];
  const sweep = regular.filter((run) => run.batch === batch);
  let frozen = runs.filter((run) => run.frozen > 0 && run.batch === batch);
  if (!frozen.length) frozen = runs.filter((run) => run.frozen > 0);
  return { batch, sweep: byNbs(sweep), frozen: byNbs(frozen) };
}

/**
 * Runs an NBS figure/table leaves out because they sit at another total batch (NBS effects are
 * compared at one total batch, as the paper's Figs. 5-6 are), said in one sentence; '' if none.
 */
export function leftOutOfSweep(runs: Run[], id: 'fig5' | 'fig6'): string {
  const { batch, sweep, frozen } = nbsSweep(runs);
  const used = new Set(id === 'fig6' ? [...sweep, ...frozen] : sweep);
  const others = runs.filter((run) => !used.has(run) && run.metrics.length && (id === 'fig6' || run.frozen === 0)).sort((a, b) => a.batch - b.batch || a.nbs - b.nbs);
  if (!others.length) return '';
  return (
    `Left out: ${others.length} run${others.length > 1 ? 's' : ''} at total batch ${uniq(others.map((run) => run.batch)).join(', ')} (${runList(others)}): ` +
    `NBS is compared at one total batch, ${batch} here (the one with the most NBS values); plot or report those runs' folder on its own.`
  );
}

/**
 * The error (%) from which a run counts as diverged: 85% of chance-level error, 0.85 * (1 - 1/K) * 100
 * for K classes (76.5% for 10 classes); 85% when K is unknown. With several runs, the lowest.
 */
export function divergedAt(runs: Run[]): number {
  const at = runs.map((run) => 0.85 * 100 * (1 - 1 / (numClasses(run) ?? Infinity)));
  return at.length ? Math.min(...at) : 85;
}

// Short: vega sizes legend labels by an estimate (0.8 em per character) and cuts them at labelLimit.
const TRAIN_POPULATION = 'train, population stats, no aug';

/** One run's value of a Fig. 5-6 series at its last epoch (val_frozen: a FrozenBN run's). */
export function fig56At(run: Run, s: Fig5Series): Stat | null {
  const e = lastEpoch(run);
  const base = run.evals.filter((x) => isBase(x) && x.epoch === e);
  if (s === 'train_nbs') return metricStat(run, e, MODE_FACTS.minibatch.trainColumn);
  if (s === 'val_minibatch') return evalStat(best(base.filter((x) => x.stats === MODE.minibatch && x.batch === run.nbs))) ?? metricStat(run, e, MODE_FACTS.minibatch.valColumn);
  if (s === 'val_population') return evalStat(best(base.filter((x) => x.stats === MODE.precise && x.samples === Math.max(...base.map((y) => y.samples ?? 0))))) ?? metricStat(run, e, MODE_FACTS.precise.valColumn);
  // FrozenBN runs: `bnlab eval --stats frozen`, else the trainer's val_err_frozen
  return evalStat(best(base.filter((x) => x.stats === MODE.frozen))) ?? metricStat(run, e, MODE_FACTS.frozen.valColumn);
}
/** One run's error on its un-augmented training images with population statistics (ours, not the paper's). */
export const trainPopulationAt = (run: Run): Stat | null =>
  evalStat(best(run.evals.filter((x) => x.epoch === lastEpoch(run) && x.stats === MODE.precise && domainKey(x.stats_data) === '' && domainKey(x.data) === 'train-noaug')));

function fig56(runs: Run[], id: 'fig5' | 'fig6'): Table {
  const notes: string[] = [];
  const { batch, sweep, frozen } = nbsSweep(runs);
  const series: Fig5Series[] = id === 'fig5' ? ['train_nbs', 'val_population', 'val_minibatch'] : ['train_nbs', 'val_population', 'val_minibatch', 'val_frozen'];
  const nbsVals = uniq([...FIG5_NBS, ...sweep.map((run) => run.nbs), ...(id === 'fig6' ? frozen.map((run) => run.nbs) : [])]).reverse();
  const value = (s: Fig5Series, nbs: number): Stat | null => combine((s === 'val_frozen' ? frozen : sweep).filter((run) => run.nbs === nbs).map((run) => fig56At(run, s)));
  const rows = series.map((s) => ({
    labels: [FIG5_LABELS[s]],
    cells: nbsVals.map((n) => {
      const k = FIG5_NBS.indexOf(n as (typeof FIG5_NBS)[number]);
      return { ours: value(s, n), paper: k >= 0 ? { mean: FIG5[s][k] } : null };
    }),
  }));
  // Ours, not the paper's: the same un-augmented training images with population statistics. Beside
  // the mini-batch row it tells train/test inconsistency (population statistics worse on the very
  // images the model fit) from plain over-fitting (both low on train, both higher on val).
  const trainPop = nbsVals.map((n) => combine(sweep.filter((run) => run.nbs === n).map(trainPopulationAt)));
  if (trainPop.some(Boolean)) {
    rows.splice(1, 0, { labels: [TRAIN_POPULATION], cells: trainPop.map((ours) => ({ ours, paper: null })) });
    notes.push(`"${TRAIN_POPULATION}" is ours (the paper has no such curve): \`bnlab eval --stats precise --data split=train,augment=false\`, the row above's images with PreciseBN (population) statistics.`);
  }
  notes.push(`Ours: total batch ${batch ?? DASHL} (paper 1024), last epoch; runs: ${runList(sweep) || DASHL}.`);
  const leftOut = leftOutOfSweep(runs, id);
  if (leftOut) notes.push(leftOut);
  if (id === 'fig6') notes.push(`FrozenBN runs: ${frozen.map((run) => `${run.name} (last ${run.frozen} of ${run.epochs} epochs)`).join(', ') || DASHL} (paper: last 20 of 100).`);
  const used = id === 'fig6' ? [...sweep, ...frozen] : sweep;
  const limit = divergedAt(used);
  const diverged = rows.flatMap((r) => r.cells.flatMap((c, j) => (c.ours && c.ours.mean >= limit ? [`${r.labels[0]} at NBS ${nbsVals[j]} (${c.ours.mean.toFixed(1)}%)`] : [])));
  if (diverged.length) notes.push(`Diverged (error >= ${+limit.toFixed(1)}%, 85% of chance level): ${diverged.join('; ')}. The figure draws these clipped at its top edge.`);
  notes.push('Paper values read off a plot (±0.2).');
  const title = id === 'fig5' ? 'Figure 5 (as a table) — error (%) vs normalization batch size' : 'Figure 6 (as a table) — train/test inconsistency fixes: error (%) vs NBS';
  return { id, title, rowHeader: ['Series \\ NBS'], columns: nbsVals.map(String), rows, notes };
}

/**
 * eval.csv dataset spec -> the key Table 4 matches on: a corruption name, 'val-noaug' / 'train-noaug'
 * (statistics from un-augmented images; bnlab eval never augments the val split), or '' (the default:
 * training data for statistics, the val set for evaluation).
 */
export function domainKey(spec: string, role: 'on' | 'from' = 'from'): string {
  const kv = Object.fromEntries(spec.split(',').filter(Boolean).map((p) => p.split('=').map((s) => s.trim())));
  const c = kv['corruption.type'] ?? kv.corruption;
  if (c) return c.replace(/-/g, '_').replace(/^jpeg_compression$/, 'jpeg');
  const split = kv.split ?? (role === 'on' ? 'val' : 'train');
  const rest = Object.keys(kv).filter((k) => k !== 'split' && k !== 'augment');
  if (rest.length) return spec;
  if (role === 'on') return split === 'val' ? '' : spec;
  if (split === 'val' && kv.augment !== 'true') return 'val-noaug';
  if (split === 'train') return kv.augment === 'false' ? 'train-noaug' : '';
  return spec;
}
const domainLabel = (key: string, role: 'on' | 'from') =>
  key === '' ? (role === 'on' ? 'val (clean)' : 'train (as in training)') : key === 'val-noaug' ? 'val without augmentation' : key === 'train-noaug' ? 'train without augmentation' : key.includes('=') ? key : `corrupted: ${key.replace(/_/g, ' ')}`;

// Runs that re-estimated statistics somewhere else (an evaluation on other data alone, e.g. Figs.
// 5-6's training-set check, does not make a Table 4 run).
export const table4Runs = (runs: Run[]) => runs.filter((run) => run.evals.some((e) => domainKey(e.stats_data) !== ''));
const rowsOf = (run: Run) => run.evals.filter((e) => e.stats === MODE.precise || (e.stats === MODE.ema && e.stats_data === ''));
/** A run's eval.csv row for Table 4's cell (evaluated on `on`, statistics from `from`): latest epoch, PreciseBN of most samples. */
export function table4Pick(run: Run, on: string, from: string): EvalRow | null {
  const rows = rowsOf(run).filter((e) => domainKey(e.data, 'on') === on && domainKey(e.stats_data) === from);
  if (!rows.length) return null;
  const e = Math.max(...rows.map((x) => x.epoch));
  const at = rows.filter((x) => x.epoch === e);
  return best(at.filter((x) => x.stats === MODE.precise).sort((a, b) => (b.samples ?? 0) - (a.samples ?? 0))) ?? best(at) ?? null;
}
export const evalValue = (e: EvalRow | null) => evalStat(e ?? undefined);

function table4(runs: Run[]): Table {
  const cands = table4Runs(runs);
  const combos: { on: string; from: string }[] = TABLE4.map(({ on, from }) => ({ on, from }));
  for (const run of cands)
    for (const e of rowsOf(run)) {
      const c = { on: domainKey(e.data, 'on'), from: domainKey(e.stats_data) };
      if (!combos.some((x) => x.on === c.on && x.from === c.from)) combos.push(c);
    }
  const severities = new Set<string>();
  const value = (on: string, from: string) =>
    combine(
      cands.map((run) => {
        const pick = table4Pick(run, on, from);
        if (!pick) return null;
        for (const spec of [pick.data, pick.stats_data]) {
          const m = /corruption\.severity=(\d+)/.exec(spec);
          if (m) severities.add(m[1]);
        }
        return evalStat(pick);
      }),
    );
  const rows = combos.map(({ on, from }) => ({
    labels: [domainLabel(on, 'on'), domainLabel(from, 'from')],
    cells: [{ ours: value(on, from), paper: (() => { const p = TABLE4.find((x) => x.on === on && x.from === from); return p ? { mean: p.err } : null; })() }],
  }));
  const notes = [
    `Ours: PreciseBN statistics re-estimated on the named data (EMA where no PreciseBN row), latest evaluated epoch; corruption severity ${[...severities].join(', ') || DASHL}. Paper: ImageNet / ImageNet-C (train = IN).`,
    `Runs: ${runList(cands) || DASHL}.`,
  ];
  return { id: 'table4', title: 'Table 4 — population statistics from another domain: error (%)', rowHeader: ['Evaluated on', 'Population statistics from'], columns: ['Error'], rows, notes };
}

// Fig. 8: a model trained on NBS groups of a fixed composition (bn.composition), at its last
// epoch, with mini-batch statistics of test groups composed the same way, of random test groups,
// and with population statistics; seeds of one recipe are one row (mean ± std over them). A
// recipe trained on random groups is the control. The paper's values are read off its plot.
/** Whether a run was trained on patterned groups (a run from before bn.composition existed: random). */
export const isPatterned = (run: Run) => (run.config.bn?.composition ?? 'random') !== 'random';

/** The composition a run was trained with, as a row label. */
export function compositionLabel(run: Run): string {
  const bn = run.config.bn ?? {};
  return isPatterned(run) ? `${bn.composition_classes} classes per group of ${run.nbs}` : `random groups of ${run.nbs}`;
}

/** Runs of a composition experiment: those that evaluated composed test groups (per epoch or by `bnlab eval`). */
export const fig8Runs = (runs: Run[]) =>
  runs.filter((run) => run.metrics.some((m) => typeof m[MODE_FACTS.composed.valColumn] === 'number') || run.evals.some((e) => e.stats === MODE.composed));

/**
 * A mode's error at a run's last epoch: its `bnlab eval` row (most repeats; PreciseBN: of the
 * most samples, since a control shared with Table 1 also has its N = 10 ... rows) if any, else
 * metrics.csv.
 */
export function fig8At(run: Run, stats: string, column: string): Stat | null {
  const rows = run.evals.filter((e) => e.stats === stats && e.epoch === lastEpoch(run) && isBase(e));
  const n = Math.max(...rows.map((e) => e.samples ?? 0));
  const most = rows.filter((e) => (e.samples ?? 0) === n);
  // at the run's own PreciseBN batch if evaluated so (Table 2 shares runs with B = 2 ... N rows)
  const own = most.filter((e) => e.batch === Math.min(run.preciseBatch, n));
  return evalStat(best(own.length ? own : most)) ?? metricStat(run, lastEpoch(run), column);
}

const FIG8_COLUMNS = [
  { title: 'mini-batch, composed test groups', stats: MODE.composed, column: MODE_FACTS.composed.valColumn, paper: FIG8.composed },
  { title: 'mini-batch, random test groups', stats: MODE.minibatch, column: MODE_FACTS.minibatch.valColumn, paper: FIG8.random },
  { title: 'PreciseBN', stats: MODE.precise, column: MODE_FACTS.precise.valColumn, paper: FIG8.precise },
  { title: 'EMA', stats: MODE.ema, column: MODE_FACTS.ema.valColumn, paper: null },
  { title: 'training (its own groups)', stats: '', column: 'train_err', paper: null },
] as const;

export function fig8Table(all: Run[]): Table {
  const runs = fig8Runs(all);
  const groups = new Map<string, Run[]>();
  for (const run of runs) groups.set(compositionLabel(run), [...(groups.get(compositionLabel(run)) ?? []), run]);
  const ordered = [...groups.entries()].sort(([a], [b]) => +a.startsWith('random') - +b.startsWith('random'));
  return {
    id: 'fig8',
    title: 'Fig. 8 — information leakage within a batch: validation error (%) at the last epoch',
    rowHeader: ['trained on', 'epoch', 'runs'],
    columns: FIG8_COLUMNS.map((c) => c.title),
    rows: ordered.map(([label, rs]) => ({
      labels: [label, `${lastEpoch(rs[0])} (paper 100)`, rs.map((run) => run.name).join(', ')],
      cells: FIG8_COLUMNS.map((c) => ({
        ours: combine(rs.map((run) => fig8At(run, c.stats, c.column))),
        paper: !label.startsWith('random') && c.paper !== null ? { mean: c.paper } : null,
      })),
    })),
    notes: [
      "Paper: ResNet-50 on ImageNet, its pattern of groups not recorded; its values are read off Fig. 8's plot (approximate). Ours: bn.composition 'classes' (K classes, NBS/K images each per group).",
      'Composed test groups are made like the training groups from the validation labels; random test groups are a shuffle. A model trained on random groups is the control: for it, composed = random.',
      'Mini-batch values from bnlab eval (mean of its repeats) where run, else the per-epoch metrics; ± is over seeds. Training error is with the training batches\' own statistics, augmented.',
    ],
  };
}

export function buildTable(id: TableId, runs: Run[]): Table {
  switch (id) {
    case 'table1':
      return table1(runs);
    case 'table2':
      return table2(runs);
    case 'fig5':
    case 'fig6':
      return fig56(runs, id);
    case 'table4':
      return table4(runs);
    case 'fig8':
      return fig8Table(runs);
  }
}
