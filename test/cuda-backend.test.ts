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
      const before = dev.counts.download, tensors = tf.memory().numTensors;
      const r = trainStep(s, [batch(1), batch(2), batch(3)], { nbs: 8, eps: 1e-5, emaDecay: 0.9, emaGroups: 'all', lr: 0.1, momentum: 0.9, nesterov: false });
      expect(dev.counts.download - before).toBe(1);
      expect(tf.memory().numTensors).toBe(tensors); // the step's tallies and their read-back freed
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
    expect(tf.max(tf.tensor([[1, 2], [3, 4]]), -1).arraySync()).toEqual([2, 4]);
    expect(tf.min(tf.tensor([[1, 2], [3, 0]]), 1).arraySync()).toEqual([1, 0]);
    expect(tf.mean(tf.tensor([[1, 2], [3, 4]]), 1).arraySync()).toEqual([1.5, 3.5]);
    expect(tf.sum(tf.tensor([[1, 2], [3, 4]], [2, 2], 'int32')).arraySync()).toBe(10);
    expect(tf.concat([tf.tensor([[1], [2]]), tf.tensor([[3, 4], [5, 6]])], 1).arraySync()).toEqual([[1, 3, 4], [2, 5, 6]]);
    expect(tf.slice(tf.tensor([[1, 2, 3], [4, 5, 6]]), [1, 1], [1, 2]).arraySync()).toEqual([[5, 6]]);
    expect(tf.oneHot(tf.tensor([2, 0], [2], 'int32'), 3).arraySync()).toEqual([[0, 0, 1], [1, 0, 0]]);
    expect(tf.sub(tf.tensor([[1, 2], [3, 4]]), tf.tensor([1, 1])).arraySync()).toEqual([[0, 1], [2, 3]]);
  });
});

describe('cuda kernels on the fake device against the cpu backend, op by op', () => {
  const r = (shape: number[], seed: number) => tf.randomUniform(shape, -2, 2, 'float32', seed);
  const m = [[1, 5, 2], [7, 0, 3]];
  const ops: [string, () => tf.Tensor | tf.Tensor[]][] = [
    ['max axis 0 keepDims', () => tf.max(tf.tensor(m), 0, true)],
    ['max axis -1', () => tf.max(r([2, 3, 4], 1), -1)],
    ['max all', () => tf.max(r([2, 3, 4], 2))],
    ['min axes [0, 2]', () => tf.min(r([2, 3, 4], 3), [0, 2])],
    ['sum axis 1', () => tf.sum(r([2, 3, 4], 4), 1)],
    ['sum bool', () => tf.sum(tf.greater(r([5], 5), 0))],
    ['mean axes [1, 2] keepDims', () => tf.mean(r([2, 3, 4], 6), [1, 2], true)],
    ['argMax axis 0', () => tf.argMax(tf.tensor(m), 0)],
    ['argMax axis 1', () => tf.argMax(r([4, 6], 7), 1)],
    ['broadcast add [2,1,4] + [3,1]', () => tf.add(r([2, 1, 4], 8), r([3, 1], 9))],
    ['sub, mul, div, squaredDifference', () => [tf.sub(r([3, 4], 10), r([4], 11)), tf.mul(r([3, 4], 12), 3), tf.div(r([3, 4], 13), r([3, 1], 14)), tf.squaredDifference(r([4], 15), r([4], 16))]],
    ['int32 arithmetic', () => tf.add(tf.tensor([1, 2, 3], [3], 'int32'), tf.tensor([10], [1], 'int32'))],
    ['compare ops', () => [tf.notEqual(tf.tensor(m), 0), tf.greaterEqual(r([5], 17), 0), tf.equal(tf.tensor([1, 2], [2], 'int32'), tf.tensor([1, 3], [2], 'int32'))]],
    ['maximum, minimum, pow', () => [tf.maximum(r([6], 18), 0.5), tf.minimum(r([6], 19), r([6], 20)), tf.pow(tf.abs(r([6], 21)), 1.5)]],
    ['unary', () => [tf.neg(r([5], 22)), tf.exp(r([5], 23)), tf.log(tf.abs(r([5], 24))), tf.rsqrt(tf.abs(r([5], 25))), tf.sqrt(tf.abs(r([5], 26))), tf.relu(r([5], 27)), tf.square(r([5], 28)), tf.sigmoid(r([5], 29)), tf.reciprocal(r([5], 30))]],
    ['cast', () => [tf.cast(r([6], 31), 'int32'), tf.cast(tf.tensor([0, 2, -1], [3], 'int32'), 'bool'), tf.cast(tf.greater(r([4], 32), 0), 'float32')]],
    ['slice, transpose, reshape', () => [tf.slice(r([3, 4, 5], 33), [1, 0, 2], [2, 3, 2]), tf.transpose(r([2, 3, 4], 34), [2, 0, 1]), tf.reshape(r([2, 6], 35), [3, -1])]],
    ['concat axes 0 and 1', () => [tf.concat([r([1, 3], 36), r([2, 3], 37)], 0), tf.concat([r([2, 1], 38), r([2, 2], 39)], 1)]],
    ['oneHot', () => tf.oneHot(tf.tensor([3, 0, 1], [3], 'int32'), 4)],
    ['matMul with transposes and a broadcast batch', () => [tf.matMul(r([3, 4], 40), r([5, 4], 41), false, true), tf.matMul(r([4, 3], 42), r([4, 2], 43), true, false), tf.matMul(r([2, 3, 4], 44), r([1, 4, 2], 45))]],
    ['conv2d and its gradients', () => {
      const x = r([2, 7, 7, 3], 46), w = r([3, 3, 3, 4], 47);
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))));
      return [tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'), ...g([x, w])];
    }],
    ['maxPool and its gradient', () => {
      const x = r([2, 9, 9, 3], 48);
      return [tf.maxPool(x as tf.Tensor4D, 3, 2, 1), tf.grad((a: tf.Tensor) => tf.sum(tf.maxPool(a as tf.Tensor4D, 3, 2, 'same')))(x)];
    }],
  ];

  it.each(ops)('%s', async (_name, f) => {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      expect(tf.getBackend()).toBe(backend);
      return tf.tidy(() => [f()].flat().map((t) => ({ shape: t.shape, dtype: t.dtype, values: [...t.dataSync()] })));
    };
    await useCudaBackend(new FakeDevice());
    const got = await run('cuda');
    const want = await run('cpu');
    expect(got.map((t) => [t.shape, t.dtype])).toEqual(want.map((t) => [t.shape, t.dtype]));
    got.forEach((t, i) => t.values.forEach((v, k) => expect(v).toBeCloseTo(want[i].values[k], 4)));
  });
});
