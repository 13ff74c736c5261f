// A run killed without a chance to write (kill -9, an abort, out of memory) is reported as
// 'died' by whatever reads its run.json next: lastSession, a sweep's status, the report, and a
// --resume, which records it in run.json (issue 27: such runs used to say "running" forever).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { lastSession } from '../src/run/metadata.js';
import { runPaths } from '../src/run/paths.js';
import { loadRun } from '../src/report/runs.js';
import { unfinished } from '../src/report/report.js';
import { sessionNote, runStatus } from '../src/sweep/status.js';
import { validateConfig, readConfigFile } from '../src/config/load.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-died-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, BNLAB_WASM_THREADS: '1' };
const tiny = [
  '--set', 'data.name=synthetic', '--set', 'data.synthetic.train=128', '--set', 'data.synthetic.size=8',
  '--set', 'model.width=4', '--set', 'optim.batch_size=32', '--set', 'bn.nbs=8', '--set', 'precise.samples=64', '--quiet',
];

it('kill -9 mid-run: run.json says running, readers say died, --resume records it and finishes', async () => {
  const out = join(dir, 'r');
  const child = spawn(process.execPath, [BIN, 'train', ...tiny, '--set', 'epochs=30', '--out', out], { env });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
  // killed once an epoch is in metrics.csv and the run is under way
  for (let i = 0; i < 1200 && !(existsSync(runPaths(out).metrics) && readFileSync(runPaths(out).metrics, 'utf8').split('\n').length > 2); i++)
    await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  const raw = JSON.parse(readFileSync(runPaths(out).runInfo, 'utf8'));
  expect(raw.sessions.at(-1).status).toBe('running'); // what the dead process left

  expect(lastSession(out)?.status).toBe('died');
  const run = loadRun(out);
  expect(run.session).toBe('died');
  expect(unfinished([run])[0]).toMatch(/\/30 epochs, died without a word/);
  const cfg = validateConfig(readConfigFile(runPaths(out).config), 'config.yaml');
  const st = runStatus({ name: 'r', dir: out, cfg } as Parameters<typeof runStatus>[0]);
  expect(st.session).toBe('died');
  expect(sessionNote(st)).toMatch(/died without a word/);

  const r = spawnSync(process.execPath, [BIN, 'train', ...tiny, '--set', 'epochs=3', '--out', out, '--resume'], { env, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const info = JSON.parse(readFileSync(runPaths(out).runInfo, 'utf8'));
  expect(info.sessions.map((s: { status: string }) => s.status)).toEqual(['died', 'finished']);
  expect(info.sessions[0].error).toMatch(/SIGKILL/);
  expect(readFileSync(runPaths(out).log, 'utf8')).toMatch(/previous session .* ended without writing its end/);
  expect(lastSession(out)?.status).toBe('finished');
}, 180_000);
