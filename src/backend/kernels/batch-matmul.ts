// BatchMatMul with transposeA/B is 25-1000x slower on wasm than transposing first
// (the transposed operand defeats XNNPACK's packed GEMM), so transpose explicitly.
import { type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { ctxOf, free, transpose, type Ctx } from './call.js';

function swapLast2(ctx: Ctx, x: TensorInfo): TensorInfo {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return transpose(ctx, x, perm);
}

export function batchMatMulKernel(stock: KernelConfig): KernelConfig {
  const backendName = stock.backendName;
  const kernelFunc = ((args) => {
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return stock.kernelFunc(args);
    const ctx = ctxOf(args.backend, backendName);
    let { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const tmp: TensorInfo[] = [];
    try {
      if (transposeA) tmp.push((a = swapLast2(ctx, a)));
      if (transposeB) tmp.push((b = swapLast2(ctx, b)));
      return stock.kernelFunc({ ...args, inputs: { a, b }, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    } finally {
      free(ctx, ...tmp);
    }
  }) as KernelFunc;
  return { kernelName: 'BatchMatMul', backendName, kernelFunc, setupFunc: stock.setupFunc };
}
