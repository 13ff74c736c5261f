// Bad input is refused with a message naming the key or file and the fix, exit 2, nothing written.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyOverride, ConfigError, loadConfig, readConfigFile } from '../src/config/load.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const dir = mkdtempSync(join(tmpdir(), 'bnlab-bad-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BNLAB_WASM_THREADS: '1' } });

describe('--set values', () => {
  it.each([
    ['epochs=[', /--set epochs: the value '\[' is not valid YAML/],
    ['epochs=*x', /--set epochs: the value '\*x' is not valid YAML/],
    ['__proto__.x=1', /'__proto__' is not a config key/],
    ['constructor.prototype.x=1', /'constructor' is not a config key/],
  ])('%s is a ConfigError naming the key, and Object.prototype stays clean', (set, msg) => {
    expect(() => applyOverride({}, set)).toThrow(ConfigError);
    expect(() => applyOverride({}, set)).toThrow(msg);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it('through the CLI: exit 2, no stack, no run folder', () => {
    const out = join(dir, 'never');
    const r = run(['train', '--set', 'epochs=[', '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    expect(existsSync(out)).toBe(false);
  });

  it('trace.channels beyond a traced layer is refused with the layer and its channel count', () => {
    const r = run(['train', '--set', 'data.name=synthetic', '--set', 'model.width=4', '--set', 'trace.layers=[stem.bn]', '--set', 'trace.channels=[0,999]', '--out', join(dir, 'trace'), '--quiet']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("trace.channels: channel 999 does not exist in BN layer 'stem.bn', which has 4 channels");
    expect(existsSync(join(dir, 'trace'))).toBe(false);
  }, 60_000);

  it('trace.channels is checked at config load against every traced layer (sweeps refuse it up front)', () => {
    expect(() => loadConfig(undefined, ['model.width=8', 'trace.layers=[stem.bn, s3.b1.bn2]', 'trace.channels=[20]'])).toThrow(
      /trace\.channels: channel 20 does not exist in BN layer 'stem\.bn', which has 8 channels \(0\.\.7\)/,
    );
    // s3 has 4x the width: channel 20 exists there
    expect(loadConfig(undefined, ['model.width=8', 'trace.layers=[s3.b1.bn2]', 'trace.channels=[20]']).trace.channels).toEqual([20]);
    expect(() => loadConfig(undefined, ['trace.layers=[stem.bnn]'])).toThrow(/trace\.layers: no BN layer 'stem\.bnn'/);
  });
});

describe('config files', () => {
  it('a directory and a UTF-16 file are named as such', () => {
    const d = join(dir, 'cfgs');
    mkdirSync(d, { recursive: true });
    expect(() => readConfigFile(d)).toThrow(/is a directory; pass a YAML file/);
    const u16 = join(dir, 'u16.yaml');
    writeFileSync(u16, Buffer.from('\ufeffepochs: 2\n', 'utf16le'));
    expect(() => readConfigFile(u16)).toThrow(/looks like UTF-16\); save it as UTF-8/);
  });
});

describe('Slurm scripts', () => {
  it('a newline in --partition or a sweep out is refused before any file is written', async () => {
    const { slurmScript, checkSlurmValues } = await import('../src/sweep/slurm.js');
    expect(() => checkSlurmValues({ '--partition': 'gpu\ntouch /tmp/pwned' })).toThrow(/--partition "gpu\\ntouch \/tmp\/pwned" contains a control character/);
    const sweep = { out: join(dir, 'sw\nrm -rf x'), file: 's.yaml', base: [] } as unknown as Parameters<typeof slurmScript>[0];
    expect(() => slurmScript(sweep, [], 'list', { gpusPerTask: 0, cwd: dir })).toThrow(/sweep out .* contains a control character/);
    expect(checkSlurmValues({ ok: '/scratch/my runs/a-b_c.1' })).toBeUndefined();
  });
});
