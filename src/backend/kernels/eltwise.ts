// Native elementwise kernels (native/addon/eltwise.cc) for wasm, registered when the addon is
// built (switch: nativeEltwise); src/nn/fused.ts falls back to tf ops without them.
//   BnlabAddRelu {a, b} -> relu(a + b), BnlabReluGrad {dy, y} -> dy * [y > 0]: the end of every
//     residual block; same shapes only (no broadcasting)
//   BnlabGAP {x [B,H,W,C]} -> [B,C] mean over H,W; BnlabGAPGrad {dy [B,C]} attrs {shape} -> dx
//   Add: large same-shape float32 natively, the rest to the stock kernel
//   MaxPoolGrad: float32, no dilation, natively on all threads, else the stock kernel
// and, not native but for the same reason (fixed cost per call): small binary ops in JS.
import { backend_util, getKernel, registerKernel, unregisterKernel, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { shared } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from '../native-addon.js';
import { heapBackend, heapOf, offsetOf, sizeOf } from './heap.js';
import { ADD_RELU, RELU_GRAD, GAP, GAP_GRAD } from './names.js';

export { ADD_RELU, RELU_GRAD, GAP, GAP_GRAD };


function binary(run: (heap: Uint8Array, a: number, b: number, out: number, n: number) => void): KernelFunc {
  return (({ inputs, backend }) => {
    const be = heapBackend(backend);
    const [a, b] = Object.values(inputs) as TensorInfo[];
    const n = sizeOf(a.shape);
    if (sizeOf(b.shape) !== n || a.dtype !== 'float32' || b.dtype !== 'float32') {
      throw new Error(`bnlab ${ADD_RELU}/${RELU_GRAD}: two float32 tensors of the same size, got ${a.shape} and ${b.shape}`);
    }
    const out = be.makeOutput(a.shape, 'float32');
    const at = (t: TensorInfo) => offsetOf(be, t);
    if (n > 0) run(heapOf(be), at(a), at(b), at(out), n);
    return out;
  }) as KernelFunc;
}

export function setNativeEltwise(addon: NativeAddon | null, backendName = 'wasm'): void {
  for (const k of [ADD_RELU, RELU_GRAD, GAP, GAP_GRAD]) if (getKernel(k, backendName) != null) unregisterKernel(k, backendName);
  if (!addon) return;
  registerKernel({
    kernelName: GAP, backendName, kernelFunc: (({ inputs, backend }) => {
      const b = heapBackend(backend);
      const { x } = inputs as { x: TensorInfo };
      if (x.shape.length !== 4 || x.dtype !== 'float32') throw new Error(`${GAP}: float32 NHWC input, got ${x.dtype} ${x.shape}`);
      const [B, H, W, C] = x.shape;
      const y = b.makeOutput([B, C], 'float32');
      if (B * C > 0) addon.gap(heapOf(b), offsetOf(b, x), offsetOf(b, y), B, H * W, C);
      return y;
    }) as KernelFunc,
  });
  registerKernel({
    kernelName: GAP_GRAD, backendName, kernelFunc: (({ inputs, attrs, backend }) => {
      const b = heapBackend(backend);
      const { dy } = inputs as { dy: TensorInfo };
      const { shape } = attrs as unknown as { shape: number[] };
      const [B, H, W, C] = shape;
      if (dy.shape.length !== 2 || dy.shape[0] !== B || dy.shape[1] !== C) throw new Error(`${GAP_GRAD}: dy ${dy.shape} does not match ${shape}`);
      const dx = b.makeOutput(shape, 'float32');
      if (B * H * W * C > 0) addon.gapGrad(heapOf(b), offsetOf(b, dy), offsetOf(b, dx), B, H * W, C);
      return dx;
    }) as KernelFunc,
  });
  registerKernel({ kernelName: ADD_RELU, backendName, kernelFunc: binary((...a) => addon.addRelu(...a)) });
  registerKernel({ kernelName: RELU_GRAD, backendName, kernelFunc: binary((...a) => addon.reluGrad(...a)) });
}

/** Add, natively for same-shape float32 tensors above SMALL_BINARY elements (e.g. the gradient
 *  sums tfjs makes for a residual block's input), else the stock wasm Add (broadcasting, other
 *  dtypes; small ones are caught earlier by smallBinaryKernel). */
export function nativeAddKernel(addon: NativeAddon, stock: KernelConfig): KernelConfig {
  const native = binary((...a) => addon.add(...a));
  const kernelFunc = ((args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const n = sizeOf(a.shape);
    const same = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    if (!same || n <= SMALL_BINARY || a.dtype !== 'float32' || b.dtype !== 'float32') return stock.kernelFunc(args);
    return native(args);
  }) as KernelFunc;
  return { kernelName: 'Add', backendName: stock.backendName, kernelFunc, setupFunc: stock.setupFunc };
}

/** MaxPoolGrad natively (native/addon/pool.cc: the stock one is single-threaded, 10% of a
 *  ResNet-50 step); dilated or non-float32 pooling goes to the stock kernel. */
export function nativeMaxPoolGradKernel(addon: NativeAddon, stock: KernelConfig): KernelConfig {
  const kernelFunc = ((args) => {
    const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as {
      filterSize: number | [number, number]; strides: number | [number, number]; pad: 'same' | 'valid' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil';
    };
    if (input.dtype !== 'float32' || dy.dtype !== 'float32' || input.shape.length !== 4) return stock.kernelFunc(args);
    const i = backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    if (i.dilationHeight !== 1 || i.dilationWidth !== 1) return stock.kernelFunc(args);
    const b = heapBackend(args.backend);
    const dx = b.makeOutput(input.shape, 'float32');
    if (sizeOf(input.shape) > 0) {
      addon.maxPoolGrad(heapOf(b), offsetOf(b, input), offsetOf(b, dy), offsetOf(b, dx), i.batchSize, i.inHeight, i.inWidth,
        i.inChannels, i.outHeight, i.outWidth, i.filterHeight, i.filterWidth, i.strideHeight, i.strideWidth, i.padInfo.top, i.padInfo.left);
    }
    return dx;
  }) as KernelFunc;
  return { kernelName: 'MaxPoolGrad', backendName: stock.backendName, kernelFunc, setupFunc: stock.setupFunc };
}

/** Largest output computed in JS by smallBinaryKernel. */
export const SMALL_BINARY = 4096;

/**
 * Add / Sub / Multiply with outputs of at most SMALL_BINARY elements (the loss and softmax on
 * [batch, classes], bias adds) computed in JS by the cpu backend's implementation, reading and
 * writing the wasm heap: the stock wasm kernel costs ~1 ms per call whatever the size
 * (measured: a [32,10] - [32,1] Sub), the JS loop microseconds. Larger ones go to `next`.
 */
export function smallBinaryKernel(next: KernelConfig): KernelConfig {
  const impls: Record<string, typeof shared.addImpl> = { Add: shared.addImpl, Sub: shared.subImpl, Multiply: shared.multiplyImpl };
  const impl = impls[next.kernelName];
  if (!impl) throw new Error(`smallBinaryKernel: no JS implementation for ${next.kernelName}`);
  const kernelFunc = ((args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return next.kernelFunc(args);
    const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = sizeOf(shape);
    if (n > SMALL_BINARY || n === 0) return next.kernelFunc(args);
    const be = heapBackend(args.backend);
    const view = (t: TensorInfo) => new Float32Array(heapOf(be).buffer, offsetOf(be, t), sizeOf(t.shape));
    const [vals] = impl(a.shape, b.shape, view(a), view(b), 'float32');
    const out = be.makeOutput(shape, 'float32');
    view(out).set(vals as Float32Array); // after makeOutput: the heap may have grown
    return out;
  }) as KernelFunc;
  return { ...next, kernelFunc };
}
