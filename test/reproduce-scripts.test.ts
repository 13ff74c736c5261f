// The reproduce-*.sh helpers in scripts/common.sh that make a long reproduction resumable:
// `runs` finds an experiment's runs of one role (with or without seeds), `ev` evaluates once and
// skips an evaluation it finished before. Plus: every script parses; `reuse` links a run into a
// second experiment and `finished_runs` offers only finished runs for that.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-reproduce-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs bash with common.sh sourced (--mini, OUT pointed at `dir`) and `bnlab` recording its calls. */
const bash = (body: string) =>
  spawnSync('bash', ['-c', `set -euo pipefail; source scripts/common.sh --mini; OUT=${dir}; bnlab() { echo "$*" >> ${dir}/calls; }\n${body}`], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });

describe('scripts/common.sh', () => {
  it('sweep: --set, --slurm and the other sweep flags reach `bnlab sweep` (point the paper configs at your ImageNet)', () => {
    const r = spawnSync('bash', ['-c', `set -euo pipefail; source scripts/common.sh --mini --set data.path=/scratch/imagenet --jobs 2; bnlab() { echo "$*" >> ${dir}/sweep-calls; }; sweep cfg.yaml`], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'sweep-calls'), 'utf8').trim()).toBe('sweep --config cfg.yaml --set data.path=/scratch/imagenet --jobs 2');
  });

  it('runs: the role itself and its _seed<k> runs, only those with metrics.csv', () => {
    for (const r of ['b128', 'b128_seed0', 'b128_seed1', 'b1024_seed0']) {
      mkdirSync(join(dir, 'table1', r), { recursive: true });
      writeFileSync(join(dir, 'table1', r, 'metrics.csv'), 'epoch\n1\n');
    }
    mkdirSync(join(dir, 'table1', 'b128_seed2'), { recursive: true }); // not started: no metrics.csv
    const r = bash('runs table1 b128');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => l.slice(dir.length + 1))).toEqual(['table1/b128', 'table1/b128_seed0', 'table1/b128_seed1']);
    expect(bash('runs table1 b256').stdout).toBe('');
    writeFileSync(join(dir, 'table1', 'b128_seed0', 'summary.json'), '{\n  "finished": true\n}\n');
    writeFileSync(join(dir, 'table1', 'b128_seed1', 'summary.json'), '{\n  "finished": false\n}\n'); // still training
    expect(bash('finished_runs table1 b128').stdout.trim()).toBe(join(dir, 'table1', 'b128_seed0'));
  });

  it('ev: evaluates once, records it in the run\'s evals.done, skips it the next time; other arguments still run', () => {
    const run = join(dir, 'table1', 'b128_seed0');
    const r = bash(`ev ${run} --epoch 3 --stats ema; ev ${run} --epoch 3 --stats ema; ev ${run} --epoch 10 --stats ema`);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n')).toEqual([
      `eval --run ${run} --epoch 3 --stats ema --quiet`,
      `eval --run ${run} --epoch 10 --stats ema --quiet`,
    ]);
    expect(readFileSync(join(run, 'evals.done'), 'utf8')).toBe('--epoch 3 --stats ema\n--epoch 10 --stats ema\n');
    expect(r.stderr).toContain('already evaluated');
  });

  it('ev: a failed evaluation is not recorded (so it runs again on resume) and stops the script', () => {
    const run = join(dir, 'table1', 'b128_seed1');
    const r = spawnSync('bash', ['-c', `set -euo pipefail; source scripts/common.sh --mini; bnlab() { return 3; }; ev ${run} --stats ema; echo after`], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout).not.toContain('after');
    expect(readdirSync(run)).not.toContain('evals.done');
  });
});

describe('reproduce scripts', () => {
  const scripts = readdirSync(join(ROOT, 'scripts')).filter((f) => /^(reproduce-.*|sweep-batch-size)\.sh$/.test(f));
  it.each(scripts)('%s parses', (f) => {
    expect(spawnSync('bash', ['-n', join('scripts', f)], { cwd: ROOT }).status).toBe(0);
  });
});

describe('reuse: one run shared by two experiments', () => {
  it('links EXP/RUN to the other experiment\'s run by a relative path; never replaces what is there; no-op without the run', () => {
    mkdirSync(join(dir, 'table1', 'b128_seed0'), { recursive: true });
    const r = bash('reuse table1/b128_seed0 fig8/random_seed0; reuse table1/b128_seed0 fig8/random_seed0; reuse table1/b128_seed9 fig8/random_seed9');
    expect(r.status, r.stderr).toBe(0);
    expect(readlinkSync(join(dir, 'fig8', 'random_seed0'))).toBe('../table1/b128_seed0');
    expect(realpathSync(join(dir, 'fig8', 'random_seed0'))).toBe(realpathSync(join(dir, 'table1', 'b128_seed0')));
    expect(existsSync(join(dir, 'fig8', 'random_seed9'))).toBe(false);
    expect(r.stderr).not.toContain('note:'); // an existing link is what was asked for
    mkdirSync(join(dir, 'fig8', 'random_seed1'));
    const kept = bash('reuse table1/b128_seed0 fig8/random_seed1');
    expect(kept.status).toBe(0);
    expect(lstatSync(join(dir, 'fig8', 'random_seed1')).isSymbolicLink()).toBe(false);
    expect(kept.stderr).toMatch(/fig8\/random_seed1 is a run folder of its own, not a link to .*table1\/b128_seed0/);
  });
});
