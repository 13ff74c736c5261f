// Start-up of unattended runs (issue 12, sections 1-2): the threaded wasm loader cannot hang on a
// half-written worker script, a start-up that does hang is bounded by the watchdog, and thread
// pools are sized from the CPUs the process may use (affinity, cgroup quota, Slurm).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StartupTimeout, withDeadline } from '../src/backend/watchdog.js';
import { cgroupQuota, parseCfsQuota, parseCpuMax } from '../src/util/cpus.js';

const ROOT = join(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('threaded wasm start-up', () => {
  it('starts even when every write of the worker script is slow (a worker reading it mid-write hung start-up)', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', './test/fixtures/slow-worker-write.mjs', 'scripts/stress-startup.child.ts', 'wasm', '2'], {
      cwd: ROOT, encoding: 'utf8', timeout: 90_000, env: { ...process.env, BNLAB_BACKEND_TIMEOUT_S: '60' },
    });
    expect(r.stderr).not.toMatch(/did not initialise/);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ok wasm threads=2 /);
  }, 120_000);
});

describe('start-up watchdog', () => {
  it('rejects a start-up that never finishes, naming what is pending and the fix', async () => {
    const t0 = Date.now();
    const never = new Promise<never>(() => {});
    const err = await withDeadline(never, 0.2, 'the wasm backend', () => '3 pool workers started, 2 loaded the wasm module').catch((e) => e);
    expect(err).toBeInstanceOf(StartupTimeout);
    expect(err.message).toMatch(/the wasm backend did not initialise within 0.2 s \(3 pool workers started, 2 loaded/);
    expect(err.message).toMatch(/run the command again/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('passes a start-up that finishes through', async () => {
    expect(await withDeadline(Promise.resolve(42), 5, 'x', () => '')).toBe(42);
  });

  it('kills a process whose main thread is blocked and cannot run its own timer', () => {
    const code = `
      import { withDeadline } from './src/backend/watchdog.ts';
      withDeadline(new Promise(() => {}), 0.3, 'the wasm backend', () => '', 0.3);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000);
      console.log('not killed');`;
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout).not.toMatch(/not killed/);
    expect(r.stderr).toMatch(/the wasm backend did not initialise within 0.3 s \(main thread blocked; process killed\)/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 40_000);
});

describe('CPU budget', () => {
  it('reads cgroup v2 cpu.max and v1 CFS quotas as CPUs', () => {
    expect(parseCpuMax('max 100000\n')).toBeNull();
    expect(parseCpuMax('150000 100000\n')).toBe(1.5);
    expect(parseCpuMax('200000 50000')).toBe(4);
    expect(parseCfsQuota('-1\n', '100000\n')).toBeNull();
    expect(parseCfsQuota('50000', '100000')).toBe(0.5);
  });

  it('takes the tightest quota of the cgroup and its ancestors (v2 and v1)', () => {
    const v2 = join(dir, 'v2');
    mkdirSync(join(v2, 'job', 'step'), { recursive: true });
    writeFileSync(join(v2, 'job', 'cpu.max'), '100000 100000\n');
    writeFileSync(join(v2, 'job', 'step', 'cpu.max'), 'max 100000\n');
    expect(cgroupQuota(v2, '0::/job/step\n')).toBe(1);
    expect(cgroupQuota(v2, '0::/\n')).toBeNull();

    const v1 = join(dir, 'v1');
    mkdirSync(join(v1, 'cpu,cpuacct', 'slurm', 'job1'), { recursive: true });
    writeFileSync(join(v1, 'cpu,cpuacct', 'slurm', 'job1', 'cpu.cfs_quota_us'), '300000\n');
    writeFileSync(join(v1, 'cpu,cpuacct', 'slurm', 'job1', 'cpu.cfs_period_us'), '100000\n');
    writeFileSync(join(v1, 'cpu,cpuacct', 'cpu.cfs_quota_us'), '-1\n');
    writeFileSync(join(v1, 'cpu,cpuacct', 'cpu.cfs_period_us'), '100000\n');
    expect(cgroupQuota(v1, '5:memory:/x\n4:cpu,cpuacct:/slurm/job1\n')).toBe(3);
    expect(cgroupQuota(v1, '4:memory:/slurm/job1\n')).toBeNull();
  });

  it('says in the log how many threads were chosen and why', () => {
    const r = spawnSync(process.execPath, ['bin/bnlab.js', 'doctor'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, SLURM_CPUS_PER_TASK: '1' } });
    expect(r.stdout + r.stderr).toMatch(/CPUs: 1 \(.*SLURM_CPUS_PER_TASK=1/);
  }, 70_000);
});
