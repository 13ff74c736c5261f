// The optional native addon (native/addon, built by scripts/build-native.sh at `npm ci` when
// libdnnl-dev is installed): oneDNN convolutions and OpenMP BatchNorm working in place on the
// wasm heap (offsets are byte offsets into `heap`, the backend's memory).
// Loading it is all this file does; never required, reported by `bnlab doctor`.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  /** kind 0 forward (x,w,y), 1 backward data (dy,w,dx), 2 backward weights (x,dy,dw);
   *  dyToken > 0 names dy's data (never reused) so the two gradients share its blocked copy */
  conv(kind: number, heap: Uint8Array, offA: number, offB: number, offC: number, dims: Int32Array, dyToken: number): void;
  impl(kind: number, dims: Int32Array): string;
  /** src/backend/native/bn.c's bn_forward / bn_backward / bn_apply without the scratch pointers */
  bnForward(heap: Uint8Array, ...args: number[]): void;
  bnBackward(heap: Uint8Array, ...args: number[]): void;
  bnApply(heap: Uint8Array, ...args: number[]): void;
  /** bnApplyAddRelu(heap, x, z, y, scale, shift, rows, C): y = relu(x*scale + shift + z), native/addon/bn.cc */
  bnApplyAddRelu(heap: Uint8Array, ...args: number[]): void;
  /** sgd(heap, w, g, v, wOut, vOut, n, lr, momentum, wd, nesterov): native/addon/sgd.cc */
  sgd(heap: Uint8Array, ...args: number[]): void;
  /** ema(heap, mean, var, obsMean, obsVar, meanOut, varOut, C, G, decay, counts): native/addon/ema.cc */
  ema(heap: Uint8Array, ...args: [...number[], Float64Array]): void;
  /** addRelu(heap, a, b, y, n) / reluGrad(heap, dy, y, dx, n): native/addon/eltwise.cc */
  addRelu(heap: Uint8Array, a: number, b: number, out: number, n: number): void;
  reluGrad(heap: Uint8Array, a: number, b: number, out: number, n: number): void;
  /** matmul(heap, a, b, c, batchA, batchB, M, N, K, transA, transB): native/addon/matmul.cc */
  matmul(heap: Uint8Array, ...args: number[]): void;
  /** gap(heap, x, y, B, HW, C) / gapGrad(heap, dy, dx, B, HW, C): global average pooling */
  gap(heap: Uint8Array, ...args: number[]): void;
  gapGrad(heap: Uint8Array, ...args: number[]): void;
  /** maxPoolGrad(heap, x, dy, dx, B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl): native/addon/pool.cc */
  maxPoolGrad(heap: Uint8Array, ...args: number[]): void;
  /** add(heap, a, b, y, n): y = a + b, same sizes */
  add(heap: Uint8Array, a: number, b: number, out: number, n: number): void;
  setThreads(n: number): void;
  version(): string;
}

export const NATIVE_ADDON_PATH = fileURLToPath(new URL('../../native/addon/bnlab_native.node', import.meta.url));

let cached: { addon: NativeAddon | null; reason: string } | null = null;

/**
 * How OpenMP threads wait, set before libgomp loads with the addon (it reads the environment
 * once, then). By default libgomp spins ~300k iterations at every barrier before sleeping; when
 * another process shares the cores (a second run, a Slurm neighbour), the spinning thread burns
 * the time slice the other needs. Measured with scripts/bench-shared-cores.sh, two default runs
 * on 2 cores, each as a share of one run alone: 18-21% with libgomp's default, 50-56% with 2000
 * spins, 73-88% with OMP_WAIT_POLICY=passive; alone, passive costs ~25% and 2000 spins nothing
 * measurable. A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone.
 */
export const OMP_SPIN_DEFAULT = '2000';
function setOmpWaiting(): string {
  const { OMP_WAIT_POLICY: policy, GOMP_SPINCOUNT: spin } = process.env;
  if (policy !== undefined || spin !== undefined) return `OpenMP waiting as set: ${policy !== undefined ? `OMP_WAIT_POLICY=${policy}` : ''} ${spin !== undefined ? `GOMP_SPINCOUNT=${spin}` : ''}`.trim();
  process.env.GOMP_SPINCOUNT = OMP_SPIN_DEFAULT;
  return `OpenMP threads spin ${OMP_SPIN_DEFAULT} iterations, then sleep (GOMP_SPINCOUNT; cores may be shared)`;
}
export let ompWaiting = '';

/** BNLAB_CONV_LAYOUT: activations NHWC where oneDNN has direct kernels for it (auto), always
 *  oneDNN's blocked layouts with reorders (blocked, the AVX2 choice), or always NHWC. */
export const CONV_LAYOUTS = ['auto', 'blocked', 'nhwc'];
/** What is wrong with BNLAB_CONV_LAYOUT and the fix, or null (bnlab's CLI checks it first). */
export function convLayoutProblem(v = process.env.BNLAB_CONV_LAYOUT): string | null {
  return v && !CONV_LAYOUTS.includes(v) ? `BNLAB_CONV_LAYOUT=${v} is not a convolution layout: use ${CONV_LAYOUTS.join(', ')} (or unset it for auto)` : null;
}

/** The addon, or null with the reason it is unavailable (and the fix). */
export function loadNative(): { addon: NativeAddon | null; reason: string } {
  if (cached) return cached;
  // read by native/addon/conv.cc, which would take anything but nhwc/auto as blocked
  const bad = convLayoutProblem();
  if (bad) return (cached = { addon: null, reason: bad });
  ompWaiting = setOmpWaiting();
  try {
    const addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeAddon;
    cached = { addon, reason: addon.version() };
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    const fix = /cannot find module/i.test(msg)
      ? 'not built: apt-get install -y g++ libdnnl-dev && npm run build:native'
      : `failed to load (${msg}); rebuild with npm run build:native`;
    cached = { addon: null, reason: fix };
  }
  return cached;
}
