// Which tfjs kernels bnlab's paths execute, from real runs on the wasm backend: training (ghost
// BN, EMA, SGD), every evaluation mode (ema, precise incl. exact B = N, minibatch, composed,
// frozen), Fig. 2's trace, and statistics from another dataset (Table 4), for a CIFAR ResNet and
// ResNet-50. The cuda backend must register each (test/cuda-backend.test.ts); prints one name
// per line with its call count. Usage: npx tsx scripts/kernel-census.ts [--json]
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../src/backend/index.js';
import { validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { train } from '../src/train/trainer.js';

/** Runs `f` and returns every kernel name the engine ran meanwhile, with counts. */
export async function recordKernels(f: () => Promise<void>): Promise<Map<string, number>> {
  const eng = tf.engine() as unknown as { runKernel: (name: string, ...a: unknown[]) => unknown };
  const orig = eng.runKernel;
  const seen = new Map<string, number>();
  eng.runKernel = function (this: unknown, name: string, ...a: unknown[]) {
    seen.set(name, (seen.get(name) ?? 0) + 1);
    return orig.call(this, name, ...a);
  };
  try {
    await f();
  } finally {
    eng.runKernel = orig;
  }
  return seen;
}

const quiet = { log: () => {}, progress: { start() {}, update() {}, stop() {} } };

/** Tiny runs that between them take every path a paper experiment takes. */
export function censusConfigs() {
  const data = { name: 'synthetic', synthetic: { classes: 4, train: 64, val: 32, size: 8, channels: 3, seed: 1 } };
  const evalAll = { batch_size: 32, minibatch: true, composed: true, train_minibatch: true, train_minibatch_samples: 32 };
  return [
    validateConfig({ epochs: 2, data, model: { depth: 8, width: 4 }, bn: { nbs: 8, frozen_last_epochs: 1, composition: 'classes', composition_classes: 2 },
      optim: { batch_size: 16, micro_batch: 16 }, precise: { samples: 32, batch_size: 32 }, eval: evalAll, trace: { layers: ['s1.b1.bn1'], batches: 2 } }),
    validateConfig({ epochs: 1, data: { ...data, synthetic: { ...data.synthetic, size: 32 } }, model: { arch: 'resnet50', width: 2 }, bn: { nbs: 4 },
      optim: { batch_size: 8 }, precise: { samples: 16, batch_size: 8 }, eval: { batch_size: 16, minibatch: true } }),
  ];
}

export async function census(): Promise<Map<string, number>> {
  const all = new Map<string, number>();
  for (const cfg of censusConfigs()) {
    const dir = mkdtempSync(join(tmpdir(), 'bnlab-census-'));
    try {
      const data = await loadDataset(cfg.data);
      const seen = await recordKernels(async () => void (await train(cfg, data, { outDir: dir, resume: false, ...quiet })));
      for (const [k, v] of seen) all.set(k, (all.get(k) ?? 0) + v);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return all;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  await initBackend('wasm', 1);
  const all = await census();
  if (process.argv.includes('--json')) console.log(JSON.stringify(Object.fromEntries(all)));
  else for (const [k, v] of [...all].sort((a, b) => b[1] - a[1])) console.log(`${k} ${v}`);
}
