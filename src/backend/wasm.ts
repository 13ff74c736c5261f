// The tfjs wasm backend, made able to train conv nets (see /work/shared/TFJS.md):
//  - filterGrad: Conv2DBackpropFilter is not registered for wasm at all;
//  - inputGrad:  the stock Conv2DBackpropInput is a scalar loop (64% of a ResNet step);
//  - batchMatMul: transposed BatchMatMul is 25-1000x slower than transposing first;
//  - threads: off under Node by default in tfjs; enabled here by patching the loader.
// Each fix can be switched off; BNLAB_WASM_FIXES=none (or a comma list) overrides the options.
import * as tf from '@tensorflow/tfjs';
import { getKernel, registerKernel, unregisterKernel, type KernelConfig } from '@tensorflow/tfjs-core';
import { filterGradKernel } from './kernels/conv-filter-grad.js';
import { inputGradKernel } from './kernels/conv-input-grad.js';
import { batchMatMulKernel } from './kernels/batch-matmul.js';
import { setFusedBN } from './kernels/batchnorm-fused.js';
import { sharedIdentityKernel } from './kernels/identity.js';
import { dnnlConvKernel, dnnlFilterGradKernel, dnnlInputGradKernel } from './kernels/conv-dnnl.js';
import { loadNative, ompWaiting } from './native-addon.js';
import { setFusedEMA, setFusedSGD } from './kernels/state-updates.js';
import { nativeAddKernel, nativeMaxPoolGradKernel, setNativeEltwise, smallBinaryKernel } from './kernels/eltwise.js';
import { nativeMatMulKernel } from './kernels/matmul-native.js';
import { patchForNodeThreads, threadPatchApplies } from './wasm-threads.js';
export { poolStartState } from './wasm-threads.js';
import { cpuBudget } from '../util/cpus.js';

export type WasmFix = 'filterGrad' | 'inputGrad' | 'batchMatMul';
export const WASM_FIXES: readonly WasmFix[] = ['filterGrad', 'inputGrad', 'batchMatMul'];

// Speed kernels (not fixes: the stock backend is correct without them), each with a switch.
// fusedBN: BatchNorm (+affine, +ReLU) forward/backward as single kernels from our own
// WebAssembly module (src/backend/native/bn.c) working in place on the backend's memory.
// sharedIdentity: Identity (= every clone tfjs makes of a tensor saved for backward) shares
// the data instead of copying it: less heap, fewer copies.
// The rest come from the optional native addon (src/backend/native-addon.ts; on only when it
// is built) and work in place on the wasm heap too:
// dnnlConv: Conv2D and both its gradients computed by oneDNN, instead of XNNPACK / the fixes.
// nativeBN: the fusedBN kernels compiled natively and run on all threads.
// fusedSGD, fusedEMA: the SGD-with-momentum update of a parameter and the EMA update of a BN
// layer's population statistics, one kernel call each instead of 5-11 tf ops.
// nativeEltwise: relu(a + b) at the end of residual blocks, its gradient, and large same-shape
// Adds (the gradient sums tfjs makes for tensors used twice, like a block's input), and max
// pooling's gradient (ResNet-50's stem).
// nativeMatMul: BatchMatMul through oneDNN's sgemm (transposes included), over the batchMatMul fix.
// BNLAB_WASM_KERNELS=none (or a comma list) overrides; BNLAB_WASM_FIXES=none turns them off too.
export type WasmKernel = 'fusedBN' | 'sharedIdentity' | 'dnnlConv' | 'nativeBN' | 'fusedSGD' | 'fusedEMA' | 'nativeEltwise' | 'nativeMatMul';
export const WASM_KERNELS: readonly WasmKernel[] = [
  'fusedBN', 'sharedIdentity', 'dnnlConv', 'nativeBN', 'fusedSGD', 'fusedEMA', 'nativeEltwise', 'nativeMatMul',
];

