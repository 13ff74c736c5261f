// bnlab's CUDA device layer (native/cuda, built by scripts/build-native.sh into
// native/cuda/bnlab_cuda.node) as a Device (./device.ts) on one GPU. The addon links no CUDA
// library: init() dlopen()s the driver, NVRTC, cuBLAS and cuDNN 9 by the paths ./libs.ts found,
// creates a context and stream, and compiles native/cuda/kernels/*.cu for the GPU with NVRTC
// (CUBINs cached under cacheDir). Loading the addon and mapping it is all this file does.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { BinaryOp, Device, DeviceInfo, DeviceMemory, DType, ReduceOp, UnaryOp } from './device.js';

export const CUDA_ADDON_PATH = fileURLToPath(new URL('../../../native/cuda/bnlab_cuda.node', import.meta.url));
export const CUDA_KERNEL_DIR = fileURLToPath(new URL('../../../native/cuda/kernels', import.meta.url));

export interface CudaDeviceOptions {
  /** paths (or sonames) of libcuda.so.1, libnvrtc, libcublas and libcudnn.so.9 */
  driver: string;
  nvrtc: string;
  cublas: string;
  cudnn: string;
  /** where NVRTC's CUBINs are kept between runs */
  cacheDir: string;
  /** TF32 tensor cores for float32 convolutions (cuDNN) and matmuls (cuBLAS) */
  tf32: boolean;
  /** only cuDNN algorithms that give the same bits on every run */
  deterministic: boolean;
}

/** The N-API module: Device's methods under the same names, plus init() and version(). */
export interface CudaAddon extends Device {
  init(options: CudaDeviceOptions & { kernelDir: string }): void;
  version(): string;
}

let loaded: { addon: CudaAddon | null; reason: string } | null = null;

function load(): { addon: CudaAddon | null; reason: string } {
  if (loaded) return loaded;
  try {
    const addon = createRequire(import.meta.url)(CUDA_ADDON_PATH) as CudaAddon;
    loaded = { addon, reason: addon.version() };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    loaded = { addon: null, reason: /cannot find module/i.test(msg) ? `no ${CUDA_ADDON_PATH}` : `${CUDA_ADDON_PATH} failed to load: ${msg}` };
  }
  return loaded;
}

/** Whether native/cuda/bnlab_cuda.node is built and loads; the reason when not (no fix: callers add it). */
export function cudaAddonStatus(): { built: boolean; reason: string } {
  const { addon, reason } = load();
  return { built: addon !== null, reason };
}

