// One SGD step over a total batch: micro-batches (each a multiple of NBS) forward and backward,
// gradients summed so the step sees the mean loss over the whole batch, then the EMA update
// from the statistics one worker would have seen, then the optimizer step.
import * as tf from '@tensorflow/tfjs-core';
import type { Batch } from '../data/loader.js';
import type { BNContext, BNObserver, LayerStats, Observation } from '../nn/batchnorm.js';
import type { RunState } from './state.js';
import { crossEntropy } from '../nn/loss.js';
import { sgdStep } from './sgd.js';
import { updateEma } from '../bn/ema.js';

export interface StepOptions {
  nbs: number;
  eps: number;
  emaDecay: number;
  emaGroups: 'one' | 'all';
  lr: number;
  momentum: number;
  nesterov: boolean;
  /** FrozenBN: normalize with these fixed statistics instead of batch statistics. */
  frozen?: ReadonlyMap<string, LayerStats>;
}

export interface StepResult {
  lossSum: number; // sum of per-sample losses
  errors: number;
  n: number;
}

export function trainStep(state: RunState, micro: readonly Batch[], o: StepOptions): StepResult {
  const total = micro.reduce((a, b) => a + b.n, 0);
  const names = [...state.params.keys()];
  const vars = names.map((n) => state.params.get(n)!);
  let acc: tf.Tensor[] | null = null;
  const observations: Observation[] = [];
  // Each micro-batch's loss and error count stay on the device until the step ends: one
  // read-back per step (a GPU runs ahead of the host meanwhile), summed in the same order.
  const tallies: tf.Tensor[] = [];
  const observer: BNObserver = { observe: (ob) => void observations.push(ob), done: false };
  // the EMA's observations: 'one' = a single worker's EMA sees only its own first group of the step
  const ctxFor = (i: number): BNContext =>
    o.frozen ? { source: 'population', eps: o.eps, population: o.frozen } : { source: 'batch', nbs: o.nbs, eps: o.eps, ...(o.emaGroups === 'all' || i === 0 ? { observer } : {}) };

  micro.forEach((b, i) => {
    const res = tf.tidy(() => {
      const x = tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]);
      const y = tf.tensor1d(b.y, 'int32');
      let wrong!: tf.Tensor;
      let lossTotal!: tf.Tensor;
      const { grads } = tf.variableGrads(() => {
        const logits = state.net.forward(state.params, x, ctxFor(i));
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
    tallies.push(res.lossTotal, res.wrong);
  });
  // error counts are exact in float32 (< 2^24 samples per micro-batch)
  const all = tf.tidy(() => tf.concat(tallies.map((t) => t.toFloat().reshape([1]))));
  const read = all.dataSync();
  tf.dispose([all, ...tallies]);
  let lossSum = 0;
  let errors = 0;
  for (let i = 0; i < read.length; i += 2) {
    lossSum += read[i];
    errors += read[i + 1];
  }

  if (observations.length) updateEma(state.ema, observations, { decay: o.emaDecay, groups: o.emaGroups });
  for (const obs of observations) {
    obs.mean.dispose();
    obs.variance.dispose();
  }
  const grads = new Map(names.map((n, k) => [n, acc![k]]));
  sgdStep(state.params, grads, state.velocity, state.weightDecay, o.lr, o);
  for (const g of grads.values()) g.dispose();
  return { lossSum, errors, n: total };
}
