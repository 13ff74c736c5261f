// The per-step updates of training state, one native kernel call each instead of 5-11 tf ops
// (per-call engine overhead dominated them). Registered for wasm only when the native addon is
// built; the callers fall back to their tf ops when a kernel is absent.
//   BnlabSGD {w, g, v} attrs {lr, momentum, weightDecay, nesterov} -> [w', v']
//     src/train/sgd.ts' rule (native/addon/sgd.cc); switch fusedSGD
//   BnlabEMA {mean, variance, obsMean [G,C], obsVariance [G,C]} attrs {decay, counts[G]} -> [mean', variance']
//     src/train/step.ts' EMA over the G groups given (native/addon/ema.cc); switch fusedEMA
import { getKernel, registerKernel, unregisterKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native-addon.js';
import { heapBackend, heapOf, offsetOf, sizeOf } from './heap.js';
import { SGD_KERNEL, EMA_KERNEL } from './names.js';

export { SGD_KERNEL, EMA_KERNEL };


export function setFusedSGD(addon: NativeAddon | null, backendName = 'wasm'): void {
  if (getKernel(SGD_KERNEL, backendName) != null) unregisterKernel(SGD_KERNEL, backendName);
  if (!addon) return;
  const kernelFunc = (({ inputs, attrs, backend }) => {
    const b = heapBackend(backend);
    const { w, g, v } = inputs as { w: TensorInfo; g: TensorInfo; v: TensorInfo };
    const { lr, momentum, weightDecay, nesterov } = attrs as unknown as { lr: number; momentum: number; weightDecay: number; nesterov: boolean };
    const n = sizeOf(w.shape);
    for (const t of [g, v]) {
      if (sizeOf(t.shape) !== n) throw new Error('BnlabSGD: w, g and v must have the same size');
    }
    if (w.dtype !== 'float32' || g.dtype !== 'float32' || v.dtype !== 'float32') throw new Error('BnlabSGD: float32 only');
    const wo = b.makeOutput(w.shape, 'float32'), vo = b.makeOutput(w.shape, 'float32');
    const at = (t: TensorInfo) => offsetOf(b, t);
    addon.sgd(heapOf(b), at(w), at(g), at(v), at(wo), at(vo), n, lr, momentum, weightDecay, nesterov ? 1 : 0);
    return [wo, vo];
  }) as KernelFunc;
  registerKernel({ kernelName: SGD_KERNEL, backendName, kernelFunc });
}

export function setFusedEMA(addon: NativeAddon | null, backendName = 'wasm'): void {
  if (getKernel(EMA_KERNEL, backendName) != null) unregisterKernel(EMA_KERNEL, backendName);
  if (!addon) return;
  const kernelFunc = (({ inputs, attrs, backend }) => {
    const b = heapBackend(backend);
    const { mean, variance, obsMean, obsVariance } = inputs as Record<string, TensorInfo>;
    const { decay, counts } = attrs as unknown as { decay: number; counts: number[] };
    const C = sizeOf(mean.shape);
    const G = counts.length;
    const size = (t: TensorInfo) => sizeOf(t.shape);
    if (size(variance) !== C || size(obsMean) !== G * C || size(obsVariance) !== G * C) {
      throw new Error(`BnlabEMA: expected [C] statistics and [${G}, C] observations, got ${mean.shape} / ${obsMean.shape}`);
    }
    const mo = b.makeOutput(mean.shape, 'float32'), vo = b.makeOutput(variance.shape, 'float32');
    const at = (t: TensorInfo) => offsetOf(b, t);
    addon.ema(heapOf(b), at(mean), at(variance), at(obsMean), at(obsVariance), at(mo), at(vo), C, G, decay,
      Float64Array.from(counts));
    return [mo, vo];
  }) as KernelFunc;
  registerKernel({ kernelName: EMA_KERNEL, backendName, kernelFunc });
}
