// The fused BN kernels on the 2-thread wasm build against the stock tfjs ops, in fresh processes
// (the thread count is fixed once per process).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const probe = (env: Record<string, string>) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, 'helpers', 'grad-probe.ts')], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return { grads: JSON.parse(r.stdout) as Record<string, number[]>, backend: r.stderr };
};

it('fused BatchNorm on 2 threads gives the gradients of the stock ops', () => {
  const fused = probe({ T: '2' });
  const stock = probe({ T: '2', BNLAB_WASM_KERNELS: 'none' });
  expect(fused.backend).toMatch(/2 threads.*own kernels: fusedBN/);
  expect(stock.backend).toMatch(/own kernels: none/);
  for (const [k, a] of Object.entries(fused.grads)) {
    const b = stock.grads[k];
    const norm = Math.hypot(...a) + 1e-12;
    const diff = Math.hypot(...a.map((x, i) => x - b[i]));
    expect(diff / norm, k).toBeLessThan(1e-4);
  }
}, 240_000);
