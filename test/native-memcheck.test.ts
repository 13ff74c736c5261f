// Every native kernel at channel counts off oneDNN's vector block (scripts/native-memcheck.mjs:
// float64 references, canary bands around every tensor) on 1 and 2 threads, at the host's ISA
// and held to AVX2, each in its own process (oneDNN reads ONEDNN_MAX_CPU_ISA once). The same
// script runs under valgrind in .ci/run (scripts/native-memcheck.sh).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../scripts/native-memcheck.mjs', import.meta.url));

describe('native kernels at awkward shapes against float64', () => {
  it.each([
    ['native', 1], ['native', 2], ['AVX2', 1], ['AVX2', 2],
  ] as const)('ISA %s, %i thread(s)', (isa, threads) => {
    const env = { ...process.env };
    delete env.ONEDNN_MAX_CPU_ISA;
    if (isa !== 'native') env.ONEDNN_MAX_CPU_ISA = isa;
    const r = spawnSync(process.execPath, [script, '--threads', String(threads)], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.stdout + r.stderr).toMatch(/native-memcheck: \d{3,} checks, 0 failed/);
    expect(r.status).toBe(0);
  }, 130_000);
});
