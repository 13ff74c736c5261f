// BnlabSGD {w, g, v} attrs {lr, momentum, weightDecay, nesterov} -> [w', v']: the update of
// src/train/sgd.ts in one native pass (native/addon/sgd.cc). Registered for wasm only when the
// native addon is built (switch: fusedSGD); sgdStep falls back to tf ops when it is absent.
import { getKernel, registerKernel, unregisterKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native-addon.js';

export const SGD_KERNEL = 'BnlabSGD';

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

export function setFusedSGD(addon: NativeAddon | null, backendName = 'wasm'): void {
  if (getKernel(SGD_KERNEL, backendName) != null) unregisterKernel(SGD_KERNEL, backendName);
  if (!addon) return;
  const kernelFunc = (({ inputs, attrs, backend }) => {
    const b = backend as unknown as WasmBackendLike;
    const { w, g, v } = inputs as { w: TensorInfo; g: TensorInfo; v: TensorInfo };
    const { lr, momentum, weightDecay, nesterov } = attrs as unknown as { lr: number; momentum: number; weightDecay: number; nesterov: boolean };
    const n = w.shape.reduce((a, x) => a * x, 1);
    for (const t of [g, v]) {
      if (t.shape.reduce((a, x) => a * x, 1) !== n) throw new Error('BnlabSGD: w, g and v must have the same size');
    }
    if (w.dtype !== 'float32' || g.dtype !== 'float32' || v.dtype !== 'float32') throw new Error('BnlabSGD: float32 only');
    const wo = b.makeOutput(w.shape, 'float32'), vo = b.makeOutput(w.shape, 'float32');
    const at = (t: TensorInfo) => b.dataIdMap.get(t.dataId).memoryOffset >>> 0;
    addon.sgd(b.wasm.HEAPU8, at(w), at(g), at(v), at(wo), at(vo), n, lr, momentum, weightDecay, nesterov ? 1 : 0);
    return [wo, vo];
  }) as KernelFunc;
  registerKernel({ kernelName: SGD_KERNEL, backendName, kernelFunc });
}
