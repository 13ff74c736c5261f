// scripts/gpu-golden.ts without a GPU: goldens written on the fake device and replayed on a fresh
// fake device must match bit for bit (ops and whole training runs), and a golden nudged off by
// less than any tolerance must fail its case, and only that one. What a GPU adds is run by
// scripts/gpu-check.sh on a GPU machine.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { compare, readCases, TOLERANCES } from '../scripts/gpu/ops.js';
import { tempDirs } from './helpers/run.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const golden = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'gpu-golden.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
const tmp = tempDirs('bnlab-golden-');

describe('gpu-golden on the fake device', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmp();
    const w = golden('--write', dir);
    expect(w.status, w.stderr).toBe(0);
    expect(w.stdout).toMatch(/wrote \d+ op cases .* and 2 training runs/);
  }, 240_000);

  it('covers every Device method and stays small enough to carry', () => {
    const ops = new Set(readCases(dir).map((c) => c.op));
    for (const m of ['conv', 'bnForward', 'bnBackward', 'bnApply', 'bnApplyAddRelu', 'sgd', 'ema', 'addRelu', 'reluGrad', 'matmul', 'gap', 'gapGrad', 'maxPool', 'maxPoolGrad',
      'unary', 'binary', 'reduce', 'cast', 'slice', 'transpose', 'oneHot', 'fill', 'copy']) expect(ops, m).toContain(m);
    const size = (d: string): number => readdirSync(d, { withFileTypes: true }).reduce((a, e) => a + (e.isDirectory() ? size(join(d, e.name)) : statSync(join(d, e.name)).size), 0);
    expect(size(dir)).toBeLessThan(8.5 * 2 ** 20); // the bundle carries them within 64 MiB
  });

  it('replays every case exactly (fake against its own goldens)', () => {
    const r = golden('--check', dir, '--fake');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => /^(PASS|FAIL) /.test(l));
    expect(lines.length).toBe(readCases(dir).length);
    for (const l of lines) expect(l).toMatch(/^PASS .* err\s+0\s+tol\s+0 /);
  }, 120_000);

  it('replays both training runs exactly', () => {
    const r = golden('--step', dir, '--fake');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^PASS {2}run 0 .*\nPASS {2}run 1 /m);
    expect(r.stdout).toContain('runs: 2 runs, 2 PASS, 0 FAIL');
  }, 120_000);

  it('fails the one case whose golden is nudged, naming the element', () => {
    const c = readCases(dir).find((x) => x.id === 'bnForward-G1-M512-C64')!;
    const file = join(dir, 'ops', c.bufs.y.golden!);
    const y = new Float32Array(new Uint8Array(readFileSync(file)).buffer);
    const scale = y.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    y[100] += scale * 1e-6; // a tenth of the float tolerance
    writeFileSync(file, new Uint8Array(y.buffer));
    const r = golden('--check', dir, '--fake');
    expect(r.status).toBe(1);
    const failed = r.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/^FAIL {2}bnForward-G1-M512-C64 .* y: worst element 100:/);
    expect(r.stdout).toMatch(/ops: \d+ cases, \d+ PASS, 1 FAIL/);
  }, 120_000);

  it('fails a run whose recorded loss is changed', () => {
    const file = join(dir, 'runs', '0', 'metrics.csv');
    const [head, ...rows] = readFileSync(file, 'utf8').trim().split('\n');
    const col = head.split(',').indexOf('train_loss');
    const cells = rows[0].split(',');
    cells[col] = String(+cells[col] * 1.01);
    writeFileSync(file, [head, cells.join(','), ...rows.slice(1)].join('\n') + '\n');
    const r = golden('--step', dir, '--fake');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL {2}run 0 .*\n {2}epoch 1 train_loss: /m);
    expect(r.stdout).toMatch(/^PASS {2}run 1 /m);
  }, 120_000);
});

describe('golden comparison', () => {
  const f = (...v: number[]) => Float32Array.from(v);
  it('is relative to the largest magnitude, and NaN and infinities must match exactly', () => {
    expect(compare(f(100, 1), f(100, 1.001)).err).toBeCloseTo(1e-5, 8);
    expect(compare(f(NaN, Infinity, 2), f(NaN, Infinity, 2)).err).toBe(0);
    expect(compare(f(NaN, 2), f(0, 2)).err).toBe(Infinity);
    expect(compare(f(1, 2), f(1, NaN)).err).toBe(Infinity);
    expect(compare(f(-Infinity), f(Infinity)).err).toBe(Infinity);
    expect(compare(f(0, 0), f(0, 1e-9)).err).toBeCloseTo(1e-9, 15); // all-zero golden: absolute
  });
  it('keeps the stated tolerances', () => {
    expect(TOLERANCES.off).toEqual({ gemm: 1e-4, float: 1e-5, exact: 0 });
    expect(TOLERANCES.on).toEqual({ gemm: 5e-3, float: 1e-5, exact: 0 });
  });
});
