// A Device (./device.ts) without a GPU: "device memory" is one growing host buffer, buffers are
// byte offsets into it, and the operations run on bnlab's CPU addon (native/addon: the same
// oneDNN convolutions and BatchNorm math the wasm path uses) or, for the generic ops, on plain
// loops here. It exists so that the cuda backend's bookkeeping and every kernel's wiring are
// tested on machines without a GPU (CI): a training step on it must match wasm's.
// It counts what a real device would be asked (allocations, uploads, downloads, syncs).
import { loadNative, type NativeAddon } from '../native-addon.js';
import { type BinaryOp, type Device, type DeviceInfo, type DeviceMemory, type DType, type ReduceOp, type UnaryOp } from './device.js';

const ALIGN = 256; // cudaMalloc's alignment: kernels may assume it
const round = (n: number) => Math.ceil(Math.max(n, 1) / ALIGN) * ALIGN;

export class FakeDevice implements Device {
  private heap = new Uint8Array(1 << 20);
  private top = ALIGN; // offset 0 stays unused: buffer 0 means "none" (e.g. no gamma)
  private sizes = new Map<number, number>();
  /** freed blocks by rounded size, reused first (a stream-ordered pool's behaviour) */
  private freeLists = new Map<number, number[]>();
  private inUse = 0;
  readonly counts = { alloc: 0, free: 0, upload: 0, download: 0, sync: 0 };
  private readonly cpu: NativeAddon;

  constructor() {
    const { addon, reason } = loadNative();
    if (!addon) throw new Error(`the fake cuda device runs on bnlab's CPU addon, which is ${reason}`);
    this.cpu = addon;
  }

  info(): DeviceInfo {
    return { name: 'fake device (host memory, bnlab CPU kernels)', cc: [0, 0], libs: { kernels: `native addon ${this.cpu.version()}` }, totalBytes: 2 ** 34 };
  }

  memory(): DeviceMemory {
    return { inUse: this.inUse, pooled: [...this.freeLists].reduce((a, [n, l]) => a + n * l.length, 0), free: 2 ** 34 - this.top, total: 2 ** 34 };
  }

  // ---- memory ----
  alloc(bytes: number): number {
    const n = round(bytes);
    this.counts.alloc++;
    let at = this.freeLists.get(n)?.pop();
    if (at === undefined) {
      at = this.top;
      this.top += n;
      if (this.top > this.heap.length) {
        const grown = new Uint8Array(Math.max(this.top, this.heap.length * 2));
        grown.set(this.heap);
        this.heap = grown;
      }
    }
    this.sizes.set(at, n);
    this.inUse += n;
    return at;
  }

  free(buf: number): void {
    const n = this.sizes.get(buf);
    if (n === undefined) throw new Error(`fake device: free of ${buf}, which is not a live buffer`);
    this.counts.free++;
    this.sizes.delete(buf);
    this.inUse -= n;
    // poison, so a kernel that reads a freed buffer gives NaN rather than a plausible number
    new Float32Array(this.heap.buffer, buf, n / 4).fill(NaN);
    const list = this.freeLists.get(n) ?? [];
    list.push(buf);
    this.freeLists.set(n, list);
  }

  private check(buf: number, bytes: number): void {
    const n = this.sizes.get(buf);
    if (n === undefined || bytes > n) throw new Error(`fake device: ${bytes} bytes at ${buf} exceed a live buffer (${n ?? 'none'})`);
  }

