// SGD with momentum and decoupled-by-group weight decay, PyTorch's update rule:
//   d = g + wd * w;  v <- m * v + d;  w <- w - lr * (nesterov ? d + m * v : v)
import * as tf from '@tensorflow/tfjs-core';
import { hasKernel, runKernel, SGD_KERNEL } from '../backend/kernels/names.js';

export interface SgdConfig {
  momentum: number;
  nesterov: boolean;
}

export function sgdStep(
  params: ReadonlyMap<string, tf.Variable>,
  grads: ReadonlyMap<string, tf.Tensor>,
  velocity: ReadonlyMap<string, tf.Variable>,
  weightDecay: ReadonlyMap<string, number>,
  lr: number,
  cfg: SgdConfig,
): void {
  // the same rule in one kernel per parameter when the backend has it (native addon on wasm)
  const fused = hasKernel(SGD_KERNEL);
  tf.tidy(() => {
    for (const [name, w] of params) {
      const g = grads.get(name);
      if (!g) continue;
      const wd = weightDecay.get(name) ?? 0;
      if (fused) {
        const attrs = { lr, momentum: cfg.momentum, weightDecay: wd, nesterov: cfg.nesterov };
        const [wNew, vNew] = runKernel(SGD_KERNEL, { w, g, v: velocity.get(name)! }, attrs) as tf.Tensor[];
        velocity.get(name)!.assign(vNew);
        w.assign(wNew);
        continue;
      }
      const d = wd > 0 ? tf.add(g, tf.mul(w, wd)) : g;
      const v = velocity.get(name)!;
      const vNew = tf.add(tf.mul(v, cfg.momentum), d);
      v.assign(vNew);
      const upd = cfg.nesterov ? tf.add(d, tf.mul(vNew, cfg.momentum)) : vNew;
      w.assign(tf.sub(w, tf.mul(upd, lr)));
    }
  });
}