function kernelsWanted(opt: Partial<Record<WasmKernel, boolean>> = {}): Record<WasmKernel, boolean> {
  const want: Record<WasmKernel, boolean> = {
    fusedBN: true, sharedIdentity: true, dnnlConv: true, nativeBN: true, fusedSGD: true, fusedEMA: true, nativeEltwise: true,
    nativeMatMul: true, ...opt,
  };
  const v = process.env.BNLAB_WASM_KERNELS?.trim();
  if (v) for (const k of WASM_KERNELS) want[k] = v === 'all' || v.split(',').map((x) => x.trim()).includes(k);
  if (process.env.BNLAB_WASM_FIXES?.trim() === 'none') for (const k of WASM_KERNELS) want[k] = false;
  return want;
}

/** (Re)registers bnlab's own speed kernels on wasm; returns the ones that are on. */
export function setWasmKernels(opt: Partial<Record<WasmKernel, boolean>> = {}): WasmKernel[] {
  const want = kernelsWanted(opt);
  const addon = loadNative().addon;
  want.nativeBN = want.nativeBN && want.fusedBN && addon != null;
  setFusedBN(want.fusedBN, 'wasm', want.nativeBN ? addon : null);
  want.fusedSGD = want.fusedSGD && addon != null;
  setFusedSGD(want.fusedSGD ? addon : null, 'wasm');
  want.fusedEMA = want.fusedEMA && addon != null;
  setFusedEMA(want.fusedEMA ? addon : null, 'wasm');
  want.nativeEltwise = want.nativeEltwise && addon != null;
  setNativeEltwise(want.nativeEltwise ? addon : null, 'wasm');
  swap('Add', 'wasm', want.nativeEltwise && addon ? (orig) => smallBinaryKernel(nativeAddKernel(addon, orig!)) : null);
  swap('MaxPoolGrad', 'wasm', want.nativeEltwise && addon ? (orig) => nativeMaxPoolGradKernel(addon, orig!) : null);
  for (const k of ['Sub', 'Multiply']) swap(k, 'wasm', want.nativeEltwise ? (orig) => smallBinaryKernel(orig!) : null);
  swap('Identity', 'wasm', want.sharedIdentity ? (orig) => sharedIdentityKernel(orig!) : null);
  nativeWanted.dnnlConv = want.dnnlConv;
  nativeWanted.nativeMatMul = want.nativeMatMul;
  Object.assign(want, applyLayeredKernels());
  return WASM_KERNELS.filter((k) => want[k]);
}

// Kernels that both a fix and a native kernel replace are layered: stock, then the fix
// (setWasmFixes), then the native kernel on top when wanted and built; either setter
// re-applies the stack. Returns which native layers are on.
const nativeWanted = { dnnlConv: false, nativeMatMul: false };
const fixKernels = new Map<string, KernelConfig | undefined>();
const LAYERED = [
  { name: 'Conv2D', switch: 'dnnlConv', wrap: dnnlConvKernel },
  { name: 'Conv2DBackpropInput', switch: 'dnnlConv', wrap: dnnlInputGradKernel },
  { name: 'Conv2DBackpropFilter', switch: 'dnnlConv', wrap: dnnlFilterGradKernel },
  { name: 'BatchMatMul', switch: 'nativeMatMul', wrap: nativeMatMulKernel },
] as const;
function applyLayeredKernels(): typeof nativeWanted {
  const addon = loadNative().addon;
  const on = { dnnlConv: false, nativeMatMul: false };
  for (const { name, switch: sw, wrap } of LAYERED) {
    const key = `wasm/${name}`;
    if (!stock.has(key)) stock.set(key, getKernel(name, 'wasm'));
    const base = fixKernels.has(name) ? fixKernels.get(name) : stock.get(key);
    if (getKernel(name, 'wasm') != null) unregisterKernel(name, 'wasm');
    const native = nativeWanted[sw] && addon != null;
    const cfg = native ? wrap(addon, base ?? missingKernel(name)) : base;
    if (cfg) registerKernel(cfg);
    on[sw] = native;
  }
  return on;
}