  upload(buf: number, src: ArrayBufferView): void {
    this.check(buf, src.byteLength);
    this.counts.upload++;
    this.heap.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), buf);
  }

  downloadSync(buf: number, bytes: number): Uint8Array {
    this.check(buf, bytes);
    this.counts.download++;
    return this.heap.slice(buf, buf + bytes);
  }

  async download(buf: number, bytes: number): Promise<Uint8Array> {
    return this.downloadSync(buf, bytes);
  }

  copy(dst: number, dstOff: number, src: number, srcOff: number, bytes: number): void {
    this.heap.copyWithin(dst + dstOff, src + srcOff, src + srcOff + bytes);
  }

  fill(buf: number, n: number, dtype: DType, value: number): void {
    this.view(buf, n, dtype).fill(value);
  }

  sync(): void {
    this.counts.sync++;
  }

  private f(buf: number, n: number): Float32Array {
    return new Float32Array(this.heap.buffer, buf, n);
  }

  private view(buf: number, n: number, dtype: DType): Float32Array | Int32Array | Uint8Array {
    return dtype === 'float32' ? this.f(buf, n) : dtype === 'int32' ? new Int32Array(this.heap.buffer, buf, n) : new Uint8Array(this.heap.buffer, buf, n);
  }

  // ---- bnlab's kernels: the CPU addon on the fake memory ----
  conv(kind: 0 | 1 | 2, a: number, b: number, c: number, dims: Int32Array): void {
    this.cpu.conv(kind, this.heap, a, b, c, dims, 0);
  }

  /** ones for a missing gamma, zeros for a missing beta (the contract's buffer 0) */
  private affine(C: number, gamma: number, beta: number): [number, number, () => void] {
    const made: number[] = [];
    const make = (v: number) => { const b = this.alloc(4 * C); this.f(b, C).fill(v); made.push(b); return b; };
    const g = gamma || make(1), b = beta || make(0);
    return [g, b, () => made.forEach((m) => this.free(m))];
  }

  bnForward(x: number, y: number, mean: number, variance: number, gamma: number, beta: number, G: number, M: number, C: number, eps: number, relu: boolean): void {
    const [g, b, done] = this.affine(C, gamma, beta);
    this.cpu.bnForward(this.heap, x, y, mean, variance, g, b, G, M, C, eps, relu ? 1 : 0);
    done();
  }

  bnBackward(dy: number, x: number, mean: number, variance: number, gamma: number, beta: number, dx: number, dgamma: number, dbeta: number, G: number, M: number, C: number, eps: number, relu: boolean): void {
    const [g, b, done] = this.affine(C, gamma, beta);
    this.cpu.bnBackward(this.heap, dy, x, mean, variance, g, b, dx, dgamma, dbeta, G, M, C, eps, relu ? 1 : 0);
    done();
  }

  bnApply(x: number, y: number, scale: number, shift: number, rows: number, C: number, relu: boolean): void {
    this.cpu.bnApply(this.heap, x, y, scale, shift, rows, C, relu ? 1 : 0);
  }

  bnApplyAddRelu(x: number, z: number, y: number, scale: number, shift: number, rows: number, C: number): void {
    this.cpu.bnApplyAddRelu(this.heap, x, z, y, scale, shift, rows, C);
  }

  sgd(w: number, g: number, v: number, wOut: number, vOut: number, n: number, lr: number, momentum: number, wd: number, nesterov: boolean): void {
    this.cpu.sgd(this.heap, w, g, v, wOut, vOut, n, lr, momentum, wd, nesterov ? 1 : 0);
  }

  ema(mean: number, variance: number, obsMean: number, obsVar: number, meanOut: number, varOut: number, C: number, G: number, decay: number, counts: Float64Array): void {
    this.cpu.ema(this.heap, mean, variance, obsMean, obsVar, meanOut, varOut, C, G, decay, counts);
  }

  addRelu(a: number, b: number, y: number, n: number): void {
    this.cpu.addRelu(this.heap, a, b, y, n);
  }

  reluGrad(dy: number, y: number, dx: number, n: number): void {
    this.cpu.reluGrad(this.heap, dy, y, dx, n);
  }

  matmul(a: number, b: number, c: number, batchA: number, batchB: number, M: number, N: number, K: number, transA: boolean, transB: boolean): void {
    this.cpu.matmul(this.heap, a, b, c, batchA, batchB, M, N, K, transA ? 1 : 0, transB ? 1 : 0);
  }

  gap(x: number, y: number, B: number, HW: number, C: number): void {
    this.cpu.gap(this.heap, x, y, B, HW, C);
  }

  gapGrad(dy: number, dx: number, B: number, HW: number, C: number): void {
    this.cpu.gapGrad(this.heap, dy, dx, B, HW, C);
  }

  maxPool(x: number, y: number, B: number, H: number, W: number, C: number, OH: number, OW: number, FH: number, FW: number, sh: number, sw: number, pt: number, pl: number): void {
    const xs = this.f(x, B * H * W * C), ys = this.f(y, B * OH * OW * C);
    for (let b = 0; b < B; b++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) for (let c = 0; c < C; c++) {
      let m = -Infinity;
      for (let r = oh * sh - pt; r < oh * sh - pt + FH; r++) for (let q = ow * sw - pl; q < ow * sw - pl + FW; q++) {
        if (r < 0 || r >= H || q < 0 || q >= W) continue;
        const v = xs[((b * H + r) * W + q) * C + c];
        if (v > m || Number.isNaN(v)) m = v;
      }
      ys[((b * OH + oh) * OW + ow) * C + c] = m;
    }
  }

  maxPoolGrad(x: number, dy: number, dx: number, B: number, H: number, W: number, C: number, OH: number, OW: number, FH: number, FW: number, sh: number, sw: number, pt: number, pl: number): void {
    this.cpu.maxPoolGrad(this.heap, x, dy, dx, B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl);
  }

  // ---- generic ops ----
  unary(op: UnaryOp, x: number, y: number, n: number): void {
    const xs = this.f(x, n), ys = this.f(y, n);
    const fn: Record<UnaryOp, (v: number) => number> = {
      neg: (v) => -v, exp: Math.exp, log: Math.log, rsqrt: (v) => 1 / Math.sqrt(v), sqrt: Math.sqrt, relu: (v) => (v > 0 ? v : Number.isNaN(v) ? v : 0),
      abs: Math.abs, square: (v) => v * v, reciprocal: (v) => 1 / v, sigmoid: (v) => 1 / (1 + Math.exp(-v)), step: (v) => (Number.isNaN(v) ? NaN : v > 0 ? 1 : 0),
    };
    const g = fn[op];
    for (let i = 0; i < n; i++) ys[i] = g(xs[i]);
  }

  binary(op: BinaryOp, a: number, b: number, y: number, aShape: number[], bShape: number[], outShape: number[], dtype: DType): void {
    const rank = outShape.length;
    const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s];
    const [as, bs] = [pad(aShape), pad(bShape)];
    const strides = (s: number[]) => { const st = Array(rank).fill(0); let k = 1; for (let d = rank - 1; d >= 0; d--) { st[d] = s[d] === 1 ? 0 : k; k *= s[d]; } return st; };
    const [sa, sb] = [strides(as), strides(bs)];
    const n = outShape.reduce((p, v) => p * v, 1);
    const A = this.view(a, as.reduce((p, v) => p * v, 1), dtype), Bv = this.view(b, bs.reduce((p, v) => p * v, 1), dtype);
    const compare = ['equal', 'notEqual', 'greater', 'greaterEqual', 'less', 'lessEqual'].includes(op);
    const Y = this.view(y, n, compare ? 'bool' : dtype);
    const fn: Record<BinaryOp, (u: number, v: number) => number> = {
      add: (u, v) => u + v, sub: (u, v) => u - v, mul: (u, v) => u * v, div: (u, v) => u / v, maximum: Math.max, minimum: Math.min,
      pow: Math.pow, squaredDifference: (u, v) => (u - v) * (u - v), equal: (u, v) => +(u === v), notEqual: (u, v) => +(u !== v),
      greater: (u, v) => +(u > v), greaterEqual: (u, v) => +(u >= v), less: (u, v) => +(u < v), lessEqual: (u, v) => +(u <= v),
    };
    const g = fn[op];
    const idx = Array(rank).fill(0);
    for (let i = 0; i < n; i++) {
      let ia = 0, ib = 0;
      for (let d = 0; d < rank; d++) ia += idx[d] * sa[d], ib += idx[d] * sb[d];
      Y[i] = g(A[ia], Bv[ib]);
      for (let d = rank - 1; d >= 0 && ++idx[d] === outShape[d]; d--) idx[d] = 0;
    }
  }

  reduce(op: ReduceOp, x: number, y: number, outer: number, inner: number, dtype: DType): void {
    const X = this.view(x, outer * inner, dtype);
    const Y = this.view(y, outer, op === 'argMax' || op === 'argMin' ? 'int32' : op === 'mean' ? 'float32' : dtype);
    for (let o = 0; o < outer; o++) {
      let acc = op === 'max' || op === 'argMax' ? -Infinity : op === 'min' || op === 'argMin' ? Infinity : 0, at = 0;
      for (let i = 0; i < inner; i++) {
        const v = X[o * inner + i];
        if (op === 'sum' || op === 'mean') acc += v;
        else if (op === 'max' ? v > acc || Number.isNaN(v) : op === 'min' ? v < acc || Number.isNaN(v) : op === 'argMax' ? v > acc : v < acc) (acc = v), (at = i);
      }
      Y[o] = op === 'mean' ? acc / inner : op === 'argMax' || op === 'argMin' ? at : acc;
    }
  }

  cast(x: number, y: number, n: number, from: DType, to: DType): void {
    const X = this.view(x, n, from), Y = this.view(y, n, to);
    for (let i = 0; i < n; i++) Y[i] = to === 'bool' ? +(X[i] !== 0) : to === 'int32' ? Math.trunc(X[i]) : X[i];
  }

  slice(x: number, y: number, shape: number[], begin: number[], size: number[], bytes: number): void {
    const rank = shape.length, n = size.reduce((p, v) => p * v, 1);
    const st = Array(rank).fill(1);
    for (let d = rank - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1];
    const idx = Array(rank).fill(0);
    for (let i = 0; i < n; i++) {
      let from = 0;
      for (let d = 0; d < rank; d++) from += (begin[d] + idx[d]) * st[d];
      this.heap.copyWithin(y + i * bytes, x + from * bytes, x + (from + 1) * bytes);
      for (let d = rank - 1; d >= 0 && ++idx[d] === size[d]; d--) idx[d] = 0;
    }
  }

  transpose(x: number, y: number, shape: number[], perm: number[], bytes: number): void {
    const rank = shape.length, n = shape.reduce((p, v) => p * v, 1);
    const st = Array(rank).fill(1);
    for (let d = rank - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1];
    const outShape = perm.map((p) => shape[p]);
    const idx = Array(rank).fill(0);
    for (let i = 0; i < n; i++) {
      let from = 0;
      for (let d = 0; d < rank; d++) from += idx[d] * st[perm[d]];
      this.heap.copyWithin(y + i * bytes, x + from * bytes, x + (from + 1) * bytes);
      for (let d = rank - 1; d >= 0 && ++idx[d] === outShape[d]; d--) idx[d] = 0;
    }
  }

  oneHot(indices: number, y: number, n: number, depth: number, on: number, off: number): void {
    const I = new Int32Array(this.heap.buffer, indices, n), Y = this.f(y, n * depth);
    Y.fill(off);
    for (let i = 0; i < n; i++) if (I[i] >= 0 && I[i] < depth) Y[i * depth + I[i]] = on;
  }
}

