// Learning rate as a pure function of training progress (epochs, fractional).
export interface ScheduleConfig {
  batch_size: number;
  base_lr: number;
  schedule: 'step' | 'cosine';
  steps: number[];
  gamma: number;
  warmup_epochs: number;
  warmup_factor: number;
}

/** Linear scaling rule: base_lr is per 256 samples. */
export const scaledLr = (c: ScheduleConfig) => (c.base_lr * c.batch_size) / 256;

export function learningRate(c: ScheduleConfig, epoch: number, totalEpochs: number): number {
  let lr = scaledLr(c);
  if (c.schedule === 'step') {
    for (const s of c.steps) if (epoch >= s) lr *= c.gamma;
  } else {
    lr *= 0.5 * (1 + Math.cos((Math.PI * Math.min(epoch, totalEpochs)) / totalEpochs));
  }
  if (epoch < c.warmup_epochs) {
    const t = epoch / c.warmup_epochs;
    lr *= c.warmup_factor + (1 - c.warmup_factor) * t;
  }
  return lr;
}
