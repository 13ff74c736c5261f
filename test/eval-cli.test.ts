// `bnlab eval` as a user runs it, on one tiny FrozenBN run (2 epochs, the last frozen, a
// checkpoint every epoch) and one plain run: JSON and eval.csv, each statistics source, the
// checkpoint choice, the PreciseBN knobs (estimator, N, B, where statistics come from) and
// the errors bad flags give. Also `bnlab sweep --gpus`: the GPU each child `bnlab train` sees.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMetrics } from '../src/run/metrics.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const env: NodeJS.ProcessEnv = { ...process.env, BNLAB_WASM_THREADS: '1' };
const dir = mkdtempSync(join(tmpdir(), 'bnlab-eval-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Out { status: number | null; stdout: string; stderr: string }
const bnlab = (args: string[]): Out => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, env });
/** The same, without blocking: independent commands run side by side (each pays tsx + tfjs start-up). */
const bnlabAsync = (args: string[]) =>
  new Promise<Out>((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { env });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });

const COLUMNS = ['epoch', 'stats', 'stats_data', 'data', 'samples', 'batch', 'estimator', 'repeats', 'err_mean', 'err_std', 'errs'];
type Row = Record<(typeof COLUMNS)[number], string | number | null>;
const VAL = 256;
const config = (frozen: number, epochs: number) => `epochs: ${epochs}
backend: wasm
threads: 1
data: {name: synthetic, synthetic: {classes: 4, train: 192, val: ${VAL}, size: 8, channels: 1, seed: 3}}
model: {depth: 8, width: 4}
bn: {nbs: 8, frozen_last_epochs: ${frozen}}
optim: {batch_size: 32, base_lr: 3.2}
precise: {samples: 64, batch_size: 16}
eval: {batch_size: 64}
checkpoint_every: 1
`;
const frozenRun = join(dir, 'frozen');
const plainRun = join(dir, 'plain');
/** err (%, 4 decimals) is a whole number of errors out of n images. */
const wholeOf = (err: unknown, n: number) => Math.abs((Number(err) * n) / 100 - Math.round((Number(err) * n) / 100)) < 0.01;
const evalCsv = (run: string) => readMetrics(join(run, 'eval.csv'));
/** `bnlab eval --json` on the FrozenBN run: its rows (after checking the exit code). */
const evalJson = async (args: string[], run = frozenRun): Promise<{ checkpoint: string; rows: Row[] }> => {
  const r = await bnlabAsync(['eval', '--run', run, '--json', ...args]);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

beforeAll(async () => {
  writeFileSync(join(dir, 'frozen.yaml'), config(1, 2));
  writeFileSync(join(dir, 'plain.yaml'), config(0, 1));
  const [a, b] = await Promise.all([
    bnlabAsync(['train', '--config', join(dir, 'frozen.yaml'), '--out', frozenRun, '--quiet']),
    bnlabAsync(['train', '--config', join(dir, 'plain.yaml'), '--out', plainRun, '--quiet']),
  ]);
  expect(a.status, a.stderr).toBe(0);
  expect(b.status, b.stderr).toBe(0);
}, 120_000);

describe('bnlab eval', () => {
  it('--json has one row per requested source with every eval.csv column; eval.csv gets the same rows', async () => {
    const before = evalCsv(frozenRun).length;
    const { checkpoint, rows } = await evalJson(['--stats', 'ema,precise,minibatch,frozen', '--batch', '8']);
    expect(checkpoint).toBe(join(frozenRun, 'checkpoints', 'last.ckpt'));
    expect(rows.map((r) => r.stats)).toEqual(['ema', 'precise', 'minibatch', 'frozen']);
    for (const r of rows) {
      expect(Object.keys(r).sort()).toEqual([...COLUMNS, 'evaluated'].sort());
      // JSON types: numbers as numbers, the per-repeat errors as an array, absent values null.
      expect(Array.isArray(r.errs) && r.errs.every((e: unknown) => typeof e === 'number')).toBe(true);
      expect(r.evaluated).toBe(VAL);
      expect(r.epoch).toBe(2);
      expect(r.repeats).toBe(1);
      expect(r.err_mean).toBeGreaterThanOrEqual(0);
      expect(r.err_mean).toBeLessThanOrEqual(100);
      expect(wholeOf(r.err_mean, VAL)).toBe(true); // errors over all the validation images
    }
    const [, precise, minibatch] = rows;
    expect(precise).toMatchObject({ samples: 64, batch: 8, estimator: 'pooled' }); // --batch re-estimates PreciseBN
    expect(minibatch.batch).toBe(8);
    const csv = evalCsv(frozenRun);
    expect(csv).toHaveLength(before + 4);
    const added = csv.slice(before);
    for (let i = 0; i < rows.length; i++) {
      for (const c of COLUMNS) {
        if (c === 'err_mean' || c === 'err_std') expect(Number(added[i][c])).toBeCloseTo(Number(rows[i][c]), 4);
        else if (c === 'errs') expect(added[i][c]).toBe((rows[i][c] as unknown as number[]).map((e) => e.toFixed(4)).join(';'));
        else expect(added[i][c], `${rows[i].stats}.${c}`).toBe(String(rows[i][c] ?? ''));
      }
    }
    // The table without --json prints the same errors and appends again.
    const t = bnlab(['eval', '--run', frozenRun, '--stats', 'ema,frozen', '--quiet']);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toContain('@ epoch 2');
    expect(t.stdout).toMatch(new RegExp(`ema\\s+val\\s+${VAL}\\s+${Number(rows[0].err_mean).toFixed(2)}`));
    expect(t.stdout).toMatch(new RegExp(`frozen\\s+val\\s+${VAL}\\s+${Number(rows[3].err_mean).toFixed(2)}`));
    expect(evalCsv(frozenRun)).toHaveLength(before + 6);
  }, 120_000);

  it('--stats frozen reproduces the FrozenBN epoch\'s val_err_frozen; a run without FrozenBN refuses it naming bn.frozen_last_epochs', async () => {
    const metrics = readMetrics(join(frozenRun, 'metrics.csv'));
    expect(metrics.map((m) => m.bn_mode)).toEqual(['batch', 'frozen']);
    const [{ rows }, plain, earlier] = await Promise.all([
      evalJson(['--stats', 'frozen,ema']),
      bnlabAsync(['eval', '--run', plainRun, '--stats', 'frozen', '--quiet']),
      bnlabAsync(['eval', '--run', frozenRun, '--epoch', '1', '--stats', 'frozen', '--quiet']),
    ]);
    expect(rows[0].err_mean).toBeCloseTo(Number(metrics[1].val_err_frozen), 3);
    // ... and it is not just any population statistics: the EMA gives another error here.
    expect(rows[1].err_mean).not.toBeCloseTo(Number(rows[0].err_mean), 3);
    expect(plain.status).toBe(2);
    expect(plain.stderr).toContain('bn.frozen_last_epochs');
    expect(plain.stderr).toContain('--stats frozen');
    // every mode is checked before any is computed: frozen last in the list still fails first
    const all = await bnlabAsync(['eval', '--run', plainRun, '--stats', 'ema,precise,minibatch,frozen', '--json']);
    expect(all.status).toBe(2);
    expect(all.stderr).toContain('--stats frozen');
    expect(all.stdout).toBe('');
    expect(existsSync(join(plainRun, 'eval.csv'))).toBe(false); // nothing appended
    // the epoch before the switch has no frozen statistics either
    expect(earlier.status).toBe(2);
    expect(earlier.stderr).toContain('no FrozenBN statistics');
  }, 120_000);

  it('--estimator mean-of-var and pooled at --batch 2 are both recorded and give different errors', async () => {
    const before = evalCsv(frozenRun).length;
    // At B = 2 the estimators differ only by the spread of the batch means, a small effect on
    // the error of this tiny model (a few of 256 images): compare 3 repeats (other samples each).
    const [mv, pooled] = await Promise.all([
      evalJson(['--stats', 'precise', '--batch', '2', '--estimator', 'mean-of-var', '--repeats', '3']),
      evalJson(['--stats', 'precise', '--batch', '2', '--estimator', 'pooled', '--repeats', '3']),
    ]);
    expect(mv.rows[0]).toMatchObject({ stats: 'precise', batch: 2, samples: 64, estimator: 'mean-of-var', repeats: 3 });
    expect(pooled.rows[0]).toMatchObject({ stats: 'precise', batch: 2, samples: 64, estimator: 'pooled', repeats: 3 });
    expect(mv.rows[0].errs).toHaveLength(3);
    expect(mv.rows[0].errs).not.toEqual(pooled.rows[0].errs);
    const added = evalCsv(frozenRun).slice(before);
    expect(added.map((r) => [r.estimator, r.batch, r.repeats]).sort()).toEqual([['mean-of-var', '2', '3'], ['pooled', '2', '3']]);
  }, 120_000);

  it('--epoch N and --checkpoint FILE pick the checkpoint; a missing epoch is a clear error', async () => {
    const epoch1 = join(frozenRun, 'checkpoints', 'epoch-0001.ckpt');
    const [e1, file, missing] = await Promise.all([
      evalJson(['--stats', 'ema', '--epoch', '1']),
      evalJson(['--stats', 'ema', '--checkpoint', epoch1]),
      bnlabAsync(['eval', '--run', frozenRun, '--epoch', '7', '--quiet']),
    ]);
    // (the default, last.ckpt = epoch 2, is checked in the first test)
    expect(e1.rows[0].epoch).toBe(1);
    expect(e1.checkpoint).toBe(epoch1);
    expect(file.checkpoint).toBe(epoch1);
    expect(file.rows[0]).toMatchObject({ epoch: 1, err_mean: e1.rows[0].err_mean });
    // the EMA of epoch 1 is the one training reported after epoch 1
    expect(e1.rows[0].err_mean).toBeCloseTo(Number(readMetrics(join(frozenRun, 'metrics.csv'))[0].val_err_ema), 3);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('checkpoint not found');
    expect(missing.stderr).toContain('epoch-0007.ckpt');
  }, 120_000);

  it('--stats-data from the validation split evaluates on the rest of it; corrupted statistics change the error', async () => {
    const [same, clean, contrast] = await Promise.all([
      // N = all but one validation image: the evaluation keeps the one left (error 0 or 100 %)
      evalJson(['--stats', 'precise', '--stats-data', 'split=val,augment=false', '--data', 'split=val', '--samples', String(VAL - 1)]),
      evalJson(['--stats', 'precise', '--stats-data', 'split=val', '--samples', '32']),
      evalJson(['--stats', 'precise', '--stats-data', 'split=val,corruption.type=contrast,corruption.severity=5', '--samples', '32']),
    ]);
    expect(same.rows[0]).toMatchObject({ stats_data: 'split=val,augment=false', data: 'split=val', samples: VAL - 1 });
    expect([0, 100]).toContain(same.rows[0].err_mean);
    const csv = evalCsv(frozenRun);
    expect(csv.some((r) => r.stats_data === 'split=val,augment=false' && r.data === 'split=val' && r.samples === String(VAL - 1))).toBe(true);
    // VAL - 32 images left, and said so
    expect(wholeOf(clean.rows[0].err_mean, VAL - 32)).toBe(true);
    expect(clean.rows[0].evaluated).toBe(VAL - 32);
    expect(same.rows[0].evaluated).toBe(1);
    const table = await bnlabAsync(['eval', '--run', frozenRun, '--quiet', '--stats', 'ema,precise', '--stats-data', 'split=val', '--samples', '32']);
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`precise\\s+32\\s.*\\s${VAL - 32}\\s`));
    expect(table.stdout).toContain(`precise evaluated on ${VAL - 32} of ${VAL} images`);
    expect(contrast.rows[0].stats_data).toBe('split=val,corruption.type=contrast,corruption.severity=5');
    expect(contrast.rows[0].data).toBe('');
    expect(contrast.rows[0].err_mean).not.toBe(clean.rows[0].err_mean);
  }, 120_000);

  it("the run's own PreciseBN statistics are recorded with the N and B its pass used", async () => {
    // config: precise.samples 64, batch_size 16, of 192 training images
    const { rows } = await evalJson(['--stats', 'precise']);
    expect(rows[0]).toMatchObject({ samples: 64, batch: 16 });
    const big = join(dir, 'bigN');
    writeFileSync(join(dir, 'bigN.yaml'), config(0, 1).replace('precise: {samples: 64, batch_size: 16}', 'precise: {samples: 500, batch_size: 1000}'));
    expect(bnlab(['train', '-c', join(dir, 'bigN.yaml'), '--out', big, '--quiet']).status).toBe(0);
    const r = await evalJson(['--stats', 'precise'], big);
    expect(r.rows[0]).toMatchObject({ samples: 192, batch: 192 });
  }, 120_000);

  it('--samples 16 --batch 16 (B = N) runs and records B = N', async () => {
    const { rows } = await evalJson(['--stats', 'precise', '--samples', '16', '--batch', '16']);
    expect(rows[0]).toMatchObject({ samples: 16, batch: 16, estimator: 'pooled' });
    // B > N is recorded as B = N
    const big = await evalJson(['--stats', 'precise', '--samples', '16', '--batch', '64']);
    expect(big.rows[0]).toMatchObject({ samples: 16, batch: 16, err_mean: rows[0].err_mean });
  }, 120_000);

  it('bad flags exit 2 naming the flag, and append nothing', async () => {
    const before = evalCsv(frozenRun).length;
    const cases: [string[], string][] = [
      [['--stats', 'ema,median'], "--stats: unknown source 'median'"],
      [['--repeats', '0'], '--repeats must be an integer >= 1'],
      [['--estimator', 'foo'], "--estimator must be pooled or mean-of-var, got 'foo'"],
      // statistics from every validation image would leave none to evaluate
      [['--stats', 'precise', '--stats-data', 'split=val', '--data', 'split=val', '--samples', String(VAL)], `--samples ${VAL}: the statistics would take every image of split=val`],
      // ... also when another mode comes first in the list (checked before any is computed)
      [['--stats', 'ema,precise', '--stats-data', 'split=val', '--data', 'split=val', '--samples', String(VAL)], `--samples ${VAL}: the statistics would take every image`],
    ];
    const outs = await Promise.all(cases.map(([a]) => bnlabAsync(['eval', '--run', frozenRun, '--quiet', ...a])));
    outs.forEach((r, i) => {
      expect(r.status, cases[i][0].join(' ')).toBe(2);
      expect(r.stderr).toContain(cases[i][1]);
    });
    expect(evalCsv(frozenRun)).toHaveLength(before);
  }, 120_000);
});

