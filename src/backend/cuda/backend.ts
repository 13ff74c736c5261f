// bnlab's cuda backend: a tfjs KernelBackend whose tensors live in a Device's memory (the native
// CUDA addon on a GPU; the fake device in tests). This file is the bookkeeping only: which
// buffer holds which tensor, how many tensors share it, and reading back. The arithmetic is in
// ./kernels.ts, each kernel one Device call. Modelled on tfjs-backend-webgpu's backend_webgpu.ts.
// Only read/readSync wait for the device: every other call queues work and returns.
import { DataStorage, engine, KernelBackend, util, type BackendTimingInfo, type BackendValues, type DataId, type DataType, type TensorInfo } from '@tensorflow/tfjs-core';
import { BYTES, type Device, type DType } from './device.js';

interface TensorData {
  /** the device buffer (0 for an empty tensor) */
  buf: number;
  bytes: number;
  dtype: DType;
  refCount: number;
}

export class CudaBackendError extends Error {}

const dtypeOf = (d: DataType): DType => {
  if (d === 'float32' || d === 'int32' || d === 'bool') return d;
  throw new CudaBackendError(`the cuda backend holds float32, int32 and bool tensors, not ${d}`);
};

/** Host copy of device bytes as tfjs expects them per dtype. */
function typed(bytes: Uint8Array, dtype: DType, n: number): BackendValues {
  const b = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (dtype === 'float32') return new Float32Array(b, 0, n);
  if (dtype === 'int32') return new Int32Array(b, 0, n);
  return new Uint8Array(b, 0, n);
}

/** tfjs' values for a dtype as the bytes the device stores (bool as one byte per element). */
function hostBytes(values: BackendValues, dtype: DType, n: number): ArrayBufferView {
  if (dtype === 'float32') return values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
  if (dtype === 'int32') return values instanceof Int32Array ? values : Int32Array.from(values as ArrayLike<number>);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (values as ArrayLike<number>)[i] ? 1 : 0;
  return out;
}

export class CudaBackend extends KernelBackend {
  readonly data: DataStorage<TensorData>;
  /** Bytes in live tensors (the pool may hold more: device.memory()). */
  private liveBytes = 0;
  private nextId = 0;

  constructor(readonly device: Device) {
    super();
    this.data = new DataStorage(this, engine());
  }

  // ---- storage ----
  private store(dataId: DataId, values: BackendValues | null, shape: number[], dtype: DataType, refCount: number): void {
    const dt = dtypeOf(dtype);
    const n = util.sizeFromShape(shape);
    const bytes = n * BYTES[dt];
    const buf = bytes > 0 ? this.device.alloc(bytes) : 0;
    if (values && bytes > 0) this.device.upload(buf, hostBytes(values, dt, n));
    this.liveBytes += bytes;
    this.data.set(dataId, { buf, bytes, dtype: dt, refCount });
  }

  write(values: BackendValues, shape: number[], dtype: DataType): DataId {
    const dataId = { id: this.nextId++ };
    this.store(dataId, values, shape, dtype, 1);
    return dataId;
  }

  move(dataId: DataId, values: BackendValues, shape: number[], dtype: DataType, refCount: number): void {
    this.store(dataId, values, shape, dtype, refCount);
  }

  /** A kernel's output: device memory, not yet written (the kernel's device call writes it). */
  makeOutput(shape: number[], dtype: DataType): TensorInfo {
    const dataId = { id: this.nextId++ };
    this.store(dataId, null, shape, dtype, 1);
    return { dataId, shape, dtype };
  }

  makeTensorInfo(shape: number[], dtype: DataType, values?: BackendValues): TensorInfo {
    return { dataId: values ? this.write(values, shape, dtype) : this.makeOutput(shape, dtype).dataId, shape, dtype };
  }

  /** The device buffer of a tensor (for kernels). */
  buf(t: TensorInfo): number {
    const d = this.data.get(t.dataId);
    if (!d) throw new CudaBackendError('a tensor of another backend reached the cuda backend (tfjs moves data between backends only through read())');
    return d.buf;
  }

  override refCount(dataId: DataId): number {
    return this.data.has(dataId) ? this.data.get(dataId).refCount : 0;
  }

  override incRef(dataId: DataId): void {
    this.data.get(dataId).refCount++;
  }

  /** Releases a reference; the buffer goes back to the device's pool when none is left (or forced). */
  override disposeData(dataId: DataId, force = false): boolean {
    if (!this.data.has(dataId)) return true;
    const d = this.data.get(dataId);
    d.refCount--;
    if (!force && d.refCount > 0) return false;
    if (d.bytes > 0) this.device.free(d.buf);
    this.liveBytes -= d.bytes;
    this.data.delete(dataId);
    return true;
  }

  override numDataIds(): number {
    return this.data.numDataIds();
  }

  // ---- reading back: the only calls that wait for the device ----
  override readSync(dataId: DataId): BackendValues {
    const d = this.data.get(dataId);
    const n = d.bytes / BYTES[d.dtype];
    return typed(d.bytes ? this.device.downloadSync(d.buf, d.bytes) : new Uint8Array(0), d.dtype, n);
  }

  override async read(dataId: DataId): Promise<BackendValues> {
    const d = this.data.get(dataId);
    const n = d.bytes / BYTES[d.dtype];
    return typed(d.bytes ? await this.device.download(d.buf, d.bytes) : new Uint8Array(0), d.dtype, n);
  }

  // ---- the rest of tfjs' backend surface ----
  override memory(): { unreliable: boolean; reasons?: string[]; numBytesInGPU: number; numBytesPooled: number; numBytesFreeOnDevice: number } {
    const m = this.device.memory();
    return { unreliable: false, numBytesInGPU: this.liveBytes, numBytesPooled: m.pooled, numBytesFreeOnDevice: m.free };
  }

  override timerAvailable(): boolean {
    return true;
  }

  /** Wall time of f including the device work it queued (the stream is drained before and after). */
  override async time(f: () => void): Promise<BackendTimingInfo> {
    this.device.sync();
    const t0 = performance.now();
    f();
    this.device.sync();
    return { kernelMs: performance.now() - t0 };
  }

  override floatPrecision(): 32 {
    return 32;
  }

  override epsilon(): number {
    return 1e-7;
  }

  override dispose(): void {
    this.device.sync();
  }
}
