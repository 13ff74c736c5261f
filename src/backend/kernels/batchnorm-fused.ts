// Fused BatchNorm kernels for the wasm backend, from our own WebAssembly module
// (src/backend/native/bn.c, built by scripts/build-wasm.sh; the .wasm files are committed).
// The module imports the tfjs wasm backend's linear memory and works on tensors in place:
// no copies. One call does what took ~10 tfjs kernels (moments, normalize, affine, relu) and
// the backward is two passes over memory instead of ~12.
//
// Kernels (new names, registered only for 'wasm'; callers test getKernel() and fall back):
//   BnlabBNForward  {x[, gamma, beta]} attrs {groups, eps, relu} -> [y, mean[G,C], variance[G,C]]
//   BnlabBNBackward {dy, x, mean, variance[, gamma, beta]} attrs {groups, eps, relu} -> [dx, dgamma[C], dbeta[C]]
//   BnlabBNApply    {x, scale, shift} attrs {relu} -> y = act(x*scale + shift)
//   BnlabBNApplyAddRelu {x, z, scale, shift} -> y = relu(x*scale + shift + z), natively only (a
//     residual block's end at inference: one pass instead of BnlabBNApply then BnlabAddRelu)
// x is any shape whose last dim is C (NHWC); its rows are split into `groups` equal groups.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { findBackend, registerKernel, unregisterKernel, getKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native-addon.js';
import { offsetOf, type WasmHeapBackend } from './heap.js';
import { BN_FORWARD, BN_BACKWARD, BN_APPLY, BN_APPLY_ADD_RELU } from './names.js';

export { BN_FORWARD, BN_BACKWARD, BN_APPLY, BN_APPLY_ADD_RELU };

const NAMES = [BN_FORWARD, BN_BACKWARD, BN_APPLY, BN_APPLY_ADD_RELU];

interface Exports {
  bn_forward(...a: number[]): void;
  bn_backward(...a: number[]): void;
  bn_apply(...a: number[]): void;
}

const instances = new WeakMap<object, Exports>();
// When set, the same kernels run natively on all cores (native/addon/bn.cc) instead.
let native: NativeAddon | null = null;

function nativeExports(b: WasmHeapBackend, n: NativeAddon): Exports {
  // bn.c's trailing scratch pointers are not needed natively; the heap view is read per call
  // because a non-shared wasm memory gets a new buffer when it grows.
  return {
    bn_forward: (...a) => n.bnForward(b.wasm.HEAPU8, ...a.slice(0, 11)),
    bn_backward: (...a) => n.bnBackward(b.wasm.HEAPU8, ...a.slice(0, 14)),
    bn_apply: (...a) => n.bnApply(b.wasm.HEAPU8, ...a.slice(0, 7)),
  };
}

// per backend memory; rebuilt when setFusedBN changes `native`
let nativeInstances = new WeakMap<object, Exports>();

function moduleFor(b: WasmHeapBackend): Exports {
  if (native) {
    let ex = nativeInstances.get(b.wasm);
    if (!ex) nativeInstances.set(b.wasm, (ex = nativeExports(b, native)));
    return ex;
  }
  const have = instances.get(b.wasm);
  if (have) return have;
  // threaded build: the shared memory emscripten created; single-threaded: the module's export
  const memory = b.wasm.wasmMemory ?? Object.values(b.wasm.asm ?? {}).find((v) => v instanceof WebAssembly.Memory);
  if (!memory) throw new Error('bnlab fused BN: the wasm backend does not expose its memory');
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const file = fileURLToPath(new URL(`../native/bn${shared ? '.shared' : ''}.wasm`, import.meta.url));
  const mod = new WebAssembly.Module(fs.readFileSync(file));
  const inst = new WebAssembly.Instance(mod, { env: { memory } });
  const ex = inst.exports as unknown as Exports;
  instances.set(b.wasm, ex);
  return ex;
}

const off = offsetOf;

function checkF32(...ts: (TensorInfo | undefined)[]): void {
  for (const t of ts) if (t && t.dtype !== 'float32') throw new Error(`bnlab fused BN: float32 only, got ${t.dtype}`);
}

/** Scratch for the C kernels: 2 float64 [C] + `floats` float32 [C] arrays, 8-byte aligned. */
function scratch(b: WasmHeapBackend, C: number, floats: number) {
  const base = b.wasm._malloc(16 * C + 4 * C * floats + 16) >>> 0;
  const d = (base + 7) & ~7;
  const f = (i: number) => d + 16 * C + 4 * C * i;
  return { base, s1: d, s2: d + 8 * C, f };
}

/** ones (gamma) / zeros (beta) when the caller normalizes without affine. */
function affinePtrs(b: WasmHeapBackend, C: number, gamma: TensorInfo | undefined, beta: TensorInfo | undefined, at: number): [number, number] {
  if (gamma && beta) return [off(b, gamma), off(b, beta)];
  const heap = new Float32Array(b.wasm.HEAPU8.buffer, at, 2 * C);
  heap.fill(1, 0, C);
  heap.fill(0, C, 2 * C);
  return [at, at + 4 * C];
}

