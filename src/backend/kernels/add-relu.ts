// BnlabAddRelu {a, b} -> relu(a + b) and BnlabReluGrad {dy, y} -> dy * [y > 0], native
// (native/addon/eltwise.cc), for the end of every residual block. Same shapes only (no
// broadcasting). Registered for wasm when the native addon is built (switch: nativeAddRelu);
// src/nn/add-relu.ts falls back to tf.relu(tf.add()) without them.
import { getKernel, registerKernel, unregisterKernel, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native-addon.js';

export const ADD_RELU = 'BnlabAddRelu';
export const RELU_GRAD = 'BnlabReluGrad';

interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

function binary(run: (heap: Uint8Array, a: number, b: number, out: number, n: number) => void): KernelFunc {
  return (({ inputs, backend }) => {
    const be = backend as unknown as WasmBackendLike;
    const [a, b] = Object.values(inputs) as TensorInfo[];
    const n = a.shape.reduce((p, x) => p * x, 1);
    if (b.shape.reduce((p, x) => p * x, 1) !== n || a.dtype !== 'float32' || b.dtype !== 'float32') {
      throw new Error(`bnlab ${ADD_RELU}/${RELU_GRAD}: two float32 tensors of the same size, got ${a.shape} and ${b.shape}`);
    }
    const out = be.makeOutput(a.shape, 'float32');
    const at = (t: TensorInfo) => be.dataIdMap.get(t.dataId).memoryOffset >>> 0;
    if (n > 0) run(be.wasm.HEAPU8, at(a), at(b), at(out), n);
    return out;
  }) as KernelFunc;
}

export function setNativeAddRelu(addon: NativeAddon | null, backendName = 'wasm'): void {
  for (const k of [ADD_RELU, RELU_GRAD]) if (getKernel(k, backendName) != null) unregisterKernel(k, backendName);
  if (!addon) return;
  registerKernel({ kernelName: ADD_RELU, backendName, kernelFunc: binary((...a) => addon.addRelu(...a)) });
  registerKernel({ kernelName: RELU_GRAD, backendName, kernelFunc: binary((...a) => addon.reluGrad(...a)) });
}

/** Add, natively for large same-shape float32 tensors (e.g. the gradient sums tfjs makes for
 *  a residual block's input), else the stock wasm Add (broadcasting, other dtypes, small). */
export function nativeAddKernel(addon: NativeAddon, stock: KernelConfig): KernelConfig {
  const native = binary((...a) => addon.add(...a));
  const kernelFunc = ((args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const n = a.shape.reduce((p, x) => p * x, 1);
    const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    if (!same || n < 65536 || a.dtype !== 'float32' || b.dtype !== 'float32') return stock.kernelFunc(args);
    return native(args);
  }) as KernelFunc;
  return { kernelName: 'Add', backendName: stock.backendName, kernelFunc, setupFunc: stock.setupFunc };
}
