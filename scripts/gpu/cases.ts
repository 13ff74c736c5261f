// The fixed list of Device calls (src/backend/cuda/device.ts) that scripts/gpu-golden.ts records
// on the fake device and replays on the CUDA addon: every method, at ResNet-50 shapes and at
// awkward ones (odd sizes, channel counts that are not multiples of 4, asymmetric padding, rank 6,
// NaN and ties where tfjs' semantics pin the answer). Inputs are drawn here once and stored with
// the goldens, so a check never depends on this generator staying the same.
import type { BinaryOp, DType, ReduceOp, UnaryOp } from '../../src/backend/cuda/device.js';
import { BINARY, REDUCE, UNARY } from '../../src/backend/cuda/device.js';
import { Rng } from '../../src/util/rng.js';

export type Data = Float32Array | Int32Array | Uint8Array;
/** A call argument as stored in cases.json: buffers by name (null: the contract's "none"). */
export type Arg = number | boolean | string | number[] | { buf: string | null } | { i32: number[] } | { f64: number[] };
/** gemm: cuDNN convolutions and cuBLAS products (another summation order, TF32); float: the rest. */
export type TolClass = 'gemm' | 'float' | 'exact';

export interface CaseDef {
  id: string;
  op: string;
  /** shapes as a reader wants them, e.g. "8x32x32x3 * 7x7x3x64 s2 p3" */
  shape: string;
  tol: TolClass;
  args: Arg[];
  inputs: Record<string, Data>;
  /** outputs compared with the golden; a name also in inputs is updated in place (copy's dst) */
  outputs: Record<string, { dtype: DType; n: number }>;
}

export const dtypeOf = (d: Data): DType => (d instanceof Float32Array ? 'float32' : d instanceof Int32Array ? 'int32' : 'bool');
const buf = (name: string) => ({ buf: name });
const NONE = { buf: null };
const f32 = (n: number) => ({ dtype: 'float32' as const, n });
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);
const dims = (s: number[]) => (s.length ? s.join('x') : 'scalar');

/** Each case draws from its own stream: adding a case leaves the others' inputs unchanged. */
const rngFor = (id: string) => new Rng(0x601d, ...[...id].map((c) => c.charCodeAt(0)));
const normal = (r: Rng, n: number, scale = 1, shift = 0) => Float32Array.from({ length: n }, () => r.normal() * scale + shift);
const uniform = (r: Rng, n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * r.next());
const ints = (r: Rng, n: number, lo: number, hi: number) => Int32Array.from({ length: n }, () => lo + Math.floor((hi - lo + 1) * r.next()));
const bools = (r: Rng, n: number) => Uint8Array.from({ length: n }, () => (r.next() < 0.5 ? 1 : 0));
const withSpecials = (specials: number[], rest: Float32Array) => Float32Array.from([...specials, ...rest]);

// ---- convolutions: the three kinds share one shape's x, w and dy ----
function conv(name: string, [B, H, W, ci]: number[], [FH, FW, co]: number[], s: number, [pt, pl, pb, pr]: number[]): CaseDef[] {
  const OH = Math.floor((H + pt + pb - FH) / s) + 1, OW = Math.floor((W + pl + pr - FW) / s) + 1;
  const d = [B, H, W, ci, FH, FW, co, OH, OW, s, s, pt, pl, pb, pr];
  const r = rngFor(`conv-${name}`);
  const x = normal(r, B * H * W * ci), w = normal(r, FH * FW * ci * co, Math.sqrt(2 / (FH * FW * ci))), dy = normal(r, B * OH * OW * co);
  const pads = pt === pb && pl === pr ? `p${pt}` : `pads ${pt},${pl},${pb},${pr}`;
  const shape = `${dims([B, H, W, ci])} * ${dims([FH, FW, ci, co])} s${s} ${pads} -> ${dims([B, OH, OW, co])}`;
  const c = (kind: number, what: string, a: string, b: string, out: string, n: number, inputs: Record<string, Data>): CaseDef => ({
    id: `conv-${what}-${name}`, op: 'conv', shape, tol: 'gemm', args: [kind, buf(a), buf(b), buf(out), { i32: d }], inputs, outputs: { [out]: f32(n) },
  });
  return [
    c(0, 'fwd', 'x', 'w', 'y', B * OH * OW * co, { x, w }),
    c(1, 'data', 'dy', 'w', 'dx', x.length, { dy, w }),
    c(2, 'filter', 'x', 'dy', 'dw', w.length, { x, dy }),
  ];
}

