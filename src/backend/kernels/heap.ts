// What bnlab's own wasm kernels use of tfjs' wasm backend: its linear memory and where each
// tensor lives in it. Kernels allocate outputs through the backend (so tfjs owns them) and
// read/write tensors in place at these byte offsets.
import type { TensorInfo } from '@tensorflow/tfjs-core';

export interface WasmHeapBackend {
  wasm: { HEAPU8: Uint8Array; wasmMemory?: WebAssembly.Memory; asm?: Record<string, unknown>; _malloc(n: number): number; _free(p: number): void };
  dataIdMap: { get(id: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(id: object): void;
}

/** The backend a KernelFunc receives, typed for heap access. */
export const heapBackend = (backend: unknown) => backend as WasmHeapBackend;

/** Byte offset of a tensor's data in the wasm heap. */
export const offsetOf = (b: WasmHeapBackend, t: TensorInfo) => b.dataIdMap.get(t.dataId).memoryOffset >>> 0;

/** The current heap view; read after any allocation (a non-shared memory gets a new buffer when it grows). */
export const heapOf = (b: WasmHeapBackend) => b.wasm.HEAPU8;

export const sizeOf = (shape: readonly number[]) => shape.reduce((p, x) => p * x, 1);
