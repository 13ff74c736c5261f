// bnlab train --fork and sweep forks: a run that starts from another run's checkpoint at the end
// of an epoch must equal the same run trained from scratch, bit for bit; a fork whose config
// differs before that epoch is refused.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { readCheckpoint } from '../src/run/checkpoint.js';
import { readMetrics } from '../src/run/metrics.js';
import { forkProblems, parseForkSpec } from '../src/train/fork.js';
import { epochSeed } from '../src/config/seed.js';
import { BNLAB_BIN } from '../src/sweep/local.js';
import { writeSlurm } from '../src/sweep/slurm.js';
import { loadSweep } from '../src/sweep/spec.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnlab-fork-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, BNLAB_WASM_THREADS: '1', BNLAB_PROGRESS_SECONDS: '0' };
const bnlab = (...args: string[]) => spawnSync(process.execPath, [BNLAB_BIN, ...args], { encoding: 'utf8', timeout: 200_000, env });
const TINY = `epochs: 3
threads: 1
data: {name: synthetic, synthetic: {classes: 4, train: 128, val: 64, size: 8}}
model: {depth: 8, width: 4}
bn: {nbs: 8}
optim: {batch_size: 32, steps: [2]}
precise: {samples: 64, batch_size: 16}
eval: {batch_size: 64}
`;
const cfgFile = join(tmp, 'tiny.yaml');
writeFileSync(cfgFile, TINY);
// Wall-clock columns differ between any two runs; every other cell must match.
const TIMING = ['epoch_seconds', 'train_images_per_s', 'precise_seconds'];
const results = (dir: string) => readMetrics(join(dir, 'metrics.csv')).map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !TIMING.includes(k))));
const tensors = (path: string) => [...readCheckpoint(path).tensors].map(([k, t]) => [k, Buffer.from(t.data.buffer).toString('base64')]);

describe('forkProblems', () => {
  it('a source stored before a config section existed (log) gets its defaults, not a refusal', () => {
    const { log: _log, ...older } = loadConfig(undefined, ['epochs=4']);
    expect(forkProblems(older as never, loadConfig(undefined, ['epochs=4', 'bn.frozen_last_epochs=1']), 2)).toEqual([]);
  });

  const base = loadConfig([cfgFile], []);
  const cfg = (...sets: string[]) => loadConfig([cfgFile], sets);
  it('allows FrozenBN that starts at or after the fork point, and more epochs on a step schedule', () => {
    expect(forkProblems(base, cfg('bn.frozen_last_epochs=1'), 2)).toEqual([]);
    expect(forkProblems(base, cfg('epochs=5', 'bn.frozen_last_epochs=3', 'name=x'), 2)).toEqual([]);
  });
  it('refuses what changes the epochs before it', () => {
    expect(forkProblems(base, cfg('optim.base_lr=0.3', 'bn.nbs=4'), 2).join('\n')).toMatch(/differs from the source run's in bn\.nbs, optim\.base_lr/);
    expect(forkProblems(base, cfg('bn.frozen_last_epochs=2'), 2).join('\n')).toMatch(/this run trains with FrozenBN from epoch 2, not after the fork point \(the end of epoch 2\); fork at epoch 1 or earlier/);
    expect(forkProblems(cfg('bn.frozen_last_epochs=2'), cfg('bn.frozen_last_epochs=1'), 2).join('\n')).toMatch(/the source run trains with FrozenBN from epoch 2/);
    expect(forkProblems(cfg('optim.schedule=cosine'), cfg('optim.schedule=cosine', 'epochs=4'), 2).join('\n')).toMatch(/cosine: changing epochs \(3 -> 4\)/);
    expect(forkProblems(base, base, 3).join('\n')).toMatch(/leaves nothing to train after the fork point \(epoch 3\)/);
  });
  it('parses RUN@EPOCH', () => {
    expect(parseForkSpec('a/b@12')).toEqual({ run: join(process.cwd(), 'a/b'), epoch: 12 });
    expect(parseForkSpec('a/b')).toEqual({ run: join(process.cwd(), 'a/b'), epoch: undefined });
    expect(() => parseForkSpec('a@0')).toThrow(/epoch 0 is before any training/);
  });
});

describe('bnlab train --fork', () => {
  const src = join(tmp, 'src');
  const scratch = join(tmp, 'frozen-scratch');
  const forked = join(tmp, 'frozen-fork');
  it('gives the run trained from scratch, bit for bit, and records where it started', () => {
    for (const [out, extra] of [[src, []], [scratch, ['--set', 'bn.frozen_last_epochs=1']]] as const) {
      const r = bnlab('train', '-c', cfgFile, ...extra, '--out', out, '--quiet');
      expect(r.status, r.stderr).toBe(0);
    }
    const r = bnlab('train', '-c', cfgFile, '--set', 'bn.frozen_last_epochs=1', '--fork', `${src}@2`, '--out', forked, '--quiet');
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(forked, 'train.log'), 'utf8')).toMatch(/forked from .*src at epoch 2 \(.*epoch-0002\.ckpt\): epochs 1-2 are that run's/);
    // the FrozenBN run differs from its source after the fork (else this test would prove nothing)
    expect(results(forked)[2]).not.toEqual(results(src)[2]);
    expect(results(forked)).toEqual(results(scratch));
    expect(tensors(join(forked, 'checkpoints', 'last.ckpt'))).toEqual(tensors(join(scratch, 'checkpoints', 'last.ckpt')));
    const info = JSON.parse(readFileSync(join(forked, 'run.json'), 'utf8'));
    expect(info.sessions[0].forked_from).toEqual({ run: src, checkpoint: join(src, 'checkpoints', 'epoch-0002.ckpt'), epoch: 2 });
    expect(existsSync(join(forked, 'checkpoints', 'epoch-0002.ckpt'))).toBe(true); // the fork point, so --resume works at once
  }, 120_000);

  it('refuses a config that differs before the fork point, a missing epoch and --resume with it; nothing is created', () => {
    const bad = join(tmp, 'bad-fork');
    let r = bnlab('train', '-c', cfgFile, '--set', 'optim.base_lr=0.3', '--fork', `${src}@2`, '--out', bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/this run cannot continue from .*epoch-0002\.ckpt \(epoch 2\):\n {2}the config differs from the source run's in optim\.base_lr/);
    expect(existsSync(bad)).toBe(false);
    r = bnlab('train', '-c', cfgFile, '--fork', `${src}@7`, '--out', bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/checkpoint not found: .*epoch-0007\.ckpt/);
    r = bnlab('train', '-c', cfgFile, '--fork', `${src}@1`, '--out', forked, '--resume');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--resume and --fork contradict each other/);
  }, 60_000);
});