// ---- BatchNorm: x with per-channel offsets and scales, as a convolution's output has ----
function bnInput(r: Rng, G: number, M: number, C: number): Float32Array {
  const mu = uniform(r, C, -2, 2), sd = uniform(r, C, 0.5, 2);
  return Float32Array.from({ length: G * M * C }, (_, i) => mu[i % C] + sd[i % C] * r.normal());
}

/** Per-group mean and biased variance in float64, as float32 (what bnForward would give). */
function bnStats(x: Float32Array, G: number, M: number, C: number): [Float32Array, Float32Array] {
  const mean = new Float32Array(G * C), variance = new Float32Array(G * C);
  for (let g = 0; g < G; g++) for (let c = 0; c < C; c++) {
    let s = 0, q = 0;
    for (let m = 0; m < M; m++) s += x[(g * M + m) * C + c];
    const mu = s / M;
    for (let m = 0; m < M; m++) q += (x[(g * M + m) * C + c] - mu) ** 2;
    mean[g * C + c] = mu;
    variance[g * C + c] = q / M;
  }
  return [mean, variance];
}

/**
 * The backward pass with a fused ReLU masks dy where the recomputed output is <= 0. An element
 * within rounding of 0 would flip the mask on one device and not the other, a discrete error of
 * the size of dy that says nothing about either: such x are moved clear of it first.
 */
function clearOfReluEdge(x: Float32Array, G: number, M: number, C: number, gamma: Float32Array | null, beta: Float32Array | null, eps: number): [Float32Array, Float32Array] {
  for (let pass = 0; pass < 5; pass++) {
    const [mean, variance] = bnStats(x, G, M, C);
    let moved = 0;
    for (let i = 0; i < x.length; i++) {
      const c = i % C, g = Math.floor(i / (M * C)), sd = Math.sqrt(variance[g * C + c] + eps);
      const ga = gamma ? gamma[c] : 1, y = ((x[i] - mean[g * C + c]) / sd) * ga + (beta ? beta[c] : 0);
      if (Math.abs(y) < 1e-3) (x[i] += ((Math.sign(y) || 1) * Math.sign(ga) * 4e-3 * sd) / Math.abs(ga)), moved++;
    }
    if (!moved) return [mean, variance];
  }
  throw new Error('bnBackward case: x could not be moved clear of the ReLU edge');
}

function bn(G: number, M: number, C: number, relu: boolean, affine: boolean): CaseDef[] {
  const tag = `G${G}-M${M}-C${C}${relu ? '-relu' : ''}${affine ? '' : '-noaffine'}`;
  const shape = `x ${dims([G * M, C])} G=${G} relu ${relu ? 'on' : 'off'}${affine ? '' : ', gamma/beta none'}`;
  const eps = 1e-5, r = rngFor(`bn-${tag}`);
  const gamma = affine ? Float32Array.from({ length: C }, () => (r.next() < 0.5 ? -1 : 1) * (0.3 + r.next())) : null;
  const beta = affine ? uniform(r, C, -0.5, 0.5) : null;
  const x = bnInput(r, G, M, C);
  const [mean, variance] = relu ? clearOfReluEdge(x, G, M, C, gamma, beta, eps) : bnStats(x, G, M, C);
  const dy = normal(r, x.length);
  const affineIn: Record<string, Data> = gamma && beta ? { gamma, beta } : {};
  const gb = affine ? [buf('gamma'), buf('beta')] : [NONE, NONE];
  return [
    { id: `bnForward-${tag}`, op: 'bnForward', shape, tol: 'float', args: [buf('x'), buf('y'), buf('mean'), buf('variance'), ...gb, G, M, C, eps, relu],
      inputs: { x, ...affineIn }, outputs: { y: f32(x.length), mean: f32(G * C), variance: f32(G * C) } },
    { id: `bnBackward-${tag}`, op: 'bnBackward', shape, tol: 'float',
      args: [buf('dy'), buf('x'), buf('mean'), buf('variance'), ...gb, buf('dx'), buf('dgamma'), buf('dbeta'), G, M, C, eps, relu],
      inputs: { dy, x, mean, variance, ...affineIn }, outputs: { dx: f32(x.length), dgamma: f32(C), dbeta: f32(C) } },
  ];
}

