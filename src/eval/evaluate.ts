// Evaluation under a chosen statistics source: population statistics (EMA or PreciseBN) or
// mini-batch statistics of test batches.
import * as tf from '@tensorflow/tfjs-core';
import type { ImageSet } from '../data/dataset.js';
import { batches } from '../data/loader.js';
import type { BNContext } from '../nn/batchnorm.js';
import type { Network } from '../nn/resnet.js';
import { crossEntropy } from '../train/step.js';

export interface EvalOptions {
  ctx: BNContext;
  batchSize: number;
  mean: number[];
  std: number[];
  onBatch?: (done: number, total: number) => void;
}

export interface EvalResult {
  err: number; // percent
  loss: number;
  n: number;
}

export function evaluate(net: Network, params: ReadonlyMap<string, tf.Tensor>, set: ImageSet, o: EvalOptions): EvalResult {
  const order = Int32Array.from({ length: set.n }, (_, i) => i);
  let errors = 0;
  let lossSum = 0;
  let done = 0;
  for (const b of batches(set, order, o.batchSize, { augment: false, pad_crop: 0, flip: false, seed: 0, epoch: 0, mean: o.mean, std: o.std, dropLast: false })) {
    const [wrong, loss] = tf.tidy(() => {
      const x = tf.tensor4d(b.x, [b.n, b.height, b.width, b.channels]);
      const y = tf.tensor1d(b.y, 'int32');
      const logits = net.forward(params, x, { ...o.ctx, observe: false });
      return [tf.sum(tf.notEqual(tf.argMax(logits, 1), y).toInt()), tf.sum(crossEntropy(logits, y))];
    });
    errors += wrong.dataSync()[0];
    lossSum += loss.dataSync()[0];
    wrong.dispose();
    loss.dispose();
    done += b.n;
    o.onBatch?.(done, set.n);
  }
  return { err: (100 * errors) / set.n, loss: lossSum / set.n, n: set.n };
}
