// relu(a + b), the end of a residual block: one fused kernel forward and one backward when the
// backend has them (the native addon on wasm), else the tf ops. Same value and gradient.
import * as tf from '@tensorflow/tfjs-core';
import { ADD_RELU, RELU_GRAD } from '../backend/kernels/add-relu.js';

export function addRelu<T extends tf.Tensor>(a: T, b: T): T {
  if (tf.getKernel(ADD_RELU, tf.getBackend()) == null || !tf.util.arraysEqual(a.shape, b.shape)) {
    return tf.relu(tf.add(a, b)) as T;
  }
  const f = tf.customGrad(((x: tf.Tensor, z: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.engine().runKernel(ADD_RELU, { a: x, b: z }) as tf.Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const g = tf.engine().runKernel(RELU_GRAD, { dy, y: saved[0] }) as tf.Tensor;
        return [g, tf.clone(g)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(a, b) as T;
}
