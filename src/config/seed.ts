// Which seed an epoch of training draws its shuffles, augmentation and PreciseBN samples from:
// `seed`, or after `continuation.after_epoch` a seed of its own per continuation (schema: continuation).
import { hashSeed } from '../util/rng.js';
import type { Config } from './schema.js';

/** The seed of training epoch `epoch` (0-based: epoch 0 is the first). */
export function epochSeed(cfg: Pick<Config, 'seed' | 'continuation'>, epoch: number): number {
  const c = cfg.continuation;
  if (c.seed === null || epoch < c.after_epoch) return cfg.seed;
  // 0x636f6e74 ("cont") keeps these seeds apart from the plain seeds 0, 1, 2, ... of other runs
  return hashSeed(cfg.seed, 0x636f6e74, c.seed);
}
