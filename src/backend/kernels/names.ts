// bnlab's own kernels as model code sees them: their names, and "use the kernel when the current
// backend has it registered, else the tf ops". No backend code is loaded from here, so nn/ and bn/
// stay plain tfjs-core (the kernels register themselves in src/backend when the addon is built).
import * as tf from '@tensorflow/tfjs-core';

export const BN_FORWARD = 'BnlabBNForward';
export const BN_BACKWARD = 'BnlabBNBackward';
export const BN_APPLY = 'BnlabBNApply';
export const BN_APPLY_ADD_RELU = 'BnlabBNApplyAddRelu';
export const ADD_RELU = 'BnlabAddRelu';
export const RELU_GRAD = 'BnlabReluGrad';
export const GAP = 'BnlabGAP';
export const GAP_GRAD = 'BnlabGAPGrad';
export const SGD_KERNEL = 'BnlabSGD';
export const EMA_KERNEL = 'BnlabEMA';

/** Whether the current backend has the kernel (wasm with the native addon, unless switched off). */
export const hasKernel = (name: string): boolean => tf.getKernel(name, tf.getBackend()) != null;

/** Run a registered kernel on tensors (engine-tracked outputs, as a tf op returns). */
export const runKernel = (name: string, inputs: Record<string, tf.Tensor>, attrs: object = {}): tf.Tensor | tf.Tensor[] =>
  tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor | tf.Tensor[];
