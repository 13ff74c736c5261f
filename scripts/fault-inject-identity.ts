// Fault-injection trials of issue 28's classes (run by scripts/fault-inject.ts): a checkpoint of
// another run or config, what eval reads and where it appends, --overwrite and a user's files,
// what a sweep calls finished, config pipes, stale locks, and errors that must name their file.
// Each ends in the correct result or a clear refusal naming the file or key and the fix.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../src/run/checkpoint.js';
import { runPaths } from '../src/run/paths.js';

interface Harness {
  root: string;
  bnlab: (a: string[]) => SpawnSyncReturns<string>;
  tiny: string[];
  EPOCHS: number;
  fresh: (name: string, epochs?: number, extra?: string[]) => string;
  resume: (out: string) => SpawnSyncReturns<string>;
  judge: (name: string, r: { status: number | null; stderr: string }, out: string, names: RegExp) => void;
  record: (name: string, pass: boolean, outcome: string) => void;
  BIN: string;
  env: NodeJS.ProcessEnv;
}

const last = (s: string) => s.trim().split('\n').pop() ?? '';
const refusal = (r: { status: number | null; stderr: string }, names: RegExp) => r.status !== 0 && names.test(r.stderr);
const said = (r: { status: number | null; stderr: string }) => `exit ${r.status}: ${last(r.stderr)}`;
const nan = (file: string, v = NaN) => {
  const c = readCheckpoint(file);
  c.tensors.get('param/stem.conv')!.data[1] = v;
  writeCheckpoint(file, c);
};

