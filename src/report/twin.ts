// Figs. 5-6 beside an independent implementation. scripts/torch_twin.py trains bnlab's resolved
// config on the same images in PyTorch (its own initialisation and shuffles) and writes a run
// folder whose config.yaml says `framework: pytorch ...`. Where bnlab departs from the paper (NBS
// 2 and 8: mini-batch statistics at inference worse than population ones), the twin tells a
// property of the regime from a defect in bnlab. Only a twin that wrote every epoch is used: the
// twin is often still training while a report is made.
import { lastEpoch, metricsAt, seedValues, type Run } from './runs.js';
import { mean, sd, welch } from './stats.js';
import { signed, type TextTable } from './table.js';
import { fig56At, nbsSweep } from './tables.js';
import { MODE_FACTS } from '../bn/columns.js';

export const isTwin = (run: Run) => run.framework !== null;
const epochsDone = (run: Run) => Math.max(0, ...run.metrics.map((m) => m.epoch ?? 0));
/** Twin runs whose metrics.csv has every epoch their config asks for. */
export const completeTwins = (runs: Run[]) => runs.filter((run) => isTwin(run) && epochsDone(run) >= run.epochs);

const col = (c: string) => (run: Run) => metricsAt(run, lastEpoch(run))?.[c] ?? null;
const gap = (run: Run) => {
  const [m, p] = [col(MODE_FACTS.minibatch.valColumn)(run), col(MODE_FACTS.precise.valColumn)(run)];
  return m === null || p === null ? null : m - p;
};
// [label, bnlab's reader, the twin's reader (null: the twin has no such measurement)]
const MEASURES: [string, (run: Run) => number | null, ((run: Run) => number | null) | null][] = [
  ['val, population stats (PreciseBN)', col(MODE_FACTS.precise.valColumn), col(MODE_FACTS.precise.valColumn)],
  ['val, mini-batch stats (per-epoch column, one batching)', col(MODE_FACTS.minibatch.valColumn), col(MODE_FACTS.minibatch.valColumn)],
  ['val, mini-batch stats (bnlab eval, mean of its batchings)', (run) => fig56At(run, 'val_minibatch')?.mean ?? null, null],
  ['train, mini-batch stats, no aug', col(MODE_FACTS.minibatch.trainColumn), col(MODE_FACTS.minibatch.trainColumn)],
  ['val: mini-batch − population (per-epoch columns)', gap, gap],
];

function summary(vs: { seed: number; v: number }[]): string {
  if (!vs.length) return '—';
  const xs = vs.map((x) => x.v);
  return `${mean(xs).toFixed(2)} ± ${sd(xs).toFixed(2)} (${vs.length})`;
}

/** bnlab's Figs. 5-6 regular-BN runs and the twin's, NBS by NBS; null when there is no twin run at all. */
export function twinTable(bnlab: Run[], all: Run[]): TextTable | null {
  const twins = all.filter(isTwin);
  if (!twins.length) return null;
  const done = completeTwins(twins).sort((a, b) => a.nbs - b.nbs || a.name.localeCompare(b.name));
  const { sweep } = nbsSweep(bnlab.filter((run) => !isTwin(run)));
  const nbs = [...new Set([...sweep, ...done].map((run) => run.nbs))].sort((a, b) => a - b);
  const rows = nbs.flatMap((n) =>
    MEASURES.map(([label, ours, theirs]) => {
      const a = seedValues(sweep.filter((run) => run.nbs === n), ours);
      const b = theirs ? seedValues(done.filter((run) => run.nbs === n), theirs) : [];
      const w = a.length && b.length ? welch(a.map((x) => x.v), b.map((x) => x.v)) : null;
      const seeds = (vs: { seed: number; v: number }[]) => vs.map((x) => `s${x.seed} ${x.v.toFixed(2)}`).join(', ');
      return [
        String(n),
        label,
        summary(a),
        theirs ? summary(b) : 'not measured',
        w ? signed(w.diff) : '—',
        w && w.lo !== null ? `[${signed(w.lo)}, ${signed(w.hi!)}]` : '—',
        [a.length ? `bnlab ${seeds(a)}` : '', b.length ? `twin ${seeds(b)}` : ''].filter(Boolean).join('; ') || '—',
      ];
    }),
  );
  const partial = twins.filter((run) => !done.includes(run));
  return {
    title: 'Figs. 5-6 — bnlab and its PyTorch twin at each NBS (regular BN, last epoch): error (%)',
    intro: [
      'The twin (scripts/torch_twin.py, PyTorch) trains the same resolved config on the same images, with its own initialisation and shuffles. Cells: mean ± std over seeds (number of seeds). Twin − bnlab is the difference of the means with Welch\'s 95% interval: seeds are not paired across implementations, which draw their own random numbers.',
    ],
    head: ['NBS', 'measure', 'bnlab', 'PyTorch twin', 'twin − bnlab', '95% interval (Welch)', 'per seed'],
    rows,
    notes: [
      `Twin runs used (every epoch written): ${done.map((run) => run.name).join(', ') || '—'}.`,
      ...(partial.length ? [`Twin runs left out, not finished: ${partial.map((run) => `${run.name} (${epochsDone(run)} of ${run.epochs} epochs)`).join(', ')}.`] : []),
      `bnlab runs: ${sweep.map((run) => run.name).join(', ') || '—'}. "Per-epoch column" values are metrics.csv's at the last epoch, computed the same way by both (one random batching of the 10,000 test images for mini-batch statistics); the twin has no \`bnlab eval\` rows.`,
    ],
  };
}
