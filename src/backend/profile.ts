// Per-kernel time of a piece of work on the current backend. tf.profile gives kernel names but
// no timings on wasm (kernelMs is 0/undefined there), so every kernel registered for the backend
// is wrapped with a wall-clock timer for the duration of the call. Kernels are synchronous on
// wasm and cpu (XNNPACK's pool threads are joined before the call returns), so wall time is the
// kernel's time. Composite kernels (ours call other kernels by registry lookup) are charged
// their *self* time; the nested kernels are charged to themselves.
import { getKernelsForBackend, registerKernel, unregisterKernel, type KernelConfig, type KernelFunc } from '@tensorflow/tfjs-core';

export interface KernelTime { kernel: string; calls: number; ms: number }

export interface KernelProfile {
  /** wall time of fn() */
  totalMs: number;
  /** per kernel, self time, sorted descending */
  kernels: KernelTime[];
}

export function profileKernels(backendName: string, fn: () => void): KernelProfile {
  const originals = getKernelsForBackend(backendName);
  const acc = new Map<string, KernelTime>();
  const childMs: number[] = []; // stack of time spent in nested kernels
  const wrap = (k: KernelConfig): KernelConfig => {
    const kernelFunc = ((args) => {
      childMs.push(0);
      const t0 = performance.now();
      try {
        return k.kernelFunc(args);
      } finally {
        const dt = performance.now() - t0;
        const nested = childMs.pop()!;
        if (childMs.length) childMs[childMs.length - 1] += dt;
        const e = acc.get(k.kernelName) ?? { kernel: k.kernelName, calls: 0, ms: 0 };
        e.calls++;
        e.ms += dt - nested;
        acc.set(k.kernelName, e);
      }
    }) as KernelFunc;
    return { ...k, kernelFunc };
  };
  for (const k of originals) {
    unregisterKernel(k.kernelName, backendName);
    registerKernel(wrap(k));
  }
  const t = performance.now();
  try {
    fn();
  } finally {
    for (const k of originals) {
      unregisterKernel(k.kernelName, backendName);
      registerKernel(k);
    }
  }
  const totalMs = performance.now() - t;
  return { totalMs, kernels: [...acc.values()].sort((a, b) => b.ms - a.ms) };
}

/** A table: kernel, calls, ms, share of the wall time; the remainder is JS/engine overhead. */
export function formatProfile(p: KernelProfile, top = 25): string {
  const inKernels = p.kernels.reduce((a, k) => a + k.ms, 0);
  const rows = p.kernels.slice(0, top).map((k) => [k.kernel, String(k.calls), k.ms.toFixed(1), ((100 * k.ms) / p.totalMs).toFixed(1) + '%']);
  const rest = p.kernels.slice(top);
  if (rest.length) {
    const ms = rest.reduce((a, k) => a + k.ms, 0);
    rows.push([`(${rest.length} other kernels)`, String(rest.reduce((a, k) => a + k.calls, 0)), ms.toFixed(1), ((100 * ms) / p.totalMs).toFixed(1) + '%']);
  }
  const outside = p.totalMs - inKernels;
  rows.push(['(outside kernels: engine, tape, JS)', '', outside.toFixed(1), ((100 * outside) / p.totalMs).toFixed(1) + '%']);
  rows.push(['total', String(p.kernels.reduce((a, k) => a + k.calls, 0)), p.totalMs.toFixed(1), '100%']);
  const w = [Math.max(6, ...rows.map((r) => r[0].length)), 6, 9, 7];
  const line = (r: string[]) => r[0].padEnd(w[0]) + ' ' + r[1].padStart(w[1]) + ' ' + r[2].padStart(w[2]) + ' ' + r[3].padStart(w[3]);
  return [line(['kernel', 'calls', 'ms', 'share']), ...rows.map(line)].join('\n');
}
