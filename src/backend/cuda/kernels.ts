// The cuda backend's kernels: every tfjs kernel bnlab's training, evaluation, PreciseBN, FrozenBN,
// trace and domain-statistics paths execute (scripts/kernel-census.ts lists them from real wasm
// runs; test/cuda-backend.test.ts checks each is here). Each is shape logic in TypeScript and one
// Device call (./device.ts). A kernel tfjs asks for that is not here fails with its name:
// tfjs has no fallback between backends, and a silent host round-trip would hide the cost.
import { backend_util, getKernel, registerKernel, unregisterKernel, slice_util, upcastType, util, type DataType, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { convDims, type ConvAttrs } from '../kernels/conv-dnnl.js';
import { ADD_RELU, BN_APPLY, BN_APPLY_ADD_RELU, BN_BACKWARD, BN_FORWARD, EMA_KERNEL, GAP, GAP_GRAD, RELU_GRAD, SGD_KERNEL } from '../kernels/names.js';
import type { CudaBackend } from './backend.js';
import type { BinaryOp, DType, ReduceOp, UnaryOp } from './device.js';

const size = (s: readonly number[]) => util.sizeFromShape(s as number[]);
type Args = Parameters<KernelFunc>[0];
const be = (a: Args) => a.backend as unknown as CudaBackend;
const ins = (a: Args) => a.inputs as unknown as Record<string, TensorInfo>;
const attrs = <T>(a: Args) => a.attrs as unknown as T;

function f32(name: string, ...ts: (TensorInfo | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'float32') throw new Error(`cuda ${name}: float32 only, got ${t.dtype}`);
}

/** A view of x's buffer under another shape: no copy, one more reference. */
function alias(b: CudaBackend, x: TensorInfo, shape: number[]): TensorInfo {
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype: x.dtype };
}

function castTo(b: CudaBackend, x: TensorInfo, dtype: DataType): TensorInfo {
  if (x.dtype === dtype) return alias(b, x, x.shape);
  const y = b.makeOutput(x.shape, dtype);
  b.device.cast(b.buf(x), b.buf(y), size(x.shape), x.dtype as DType, dtype as DType);
  return y;
}

function transposeOf(b: CudaBackend, x: TensorInfo, perm: number[]): TensorInfo {
  const y = b.makeOutput(perm.map((p) => x.shape[p]), x.dtype);
  if (size(x.shape) > 0) b.device.transpose(b.buf(x), b.buf(y), x.shape, perm, x.dtype === 'bool' ? 1 : 4);
  return y;
}

// ---- convolutions (cuDNN on the device; tfjs' HWIO filters, NHWC activations) ----
function conv(kind: 0 | 1 | 2, name: string): KernelFunc {
  return ((a: Args) => {
    const b = be(a), i = ins(a), at = attrs<ConvAttrs>(a);
    const [A, B, xShape, wShape] =
      kind === 0 ? [i.x, i.filter, i.x.shape, i.filter.shape] : kind === 1 ? [i.dy, i.filter, at.inputShape!, i.filter.shape] : [i.x, i.dy, i.x.shape, at.filterShape!];
    f32(name, A, B);
    const dims = convDims(xShape, wShape, at);
    if (!dims) throw new Error(`cuda ${name}: only NHWC, no dilation, pads oneDNN/cuDNN can express (got ${JSON.stringify(at)})`);
    const outShape = kind === 0 ? [dims[0], dims[7], dims[8], dims[6]] : kind === 1 ? xShape : wShape;
    const out = b.makeOutput(outShape, 'float32');
    b.device.conv(kind, b.buf(A), b.buf(B), b.buf(out), dims);
    return out;
  }) as KernelFunc;
}

// ---- bnlab's BatchNorm, EMA, SGD and fused elementwise kernels (src/backend/kernels/*.ts' attrs) ----
const bnForward: KernelFunc = (a) => {
  const b = be(a), { x, gamma, beta } = ins(a);
  const { groups, eps, relu } = attrs<{ groups: number; eps: number; relu: boolean }>(a);
  f32(BN_FORWARD, x, gamma, beta);
  const C = x.shape[x.shape.length - 1], M = size(x.shape) / C / groups;
  if (!Number.isInteger(M) || M < 1) throw new Error(`cuda ${BN_FORWARD}: ${size(x.shape) / C} rows do not split into ${groups} groups`);
  const y = b.makeOutput(x.shape, 'float32'), mean = b.makeOutput([groups, C], 'float32'), variance = b.makeOutput([groups, C], 'float32');
  b.device.bnForward(b.buf(x), b.buf(y), b.buf(mean), b.buf(variance), gamma ? b.buf(gamma) : 0, beta ? b.buf(beta) : 0, groups, M, C, eps, relu);
  return [y, mean, variance];
};

