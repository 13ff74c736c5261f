// Ops the ResNets use that have one fused kernel forward and one backward when the backend
// has them (the native addon on wasm), else the tf ops. Same value and gradient either way.
import * as tf from '@tensorflow/tfjs-core';
import { ADD_RELU, GAP, GAP_GRAD, hasKernel, RELU_GRAD, runKernel } from '../backend/kernels/names.js';

/** Global average pooling, NHWC [B,H,W,C] -> [B,C] (tfjs' mean gradient builds a ones tensor,
 *  a broadcast multiply and a divide: three full-size passes instead of one). */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  if (!hasKernel(GAP)) return tf.mean(x, [1, 2]) as tf.Tensor2D;
  const f = tf.customGrad(((v: tf.Tensor) => ({
    value: runKernel(GAP, { x: v }) as tf.Tensor,
    gradFunc: (dy: tf.Tensor) => runKernel(GAP_GRAD, { dy }, { shape: v.shape }) as tf.Tensor,
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor2D;
}

/** relu(a + b), the end of a residual block. */
export function addRelu<T extends tf.Tensor>(a: T, b: T): T {
  if (!hasKernel(ADD_RELU) || !tf.util.arraysEqual(a.shape, b.shape)) {
    return tf.relu(tf.add(a, b)) as T;
  }
  const f = tf.customGrad(((x: tf.Tensor, z: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = runKernel(ADD_RELU, { a: x, b: z }) as tf.Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const g = runKernel(RELU_GRAD, { dy, y: saved[0] }) as tf.Tensor;
        return [g, tf.clone(g)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(a, b) as T;
}
