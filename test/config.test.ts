// Config loading: defaults, error messages that name the key path, --set overrides, cross-field checks.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { applyOverride, ConfigError, describeConfig, loadConfig, validateConfig } from '../src/config/load.js';
import { BEST_METRICS, configObject, microBatch } from '../src/config/schema.js';
import { MODES } from '../src/bn/modes.js';

const tmp = mkdtempSync(join(tmpdir(), 'bnlab-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

/** The ConfigError message thrown by f (fails the test if f does not throw a ConfigError). */
function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).name).toBe('ConfigError');
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
/** [dotted path, value] of every leaf of a config object. */
const leaves = (o: Obj, prefix: string[] = []): [string[], unknown][] =>
  Object.entries(o).flatMap(([k, v]) => (isObj(v) ? leaves(v, [...prefix, k]) : [[[...prefix, k], v] as [string[], unknown]]));

// Every key of the schema, written out by hand from the documented config (a missing or renamed key fails).
const EXPECTED_DEFAULTS: Obj = {
  name: 'quick', seed: 0, continuation: { seed: null, after_epoch: 0 }, epochs: 3, backend: 'auto', threads: 0,
  cuda: { tf32: true, deterministic: false },
  data: {
    name: 'fashion-mnist-mini', path: null, val_labels: null, image_size: 224, workers: 0, decoder: 'auto', shrink_on_load: true, prefetch: 2, on_error: 'skip', cache_dir: null, corruption: null,
    train_limit: null, val_limit: null,
    augment: { pad_crop: 2, flip: true, scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
    synthetic: { classes: 4, train: 512, val: 256, size: 16, channels: 1, seed: 0 },
  },
  model: { arch: 'resnet-cifar', depth: 8, width: 16, zero_init_last_gamma: true },
  bn: { nbs: 32, eps: 1e-5, ema_decay: 0.9, ema_groups: 'one', frozen_last_epochs: 0, composition: 'random', composition_classes: 2 },
  optim: {
    batch_size: 256, micro_batch: null, base_lr: 0.2, momentum: 0.9, nesterov: false, weight_decay: 1e-4,
    weight_decay_bn: null, schedule: 'step', steps: [30, 60, 90], gamma: 0.1, warmup_epochs: 0, warmup_factor: 0.1,
  },
  precise: { enabled: true, every: 1, samples: 2000, batch_size: 32, estimator: 'pooled', augment: true },
  eval: { batch_size: 500, every: 1, minibatch: false, composed: false, train_minibatch: false, train_minibatch_samples: 10000 },
  trace: { layers: [], channels: [0], batches: 100, batch_size: null, every_iters: 0, until_epoch: 1 },
  log: { every_steps: 20, tensorboard: true },
  checkpoint_every: 1,
  checkpoint: { keep_last: 0, best_metric: 'none' },
  report: { roles: [] },
  max_loss: 1000,
};

describe('defaults', () => {
  it('fill every key (empty, null and undefined input)', () => {
    for (const raw of [{}, null, undefined]) expect(validateConfig(raw)).toEqual(EXPECTED_DEFAULTS);
    expect(loadConfig(undefined)).toEqual(EXPECTED_DEFAULTS);
  });

  it('fill the rest of a partially given section, and of omitted nested sections', () => {
    const c = validateConfig({ bn: { nbs: 16 }, data: { synthetic: { size: 8 } } });
    expect(c.bn).toEqual({ ...(EXPECTED_DEFAULTS.bn as Obj), nbs: 16 });
    expect(c.data.synthetic).toEqual({ ...((EXPECTED_DEFAULTS.data as Obj).synthetic as Obj), size: 8 });
    expect(c.data.augment).toEqual((EXPECTED_DEFAULTS.data as Obj).augment);
    for (const [path, v] of leaves(c as unknown as Obj)) expect(v, path.join('.')).not.toBeUndefined();
  });

  it('are not shared between parses (mutating one config does not change the next)', () => {
    const a = validateConfig({});
    a.optim.steps.push(99);
    a.bn.nbs = 1;
    expect(validateConfig({}).optim.steps).toEqual([30, 60, 90]);
    expect(validateConfig({}).bn.nbs).toBe(32);
  });
});

describe('unknown keys', () => {
  it.each([
    [{ epoch: 3 }, 'epoch', 'epochs'],
    [{ bn: { nsb: 4 } }, 'bn.nsb', 'bn.nbs'],
    [{ optim: { batchsize: 64 } }, 'optim.batchsize', 'optim.batch_size'],
    [{ data: { augment: { flp: true } } }, 'data.augment.flp', 'data.augment.flip'],
    [{ precise: { estimater: 'pooled' } }, 'precise.estimater', 'precise.estimator'],
  ])('%j names the full path and the nearest key', (raw, key, near) => {
    const msg = errorOf(() => validateConfig(raw, 'my.yaml'));
    expect(msg).toContain(`unknown key '${key}'`);
    expect(msg).toContain(`did you mean '${near}'?`);
    expect(msg).toContain('my.yaml');
  });

  it('lists the valid keys when nothing is near', () => {
    const msg = errorOf(() => validateConfig({ bn: { zzzzzzzzzz: 1 } }));
    expect(msg).toContain("unknown key 'bn.zzzzzzzzzz'");
    expect(msg).not.toContain('did you mean');
    expect(msg).toMatch(/valid keys here: nbs, eps, ema_decay, ema_groups/);
  });

  it('reports every problem at once', () => {
    const msg = errorOf(() => validateConfig({ epoch: 3, bn: { nsb: 4 }, optim: { momentum: 2 } }));
    expect(msg).toContain("'epoch'");
    expect(msg).toContain("'bn.nsb'");
    expect(msg).toContain('optim.momentum');
  });
});

describe('wrong types and ranges name the key path', () => {
  it.each([
    [{ optim: { batch_size: 'big' } }, 'optim.batch_size', /number/],
    [{ optim: { batch_size: 0 } }, 'optim.batch_size', />=1/],
    [{ optim: { batch_size: 12.5 } }, 'optim.batch_size', /int/i],
    [{ bn: { ema_decay: 1.5 } }, 'bn.ema_decay', /<=1/],
    [{ bn: { eps: 0 } }, 'bn.eps', />0/],
    [{ bn: { ema_groups: 'some' } }, 'bn.ema_groups', /one.*all/],
    [{ model: { depth: 9 } }, 'model.depth', /6n\+2/],
    [{ threads: 300 }, 'threads', /<=256/],
    [{ data: { synthetic: { channels: 5 } } }, 'data.synthetic.channels', /<=4/],
    [{ data: { augment: { flip: 'yes' } } }, 'data.augment.flip', /boolean/],
    [{ optim: { steps: [30, 'x'] } }, 'optim.steps.1', /number/],
    [{ name: 'a b' }, 'name', /letters/],
    [{ bn: 5 }, 'bn', /object/],
  ])('%j -> %s', (raw, path, why) => {
    const msg = errorOf(() => validateConfig(raw));
    const line = msg.split('\n').find((l) => l.trim().startsWith(`${path}:`));
    expect(line, msg).toBeDefined();
    expect(line).toMatch(why);
  });

  it('rejects a top level that is not a mapping', () => {
    expect(errorOf(() => validateConfig([1, 2]))).toMatch(/top level must be a mapping/);
    expect(errorOf(() => validateConfig(3))).toMatch(/top level must be a mapping/);
  });
});

describe('--set overrides', () => {
  it('reads values as YAML: numbers, booleans, lists, strings', () => {
    const c = loadConfig(undefined, ['optim.batch_size=512', 'optim.base_lr=1e-1', 'data.augment.flip=false', 'optim.steps=[10, 20]', 'name=run-2', 'bn.eps=0.001']);
    expect(c.optim.batch_size).toBe(512);
    expect(c.optim.base_lr).toBe(0.1);
    expect(c.data.augment.flip).toBe(false);
    expect(c.optim.steps).toEqual([10, 20]);
    expect(c.name).toBe('run-2');
    expect(c.bn.eps).toBe(0.001);
    expect(c.bn.nbs).toBe(32); // untouched keys keep defaults
  });

  it('null resets a nullable key set by the file; overrides win over the file; later --set wins', () => {
    const p = file('base.yaml', 'data:\n  train_limit: 100\noptim:\n  batch_size: 128\n');
    expect(loadConfig(p).data.train_limit).toBe(100);
    const c = loadConfig(p, ['data.train_limit=null', 'optim.batch_size=64', 'optim.batch_size=32']);
    expect(c.data.train_limit).toBeNull();
    expect(c.optim.batch_size).toBe(32);
  });

  it('creates missing sections in the raw object', () => {
    const raw: Record<string, unknown> = {};
    applyOverride(raw, 'data.synthetic.size=8');
    expect(raw).toEqual({ data: { synthetic: { size: 8 } } });
  });

  it.each([
    ['bn.nsb=4', "unknown key 'bn.nsb'", "did you mean 'bn.nbs'?"],
    ['bnn.nbs=4', "unknown key 'bnn'", "did you mean 'bn'?"],
    ['epoch=4', "unknown key 'epoch'", "did you mean 'epochs'?"],
  ])('unknown key %s', (a, key, near) => {
    const msg = errorOf(() => loadConfig(undefined, [a]));
    expect(msg).toContain(key);
    expect(msg).toContain(near);
    expect(msg).toContain('--set');
  });

  it.each(['bn.nbs', '=4', ''])('malformed assignment %j', (a) => {
    expect(errorOf(() => loadConfig(undefined, [a]))).toMatch(/expected key\.path=value/);
  });

  it('a value of the wrong type is caught by validation, naming the key', () => {
    expect(errorOf(() => loadConfig(undefined, ['bn.nbs=many']))).toMatch(/bn\.nbs:.*number/);
    expect(errorOf(() => loadConfig(undefined, ['optim.nesterov=maybe']))).toMatch(/optim\.nesterov:.*boolean/);
  });
});

describe('cross-field checks', () => {
  it('total batch not a multiple of NBS', () => {
    const msg = errorOf(() => validateConfig({ bn: { nbs: 24 } }));
    expect(msg).toMatch(/optim\.batch_size: total batch 256 is not a multiple of NBS 24/);
  });

  it('NBS larger than the total batch', () => {
    const msg = errorOf(() => validateConfig({ bn: { nbs: 64 }, optim: { batch_size: 32 } }));
    expect(msg).toMatch(/bn\.nbs: NBS 64 exceeds the total batch 32/);
  });

  it.each([
    [{ bn: { nbs: 32 }, optim: { micro_batch: 48 } }], // not a multiple of NBS
    [{ bn: { nbs: 32 }, optim: { batch_size: 256, micro_batch: 512 } }], // larger than the batch
    [{ bn: { nbs: 32 }, optim: { batch_size: 256, micro_batch: 96 } }], // multiple of NBS, does not divide the batch
  ])('bad micro-batch %j', (raw) => {
    expect(errorOf(() => validateConfig(raw))).toMatch(/optim\.micro_batch: micro-batch \d+ must be a multiple of NBS 32 and divide the total batch 256/);
  });

  it('valid combinations pass, and the default micro-batch is min(batch, max(256, NBS))', () => {
    expect(microBatch(validateConfig({ bn: { nbs: 2 }, optim: { batch_size: 1024 } }))).toBe(256);
    expect(microBatch(validateConfig({ bn: { nbs: 512 }, optim: { batch_size: 1024 } }))).toBe(512);
    expect(microBatch(validateConfig({ bn: { nbs: 4 }, optim: { batch_size: 8 } }))).toBe(8);
    expect(microBatch(validateConfig({ bn: { nbs: 32 }, optim: { batch_size: 8192, micro_batch: 128 } }))).toBe(128);
  });
});

describe('config files', () => {
  it('loads a YAML file and names it in errors', () => {
    const p = file('good.yaml', 'epochs: 2\nbn:\n  nbs: 16\n');
    const c = loadConfig(p);
    expect([c.epochs, c.bn.nbs, c.optim.batch_size]).toEqual([2, 16, 256]);
    const bad = file('bad-key.yaml', 'bn:\n  nsb: 16\n');
    const msg = errorOf(() => loadConfig(bad));
    expect(msg).toContain(bad);
    expect(msg).toContain("'bn.nsb'");
  });

  it('an empty file is the defaults', () => {
    expect(loadConfig(file('empty.yaml', ''))).toEqual({ ...EXPECTED_DEFAULTS, name: 'empty' });
  });

  it('a file without name: names the run after the file (the last of several); no file is quick', () => {
    expect(loadConfig(file('base.yaml', 'epochs: 2\n')).name).toBe('base');
    expect(loadConfig([file('recipe.yaml', 'epochs: 2\n'), file('nbs 4.yml', 'bn: {nbs: 4}\n')]).name).toBe('nbs-4');
    expect(loadConfig(file('named.yaml', 'name: mine\n')).name).toBe('mine');
    expect(loadConfig(file('base.yaml', ''), ['name=other']).name).toBe('other');
    expect(loadConfig(undefined).name).toBe('quick');
  });

  it('model.width follows the architecture unless set (resnet50 64, resnet-cifar 16)', () => {
    expect(loadConfig(undefined, ['model.arch=resnet50']).model.width).toBe(64);
    expect(loadConfig(undefined).model.width).toBe(16);
    expect(loadConfig(undefined, ['model.arch=resnet50', 'model.width=32']).model.width).toBe(32);
    expect(describeConfig()).toMatch(/width: null .*resnet-cifar 16, resnet50 64/);
  });

  it('best_metric choices are the validation columns of the statistics modes, plus none', () => {
    expect([...BEST_METRICS].sort()).toEqual([...new Set(Object.values(MODES).map((m) => m.valColumn)), 'none'].sort());
  });

  it('file not found', () => {
    const p = join(tmp, 'missing.yaml');
    expect(errorOf(() => loadConfig(p))).toMatch(new RegExp(`config file not found: ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  });

  it('invalid YAML', () => {
    const p = file('broken.yaml', 'bn:\n  nbs: [1, 2\n');
    const msg = errorOf(() => loadConfig(p));
    expect(msg).toContain(p);
    expect(msg).toContain('is not valid YAML');
  });

  it('a top level that is a list', () => {
    expect(errorOf(() => loadConfig(file('list.yaml', '- 1\n- 2\n')))).toMatch(/list\.yaml: the top level must be a mapping/);
  });
});

describe('describeConfig', () => {
  const text = describeConfig();
  // As written: keys that follow another (model.width) print null.
  const defaults = configObject.parse({}) as unknown as Obj;

  it('mentions every leaf key with its default, indented under its section', () => {
    const lines = text.split('\n');
    const all = leaves(defaults);
    expect(all.length).toBe(leaves(EXPECTED_DEFAULTS).length);
    for (const [path, value] of all) {
      // Find the section headers in order, then the key line after the last one.
      let from = 0;
      path.slice(0, -1).forEach((sec, d) => {
        const i = lines.findIndex((l, k) => k >= from && l.startsWith(`${'  '.repeat(d)}${sec}:`));
        expect(i, `section ${path.slice(0, d + 1).join('.')}`).toBeGreaterThanOrEqual(0);
        from = i + 1;
      });
      const key = path[path.length - 1];
      const indent = '  '.repeat(path.length - 1);
      const line = lines.slice(from).find((l) => l.startsWith(`${indent}${key}:`));
      expect(line, path.join('.')).toBeDefined();
      expect(line!.slice(indent.length + key.length + 1).split('  #')[0].trim(), path.join('.')).toBe(JSON.stringify(value));
      expect(line, `${path.join('.')} has a description`).toMatch(/#\s*\S/);
    }
  });

  it('is valid YAML that parses back to the default config', () => {
    expect(parseYaml(text)).toEqual(defaults);
  });

  it('lists the choices of enum keys', () => {
    expect(text).toMatch(/estimator: "pooled" .*\[pooled \| mean-of-var\]/);
    expect(text).toMatch(/ema_groups: "one" .*\[one \| all\]/);
  });
});

describe('configs/quick.yaml', () => {
  it('spells out exactly the built-in default run', () => {
    expect(loadConfig('configs/quick.yaml')).toEqual(EXPECTED_DEFAULTS);
  });
});