const bnBackward: KernelFunc = (a) => {
  const b = be(a), { dy, x, mean, variance, gamma, beta } = ins(a);
  const { groups, eps, relu } = attrs<{ groups: number; eps: number; relu: boolean }>(a);
  f32(BN_BACKWARD, dy, x, mean, variance, gamma, beta);
  const C = x.shape[x.shape.length - 1], M = size(x.shape) / C / groups;
  const dx = b.makeOutput(x.shape, 'float32'), dgamma = b.makeOutput([C], 'float32'), dbeta = b.makeOutput([C], 'float32');
  b.device.bnBackward(b.buf(dy), b.buf(x), b.buf(mean), b.buf(variance), gamma ? b.buf(gamma) : 0, beta ? b.buf(beta) : 0,
    b.buf(dx), b.buf(dgamma), b.buf(dbeta), groups, M, C, eps, relu);
  return [dx, dgamma, dbeta];
};

const bnApply: KernelFunc = (a) => {
  const b = be(a), { x, scale, shift } = ins(a);
  f32(BN_APPLY, x, scale, shift);
  const C = x.shape[x.shape.length - 1];
  const y = b.makeOutput(x.shape, 'float32');
  b.device.bnApply(b.buf(x), b.buf(y), b.buf(scale), b.buf(shift), size(x.shape) / C, C, attrs<{ relu: boolean }>(a).relu);
  return y;
};

const bnApplyAddRelu: KernelFunc = (a) => {
  const b = be(a), { x, z, scale, shift } = ins(a);
  f32(BN_APPLY_ADD_RELU, x, z, scale, shift);
  const C = x.shape[x.shape.length - 1];
  const y = b.makeOutput(x.shape, 'float32');
  b.device.bnApplyAddRelu(b.buf(x), b.buf(z), b.buf(y), b.buf(scale), b.buf(shift), size(x.shape) / C, C);
  return y;
};

const sgd: KernelFunc = (a) => {
  const b = be(a), { w, g, v } = ins(a);
  const { lr, momentum, weightDecay, nesterov } = attrs<{ lr: number; momentum: number; weightDecay: number; nesterov: boolean }>(a);
  f32(SGD_KERNEL, w, g, v);
  const wo = b.makeOutput(w.shape, 'float32'), vo = b.makeOutput(w.shape, 'float32');
  b.device.sgd(b.buf(w), b.buf(g), b.buf(v), b.buf(wo), b.buf(vo), size(w.shape), lr, momentum, weightDecay, nesterov);
  return [wo, vo];
};

const ema: KernelFunc = (a) => {
  const b = be(a), { mean, variance, obsMean, obsVariance } = ins(a);
  const { decay, counts } = attrs<{ decay: number; counts: number[] }>(a);
  const C = size(mean.shape), G = counts.length;
  if (size(variance.shape) !== C || size(obsMean.shape) !== G * C || size(obsVariance.shape) !== G * C) {
    throw new Error(`cuda ${EMA_KERNEL}: expected [C] statistics and [${G}, C] observations, got ${mean.shape} / ${obsMean.shape}`);
  }
  const mo = b.makeOutput(mean.shape, 'float32'), vo = b.makeOutput(variance.shape, 'float32');
  b.device.ema(b.buf(mean), b.buf(variance), b.buf(obsMean), b.buf(obsVariance), b.buf(mo), b.buf(vo), C, G, decay, Float64Array.from(counts));
  return [mo, vo];
};

function sameShape(name: string, op: 'addRelu' | 'reluGrad'): KernelFunc {
  return ((a: Args) => {
    const b = be(a), [x, z] = Object.values(ins(a));
    f32(name, x, z);
    if (size(x.shape) !== size(z.shape)) throw new Error(`cuda ${name}: two tensors of the same size, got ${x.shape} and ${z.shape}`);
    const y = b.makeOutput(x.shape, 'float32');
    b.device[op](b.buf(x), b.buf(z), b.buf(y), size(x.shape));
    return y;
  }) as KernelFunc;
}

