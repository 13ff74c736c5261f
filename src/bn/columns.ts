// The statistics modes as data: their names, labels and metrics.csv columns, without any tensor
// code, so the config schema (checkpoint.best_metric), the metrics file and the report know every
// mode without loading tfjs. modes.ts adds each mode's behaviour to these facts (MODES). Like
// backend/kernels/names.ts it imports nothing, so config/ may import it (scripts/check-layers.py).

export const STATS_MODES = ['ema', 'precise', 'minibatch', 'composed', 'frozen'] as const;
export type StatsMode = (typeof STATS_MODES)[number];

export interface ModeFacts {
  /** As a researcher names it (log lines, tables). */
  label: string;
  /** Where the BN layers take their statistics from at inference. */
  source: 'population' | 'batch';
  /** metrics.csv column of its validation error. */
  valColumn: `val_err_${string}`;
  /** metrics.csv column of its training-set error, where the trainer reports one. */
  trainColumn?: `train_err_${string}`;
  /** What `bnlab eval --stats` says it is. */
  help: string;
}

export const MODE_FACTS = {
  ema: { label: 'EMA', source: 'population', valColumn: 'val_err_ema', help: 'the EMA of batch statistics kept during training' },
  precise: { label: 'PreciseBN', source: 'population', valColumn: 'val_err_precise', help: 'PreciseBN: statistics of the frozen model on N samples in batches of B' },
  minibatch: { label: 'mini-batch', source: 'batch', valColumn: 'val_err_minibatch', trainColumn: 'train_err_nbs', help: 'each test batch of NBS samples normalized by its own statistics' },
  composed: {
    label: 'mini-batch (composed)', source: 'batch', valColumn: 'val_err_composed',
    help: "mini-batch statistics of test batches of NBS samples composed like training's (bn.composition: e.g. K classes each; paper Fig. 8)",
  },
  frozen: { label: 'FrozenBN', source: 'population', valColumn: 'val_err_frozen', help: 'the fixed statistics FrozenBN training normalized with' },
} as const satisfies Record<StatsMode, ModeFacts>;

export type ValColumn = (typeof MODE_FACTS)[StatsMode]['valColumn'];
/** Every mode's validation column, in STATS_MODES order. */
export const VAL_COLUMNS = STATS_MODES.map((m) => MODE_FACTS[m].valColumn) as ValColumn[];
/** Every metrics.csv column a mode writes (validation and training errors), in STATS_MODES order. */
export const MODE_COLUMNS: string[] = STATS_MODES.flatMap((m) => {
  const f: ModeFacts = MODE_FACTS[m];
  return f.trainColumn ? [f.valColumn, f.trainColumn] : [f.valColumn];
});

/** The modes by name, for code that names one (MODE.precise): a typo is a compile error, and the
 *  names are spelled here only. */
export const MODE = { ema: 'ema', precise: 'precise', minibatch: 'minibatch', composed: 'composed', frozen: 'frozen' } as const satisfies { [K in StatsMode]: K };
