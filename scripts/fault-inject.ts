// Fault injection for unattended runs: kills, corruptions, concurrent writers, a full disk and
// bad input, each ending in either the correct result or a clear refusal (non-zero exit, message
// naming the file or key). Prints one table row per trial; exits 1 if any trial failed.
//   npx tsx scripts/fault-inject.ts [--kills N] [--keep DIR]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../src/run/checkpoint.js';
import { identityTrials } from './fault-inject-identity.js';
import { runPaths } from '../src/run/paths.js';

const args = process.argv.slice(2);
const kills = Number(args[args.indexOf('--kills') + 1]) || 6;
const root = args.includes('--keep') ? args[args.indexOf('--keep') + 1] : mkdtempSync(join(tmpdir(), 'bnlab-faults-'));
mkdirSync(root, { recursive: true });
const BIN = join(import.meta.dirname, '..', 'bin', 'bnlab.js');
const env = { ...process.env, BNLAB_WASM_THREADS: '1' };
const bnlab = (a: string[]) => spawnSync(process.execPath, [BIN, ...a], { encoding: 'utf8', timeout: 300_000, env });
const EPOCHS = 4;
const tiny = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=256', '--set', 'data.synthetic.size=8', '--set', 'model.width=4',
  '--set', 'optim.batch_size=32', '--set', 'bn.nbs=8', '--set', 'precise.samples=64', '--set', `epochs=${EPOCHS}`, '--quiet',
];
const noTiming = (f: string) => existsSync(f) ? readFileSync(f, 'utf8').split('\n').map((l) => l.split(',').filter((_, i) => ![6, 7, 8].includes(i)).join(',')).join('\n') : '(missing)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Trial { name: string; outcome: string; pass: boolean }
const trials: Trial[] = [];
const record = (name: string, pass: boolean, outcome: string) => {
  trials.push({ name, pass, outcome: outcome.replace(/\s+/g, ' ').slice(0, 260) });
  process.stderr.write(`${pass ? 'pass' : 'FAIL'}  ${name}: ${outcome.slice(0, 150)}\n`);
};
/** After a fault: exit 0 with the reference metrics, or a refusal whose message matches `names`. */
const judge = (name: string, r: { status: number | null; stderr: string }, out: string, names: RegExp) => {
  if (r.status === 0) {
    const same = noTiming(runPaths(out).metrics) === reference;
    return record(name, same, same ? 'finished, metrics.csv equals the reference' : 'exit 0 with DIFFERENT metrics.csv');
  }
  const lines = r.stderr.trim().split('\n').filter((l) => l.trim());
  const msg = lines.length > 1 ? `${lines.find((l) => l.startsWith('bnlab')) ?? lines[0]} ... ${lines.at(-1)}` : (lines[0] ?? '');
  record(name, names.test(r.stderr), `refused (exit ${r.status}): ${msg}`);
};
const fresh = (name: string, epochs = EPOCHS, extra: string[] = []) => {
  const out = join(root, name);
  rmSync(out, { recursive: true, force: true });
  const r = bnlab(['train', ...tiny, '--set', `epochs=${epochs}`, ...extra, '--out', out]);
  if (r.status !== 0) throw new Error(`setup of ${name} failed: ${r.stderr}`);
  return out;
};
// As a sweep does: the run's own settings again, plus --resume.
const resume = (out: string) => bnlab(['train', ...tiny, '--resume', '--out', out]);

// The reference: one uninterrupted run (its duration spans the kill times below).
const t0 = Date.now();
const reference = noTiming(runPaths(fresh('reference')).metrics);
const runMs = Date.now() - t0;

