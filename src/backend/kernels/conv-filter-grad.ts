// Conv2DBackpropFilter as a forward conv, so it runs on the backend's fast conv path.
//   dW[i,j,ci,co] = sum_{b,oh,ow} x[b, oh*s+i-padTop, ow*s+j-padLeft, ci] * dy[b,oh,ow,co]
// is a conv of x^T ([ci,H,W,B]: batch<->channels) with dy^T ([OH,OW,B,co]) as the filter,
// dilated by the stride. Not routed through Conv3DBackpropFilterV2: wrong for stride 2 on wasm.
import { backend_util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { call, conv2d, ctxOf, free, reshape, slice, transpose, type Ctx } from './call.js';

interface FilterGradAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

export function conv2dFilterGrad(ctx: Ctx, x: TensorInfo, dy: TensorInfo, attrs: FilterGradAttrs): TensorInfo {
  const tmp: TensorInfo[] = [];
  const keep = (t: TensorInfo) => (tmp.push(t), t);
  try {
    if (attrs.dataFormat === 'NCHW') {
      x = keep(transpose(ctx, x, [0, 2, 3, 1]));
      dy = keep(transpose(ctx, dy, [0, 2, 3, 1]));
    }
    const [B, H, W, ci] = x.shape;
    const [fh, fw, , co] = attrs.filterShape;
    const info = backend_util.computeConv2DInfo(
      [B, H, W, ci], attrs.filterShape, attrs.strides, 1, attrs.pad as 'same', attrs.dimRoundingMode);
    const { strideHeight: sh, strideWidth: sw, outHeight: OH, outWidth: OW } = info;
    const { top, left } = info.padInfo;
    if (dy.shape[1] !== OH || dy.shape[2] !== OW) {
      throw new Error(`bnlab Conv2DBackpropFilter: dy ${dy.shape} does not match conv output ${OH}x${OW}`);
    }

    const plain1x1 = fh === 1 && fw === 1 && top === 0 && left === 0 &&
      OH === Math.ceil(H / sh) && OW === Math.ceil(W / sw);
    if (plain1x1) {
      // 1x1: a single GEMM x^T·dy (transpose first: transposed BatchMatMul is slow on wasm).
      // Subsample with a 1x1 max pool: wasm StridedSlice is a slow generic loop (~30 ms here).
      let xs = x;
      if (sh > 1 || sw > 1) {
        xs = keep(call(ctx, 'MaxPool', { x }, { filterSize: [1, 1], strides: [sh, sw], pad: 'valid' }));
      }
      const n = B * OH * OW;
      const xT = keep(transpose(ctx, keep(reshape(ctx, xs, [n, ci])), [1, 0]));
      const a = keep(reshape(ctx, xT, [1, ci, n]));
      const b = keep(reshape(ctx, dy, [1, n, co]));
      const prod = keep(call(ctx, 'BatchMatMul', { a, b }, { transposeA: false, transposeB: false }));
      return reshape(ctx, prod, [1, 1, ci, co]);
    }

    const xT = keep(transpose(ctx, x, [3, 1, 2, 0])); // [ci, H, W, B]
    const dyT = keep(transpose(ctx, dy, [1, 2, 0, 3])); // [OH, OW, B, co]
    // Bottom/right pads make the output exactly fh x fw when possible; a negative value means
    // trailing input rows are never read (valid / stride-2 'same'): pad 0 and slice instead.
    const bottom = Math.max(0, fh + (OH - 1) * sh - H - top);
    const right = Math.max(0, fw + (OW - 1) * sw - W - left);
    let g = keep(conv2d(ctx, xT, dyT, [top, bottom, left, right], [sh, sw])); // [ci, >=fh, >=fw, co]
    if (g.shape[1] !== fh || g.shape[2] !== fw) g = keep(slice(ctx, g, [0, 0, 0, 0], [ci, fh, fw, co]));
    return transpose(ctx, g, [1, 2, 0, 3]);
  } finally {
    free(ctx, ...tmp);
  }
}

export function filterGradKernel(backendName: string): KernelConfig {
  const kernelFunc = (({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    return conv2dFilterGrad(ctxOf(backend, backendName), x, dy, attrs as unknown as FilterGradAttrs);
  }) as KernelFunc;
  return { kernelName: 'Conv2DBackpropFilter', backendName, kernelFunc };
}