function bnApplyCases(): CaseDef[] {
  const out: CaseDef[] = [];
  for (const [rows, C, relu] of [[512, 64, false], [333, 6, true]] as const) {
    const r = rngFor(`bnApply-${rows}-${C}`);
    out.push({ id: `bnApply-${rows}x${C}${relu ? '-relu' : ''}`, op: 'bnApply', shape: `x ${rows}x${C} relu ${relu ? 'on' : 'off'}`, tol: 'float',
      args: [buf('x'), buf('y'), buf('scale'), buf('shift'), rows, C, relu],
      inputs: { x: normal(r, rows * C, 2, 0.5), scale: uniform(r, C, -2, 2), shift: uniform(r, C, -1, 1) }, outputs: { y: f32(rows * C) } });
  }
  const r = rngFor('bnApplyAddRelu');
  out.push({ id: 'bnApplyAddRelu-512x64', op: 'bnApplyAddRelu', shape: 'x, z 512x64', tol: 'float', args: [buf('x'), buf('z'), buf('y'), buf('scale'), buf('shift'), 512, 64],
    inputs: { x: normal(r, 512 * 64), z: normal(r, 512 * 64), scale: uniform(r, 64, -2, 2), shift: uniform(r, 64, -1, 1) }, outputs: { y: f32(512 * 64) } });
  return out;
}

function updates(): CaseDef[] {
  const n = 10007, out: CaseDef[] = [];
  for (const nesterov of [false, true]) {
    const r = rngFor(`sgd-${nesterov}`);
    out.push({ id: `sgd${nesterov ? '-nesterov' : ''}`, op: 'sgd', shape: `n ${n} lr 0.1 momentum 0.9 wd 1e-4 nesterov ${nesterov ? 'on' : 'off'}`, tol: 'float',
      args: [buf('w'), buf('g'), buf('v'), buf('wOut'), buf('vOut'), n, 0.1, 0.9, 1e-4, nesterov],
      inputs: { w: normal(r, n), g: normal(r, n, 0.1), v: normal(r, n, 0.01) }, outputs: { wOut: f32(n), vOut: f32(n) } });
  }
  for (const counts of [[4096], [256, 256, 256, 100]]) {
    const C = 64, G = counts.length, r = rngFor(`ema-${G}`);
    out.push({ id: `ema-G${G}`, op: 'ema', shape: `C ${C} G ${G} counts ${counts.join(',')} decay 0.9`, tol: 'float',
      args: [buf('mean'), buf('variance'), buf('obsMean'), buf('obsVar'), buf('meanOut'), buf('varOut'), C, G, 0.9, { f64: counts }],
      inputs: { mean: normal(r, C), variance: uniform(r, C, 0.1, 3), obsMean: normal(r, G * C), obsVar: uniform(r, G * C, 0.1, 3) },
      outputs: { meanOut: f32(C), varOut: f32(C) } });
  }
  const r = rngFor('eltwise');
  const y = normal(r, n).map((v) => Math.max(v, 0));
  out.push({ id: 'addRelu', op: 'addRelu', shape: `n ${n}`, tol: 'float', args: [buf('a'), buf('b'), buf('y'), n], inputs: { a: normal(r, n), b: normal(r, n) }, outputs: { y: f32(n) } });
  out.push({ id: 'reluGrad', op: 'reluGrad', shape: `n ${n}, y with zeros`, tol: 'float', args: [buf('dy'), buf('y'), buf('dx'), n], inputs: { dy: normal(r, n), y }, outputs: { dx: f32(n) } });
  return out;
}

