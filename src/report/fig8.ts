// Fig. 8 as a table: a model trained on NBS groups of a fixed composition (bn.composition), at its
// last epoch, with mini-batch statistics of test groups composed the same way, of random test
// groups, and with population statistics; seeds of one recipe are one row (mean ± std over them).
// A recipe trained on random groups is the control. The paper's values are read off its plot.
import { FIG8 } from './paper.js';
import { lastEpoch, metricsAt, type Run } from './runs.js';
import { combine, type Stat, type Table } from './table.js';

/** The composition a run was trained with, as a row label. */
export function compositionLabel(r: Run): string {
  const bn = r.config.bn ?? {};
  return bn.composition === 'classes' ? `${bn.composition_classes} classes per group of ${r.nbs}` : `random groups of ${r.nbs}`;
}

/** Runs of a composition experiment: those that evaluated composed test groups. */
export const fig8Runs = (runs: Run[]) => runs.filter((r) => r.metrics.some((m) => m.val_err_composed !== null && m.val_err_composed !== undefined));

/** A mode's error at a run's last epoch: its `bnlab eval` row (most repeats) if any, else metrics.csv. */
function at(r: Run, stats: string, column: string): Stat | null {
  const e = lastEpoch(r);
  const rows = r.evals.filter((x) => x.stats === stats && x.epoch === e && !x.stats_data && (!x.data || x.data === 'split=val')).sort((a, b) => (b.repeats ?? 0) - (a.repeats ?? 0));
  if (rows[0]?.err_mean !== null && rows[0]?.err_mean !== undefined) return { mean: rows[0].err_mean };
  const v = metricsAt(r, e)?.[column];
  return v === null || v === undefined ? null : { mean: v };
}

const COLUMNS = [
  { title: 'mini-batch, composed test groups', stats: 'composed', column: 'val_err_composed', paper: FIG8.composed },
  { title: 'mini-batch, random test groups', stats: 'minibatch', column: 'val_err_minibatch', paper: FIG8.random },
  { title: 'PreciseBN', stats: 'precise', column: 'val_err_precise', paper: FIG8.precise },
  { title: 'EMA', stats: 'ema', column: 'val_err_ema', paper: null },
  { title: 'training (its own groups)', stats: '', column: 'train_err', paper: null },
] as const;

export function fig8Table(all: Run[]): Table {
  const runs = fig8Runs(all);
  const groups = new Map<string, Run[]>();
  for (const r of runs) groups.set(compositionLabel(r), [...(groups.get(compositionLabel(r)) ?? []), r]);
  const ordered = [...groups.entries()].sort(([a], [b]) => +a.startsWith('random') - +b.startsWith('random'));
  return {
    id: 'fig8',
    title: 'Fig. 8 — information leakage within a batch: validation error (%) at the last epoch',
    rowHeader: ['trained on', 'epoch', 'runs'],
    columns: COLUMNS.map((c) => c.title),
    rows: ordered.map(([label, rs]) => ({
      labels: [label, `${lastEpoch(rs[0])} (paper 100)`, rs.map((r) => r.name).join(', ')],
      cells: COLUMNS.map((c) => ({
        ours: combine(rs.map((r) => (c.stats ? at(r, c.stats, c.column) : at(r, '', c.column)))),
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
