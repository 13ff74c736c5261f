// SGD with momentum and decoupled-by-group weight decay, PyTorch's update rule:
//   d = g + wd * w;  v <- m * v + d;  w <- w - lr * (nesterov ? d + m * v : v)
import * as tf from '@tensorflow/tfjs-core';

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
  tf.tidy(() => {
    for (const [name, w] of params) {
      const g = grads.get(name);
      if (!g) continue;
      const wd = weightDecay.get(name) ?? 0;
      const d = wd > 0 ? tf.add(g, tf.mul(w, wd)) : g;
      const v = velocity.get(name)!;
      const vNew = tf.add(tf.mul(v, cfg.momentum), d);
      v.assign(vNew);
      const upd = cfg.nesterov ? tf.add(d, tf.mul(vNew, cfg.momentum)) : vNew;
      w.assign(tf.sub(w, tf.mul(upd, lr)));
    }
  });
}