describe('continuations: another draw of the epochs after a fork', () => {
  it('epochSeed: `seed` up to continuation.after_epoch, then a seed per (seed, continuation)', () => {
    const at = (seed: number, k: number | null, after: number, epoch: number) => epochSeed({ seed, continuation: { seed: k, after_epoch: after } }, epoch);
    expect([at(3, null, 0, 9), at(3, 1, 2, 0), at(3, 1, 2, 1)]).toEqual([3, 3, 3]);
    const drawn = [at(3, 1, 2, 2), at(3, 2, 2, 2), at(4, 1, 2, 2), at(0, 0, 2, 2)];
    expect(new Set([...drawn, 0, 1, 2, 3, 4]).size).toBe(9); // apart from each other and from plain seeds
    expect(at(3, 1, 2, 5)).toBe(drawn[0]); // one seed per continuation; the epoch enters the shuffle, as for `seed`
  });
  const base = loadConfig([cfgFile], []);
  const cfg = (...sets: string[]) => loadConfig([cfgFile], sets);
  it('a fork may draw another continuation from its fork point on, never inside the epochs it copies', () => {
    expect(forkProblems(base, cfg('continuation.seed=1', 'continuation.after_epoch=2'), 2)).toEqual([]);
    expect(forkProblems(base, cfg('continuation.seed=1', 'continuation.after_epoch=2', 'bn.frozen_last_epochs=1'), 2)).toEqual([]);
    expect(forkProblems(base, cfg('continuation.seed=1', 'continuation.after_epoch=1'), 2).join('\n')).toMatch(/this run draws from continuation\.seed 1 after epoch 1, before the fork point \(the end of epoch 2\): set continuation\.after_epoch to 2 or later/);
    expect(forkProblems(cfg('continuation.seed=1', 'continuation.after_epoch=1'), base, 2).join('\n')).toMatch(/the source run draws from continuation\.seed 1 after epoch 1/);
  });
  it('a continuation shares the source run\'s epochs up to the fork, then trains on other shuffles; run from scratch it is the same run', () => {
    const src = join(tmp, 'cont-src');
    const [forked, scratch] = [join(tmp, 'cont-fork'), join(tmp, 'cont-scratch')];
    const set = ['--set', 'continuation.seed=1', '--set', 'continuation.after_epoch=2'];
    for (const [out, extra] of [[src, []], [scratch, set], [forked, [...set, '--fork', `${src}@2`]]] as const) {
      const r = bnlab('train', '-c', cfgFile, ...extra, '--out', out, '--quiet');
      expect(r.status, r.stderr).toBe(0);
    }
    expect(results(forked).slice(0, 2)).toEqual(results(src).slice(0, 2));
    expect(results(forked)[2].train_loss).not.toEqual(results(src)[2].train_loss); // epoch 3: other shuffles
    expect(results(forked)).toEqual(results(scratch));
    expect(tensors(join(forked, 'checkpoints', 'last.ckpt'))).toEqual(tensors(join(scratch, 'checkpoints', 'last.ckpt')));
  }, 120_000);
});

