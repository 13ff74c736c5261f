// Config files -> validated Config: YAML parse, --set overrides, schema validation, and error
// messages that name the key path and, for a typo, the nearest valid key.
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import { BACKENDS, configObject, configSchema, type BackendName, type Config } from './schema.js';
import { checkTracedLayers } from '../nn/resnet.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Obj = Record<string, unknown>;
/** A value as shown in a message: a 50 MB --set value must not come back as a 50 MB error. */
const clip = (s: string, n = 80) => (s.length > n ? `${s.slice(0, n - 3)}... (${s.length} characters)` : s);
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Unwrap defaults/prefaults/nullables until an object schema (or anything else) is reached. */
function unwrap(s: z.ZodType): z.ZodType {
  let cur: any = s;
  // A pipe (configSchema's transform) is unwrapped to its input: the keys as written.
  while (cur?.def?.innerType || cur?.def?.type === 'pipe') cur = cur.def.innerType ?? cur.def.in;
  return cur;
}

/** The object schema's shape at a key path, or null when the path is not an object section. */
function shapeAt(path: readonly PropertyKey[]): Record<string, z.ZodType> | null {
  let cur: any = unwrap(configSchema);
  for (const k of path) {
    if (cur?.def?.type !== 'object') return null;
    cur = unwrap(cur.shape[k as string]);
  }
  return cur?.def?.type === 'object' ? cur.shape : null;
}

function suggest(prefix: readonly PropertyKey[], key: string, candidates: string[]): string {
  if (candidates.length === 0) return '';
  const best = closest(key, candidates);
  const near = distance(key, best) <= Math.max(2, Math.floor(key.length / 3));
  return near ? ` (did you mean '${[...prefix, best].join('.')}'?)` : ` (valid keys here: ${candidates.join(', ')})`;
}

function formatIssues(issues: readonly z.core.$ZodIssue[], source: string): string {
  const lines = issues.map((i) => {
    const at = i.path.join('.');
    if (i.code === 'unrecognized_keys') {
      const shape = shapeAt(i.path) ?? {};
      return i.keys.map((k) => `unknown key '${[...i.path, k].join('.')}'${suggest(i.path, k, Object.keys(shape))}`).join('\n  ');
    }
    return `${at || '(top level)'}: ${i.message}`;
  });
  return `invalid config (${source}):\n  ${lines.join('\n  ')}\nSee every key, its type and default with: bnlab config`;
}

/** Keys that would reach an object's prototype instead of the config (never config keys). */
const PROTO_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The first prototype key anywhere in a parsed document, as a dotted path. */
function protoKey(v: unknown, prefix = ''): string | undefined {
  if (!isObj(v)) return undefined;
  for (const k of Object.keys(v)) {
    const at = prefix ? `${prefix}.${k}` : k;
    const found = PROTO_KEYS.has(k) ? at : protoKey(v[k], at);
    if (found) return found;
  }
  return undefined;
}

