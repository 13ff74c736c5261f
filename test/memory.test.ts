// Micro-batch sizing against a memory budget.
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import { microBatch } from '../src/config/schema.js';
import { chooseMicroBatch } from '../src/train/memory.js';

const cfg = (optim: object, bn: object) => validateConfig({ optim, bn });
const MB = 2 ** 20;

describe('micro-batches', () => {
  it('default: the largest multiple of NBS that divides the total batch, up to 256', () => {
    expect(microBatch(cfg({ batch_size: 1024 }, { nbs: 32 }))).toBe(256);
    expect(microBatch(cfg({ batch_size: 320 }, { nbs: 32 }))).toBe(160);
    expect(microBatch(cfg({ batch_size: 1024 }, { nbs: 1024 }))).toBe(1024);
    expect(microBatch(cfg({ batch_size: 96 }, { nbs: 2 }))).toBe(96);
  });

  it('shrinks to what fits the budget, keeping whole NBS groups', () => {
    expect(chooseMicroBatch(cfg({ batch_size: 8192 }, { nbs: 32 }), 10 * MB, 1000 * MB)).toBe(64);
    expect(chooseMicroBatch(cfg({ batch_size: 256 }, { nbs: 32 }), 1 * MB, 1000 * MB)).toBe(256);
  });

  it('refuses an NBS group that does not fit, naming the memory it needs', () => {
    expect(() => chooseMicroBatch(cfg({ batch_size: 1024 }, { nbs: 1024 }), 10 * MB, 3000 * MB)).toThrow(/bn.nbs 1024 needs ~10.0 GB .* about 300 samples fit in 2.9 GB/);
    expect(() => chooseMicroBatch(cfg({ batch_size: 1024, micro_batch: 512 }, { nbs: 32 }), 10 * MB, 3000 * MB)).toThrow(/optim.micro_batch 512 needs/);
  });
});
