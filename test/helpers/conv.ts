// One conv2d with its two gradients on a backend, for comparing backends' conv kernels.
import * as tf from '@tensorflow/tfjs';
import { uniformData as data } from './random.js';

export type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
export type Case = { x: number[]; f: number[]; s: number; pad: Pad };

/** [y, dL/dx, dL/df] of L = sum(conv2d(x, f) * dy) on a backend, inputs and dy seeded. */
export function convAll(backend: string, c: Case, seed: number): Float32Array[] {
  tf.setBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor4d(data(c.x, seed), c.x as [number, number, number, number]);
    const f = tf.tensor4d(data(c.f, seed + 1), c.f as [number, number, number, number]);
    const y = tf.conv2d(x, f, c.s, c.pad);
    const dy = tf.tensor(data(y.shape, seed + 2), y.shape);
    const g = tf.grads((a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad).mul(dy).sum())([x, f]);
    return [y, ...g].map((t) => t.dataSync() as Float32Array);
  });
}