function matmuls(): CaseDef[] {
  const specs: [string, number, number, number, number, number, boolean, boolean][] = [
    ['fc', 1, 1, 32, 10, 512, false, false],
    ['fc-dw', 1, 1, 512, 10, 32, true, false],
    ['fc-dx', 1, 1, 32, 512, 10, false, true],
    ['both-t', 1, 1, 17, 23, 31, true, true],
    ['bcast-b', 3, 1, 8, 12, 16, false, false],
    ['bcast-a', 1, 4, 9, 5, 7, true, false],
    ['batched', 2, 2, 6, 11, 13, false, true],
  ];
  return specs.map(([name, bA, bB, M, N, K, tA, tB]) => {
    const r = rngFor(`matmul-${name}`);
    return { id: `matmul-${name}`, op: 'matmul', shape: `batch ${bA}/${bB} ${tA ? 'A^T' : 'A'} ${M}x${K} * ${tB ? 'B^T' : 'B'} ${K}x${N}`, tol: 'gemm' as const,
      args: [buf('a'), buf('b'), buf('c'), bA, bB, M, N, K, tA, tB],
      inputs: { a: normal(r, bA * M * K), b: normal(r, bB * K * N) }, outputs: { c: f32(Math.max(bA, bB) * M * N) } };
  });
}

function pooling(): CaseDef[] {
  const out: CaseDef[] = [];
  const r0 = rngFor('gap');
  const [B, HW, C] = [8, 49, 64];
  out.push({ id: 'gap', op: 'gap', shape: `${B}x7x7x${C}`, tol: 'float', args: [buf('x'), buf('y'), B, HW, C], inputs: { x: normal(r0, B * HW * C, 1, 0.5) }, outputs: { y: f32(B * C) } });
  out.push({ id: 'gapGrad', op: 'gapGrad', shape: `dy ${B}x${C} -> ${B}x7x7x${C}`, tol: 'float', args: [buf('dy'), buf('dx'), B, HW, C], inputs: { dy: normal(r0, B * C) }, outputs: { dx: f32(B * HW * C) } });
  // 3x3 stride 2 pad 1 (ResNet-50's stem pool); "ties": a ReLU output, windows of equal zeros,
  // where tfjs sends the gradient to the first; "nan": tfjs' max keeps NaN (fmaxf would drop it)
  const specs: [string, number, number, number, 'normal' | 'ties' | 'nan'][] = [[`even`, 4, 16, 16, 'normal'], ['odd', 2, 15, 5, 'normal'], ['ties', 2, 12, 8, 'ties'], ['nan', 2, 9, 3, 'nan']];
  for (const [name, Bn, H, Ch, kind] of specs) {
    const r = rngFor(`pool-${name}`), OH = Math.floor((H + 2 - 3) / 2) + 1;
    const x = normal(r, Bn * H * H * Ch);
    if (kind === 'ties') x.forEach((v, i) => (x[i] = v > 0.8 ? v : 0));
    if (kind === 'nan') for (let i = 0; i < x.length; i += 17) x[i] = NaN;
    const p = [Bn, H, H, Ch, OH, OH, 3, 3, 2, 2, 1, 1];
    const shape = `${dims([Bn, H, H, Ch])} 3x3 s2 p1 -> ${dims([Bn, OH, OH, Ch])}${kind === 'normal' ? '' : ` (${kind})`}`;
    out.push({ id: `maxPool-${name}`, op: 'maxPool', shape, tol: 'float', args: [buf('x'), buf('y'), ...p], inputs: { x }, outputs: { y: f32(Bn * OH * OH * Ch) } });
    if (kind !== 'nan') {
      out.push({ id: `maxPoolGrad-${name}`, op: 'maxPoolGrad', shape, tol: 'float', args: [buf('x'), buf('dy'), buf('dx'), ...p],
        inputs: { x, dy: normal(r, Bn * OH * OH * Ch) }, outputs: { dx: f32(x.length) } });
    }
  }
  return out;
}