describe('bnlab sweep --gpus', () => {
  it('gives each parallel run its own GPU through CUDA_VISIBLE_DEVICES, as the child process sees it', async () => {
    const sw = join(dir, 'sweep');
    // A preload module, inherited through NODE_OPTIONS by every node process the sweep starts,
    // records each process's own CUDA_VISIBLE_DEVICES and arguments: the children's environment
    // observed from inside them, not the sweep's account of what it passed.
    const probe = join(dir, 'probe.mjs');
    const seen = join(dir, 'probe.jsonl');
    writeFileSync(
      probe,
      "import { appendFileSync } from 'node:fs';\n" +
        'appendFileSync(process.env.BNLAB_TEST_PROBE, JSON.stringify({ pid: process.pid, cuda: process.env.CUDA_VISIBLE_DEVICES ?? null, argv: process.argv.slice(2) }) + "\\n");\n',
    );
    writeFileSync(join(dir, 'tiny-sweep-base.yaml'), config(0, 1));
    const file = join(dir, 'gpus.sweep.yaml');
    writeFileSync(file, `base: tiny-sweep-base.yaml\nout: ${sw}\ngrid:\n  seed: [1, 2]\nname: "s{seed}"\n`);
    const sweepEnv: NodeJS.ProcessEnv = { ...env, BNLAB_TEST_PROBE: seen, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import=${pathToFileURL(probe).href}`.trim() };
    delete sweepEnv.CUDA_VISIBLE_DEVICES;
    const r = spawnSync(process.execPath, [BIN, 'sweep', '--config', file, '--gpus', '0,1', '--jobs', '2'], { encoding: 'utf8', timeout: 200_000, env: sweepEnv });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/s1: start on GPU 0/);
    expect(r.stdout).toMatch(/s2: start on GPU 1/);
    const procs = readFileSync(seen, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { pid: number; cuda: string | null; argv: string[] });
    const sweepProc = procs.filter((p) => p.argv[0] === 'sweep');
    expect(sweepProc).toHaveLength(1);
    expect(sweepProc[0].cuda).toBeNull();
    const gpuOf = (run: string) => {
      const ps = procs.filter((p) => p.argv[0] === 'train' && p.argv[p.argv.indexOf('--out') + 1] === join(sw, run));
      expect(ps, run).toHaveLength(1);
      return ps[0].cuda;
    };
    expect(gpuOf('s1')).toBe('0');
    expect(gpuOf('s2')).toBe('1');
    // the runs' logs name the device too, and both runs finished
    expect(readFileSync(join(sw, 'logs', 's1.log'), 'utf8')).toContain('(CUDA_VISIBLE_DEVICES=0)');
    expect(readFileSync(join(sw, 'logs', 's2.log'), 'utf8')).toContain('(CUDA_VISIBLE_DEVICES=1)');
    for (const run of ['s1', 's2']) expect(readMetrics(join(sw, run, 'metrics.csv'))).toHaveLength(1);
  }, 200_000);
});