/** A --backend value, checked against the same list as the config's `backend` key (train, eval, bench). */
export function parseBackend(value: string, flag = '--backend'): BackendName {
  if ((BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  const best = closest(value, [...BACKENDS]);
  const hint = distance(value, best) <= 2 ? ` (did you mean '${best}'?)` : '';
  throw new ConfigError(`${flag} '${clip(value)}' is not a backend${hint}; use one of: ${BACKENDS.join(', ')}`);
}

/** Parse a `--set key.path=value` override; the value is read as YAML (numbers, booleans, lists, null). */
export function applyOverride(raw: Obj, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set '${clip(assignment)}': expected key.path=value, e.g. --set optim.batch_size=512`);
  const key = assignment.slice(0, eq).trim();
  const path = key.split('.');
  // Keys that would reach Object.prototype instead of the config.
  const bad = path.find((k) => PROTO_KEYS.has(k) || k === '');
  if (bad !== undefined) throw new ConfigError(`--set '${clip(assignment)}': '${bad || '(empty)'}' is not a config key; see every key with: bnlab config`);
  let value: unknown;
  try {
    value = parseYaml(assignment.slice(eq + 1));
  } catch (e) {
    const why = (e as Error).message.split('\n')[0].replace(/:$/, '');
    throw new ConfigError(`--set ${clip(key)}: the value '${clip(assignment.slice(eq + 1))}' is not valid YAML (${why}); quote a string (--set '${clip(key)}="..."'), write lists as [a, b]`);
  }
  for (let d = 0; d < path.length; d++) {
    const shape = shapeAt(path.slice(0, d));
    if (shape && !(path[d] in shape)) {
      throw new ConfigError(`--set: unknown key '${path.slice(0, d + 1).join('.')}'${suggest(path.slice(0, d), path[d], Object.keys(shape))}`);
    }
  }
  let node = raw;
  for (const k of path.slice(0, -1)) {
    if (!isObj(node[k])) node[k] = {};
    node = node[k] as Obj;
  }
  node[path[path.length - 1]] = value;
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  if (raw !== undefined && raw !== null && !isObj(raw)) throw new ConfigError(`invalid config (${source}): the top level must be a mapping of keys`);
  const r = configSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, source));
  try {
    checkTracedLayers(r.data.trace, r.data.model); // against the model's BN layers, before any run folder exists
  } catch (e) {
    throw new ConfigError(`invalid config (${source}):\n  ${(e as Error).message}`);
  }
  return r.data;
}

/** Texts read from pipes (`-c <(cat my.yaml)`): a pipe gives its text once, and a command may ask twice. */
const pipeTexts = new Map<string, Buffer>();
/** How long a FIFO may stay without a writer before the command says so and stops (BNLAB_PIPE_WAIT_S). */
const pipeWaitMs = () => {
  const s = Number(process.env.BNLAB_PIPE_WAIT_S);
  return (Number.isFinite(s) && s > 0 ? s : 30) * 1000;
};

/** The whole text of a pipe or FIFO, read once; a FIFO nobody writes to is refused after BNLAB_PIPE_WAIT_S, not waited on forever. */
function readPipe(path: string, what: string): Buffer {
  const seen = pipeTexts.get(path);
  if (seen) return seen;
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(1 << 16);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const t0 = Date.now();
  let writer = false; // EAGAIN or data: a writer has the pipe open, so a later 0-byte read is its end
  let told = false;
  try {
    for (;;) {
      let n = -1;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        writer = true;
      }
      if (n > 0) {
        chunks.push(Buffer.from(buf.subarray(0, n)));
        writer = true;
        continue;
      }
      if (n === 0 && writer) break;
      const waited = Date.now() - t0;
      if (waited > pipeWaitMs()) throw new ConfigError(`${what} ${path} is a FIFO (named pipe) that nothing wrote to within ${pipeWaitMs() / 1000} s; write the YAML into it (e.g. cat my.yaml > ${path}) or pass a regular file`);
      if (!told && waited > 2000) {
        process.stderr.write(`bnlab: waiting for ${path} (a FIFO) to be written (up to ${pipeWaitMs() / 1000} s)\n`);
        told = true;
      }
      Atomics.wait(nap, 0, 0, 20);
    }
  } finally {
    closeSync(fd);
  }
  const text = Buffer.concat(chunks);
  pipeTexts.set(path, text);
  return text;
}

/** A YAML mapping from a file; `what` names it in messages ('config', 'sweep'). */
export function readConfigFile(path: string, what = 'config'): Obj {
  if (!existsSync(path)) throw new ConfigError(`config file not found: ${path} (ready configs live in configs/, e.g. configs/quick.yaml)`);
  if (statSync(path).isDirectory()) {
    const yamls = readdirSync(path).filter((n) => /\.ya?ml$/.test(n)).sort();
    const hint = yamls.length ? `, e.g. ${join(path, yamls[0])}` : '';
    throw new ConfigError(`${what} ${path} is a directory; pass a YAML file${hint}`);
  }
  const bytes = statSync(path).isFIFO() ? readPipe(path, what) : readFileSync(path);
  // UTF-16 (a BOM, or NUL bytes between ASCII characters) parses as garbage: say what it is.
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) || bytes.subarray(0, 200).includes(0)) {
    throw new ConfigError(`${what} ${path} is not UTF-8 text (it looks like UTF-16); save it as UTF-8`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(bytes.toString('utf8'));
  } catch (e) {
    throw new ConfigError(`${what} ${path} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc !== null && doc !== undefined && !isObj(doc)) throw new ConfigError(`${what} ${path}: the top level must be a mapping of keys`);
  const proto = protoKey(doc);
  if (proto) throw new ConfigError(`${what} ${path}: '${proto}' is not a config key (see every key with: bnlab config); remove it`);
  return (doc as Obj) ?? {};
}

/** Keys a resumed run may change: none of them alters the experiment (name is only a label). */
export const RESUMABLE_KEYS: ReadonlySet<string> = new Set(['epochs', 'backend', 'threads', 'cuda.tf32', 'cuda.deterministic', 'name', 'checkpoint.keep_last', 'log.every_steps', 'log.tensorboard', 'report.roles']);

/** Dotted key paths whose values differ between two configs (e.g. a run's saved one and a request). */
export function configDiff(a: unknown, b: unknown, prefix = ''): string[] {
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => configDiff(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix];
}

/** Later values win; mappings merge key by key, anything else is replaced. */
function deepMerge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = isObj(v) && isObj(a[k]) ? deepMerge(a[k] as Obj, v) : v;
  return out;
}