describe('sweep forks', () => {
  const sweepFile = (name: string, body: string) => {
    const p = join(tmp, name);
    writeFileSync(p, `base: tiny.yaml\nout: ${join(tmp, 'sw', name)}\ngrid: {bn.frozen_last_epochs: [0, 1]}\nname: "frozen{bn.frozen_last_epochs}"\n${body}`);
    return p;
  };
  it('runs forks after their sources, with --fork, and they equal runs trained from scratch', () => {
    const f = sweepFile('forks.yaml', 'fork: {from: "frozen0", epoch: 2}\n');
    const s = loadSweep(f);
    expect(s.runs.map((r) => [r.name, r.fork?.from.name, r.fork?.epoch])).toEqual([['frozen0', undefined, undefined], ['frozen1', 'frozen0', 2]]);
    const r = bnlab('sweep', '--config', f, '--jobs', '2');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.indexOf('frozen0: done')).toBeLessThan(r.stdout.indexOf('frozen1: start'));
    expect(readFileSync(join(s.out, 'logs', 'frozen1.log'), 'utf8')).toContain(`--fork ${join(s.out, 'frozen0')}@2`);
    const plain = join(tmp, 'sw', 'plain.yaml');
    const p = bnlab('sweep', '--config', sweepFile('plain.yaml', ''), '--jobs', '1');
    expect(p.status, p.stdout + p.stderr).toBe(0);
    expect(results(join(s.out, 'frozen1'))).toEqual(results(join(plain, 'frozen1')));
  }, 180_000);

  it('refuses a fork the source cannot give, before anything trains', () => {
    expect(() => loadSweep(sweepFile('early.yaml', 'fork: {from: "frozen0", epoch: 3}\n'))).toThrow(/run 'frozen1' cannot fork from 'frozen0' at epoch 3:\n(.*\n)* {2}this run trains with FrozenBN from epoch 3, not after the fork point/);
    expect(() => loadSweep(sweepFile('gone.yaml', 'set: {checkpoint.keep_last: 1}\nfork: {from: "frozen0", epoch: 2}\n'))).toThrow(/the source will not keep a checkpoint of epoch 2/);
    expect(() => loadSweep(sweepFile('none.yaml', 'fork: {from: "base{seed}", epoch: 2}\n'))).toThrow(/fork\.from 'base\{seed\}' gives 'base0' for run 'frozen0', which is not a run of this sweep/);
  });

  it('with --slurm: the forks are a second array, each task given its source', () => {
    const s = loadSweep(sweepFile('slurm.yaml', 'fork: {from: "frozen0", epoch: 2}\n'));
    const arrays = writeSlurm(s, s.runs, { gpusPerTask: 0, cwd: tmp });
    expect(arrays.map((a) => [a.script.split('/').pop(), a.runs])).toEqual([['sweep.sbatch', 1], ['sweep-forks.sbatch', 1]]);
    expect(readFileSync(arrays[1].list, 'utf8')).toBe(`frozen1\t3\t${join(s.out, 'frozen0')}@2\t--set bn.frozen_last_epochs=1\n`);
    expect(readFileSync(arrays[0].list, 'utf8')).toMatch(/^frozen0\t3\t-\t/);
    for (const a of arrays) execFileSync('bash', ['-n', a.script]);
    // only forks left to run: one array, and no stale first array beside it
    const only = writeSlurm(s, s.runs.slice(1), { gpusPerTask: 0, cwd: tmp });
    expect(only.map((a) => a.script.split('/').pop())).toEqual(['sweep-forks.sbatch']);
    expect(existsSync(join(s.out, 'sweep.sbatch'))).toBe(false);
  });
});
