// `bnlab train` as a Slurm job or a script sees it: progress lines with stdout piped, the summary,
// run.json, metrics.jsonl, checkpoint retention with resume and eval, exit codes, SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signalWhen } from './helpers/run.js';
import { readCheckpointMeta } from '../src/run/checkpoint.js';
import { readMetrics } from '../src/run/metrics.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-runcli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, BNLAB_WASM_THREADS: '1', BNLAB_PROGRESS_SECONDS: '0' };
const run = (args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd: o.cwd, env: o.env ?? env });

const TINY = { 'data.name': 'synthetic', 'data.synthetic.train': 128, 'data.synthetic.size': 8, 'model.width': 4, 'optim.batch_size': 32, 'bn.nbs': 8, 'precise.samples': 64 };
const sets = (o: Record<string, unknown>) => Object.entries(o).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
const tiny = sets(TINY);
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const ckptFiles = (out: string) => readdirSync(join(out, 'checkpoints')).sort();

describe('a run with stdout piped, retention and resume', () => {
  const out = join(dir, 'kept');

  it('prints progress lines, the summary, and writes summary.json, run.json, metrics.jsonl; keeps the newest epoch and the best', () => {
    const r = run(['train', ...tiny, ...sets({ epochs: 3, 'checkpoint.keep_last': 1, 'checkpoint.best_metric': 'val_err_ema' }), '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    // plain lines (BNLAB_PROGRESS_SECONDS=0: at every update) with step/total, img/s and the run's ETA
    expect(r.stdout).toMatch(/^epoch 2\/3: \d\/4 \| loss \d\.\d{3} \| \d+ img\/s \| run \d+\/12 steps \(\d+%\) \| ETA \d/m);
    expect(r.stdout).toMatch(/^run: .* model resnet-cifar-8 width 4 \(\d+\.\d k parameters\)/m);
    expect(r.stdout).not.toMatch(/node backend|Hi, looks like/);

    const rows = readMetrics(join(out, 'metrics.csv'));
    const ema = rows.map((x) => Number(x.val_err_ema));
    const bestEpoch = ema.indexOf(Math.min(...ema)) + 1;
    const summary = json(join(out, 'summary.json'));
    expect(summary).toMatchObject({ finished: true, epochs: { done: 3, total: 3 } });
    expect(summary.sources.map((s: { source: string }) => s.source)).toEqual(['EMA', 'PreciseBN']);
    expect(summary.sources[0]).toEqual({ source: 'EMA', column: 'val_err_ema', final: { epoch: 3, err: ema[2] }, best: { epoch: bestEpoch, err: ema[bestEpoch - 1] } });
    expect(summary.train_seconds).toBeCloseTo(rows.reduce((a, x) => a + Number(x.epoch_seconds), 0), 3);
    expect(summary.files.metrics_jsonl).toBe(join(out, 'metrics.jsonl'));
    expect(r.stdout).toMatch(/summary: finished 3\/3 epochs.*img\/s\n.*val_err EMA +final/);
    expect(readFileSync(join(out, 'train.log'), 'utf8')).toMatch(/summary: finished 3\/3 epochs/);

    const jsonl = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(jsonl.map((x) => x.val_err_ema)).toEqual(ema);
    expect(jsonl[0].val_err_minibatch).toBeNull();

    const info = json(join(out, 'run.json'));
    expect(info.sessions).toHaveLength(1);
    expect(info.sessions[0]).toMatchObject({ status: 'finished', epochs_done: 3, backend: { name: 'wasm' }, node: process.version });
    expect(info.sessions[0].command).toContain('checkpoint.keep_last=1');
    expect(info.sessions[0].backend.reason).toMatch(/\S/);
    expect(Date.parse(info.end)).toBeGreaterThanOrEqual(Date.parse(info.start));

    // retention: epoch 3 (newest), best.ckpt (the best EMA epoch), last.ckpt; epochs 1-2 deleted
    expect(ckptFiles(out)).toEqual(['best.ckpt', 'epoch-0003.ckpt', 'last.ckpt']);
    expect(readCheckpointMeta<{ epoch: number }>(join(out, 'checkpoints', 'best.ckpt')).epoch).toBe(bestEpoch);
  }, 120_000);

  it('eval names the kept epochs for a deleted one, and reads --checkpoint best', () => {
    const gone = [1, 2].find((e) => e !== readCheckpointMeta<{ epoch: number }>(join(out, 'checkpoints', 'best.ckpt')).epoch)!;
    const r = run(['eval', '--run', out, '--epoch', String(gone), '--stats', 'ema']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`epoch-000${gone}\\.ckpt \\(--epoch ${gone} is not kept\\); the run keeps epoch 3; best\\.ckpt \\(epoch \\d\\); last\\.ckpt \\(epoch 3\\)`));
    const best = run(['eval', '--run', out, '--checkpoint', 'best', '--stats', 'ema', '--json']);
    expect(best.status, best.stderr).toBe(0);
    expect(JSON.parse(best.stdout).checkpoint).toBe(join(out, 'checkpoints', 'best.ckpt'));
  }, 120_000);

  it('resumes after last.ckpt is deleted (from the kept epoch file); run.json gains a session; a finished run says so', () => {
    rmSync(join(out, 'checkpoints', 'last.ckpt'));
    rmSync(join(out, 'metrics.jsonl'));
    const r = run(['train', '--out', out, '--resume', '--set', 'epochs=4']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/resuming .* at epoch 4/);
    expect(readMetrics(join(out, 'metrics.csv')).map((x) => x.epoch)).toEqual(['1', '2', '3', '4']);
    const jsonl = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(jsonl.map((x) => x.epoch)).toEqual([1, 2, 3, 4]);
    expect(ckptFiles(out)).toContain('epoch-0004.ckpt');
    expect(ckptFiles(out)).not.toContain('epoch-0003.ckpt');
    const info = json(join(out, 'run.json'));
    expect(info.sessions.map((s: { status: string }) => s.status)).toEqual(['finished', 'finished']);
    expect(info.start).toBe(info.sessions[0].start);

    const again = run(['train', '--out', out, '--resume']);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already finished \(4 of 4 epochs\)/);
    expect(again.stdout).toMatch(/summary: finished 4\/4 epochs/);
    expect(again.stdout).not.toMatch(/resuming|done:/);
    expect(json(join(out, 'run.json')).sessions).toHaveLength(2);
  }, 120_000);

  it('refuses --resume with --overwrite (exit 2) and leaves the run alone', () => {
    const before = readFileSync(join(out, 'metrics.csv'), 'utf8');
    const r = run(['train', '--out', out, '--resume', '--overwrite']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--resume and --overwrite contradict each other/);
    expect(readFileSync(join(out, 'metrics.csv'), 'utf8')).toBe(before);
  }, 60_000);
});

