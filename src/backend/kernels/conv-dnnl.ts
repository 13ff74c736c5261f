// Conv2D and both of its gradients for the wasm backend, computed by oneDNN through the native
// addon (src/backend/native-addon.ts) in place on the wasm heap: outputs are allocated by tfjs, oneDNN
// reads and writes them where they live. NHWC, no dilation; anything else (and any oneDNN
// error) goes to the kernel registered before, so nothing is lost by having this on.
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native-addon.js';
import { heapBackend, heapOf, offsetOf } from './heap.js';

export interface ConvAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape?: [number, number, number, number];
  filterShape?: [number, number, number, number];
}

export const FORWARD = 0, BACKWARD_DATA = 1, BACKWARD_WEIGHTS = 2;

// A number per tfjs data buffer, never reused: lets the addon recognise the same dy in the two
// gradient calls of a conv (see DyCopy in native/addon/conv.cc).
const tokens = new WeakMap<object, number>();
let nextToken = 1;
function tokenOf(dataId: object): number {
  let t = tokens.get(dataId);
  if (t == null) tokens.set(dataId, (t = nextToken++));
  return t;
}

/** The 15 numbers the addon keys its primitives on: B H W ci FH FW co OH OW sh sw pt pl pb pr. */
export function convDims(xShape: number[], filterShape: number[], attrs: ConvAttrs): Int32Array | null {
  if (attrs.dataFormat === 'NCHW') return null;
  const dil = attrs.dilations ?? 1;
  if (dil !== 1 && !(Array.isArray(dil) && dil[0] === 1 && dil[1] === 1)) return null;
  const info = backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides, 1, attrs.pad as 'same', attrs.dimRoundingMode);
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: ci, filterHeight: FH, filterWidth: FW,
    outChannels: co, outHeight: OH, outWidth: OW, strideHeight: sh, strideWidth: sw } = info;
  // oneDNN derives the output size as floor((H + pt + pb - FH) / sh) + 1; tfjs' pads satisfy
  // that for 'same', 'valid' and explicit pads (checked, never assumed).
  const { top: pt, left: pl, bottom: pb, right: pr } = info.padInfo;
  const fits = (n: number, f: number, s: number, a: number, z: number, o: number) =>
    a >= 0 && z >= 0 && Math.floor((n + a + z - f) / s) + 1 === o;
  if (!fits(H, FH, sh, pt, pb, OH) || !fits(W, FW, sw, pl, pr, OW)) return null;
  if (B * H * W * ci === 0 || B * OH * OW * co === 0) return null;
  return new Int32Array([B, H, W, ci, FH, FW, co, OH, OW, sh, sw, pt, pl, pb, pr]);
}

// A fallback is correct but slow: say so, once per message, rather than silently.
const warned = new Set<string>();
function warnOnce(msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  process.stderr.write(msg + '\n');
}

function kernel(addon: NativeAddon, kind: number, prev: KernelConfig, backendName: string): KernelConfig {
  const kernelFunc = ((args) => {
    const b = heapBackend(args.backend);
    const attrs = args.attrs as unknown as ConvAttrs;
    const ins = args.inputs as Record<string, TensorInfo>;
    let a: TensorInfo, w: TensorInfo, dims: Int32Array | null, outShape: number[];
    if (kind === FORWARD) {
      [a, w] = [ins.x, ins.filter];
      dims = convDims(a.shape, w.shape, attrs);
      outShape = dims ? [dims[0], dims[7], dims[8], dims[6]] : [];
    } else if (kind === BACKWARD_DATA) {
      [a, w] = [ins.dy, ins.filter];
      dims = convDims(attrs.inputShape!, w.shape, attrs);
      outShape = attrs.inputShape!;
    } else {
      [a, w] = [ins.x, ins.dy];
      dims = convDims(a.shape, attrs.filterShape!, attrs);
      outShape = attrs.filterShape!;
    }
    if (dims == null || a.dtype !== 'float32' || w.dtype !== 'float32') return prev.kernelFunc(args);
    const out = b.makeOutput(outShape, 'float32');
    const at = (t: TensorInfo) => offsetOf(b, t);
    try {
      const dy = kind === BACKWARD_DATA ? a : kind === BACKWARD_WEIGHTS ? w : null;
      addon.conv(kind, heapOf(b), at(a), at(w), at(out), dims, dy ? tokenOf(dy.dataId) : 0);
    } catch (e) {
      b.disposeData(out.dataId);
      warnOnce(`bnlab: oneDNN could not run ${prev.kernelName} [${dims.join(',')}] (${(e as Error).message}); using the wasm kernel for it`);
      return prev.kernelFunc(args);
    }
    return out;
  }) as KernelFunc;
  return { kernelName: prev.kernelName, backendName, kernelFunc, setupFunc: prev.setupFunc };
}

export const dnnlConvKernel = (addon: NativeAddon, prev: KernelConfig) => kernel(addon, FORWARD, prev, prev.backendName);
export const dnnlInputGradKernel = (addon: NativeAddon, prev: KernelConfig) => kernel(addon, BACKWARD_DATA, prev, prev.backendName);
export const dnnlFilterGradKernel = (addon: NativeAddon, prev: KernelConfig) => kernel(addon, BACKWARD_WEIGHTS, prev, prev.backendName);
