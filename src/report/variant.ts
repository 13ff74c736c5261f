// Figs. 5-6 in a changed regime (report.roles fig5-6.variant): a sweep that changes one property of
// the Figs. 5-6 recipe (the miniature's regime B: a deeper model) to see whether train/test
// inconsistency appears where the committed regime shows none. A variant's runs are never pooled
// with the fig5-6 runs: each variant is named by the config keys it changes against them and sits
// beside them NBS by NBS, seed by seed.
import { configDiff, RESUMABLE_KEYS } from '../config/load.js';
import { valueAt } from '../run/identity.js';
import { seedValues, type Run } from './runs.js';
import { mean, sd, welch } from './stats.js';
import { signed, type TextTable } from './table.js';
import { fig56At, nbsSweep, trainPopulationAt } from './tables.js';

/** Keys that differ between the runs of one Figs. 5-6 experiment: what it sweeps, and resumable keys. */
const WITHIN_EXPERIMENT = new Set([...RESUMABLE_KEYS, 'seed', 'bn.nbs', 'bn.frozen_last_epochs', 'data.synthetic.seed']);
const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export interface Variant {
  /** what it changes against the fig5-6 runs, e.g. "model.depth 20 → 56" */
  label: string;
  runs: Run[]; // regular BN, sorted by NBS
}

/** The variant runs (regular BN) grouped by what they change against the fig5-6 runs. */
export function variantsOf(base: Run[], variantRuns: Run[]): Variant[] {
  const ref = nbsSweep(base).sweep[0];
  const groups = new Map<string, Run[]>();
  for (const run of nbsSweep(variantRuns).sweep) {
    const keys = ref ? configDiff(ref.config, run.config).filter((k) => !WITHIN_EXPERIMENT.has(k)).sort() : [];
    const label = !ref ? 'fig5-6.variant runs (no fig5-6 runs given to name what they change)' : keys.length ? keys.map((k) => `${k} ${show(valueAt(ref.config, k))} → ${show(valueAt(run.config, k))}`).join(', ') : 'same recipe as the fig5-6 runs';
    groups.set(label, [...(groups.get(label) ?? []), run]);
  }
  return [...groups].map(([label, runs]) => ({ label, runs }));
}

type Reader = (run: Run) => number | null;
const stat = (f: (run: Run) => { mean: number } | null): Reader => (run) => f(run)?.mean ?? null;
const diff = (a: Reader, b: Reader): Reader => (run) => {
  const [x, y] = [a(run), b(run)];
  return x === null || y === null ? null : x - y;
};
const trainMB = stat((run) => fig56At(run, 'train_nbs'));
const trainPop = stat(trainPopulationAt);
const valMB = stat((run) => fig56At(run, 'val_minibatch'));
const valPop = stat((run) => fig56At(run, 'val_population'));
// [label, reader]: the two inconsistency gaps are the point; the four errors show where they come from
const MEASURES: [string, Reader][] = [
  ['train, mini-batch stats, no aug', trainMB],
  ['train, population stats, no aug', trainPop],
  ['train: population − mini-batch', diff(trainPop, trainMB)],
  ['val, mini-batch stats', valMB],
  ['val, population stats (PreciseBN)', valPop],
  ['val: mini-batch − population', diff(valMB, valPop)],
];

const num = (x: number) => x.toFixed(2).replace(/^-/, '−');
function cell(rs: Run[], f: Reader): { text: string; seeds: string; xs: number[] } {
  const vs = seedValues(rs, f);
  if (!vs.length) return { text: '—', seeds: '', xs: [] };
  const xs = vs.map((x) => x.v);
  return { text: `${num(mean(xs))} ± ${sd(xs).toFixed(2)} (${xs.length})`, seeds: vs.map((x) => `s${x.seed} ${num(x.v)}`).join(', '), xs };
}
/** variant − fig5-6 with Welch's 95% interval: two models' seeds are not pairs. */
function change(a: number[], b: number[]): string {
  if (!a.length || !b.length) return '—';
  const w = welch(a, b);
  return w.lo === null ? signed(w.diff) : `${signed(w.diff)} [${signed(w.lo)}, ${signed(w.hi!)}]`;
}

/** Each variant beside the fig5-6 runs at the NBS values it trained; null when there is no variant. */
export function variantTable(base: Run[], variantRuns: Run[]): TextTable | null {
  const vs = variantsOf(base, variantRuns);
  if (!vs.length) return null;
  const { sweep } = nbsSweep(base);
  const rows = vs.flatMap((v) =>
    [...new Set(v.runs.map((run) => run.nbs))].sort((a, b) => a - b).flatMap((n) =>
      MEASURES.map(([label, f]) => {
        const [a, b] = [cell(sweep.filter((run) => run.nbs === n), f), cell(v.runs.filter((run) => run.nbs === n), f)];
        return [v.label, String(n), label, a.text, b.text, change(a.xs, b.xs), [a.seeds && `fig5-6 ${a.seeds}`, b.seeds && `variant ${b.seeds}`].filter(Boolean).join('; ') || '—'];
      }),
    ),
  );
  return {
    title: 'Figs. 5-6 in a changed regime (report.roles fig5-6.variant) beside the fig5-6 runs: error (%) at the last epoch, regular BN',
    intro: [
      'Train/test inconsistency, in the paper\'s sense, is a model that fits its training images with mini-batch statistics but not with population ones: "train: population − mini-batch" > 0, and on val mini-batch statistics beating population ones ("val: mini-batch − population" < 0; paper at NBS 2: −6.5). Cells: mean ± std over seeds (number of seeds); variant − fig5-6 is the difference of the means with Welch\'s 95% interval (the two models\' seeds are not pairs); the findings above test each regime\'s gaps seed by seed.',
    ],
    head: ['variant (changed keys)', 'NBS', 'measure', 'fig5-6 runs', 'variant runs', 'variant − fig5-6 (Welch 95%)', 'per seed'],
    rows,
    notes: [
      `Variant runs: ${vs.flatMap((v) => v.runs.map((run) => run.name)).join(', ')}. "Train, population stats" is \`bnlab eval --stats precise --data split=train,augment=false\`; val mini-batch statistics are \`bnlab eval --stats minibatch\`'s mean over its batchings where it ran, else metrics.csv's column.`,
    ],
  };
}
