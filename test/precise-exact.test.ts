// PreciseBN with B = N, computed one BN layer at a time in chunks (precise.ts exactFullBatch),
// against the definition: all N samples through the network as one batch; its two schedules
// (stage by stage, holding N samples' activations, and layer by layer from the input) against
// each other, bit for bit.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.js';
import { validateConfig } from '../src/config/load.js';
import { loadDataset } from '../src/data/dataset.js';
import { collectObservations } from '../src/nn/batchnorm.js';
import { preciseBNStats } from '../src/bn/precise.js';
import { createState } from '../src/train/state.js';
import { disposeState } from '../src/train/trainer.js';

beforeAll(async () => {
  await initBackend('wasm', 1);
});

for (const [arch, depth, size] of [['resnet-cifar', 14, 8], ['resnet50', 50, 16]] as const) {
  it(`${arch}: B = N in chunks of 7 equals one forward pass of all N samples as one batch, for every BN layer; both schedules agree bit for bit`, async () => {
    const cfg = validateConfig({
      data: { name: 'synthetic', synthetic: { classes: 4, train: 40, val: 8, size, channels: 1, seed: 5 } },
      model: { arch, depth, width: 4 },
    });
    const data = await loadDataset(cfg.data);
    const s = createState(cfg, 1, 4);
    for (const [, v] of s.params) v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.3, 'float32', 11))); // non-trivial statistics
    const n = 40;
    const all = Int32Array.from({ length: n }, (_, i) => i);
    const opts = { samples: n, estimator: 'pooled' as const, augment: true, seed: 1, epoch: 2, indices: all };
    const tensorsBefore = tf.memory().numTensors;
    const exact = await preciseBNStats(s.net, s.params, data.train, { ...opts, batchSize: n }, { eps: 1e-5, forwardBatch: 7 });
    // each pass ends at the layer it estimates (StopForward): nothing of the cut passes is left over
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const byLayer = await preciseBNStats(s.net, s.params, data.train, { ...opts, batchSize: n }, { eps: 1e-5, forwardBatch: 7, exactBytes: 0 });
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(byLayer.size).toBe(s.net.bnLayers.length);
    for (const [layer, st] of byLayer) {
      expect(Array.from(exact.get(layer)!.mean)).toEqual(Array.from(st.mean));
      expect(Array.from(exact.get(layer)!.variance)).toEqual(Array.from(st.variance));
    }

    const b = await data.train.load(all, { augment: true, seed: 1, epoch: 2 });
    const observer = collectObservations();
    tf.tidy(() => s.net.observe(s.params, tf.tensor4d(b.x, [n, size, size, 1]), { source: 'batch', nbs: n, eps: 1e-5, observer }));
    const obs = observer.observed;
    expect(obs.length).toBe(s.net.bnLayers.length);
    for (const o of obs) {
      const c = o.counts[0];
      const mean = o.mean.dataSync();
      const variance = o.variance.dataSync();
      const got = exact.get(o.layer)!;
      for (let j = 0; j < mean.length; j++) {
        expect(got.mean[j]).toBeCloseTo(mean[j], 4);
        expect(got.variance[j] / ((variance[j] * c) / (c - 1))).toBeCloseTo(1, 3); // unbiased, as every population estimate
      }
      tf.dispose([o.mean, o.variance]);
    }
    // The ordinary estimate with B = 8 sees other statistics in the deeper layers (the test can fail).
    const small = await preciseBNStats(s.net, s.params, data.train, { ...opts, batchSize: 8 }, { eps: 1e-5, forwardBatch: 40 });
    const last = s.net.bnLayers[s.net.bnLayers.length - 1].name;
    const rel = Math.max(...Array.from(small.get(last)!.variance, (v, j) => Math.abs(v / exact.get(last)!.variance[j] - 1)));
    expect(rel).toBeGreaterThan(1e-3);
    disposeState(s);
  }, 60_000);
}
