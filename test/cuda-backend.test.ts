// bnlab's cuda backend without a GPU: its TypeScript side (bookkeeping in backend.ts, every kernel
// in kernels.ts) over the fake device (host memory, bnlab's CPU kernels). What a GPU adds (the
// addon's CUDA code) is checked by scripts/gpu-check.sh on a GPU machine.
// - Every kernel that real wasm runs of training, each evaluation mode, PreciseBN (exact B = N
//   too), FrozenBN and the trace execute is registered for cuda (scripts/kernel-census.ts).
// - Those runs on the fake device give wasm's metrics.csv, for a CIFAR ResNet and ResNet-50.
// - Refcounts, disposal, memory counters, one read-back per training step.
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { quiet, tempDirs } from './helpers/run.js';
import { census, censusConfigs } from '../scripts/kernel-census.js';
import { initBackend } from '../src/backend/index.js';
import { useCudaBackend, type CudaBackend } from '../src/backend/cuda/index.js';
import { FakeDevice } from '../src/backend/cuda/fake-device.js';
import { loadDataset } from '../src/data/dataset.js';
import { disposeState, train } from '../src/train/trainer.js';
import { createState } from '../src/train/state.js';
import { trainStep } from '../src/train/step.js';
import type { Batch } from '../src/data/types.js';

const tmp = tempDirs('bnlab-cuda-');
const timing = new Set(['epoch_seconds', 'train_images_per_s', 'precise_seconds']);
/** metrics.csv without its timing columns */
function metrics(dir: string): string[][] {
  const [head, ...rows] = readFileSync(join(dir, 'metrics.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
  const keep = head.map((h, i) => (timing.has(h) ? -1 : i)).filter((i) => i >= 0);
  return [head, ...rows].map((r) => keep.map((i) => r[i]));
}

async function runOn(backend: 'wasm' | 'fake', cfg: ReturnType<typeof censusConfigs>[number]) {
  let device: FakeDevice | null = null;
  if (backend === 'wasm') await initBackend('wasm', 1);
  else await useCudaBackend((device = new FakeDevice()));
  const dir = tmp();
  await train(cfg, await loadDataset(cfg.data), { outDir: dir, resume: false, ...quiet });
  return { dir, device };
}

describe('cuda backend on the fake device', () => {
  let used: Map<string, number>;
  beforeAll(async () => {
    await initBackend('wasm', 1);
    used = await census();
  }, 300_000);

  it('registers every kernel the wasm runs executed (computed, not a kept list)', async () => {
    expect(used.size).toBeGreaterThan(25);
    expect([...used.keys()]).toEqual(expect.arrayContaining(['Conv2D', 'BnlabBNForward', 'BnlabEMA', 'BnlabBNApply', 'MaxPool', 'BatchMatMul']));
    await useCudaBackend(new FakeDevice());
    const missing = [...used.keys()].filter((k) => tf.getKernel(k, 'cuda') == null);
    expect(missing).toEqual([]);
  });

  it.each(censusConfigs().map((c, i) => [i, c.model.arch, c] as const))('run %i (%s): metrics.csv equals wasm\'s', async (_i, _arch, cfg) => {
    const wasm = await runOn('wasm', cfg);
    const fake = await runOn('fake', cfg);
    expect(metrics(fake.dir)).toEqual(metrics(wasm.dir));
    // every training step read its losses back once (plus per-epoch checks and evaluations)
    expect(fake.device!.counts.download).toBeGreaterThan(0);
  }, 300_000);

  it('keeps refcounts: a reshape shares the buffer, the last dispose frees it', async () => {
    const dev = new FakeDevice();
    const b = (await useCudaBackend(dev)) as CudaBackend;
    const ids0 = b.numDataIds(), frees0 = dev.counts.free;
    const x = tf.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const r = x.reshape([3, 2]);
    expect(b.numDataIds()).toBe(ids0 + 1);
    expect(b.refCount(x.dataId)).toBe(2);
    x.dispose();
    expect([...r.dataSync()]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(dev.counts.free).toBe(frees0);
    r.dispose();
    expect(dev.counts.free).toBe(frees0 + 1);
    expect(b.numDataIds()).toBe(ids0);
    expect(dev.memory().inUse).toBe(0);
  });

  it('leaves no tensor and no device memory behind after a training step\'s ops', async () => {
    const dev = new FakeDevice();
    const b = await useCudaBackend(dev);
    const w = tf.variable(tf.randomNormal([3, 3, 2, 4], 0, 1, 'float32', 1));
    const before = { tensors: tf.memory().numTensors, ids: b.numDataIds(), bytes: dev.memory().inUse };
    for (let k = 0; k < 3; k++) {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.conv2d(tf.ones([2, 5, 5, 2]) as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'))) as tf.Scalar);
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(tf.memory().numTensors).toBe(before.tensors);
    expect(b.numDataIds()).toBe(before.ids);
    expect(dev.memory().inUse).toBe(before.bytes);
    expect((b.memory() as { numBytesInGPU: number }).numBytesInGPU).toBe(4 * 3 * 3 * 2 * 4);
    w.dispose();
  });

  it('reads back once per training step, however many micro-batches (the GPU runs ahead meanwhile)', async () => {
    const dev = new FakeDevice();
    await useCudaBackend(dev);
    const cfg = censusConfigs()[0];
    const s = createState(cfg, 3, 4);
    try {
      const batch = (seed: number): Batch => ({ x: Float32Array.from({ length: 8 * 8 * 8 * 3 }, (_, i) => Math.sin(i * seed)), y: Int32Array.from({ length: 8 }, (_, i) => i % 4), n: 8, height: 8, width: 8, channels: 3 });
      const before = dev.counts.download;
      const r = trainStep(s, [batch(1), batch(2), batch(3)], { nbs: 8, eps: 1e-5, emaDecay: 0.9, emaGroups: 'all', lr: 0.1, momentum: 0.9, nesterov: false });
      expect(dev.counts.download - before).toBe(1);
      expect(r.n).toBe(24);
      expect(Number.isFinite(r.lossSum) && r.lossSum > 0).toBe(true);
    } finally {
      disposeState(s);
    }
  });

  it('a kernel it does not have fails naming it (no silent host round-trip)', async () => {
    await useCudaBackend(new FakeDevice());
    expect(() => tf.cumsum(tf.tensor([1, 2, 3]))).toThrow(/Cumsum.*cuda/);
  });

  it('reads values back per dtype: float32, int32, bool', async () => {
    await useCudaBackend(new FakeDevice());
    expect([...tf.tensor([1.5, -2]).dataSync()]).toEqual([1.5, -2]);
    expect([...tf.tensor([3, -4], [2], 'int32').dataSync()]).toEqual([3, -4]);
    const eq = tf.notEqual(tf.tensor([1, 2, 3]), tf.tensor([1, 5, 3]));
    expect(eq.dtype).toBe('bool');
    expect([...(await eq.data())]).toEqual([0, 1, 0]);
    expect([...tf.argMax(tf.tensor([[1, 9, 2], [7, 0, 1]]), 1).dataSync()]).toEqual([1, 0]);
    expect(tf.sum(tf.tensor([[1, 2], [3, 4]]), 0).arraySync()).toEqual([4, 6]);
    expect(tf.max(tf.tensor([[1, 2], [3, 4]]), 0, true).arraySync()).toEqual([[3, 4]]);
  });
});