/**
 * Config files (none = the built-in default; several = merged in order, so a shared recipe and
 * an experiment's few changes can live in separate files) + --set overrides -> validated Config.
 */
export function loadConfig(path: string | readonly string[] | undefined, overrides: readonly string[] = []): Config {
  const paths = path === undefined ? [] : typeof path === 'string' ? [path] : path;
  const raw = paths.map((p) => readConfigFile(p)).reduce(deepMerge, {} as Obj);
  // A recipe file without a name names its run after itself (-c configs/mini/base.yaml -> results/base).
  if (paths.length && raw.name === undefined) raw.name = nameFromFile(paths[paths.length - 1]);
  for (const o of overrides) applyOverride(raw, o);
  const source = [paths.length ? paths.join(' + ') : 'built-in default', ...(overrides.length ? ['--set'] : [])].join(' + ');
  return validateConfig(raw, source);
}

/** A run name from a config file's name: its base name without .yaml, as a valid folder name. */
export function nameFromFile(path: string): string {
  const name = basename(path).replace(/\.ya?ml$/i, '').replace(/[^\w.-]+/g, '-').slice(0, 100);
  return /^\.*$/.test(name) ? 'quick' : name;
}

export const dumpConfig = (c: Config): string => stringifyYaml(c);

/** The default a schema declares (through its wrappers), for keys inside null-default sections. */
function defaultOf(s: any): string {
  for (let cur = s; cur?.def; cur = cur.def.innerType) if ('defaultValue' in cur.def) return JSON.stringify(cur.def.defaultValue);
  return '(required)';
}

/** Commented YAML of every key with its default and meaning: the schema as documentation. */
export function describeConfig(): string {
  const out: string[] = ['# bnlab config: every key, its default and what it means'];
  // A section whose default is null (e.g. data.corruption) is printed as null, with its keys
  // commented out underneath so the reader still sees what it takes.
  const walk = (schema: any, indent: string, defaults: Obj | null) => {
    const shape = unwrap(schema) as any;
    for (const [key, child] of Object.entries<any>(shape.shape)) {
      const inner = unwrap(child) as any;
      const doc = child.description ?? inner.description ?? '';
      const value = defaults ? defaults[key] : undefined;
      if (inner.def.type === 'object') {
        out.push(`${indent}${key}:${value === null ? ' null' : ''}${doc ? `  # ${doc}` : ''}`);
        walk(inner, value === null || defaults === null ? `${indent}#   ` : indent + '  ', (value as Obj) ?? null);
      } else {
        const choices = inner.def.type === 'enum' ? ` [${Object.keys(inner.def.entries).join(' | ')}]` : '';
        const shown = value === undefined ? defaultOf(child) : JSON.stringify(value);
        out.push(`${indent}${key}: ${shown}  #${choices} ${doc}`);
      }
    }
  };
  // Defaults as written (null where the value follows another key, e.g. model.width).
  walk(configSchema, '', configObject.parse({}) as unknown as Obj);
  return out.join('\n') + '\n';
}
