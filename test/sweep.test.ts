// `bnlab sweep`: grid expansion and run names, errors that stop a sweep before anything trains,
// skip/resume of real (tiny, seconds-long) runs, and the Slurm array script.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/load.js';
import { readMetrics } from '../src/run/metrics.js';
import { BNLAB_BIN } from '../src/sweep/local.js';
import { shq, writeSlurm } from '../src/sweep/slurm.js';
import { etaOf, trackSweep } from '../src/sweep/progress.js';
import type { SweepRun } from '../src/sweep/spec.js';
import { expandGrid, formatValue, loadSweep } from '../src/sweep/spec.js';
import { runStatus } from '../src/sweep/status.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnlab-sweep-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(tmp, name);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, text);
  return p;
};
// A run of this config trains in ~2 s on wasm.
export const TINY = `epochs: 1
threads: 1
data: {name: synthetic, synthetic: {classes: 4, train: 128, val: 64, size: 8}}
model: {depth: 8, width: 4}
bn: {nbs: 8}
optim: {batch_size: 32}
precise: {samples: 64, batch_size: 16}
eval: {batch_size: 64}
`;
file('cfg/tiny.yaml', TINY);

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}
const sweepFile = (name: string, body: string) => file(name, `base: cfg/tiny.yaml\nout: ${join(tmp, 'out', name)}\n${body}`);
const bnlab = (...args: string[]) => spawnSync(process.execPath, [BNLAB_BIN, ...args], { encoding: 'utf8', timeout: 200_000 });

