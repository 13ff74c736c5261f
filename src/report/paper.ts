// The paper's ImageNet numbers (Wu & Johnson 2021, arXiv:2105.07576, transcribed by hand), placed
// beside ours in every table and drawn faintly in Figs. 5-6. Fig. 5/6 values were read off a plot (±0.2).
export interface PaperValue {
  mean: number;
  std?: number;
}
const v = (mean: number, std?: number): PaperValue => ({ mean, std });

export const TABLE1_N = [10, 100, 1000, 10000] as const;
/** Rows: (batch 256, epoch 100), (8192, 30), (8192, 100); columns EMA then N=10..10^4. */
export const TABLE1 = [
  { batch: 256, epoch: 100, ema: v(23.7), n: [v(28.1, 0.5), v(24.0, 0.1), v(23.57, 0.05), v(23.54, 0.02)] },
  { batch: 8192, epoch: 30, ema: v(52.8), n: [v(45.5, 1.3), v(40.1, 0.2), v(39.44, 0.06), v(39.42, 0.03)] },
  { batch: 8192, epoch: 100, ema: v(24.0), n: [v(29.0, 0.7), v(24.1, 0.1), v(23.77, 0.05), v(23.73, 0.02)] },
];

export const TABLE2_B = [2, 10, 100, 1000] as const; // then B=N (N = 10^4)
export const TABLE2 = [
  { nbs: 32, ema: v(23.7), b: [v(28.8), v(24.0), v(23.5), v(23.5)], bN: v(23.5) },
  { nbs: 2, ema: v(35.5), b: [v(34.4), v(32.3), v(32.0), v(32.0)], bN: v(32.0) },
];

export const FIG5_NBS = [1024, 512, 256, 128, 64, 32, 16, 8, 4, 2] as const;
export const FIG5 = {
  train_nbs: [8.5, 8.4, 8.8, 9.2, 9.7, 10.7, 12.1, 13.5, 15.1, 16.5],
  val_population: [23.7, 23.7, 23.6, 23.4, 23.2, 23.4, 23.5, 24.3, 26.4, 32.5],
  val_minibatch: [24.8, 24.8, 24.7, 24.7, 24.7, 24.5, 24.7, 25.1, 25.5, 26.0],
  val_frozen: [24.5, 24.4, 24.4, 24.4, 24.2, 24.3, 23.9, 24.2, 24.3, 25.2],
};
export type Fig5Series = keyof typeof FIG5;
export const FIG5_LABELS: Record<Fig5Series, string> = {
  train_nbs: 'train, mini-batch stats, no aug',
  val_population: 'val, population stats (PreciseBN)',
  val_minibatch: 'val, mini-batch stats (batch = NBS)',
  val_frozen: 'val, FrozenBN for the last epochs',
};

/** Table 4: evaluation domain, statistics domain (our dataset-spec corruption names), paper error. */
export const TABLE4 = [
  { on: 'contrast', from: '', err: 40.8 },
  { on: 'contrast', from: 'contrast', err: 33.1 },
  { on: 'gaussian_noise', from: '', err: 64.4 },
  { on: 'gaussian_noise', from: 'gaussian_noise', err: 52.5 },
  { on: 'jpeg', from: '', err: 40.4 },
  { on: 'jpeg', from: 'jpeg', err: 36.7 },
  { on: '', from: '', err: 23.4 },
  { on: '', from: 'contrast', err: 39.7 },
  { on: '', from: 'val-noaug', err: 23.8 },
];

/** Fig. 8 (information leakage), read off the paper's plot at epoch 100 (approximate). */
export const FIG8 = { composed: 23.5, random: 31, precise: 51 } as const;
