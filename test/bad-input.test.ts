// Bad input is refused with a message naming the key or file and the fix, exit 2, nothing written.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyOverride, ConfigError, loadConfig, readConfigFile } from '../src/config/load.js';
import { loadIndex } from '../src/data/imagefolder.js';
import { className, makeJpegTree } from '../scripts/make-jpeg-tree.js';

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

  it('a __proto__ key in a config file is refused (it would slip past the strict schema)', () => {
    const f = join(dir, 'proto.yaml');
    writeFileSync(f, 'optim:\n  __proto__:\n    base_lr: 7\n');
    expect(() => readConfigFile(f)).toThrow(`config ${f}: 'optim.__proto__' is not a config key`);
    writeFileSync(f, '__proto__:\n  epochs: 7\n');
    expect(() => loadConfig(f)).toThrow(/'__proto__' is not a config key/);
    expect(({} as Record<string, unknown>).epochs).toBeUndefined();
  });

  it('through the CLI: exit 2, no stack, no run folder', () => {
    const out = join(dir, 'never');
    const r = run(['train', '--set', 'epochs=[', '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
    expect(existsSync(out)).toBe(false);
  }, 30_000); // a CLI start (tsx) took 4-5.5 s beside the rest of the suite: over vitest's 5 s default

  it('a BNLAB_CONV_LAYOUT that is not a layout: exit 2 before anything runs (no silent fallback to another backend)', () => {
    const out = join(dir, 'layout');
    const r = spawnSync(process.execPath, [BIN, 'train', '--out', out], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BNLAB_CONV_LAYOUT: 'nchw' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('BNLAB_CONV_LAYOUT=nchw is not a convolution layout: use auto, blocked, nhwc');
    expect(existsSync(out)).toBe(false);
  }, 60_000);

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

describe('free strings in the config', () => {
  it('a 50 MB name is refused with its length, before any run folder exists', () => {
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `name: ${'a'.repeat(50_000_000)}\n`);
    const out = join(dir, 'big-run');
    const r = run(['train', '-c', big, '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('name: at most 100 characters (this one has 50000000)');
    expect(r.stderr.length).toBeLessThan(2000);
    expect(existsSync(out)).toBe(false);
    rmSync(big);
  }, 60_000);

  it.each([
    ['name=..', 'name=..', /name: a folder name: letters, digits, _ \. - \(not \. or \.\.\)/],
    ['name=a/b', 'name=a/b', /name: a folder name/],
    ['a newline in data.path', 'data.path="a\\nb"', /data\.path: must not contain control characters/],
    ['a 5000-character data.cache_dir', `data.cache_dir=${'x'.repeat(5000)}`, /data\.cache_dir: at most 4096 characters \(this one has 5000\)/],
  ])('%s is refused by the schema', (_, set, msg) => {
    expect(() => loadConfig(undefined, [set])).toThrow(ConfigError);
    expect(() => loadConfig(undefined, [set])).toThrow(msg);
  });

  it('a huge bad --set value is clipped in the message', () => {
    let msg = '';
    try {
      applyOverride({}, `epochs=[${'1,'.repeat(100_000)}`);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/--set epochs: the value '\[1,1,.*\.\.\. \(200001 characters\)' is not valid YAML/);
    expect(msg.length).toBeLessThan(400);
  });
});

describe('config files', () => {
  it('a directory and a UTF-16 file are named as such', () => {
    const d = join(dir, 'cfgs');
    mkdirSync(d, { recursive: true });
    expect(() => readConfigFile(d)).toThrow(/is a directory; pass a YAML file$/);
    writeFileSync(join(d, 'b.yaml'), 'epochs: 1\n');
    expect(() => readConfigFile(d)).toThrow(`config ${d} is a directory; pass a YAML file, e.g. ${join(d, 'b.yaml')}`);
    const out = join(dir, 'dir-run');
    const r = run(['train', '-c', d, '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('is a directory; pass a YAML file');
    expect(r.stderr).not.toContain('EISDIR');
    expect(existsSync(out)).toBe(false);
    const u16 = join(dir, 'u16.yaml');
    writeFileSync(u16, Buffer.from('\ufeffepochs: 2\n', 'utf16le'));
    expect(() => readConfigFile(u16)).toThrow(`config ${u16} is not UTF-8 text (it looks like UTF-16); save it as UTF-8`);
    const be = Buffer.from('\ufeffepochs: 2\n', 'utf16le').swap16(); // UTF-16BE with its BOM
    writeFileSync(u16, be);
    expect(() => readConfigFile(u16)).toThrow(/looks like UTF-16\); save it as UTF-8/);
    writeFileSync(u16, Buffer.from('epochs: 2\n', 'utf16le')); // no BOM: NUL bytes give it away
    expect(() => readConfigFile(u16)).toThrow(/looks like UTF-16\); save it as UTF-8/);
    const r16 = run(['train', '-c', u16, '--out', out]);
    expect(r16.status).toBe(2);
    expect(r16.stderr).toContain('save it as UTF-8');
    expect(r16.stderr).not.toContain('top level must be a mapping');
    expect(existsSync(out)).toBe(false);
    // UTF-8 (with or without a BOM) still reads
    writeFileSync(u16, '\ufeffepochs: 2\n');
    expect(readConfigFile(u16)).toEqual({ epochs: 2 });
  }, 60_000);
});

describe('image folders', () => {
  // As root a chmod 000 folder is still readable: the CLI then runs as nobody, so the test means
  // the same thing everywhere.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, cwd: dir, ...asUser, env: { ...process.env, HOME: dir } });
  const c = (k: number) => className(k);

  it('symlink loops, an unreadable folder and a dangling link are skipped and counted, naming one', async () => {
    const root = join(dir, 'loops');
    await makeJpegTree(root, { classes: 2, train: 2, val: 1, width: 40, height: 30 });
    symlinkSync('..', join(root, 'train', c(0), 'up')); // leads back to train/
    symlinkSync('self', join(root, 'train', c(0), 'self')); // ELOOP
    symlinkSync('nowhere.JPEG', join(root, 'train', c(1), 'gone.JPEG')); // dangling
    const ix = (await loadIndex(root, { cacheDir: join(dir, 'loops-cache-0'), quiet: true })).index;
    expect(ix.train.files).toHaveLength(4); // no image indexed twice through the loop
    expect(ix.train.skipped.map((k) => k.file).sort()).toEqual([`train/${c(0)}/self`, `train/${c(0)}/up`, `train/${c(1)}/gone.JPEG`]);
    expect(ix.train.skipped.find((k) => k.file.endsWith('/up'))?.error).toMatch(/symlink loop \(it leads back to a folder above it\)/);
    expect(ix.train.skipped.find((k) => k.file.endsWith('/self'))?.error).toMatch(/ELOOP \(symlink loop\)/);
    expect(ix.train.skipped.find((k) => k.file.endsWith('/gone.JPEG'))?.error).toMatch(/ENOENT \(dangling symlink\)/);

    const locked = join(root, 'train', c(1), 'locked');
    mkdirSync(locked);
    writeFileSync(join(locked, 'x.JPEG'), 'never read');
    chmodSync(locked, 0);
    const cache = join(dir, 'loops-cache');
    mkdirSync(cache);
    if (asUser.uid !== undefined) for (const p of [dir, cache]) chownSync(p, asUser.uid, asUser.gid!);
    chmodSync(dir, 0o755);
    const r = cli(['data', 'verify', root, '--set', `data.cache_dir=${cache}`, '--set', 'data.image_size=16', '--quiet']);
    expect(r.stderr).not.toMatch(/\bat .*\.[jt]s:\d+/);
    expect(r.stdout).toContain('decoded 4 train + 2 val images');
    expect(r.stdout).toMatch(/4 images cannot be decoded/);
    expect(r.stdout).toContain(`${locked}: directory skipped: EACCES (permission denied); its images are not used`);
    expect(r.stdout).toContain(`${join(root, 'train', c(0), 'up')}: directory skipped: symlink loop`);
    expect(r.stderr).toMatch(/imagefolder: 4 unreadable entries skipped under .*loops, e\.g\. /);
    expect(r.status).toBe(1); // verify: something could not be read
    chmodSync(locked, 0o755);
  }, 60_000);

  it('an empty class folder is refused, naming it and the fix; nothing is written', async () => {
    const root = join(dir, 'empty');
    await makeJpegTree(root, { classes: 2, train: 2, val: 1, width: 40, height: 30 });
    mkdirSync(join(root, 'train', 'n99999999'));
    chmodSync(dir, 0o755);
    const png = join(dir, 'grid.png');
    const r = cli(['data', 'inspect', root, '--set', `data.cache_dir=${join(dir, 'empty-cache')}`, '-o', png]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`imagefolder: class folder ${join(root, 'train', 'n99999999')} holds no images`);
    expect(r.stderr).toContain('remove the folder or add images to it');
    expect(existsSync(png)).toBe(false);
    // a class whose only content cannot be read says so
    const only = join(root, 'train', 'n99999999', 'loop');
    symlinkSync('loop', only);
    await expect(loadIndex(root, { cacheDir: join(dir, 'empty-cache-2'), quiet: true })).rejects.toThrow(/holds no images .*\(1 unreadable entry in it, e\.g\. .*loop: skipped: ELOOP \(symlink loop\)\); remove the folder or add images to it/);
  }, 60_000);

  it('an empty flat val/ names the image extensions as a reader writes them, not as a regex', async () => {
    const root = join(dir, 'empty-val');
    await makeJpegTree(root, { classes: 2, train: 1, val: 1, width: 40, height: 30, flatVal: true });
    rmSync(join(root, 'val'), { recursive: true });
    mkdirSync(join(root, 'val'));
    const err = await loadIndex(root, { cacheDir: join(dir, 'empty-val-cache'), quiet: true, valLabels: 'val_labels.txt' }).then(() => null, (e: Error) => e.message);
    expect(err).toBe(`imagefolder: no images (.jpg .jpeg .png .webp .tif .tiff .gif .avif) under ${join(root, 'val')}`);
  });
});

describe('Slurm scripts', () => {
  const sweepFile = (out: string, extra = '') => {
    const f = join(dir, `sweep-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, `out: ${JSON.stringify(out)}\ngrid: {seed: [0, 1]}\n${extra}`);
    return f;
  };

  it('a newline in --partition or a sweep out is refused before any file is written', async () => {
    const { slurmScript, checkSlurmValues } = await import('../src/sweep/slurm.js');
    expect(() => checkSlurmValues({ '--partition': 'gpu\ntouch /tmp/pwned' })).toThrow(/--partition "gpu\\ntouch \/tmp\/pwned" contains a control character/);
    const sweep = { out: join(dir, 'sw\nrm -rf x'), file: 's.yaml', base: [] } as unknown as Parameters<typeof slurmScript>[0];
    expect(() => slurmScript(sweep, [], 'list', { gpusPerTask: 0, cwd: dir })).toThrow(/sweep out .* contains a control character/);
    expect(checkSlurmValues({ ok: '/scratch/my runs/a-b_c.1' })).toBeUndefined();
  });

  it('through the CLI: --partition with a newline, exit 2, no script and no command run', () => {
    const out = join(dir, 'sw-part');
    const pwned = join(dir, 'pwned_partition');
    const r = run(['sweep', '-c', sweepFile(out), '--slurm', '--partition', `debug\ntouch ${pwned}`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--partition "debug\\ntouch');
    expect(r.stderr).toContain('contains a control character (code 10); it would break the sbatch script');
    expect(existsSync(join(out, 'sweep.sbatch'))).toBe(false);
    expect(existsSync(join(out, 'sweep.runs'))).toBe(false);
    expect(existsSync(pwned)).toBe(false);
  });

  it("a newline in the sweep file's out is refused naming the key; nothing is created", () => {
    const base = join(dir, 'sw-out');
    const r = run(['sweep', '-c', sweepFile(`${base}\ntouch ${base}-pwned`), '--slurm']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid sweep file .*\n {2}out: must not contain control characters \(newline, tab, NUL\): they would break the Slurm script/);
    expect(existsSync(base)).toBe(false);
    expect(existsSync(`${base}-pwned`)).toBe(false);
  });

  it('spaces, quotes and # in #SBATCH values are quoted for sbatch, and the script parses in bash', async () => {
    const { sbq, slurmScript } = await import('../src/sweep/slurm.js');
    expect(sbq('gpu')).toBe('gpu');
    expect(sbq('/a b/#1 "x"\\y')).toBe('"/a b/#1 \\"x\\"\\\\y"');
    const out = join(dir, 'my sweep #1 "q"');
    const sweep = { out, file: 's.yaml', base: [join(dir, "it's.yaml")] } as unknown as Parameters<typeof slurmScript>[0];
    const runs = [{ index: 0, name: 'seed=0', dir: join(out, 'seed=0'), sets: ["name=it's"], cfg: { epochs: 1, data: { workers: 0 } } }] as unknown as Parameters<typeof slurmScript>[1];
    const text = slurmScript(sweep, runs, join(out, 'sweep.runs'), { gpusPerTask: 0, cwd: '/work dir', partition: 'gpu a100', time: '1:00:00' });
    expect(text).toContain(`#SBATCH --output="${out.replace(/"/g, '\\"')}/logs/slurm-%A_%a.out"`);
    expect(text).toContain('#SBATCH --chdir="/work dir"');
    expect(text).toContain('#SBATCH --partition="gpu a100"');
    expect(text).toContain('#SBATCH --job-name="bnlab-my sweep #1 \\"q\\""');
    const f = join(dir, 'check.sbatch');
    writeFileSync(f, text);
    const n = spawnSync('bash', ['-n', f], { encoding: 'utf8' });
    expect(n.status, n.stderr).toBe(0);
    // the shell sees the sweep folder as one word, exactly
    const line = text.split('\n').find((l) => l.startsWith('dir='))!;
    expect(spawnSync('bash', ['-c', `name=seed=0; ${line}; printf %s "$dir"`], { encoding: 'utf8' }).stdout).toBe(join(out, 'seed=0'));
  });

  it('`bnlab sweep ... | head` ends quietly, exit 0, and the command still finishes', () => {
    const out = join(dir, 'sw-pipe');
    const f = join(dir, 'pipe.yaml');
    writeFileSync(f, `out: ${out}\ngrid: {seed: [${Array.from({ length: 3000 }, (_, i) => i).join(',')}]}\n`);
    const r = spawnSync('bash', ['-c', `set -o pipefail; ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} sweep -c ${JSON.stringify(f)} --slurm | head -n 1`], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout).toMatch(/^sweep .*: 3000 runs in /);
    expect(r.stderr).not.toMatch(/EPIPE|\bat .*\.[jt]s:\d+/);
    expect(r.status).toBe(0);
    expect(existsSync(join(out, 'sweep.sbatch'))).toBe(true); // written after head had gone
  }, 60_000);

  it('a sweep file that is a directory or UTF-16 is named as such', async () => {
    const { loadSweep } = await import('../src/sweep/spec.js');
    const d = join(dir, 'sweeps');
    mkdirSync(d, { recursive: true });
    expect(() => loadSweep(d)).toThrow(`sweep ${d} is a directory; pass a YAML file`);
    const u = join(dir, 'u16.sweep.yaml');
    writeFileSync(u, Buffer.from('\ufeffout: x\n', 'utf16le'));
    expect(() => loadSweep(u)).toThrow(`sweep ${u} is not UTF-8 text (it looks like UTF-16); save it as UTF-8`);
  });
});
