// Issue 28's root causes, one fast test each: a checkpoint knows its run; eval checks what it
// reads and appends only where it belongs; --overwrite touches only a run's own files; a sweep
// calls a run finished only with its final checkpoint; a config pipe is read once; locks left by
// a dead writer (reused PID, empty file) are taken over; errors name the file.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { appendEvalRows, EVAL_COLUMNS } from '../src/cli/eval.js';
import { readCheckpoint, writeCheckpoint } from '../src/run/checkpoint.js';
import { acquireLock } from '../src/run/lock.js';
import { readRunInfo } from '../src/run/metadata.js';
import { runPaths } from '../src/run/paths.js';
import { findRuns } from '../src/report/runs.js';
import { loadSweep } from '../src/sweep/spec.js';
import { runStatus } from '../src/sweep/status.js';
import { tempDirs } from './helpers/run.js';

// Each test starts bnlab one to three times (2-5 s each on 2 shared cores).
vi.setConfig({ testTimeout: 120_000 });
const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const env = { ...process.env, BNLAB_WASM_THREADS: '1' };
const bnlab = (args: string[], cwd?: string) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env, cwd });
const tiny = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=128', '--set', 'data.synthetic.size=8',
  '--set', 'model.width=4', '--set', 'optim.batch_size=32', '--set', 'bn.nbs=8', '--set', 'precise.samples=64', '--set', 'epochs=2', '--quiet',
];
const temp = tempDirs('bnlab-nsw-');
const root = temp();
/** A finished 2-epoch run (and one of another seed, and one deeper), trained once and copied per test. */
const ref = join(root, 'ref');
const seed1 = join(root, 'seed1');
const deep = join(root, 'deep');
beforeAll(() => {
  for (const [out, extra] of [[ref, []], [seed1, ['--set', 'seed=1']], [deep, ['--set', 'model.depth=14']]] as const) {
    const r = bnlab(['train', ...tiny, ...extra, '--out', out]);
    if (r.status !== 0) throw new Error(r.stderr);
  }
}, 120_000);
let n = 0;
const copyOf = (src = ref) => {
  const d = join(root, `copy-${n++}`);
  cpSync(src, d, { recursive: true });
  return d;
};
const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

