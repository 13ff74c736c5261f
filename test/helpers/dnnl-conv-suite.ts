// The oneDNN convolution kernels (native addon, src/backend/kernels/conv-dnnl.ts) against the
// stock pure-JS cpu backend: forward, input gradient and filter gradient, on fixed edge cases
// (stride 2, odd/even sizes, asymmetric and explicit pads, 1x1, 7x7, batch 1-2) and random ones,
// under one activation layout policy (BNLAB_CONV_LAYOUT, read once per process by the addon:
// each layout has its own test file, vitest runs files in separate processes).
// CI builds the addon (.ci/run installs libdnnl-dev before npm ci); without it these files fail
// with the reason and the fix, on purpose.
import * as tf from '@tensorflow/tfjs';
import { getKernel } from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { maxRelErr as relErr } from './compare.js';
import { lcg as rng, uniformData as data } from './random.js';
import { convAll, type Case, type Pad } from './conv.js';
import { loadNative } from '../../src/backend/native-addon.js';
import { convDims } from '../../src/backend/kernels/conv-dnnl.js';
import { initWasmBackend, restoreCpuKernels, setWasmKernels } from '../../src/backend/wasm.js';


export type ConvLayout = 'auto' | 'blocked' | 'nhwc';
// oneDNN's AVX-512 kernels: the CPU has them and ONEDNN_MAX_CPU_ISA (if set) allows them
const isaCap = (process.env.ONEDNN_MAX_CPU_ISA ?? '').toUpperCase();
const avx512 = /\bavx512f\b/.test(readFileSync('/proc/cpuinfo', 'utf8')) && (isaCap === '' || isaCap === 'ALL' || isaCap.startsWith('AVX512'));

const fixed: Case[] = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: 'same' },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 2, pad: 'same' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 4], s: 2, pad: 'same' },
  { x: [1, 9, 8, 5], f: [3, 3, 5, 2], s: 2, pad: 'valid' },
  { x: [2, 8, 8, 4], f: [1, 1, 4, 6], s: 2, pad: 'same' },
  { x: [2, 7, 7, 4], f: [1, 1, 4, 6], s: 2, pad: 'valid' },
  { x: [1, 6, 6, 4], f: [1, 1, 4, 6], s: 1, pad: 'same' },
  { x: [2, 15, 16, 3], f: [7, 7, 3, 4], s: 2, pad: 'same' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], s: 2, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [2, 6, 6, 3], f: [1, 1, 3, 2], s: 1, pad: [[0, 0], [1, 0], [0, 1], [0, 0]] },
  { x: [8, 10, 10, 16], f: [3, 3, 16, 32], s: 1, pad: 'same' }, // blocked layouts (8/16 channels)
  { x: [4, 12, 12, 32], f: [3, 3, 32, 64], s: 2, pad: 'same' },
  // channel counts off oneDNN's vector block at batch 32: the AVX2 NHWC filter gradient of a
  // 1x1 stride-2 conv (4 -> 8, 3 -> 6) overflowed a buffer of oneDNN's own here (issue 27)
  { x: [32, 14, 14, 4], f: [1, 1, 4, 8], s: 2, pad: 'valid' },
  { x: [32, 14, 14, 3], f: [1, 1, 3, 6], s: 2, pad: 'valid' },
  { x: [32, 14, 14, 6], f: [3, 3, 6, 12], s: 2, pad: 'same' },
  { x: [32, 7, 7, 20], f: [3, 3, 20, 12], s: 1, pad: 'same' },
];

function randomCases(n: number): Case[] {
  const r = rng(7);
  const pick = <T,>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  return Array.from({ length: n }, () => {
    const k = pick([1, 3, 3, 5]);
    const h = k + Math.floor(r() * 9), w = k + Math.floor(r() * 9);
    const ci = pick([1, 3, 8, 17]), co = pick([2, 8, 16, 24]);
    return { x: [pick([1, 2, 3]), h, w, ci], f: [k, k, ci, co], s: pick([1, 2]), pad: pick<Pad>(['same', 'valid']) };
  });
}

