// bnlab's cuda backend as tfjs sees it: a backend named 'cuda' over a Device, with its kernels.
import * as tf from '@tensorflow/tfjs-core';
import { CudaBackend } from './backend.js';
import type { Device } from './device.js';
import { registerCudaKernels } from './kernels.js';

export { CudaBackend } from './backend.js';
export { CUDA_KERNELS } from './kernels.js';

/**
 * Register a backend `name` whose tensors live on `device`, with every cuda kernel, and make it
 * the current backend. Re-registering (tests: a fresh fake device) replaces the previous one.
 */
export async function useCudaBackend(device: Device, name = 'cuda'): Promise<CudaBackend> {
  if (tf.findBackend(name)) tf.removeBackend(name);
  const backend = new CudaBackend(device);
  tf.registerBackend(name, () => backend, 0);
  registerCudaKernels(name);
  if (!(await tf.setBackend(name))) throw new Error(`the ${name} backend did not initialise`);
  return backend;
}
