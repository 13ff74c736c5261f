// A real `bnlab sweep --slurm --submit` against a running Slurm (one node on localhost in CI).
// Not skipped when Slurm is missing: it fails and says how to start one (scripts/ci-slurm-setup.sh).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMetrics } from '../src/run/metrics.js';
import { BNLAB_BIN } from '../src/sweep/local.js';

const SETUP = 'scripts/ci-slurm-setup.sh';
const tmp = mkdtempSync(join(tmpdir(), 'bnlab-slurm-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });

function requireSlurm(): void {
  const ping = sh('scontrol', ['ping']);
  const why = ping.error ? `scontrol not found (${ping.error.message}); apt-get install -y slurm-wlm` : !/UP/.test(ping.stdout) ? `no slurmctld answers (${(ping.stdout + ping.stderr).trim().split('\n')[0]})` : '';
  const nodes = why ? '' : sh('sinfo', ['-h', '-o', '%T']).stdout;
  const reason = why || (/idle|mixed|allocated|completing/.test(nodes) ? '' : `no usable node (sinfo: ${nodes.trim() || 'empty'})`);
  if (reason) throw new Error(`Slurm is not running: ${reason}.\nStart a one-node Slurm on localhost with: sudo bash ${SETUP}  (idempotent, a second or two)`);
}

describe('slurm', () => {
  it('submits a sweep as an array job that trains every run', async () => {
    requireSlurm();
    writeFileSync(
      join(tmp, 'tiny.yaml'),
      `epochs: 1
data: {name: synthetic, synthetic: {classes: 4, train: 128, val: 64, size: 8}}
model: {depth: 8, width: 4}
optim: {batch_size: 32}
precise: {samples: 64, batch_size: 16}
eval: {batch_size: 64}
`,
    );
    writeFileSync(join(tmp, 'sweep.yaml'), `base: tiny.yaml\nout: ${join(tmp, 'out')}\ngrid: {bn.nbs: [8, 4]}\nname: "nbs{bn.nbs}"\n`);
    const out = execFileSync(process.execPath, [BNLAB_BIN, 'sweep', '--config', join(tmp, 'sweep.yaml'), '--slurm', '--submit', '--jobs', '2', '--cpus-per-task', '1', '--time', '10:00'], {
      encoding: 'utf8',
    });
    const id = out.trim().split('\n').at(-1)!;
    expect(id, out).toMatch(/^\d+$/);

    // Wait until the array leaves the queue (~10 s on 2 cores), then check what it wrote.
    const deadline = Date.now() + 120_000;
    while (sh('squeue', ['-h', '-j', id]).stdout.trim() !== '') {
      if (Date.now() > deadline) {
        sh('scancel', [id]);
        throw new Error(`Slurm job ${id} still queued/running after 120 s:\n${sh('squeue', ['-j', id]).stdout}\nlogs: ${join(tmp, 'out', 'logs')}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    for (const run of ['nbs8', 'nbs4']) {
      const rows = readMetrics(join(tmp, 'out', run, 'metrics.csv'));
      const logs = spawnSync('sh', ['-c', `cat ${join(tmp, 'out', 'logs')}/*.out`], { encoding: 'utf8' }).stdout;
      expect(rows.map((r) => r.epoch), `run ${run} did not finish; task logs:\n${logs}`).toEqual(['1']);
      expect(Number(rows[0].val_err_precise)).toBeGreaterThanOrEqual(0);
    }
    // Resubmitting a finished sweep submits nothing.
    const again = execFileSync(process.execPath, [BNLAB_BIN, 'sweep', '--config', join(tmp, 'sweep.yaml'), '--slurm', '--submit'], { encoding: 'utf8' });
    expect(again).toMatch(/every run is finished; nothing to submit/);
  }, 180_000);

  it('submits forks as a second array that starts when the first has succeeded', async () => {
    requireSlurm();
    const out = join(tmp, 'forks');
    writeFileSync(join(tmp, 'forks.yaml'), `base: tiny.yaml\nout: ${out}\nset: {epochs: 2}\ngrid: {bn.frozen_last_epochs: [0, 1]}\nname: "frozen{bn.frozen_last_epochs}"\nfork: {from: frozen0, epoch: 1}\n`);
    const text = execFileSync(process.execPath, [BNLAB_BIN, 'sweep', '--config', join(tmp, 'forks.yaml'), '--slurm', '--submit', '--cpus-per-task', '1', '--time', '10:00'], { encoding: 'utf8' });
    const ids = [...text.matchAll(/submitted job (\d+)/g)].map((m) => m[1]);
    expect(ids, text).toHaveLength(2);
    expect(text).toContain(`submitted job ${ids[1]} (starts after job ${ids[0]} succeeds)`);
    const deadline = Date.now() + 150_000;
    while (sh('squeue', ['-h', '-j', ids.join(',')]).stdout.trim() !== '') {
      if (Date.now() > deadline) {
        sh('scancel', ids);
        throw new Error(`Slurm jobs ${ids} still queued/running after 150 s:\n${sh('squeue', ['-j', ids.join(',')]).stdout}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    const logs = spawnSync('sh', ['-c', `cat ${join(out, 'logs')}/*.out`], { encoding: 'utf8' }).stdout;
    for (const run of ['frozen0', 'frozen1']) expect(readMetrics(join(out, run, 'metrics.csv')).map((r) => r.epoch), `task logs:\n${logs}`).toEqual(['1', '2']);
    expect(readFileSync(join(out, 'frozen1', 'train.log'), 'utf8')).toMatch(/forked from .*frozen0 at epoch 1/);
  }, 240_000);

  it('a task requeued mid-run (SIGTERM, then back in the queue) resumes from its checkpoint and finishes', async () => {
    requireSlurm();
    const out = join(tmp, 'requeue');
    writeFileSync(join(tmp, 'long-base.yaml'), 'data: {name: synthetic, synthetic: {classes: 4, train: 512, val: 64, size: 8}}\nmodel: {depth: 8, width: 4}\noptim: {batch_size: 32}\nprecise: {samples: 64, batch_size: 16}\neval: {batch_size: 64}\n');
    writeFileSync(join(tmp, 'long.yaml'), `base: long-base.yaml\nout: ${out}\nset: {epochs: 30}\ngrid: {seed: [0]}\nname: "s{seed}"\n`);
    const text = execFileSync(process.execPath, [BNLAB_BIN, 'sweep', '--config', join(tmp, 'long.yaml'), '--slurm', '--submit', '--cpus-per-task', '1', '--time', '10:00'], { encoding: 'utf8' });
    const id = text.trim().split('\n').at(-1)!;
    const script = readFileSync(join(out, 'sweep.sbatch'), 'utf8');
    for (const line of ['#SBATCH --requeue', '#SBATCH --signal=B:TERM@120', '#SBATCH --open-mode=append']) expect(script).toContain(line);
    const metrics = join(out, 's0', 'metrics.csv');
    const rows = () => readMetrics(metrics).length;
    const wait = async (done: () => boolean, what: string, ms: number) => {
      for (const deadline = Date.now() + ms; !done(); await new Promise((r) => setTimeout(r, 500))) {
        if (Date.now() > deadline) {
          sh('scancel', [id]);
          throw new Error(`${what} not within ${ms / 1000} s; squeue: ${sh('squeue', ['-j', id]).stdout}`);
        }
      }
    };
    await wait(() => rows() >= 2, 'two epochs', 120_000);
    expect(sh('scontrol', ['requeue', `${id}_0`]).status).toBe(0);
    // Slurm holds a requeued job back a while (BeginTime); let it start now.
    await wait(() => /BeginTime|PENDING|PD/.test(sh('squeue', ['-h', '-j', id, '-o', '%T %r']).stdout) || rows() >= 30, 'the requeue', 30_000);
    sh('scontrol', ['update', `JobId=${id}_0`, 'StartTime=now']);
    await wait(() => sh('squeue', ['-h', '-j', id]).stdout.trim() === '', 'the requeued task to finish', 150_000);
    expect(readMetrics(metrics).map((r) => Number(r.epoch))).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const log = readFileSync(join(out, 's0', 'train.log'), 'utf8');
    expect(log).toMatch(/interrupted (at|after) epoch \d+/); // mid-epoch or at an epoch boundary
    expect(log).toMatch(/resuming .*s0 at epoch \d+/);
    const sessions = JSON.parse(readFileSync(join(out, 's0', 'run.json'), 'utf8')).sessions as { status: string; slurm_job_id: string }[];
    expect(sessions.map((x) => x.status)).toEqual(['interrupted', 'finished']);
    expect(sessions.every((x) => x.slurm_job_id === id)).toBe(true);
    // both attempts' output in the one task log
    expect(readFileSync(join(out, 'logs', `slurm-${id}_0.out`), 'utf8').match(/bnlab sweep task 0/g)).toHaveLength(2);
  }, 330_000);
});