describe('sweep grid', () => {
  it('is the cartesian product with the last key varying fastest', () => {
    expect(expandGrid({ a: [1, 2], b: ['x', 'y', 'z'] })).toEqual([
      { a: 1, b: 'x' }, { a: 1, b: 'y' }, { a: 1, b: 'z' },
      { a: 2, b: 'x' }, { a: 2, b: 'y' }, { a: 2, b: 'z' },
    ]);
    expect(expandGrid({})).toEqual([{}]);
  });

  it('formats values so --set reads them back unchanged', () => {
    for (const v of [32, 0.1, true, null, 'synthetic', '30', 'a: b', [30, 60, 90]]) expect(parseYaml(formatValue(v as never))).toEqual(v);
  });

  it('resolves every point, names runs from the template or key=value, and crosses variants with the grid', () => {
    const s = loadSweep(sweepFile('a.yaml', 'set: {optim.base_lr: 0.4}\ngrid:\n  bn.nbs: [8, 2]\n  optim.batch_size: [32, 64]\nname: "nbs{bn.nbs}_b{optim.batch_size}"\n'));
    expect(s.base).toEqual([join(tmp, 'cfg/tiny.yaml')]); // relative to the sweep file
    expect(s.runs.map((r) => r.name)).toEqual(['nbs8_b32', 'nbs8_b64', 'nbs2_b32', 'nbs2_b64']);
    expect(s.runs[1].sets).toEqual(['optim.base_lr=0.4', 'bn.nbs=8', 'optim.batch_size=64']);
    expect(s.runs[3].cfg.bn.nbs).toBe(2);
    expect(s.runs[3].cfg.optim.base_lr).toBe(0.4);
    expect(s.runs[3].dir).toBe(join(s.out, 'nbs2_b64'));

    const d = loadSweep(sweepFile('b.yaml', 'grid: {bn.nbs: [8, 4]}\nvariants:\n  - {optim.batch_size: 32}\n  - {optim.batch_size: 64, optim.warmup_epochs: 1}\n'));
    expect(d.runs.map((r) => r.name)).toEqual([
      'optim.batch_size=32_bn.nbs=8', 'optim.batch_size=32_bn.nbs=4',
      'optim.batch_size=64_optim.warmup_epochs=1_bn.nbs=8', 'optim.batch_size=64_optim.warmup_epochs=1_bn.nbs=4',
    ]);
    expect(d.runs[2].cfg.optim.warmup_epochs).toBe(1);
  });

  it('stops on typos and invalid points before anything runs, naming the key and the nearest valid one', () => {
    expect(errorOf(() => loadSweep(sweepFile('c.yaml', 'grid: {bn.nbz: [8, 4]}\n')))).toMatch(/unknown key 'bn.nbz' \(did you mean 'bn.nbs'\?\)/);
    expect(errorOf(() => loadSweep(sweepFile('d.yaml', 'gird: {bn.nbs: [8]}\n')))).toMatch(/unknown key 'gird' \(did you mean 'grid'\?\)/);
    expect(errorOf(() => loadSweep(sweepFile('e.yaml', 'grid: {bn.nbs: 8}\n')))).toMatch(/grid.bn.nbs: .*array/i);
    expect(errorOf(() => loadSweep(sweepFile('f.yaml', 'grid: {bn.nbs: [8, 3]}\n')))).toMatch(/at grid point bn.nbs=3: [\s\S]*not a multiple of NBS 3/);
    expect(errorOf(() => loadSweep(sweepFile('g.yaml', 'grid: {bn.nbs: [8, 4]}\nname: "n{bn.nb}"\n')))).toMatch(/'\{bn.nb\}' is not a config key \(did you mean '\{bn.nbs\}'\?\)/);
    expect(errorOf(() => loadSweep(sweepFile('h.yaml', 'grid: {bn.nbs: [8, 4]}\nname: fixed\n')))).toMatch(/both named 'fixed'/);
    expect(errorOf(() => loadSweep(join(tmp, 'missing.yaml')))).toMatch(/sweep file not found/);
    // The CLI says the same and exits 2 (a config error), without creating run folders.
    const r = bnlab('sweep', '--config', join(tmp, 'c.yaml'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/did you mean 'bn.nbs'/);
    expect(existsSync(join(tmp, 'out', 'c.yaml'))).toBe(false);
  }, 60_000);
});

describe('sweep runs', () => {
  it('trains every point, skips finished runs, resumes unfinished ones, and reports failures with their log', () => {
    const out = join(tmp, 'out', 'runs');
    const one = sweepFile('runs1.yaml', `grid: {bn.nbs: [8, 4]}\nname: "nbs{bn.nbs}"\n`);
    const dry = bnlab('sweep', '--config', one, '--out', out, '--jobs', '2', '--dry-run');
    expect(dry.status, dry.stderr).toBe(0);
    const r1 = bnlab('sweep', '--config', one, '--out', out, '--jobs', '2');
    expect(r1.status, r1.stdout + r1.stderr).toBe(0);
    // the dry run printed exactly the commands that ran (parallel CPU runs share the cores: threads=)
    const planned = dry.stdout.split('\n').filter((l) => l.startsWith('    bnlab ')).map((l) => l.trim());
    const ran = ['nbs8', 'nbs4'].map((n) => readFileSync(join(out, 'logs', `${n}.log`), 'utf8').split('\n').find((l) => l.startsWith('$ bnlab '))!.slice(2));
    expect(planned).toEqual(ran);
    expect(planned[0]).toMatch(/--set threads=\d+/);
    expect(r1.stdout).toMatch(/\[1\/2\] nbs8: start/);
    expect(r1.stdout).toMatch(/\[2\/2\] nbs4: done in .*epoch 1: val_err_ema \d+\.\d\d {2}val_err_precise \d+\.\d\d/);
    expect(readMetrics(join(out, 'nbs8', 'metrics.csv'))).toHaveLength(1);

    // Same runs with 2 epochs: each has last.ckpt after epoch 1, so it resumes rather than restarts.
    const two = sweepFile('runs2.yaml', `set: {epochs: 2}\ngrid: {bn.nbs: [8, 4]}\nname: "nbs{bn.nbs}"\n`);
    expect(loadSweep(two, out).runs.map((r) => runStatus(r).state)).toEqual(['resume', 'resume']);
    const r2 = bnlab('sweep', '--config', two, '--out', out);
    expect(r2.status, r2.stdout + r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/nbs8: start \(resuming after epoch 1\)/);
    expect(readMetrics(join(out, 'nbs4', 'metrics.csv')).map((row) => row.epoch)).toEqual(['1', '2']);
    expect(readFileSync(join(out, 'logs', 'nbs4.log'), 'utf8')).toMatch(/--auto-resume/);
    expect(readFileSync(join(out, 'nbs4', 'train.log'), 'utf8')).toMatch(/resuming .*nbs4 at epoch 2/);

    const r3 = bnlab('sweep', '--config', two, '--out', out);
    expect(r3.status).toBe(0);
    expect(r3.stdout).toMatch(/nbs8: finished, skipped \(epoch 2: val_err_ema/);
    expect(r3.stdout).not.toMatch(/start/);

    // A sweep file that gained report.roles adds them to its finished runs' config.yaml, that key
    // alone; a second sweep sharing a run adds its own (roles accumulate), nothing retrains.
    const cfgOf = (run: string) => parseYaml(readFileSync(join(out, run, 'config.yaml'), 'utf8'));
    const before = cfgOf('nbs8');
    const roles = sweepFile('roles.yaml', `set: {epochs: 2}\nvariants:\n  - {bn.nbs: 8, report.roles: [table2.regular-nbs]}\n  - {bn.nbs: 4, report.roles: [table2.small-nbs]}\nname: "nbs{bn.nbs}"\n`);
    const r5 = bnlab('sweep', '--config', roles, '--out', out);
    expect(r5.status, r5.stdout + r5.stderr).toBe(0);
    expect(r5.stdout).toMatch(/nbs8: finished; report.roles now table2.regular-nbs \(added to its config.yaml\)/);
    expect(r5.stdout).not.toMatch(/start/);
    expect(cfgOf('nbs8')).toEqual({ ...before, report: { roles: ['table2.regular-nbs'] } });
    const more = sweepFile('roles2.yaml', `set: {epochs: 2, report.roles: [table1.small-batch]}\ngrid: {bn.nbs: [8]}\nname: "nbs{bn.nbs}"\n`);
    expect(bnlab('sweep', '--config', more, '--out', out).status).toBe(0);
    expect(cfgOf('nbs8').report.roles).toEqual(['table1.small-batch', 'table2.regular-nbs']);
    expect(bnlab('sweep', '--config', more, '--out', out).stdout).not.toMatch(/report.roles now/); // nothing new: untouched
    expect(readMetrics(join(out, 'nbs8', 'metrics.csv')).map((row) => row.epoch)).toEqual(['1', '2']);

    // A folder holding a different config is an error, not a silently "finished" run.
    const other = sweepFile('runs3.yaml', `set: {seed: 5}\ngrid: {bn.nbs: [8]}\nname: "nbs{bn.nbs}"\n`);
    expect(bnlab('sweep', '--config', other, '--out', out).stderr).toMatch(/holds a run with a different config \(seed\)/);

    // One failing run: the other still finishes, the sweep exits 1 and names the log.
    const bad = sweepFile('bad.yaml', `grid: {max_loss: [1000, 0.001]}\nname: "ml{max_loss}"\n`);
    const r4 = bnlab('sweep', '--config', bad, '--out', join(tmp, 'out', 'bad'), '--jobs', '1');
    expect(r4.status).toBe(1);
    expect(r4.stdout).toMatch(/ml1000: done/);
    expect(r4.stdout).toMatch(/ml0.001: FAILED \(exit 1\).*log: .*logs\/ml0\.001\.log/);
  }, 300_000);
});

describe('shipped sweeps', () => {
  // Every configs/{paper,mini} sweep resolves (the data engineer's imagefolder key included).
  for (const scale of ['paper', 'mini']) {
    for (const f of readdirSync(join('configs', scale)).filter((n) => n.endsWith('.sweep.yaml'))) {
      it(`${scale}/${f} validates every run`, () => {
        const s = loadSweep(join('configs', scale, f), join(tmp, 'shipped', scale, f));
        expect(s.runs.length).toBeGreaterThanOrEqual(1);
        if (scale === 'paper') for (const r of s.runs) expect([r.cfg.data.name, r.cfg.model.arch, r.cfg.precise.samples]).toEqual(['imagefolder', 'resnet50', 10000]);
      });
    }
  }
});

describe('stopping a sweep', () => {
  it('SIGTERM (Slurm, kill) reaches the running run once: it saves a checkpoint, the sweep exits 130, nothing keeps running', async () => {
    const f = sweepFile('stop.yaml', `set: {epochs: 400}\ngrid: {seed: [0]}\nname: "s{seed}"\n`);
    const dir = join(loadSweep(f).out, 's0');
    const child = spawn(process.execPath, [BNLAB_BIN, 'sweep', '--config', f, '--quiet'], { stdio: 'ignore' });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    for (let i = 0; i < 1200 && readMetrics(join(dir, 'metrics.csv')).length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGTERM');
    expect(await exited).toBe(130);
    const log = readFileSync(join(dir, 'train.log'), 'utf8');
    expect(log).toMatch(/interrupted (at|after) epoch \d+.*checkpoint saved/);
    expect(log).not.toMatch(/second/); // one signal, not two
    expect(existsSync(join(dir, '.bnlab.lock'))).toBe(false); // the run's process has ended
  }, 120_000);
});

describe('sweep --set', () => {
  it('applies to every run after the file\'s set and is recorded in its config; a key the sweep varies is refused', () => {
    const f = sweepFile('extra.yaml', `set: {precise.samples: 64}\ngrid: {bn.nbs: [8, 4]}\nname: "nbs{bn.nbs}"\n`);
    const s = loadSweep(f, undefined, ['precise.samples=32', 'data.path=/scratch/imagenet']);
    for (const r of s.runs) {
      expect(r.cfg.precise.samples).toBe(32);
      expect(r.cfg.data.path).toBe('/scratch/imagenet');
      expect(r.sets).toContain('data.path=/scratch/imagenet');
    }
    expect(() => loadSweep(f, undefined, ['bn.nbs=2'])).toThrow(/--set bn\.nbs=2: the sweep .* varies bn\.nbs/);
  });
});

describe('slurm script', () => {
  it('--slurm --dry-run prints the array script and writes nothing', () => {
    const f = sweepFile('dry.yaml', `grid: {bn.nbs: [8, 4]}\nname: "nbs{bn.nbs}"\n`);
    const r = bnlab('sweep', '--config', f, '--slurm', '--dry-run');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/would write .*sweep\.sbatch \(2 array tasks\)/);
    expect(r.stdout).toMatch(/#SBATCH --array=0-1\n/);
    expect(existsSync(loadSweep(f).out)).toBe(false);
  });

  it('writes an array job over the unfinished runs with the requested resources', () => {
    const s = loadSweep(sweepFile('slurm.yaml', `set: {optim.steps: [30, 60]}\ngrid: {bn.nbs: [8, 4, 2]}\nname: "nbs{bn.nbs}"\n`));
    const arrays = writeSlurm(s, s.runs, { jobs: 2, gpusPerTask: 1, partition: 'gpu', time: '48:00:00', cpusPerTask: 8, cwd: '/work' });
    expect(arrays).toHaveLength(1); // no forks: one array
    const { script, list } = arrays[0];
    const text = readFileSync(script, 'utf8');
    for (const line of ['#SBATCH --array=0-2%2', '#SBATCH --gres=gpu:1', '#SBATCH --partition=gpu', '#SBATCH --time=48:00:00', '#SBATCH --cpus-per-task=8', '#SBATCH --chdir=/work', `#SBATCH --output=${s.out}/logs/slurm-%A_%a.out`]) {
      expect(text).toContain(line);
    }
    expect(text).toContain(`train --config ${s.base[0]} "\${args[@]}"`);
    expect(text).toMatch(/mode=\(--auto-resume\)/);
    expect(readFileSync(list, 'utf8').split('\n')[2]).toBe(`nbs2\t1\t-\t--set ${shq('optim.steps=[30,60]')} --set bn.nbs=2`);
    execFileSync('bash', ['-n', script]); // valid bash

    const [cpu] = writeSlurm(s, s.runs.slice(1), { gpusPerTask: 0, cwd: '/work' });
    const t2 = readFileSync(cpu.script, 'utf8');
    expect(t2).toContain('#SBATCH --array=0-1\n');
    expect(t2).not.toMatch(/--gres|--partition|--time/);
  });
});

describe('sweep progress (runs train --quiet; the sweep reports their epochs and its ETA)', () => {
  const root = mkdtempSync(join(tmpdir(), 'bnlab-sweep-progress-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const fake = (name: string, epochs: number) => ({ name, dir: join(root, name), cfg: { epochs } }) as unknown as SweepRun;
  const epochsTo = (r: SweepRun, n: number) => {
    mkdirSync(r.dir, { recursive: true });
    writeFileSync(join(r.dir, 'metrics.csv'), ['epoch,lr,val_err_ema', ...Array.from({ length: n }, (_, i) => `${i + 1},0.1,50`)].join('\n') + '\n');
  };
  it('counts epochs over all runs from their metrics.csv, resumed runs from where they stood, with an ETA once an epoch is done', () => {
    const [a, b] = [fake('a', 4), fake('b', 6)];
    epochsTo(b, 2); // b resumes after epoch 2: 4 + 4 epochs to go
    const lines: string[] = [];
    const p = trackSweep([a, b], { tty: false, intervalSeconds: 0, print: (l) => lines.push(l) });
    p.tick();
    expect(lines.at(-1)).toBe('sweep: 0/8 epochs, 0/2 runs done');
    epochsTo(a, 4);
    epochsTo(b, 3);
    p.tick();
    expect(lines.at(-1)).toMatch(/^sweep: 5\/8 epochs, 1\/2 runs done, ETA \d/);
  });
  it('prints nothing when quiet, and at most once per interval otherwise', () => {
    const r = fake('c', 2);
    const lines: string[] = [];
    trackSweep([r], { quiet: true, tty: false, intervalSeconds: 0, print: (l) => lines.push(l) }).tick();
    expect(lines).toEqual([]);
    const p = trackSweep([r], { tty: false, intervalSeconds: 3600, print: (l) => lines.push(l) });
    p.tick();
    p.tick();
    expect(lines).toEqual([]);
  });
  it('ETA = seconds so far x units left / units done', () => {
    expect(etaOf(0, 10, 60)).toBeNull();
    expect(etaOf(2, 6, 60)).toBe('3m00s');
  });
});
