// BatchMatMul for the wasm backend through the native addon's sgemm (native/addon/matmul.cc),
// transposes included, in place on the wasm heap (switch: nativeMatMul). Batches must match
// or one be 1 (what tfjs' matMul produces); anything else, and non-float32, goes to the kernel
// registered before (the transpose fix over the stock XNNPACK kernel).
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native-addon.js';
import { heapBackend, heapOf, offsetOf, sizeOf } from './heap.js';

export function nativeMatMulKernel(addon: NativeAddon, prev: KernelConfig): KernelConfig {
  const kernelFunc = ((args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const ra = a.shape.length, rb = b.shape.length;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || ra < 2 || rb < 2) return prev.kernelFunc(args);
    const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const Kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    const batchA = sizeOf(a.shape.slice(0, -2)), batchB = sizeOf(b.shape.slice(0, -2));
    if (K !== Kb) throw new Error(`BatchMatMul: inner dimensions differ (${a.shape} x ${b.shape}, transposes ${transposeA}/${transposeB})`);
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) return prev.kernelFunc(args);
    const batchShape = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const be = heapBackend(args.backend);
    const out = be.makeOutput([...batchShape, M, N], 'float32');
    if (M * N === 0) return out;
    const at = (t: TensorInfo) => offsetOf(be, t);
    if (K === 0) {
      new Float32Array(heapOf(be).buffer, at(out), sizeOf(out.shape)).fill(0);
      return out;
    }
    addon.matmul(heapOf(be), at(a), at(b), at(out), batchA, batchB, M, N, K, transposeA ? 1 : 0, transposeB ? 1 : 0);
    return out;
  }) as KernelFunc;
  return { kernelName: 'BatchMatMul', backendName: prev.backendName, kernelFunc, setupFunc: prev.setupFunc };
}
