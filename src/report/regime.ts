// The training regime of every model in a report: what each recipe reached at its last epoch,
// so a reader can tell a fitted model from an under-fit one before reading any finding (a
// train/test inconsistency can only show in a model whose training error is below its
// validation error). Seeds of one recipe (run names differing only in `_seed<k>`) are one row,
// mean ± std over them.
import { distinctRuns, lastEpoch, metricsAt, recipeOf, type Run } from './runs.js';
import { combine, type Table } from './table.js';
import { MODE_FACTS, STATS_MODES, type ModeFacts } from '../bn/columns.js';
import { completeTwins, isTwin } from './twin.js';

/** The recipe's training error as trained, each mode's training-set error, each mode's validation error. */
const ALL_COLUMNS: [string, string][] = [
  ['train_err', 'train, as trained, batch stats'],
  ...STATS_MODES.flatMap((m): [string, string][] => {
    const f: ModeFacts = MODE_FACTS[m];
    return f.trainColumn ? [[f.trainColumn, `train, no aug, ${f.label} (NBS)`]] : [];
  }),
  ...STATS_MODES.map((m): [string, string] => [MODE_FACTS[m].valColumn, `val, ${MODE_FACTS[m].label}`]),
];

/** Seeds of a recipe; a fork continued several times counts once per seed, its runs said beside. */
const seedCount = (rs: Run[]) => {
  const n = new Set(rs.map((run) => run.name.replace(/_cont\d+$/, ''))).size;
  return n < rs.length ? `${n} (${rs.length} runs)` : String(n);
};

export function regimeTable(runs: Run[]): Table {
  const groups = new Map<string, Run[]>();
  // a PyTorch twin still training is left out (the report lists it as unfinished)
  const usable = (run: Run) => run.metrics.length > 0 && (!isTwin(run) || completeTwins([run]).length > 0);
  for (const run of distinctRuns(runs).filter(usable)) groups.set(recipeOf(run), [...(groups.get(recipeOf(run)) ?? []), run]);
  // the columns some run computed (a report of EMA-only runs has no FrozenBN column)
  const COLUMNS = ALL_COLUMNS.filter(([col]) => [...groups.values()].flat().some((run) => run.metrics.some((m) => typeof m[col] === 'number')));
  const rows = [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
    .map(([name, rs]) => {
      const c = rs[0].config;
      const model = c.model?.arch === 'resnet50' ? 'ResNet-50' : `ResNet-${c.model?.depth}`;
      const images = c.data?.train_limit ?? 'all';
      return {
        labels: [name, `${rs[0].framework ? `${rs[0].framework}: ` : ''}${model}, ${c.data?.name} (${images} train images), batch ${rs[0].batch}, NBS ${rs[0].nbs}${rs[0].frozen ? `, FrozenBN last ${rs[0].frozen}` : ''}${c.continuation?.seed != null ? `, other continuations after epoch ${c.continuation.after_epoch}` : ''}`, `${lastEpoch(rs[0])} of ${rs[0].epochs}`, seedCount(rs)],
        cells: COLUMNS.map(([col]) => ({ ours: combine(rs.map((run) => { const v = metricsAt(run, lastEpoch(run))?.[col]; return v === null || v === undefined ? null : { mean: v }; })), paper: null })),
      };
    });
  return {
    id: 'regime',
    title: 'Training regime — each recipe at its last epoch: error (%)',
    rowHeader: ['Recipe', 'Model, data, batch', 'Epoch', 'Seeds'],
    columns: COLUMNS.map(([, label]) => label),
    rows,
    oursOnly: true,
    notes: [
      'From metrics.csv (per-epoch columns; empty where the recipe does not compute one). ± = std over seeds. "As trained" is the epoch\'s running error on its training batches (augmented where the recipe augments); "no aug" is measured after the epoch on a fixed training subset.',
      'A row whose model starts with a framework name (pytorch ...) is scripts/torch_twin.py: the same recipe and images in PyTorch, its own random draws; it sits beside bnlab\'s row of the same recipe.',
      'A model fits its training set when its training error is clearly below its validation error: only then can mini-batch statistics at inference (Fig. 5) or FrozenBN (Fig. 6) show the paper\'s train/test inconsistency.',
    ],
  };
}