// ---- generic ops ----
const POSITIVE = new Set<UnaryOp>(['log', 'sqrt', 'rsqrt']);
function unaries(): CaseDef[] {
  const n = 4099;
  return UNARY.map((op) => {
    const r = rngFor(`unary-${op}`);
    // edges first (zeros, NaN, overflow), then the op's working range
    const x = POSITIVE.has(op) ? withSpecials([0, 1, 4, -1, NaN, 1e-30], uniform(r, n - 6, 1e-3, 10)) : withSpecials([0, -0, 1, -1, NaN, 100, -100], uniform(r, n - 7, -4, 4));
    return { id: `unary-${op}`, op: 'unary', shape: `${op} n ${n}`, tol: 'float' as const, args: [op, buf('x'), buf('y'), n], inputs: { x }, outputs: { y: f32(n) } };
  });
}

const BROADCASTS: [number[], number[]][] = [[[4, 1, 6], [5, 1]], [[2, 3, 4, 5], [5]], [[7, 9], []], [[1, 6, 1], [3, 1, 4]], [[2, 1, 3, 1, 2, 3], [1, 2, 1, 4, 1, 3]]];
const COMPARE = new Set<BinaryOp>(['equal', 'notEqual', 'greater', 'greaterEqual', 'less', 'lessEqual']);
function outShape(a: number[], b: number[]): number[] {
  const rank = Math.max(a.length, b.length), pa = [...Array(rank - a.length).fill(1), ...a], pb = [...Array(rank - b.length).fill(1), ...b];
  return pa.map((v, i) => Math.max(v, pb[i]));
}

function binaryCase(op: BinaryOp, dtype: DType, [aS, bS]: [number[], number[]]): CaseDef {
  const id = `binary-${op}-${dtype}`, r = rngFor(id), na = prod(aS), nb = prod(bS), o = outShape(aS, bS);
  const draw = (n: number, which: 'a' | 'b'): Data => {
    if (dtype === 'bool') return bools(r, n);
    if (dtype === 'int32') return ints(r, n, -50, 50);
    if (COMPARE.has(op)) return Float32Array.from(ints(r, n, -2, 2)); // ties matter
    if (op === 'pow') return which === 'a' ? uniform(r, n, 0.1, 3) : uniform(r, n, -2, 2);
    if (op === 'div' && which === 'b') return Float32Array.from(uniform(r, n, 0.5, 3), (v) => (r.next() < 0.5 ? -v : v));
    return uniform(r, n, -4, 4);
  };
  return { id, op: 'binary', shape: `${op} ${dtype} ${dims(aS)} ~ ${dims(bS)} -> ${dims(o)}`, tol: 'float', args: [op, buf('a'), buf('b'), buf('y'), aS, bS, o, dtype],
    inputs: { a: draw(na, 'a'), b: draw(nb, 'b') }, outputs: { y: { dtype: COMPARE.has(op) ? 'bool' : dtype, n: prod(o) } } };
}

function binaries(): CaseDef[] {
  const out = BINARY.map((op, i) => binaryCase(op, 'float32', BROADCASTS[i % BROADCASTS.length]));
  const intOps: BinaryOp[] = ['add', 'sub', 'mul', 'maximum', 'minimum', 'squaredDifference', 'equal', 'greater', 'lessEqual'];
  out.push(...intOps.map((op, i) => binaryCase(op, 'int32', BROADCASTS[(i + 2) % BROADCASTS.length])));
  out.push(...(['equal', 'notEqual'] as BinaryOp[]).map((op, i) => binaryCase(op, 'bool', BROADCASTS[i])));
  const nan = binaryCase('maximum', 'float32', [[6, 5], [5]]);
  (nan.inputs.a as Float32Array)[3] = NaN;
  (nan.inputs.b as Float32Array)[1] = NaN;
  out.push({ ...nan, id: 'binary-maximum-nan', shape: `${nan.shape} (NaN kept)` });
  return out;
}