/** The addon's functions behind the Device interface; tsc checks that every method is there. */
class CudaDevice implements Device {
  constructor(private readonly a: CudaAddon) {}
  info(): DeviceInfo { return this.a.info(); }
  memory(): DeviceMemory { return this.a.memory(); }
  alloc(bytes: number): number { return this.a.alloc(bytes); }
  free(buf: number): void { this.a.free(buf); }
  upload(buf: number, src: ArrayBufferView): void { this.a.upload(buf, src); }
  downloadSync(buf: number, bytes: number): Uint8Array { return this.a.downloadSync(buf, bytes); }
  /** The copy is downloadSync's (the stream is waited for); the promise carries its result or error. */
  download(buf: number, bytes: number): Promise<Uint8Array> { return this.a.download(buf, bytes); }
  copy(dst: number, dstOff: number, src: number, srcOff: number, bytes: number): void { this.a.copy(dst, dstOff, src, srcOff, bytes); }
  fill(buf: number, n: number, dtype: DType, value: number): void { this.a.fill(buf, n, dtype, value); }
  sync(): void { this.a.sync(); }
  conv(kind: 0 | 1 | 2, a: number, b: number, c: number, dims: Int32Array): void { this.a.conv(kind, a, b, c, dims); }
  bnForward(x: number, y: number, mean: number, variance: number, gamma: number, beta: number, G: number, M: number, C: number, eps: number, relu: boolean): void {
    this.a.bnForward(x, y, mean, variance, gamma, beta, G, M, C, eps, relu);
  }
  bnBackward(dy: number, x: number, mean: number, variance: number, gamma: number, beta: number, dx: number, dgamma: number, dbeta: number, G: number, M: number, C: number, eps: number, relu: boolean): void {
    this.a.bnBackward(dy, x, mean, variance, gamma, beta, dx, dgamma, dbeta, G, M, C, eps, relu);
  }
  bnApply(x: number, y: number, scale: number, shift: number, rows: number, C: number, relu: boolean): void { this.a.bnApply(x, y, scale, shift, rows, C, relu); }
  bnApplyAddRelu(x: number, z: number, y: number, scale: number, shift: number, rows: number, C: number): void { this.a.bnApplyAddRelu(x, z, y, scale, shift, rows, C); }
  sgd(w: number, g: number, v: number, wOut: number, vOut: number, n: number, lr: number, momentum: number, wd: number, nesterov: boolean): void {
    this.a.sgd(w, g, v, wOut, vOut, n, lr, momentum, wd, nesterov);
  }
  ema(mean: number, variance: number, obsMean: number, obsVar: number, meanOut: number, varOut: number, C: number, G: number, decay: number, counts: Float64Array): void {
    this.a.ema(mean, variance, obsMean, obsVar, meanOut, varOut, C, G, decay, counts);
  }
  addRelu(a: number, b: number, y: number, n: number): void { this.a.addRelu(a, b, y, n); }
  reluGrad(dy: number, y: number, dx: number, n: number): void { this.a.reluGrad(dy, y, dx, n); }
  matmul(a: number, b: number, c: number, batchA: number, batchB: number, M: number, N: number, K: number, transA: boolean, transB: boolean): void {
    this.a.matmul(a, b, c, batchA, batchB, M, N, K, transA, transB);
  }
  gap(x: number, y: number, B: number, HW: number, C: number): void { this.a.gap(x, y, B, HW, C); }
  gapGrad(dy: number, dx: number, B: number, HW: number, C: number): void { this.a.gapGrad(dy, dx, B, HW, C); }
  maxPool(x: number, y: number, B: number, H: number, W: number, C: number, OH: number, OW: number, FH: number, FW: number, sh: number, sw: number, pt: number, pl: number): void {
    this.a.maxPool(x, y, B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl);
  }
  maxPoolGrad(x: number, dy: number, dx: number, B: number, H: number, W: number, C: number, OH: number, OW: number, FH: number, FW: number, sh: number, sw: number, pt: number, pl: number): void {
    this.a.maxPoolGrad(x, dy, dx, B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl);
  }
  unary(op: UnaryOp, x: number, y: number, n: number): void { this.a.unary(op, x, y, n); }
  binary(op: BinaryOp, a: number, b: number, y: number, aShape: number[], bShape: number[], outShape: number[], dtype: DType): void {
    this.a.binary(op, a, b, y, aShape, bShape, outShape, dtype);
  }
  reduce(op: ReduceOp, x: number, y: number, outer: number, inner: number, dtype: DType): void { this.a.reduce(op, x, y, outer, inner, dtype); }
  cast(x: number, y: number, n: number, from: DType, to: DType): void { this.a.cast(x, y, n, from, to); }
  slice(x: number, y: number, shape: number[], begin: number[], size: number[], bytes: number): void { this.a.slice(x, y, shape, begin, size, bytes); }
  transpose(x: number, y: number, shape: number[], perm: number[], bytes: number): void { this.a.transpose(x, y, shape, perm, bytes); }
  oneHot(indices: number, y: number, n: number, depth: number, on: number, off: number): void { this.a.oneHot(indices, y, n, depth, on, off); }
}

let current: { key: string; device: Device } | null = null;

/**
 * The GPU as a Device: the addon's init() with these libraries (throws its message: which
 * library, symbol or CUDA error, and the fix). The addon holds one device per process, so a
 * second call returns the first device when the options are the same and throws otherwise.
 */
export function loadCudaDevice(opts: CudaDeviceOptions): Device {
  const { driver, nvrtc, cublas, cudnn, cacheDir, tf32, deterministic } = opts;
  const key = JSON.stringify({ driver, nvrtc, cublas, cudnn, cacheDir, tf32, deterministic });
  if (current) {
    if (current.key === key) return current.device;
    throw new Error(`bnlab cuda: the device is already initialised with ${current.key}; one per process (restart to change options)`);
  }
  const { addon, reason } = load();
  if (!addon) throw new Error(`bnlab cuda: the CUDA addon is not available (${reason}); run npm run build:native`);
  addon.init({ driver, nvrtc, cublas, cudnn, cacheDir, tf32, deterministic, kernelDir: CUDA_KERNEL_DIR });
  current = { key, device: new CudaDevice(addon) };
  return current.device;
}
