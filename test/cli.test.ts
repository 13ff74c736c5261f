// The bnlab executable as a user runs it: exit codes, messages, Ctrl-C and --resume, eval, doctor.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signalWhen } from './helpers/run.js';
import { readMetrics } from '../src/run/metrics.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, BNLAB_WASM_THREADS: '1' } });

const tiny = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=128', '--set', 'data.synthetic.size=8',
  '--set', 'model.width=4', '--set', 'optim.batch_size=32', '--set', 'bn.nbs=8', '--set', 'precise.samples=64', '--quiet',
];

describe('bnlab CLI', () => {
  it('config -c A -c B shows both merged, later winning, as train resolves them', () => {
    const [a, b] = [join(dir, 'merge-a.yaml'), join(dir, 'merge-b.yaml')];
    writeFileSync(a, 'epochs: 7\nbn:\n  nbs: 8\n  eps: 0.01\n');
    writeFileSync(b, 'bn:\n  eps: 0.001\n');
    const r = run(['config', '-c', a, '-c', b]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^epochs: 7$/m);
    expect(r.stdout).toMatch(/^  nbs: 8$/m);
    expect(r.stdout).toMatch(/^  eps: 0\.001$/m);
  }, 30_000);

  it('rejects a mistyped config key with the key path, a suggestion and exit code 2', () => {
    const r = run(['train', '--set', 'optim.batchsize=64']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("unknown key 'optim.batchsize' (did you mean 'optim.batch_size'?)");
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, 'bn:\n  nbs: -4\nmodle: {}\n');
    const r2 = run(['train', '--config', cfg]);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toMatch(/bn\.nbs: .*>=1/);
    expect(r2.stderr).toContain("unknown key 'modle' (did you mean 'model'?)");
  }, 60_000);

  it('refuses to overwrite an existing run without --resume or --overwrite, and keeps it', () => {
    const out = join(dir, 'keep');
    expect(run(['train', ...tiny, '--set', 'epochs=1', '--out', out]).status).toBe(0);
    const before = readFileSync(join(out, 'metrics.csv'), 'utf8');
    const r = run(['train', ...tiny, '--set', 'epochs=1', '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/already holds a run.*--resume.*--overwrite/);
    expect(readFileSync(join(out, 'metrics.csv'), 'utf8')).toBe(before);
  }, 120_000);

  it('Ctrl-C saves a checkpoint and exits 130; --resume finishes the run with every epoch once', async () => {
    const out = join(dir, 'sigint');
    const child = spawn(process.execPath, [BIN, 'train', ...tiny.filter((a) => a !== '--quiet'), '--set', 'epochs=12', '--out', out], { env: { ...process.env, BNLAB_WASM_THREADS: '1' } });
    const { code } = await signalWhen(child, 'epoch 2/12', 'SIGINT');
    expect(code).toBe(130);
    expect(existsSync(join(out, 'checkpoints', 'last.ckpt'))).toBe(true);
    const done = readMetrics(join(out, 'metrics.csv')).length;
    expect(done).toBeGreaterThanOrEqual(2);
    expect(done).toBeLessThan(12);
    // --set on a resume applies to the run's own config (epochs may grow); config.yaml follows.
    const r = run(['train', '--out', out, '--resume', '--quiet', '--set', 'epochs=13']);
    expect(r.status, r.stderr).toBe(0);
    expect(readMetrics(join(out, 'metrics.csv')).map((x) => Number(x.epoch))).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
    expect(readFileSync(join(out, 'config.yaml'), 'utf8')).toMatch(/^epochs: 13$/m);
  }, 180_000);

  it('eval appends EMA / PreciseBN / mini-batch rows to eval.csv and prints them', () => {
    const out = join(dir, 'eval');
    expect(run(['train', ...tiny, '--set', 'epochs=1', '--out', out]).status).toBe(0);
    const r = run(['eval', '--run', out, '--stats', 'ema,precise,minibatch', '--samples', '32', '--batch', '4', '--repeats', '2', '--quiet']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/precise\s+32\s+4\s+pooled/);
    const rows = readMetrics(join(out, 'eval.csv'));
    expect(rows.map((x) => x.stats)).toEqual(['ema', 'precise', 'minibatch']);
    expect(rows[1].errs.split(';')).toHaveLength(2);
    const bad = run(['eval', '--run', out, '--stats', 'emma']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown source 'emma'");
  }, 120_000);

  it('doctor reports the wasm backend and what CUDA lacks', () => {
    const r = run(['doctor', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.wasm.loads).toBe(true);
    expect(j.wasm.simd).toBe(true);
    expect(j.tensorflow.gpu).toBe(false);
    expect(j.cuda.ok).toBe(false);
    expect(j.cuda.missing.length).toBeGreaterThan(0);
    expect(j.auto_backend).toBe('wasm');
    expect(j.fixes.join(' ')).toMatch(/CUDA: .* missing — .*Fix: /);
    // CI builds the native addon: doctor must say it loads and the wasm backend uses it
    expect(j.dnnl.loads, j.dnnl.detail).toBe(true);
    expect(j.dnnl.detail).toMatch(/oneDNN \d+\.\d+/);
    expect(j.wasm.kernels).toEqual(expect.arrayContaining(['dnnlConv', 'nativeBN', 'fusedSGD', 'fusedEMA', 'nativeEltwise', 'nativeMatMul']));
    expect(j.jpeg.loads, j.jpeg.detail).toBe(true);
    expect(j.jpeg.detail).toMatch(/libjpeg-turbo/);
  }, 60_000);

  it('bench --peer runs the same model in bnlab and PyTorch and reports both', () => {
    const set = ['data.name=synthetic', 'data.synthetic.size=16', 'data.synthetic.channels=3', 'data.synthetic.classes=10',
      'model.depth=8', 'model.width=8', 'optim.batch_size=8', 'bn.nbs=4', 'eval.batch_size=16', 'precise.samples=16', 'precise.batch_size=8'];
    const r = run(['bench', '--peer', '--json', '--steps', '1', ...set.flatMap((x) => ['--set', x])]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.peer.framework).toMatch(/^pytorch /);
    expect(j.peer.params).toBe(j.bnlab.params); // the same architecture on both sides
    expect([j.peer.batch, j.peer.nbs, j.peer.threads]).toEqual([8, 4, j.bnlab.threads]);
    for (const side of [j.bnlab, j.peer]) {
      expect(side.train_images_per_s).toBeGreaterThan(0);
      expect(side.inference_images_per_s).toBeGreaterThan(0);
    }
    expect(j.bnlab.train_steps_ms).toHaveLength(1);
  }, 120_000);

  it('bench --peer --lockstep alternates the two sides step by step, and a peer that dies ends it with a message', () => {
    const set = ['data.name=synthetic', 'data.synthetic.size=16', 'data.synthetic.channels=3', 'data.synthetic.classes=10',
      'model.depth=8', 'model.width=8', 'optim.batch_size=8', 'bn.nbs=4', 'eval.batch_size=16', 'precise.samples=16', 'precise.batch_size=8'].flatMap((x) => ['--set', x]);
    const r = run(['bench', '--peer', '--lockstep', '--json', '--steps', '3', ...set]);
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect([j.bnlab.lockstep, j.peer.lockstep]).toEqual([true, true]);
    expect(j.bnlab.train_steps_ms).toHaveLength(3);
    expect(j.peer.train_steps_ms).toHaveLength(3); // one peer step beside each bnlab step
    expect(j.peer.inference_images_per_s).toBeGreaterThan(0);
    // and one peer inference pass beside each of bnlab's
    expect(j.bnlab.inference_passes_ms).toHaveLength(5);
    expect(j.peer.inference_passes_ms).toHaveLength(5);
    // without --peer there is nothing to alternate with
    const alone = run(['bench', '--lockstep', '--steps', '1', ...set]);
    expect(alone.status).not.toBe(0);
    expect(alone.stderr).toMatch(/--lockstep alternates with the PyTorch peer; add --peer/);
    // a peer that exits at once: a clear error, not a wait
    const dead = run(['bench', '--peer', '--lockstep', '--python', '/bin/false', '--steps', '1', ...set]);
    expect(dead.status).not.toBe(0);
    expect(dead.stderr).toMatch(/bench --lockstep: bench-peer.py exited \(code 1\) before its warm-up step/);
  }, 120_000);

  it('the side-by-side table script rejects an unknown configuration by name', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, '..', 'scripts', 'bench-peer-table.ts'), '--only', 'r20-b33'],
      { encoding: 'utf8', timeout: 60_000, cwd: join(__dirname, '..') });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown configuration r20-b33; use r20-b32, r20-b128, r20-b128-nbs128, r20-b128-nbs2, r56-b128, r50-b32/);
  }, 60_000);

  it('doctor says how to get the native kernels and JPEG decoder when the addons are missing', () => {
    // a copy of the package without the built addon, sharing node_modules
    const copy = join(dir, 'no-addon');
    mkdirSync(copy);
    spawnSync('cp', ['-r', join(__dirname, '..', 'bin'), join(__dirname, '..', 'src'), join(__dirname, '..', 'package.json'), copy + '/'], { encoding: 'utf8' });
    expect(existsSync(join(copy, 'src'))).toBe(true);
    spawnSync('ln', ['-s', join(__dirname, '..', 'node_modules'), join(copy, 'node_modules')]);
    const r = spawnSync(process.execPath, [join(copy, 'bin', 'bnlab.js'), 'doctor'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, BNLAB_WASM_THREADS: '1' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/native oneDNN convolutions: not built: apt-get install -y g\+\+ libdnnl-dev && npm run build:native/);
    expect(r.stdout).toMatch(/native kernels \(dnnlConv, nativeBN, [a-zA-Z, ]+\) off/);
    expect(r.stdout).toMatch(/jpeg +native decoder not built: apt-get install -y g\+\+ libjpeg-dev && npm run build:native; image folders decode with sharp/);
    expect(r.stdout).toMatch(/^CUDA \(bnlab's own backend\) .*\n  driver: .*\n  GPUs seen: /m);
    expect(r.stdout).toMatch(/^tensorflow route \(tfjs-node-gpu, CUDA 11\.2 \+ cuDNN 8\.1 only\) /m);
  }, 60_000);
});
