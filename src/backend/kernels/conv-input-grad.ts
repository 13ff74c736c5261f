// Conv2DBackpropInput as a forward conv (XNNPACK on wasm) instead of the stock scalar loop:
// dx = conv(zero-inserted dy, filter flipped in space with in/out channels swapped), stride 1.
// With dyDil[p] = dy[p/s] (p % s == 0) and j = FH-1-i:
//   dx[h] = sum_j dyDil[h - (FH-1-padTop) + j] * Wflip[j]
// i.e. dyDil padded on top by FH-1-padTop, on the bottom so the output has exactly H rows.
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { call, conv2d, ctxOf, free, reshape, slice, type Ctx } from './call.js';

interface InputGradAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

export function conv2dInputGrad(ctx: Ctx, dy: TensorInfo, filter: TensorInfo, attrs: InputGradAttrs): TensorInfo {
  const tmp: TensorInfo[] = [];
  const keep = (t: TensorInfo) => (tmp.push(t), t);
  try {
    const [B, H, W, ci] = attrs.inputShape;
    const [FH, FW, , co] = filter.shape;
    const info = backend_util.computeConv2DInfo(
      attrs.inputShape, filter.shape as [number, number, number, number], attrs.strides, 1, attrs.pad as 'same',
      attrs.dimRoundingMode);
    const { strideHeight: sh, strideWidth: sw, outHeight: OH, outWidth: OW } = info;
    if (dy.shape[1] !== OH || dy.shape[2] !== OW) {
      throw new Error(`bnlab Conv2DBackpropInput: dy ${dy.shape} does not match conv output ${OH}x${OW}`);
    }

    let d = dy;
    if (sh > 1 || sw > 1) {
      // Zero insertion as a pad of [B,OH,1,OW,1,co] to [B,OH,sh,OW,sw,co]: leaves s-1 trailing zeros.
      const r6 = keep(reshape(ctx, dy, [B, OH, 1, OW, 1, co]));
      const p6 = keep(call(ctx, 'PadV2', { x: r6 }, {
        paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0,
      }));
      d = keep(reshape(ctx, p6, [B, OH * sh, OW * sw, co]));
    }
    // Pads of the stride-1 conv over d; a negative pad means cropping d instead.
    const [Ld, Wd] = [d.shape[1], d.shape[2]];
    const pt = FH - 1 - info.padInfo.top, pl = FW - 1 - info.padInfo.left;
    const pb = H + FH - 1 - pt - Ld, pr = W + FW - 1 - pl - Wd;
    if (pt < 0 || pb < 0 || pl < 0 || pr < 0) {
      const t0 = Math.max(0, -pt), l0 = Math.max(0, -pl);
      const size = [B, Ld - t0 + Math.min(0, pb), Wd - l0 + Math.min(0, pr), co];
      d = keep(slice(ctx, d, [0, t0, l0, 0], size));
    }
    const flipped = keep(call(ctx, 'Reverse', { x: filter }, { dims: [0, 1] }));
    const wT = keep(call(ctx, 'Transpose', { x: flipped }, { perm: [0, 1, 3, 2] })); // [FH,FW,co,ci]
    const dx = conv2d(ctx, d, wT, [Math.max(0, pt), Math.max(0, pb), Math.max(0, pl), Math.max(0, pr)]);
    if (dx.shape[1] !== H || dx.shape[2] !== W || dx.shape[3] !== ci) {
      free(ctx, dx);
      throw new Error(`bnlab Conv2DBackpropInput: produced ${dx.shape}, expected ${attrs.inputShape}`);
    }
    return dx;
  } finally {
    free(ctx, ...tmp);
  }
}

/** `fallback`: the stock kernel, kept for NCHW (rare; the stock one handles it). */
export function inputGradKernel(backendName: string, fallback?: KernelConfig): KernelConfig {
  const kernelFunc = ((args) => {
    const { inputs, backend, attrs } = args;
    const a = attrs as unknown as InputGradAttrs;
    if (a.dataFormat === 'NCHW' && fallback) return fallback.kernelFunc(args);
    const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
    return conv2dInputGrad(ctxOf(backend, backendName), dy, filter, a);
  }) as KernelFunc;
  return { kernelName: 'Conv2DBackpropInput', backendName, kernelFunc, setupFunc: fallback?.setupFunc };
}