const forward: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as unknown as WasmHeapBackend;
  const { x, gamma, beta } = inputs as { x: TensorInfo; gamma?: TensorInfo; beta?: TensorInfo };
  const { groups, eps, relu } = attrs as unknown as { groups: number; eps: number; relu: boolean };
  checkF32(x, gamma, beta);
  const C = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, v) => a * v, 1) / C;
  const M = rows / groups;
  if (!Number.isInteger(M) || M < 1) throw new Error(`bnlab fused BN: ${rows} rows do not split into ${groups} groups`);
  const ex = moduleFor(b);
  const y = b.makeOutput(x.shape, 'float32');
  const mean = b.makeOutput([groups, C], 'float32');
  const variance = b.makeOutput([groups, C], 'float32');
  const s = scratch(b, C, 7);
  try {
    const [g, be] = affinePtrs(b, C, gamma, beta, s.f(5));
    ex.bn_forward(off(b, x), off(b, y), off(b, mean), off(b, variance), g, be, groups, M, C, eps, relu ? 1 : 0,
      s.s1, s.s2, s.f(0), s.f(1), s.f(2), s.f(3), s.f(4));
  } finally {
    b.wasm._free(s.base);
  }
  return [y, mean, variance];
};

const backward: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as unknown as WasmHeapBackend;
  const { dy, x, mean, variance, gamma, beta } = inputs as Record<string, TensorInfo | undefined> as {
    dy: TensorInfo; x: TensorInfo; mean: TensorInfo; variance: TensorInfo; gamma?: TensorInfo; beta?: TensorInfo;
  };
  const { groups, eps, relu } = attrs as unknown as { groups: number; eps: number; relu: boolean };
  checkF32(dy, x, mean, variance, gamma, beta);
  const C = x.shape[x.shape.length - 1];
  const M = x.shape.reduce((a, v) => a * v, 1) / C / groups;
  const ex = moduleFor(b);
  const dx = b.makeOutput(x.shape, 'float32');
  const dgamma = b.makeOutput([C], 'float32');
  const dbeta = b.makeOutput([C], 'float32');
  const s = scratch(b, C, 7);
  try {
    const [g, be] = affinePtrs(b, C, gamma, beta, s.f(5));
    ex.bn_backward(off(b, dy), off(b, x), off(b, mean), off(b, variance), g, be, off(b, dx), off(b, dgamma), off(b, dbeta),
      groups, M, C, eps, relu ? 1 : 0, s.s1, s.s2, s.f(0), s.f(1), s.f(2), s.f(3), s.f(4));
  } finally {
    b.wasm._free(s.base);
  }
  return [dx, dgamma, dbeta];
};

const apply: KernelFunc = ({ inputs, attrs, backend }) => {
  const b = backend as unknown as WasmHeapBackend;
  const { x, scale, shift } = inputs as { x: TensorInfo; scale: TensorInfo; shift: TensorInfo };
  const { relu } = attrs as unknown as { relu: boolean };
  checkF32(x, scale, shift);
  const C = x.shape[x.shape.length - 1];
  if (scale.shape.reduce((a, v) => a * v, 1) !== C || shift.shape.reduce((a, v) => a * v, 1) !== C) {
    throw new Error('bnlab fused BN apply: scale/shift must have C elements');
  }
  const ex = moduleFor(b);
  const y = b.makeOutput(x.shape, 'float32');
  ex.bn_apply(off(b, x), off(b, y), off(b, scale), off(b, shift), x.shape.reduce((a, v) => a * v, 1) / C, C, relu ? 1 : 0);
  return y;
};

const applyAddRelu: KernelFunc = ({ inputs, backend }) => {
  const b = backend as unknown as WasmHeapBackend;
  const { x, z, scale, shift } = inputs as { x: TensorInfo; z: TensorInfo; scale: TensorInfo; shift: TensorInfo };
  checkF32(x, z, scale, shift);
  const C = x.shape[x.shape.length - 1];
  const n = x.shape.reduce((a, v) => a * v, 1);
  if (z.shape.length !== x.shape.length || z.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(`bnlab fused BN apply+add+relu: shortcut ${z.shape} differs from x ${x.shape}`);
  }
  if (scale.shape.reduce((a, v) => a * v, 1) !== C || shift.shape.reduce((a, v) => a * v, 1) !== C) {
    throw new Error('bnlab fused BN apply+add+relu: scale/shift must have C elements');
  }
  const y = b.makeOutput(x.shape, 'float32');
  if (n > 0) native!.bnApplyAddRelu(b.wasm.HEAPU8, off(b, x), off(b, z), off(b, y), off(b, scale), off(b, shift), n / C, C);
  return y;
};

/** Registers (on = true) or removes the fused BN kernels for the wasm backend; with `addon`
 *  they run natively (multi-threaded), else in bnlab's WebAssembly module. */
export function setFusedBN(on: boolean, backendName = 'wasm', addon: NativeAddon | null = null): void {
  for (const n of NAMES) if (getKernel(n, backendName) != null) unregisterKernel(n, backendName);
  native = on ? addon : null;
  nativeInstances = new WeakMap();
  if (!on) return;
  const b = findBackend(backendName) as unknown as WasmHeapBackend | null;
  if (b?.wasm) moduleFor(b); // load now: a missing/incompatible module fails at init, not mid-step
  registerKernel({ kernelName: BN_FORWARD, backendName, kernelFunc: forward });
  registerKernel({ kernelName: BN_BACKWARD, backendName, kernelFunc: backward });
  registerKernel({ kernelName: BN_APPLY, backendName, kernelFunc: apply });
  // an addon built before the kernel existed lacks it: the block end then runs as two kernels
  if (native && typeof native.bnApplyAddRelu === 'function') registerKernel({ kernelName: BN_APPLY_ADD_RELU, backendName, kernelFunc: applyAddRelu });
}