function reduces(): CaseDef[] {
  const out: CaseDef[] = [];
  const add = (op: ReduceOp, dtype: DType, outer: number, inner: number, x: Data, note = '') =>
    out.push({ id: `reduce-${op}-${dtype}-${outer}x${inner}${note ? '-' + note : ''}`, op: 'reduce', shape: `${op} ${dtype} ${outer} rows of ${inner}${note ? ` (${note})` : ''}`, tol: 'float',
      args: [op, buf('x'), buf('y'), outer, inner, dtype], inputs: { x }, outputs: { y: { dtype: op.startsWith('arg') ? 'int32' : op === 'mean' ? 'float32' : dtype, n: outer } } });
  for (const op of REDUCE) add(op, 'float32', 5, 2001, normal(rngFor(`reduce-${op}`), 5 * 2001));
  add('sum', 'float32', 1, 32768, uniform(rngFor('reduce-long'), 32768, 0, 1));
  add('sum', 'float32', 4096, 3, normal(rngFor('reduce-short'), 4096 * 3));
  for (const op of ['sum', 'max', 'min', 'mean', 'argMax', 'argMin'] as ReduceOp[]) add(op, 'int32', 6, 777, ints(rngFor(`reduce-i-${op}`), 6 * 777, -3, 3), op.startsWith('arg') ? 'ties' : '');
  const x = normal(rngFor('reduce-nan'), 4 * 100);
  x[150] = NaN;
  add('max', 'float32', 4, 100, x, 'nan');
  return out;
}

function casts(): CaseDef[] {
  const n = 1001, out: CaseDef[] = [];
  const types: DType[] = ['float32', 'int32', 'bool'];
  for (const from of types) for (const to of types) {
    const r = rngFor(`cast-${from}-${to}`);
    // float -> int truncates toward zero; values stay far inside int32 (out-of-range casts are not part of the contract)
    const x: Data = from === 'float32' ? withSpecials([0, -0, 0.5, -0.5, 1.5, -1.5, 2.7, -2.7, 999.9, ...(to === 'bool' ? [NaN] : [])], uniform(r, n - (to === 'bool' ? 10 : 9), -1000, 1000))
      : from === 'int32' ? ints(r, n, -1_000_000, 1_000_000) : bools(r, n);
    out.push({ id: `cast-${from}-${to}`, op: 'cast', shape: `${from} -> ${to} n ${n}`, tol: 'exact', args: [buf('x'), buf('y'), n, from, to], inputs: { x }, outputs: { y: { dtype: to, n } } });
  }
  return out;
}