// 1. kill -9 at random times, then --resume.
for (let k = 0; k < kills; k++) {
  const out = join(root, `kill-${k}`);
  rmSync(out, { recursive: true, force: true });
  const child = spawn(process.execPath, [BIN, 'train', ...tiny, '--out', out], { env, stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  // Anywhere from before its first file to its last epoch.
  const at = 200 + Math.floor(Math.random() * runMs);
  await sleep(at);
  child.kill('SIGKILL');
  await exited;
  judge(`kill -9 after ${at} ms, --resume`, resume(out), out, /does not exist, so there is nothing to resume/);
}

// 2. Corruptions of a stopped run (2 of 4 epochs done), then --resume.
const corruptions: [string, (p: ReturnType<typeof runPaths>) => void, RegExp][] = [
  ['one byte changed in a conv weight of last.ckpt', (p) => { const b = readFileSync(p.last); b[b.length - 4000] ^= 0x10; writeFileSync(p.last, b); }, /damaged/],
  ["the header's epoch edited in last.ckpt", (p) => { const b = readFileSync(p.last); writeFileSync(p.last, Buffer.from(b.toString('latin1').replace('"epoch":2', '"epoch":3'), 'latin1')); }, /damaged/],
  ['a NaN in stem.conv of last.ckpt (rewritten with valid checksums)', (p) => { const c = readCheckpoint(p.last); c.tensors.get('param/stem.conv')!.data[3] = NaN; writeCheckpoint(p.last, c); }, /non-finite/],
  ['a NaN in stem.conv of every checkpoint', (p) => { for (const f of [p.last, p.epoch(1), p.epoch(2)]) { const c = readCheckpoint(f); c.tensors.get('param/stem.conv')!.data[3] = NaN; writeCheckpoint(f, c); } }, /non-finite.*--overwrite|can be trusted/],
  ['metrics.csv missing its last row', (p) => { const l = readFileSync(p.metrics, 'utf8').trim().split('\n'); writeFileSync(p.metrics, l.slice(0, -1).join('\n') + '\n'); }, /metrics/],
  ['metrics.csv deleted', (p) => rmSync(p.metrics), /metrics/],
  ['metrics.csv with an extra row past the checkpoint', (p) => { const t = readFileSync(p.metrics, 'utf8'); writeFileSync(p.metrics, t + t.trim().split('\n').pop()!.replace(/^2,/, '3,') + '\n'); }, /metrics/],
  ['a bad JSON header in every checkpoint', (p) => { for (const f of [p.last, p.epoch(1), p.epoch(2)]) { const b = readFileSync(f); b[50] = 0x7b; writeFileSync(f, b); } }, /can be trusted.*(damaged|JSON)/s],
  ['last.ckpt truncated', (p) => { const b = readFileSync(p.last); writeFileSync(p.last, b.subarray(0, b.length >> 1)); }, /truncated/],
  ['checkpoints folder deleted', (p) => rmSync(p.checkpoints, { recursive: true }), /checkpoint/],
];
for (const [name, hurt, names] of corruptions) {
  const out = fresh(`corrupt-${trials.length}`, 2);
  hurt(runPaths(out));
  judge(name, resume(out), out, names);
}

// 3. Concurrent writers on one folder: the second is refused, the first finishes correctly.
for (const extra of [[], ['--overwrite'], ['--resume']]) {
  const out = join(root, `concurrent${extra.join('')}`);
  rmSync(out, { recursive: true, force: true });
  const first = spawn(process.execPath, [BIN, 'train', ...tiny, '--set', `epochs=${EPOCHS}`, '--out', out], { env, stdio: 'ignore' });
  const done = new Promise<number>((r) => first.on('exit', (c) => r(c ?? -1)));
  for (let i = 0; i < 2400 && !existsSync(runPaths(out).lock); i++) await sleep(25);
  // Held still while the second tries: a tiny run may otherwise finish before the second starts.
  first.kill('SIGSTOP');
  const second = bnlab(['train', ...tiny, '--out', out, ...extra]);
  first.kill('SIGCONT');
  const code = await done;
  const okFirst = code === 0 && noTiming(runPaths(out).metrics) === reference;
  record(`a second writer (${extra[0] ?? 'plain start'}) while a run is live`, second.status !== 0 && /held by PID/.test(second.stderr) && okFirst,
    `second exit ${second.status}: ${second.stderr.trim().split('\n').pop()}; first exit ${code}, metrics ${okFirst ? 'equal the reference' : 'WRONG'}`);
}

// 4. A full disk (a 64 KB tmpfs; needs root): refused naming the file, nothing half-written.
const mnt = join(root, 'tmpfs');
mkdirSync(mnt, { recursive: true });
if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status === 0) {
  try {
    const r = bnlab(['train', ...tiny, '--out', join(mnt, 'run')]);
    record('a full disk (64 KB tmpfs)', r.status !== 0 && /could not write .*disk is full/.test(r.stderr), `exit ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
  } finally {
    spawnSync('umount', [mnt]);
  }
} else {
  record('a full disk (64 KB tmpfs)', true, 'skipped: cannot mount a tmpfs here (not root)');
}

// 5. Bad input: each refused with exit 2 naming the key.
for (const set of ['epochs=[', 'epochs=*x', '__proto__.x=1', 'constructor.prototype.x=1', 'trace.channels=[999]']) {
  const r = bnlab(['train', ...tiny, '--set', set, '--set', 'trace.layers=[stem.bn]', '--out', join(root, 'bad-input')]);
  const key = set.split(/[.=]/)[0];
  record(`--set '${set}'`, r.status === 2 && r.stderr.includes(key) && !/at .*\.js:\d+/.test(r.stderr), `exit ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
}

// 6. Start-up: every write of the wasm pool's worker script made slow (the race behind issue 12's
// hangs: a worker reading the script mid-write never loaded), and a start-up that exceeds its
// time limit, which must stop with a message, never wait.
{
  const out = join(root, 'slow-start');
  const r = spawnSync(process.execPath, ['--import', join(import.meta.dirname, '..', 'test', 'fixtures', 'slow-worker-write.mjs'), BIN, 'train', ...tiny, '--set', 'epochs=1', '--out', out], {
    encoding: 'utf8', timeout: 300_000, env: { ...process.env, BNLAB_WASM_THREADS: '2', BNLAB_BACKEND_TIMEOUT_S: '60' },
  });
  record('start-up with slow worker-script writes (2 threads)', r.status === 0 && existsSync(runPaths(out).last), r.status === 0 ? 'started and finished' : `exit ${r.status}: ${r.stderr.trim().split('\n').pop()}`);
  const t = spawnSync(process.execPath, [BIN, 'train', ...tiny, '--out', join(root, 'timeout')], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, BNLAB_WASM_THREADS: '2', BNLAB_BACKEND_TIMEOUT_S: '0.05' },
  });
  record('start-up past BNLAB_BACKEND_TIMEOUT_S', t.status === 1 && /did not initialise within 0.05 s/.test(t.stderr), `exit ${t.status}: ${t.stderr.trim().split('\n').pop()}`);
}

await identityTrials({ root, bnlab, tiny, EPOCHS, fresh, resume, judge, record, BIN, env });

const w = Math.max(...trials.map((t) => t.name.length));
process.stdout.write(`| trial${' '.repeat(w - 5)} | result | outcome |\n|${'-'.repeat(w + 2)}|---|---|\n`);
for (const t of trials) process.stdout.write(`| ${t.name.padEnd(w)} | ${t.pass ? 'pass' : 'FAIL'} | ${t.outcome.replace(/\|/g, '/')} |\n`);
const failed = trials.filter((t) => !t.pass).length;
process.stdout.write(`\n${trials.length} trials, ${trials.length - failed} passed, ${failed} failed\n`);
if (!args.includes('--keep')) rmSync(root, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
