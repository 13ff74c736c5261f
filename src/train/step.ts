// One SGD step over a total batch: micro-batches (each a multiple of NBS) forward and backward,
// gradients summed so the step sees the mean loss over the whole batch, then the EMA update
// from the statistics one worker would have seen, then the optimizer step.
import * as tf from '@tensorflow/tfjs-core';
import type { Batch } from '../data/loader.js';
import type { BNContext, Observation } from '../nn/batchnorm.js';
import type { RunState } from './state.js';
import { sgdStep } from './sgd.js';
import { EMA_KERNEL } from '../backend/kernels/state-updates.js';

export interface StepOptions {
  nbs: number;
  eps: number;
  emaDecay: number;
  emaGroups: 'one' | 'all';
  lr: number;
  momentum: number;
  nesterov: boolean;
  /** FrozenBN: normalize with these fixed statistics instead of batch statistics. */
  frozen?: BNContext['population'];
}

export interface StepResult {
  lossSum: number; // sum of per-sample losses
  errors: number;
  n: number;
}

export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.sum(tf.mul(logp, tf.oneHot(labels, logits.shape[1])), 1)) as tf.Tensor1D;
}

export function trainStep(s: RunState, micro: readonly Batch[], o: StepOptions): StepResult {
  const total = micro.reduce((a, b) => a + b.n, 0);
  const names = [...s.params.keys()];
  const vars = names.map((n) => s.params.get(n)!);
  let acc: tf.Tensor[] | null = null;
  const observations: Observation[] = [];
  let lossSum = 0;
  let errors = 0;
  const ctx: BNContext = o.frozen
    ? { source: 'population', nbs: o.nbs, eps: o.eps, population: o.frozen }
    : { source: 'batch', nbs: o.nbs, eps: o.eps };

  micro.forEach((b, i) => {
    // 'one': a single worker's EMA sees only its own first group of the step.
    const observe = !o.frozen && (o.emaGroups === 'all' || i === 0);
    const res = tf.tidy(() => {
      const x = tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]);
      const y = tf.tensor1d(b.y, 'int32');
      let wrong!: tf.Tensor;
      let lossTotal!: tf.Tensor;
      const { grads } = tf.variableGrads(() => {
        const logits = s.net.forward(s.params, x, { ...ctx, observe }, observations);
        const losses = crossEntropy(logits, y);
        wrong = tf.keep(tf.sum(tf.notEqual(tf.argMax(logits, 1), y).toInt()));
        lossTotal = tf.keep(tf.sum(losses));
        return tf.div(lossTotal, total) as tf.Scalar;
      }, vars);
      const g = vars.map((v) => grads[v.name]);
      const next = acc ? g.map((t, k) => tf.add(acc![k], t)) : g;
      return { next, wrong, lossTotal };
    });
    acc?.forEach((t) => t.dispose());
    acc = res.next;
    lossSum += res.lossTotal.dataSync()[0];
    errors += res.wrong.dataSync()[0];
    res.lossTotal.dispose();
    res.wrong.dispose();
  });

  if (observations.length) updateEma(s, observations, o);
  for (const obs of observations) {
    obs.mean.dispose();
    obs.variance.dispose();
  }
  const grads = new Map(names.map((n, k) => [n, acc![k]]));
  sgdStep(s.params, grads, s.velocity, s.weightDecay, o.lr, o);
  for (const g of grads.values()) g.dispose();
  return { lossSum, errors, n: total };
}

/**
 * EMA with the PyTorch convention: the buffer holds the unbiased variance. 'one' uses group 0
 * of the first micro-batch; 'all' averages every group's mean and unbiased variance.
 */
function updateEma(s: RunState, observations: Observation[], o: StepOptions): void {
  const byLayer = new Map<string, Observation[]>();
  for (const ob of observations) byLayer.set(ob.layer, [...(byLayer.get(ob.layer) ?? []), ob]);
  // one kernel per layer when the backend has it (native addon on wasm) and one micro-batch
  // observed the layer; the tf ops below compute the same.
  const fused = tf.getKernel(EMA_KERNEL, tf.getBackend()) != null;
  tf.tidy(() => {
    for (const [layer, obs] of byLayer) {
      const ema = s.ema.get(layer)!;
      if (fused && (o.emaGroups === 'one' || obs.length === 1)) {
        const counts = o.emaGroups === 'one' ? obs[0].counts.slice(0, 1) : obs[0].counts;
        const rows = (t: tf.Tensor) => (counts.length === t.shape[0] ? t : tf.slice(t, [0, 0], [counts.length, -1]));
        const [mean, variance] = tf.engine().runKernel(EMA_KERNEL, {
          mean: ema.mean, variance: ema.variance, obsMean: rows(obs[0].mean), obsVariance: rows(obs[0].variance),
        }, { decay: o.emaDecay, counts }) as tf.Tensor[];
        ema.mean.assign(mean);
        ema.variance.assign(variance);
        continue;
      }
      let mean: tf.Tensor;
      let unbiased: tf.Tensor;
      if (o.emaGroups === 'one') {
        const n = obs[0].counts[0];
        mean = tf.squeeze(tf.slice(obs[0].mean, [0, 0], [1, -1]), [0]);
        unbiased = tf.mul(tf.squeeze(tf.slice(obs[0].variance, [0, 0], [1, -1]), [0]), n > 1 ? n / (n - 1) : 1);
      } else {
        const means = tf.concat(obs.map((ob) => ob.mean), 0);
        const vars = tf.concat(obs.map((ob) => tf.mul(ob.variance, tf.tensor2d(ob.counts.map((n) => (n > 1 ? n / (n - 1) : 1)), [ob.counts.length, 1]))), 0);
        mean = tf.mean(means, 0);
        unbiased = tf.mean(vars, 0);
      }
      ema.mean.assign(tf.add(tf.mul(ema.mean, o.emaDecay), tf.mul(mean, 1 - o.emaDecay)));
      ema.variance.assign(tf.add(tf.mul(ema.variance, o.emaDecay), tf.mul(unbiased, 1 - o.emaDecay)));
    }
  });
}