function movement(): CaseDef[] {
  const out: CaseDef[] = [];
  const slices: [string, DType, number[], number[], number[]][] = [
    ['4d', 'float32', [4, 5, 6, 7], [1, 0, 2, 3], [2, 5, 3, 4]],
    ['2d', 'int32', [10, 11], [3, 2], [4, 9]],
    ['3d', 'bool', [3, 4, 5], [1, 1, 1], [2, 2, 3]],
    ['6d', 'float32', [2, 3, 2, 3, 2, 3], [1, 0, 1, 1, 0, 2], [1, 3, 1, 2, 2, 1]],
    ['1d', 'float32', [1000], [17], [500]],
  ];
  const draw = (r: Rng, dtype: DType, n: number): Data => (dtype === 'float32' ? normal(r, n) : dtype === 'int32' ? ints(r, n, -1e6, 1e6) : bools(r, n));
  for (const [name, dtype, shape, begin, size] of slices) {
    const bytes = dtype === 'bool' ? 1 : 4;
    out.push({ id: `slice-${name}-${dtype}`, op: 'slice', shape: `${dtype} ${dims(shape)} at ${begin.join(',')} size ${dims(size)}`, tol: 'exact',
      args: [buf('x'), buf('y'), shape, begin, size, bytes], inputs: { x: draw(rngFor(`slice-${name}`), dtype, prod(shape)) }, outputs: { y: { dtype, n: prod(size) } } });
  }
  const perms: [string, DType, number[], number[]][] = [
    ['3d', 'float32', [3, 4, 5], [2, 0, 1]],
    ['nhwc-nchw', 'float32', [2, 5, 6, 7], [0, 3, 1, 2]],
    ['2d', 'int32', [6, 7], [1, 0]],
    ['3d', 'bool', [2, 3, 4], [2, 1, 0]],
    ['6d', 'float32', [2, 3, 2, 3, 2, 3], [5, 3, 1, 0, 2, 4]],
  ];
  for (const [name, dtype, shape, perm] of perms) {
    out.push({ id: `transpose-${name}-${dtype}`, op: 'transpose', shape: `${dtype} ${dims(shape)} perm ${perm.join(',')}`, tol: 'exact',
      args: [buf('x'), buf('y'), shape, perm, dtype === 'bool' ? 1 : 4], inputs: { x: draw(rngFor(`transpose-${name}`), dtype, prod(shape)) }, outputs: { y: { dtype, n: prod(shape) } } });
  }
  for (const [n, depth, on, offv] of [[257, 10, 1, 0], [64, 7, 0.9, 0.025]]) {
    // indices outside [0, depth) give a row of `off` (tfjs)
    out.push({ id: `oneHot-${depth}`, op: 'oneHot', shape: `${n} indices in [-1, ${depth}] depth ${depth} on ${on} off ${offv}`, tol: 'exact',
      args: [buf('i'), buf('y'), n, depth, on, offv], inputs: { i: ints(rngFor(`oneHot-${depth}`), n, -1, depth) }, outputs: { y: f32(n * depth) } });
  }
  for (const [dtype, n, value] of [['float32', 1001, 3.25], ['int32', 777, -123456], ['bool', 1003, 1], ['float32', 5, 0]] as [DType, number, number][]) {
    out.push({ id: `fill-${dtype}-${n}`, op: 'fill', shape: `${dtype} n ${n} value ${value}`, tol: 'exact', args: [buf('y'), n, dtype, value], inputs: {}, outputs: { y: { dtype, n } } });
  }
  // bytes, not elements: an odd length at unaligned offsets; the rest of dst must stay as it was
  for (const [dstOff, srcOff, bytes] of [[12, 40, 1003], [0, 0, 40000]]) {
    const r = rngFor(`copy-${bytes}`);
    out.push({ id: `copy-${bytes}`, op: 'copy', shape: `${bytes} bytes, dst+${dstOff} <- src+${srcOff}`, tol: 'exact',
      args: [buf('dst'), dstOff, buf('src'), srcOff, bytes], inputs: { dst: bools(r, bytes + 64).map((v, i) => (i * 7 + v) & 255), src: Uint8Array.from({ length: bytes + 64 }, () => Math.floor(256 * r.next())) },
      outputs: { dst: { dtype: 'bool', n: bytes + 64 } } });
  }
  return out;
}

/** Every case, in a fixed order. */
export function allCases(): CaseDef[] {
  return [
    ...conv('stem7x7', [8, 32, 32, 3], [7, 7, 64], 2, [3, 3, 3, 3]),
    ...conv('1x1-64-256', [8, 4, 4, 64], [1, 1, 256], 1, [0, 0, 0, 0]),
    ...conv('3x3s2-128', [8, 8, 8, 128], [3, 3, 128], 2, [1, 1, 1, 1]),
    ...conv('3x3-3-6', [32, 9, 9, 3], [3, 3, 6], 1, [1, 1, 1, 1]),
    ...conv('1x1s2-4-8', [32, 7, 7, 4], [1, 1, 8], 2, [0, 0, 0, 0]),
    ...conv('same-asym', [16, 8, 8, 3], [3, 3, 6], 2, [0, 0, 1, 1]),
    ...bn(1, 512, 64, false, true),
    ...bn(4, 128, 64, true, true),
    ...bn(1, 1000, 6, true, false),
    ...bn(4, 50, 6, false, false),
    ...bnApplyCases(),
    ...updates(),
    ...matmuls(),
    ...pooling(),
    ...unaries(),
    ...binaries(),
    ...reduces(),
    ...casts(),
    ...movement(),
  ];
}
