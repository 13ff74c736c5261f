// Helpers for composing kernels out of other registered kernels of the same backend.
// We call kernelFuncs directly (as tfjs' own kernels do) instead of tf ops: nested tf
// ops would create engine-tracked Tensors that alias the TensorInfo we return.
import { getKernel, type KernelBackend, type NamedAttrMap, type TensorInfo } from '@tensorflow/tfjs-core';

export type Ctx = { backend: KernelBackend; backendName: string };

/** KernelFunc types its backend as `{}`. */
export const ctxOf = (backend: unknown, backendName: string): Ctx => ({ backend: backend as KernelBackend, backendName });

export function call(ctx: Ctx, kernelName: string, inputs: Record<string, TensorInfo>, attrs: object = {}): TensorInfo {
  const k = getKernel(kernelName, ctx.backendName);
  if (k == null) throw new Error(`bnlab: kernel ${kernelName} not registered for ${ctx.backendName}`);
  const out = k.kernelFunc({ inputs, attrs: attrs as NamedAttrMap, backend: ctx.backend });
  return Array.isArray(out) ? out[0] : out;
}

/** Frees intermediates; inputs of the outer kernel must never be passed here. */
export function free(ctx: Ctx, ...infos: TensorInfo[]): void {
  for (const t of infos) ctx.backend.disposeData(t.dataId);
}

export const transpose = (ctx: Ctx, x: TensorInfo, perm: number[]) => call(ctx, 'Transpose', { x }, { perm });
export const reshape = (ctx: Ctx, x: TensorInfo, shape: number[]) => call(ctx, 'Reshape', { x }, { shape });
export const slice = (ctx: Ctx, x: TensorInfo, begin: number[], size: number[]) => call(ctx, 'Slice', { x }, { begin, size });

/** Forward NHWC conv with explicit pads; the fast XNNPACK path on wasm. */
export function conv2d(
  ctx: Ctx, x: TensorInfo, filter: TensorInfo,
  pads: [number, number, number, number], dilations: [number, number] = [1, 1],
): TensorInfo {
  const [t, b, l, r] = pads;
  return call(ctx, 'Conv2D', { x, filter }, {
    strides: [1, 1], pad: [[0, 0], [t, b], [l, r], [0, 0]], dataFormat: 'NHWC', dilations, dimRoundingMode: undefined,
  });
}