describe('run name, quiet, backend banner', () => {
  it('a config without name: runs to results/<file name>; --quiet prints nothing; --backend cpu shows no tfjs banner', () => {
    writeFileSync(
      join(dir, 'base.yaml'),
      'epochs: 1\ndata: {name: synthetic, synthetic: {train: 128, size: 8}}\nmodel: {width: 4}\noptim: {batch_size: 32}\nbn: {nbs: 8}\nprecise: {samples: 64}\n',
    );
    const r = run(['train', '-c', 'base.yaml', '--backend', 'cpu', '--quiet'], { cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(dir, 'results', 'base', 'metrics.csv'))).toBe(true);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toMatch(/node backend|Hi, looks like/);
    expect(readFileSync(join(dir, 'results', 'base', 'train.log'), 'utf8')).toMatch(/backend: cpu[\s\S]*summary: finished 1\/1 epochs/);
  }, 120_000);
});

describe('exit codes: 0 ok, 2 usage/config, 1 runtime, 130 interrupted', () => {
  it('--version, usage errors, config errors and a runtime error', () => {
    const v = run(['--version']);
    expect([v.status, v.stdout.trim()]).toEqual([0, json(join(__dirname, '..', 'package.json')).version]);
    expect(run(['trian']).status).toBe(2);
    expect(run(['train', '--bogus']).status).toBe(2);
    expect(run(['eval']).status).toBe(2); // required --run missing
    expect(run(['train', '--set', 'bn.nbs=0']).status).toBe(2);
    const help = run(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/Exit codes[\s\S]*2 +usage or config error[\s\S]*1 +runtime error[\s\S]*130 +interrupted[\s\S]*BNLAB_PROGRESS_SECONDS/);
    const diverged = run(['train', ...tiny, '--set', 'epochs=1', '--set', 'max_loss=0.001', '--out', join(dir, 'diverged'), '--quiet']);
    expect(diverged.status).toBe(1);
    expect(diverged.stderr).toMatch(/diverged/);
    expect(json(join(dir, 'diverged', 'run.json')).sessions[0]).toMatchObject({ status: 'failed', error: expect.stringMatching(/diverged/) });
  }, 120_000);

  it('SIGTERM saves a checkpoint, says SIGTERM (not Ctrl-C) and exits 130', async () => {
    const out = join(dir, 'sigterm');
    const child = spawn(process.execPath, [BIN, 'train', ...tiny, '--set', 'epochs=40', '--out', out], { env: { ...env, BNLAB_PROGRESS_SECONDS: '3600' } });
    const { code, stderr } = await signalWhen(child, 'epoch 1/40 ', 'SIGTERM');
    expect(code).toBe(130);
    expect(stderr).toMatch(/bnlab: SIGTERM — finishing this step and saving a checkpoint/);
    expect(stderr).not.toMatch(/Ctrl-C/);
    expect(existsSync(join(out, 'checkpoints', 'last.ckpt'))).toBe(true);
    expect(json(join(out, 'run.json')).sessions[0].status).toBe('interrupted');
  }, 120_000);
});
