// Unattended runs: one writer per run folder, checkpoints verified on read, metrics.csv checked
// against the checkpoint's epoch history, recovery from a run killed before its first checkpoint.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, firstNonFinite, readCheckpoint, writeCheckpoint } from '../src/run/checkpoint.js';
import { acquireLock, LockError, lockState } from '../src/run/lock.js';
import { restoreMetrics, writeMetrics } from '../src/run/metrics.js';
import { runPaths } from '../src/run/paths.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-rel-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, BNLAB_WASM_THREADS: '1' };
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env });
const tiny = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=128', '--set', 'data.synthetic.size=8',
  '--set', 'model.width=4', '--set', 'optim.batch_size=32', '--set', 'bn.nbs=8', '--set', 'precise.samples=64', '--quiet',
];
const noTiming = (csv: string) => csv.split('\n').map((l) => l.split(',').filter((_, i) => ![6, 7, 8].includes(i)).join(',')).join('\n');

describe('checkpoint verification', () => {
  const ckpt = () => ({ meta: { epoch: 2 }, tensors: new Map([['param/a', { shape: [3], data: Float32Array.from([1, 2, 3]) }], ['param/b', { shape: [2], data: Float32Array.from([4, 5]) }]]) });

  it('round-trips, and any changed byte of the header or a tensor is refused naming the file', () => {
    const f = join(dir, 'c.ckpt');
    writeCheckpoint(f, ckpt());
    expect([...readCheckpoint(f).tensors.get('param/b')!.data]).toEqual([4, 5]);
    const good = readFileSync(f);
    const flips = [good.length - 1, good.length - 9, 60]; // param/b, param/a, inside the header
    for (const at of flips) {
      const bad = Buffer.from(good);
      bad[at] ^= 0x01;
      writeFileSync(f, bad);
      expect(() => readCheckpoint(f)).toThrow(CheckpointError);
      expect(() => readCheckpoint(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*(damaged|JSON)`));
    }
  });

  it('finds non-finite values', () => {
    const c = ckpt();
    expect(firstNonFinite(c)).toBeNull();
    c.tensors.get('param/b')!.data[1] = NaN;
    expect(firstNonFinite(c)).toBe('param/b[1] = NaN');
  });
});

describe('run-folder lock', () => {
  it('refuses a second writer naming the holder, takes over a stale lock, releases its own', async () => {
    const f = join(dir, 'lock');
    const release = await acquireLock(f, 'bnlab train');
    await expect(acquireLock(f, 'bnlab train')).rejects.toThrow(new RegExp(`held by PID ${process.pid} on ${hostname()}`));
    release();
    expect(existsSync(f)).toBe(false);
    // A lock left by a process that is gone (PID 2^22 + 1 is above Linux's pid_max).
    writeFileSync(f, JSON.stringify({ pid: 4194305, host: hostname(), started: 'then', command: 'bnlab train' }));
    const notes: string[] = [];
    const r2 = await acquireLock(f, 'bnlab train', { onStale: (m) => notes.push(m) });
    expect(notes[0]).toMatch(/stale lock .* PID 4194305/);
    r2();
    // Another host's lock cannot be checked: refused, saying how to clear it.
    writeFileSync(f, JSON.stringify({ pid: 1, host: 'elsewhere', started: 'then', command: 'bnlab train' }));
    await expect(acquireLock(f, 'x')).rejects.toThrow(LockError);
    await expect(acquireLock(f, 'x')).rejects.toThrow(/on elsewhere.*delete/);
  });

  it('bnlab train refuses to write into a folder a live run holds, and that run finishes intact', async () => {
    const out = join(dir, 'live');
    // Long enough to outlive the three refused writers; stopped by Ctrl-C afterwards.
    const child = spawn(process.execPath, [BIN, 'train', ...tiny, '--set', 'epochs=400', '--out', out], { env });
    const done = new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1)));
    for (let i = 0; i < 600 && !existsSync(runPaths(out).lock); i++) await new Promise((r) => setTimeout(r, 50));
    for (const extra of [[], ['--overwrite'], ['--resume']]) {
      const r = run(['train', ...tiny, '--set', 'epochs=400', '--out', out, ...extra]);
      expect(r.status, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`held by PID ${child.pid}`));
    }
    child.kill('SIGINT');
    expect(await done).toBe(130);
    const epochs = readFileSync(runPaths(out).metrics, 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[0]));
    expect(epochs.length).toBeGreaterThan(0);
    expect(epochs).toEqual(epochs.map((_, i) => i + 1)); // each epoch once, in order: one writer
    expect(existsSync(runPaths(out).lock)).toBe(false);
  }, 120_000);

  it('a lock from another host: live while its heartbeat is fresh, stale 10 min after it stopped; a requeued Slurm task takes over its own', async () => {
    const f = join(dir, 'lock-remote');
    const holder = { pid: 12345, host: 'node17', started: new Date().toISOString(), command: 'bnlab train' };
    writeFileSync(f, JSON.stringify(holder));
    expect(lockState(f)).toBe('elsewhere');
    await expect(acquireLock(f, 'bnlab train')).rejects.toThrow(/held by PID 12345 on node17.*stale 10 min after its last heartbeat/);
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(f, old, old);
    expect(lockState(f)).toBe('stale');
    const notes: string[] = [];
    (await acquireLock(f, 'bnlab train', { onStale: (m) => notes.push(m) }))();
    expect(notes[0]).toMatch(/node17.*heartbeat stopped 11 min ago/);
    // The same Slurm job, an earlier attempt (restart 0), on another node, heartbeat fresh:
    writeFileSync(f, JSON.stringify({ ...holder, slurm: { job: '4242', restart: '0' } }));
    const saved = { ...process.env };
    Object.assign(process.env, { SLURM_JOB_ID: '4242', SLURM_RESTART_COUNT: '1' });
    try {
      (await acquireLock(f, 'bnlab train', { onStale: (m) => notes.push(m) }))();
      expect(notes[1]).toMatch(/earlier run of this Slurm job \(4242, restart 0; this is restart 1\)/);
      // ... while another job's lock on that node is not ours to take
      writeFileSync(f, JSON.stringify({ ...holder, slurm: { job: '999', restart: '0' } }));
      await expect(acquireLock(f, 'bnlab train')).rejects.toThrow(/held by PID 12345/);
    } finally {
      for (const k of ['SLURM_JOB_ID', 'SLURM_RESTART_COUNT']) if (saved[k] === undefined) delete process.env[k];
      rmSync(f, { force: true });
    }
  });
});

describe('metrics.csv against the checkpoint history', () => {
  const history = [['1', 'a'], ['2', 'b']].map(([e, v]) => [e, v, '', '', '', '', '', '', '', '', '', 'batch']);
  it('rebuilds a missing, truncated or edited file and drops rows past the checkpoint', () => {
    const f = join(dir, 'm.csv');
    rmSync(f, { force: true });
    expect(restoreMetrics(f, 2, history)).toMatch(/rebuilt .*epochs 1 2/);
    const want = readFileSync(f, 'utf8');
    expect(restoreMetrics(f, 2, history)).toBeNull();
    writeMetrics(f, history.slice(0, 1));
    expect(restoreMetrics(f, 2, history)).toMatch(/had epochs 1, the checkpoint 1 2/);
    expect(readFileSync(f, 'utf8')).toBe(want);
    writeMetrics(f, [...history, ['3', ...history[0].slice(1)]]);
    expect(restoreMetrics(f, 2, history)).toMatch(/had epochs 1 2 3/);
    expect(readFileSync(f, 'utf8')).toBe(want);
  });
});

describe('resume after damage (CLI)', () => {
  it('a damaged last.ckpt falls back to the newest good epoch checkpoint; deleted metrics.csv is rebuilt; result equals an undamaged run', () => {
    const ref = join(dir, 'ref');
    expect(run(['train', ...tiny, '--set', 'epochs=3', '--out', ref]).status).toBe(0);
    const out = join(dir, 'dmg');
    expect(run(['train', ...tiny, '--set', 'epochs=2', '--out', out]).status).toBe(0);
    const p = runPaths(out);
    const bytes = readFileSync(p.last);
    bytes[bytes.length - 100] ^= 0xff; // a conv weight... somewhere in the tensor data
    writeFileSync(p.last, bytes);
    expect(readCheckpoint(p.epoch(2)).tensors.size).toBeGreaterThan(0); // last.ckpt is a copy, not a link
    rmSync(p.metrics);
    const r = run(['train', '--resume', '--out', out, '--set', 'epochs=3']);
    expect(r.status, r.stderr).toBe(0);
    const log = readFileSync(p.log, 'utf8');
    expect(log).toMatch(/refused .*last\.ckpt: tensor .* is damaged/);
    expect(log).toMatch(/resuming from .*epoch-0002\.ckpt instead of .*last\.ckpt/);
    expect(log).toMatch(/metrics\.csv rebuilt from the checkpoint's history/);
    expect(noTiming(readFileSync(p.metrics, 'utf8'))).toBe(noTiming(readFileSync(runPaths(ref).metrics, 'utf8')));
  }, 180_000);

  it('a NaN written into a weight is refused at resume; with every checkpoint damaged the run is refused, exit != 0', () => {
    const out = join(dir, 'nan');
    expect(run(['train', ...tiny, '--set', 'epochs=1', '--out', out]).status).toBe(0);
    const p = runPaths(out);
    const c = readCheckpoint(p.last);
    c.tensors.values().next().value!.data[0] = NaN;
    for (const f of [p.last, p.epoch(1)]) writeCheckpoint(f, c);
    const r = run(['train', '--resume', '--out', out, '--set', 'epochs=2']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no checkpoint .* can be trusted[\s\S]*non-finite value[\s\S]*--overwrite/);
    expect(readFileSync(p.log, 'utf8')).toMatch(/error: --resume: no checkpoint/); // errors reach train.log too
  }, 120_000);

  it('killed before its first checkpoint: --resume starts from the beginning, saying so; --resume --overwrite is refused', () => {
    const out = join(dir, 'early');
    expect(run(['train', ...tiny, '--set', 'epochs=1', '--out', out]).status).toBe(0);
    // What a kill during epoch 1 leaves: config.yaml, train.log, a half-written checkpoint.
    rmSync(join(out, 'checkpoints'), { recursive: true });
    rmSync(join(out, 'metrics.csv'));
    mkdirSync(join(out, 'checkpoints'));
    writeFileSync(join(out, 'checkpoints', 'epoch-0001.ckpt.tmp-999999'), 'half');
    const r = run(['train', '--resume', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(runPaths(out).log, 'utf8')).toMatch(/no checkpoint yet; starting the run from the beginning/);
    expect(readdirSync(join(out, 'checkpoints')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const both = run(['train', '--resume', '--overwrite', '--out', out]);
    expect(both.status).toBe(2);
    expect(both.stderr).toMatch(/--resume and --overwrite contradict/);
    expect(readFileSync(runPaths(out).metrics, 'utf8').trim().split('\n')).toHaveLength(2);
  }, 120_000);
});
