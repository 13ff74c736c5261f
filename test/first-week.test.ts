// Issue 32's small surprises, each as a new user met it: missing data is a config error before
// anything starts or is created; `data inspect` leaves nothing behind unless asked; `bnlab
// report DIR` builds every table; `eval --backend` rejects a typo as train does.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { tempDirs } from './helpers/run.js';

vi.setConfig({ testTimeout: 120_000 });
const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const temp = tempDirs('bnlab-week-');
const bnlab = (args: string[], cwd?: string) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000, cwd, env: { ...process.env, BNLAB_WASM_THREADS: '1' } });

describe('a first week with bnlab', () => {
  it('imagefolder without data.path, or a path that is not there: exit 2 naming the key, no backend started, no run folder', () => {
    const d = temp();
    for (const set of [[], ['--set', `data.path=${join(d, 'nowhere')}`]]) {
      const r = bnlab(['train', '--set', 'data.name=imagefolder', ...set, '--out', join(d, 'run')]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/data\.(name imagefolder needs data\.path|path .*nowhere is not a folder)/);
      expect(r.stderr).not.toMatch(/backend:/);
      expect(existsSync(join(d, 'run'))).toBe(false);
    }
  });

  it('data inspect writes no file into the current folder unless -o is given', () => {
    const d = temp();
    const r = bnlab(['data', 'inspect', '--set', 'data.name=synthetic'], d);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/add -o samples\.png/);
    expect(readdirSync(d)).toEqual([]);
  });

  it('bnlab report DIR alone writes every table it can into DIR/report.md (as --all)', () => {
    const d = temp();
    cpSync(join(__dirname, 'fixtures', 'report', 'table1'), join(d, 'table1'), { recursive: true });
    const r = bnlab(['report', d]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/wrote .*report\.md/);
    expect(readFileSync(join(d, 'report.md'), 'utf8')).toMatch(/Table 1/);
  });

  it('eval --backend with a typo is refused (exit 2), as train refuses it', () => {
    const r = bnlab(['eval', '--run', temp(), '--backend', 'cdua']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cdua/);
  });
});
