// ms per conv backward (ResNet-20 CIFAR layer shapes, batch 32) and per transposed matmul on
// wasm, bnlab fixes on vs off. Usage: npx tsx scripts/bench-wasm-kernels.ts [threads] [batch]
// Threads are fixed at backend init, so compare thread counts across separate runs.
import * as tf from '@tensorflow/tfjs';
import { initWasmBackend, setWasmFixes } from '../src/backend/wasm.js';

const threads = Number(process.argv[2] ?? 1);
const B = Number(process.argv[3] ?? 32);
const info = await initWasmBackend({ threads });
console.log(`wasm simd=${info.simd} threads=${info.threads} ${info.notes.join('; ')}`);

// [H, Cin, Cout, k, stride, count in ResNet-20]
const layers: [number, number, number, number, number, number][] = [
  [32, 16, 16, 3, 1, 7], [32, 16, 32, 3, 2, 1], [32, 16, 32, 1, 2, 1], [16, 32, 32, 3, 1, 5],
  [16, 32, 64, 3, 2, 1], [16, 32, 64, 1, 2, 1], [8, 64, 64, 3, 1, 5],
];

function median(f: () => void, reps = 5): number {
  f(); // warm-up (XNNPACK operator creation, heap growth)
  const t: number[] = [];
  for (let i = 0; i < reps; i++) { const s = performance.now(); f(); t.push(performance.now() - s); }
  return t.sort((a, b) => a - b)[reps >> 1];
}

function convBackward(kernel: 'Conv2DBackpropFilter' | 'Conv2DBackpropInput', [H, ci, co, k, s]: number[]): number {
  const x = tf.randomNormal([B, H, H, ci]);
  const f = tf.randomNormal([k, k, ci, co]);
  const dy = tf.randomNormal([B, H / s, H / s, co]);
  const attrs = { strides: s, pad: 'same', dataFormat: 'NHWC' };
  const ms = median(() => {
    const out = kernel === 'Conv2DBackpropFilter'
      ? tf.engine().runKernel(kernel, { x, dy }, { ...attrs, filterShape: f.shape })
      : tf.engine().runKernel(kernel, { dy, filter: f }, { ...attrs, inputShape: x.shape });
    (out as tf.Tensor).dataSync();
    (out as tf.Tensor).dispose();
  }, kernel === 'Conv2DBackpropInput' && !fixed.inputGrad ? 1 : 5);
  tf.dispose([x, f, dy]);
  return ms;
}

let fixed = { filterGrad: true, inputGrad: true, batchMatMul: true };
for (const on of [true, false]) {
  fixed = { filterGrad: true, inputGrad: on, batchMatMul: on }; // no stock filter grad exists on wasm
  setWasmFixes(fixed);
  let total = 0;
  console.log(`\n== fixes ${on ? 'on' : 'off (inputGrad, batchMatMul stock)'}`);
  for (const l of layers) {
    const fg = convBackward('Conv2DBackpropFilter', l);
    const ig = convBackward('Conv2DBackpropInput', l);
    total += (fg + ig) * l[5];
    console.log(`${l[0]}x${l[0]}x${l[1]}->${l[2]} k${l[3]} s${l[4]}: filterGrad ${fg.toFixed(1)} ms, inputGrad ${ig.toFixed(1)} ms`);
  }
  console.log(`ResNet-20 conv backward total (x layer counts): ${total.toFixed(0)} ms`);
  for (const [m, k, n, ta, tb] of [[64, 2048, 10, true, false], [512, 512, 512, false, true], [512, 512, 512, true, false]] as const) {
    const a = tf.randomNormal(ta ? [k, m] : [m, k]), b = tf.randomNormal(tb ? [n, k] : [k, n]);
    const ms = median(() => tf.matMul(a, b, ta, tb).dispose());
    console.log(`matMul ${m}x${k}x${n} tA=${ta} tB=${tb}: ${ms.toFixed(2)} ms`);
    tf.dispose([a, b]);
  }
}