const gap: KernelFunc = (a) => {
  const b = be(a), { x } = ins(a);
  if (x.shape.length !== 4) throw new Error(`cuda ${GAP}: NHWC input, got ${x.shape}`);
  f32(GAP, x);
  const [B, H, W, C] = x.shape;
  const y = b.makeOutput([B, C], 'float32');
  b.device.gap(b.buf(x), b.buf(y), B, H * W, C);
  return y;
};

const gapGrad: KernelFunc = (a) => {
  const b = be(a), { dy } = ins(a), { shape } = attrs<{ shape: number[] }>(a);
  const [B, H, W, C] = shape;
  if (dy.shape.length !== 2 || dy.shape[0] !== B || dy.shape[1] !== C) throw new Error(`cuda ${GAP_GRAD}: dy ${dy.shape} does not match ${shape}`);
  const dx = b.makeOutput(shape, 'float32');
  b.device.gapGrad(b.buf(dy), b.buf(dx), B, H * W, C);
  return dx;
};

// ---- pooling ----
type PoolAttrs = { filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
const poolInfo = (shape: number[], p: PoolAttrs) =>
  backend_util.computePool2DInfo(shape as [number, number, number, number], p.filterSize, p.strides, 1, p.pad, p.dimRoundingMode);

const maxPool: KernelFunc = (a) => {
  const b = be(a), { x } = ins(a);
  f32('MaxPool', x);
  const c = poolInfo(x.shape, attrs<PoolAttrs>(a));
  const y = b.makeOutput(c.outShape, 'float32');
  b.device.maxPool(b.buf(x), b.buf(y), c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth,
    c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left);
  return y;
};

const maxPoolGrad: KernelFunc = (a) => {
  const b = be(a), { dy, input } = ins(a);
  f32('MaxPoolGrad', dy, input);
  const c = poolInfo(input.shape, attrs<PoolAttrs>(a));
  const dx = b.makeOutput(input.shape, 'float32');
  b.device.maxPoolGrad(b.buf(input), b.buf(dy), b.buf(dx), c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth,
    c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.padInfo.top, c.padInfo.left);
  return dx;
};

// ---- matmul (cuBLAS) ----
const batchMatMul: KernelFunc = (a) => {
  const b = be(a), { a: A, b: B } = ins(a);
  const { transposeA, transposeB } = attrs<{ transposeA: boolean; transposeB: boolean }>(a);
  f32('BatchMatMul', A, B);
  const ra = A.shape.length, rb = B.shape.length;
  const M = transposeA ? A.shape[ra - 1] : A.shape[ra - 2], K = transposeA ? A.shape[ra - 2] : A.shape[ra - 1];
  const N = transposeB ? B.shape[rb - 2] : B.shape[rb - 1], K2 = transposeB ? B.shape[rb - 1] : B.shape[rb - 2];
  const batchA = size(A.shape.slice(0, -2)), batchB = size(B.shape.slice(0, -2));
  if (K !== K2 || (batchA !== batchB && batchA !== 1 && batchB !== 1)) throw new Error(`cuda BatchMatMul: shapes ${A.shape} and ${B.shape} do not multiply`);
  const outer = batchA >= batchB ? A.shape.slice(0, -2) : B.shape.slice(0, -2);
  const y = b.makeOutput([...outer, M, N], 'float32');
  b.device.matmul(b.buf(A), b.buf(B), b.buf(y), batchA, batchB, M, N, K, transposeA, transposeB);
  return y;
};

// ---- generic elementwise ----
function unary(op: UnaryOp, name: string): KernelFunc {
  return ((a: Args) => {
    const b = be(a), { x } = ins(a);
    if (name === 'Step' && attrs<{ alpha: number }>(a).alpha !== 0) throw new Error('cuda Step: only alpha 0 (the ReLU gradient)');
    const xf = castTo(b, x, 'float32');
    const y = b.makeOutput(x.shape, 'float32');
    if (size(x.shape) > 0) b.device.unary(op, b.buf(xf), b.buf(y), size(x.shape));
    b.disposeData(xf.dataId);
    return y;
  }) as KernelFunc;
}

const COMPARE = new Set<BinaryOp>(['equal', 'notEqual', 'greater', 'greaterEqual', 'less', 'lessEqual']);
function binary(op: BinaryOp): KernelFunc {
  return ((a: Args) => {
    const b = be(a), { a: A, b: B } = ins(a);
    // RealDiv divides as float32 whatever its inputs (tfjs' div op sends int32 pairs to FloorDiv)
    const dtype = (op === 'div' ? 'float32' : upcastType(A.dtype, B.dtype)) as DType;
    const outShape = backend_util.assertAndGetBroadcastShape(A.shape, B.shape);
    const [ac, bc] = [castTo(b, A, dtype), castTo(b, B, dtype)];
    const y = b.makeOutput(outShape, COMPARE.has(op) ? 'bool' : dtype);
    if (size(outShape) > 0) b.device.binary(op, b.buf(ac), b.buf(bc), b.buf(y), A.shape, B.shape, outShape, dtype);
    b.disposeData(ac.dataId);
    b.disposeData(bc.dataId);
    return y;
  }) as KernelFunc;
}

const cast: KernelFunc = (a) => castTo(be(a), ins(a).x, attrs<{ dtype: DataType }>(a).dtype);
const identity: KernelFunc = (a) => alias(be(a), ins(a).x, ins(a).x.shape);
const reshape: KernelFunc = (a) => {
  const { x } = ins(a);
  return alias(be(a), x, util.inferFromImplicitShape(attrs<{ shape: number[] }>(a).shape, size(x.shape)));
};

// ---- reductions: the reduced axes made innermost (a transpose when they are not), then rows ----
function reduce(op: ReduceOp): KernelFunc {
  return ((a: Args) => {
    const b = be(a), { x } = ins(a);
    // Max names its axes reductionIndices; Sum, Min, Mean, ArgMax name them axis
    const at = attrs<{ axis?: number | number[]; reductionIndices?: number | number[]; keepDims?: boolean }>(a);
    const axes = util.parseAxisParam((at.axis ?? at.reductionIndices)!, x.shape);
    const perm = backend_util.getAxesPermutation(axes, x.shape.length);
    const src = perm ? transposeOf(b, x, perm) : alias(b, x, x.shape);
    const inner = perm ? backend_util.getInnerMostAxes(axes.length, x.shape.length) : axes;
    const [outShape, reduceShape] = backend_util.computeOutAndReduceShapes(src.shape, inner);
    const arg = op === 'argMax' || op === 'argMin';
    const inType: DType = x.dtype === 'bool' ? 'int32' : (x.dtype as DType);
    const srcT = castTo(b, src, inType);
    const dtype: DataType = arg ? 'int32' : op === 'mean' ? 'float32' : inType;
    const y = b.makeOutput(at.keepDims ? backend_util.expandShapeToKeepDim(outShape, axes) : outShape, dtype);
    if (size(y.shape) > 0) b.device.reduce(op, b.buf(srcT), b.buf(y), size(outShape), size(reduceShape), inType);
    b.disposeData(src.dataId);
    b.disposeData(srcT.dataId);
    return y;
  }) as KernelFunc;
}

const slice: KernelFunc = (a) => {
  const b = be(a), { x } = ins(a);
  const at = attrs<{ begin: number | number[]; size: number | number[] }>(a);
  const [begin, sz] = slice_util.parseSliceParams(x as never, at.begin, at.size);
  slice_util.assertParamsValid(x as never, begin, sz);
  const y = b.makeOutput(sz, x.dtype);
  if (size(sz) > 0) b.device.slice(b.buf(x), b.buf(y), x.shape, begin, sz, x.dtype === 'bool' ? 1 : 4);
  return y;
};

const transpose: KernelFunc = (a) => transposeOf(be(a), ins(a).x, attrs<{ perm: number[] }>(a).perm);

const oneHot: KernelFunc = (a) => {
  const b = be(a), { indices } = ins(a);
  const { depth, onValue, offValue, dtype } = attrs<{ depth: number; onValue: number; offValue: number; dtype: DataType }>(a);
  const idx = castTo(b, indices, 'int32');
  const y = b.makeOutput([...indices.shape, depth], 'float32');
  if (size(y.shape) > 0) b.device.oneHot(b.buf(idx), b.buf(y), size(indices.shape), depth, onValue, offValue);
  b.disposeData(idx.dataId);
  if (dtype === 'float32') return y;
  const out = castTo(b, y, dtype);
  b.disposeData(y.dataId);
  return out;
};

// Concat: per input, its rows of `inner` elements copied into the output's, device to device
// (bnlab concatenates a few small tensors, e.g. a step's losses; no kernel launch per element).
const concat: KernelFunc = (a) => {
  const b = be(a), xs = Object.values(ins(a)).filter((t) => size(t.shape) > 0);
  const axis = util.parseAxisParam(attrs<{ axis: number }>(a).axis, xs[0].shape)[0];
  const outShape = backend_util.computeOutShape(xs.map((t) => t.shape), axis);
  const dtype = xs.reduce((d, t) => upcastType(d, t.dtype), xs[0].dtype);
  const y = b.makeOutput(outShape, dtype);
  const bytes = dtype === 'bool' ? 1 : 4;
  const outer = size(outShape.slice(0, axis)), rowOut = size(outShape.slice(axis)) * bytes;
  let at = 0;
  for (const x of xs) {
    const xc = castTo(b, x, dtype);
    const row = size(x.shape.slice(axis)) * bytes;
    for (let o = 0; o < outer; o++) b.device.copy(b.buf(y), o * rowOut + at, b.buf(xc), o * row, row);
    b.disposeData(xc.dataId);
    at += row;
  }
  return y;
};

/** Every kernel of the cuda backend, by tfjs kernel name. */
export const CUDA_KERNELS: Record<string, KernelFunc> = {
  Conv2D: conv(0, 'Conv2D'),
  Conv2DBackpropInput: conv(1, 'Conv2DBackpropInput'),
  Conv2DBackpropFilter: conv(2, 'Conv2DBackpropFilter'),
  [BN_FORWARD]: bnForward,
  [BN_BACKWARD]: bnBackward,
  [BN_APPLY]: bnApply,
  [BN_APPLY_ADD_RELU]: bnApplyAddRelu,
  [SGD_KERNEL]: sgd,
  [EMA_KERNEL]: ema,
  [ADD_RELU]: sameShape(ADD_RELU, 'addRelu'),
  [RELU_GRAD]: sameShape(RELU_GRAD, 'reluGrad'),
  [GAP]: gap,
  [GAP_GRAD]: gapGrad,
  MaxPool: maxPool,
  MaxPoolGrad: maxPoolGrad,
  BatchMatMul: batchMatMul,
  Identity: identity,
  Reshape: reshape,
  Cast: cast,
  Slice: slice,
  Transpose: transpose,
  OneHot: oneHot,
  Concat: concat,
  Add: binary('add'),
  Sub: binary('sub'),
  Multiply: binary('mul'),
  RealDiv: binary('div'),
  Maximum: binary('maximum'),
  Minimum: binary('minimum'),
  Pow: binary('pow'),
  SquaredDifference: binary('squaredDifference'),
  Equal: binary('equal'),
  NotEqual: binary('notEqual'),
  Greater: binary('greater'),
  GreaterEqual: binary('greaterEqual'),
  Less: binary('less'),
  LessEqual: binary('lessEqual'),
  Neg: unary('neg', 'Neg'),
  Exp: unary('exp', 'Exp'),
  Log: unary('log', 'Log'),
  Rsqrt: unary('rsqrt', 'Rsqrt'),
  Sqrt: unary('sqrt', 'Sqrt'),
  Relu: unary('relu', 'Relu'),
  Abs: unary('abs', 'Abs'),
  Square: unary('square', 'Square'),
  Reciprocal: unary('reciprocal', 'Reciprocal'),
  Sigmoid: unary('sigmoid', 'Sigmoid'),
  Step: unary('step', 'Step'),
  Sum: reduce('sum'),
  Max: reduce('max'),
  Min: reduce('min'),
  Mean: reduce('mean'),
  ArgMax: reduce('argMax'),
  ArgMin: reduce('argMin'),
};

export function registerCudaKernels(backendName = 'cuda'): KernelConfig[] {
  return Object.entries(CUDA_KERNELS).map(([kernelName, kernelFunc]) => {
    const cfg = { kernelName, backendName, kernelFunc };
    if (getKernel(kernelName, backendName)) unregisterKernel(kernelName, backendName);
    registerKernel(cfg);
    return cfg;
  });
}
