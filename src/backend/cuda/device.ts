// The contract between bnlab's cuda backend (src/backend/cuda/backend.ts, TypeScript: tfjs
// bookkeeping and kernel dispatch) and a device that owns memory and runs the arithmetic:
//   - the native CUDA addon (native/cuda/, loaded by ./addon.ts): device memory from a
//     stream-ordered pool, one stream, cuDNN / cuBLAS / bnlab's NVRTC-compiled kernels
//     (native/cuda/kernels/*.cu); every call is asynchronous on that stream except the
//     downloads, info() and memory();
//   - a fake device (./fake-device.ts) that keeps "device memory" in host RAM and runs the same
//     operations with bnlab's CPU kernels: the backend's bookkeeping and every kernel's wiring
//     are tested on machines without a GPU, CI included.
// A buffer is a number: a raw device address (the addon) or an id (the fake). Sizes are bytes.
// One device per process, called from the thread that created it.
// Tensors are dense, row-major; activations NHWC; filters HWIO (tfjs' layouts: the addon
// transposes for cuDNN itself); float32 and int32 are 4 bytes, bool 1 byte (uint8).
// The operations mirror the CPU addon's (native/addon/*.cc, same argument order and math),
// with buffers instead of heap offsets; the generic ones serve tfjs' stock kernels.

export type DType = 'float32' | 'int32' | 'bool';
export const DTYPE_CODE: Record<DType, number> = { float32: 0, int32: 1, bool: 2 };
export const BYTES: Record<DType, number> = { float32: 4, int32: 4, bool: 1 };

export interface DeviceInfo {
  /** e.g. "NVIDIA H100 80GB HBM3" or "fake device (host memory)" */
  name: string;
  /** compute capability, e.g. [9, 0]; [0, 0] for the fake */
  cc: [number, number];
  /** what runs each part, e.g. { driver: '580.159 (CUDA 13.0)', cudnn: '9.10.2 /path', cublas: ..., nvrtc: ... } */
  libs: Record<string, string>;
  totalBytes: number;
}

export interface DeviceMemory {
  /** bytes in live buffers (as asked for; the fake counts its 256-byte rounding) */
  inUse: number;
  /** bytes the pool holds for reuse beyond inUse */
  pooled: number;
  /** the device's free and total memory (driver's cuMemGetInfo) */
  free: number;
  total: number;
}

/** Unary elementwise ops (float32 in and out unless noted). */
export const UNARY = ['neg', 'exp', 'log', 'rsqrt', 'sqrt', 'relu', 'abs', 'square', 'reciprocal', 'sigmoid', 'step'] as const;
export type UnaryOp = (typeof UNARY)[number];
/** Binary elementwise ops with broadcasting; compare ops write bool. */
export const BINARY = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'squaredDifference', 'equal', 'notEqual', 'greater', 'greaterEqual', 'less', 'lessEqual'] as const;
export type BinaryOp = (typeof BINARY)[number];
export const REDUCE = ['sum', 'max', 'min', 'mean', 'argMax', 'argMin'] as const;
export type ReduceOp = (typeof REDUCE)[number];

export interface Device {
  info(): DeviceInfo;
  memory(): DeviceMemory;

  // ---- memory (stream-ordered: a free()d buffer may be reused by the next alloc at once) ----
  alloc(bytes: number): number;
  free(buf: number): void;
  /** host -> device; `src` may be reused as soon as the call returns (the addon stages it). */
  upload(buf: number, src: ArrayBufferView): void;
  /** device -> host, waiting for the stream; `bytes` from the buffer's start. */
  downloadSync(buf: number, bytes: number): Uint8Array;
  /** the addon's waits on the stream like downloadSync (the host thread blocks) */
  download(buf: number, bytes: number): Promise<Uint8Array>;
  /** device -> device, `bytes` from src+srcOff to dst+dstOff. */
  copy(dst: number, dstOff: number, src: number, srcOff: number, bytes: number): void;
  /** Fill n elements of a dtype with one value. */
  fill(buf: number, n: number, dtype: DType, value: number): void;
  /** Wait until everything queued has run (errors of asynchronous work surface here). */
  sync(): void;