/** Fallback target when no kernel exists below oneDNN (stock wasm has no filter gradient). */
function missingKernel(kernelName: string): KernelConfig {
  return {
    kernelName, backendName: 'wasm',
    kernelFunc: () => { throw new Error(`bnlab: the native kernel could not run ${kernelName} here and the wasm backend has no ${kernelName} (enable the filterGrad fix)`); },
  };
}

export interface WasmInfo { simd: boolean; threads: number; fixes: string[]; notes: string[]; kernels?: string[] }

export interface WasmOptions {
  /** XNNPACK threads (max 8). 1 = single-threaded build. Default: BNLAB_WASM_THREADS, else 'auto' (all cores). */
  threads?: number | 'auto';
  fixes?: Partial<Record<WasmFix, boolean>>;
  /** bnlab's own speed kernels (default: all on; see WASM_KERNELS) */
  kernels?: Partial<Record<WasmKernel, boolean>>;
}

// Stock kernels, captured once, so fixes can be undone and never wrap themselves.
const stock = new Map<string, KernelConfig | undefined>();

function swap(kernelName: string, backendName: string, make: ((orig?: KernelConfig) => KernelConfig) | null): void {
  const key = `${backendName}/${kernelName}`;
  if (!stock.has(key)) stock.set(key, getKernel(kernelName, backendName));
  const orig = stock.get(key);
  if (getKernel(kernelName, backendName) != null) unregisterKernel(kernelName, backendName);
  const cfg = make ? make(orig) : orig;
  if (cfg) registerKernel(cfg);
}

function fixesFromEnv(): Partial<Record<WasmFix, boolean>> | null {
  const v = process.env.BNLAB_WASM_FIXES?.trim();
  if (!v) return null;
  if (v === 'none') return { filterGrad: false, inputGrad: false, batchMatMul: false };
  if (v === 'all') return { filterGrad: true, inputGrad: true, batchMatMul: true };
  const on = new Set(v.split(',').map((s) => s.trim()));
  return Object.fromEntries(WASM_FIXES.map((f) => [f, on.has(f)]));
}

/** (Re)applies the wasm kernel fixes; a fix set to false restores the stock kernel. */
export function setWasmFixes(fixes: Partial<Record<WasmFix, boolean>> = {}): string[] {
  if (getKernel('Conv2D', 'wasm') == null) throw new Error('bnlab: call initWasmBackend() before setWasmFixes()');
  const want = { filterGrad: true, inputGrad: true, batchMatMul: true, ...fixes, ...fixesFromEnv() };
  swap('Conv2DBackpropFilter', 'wasm', want.filterGrad ? () => filterGradKernel('wasm') : null);
  swap('Conv2DBackpropInput', 'wasm', want.inputGrad ? (orig) => inputGradKernel('wasm', orig) : null);
  swap('BatchMatMul', 'wasm', want.batchMatMul ? (orig) => batchMatMulKernel(orig!) : null);
  for (const name of ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'BatchMatMul']) fixKernels.set(name, getKernel(name, 'wasm'));
  applyLayeredKernels();
  return WASM_FIXES.filter((f) => want[f]);
}

/** The conv-based filter gradient for the pure-JS cpu backend (237 s -> 16 s per ResNet-20 step). */
export function registerCpuFixes(): string[] {
  const off = fixesFromEnv()?.filterGrad === false;
  swap('Conv2DBackpropFilter', 'cpu', off ? null : () => filterGradKernel('cpu'));
  return off ? [] : ['filterGrad'];
}

/** Puts the stock cpu Conv2DBackpropFilter back (for comparisons). */
export function restoreCpuKernels(): void {
  swap('Conv2DBackpropFilter', 'cpu', null);
}

// emscripten pre-spawns 8 pthread workers; more threads would need workers spawned while the
// main thread blocks in pthreadpool_create, which may deadlock (untested; 8 was tested).
const MAX_THREADS = 8;