/** The whole suite with the addon's BNLAB_CONV_LAYOUT set to `layout` (before it loads). */
export function dnnlConvSuite(layout: ConvLayout, isa?: 'AVX2'): void {
// oneDNN reads ONEDNN_MAX_CPU_ISA once, at its first dispatch: set before the addon loads
if (isa) process.env.ONEDNN_MAX_CPU_ISA = isa;
if (layout === 'auto') delete process.env.BNLAB_CONV_LAYOUT;
else process.env.BNLAB_CONV_LAYOUT = layout;

beforeAll(async () => {
  const { addon, reason } = loadNative();
  if (!addon) throw new Error(`native oneDNN addon ${reason}`);
  const info = await initWasmBackend({ threads: 1 });
  expect(info.kernels).toContain('dnnlConv');
  restoreCpuKernels();
});

describe(`oneDNN conv kernels on wasm match stock cpu (activations ${layout}${isa ? `, ISA at most ${isa}` : ''})`, () => {
  it.each([...fixed, ...randomCases(16)].map((c, i) => [i, JSON.stringify(c), c] as const))(
    'case %i %s', (i, _name, c) => {
      const cpu = convAll('cpu', c, 11 * i);
      const wasm = convAll('wasm', c, 11 * i);
      expect(relErr(wasm[0], cpu[0]), 'y').toBeLessThan(1e-5);
      expect(relErr(wasm[1], cpu[1]), 'dx').toBeLessThan(1e-5);
      expect(relErr(wasm[2], cpu[2]), 'dfilter').toBeLessThan(1e-5);
    }, 30_000); // the stock cpu reference of the larger cases: ~1 s alone, past 5 s on a busy machine

  it(`runs oneDNN (not a fallback) for the fixed cases, activations ${layout}`, () => {
    const { addon } = loadNative();
    for (const c of fixed) {
      const dims = convDims(c.x, c.f, { strides: c.s, pad: c.pad, dataFormat: 'NHWC' });
      expect(dims, JSON.stringify(c)).not.toBeNull();
      for (const kind of [0, 1, 2]) {
        const impl = addon!.impl(kind, dims!);
        expect(impl).toMatch(/^\S*(jit|brg|gemm|ref)\S* (nhwc|blocked)$/);
        if (layout === 'blocked') expect(impl).toMatch(/blocked$/);
        // NHWC only with AVX-512 JIT kernels (auto), or GEMM/reference code too (forced nhwc):
        // oneDNN 2.6.3's AVX2 NHWC kernels overflow a buffer of their own (issue 27)
        if (impl.endsWith('nhwc')) expect(impl).toMatch(layout === 'auto' ? /avx512/ : /avx512|gemm|ref/);
        if (layout === 'nhwc' && !/avx512/.test(impl) && /^(jit|brg)/.test(impl)) expect(impl).toMatch(/blocked$/);
      }
    }
    // 16 -> 32 channels: direct JIT kernels in either layout; NHWC ones on AVX-512 (auto)
    const big = convDims([8, 10, 10, 16], [3, 3, 16, 32], { strides: 1, pad: 'same', dataFormat: 'NHWC' })!;
    for (const kind of [0, 1, 2]) {
      const impl = addon!.impl(kind, big);
      if (layout !== 'nhwc' || (avx512 && !isa)) expect(impl).toMatch(/^(jit|brg)/);
      if (layout === 'auto' && avx512 && !isa) expect(impl).toMatch(/nhwc$/);
      if (isa) expect(impl).not.toMatch(/avx512/);
    }
  });

  it('reuses the blocked dy only for the same tensor (same geometry, new dy at a reused offset)', () => {
    // Both gradients of a conv read the same dy; the addon keeps its blocked copy keyed by a
    // token of the tfjs data buffer. Run one geometry repeatedly with fresh dy tensors (freed
    // in between, so the heap offset is reused): a cache keyed on anything weaker goes stale.
    const c = fixed[10];
    for (let k = 0; k < 3; k++) {
      const cpu = convAll('cpu', c, 100 + k);
      const wasm = convAll('wasm', c, 100 + k);
      expect(relErr(wasm[1], cpu[1]), `dx ${k}`).toBeLessThan(1e-5);
      expect(relErr(wasm[2], cpu[2]), `dfilter ${k}`).toBeLessThan(1e-5);
    }
  }, 30_000); // ~1.4 s alone: the cpu backend's reference convs; vitest's 5 s default failed once beside other files

  it('falls back for dilated convs and still matches', () => {
    const run = (b: string) => {
      tf.setBackend(b);
      return tf.tidy(() => tf.conv2d(tf.tensor4d(data([1, 9, 9, 2], 1), [1, 9, 9, 2]),
        tf.tensor4d(data([3, 3, 2, 3], 2), [3, 3, 2, 3]), 1, 'same', 'NHWC', 2).dataSync());
    };
    expect(convDims([1, 9, 9, 2], [3, 3, 2, 3], { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 2 })).toBeNull();
    expect(relErr(run('wasm'), run('cpu'))).toBeLessThan(1e-5);
  });

  it('frees what it allocates', () => {
    tf.setBackend('wasm');
    convAll('wasm', fixed[2], 1);
    const before = tf.backend().numDataIds();
    for (const c of fixed) convAll('wasm', c, 3);
    expect(tf.backend().numDataIds()).toBe(before);
  });

  it('switches off (option and BNLAB_WASM_KERNELS) back to the XNNPACK path', () => {
    const on = getKernel('Conv2D', 'wasm');
    try {
      expect(setWasmKernels({ dnnlConv: false })).not.toContain('dnnlConv');
      expect(getKernel('Conv2D', 'wasm')).not.toBe(on);
      expect(relErr(convAll('wasm', fixed[1], 5)[2], convAll('cpu', fixed[1], 5)[2])).toBeLessThan(1e-5);
      process.env.BNLAB_WASM_KERNELS = 'fusedBN,dnnlConv';
      expect(setWasmKernels()).toEqual(['fusedBN', 'dnnlConv']);
    } finally {
      delete process.env.BNLAB_WASM_KERNELS;
      expect(setWasmKernels()).toContain('dnnlConv');
    }
  });
});
}