  // ---- bnlab's kernels (native/addon's math; see src/backend/kernels/*.ts for the tf kernels) ----
  /** kind 0 forward (x, w, y), 1 backward data (dy, w, dx), 2 backward weights (x, dy, dw); dims: B H W ci FH FW co OH OW sh sw pt pl pb pr */
  conv(kind: 0 | 1 | 2, a: number, b: number, c: number, dims: Int32Array): void;
  /** x [G*M, C] -> y, mean [G, C], var [G, C] (biased); gamma/beta 0 = ones/zeros */
  bnForward(x: number, y: number, mean: number, variance: number, gamma: number, beta: number, G: number, M: number, C: number, eps: number, relu: boolean): void;
  bnBackward(dy: number, x: number, mean: number, variance: number, gamma: number, beta: number, dx: number, dgamma: number, dbeta: number, G: number, M: number, C: number, eps: number, relu: boolean): void;
  bnApply(x: number, y: number, scale: number, shift: number, rows: number, C: number, relu: boolean): void;
  bnApplyAddRelu(x: number, z: number, y: number, scale: number, shift: number, rows: number, C: number): void;
  sgd(w: number, g: number, v: number, wOut: number, vOut: number, n: number, lr: number, momentum: number, wd: number, nesterov: boolean): void;
  ema(mean: number, variance: number, obsMean: number, obsVar: number, meanOut: number, varOut: number, C: number, G: number, decay: number, counts: Float64Array): void;
  addRelu(a: number, b: number, y: number, n: number): void;
  reluGrad(dy: number, y: number, dx: number, n: number): void;
  /** c[i] = op(a[i]) * op(b[i]) row-major, a batch of 1 broadcasting */
  matmul(a: number, b: number, c: number, batchA: number, batchB: number, M: number, N: number, K: number, transA: boolean, transB: boolean): void;
  gap(x: number, y: number, B: number, HW: number, C: number): void;
  gapGrad(dy: number, dx: number, B: number, HW: number, C: number): void;
  /** NHWC max pooling; padding value -inf; a NaN in a window gives NaN */
  maxPool(x: number, y: number, B: number, H: number, W: number, C: number, OH: number, OW: number, FH: number, FW: number, sh: number, sw: number, pt: number, pl: number): void;
  maxPoolGrad(x: number, dy: number, dx: number, B: number, H: number, W: number, C: number, OH: number, OW: number, FH: number, FW: number, sh: number, sw: number, pt: number, pl: number): void;

  // ---- generic ops for tfjs' stock kernels ----
  unary(op: UnaryOp, x: number, y: number, n: number): void;
  /** y[outShape] = op(a, b) with numpy broadcasting: aShape/bShape padded on the left to outShape's rank (<= 6) */
  binary(op: BinaryOp, a: number, b: number, y: number, aShape: number[], bShape: number[], outShape: number[], dtype: DType): void;
  /** reduce the inner `inner` elements of each of `outer` rows: sum/max/min write `dtype` (an
   *  int32 sum wraps), mean float32, argMax/argMin int32 (the first extreme); max/min propagate NaN */
  reduce(op: ReduceOp, x: number, y: number, outer: number, inner: number, dtype: DType): void;
  cast(x: number, y: number, n: number, from: DType, to: DType): void;
  /** y = x[begin : begin + size] of an N-d (<= 6) tensor, elements of `bytes` bytes */
  slice(x: number, y: number, shape: number[], begin: number[], size: number[], bytes: number): void;
  transpose(x: number, y: number, shape: number[], perm: number[], bytes: number): void;
  /** indices int32 [n] -> y float32 [n, depth] */
  oneHot(indices: number, y: number, n: number, depth: number, on: number, off: number): void;
}
