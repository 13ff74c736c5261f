// Learning-rate schedule: linear scaling, step drops, cosine, warmup.
import { describe, expect, it } from 'vitest';
import { learningRate, scaledLr, type ScheduleConfig } from '../src/train/schedule.js';

const base: ScheduleConfig = {
  batch_size: 256, base_lr: 0.1, schedule: 'step', steps: [30, 60, 90], gamma: 0.1, warmup_epochs: 0, warmup_factor: 0.1,
};
const cfg = (o: Partial<ScheduleConfig>): ScheduleConfig => ({ ...base, ...o });
const close = (a: number, b: number) => expect(Math.abs(a - b), `${a} vs ${b}`).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(b)));

describe('linear scaling rule: base_lr per 256 samples', () => {
  it.each([
    [256, 0.1],
    [8192, 3.2],
    [1024, 0.4],
    [32, 0.0125],
  ])('batch %i -> %f', (batch_size, lr) => {
    close(scaledLr(cfg({ batch_size })), lr);
    close(learningRate(cfg({ batch_size }), 0, 100), lr);
  });

  it('scales base_lr too', () => close(learningRate(cfg({ base_lr: 0.2, batch_size: 512 }), 0, 100), 0.4));
});

describe('step schedule (x0.1 at 30, 60, 90)', () => {
  const c = cfg({ batch_size: 8192 });
  it.each([
    [0, 3.2],
    [29.999, 3.2],
    [30, 0.32],
    [45.5, 0.32],
    [59.9999, 0.32],
    [60, 0.032],
    [89.99, 0.032],
    [90, 0.0032],
    [99.99, 0.0032],
  ])('epoch %f -> %f', (epoch, lr) => close(learningRate(c, epoch, 100), lr));

  it('uses gamma and the configured steps, in any order', () => {
    close(learningRate(cfg({ steps: [2, 1], gamma: 0.5 }), 1.5, 4), 0.05);
    close(learningRate(cfg({ steps: [2, 1], gamma: 0.5 }), 2, 4), 0.025);
    close(learningRate(cfg({ steps: [] }), 99, 100), 0.1);
  });
});

describe('cosine schedule', () => {
  const c = cfg({ schedule: 'cosine', batch_size: 512 }); // lr 0.2
  it('starts at the scaled lr, is half at the midpoint, reaches 0 at the end', () => {
    close(learningRate(c, 0, 10), 0.2);
    close(learningRate(c, 5, 10), 0.1);
    expect(learningRate(c, 10, 10)).toBeLessThan(1e-15);
    expect(learningRate(c, 10, 10)).toBeGreaterThanOrEqual(0);
  });
  it('follows 0.5*(1+cos(pi*t/T)) in between, decreasing, and ignores steps', () => {
    close(learningRate(c, 2.5, 10), 0.2 * 0.5 * (1 + Math.SQRT1_2));
    close(learningRate(c, 7.5, 10), 0.2 * 0.5 * (1 - Math.SQRT1_2));
    let prev = Infinity;
    for (let e = 0; e <= 10; e += 0.25) {
      const lr = learningRate(c, e, 10);
      expect(lr).toBeLessThan(prev);
      prev = lr;
    }
  });
  it('stays at 0 past the end (never negative or rising)', () => {
    expect(learningRate(c, 12, 10)).toBeLessThan(1e-15);
    expect(learningRate(c, 12, 10)).toBeGreaterThanOrEqual(0);
  });
});

describe('warmup', () => {
  it.each(['step', 'cosine'] as const)('%s: starts at warmup_factor*lr, linear, reaches the schedule at the end', (schedule) => {
    const c = cfg({ schedule, batch_size: 8192, warmup_epochs: 5, warmup_factor: 0.1 });
    const after = (e: number) => learningRate(cfg({ schedule, batch_size: 8192 }), e, 100); // same schedule, no warmup
    close(learningRate(c, 0, 100), 0.1 * after(0));
    close(learningRate(c, 0, 100), 0.32);
    close(learningRate(c, 2.5, 100), (0.1 + 0.9 * 0.5) * after(2.5));
    close(learningRate(c, 1, 100), (0.1 + 0.9 * 0.2) * after(1));
    close(learningRate(c, 5, 100), after(5));
    expect(Math.abs(learningRate(c, 4.9999, 100) - after(4.9999))).toBeLessThan(1e-4);
    close(learningRate(c, 50, 100), after(50));
    // increasing through warmup
    expect(learningRate(c, 1, 100)).toBeLessThan(learningRate(c, 2, 100));
  });

  it('fractional warmup, and warmup_factor 1 means no warmup', () => {
    close(learningRate(cfg({ warmup_epochs: 0.5, warmup_factor: 0 }), 0.25, 10), 0.05);
    close(learningRate(cfg({ warmup_epochs: 0.5, warmup_factor: 0 }), 0, 10), 0);
    close(learningRate(cfg({ warmup_epochs: 5, warmup_factor: 1 }), 1, 10), 0.1);
  });

  it('combines with a step that falls inside warmup', () => {
    const c = cfg({ warmup_epochs: 4, warmup_factor: 0.2, steps: [2] });
    close(learningRate(c, 3, 10), 0.1 * 0.1 * (0.2 + 0.8 * 0.75));
  });
});