export async function identityTrials(h: Harness): Promise<void> {
  const { root, bnlab, tiny, fresh, resume, judge, record, BIN, env } = h;
  const seed1 = fresh('other-seed', 2, ['--set', 'seed=1']);
  const deeper = fresh('other-depth', 2, ['--set', 'model.depth=14']);
  const stopped = (name: string) => fresh(name, 2);

  // A checkpoint must be its run's.
  {
    const out = stopped('edited-config');
    const p = runPaths(out);
    writeFileSync(p.config, readFileSync(p.config, 'utf8').replace(/base_lr: .*/, 'base_lr: 0.5'));
    judge('config.yaml edited (base_lr), --resume', resume(out), out, /optim\.base_lr \(checkpoint 0\.2, run 0\.5\).*\n.*\n.*\n?.*restore it/);
  }
  for (const [what, src] of [['another seed', seed1], ['another depth', deeper]] as const) {
    const out = stopped(`foreign-last-${what.replace(' ', '-')}`);
    cpSync(runPaths(src).last, runPaths(out).last);
    judge(`last.ckpt replaced by a checkpoint of ${what}, --resume`, resume(out), out, /belongs to another run|different model config/);
    const all = stopped(`foreign-all-${what.replace(' ', '-')}`);
    const p = runPaths(all);
    for (const f of [p.last, p.epoch(1), p.epoch(2)]) cpSync(runPaths(src).epoch(2), f);
    judge(`every checkpoint replaced by ${what}'s, --resume`, resume(all), all, /can be trusted.*(another run|differs)/s);
  }
  {
    const out = stopped('eval-deeper');
    const r = bnlab(['eval', '--run', out, '--checkpoint', runPaths(deeper).last, '--quiet']);
    record('eval --checkpoint of a depth-14 file on a depth-8 run', refusal(r, /cannot be evaluated as part of/) && !existsSync(runPaths(out).eval), said(r));
  }

  // What eval reads, and where it appends.
  {
    const out = stopped('eval-nan');
    nan(runPaths(out).last);
    const r = bnlab(['eval', '--run', out, '--quiet']);
    record('eval of a checkpoint with a NaN (valid checksums)', refusal(r, /non-finite value \(param\/stem\.conv\[1\] = NaN\)/) && !existsSync(runPaths(out).eval), said(r));
  }
  {
    const out = stopped('eval-last-word');
    const cwd = join(root, 'cwd-with-last');
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, 'last'), 'a file named last');
    const r = spawnSync(process.execPath, [BIN, 'eval', '--run', out, '--checkpoint', 'last', '--stats', 'ema', '--json'], { cwd, encoding: 'utf8', env });
    const used = r.status === 0 ? JSON.parse(r.stdout).checkpoint : null;
    record("eval --checkpoint last with a file 'last' in the current folder", used === runPaths(out).last, r.status === 0 ? `evaluated ${used}` : said(r));
  }
  {
    const out = stopped('eval-final-lost');
    const p = runPaths(out);
    cpSync(p.epoch(1), p.last);
    rmSync(p.epoch(2));
    rmSync(p.summary);
    const r = bnlab(['eval', '--run', out, '--quiet']);
    record('eval with the final checkpoint and summary.json gone', refusal(r, /holds epoch 1 but metrics\.csv records 2 epochs/), said(r));
  }
  {
    const out = stopped('eval-half-row');
    const p = runPaths(out);
    const first = bnlab(['eval', '--run', out, '--stats', 'ema', '--quiet']);
    const text = readFileSync(p.eval, 'utf8');
    writeFileSync(p.eval, text.slice(0, -6)); // a write cut short: the row ends mid-number
    const r = bnlab(['eval', '--run', out, '--stats', 'ema', '--quiet']);
    const rows = readFileSync(p.eval, 'utf8').trim().split('\n');
    const rep = bnlab(['report', out, '--table', 'table1']);
    const ok = first.status === 0 && r.status === 0 && rows.length === 3 && rows[2] === text.trim().split('\n')[1] && /eval\.csv line 2 skipped/.test(rep.stderr);
    record('eval.csv ending in half a row, then eval and report', ok, ok ? 'new row on its own line; the report skips the half row, naming it' : `${said(r)}; rows ${rows.length}; report: ${last(rep.stderr)}`);
  }
  {
    const out = stopped('eval-during-overwrite');
    const p = runPaths(out);
    const ev = spawn(process.execPath, [BIN, 'eval', '--run', out, '--stats', 'precise', '--samples', '100', '--repeats', '40', '--quiet'], { env });
    let evErr = '';
    ev.stderr.on('data', (b) => (evErr += b));
    const evDone = new Promise<number | null>((res) => ev.on('exit', res));
    await new Promise((res) => setTimeout(res, 2500));
    const t = bnlab(['train', ...tiny, '--set', 'epochs=1', '--out', out, '--overwrite']);
    const code = await evDone;
    const rows = existsSync(p.eval) ? readFileSync(p.eval, 'utf8').trim().split('\n').length - 1 : 0;
    const ok = t.status === 0 && rows === 0 && (code === 0 || /replaced while this evaluation ran/.test(evErr));
    record('eval still running while the folder is retrained with --overwrite', ok, `train exit ${t.status}; eval exit ${code}${code ? `: ${last(evErr)}` : ''}; old rows in the new run's eval.csv: ${rows}`);
  }
  {
    const out = stopped('eval-sigterm');
    const ev = spawn(process.execPath, [BIN, 'eval', '--run', out, '--stats', 'precise', '--samples', '100', '--repeats', '40'], { env });
    let err = '';
    const done = new Promise<number | null>((res) => ev.on('exit', res));
    // once it computes (its backend line printed), not while Node starts
    await new Promise<void>((res) => ev.stderr.on('data', (b) => ((err += b), /backend:/.test(err) && res())));
    ev.kill('SIGTERM');
    const code = await done;
    record('SIGTERM during bnlab eval', code === 130 && /nothing was appended/.test(err), `exit ${code}: ${last(err)}`);
  }

  // --overwrite and the user's files.
  {
    const out = stopped('overwrite-leftovers');
    const p = runPaths(out);
    bnlab(['eval', '--run', out, '--stats', 'ema', '--quiet']);
    writeFileSync(p.trace, 'epoch,iter\n');
    const r = bnlab(['train', ...tiny, '--set', 'epochs=1', '--out', out, '--overwrite']);
    record("--overwrite: the old run's eval.csv and bn_trace.csv", r.status === 0 && !existsSync(p.eval) && !existsSync(p.trace), r.status === 0 ? `deleted: ${/deleted the previous run's (.*)/.exec(readFileSync(p.log, 'utf8'))?.[1]}` : said(r));
  }
  for (const [what, files] of [['checkpoints/model-final.pt and train.log', ['checkpoints/model-final.pt', 'train.log']], ["only the user's summary.json", ['summary.json']]] as const) {
    const out = join(root, `user-${files.length}`);
    rmSync(out, { recursive: true, force: true });
    for (const f of files) {
      mkdirSync(join(out, f, '..'), { recursive: true });
      writeFileSync(join(out, f), `user's ${f}`);
    }
    const plain = bnlab(['train', ...tiny, '--out', out]);
    const over = bnlab(['train', ...tiny, '--out', out, '--overwrite']);
    const intact = files.every((f) => readFileSync(join(out, f), 'utf8') === `user's ${f}`) && readdirSync(out).length === new Set(files.map((f) => f.split('/')[0])).size;
    record(`--out a user's folder (${what}), plain and --overwrite`, refusal(plain, /not a bnlab run folder/) && refusal(over, /not a bnlab run folder/) && intact, `${said(over)}; files ${intact ? 'intact' : 'CHANGED'}`);
  }
  {
    const out = stopped('runjson-damaged');
    writeFileSync(runPaths(out).runInfo, '{"run": "x", "sess');
    const r = resume(out);
    const aside = readdirSync(out).filter((f) => f.startsWith('run.json.damaged-'));
    judge('a damaged run.json, --resume', r, out, /run\.json/);
    record('a damaged run.json is kept, not replaced', aside.length === 1 && readFileSync(join(out, aside[0]), 'utf8') === '{"run": "x", "sess', aside.length ? `kept as ${aside[0]}` : 'LOST');
  }

  // Sweeps: what they call finished, and what they resume.
  {
    const base = join(root, 'sweep-base.yaml');
    writeFileSync(base, 'name: tiny\n');
    const sets = Object.fromEntries(tiny.filter((_, i) => tiny[i - 1] === '--set').map((kv) => kv.split('=') as [string, string]));
    const sweepFile = join(root, 'sweep.yaml');
    const sweepOut = join(root, 'sweep-out');
    writeFileSync(sweepFile, `base: sweep-base.yaml\nout: ${sweepOut}\nset: {${Object.entries(sets).map(([k, v]) => `${k}: ${v}`).join(', ')}}\ngrid: {seed: [0]}\nname: "s{seed}"\n`);
    const run = join(sweepOut, 's0');
    const sweep = () => bnlab(['sweep', '--config', sweepFile, '--quiet']);
    const first = sweep();
    const p = runPaths(run);
    rmSync(p.last);
    rmSync(p.epoch(h.EPOCHS));
    rmSync(p.summary);
    const again = sweep();
    judge('sweep: final checkpoint and summary.json gone, metrics.csv complete', first.status === 0 ? again : first, run, /never/);
    const epochFiles = readdirSync(p.checkpoints).filter((f) => f.startsWith('epoch-'));
    rmSync(p.last);
    rmSync(p.epoch(h.EPOCHS));
    for (const line of [h.EPOCHS]) writeFileSync(p.metrics, readFileSync(p.metrics, 'utf8').trim().split('\n').slice(0, line).join('\n') + '\n');
    const kept = readdirSync(p.checkpoints).filter((f) => f.startsWith('epoch-')).length;
    const third = sweep();
    judge(`sweep: epoch checkpoints (${kept}) but no last.ckpt`, third, run, /never/);
    const log = existsSync(p.log) ? readFileSync(p.log, 'utf8') : '';
    record('... and it resumed rather than starting over', /resuming .* at epoch/.test(log) && !/deleted the previous run/.test(log), `${epochFiles.length} epoch files before; log: ${/resuming .*/.exec(log)?.[0] ?? last(log)}`);
  }

  // Input, locks and names in errors.
  {
    const cwd = join(root, 'pipe');
    rmSync(cwd, { recursive: true, force: true });
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, 'my.yaml'), `name: my\nepochs: 1\ndata: {name: synthetic, synthetic: {train: 256, size: 8}}\nmodel: {width: 4}\noptim: {batch_size: 32}\nbn: {nbs: 8}\nprecise: {samples: 64}\n`);
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${BIN}" train -c <(cat my.yaml) --quiet`], { cwd, encoding: 'utf8', env });
    const made = existsSync(join(cwd, 'results')) ? readdirSync(join(cwd, 'results')) : [];
    record('-c <(cat my.yaml) (a pipe)', r.status === 0 && made.join() === 'my', r.status === 0 ? `trained results/${made.join(', results/')}` : said(r));
    const fifo = join(cwd, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const f = spawnSync(process.execPath, [BIN, 'train', '-c', fifo, '--quiet'], { cwd, encoding: 'utf8', env: { ...env, BNLAB_PIPE_WAIT_S: '3' }, timeout: 60_000 });
    record('-c a FIFO that nobody writes to', refusal(f, /FIFO .* nothing wrote to within 3 s/), said(f));
  }
  {
    const out = stopped('lock-reused-pid');
    const sleeper = spawn('sleep', ['60']);
    writeFileSync(runPaths(out).lock, JSON.stringify({ pid: sleeper.pid, host: hostname(), started: '2020-01-01T00:00:00.000Z', command: 'bnlab train' }));
    const r = resume(out);
    sleeper.kill();
    judge('a stale lock whose PID now belongs to another process, --resume', r, out, /never/);
    const empty = stopped('lock-empty');
    writeFileSync(runPaths(empty).lock, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(runPaths(empty).lock, old, old);
    judge('an empty lock file (a full disk), --resume', resume(empty), empty, /never/);
  }
  {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const r = bnlab(['train', ...tiny, '--out', file]);
    record('--out a regular file', refusal(r, /cannot use .*a-file as the run folder: .*is a file/), said(r));
    const ro = join(root, 'ro');
    mkdirSync(ro, { recursive: true });
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', ro]).status === 0) {
      try {
        const r2 = bnlab(['train', ...tiny, '--out', join(ro, 'run')]);
        record('--out on a read-only mount', refusal(r2, /read-only file system/), said(r2));
      } finally {
        spawnSync('umount', [ro]);
      }
    } else {
      chmodSync(ro, 0o555);
      const r2 = bnlab(['train', ...tiny, '--out', join(ro, 'run')]);
      record('--out in a folder without write permission', refusal(r2, /cannot use .*: (permission denied|read-only)/) || process.getuid?.() === 0, said(r2));
    }
    const dirMetrics = stopped('metrics-dir');
    rmSync(runPaths(dirMetrics).metrics);
    mkdirSync(runPaths(dirMetrics).metrics);
    const r3 = resume(dirMetrics);
    record('metrics.csv is a folder, --resume', refusal(r3, /metrics\.csv is a folder/), said(r3));
    const r4 = bnlab(['plot', dirMetrics, '--out', file]);
    record('plot --out a file', refusal(r4, /--out .*a-file is a file/), said(r4));
  }
  {
    const top = join(root, 'report-bad');
    rmSync(top, { recursive: true, force: true });
    const good = stopped('report-good');
    for (const n of ['good', 'bad-yaml', 'bad-metrics']) cpSync(good, join(top, n), { recursive: true });
    writeFileSync(join(top, 'bad-yaml', 'config.yaml'), 'a: [unclosed');
    writeFileSync(join(top, 'bad-metrics', 'metrics.csv'), Buffer.from([0, 255, 0, 1, 2]));
    const r = bnlab(['report', top, '--all']);
    record('report over a garbage config.yaml and a binary metrics.csv', r.status === 0 && /bad-yaml skipped/.test(r.stderr) && /bad-metrics skipped/.test(r.stderr), r.status === 0 ? r.stderr.trim().split('\n').filter((l) => /skipped/.test(l)).join('; ') : said(r));
  }
  {
    const out = stopped('lower-epochs');
    const r = bnlab(['train', '--resume', '--out', out, '--set', 'epochs=1', '--quiet']);
    const cfgKept = /^epochs: 2$/m.test(readFileSync(runPaths(out).config, 'utf8'));
    record('--resume with --set epochs below those trained', refusal(r, /already trained 2 epochs, more than epochs 1/) && cfgKept, said(r));
    const src = stopped('fork-nan');
    nan(runPaths(src).epoch(1), Infinity);
    const f = bnlab(['train', ...tiny, '--set', 'bn.frozen_last_epochs=1', '--fork', `${src}@1`, '--out', join(root, 'forked')]);
    record('--fork from a checkpoint with an infinity', refusal(f, /non-finite value/) && !existsSync(join(root, 'forked')), said(f));
  }
}