function requestedThreads(opt: WasmOptions['threads']): number {
  const v = opt ?? process.env.BNLAB_WASM_THREADS ?? 'auto';
  const n = v === 'auto' ? cpuBudget().cpus : Math.floor(Number(v));
  return Number.isFinite(n) && n >= 1 ? Math.min(n, MAX_THREADS) : 1;
}

// Not tf.findBackend(): it starts initialising a registered backend, before our patches.
function wasmInstance(): unknown {
  return (tf.engine() as unknown as { registry: Record<string, unknown> }).registry.wasm;
}

// XNNPACK's pool threads live for the whole process and emscripten ref()s their workers,
// which would keep Node from ever exiting. The main thread waits on them with Atomics, not
// the event loop, so unref() is safe.
function unrefPoolWorkers(): void {
  const pt = (wasmInstance() as { wasm?: { PThread?: Record<string, { unref?(): void }[]> } } | undefined)
    ?.wasm?.PThread;
  if (!pt) return;
  for (const w of [...(pt.runningWorkers ?? []), ...(pt.unusedWorkers ?? [])]) w.unref?.();
}

export async function initWasmBackend(opts: WasmOptions = {}): Promise<WasmInfo> {
  const notes: string[] = [];
  const wasmMod = await import('@tensorflow/tfjs-backend-wasm');
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  let threads = requestedThreads(opts.threads);
  let restore: (() => void) | null = null;

  if (wasmInstance() != null) {
    notes.push('wasm backend already initialised: thread count unchanged');
  } else if (threads > 1) {
    const why = !simd ? 'no wasm SIMD' : threadPatchApplies();
    if (why) {
      notes.push(`threads disabled: ${why}`);
    } else {
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
      wasmMod.setThreadsCount(threads);
      restore = patchForNodeThreads();
    }
  }
  let ok: boolean;
  // Keeps the event loop alive during init: emscripten unref()s each pool worker once it has
  // loaded, and what is left to await (wasm compilation) may hold no handle, so Node can exit
  // mid-await with code 13 (seen once, in CI under load, in the 2-thread test).
  const keepAlive = setInterval(() => {}, 1000);
  try {
    ok = await tf.setBackend('wasm');
  } finally {
    restore?.();
    clearInterval(keepAlive);
  }
  if (!ok && restore) {
    notes.push('threaded wasm failed to initialise: fell back to single-threaded');
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasmMod.setThreadsCount(1);
    ok = await tf.setBackend('wasm');
  }
  if (!ok) throw new Error('bnlab: tf.setBackend("wasm") failed');
  try {
    threads = wasmMod.getThreadsCount();
  } catch {
    threads = 1;
  }
  unrefPoolWorkers();
  const fixes = setWasmFixes(opts.fixes);
  if (!fixes.includes('filterGrad')) notes.push('filterGrad off: conv nets cannot be trained on wasm');
  let kernels: string[] = [];
  try {
    kernels = setWasmKernels(opts.kernels);
    const wanted = kernelsWanted(opts.kernels);
    const native: WasmKernel[] = ['dnnlConv', 'nativeBN', 'fusedSGD', 'fusedEMA', 'nativeEltwise', 'nativeMatMul'];
    if (native.some((k) => wanted[k]) && !loadNative().addon) {
      notes.push(`native kernels (${native.join(', ')}) off: ${loadNative().reason}`);
    }
    // native kernels use as many OpenMP threads as XNNPACK has (BNLAB_NATIVE_THREADS overrides)
    loadNative().addon?.setThreads(Number(process.env.BNLAB_NATIVE_THREADS) || threads);
    if (loadNative().addon) notes.push(ompWaiting);
  } catch (e) {
    setFusedBN(false, 'wasm');
    notes.push(`bnlab wasm kernels off: ${(e as Error).message}`);
  }
  return { simd, threads, fixes, notes, kernels };
}