describe('a checkpoint knows its run', () => {
  it('config.yaml edited after training: --resume refuses, naming the key and both values', () => {
    const d = copyOf();
    const p = runPaths(d);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace(/base_lr: .*/, 'base_lr: 0.7'));
    const r = bnlab(['train', '--resume', '--out', d, '--set', 'epochs=3', '--quiet']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/optim\.base_lr \(checkpoint 0\.2, run 0\.7\)/);
    expect(r.stderr).toMatch(/restore it/);
    expect(readFileSync(p.metrics, 'utf8').trim().split('\n')).toHaveLength(3); // untouched
  });

  it("another run's checkpoint as last.ckpt is refused; the resume continues from the run's own", () => {
    const d = copyOf();
    const p = runPaths(d);
    cpSync(runPaths(seed1).last, p.last);
    const before = readFileSync(p.metrics, 'utf8');
    const r = bnlab(['train', '--resume', '--out', d, '--set', 'epochs=3', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    const log = readFileSync(p.log, 'utf8');
    expect(log).toMatch(/refused .*last\.ckpt: it belongs to another run/);
    expect(log).toMatch(/resuming from .*epoch-0002\.ckpt/);
    expect(readFileSync(p.metrics, 'utf8').startsWith(before)).toBe(true); // its own history kept
  });

  it('a deeper model\'s checkpoint: eval --checkpoint refuses it (exit 2), naming the difference', () => {
    const r = bnlab(['eval', '--run', ref, '--checkpoint', runPaths(deep).last, '--quiet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cannot be evaluated as part of .*ref: .*(another run|model\.depth)/);
    expect(existsSync(runPaths(ref).eval)).toBe(false);
  });

  it('the exact tensor set: a checkpoint with an extra tensor is refused even with the same config', () => {
    const d = copyOf();
    const p = runPaths(d);
    const c = readCheckpoint(p.last);
    c.tensors.set('param/s9.b9.conv1', { shape: [1], data: Float32Array.from([0]) });
    writeCheckpoint(p.last, c);
    const r = bnlab(['eval', '--run', d, '--quiet']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/tensors this model does not have \(param\/s9\.b9\.conv1\)/);
  });
});

describe('bnlab eval checks what it reads', () => {
  it('a NaN weight with valid checksums is refused, nothing appended', () => {
    const d = copyOf();
    const p = runPaths(d);
    const c = readCheckpoint(p.last);
    c.tensors.get('param/stem.conv')!.data[0] = NaN;
    writeCheckpoint(p.last, c);
    const r = bnlab(['eval', '--run', d, '--quiet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/non-finite value \(param\/stem\.conv\[0\] = NaN\)/);
    expect(existsSync(p.eval)).toBe(false);
  });

  it("--checkpoint last means the run's last.ckpt, not a file named last in the current folder", () => {
    const cwd = temp();
    writeFileSync(join(cwd, 'last'), 'not a checkpoint');
    const r = bnlab(['eval', '--run', ref, '--checkpoint', 'last', '--stats', 'ema', '--json'], cwd);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).checkpoint).toBe(runPaths(ref).last);
    rmSync(runPaths(ref).eval, { force: true });
  });

  it('a last.ckpt older than metrics.csv (the final checkpoint lost) is refused by default, naming the fix', () => {
    const d = copyOf();
    const p = runPaths(d);
    cpSync(p.epoch(1), p.last);
    rmSync(p.epoch(2));
    const r = bnlab(['eval', '--run', d, '--quiet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/holds epoch 1 but metrics\.csv records 2 epochs.*--resume.*--epoch 1/);
  });

  it('appends on its own line after a half row, refuses when the run was replaced meanwhile, and the report skips the half row', async () => {
    const d = copyOf();
    const p = runPaths(d);
    const id = readRunInfo(p.runInfo)!.id!;
    const row = (e: string) => [2, 'precise', '', '', 64, 32, 'pooled', 1, e, 0, e];
    writeFileSync(p.eval, `${EVAL_COLUMNS.join(',')}\n${row('39.0600').join(',')}\n2,precise,,,64,32,pooled,1,39.0`);
    await appendEvalRows(p, id, [row('41.0000')]);
    const lines = readFileSync(p.eval, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe(row('41.0000').join(','));
    const warnings: string[] = [];
    const [r] = findRuns([d], (m) => warnings.push(m));
    expect(r.evals.map((e) => e.err_mean)).toEqual([39.06, 41]);
    expect(warnings.join('\n')).toMatch(/eval\.csv line 3 skipped/);
    await expect(appendEvalRows(p, 'another-run', [row('1.0000')])).rejects.toThrow(/replaced while this evaluation ran/);
    expect(readFileSync(p.eval, 'utf8').trim().split('\n')).toHaveLength(4);
  });

  it('SIGTERM during an eval exits 130 saying nothing was appended', async () => {
    const child = spawn(process.execPath, [BIN, 'eval', '--run', ref, '--stats', 'precise', '--samples', '100', '--repeats', '50'], { env });
    let err = '';
    await new Promise<void>((r) => child.stderr.on('data', (b) => ((err += b), /backend:/.test(err) && r())));
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(130);
    expect(err).toMatch(/SIGTERM: stopped; nothing was appended to .*eval\.csv/);
  });
});

describe('--overwrite touches only what a run wrote', () => {
  it("deletes the old run's eval.csv and bn_trace.csv too, keeps the user's file, and says what it deleted", () => {
    const d = copyOf();
    const p = runPaths(d);
    writeFileSync(p.eval, `${EVAL_COLUMNS.join(',')}\n`);
    writeFileSync(p.trace, 'epoch\n');
    writeFileSync(join(d, 'notes.txt'), 'mine');
    const r = bnlab(['train', ...tiny, '--set', 'epochs=1', '--out', d, '--overwrite']);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(p.eval)).toBe(false);
    expect(existsSync(p.trace)).toBe(false);
    expect(readFileSync(join(d, 'notes.txt'), 'utf8')).toBe('mine');
    const log = readFileSync(p.log, 'utf8');
    const deleted = /--overwrite: deleted the previous run's (.*)/.exec(log)?.[1] ?? '';
    for (const f of ['eval.csv', 'bn_trace.csv', 'metrics.csv', 'run.json', 'config.yaml']) expect(deleted).toContain(f);
    expect(deleted).toMatch(/3 checkpoints \(.*last\.ckpt/);
    expect(log).toMatch(/kept what bnlab did not write: notes\.txt/);
  });

  it("a user's own folder is never trained into, with or without --overwrite, and nothing in it is deleted", () => {
    const d = temp();
    mkdirSync(join(d, 'checkpoints'));
    writeFileSync(join(d, 'checkpoints', 'model-final.pt'), 'weights');
    writeFileSync(join(d, 'summary.json'), '{"mine": true}');
    for (const extra of [[], ['--overwrite']]) {
      const r = bnlab(['train', ...tiny, '--out', d, ...extra]);
      expect(r.status).toBe(2);
      expect(lastLine(r.stderr)).toMatch(/is not a bnlab run folder but holds files bnlab did not write \(checkpoints\/model-final\.pt, summary\.json\)/);
    }
    expect(readdirSync(d).sort()).toEqual(['checkpoints', 'summary.json']);
    expect(readFileSync(join(d, 'summary.json'), 'utf8')).toBe('{"mine": true}');
  });

  it('a damaged run.json is kept aside, not replaced', () => {
    const d = copyOf();
    writeFileSync(runPaths(d).runInfo, '{"run": "x", "sessi');
    const r = bnlab(['train', '--resume', '--out', d, '--set', 'epochs=2', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    const aside = readdirSync(d).filter((f) => f.startsWith('run.json.damaged-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(d, aside[0]), 'utf8')).toBe('{"run": "x", "sessi');
  });
});

describe('sweeps resume what they can', () => {
  const sweepOver = (out: string) => {
    const d = temp();
    writeFileSync(join(d, 'tiny.yaml'), 'name: tiny\n');
    writeFileSync(join(d, 's.yaml'), `base: tiny.yaml\nout: ${out}\nset: {data.name: synthetic, data.synthetic.train: 128, data.synthetic.size: 8, model.width: 4, optim.batch_size: 32, bn.nbs: 8, precise.samples: 64, epochs: 2}\ngrid: {seed: [0]}\nname: "run"\n`);
    return loadSweep(join(d, 's.yaml'), out).runs[0];
  };

  it('metrics.csv complete but no checkpoint of the final epoch: not finished; epoch files but no last.ckpt: resume; no checkpoint at all: finished only by summary.json', () => {
    const out = temp();
    const run = sweepOver(out);
    cpSync(ref, run.dir, { recursive: true });
    writeFileSync(runPaths(run.dir).config, readFileSync(runPaths(ref).config, 'utf8').replace(/^name: .*$/m, 'name: run'));
    expect(runStatus(run).state).toBe('finished');
    rmSync(runPaths(run.dir).last);
    rmSync(runPaths(run.dir).epoch(2));
    expect(runStatus(run).state).toBe('resume');
    rmSync(runPaths(run.dir).checkpoints, { recursive: true });
    // every checkpoint removed on purpose (committed results): finished as its summary.json says
    expect(runStatus(run).state).toBe('finished');
    rmSync(runPaths(run.dir).summary);
    expect(runStatus(run).state).toBe('restart');
  });
});

describe('input read once, locks, names in errors', () => {
  it('-c <(cat my.yaml): the pipe is read once and the run is the file\'s', () => {
    const d = temp();
    writeFileSync(join(d, 'my.yaml'), `name: mine\nepochs: 1\ndata: {name: synthetic, synthetic: {train: 128, size: 8}}\nmodel: {width: 4}\noptim: {batch_size: 32}\nbn: {nbs: 8}\nprecise: {samples: 64}\n`);
    const r = spawnSync('bash', ['-c', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} train -c <(cat my.yaml) --quiet`], { cwd: d, encoding: 'utf8', env, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(join(d, 'results'))).toEqual(['mine']);
    expect(readFileSync(join(d, 'results', 'mine', 'config.yaml'), 'utf8')).toMatch(/name: mine/);
  });

  it('a lock whose PID now belongs to another process, and an empty lock file, are taken over saying so', async () => {
    const d = temp();
    const f = join(d, '.bnlab.lock');
    // A lock from 2020 naming the PID of a process started just now: the PID was reused.
    const sleeper = spawn('sleep', ['30']);
    try {
      writeFileSync(f, JSON.stringify({ pid: sleeper.pid, host: hostname(), started: '2020-01-01T00:00:00.000Z', command: 'bnlab train' }));
      const notes0: string[] = [];
      (await acquireLock(f, 'bnlab train', { onStale: (m) => notes0.push(m) }))();
      expect(notes0[0]).toMatch(/PID now belongs to another process/);
      // ... while a lock written after that process started is its own: refused
      writeFileSync(f, JSON.stringify({ pid: sleeper.pid, host: hostname(), started: new Date(Date.now() + 5000).toISOString(), command: 'bnlab train' }));
      await expect(acquireLock(f, 'bnlab train')).rejects.toThrow(/held by PID .*delete .*\.bnlab\.lock/);
    } finally {
      sleeper.kill();
    }
    const notes: string[] = ['(reused PID)'];
    writeFileSync(f, '');
    const old = new Date(Date.now() - 60_000);
    (await import('node:fs')).utimesSync(f, old, old);
    (await acquireLock(f, 'bnlab train', { onStale: (m) => notes.push(m) }))();
    expect(notes[1]).toMatch(/empty or unreadable/);
  });

  it('--out a regular file, and lowering epochs below those trained, are refused naming the problem', () => {
    const d = temp();
    writeFileSync(join(d, 'file'), 'x');
    const r = bnlab(['train', ...tiny, '--out', join(d, 'file')]);
    expect(r.status).toBe(2);
    expect(lastLine(r.stderr)).toMatch(/cannot use .*file as the run folder: it .* is a file, not a folder/);
    const c = copyOf();
    const r2 = bnlab(['train', '--resume', '--out', c, '--set', 'epochs=1', '--quiet']);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/has already trained 2 epochs, more than epochs 1/);
    expect(readFileSync(runPaths(c).config, 'utf8')).toMatch(/^epochs: 2$/m);
  });

  it('a fork from a checkpoint holding a NaN is refused before training', () => {
    const d = copyOf();
    const c = readCheckpoint(runPaths(d).epoch(1));
    c.tensors.get('param/stem.conv')!.data[2] = Infinity;
    writeCheckpoint(runPaths(d).epoch(1), c);
    const r = bnlab(['train', ...tiny, '--set', 'epochs=2', '--set', 'bn.frozen_last_epochs=1', '--fork', `${d}@1`, '--out', join(temp(), 'f')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/holds a non-finite value \(param\/stem\.conv\[2\] = Infinity\)/);
  });

  it('a garbage config.yaml or binary metrics.csv in one run folder: the report skips that run, naming it', () => {
    const top = temp();
    cpSync(ref, join(top, 'good'), { recursive: true });
    cpSync(ref, join(top, 'bad-yaml'), { recursive: true });
    cpSync(ref, join(top, 'bad-csv'), { recursive: true });
    writeFileSync(join(top, 'bad-yaml', 'config.yaml'), 'a: [unclosed');
    writeFileSync(join(top, 'bad-csv', 'metrics.csv'), Buffer.from([0, 1, 2, 3, 0, 255]));
    const warnings: string[] = [];
    expect(findRuns([top], (m) => warnings.push(m)).map((r) => r.name)).toEqual(['good']);
    expect(warnings.join('\n')).toMatch(/bad-csv skipped: .*metrics\.csv is not text/);
    expect(warnings.join('\n')).toMatch(/bad-yaml skipped: .*config\.yaml is not valid YAML/);
  });
});
