// Prints the loss and the first gradient values of a ResNet-14 step as JSON, for a backend set by env.
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/backend/index.js';
import { validateConfig } from '../../src/config/load.js';
import { createState } from '../../src/train/state.js';
import { crossEntropy } from '../../src/nn/loss.js';
const r = await initBackend('wasm', Number(process.env.T ?? 2));
console.error(r.reason);
const cfg = validateConfig({ model: { depth: 14, width: 8, zero_init_last_gamma: false }, bn: { nbs: 4 } });
const s = createState(cfg, 3, 10);
const x = tf.randomNormal([12, 16, 16, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
const y = tf.tensor1d([0,1,2,3,4,5,6,7,8,9,0,1], 'int32');
const vars = [...s.params.values()];
const { value, grads } = tf.variableGrads(() => tf.mean(crossEntropy(s.net.forward(s.params, x, { source: 'batch', nbs: 4, eps: 1e-5 }), y)) as tf.Scalar, vars);
const out: Record<string, number[]> = { loss: Array.from(value.dataSync()) };
for (const [n, v] of s.params) out[n] = Array.from(grads[v.name].dataSync()).slice(0, 50);
console.log(JSON.stringify(out));
