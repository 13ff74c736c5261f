// Sweep files -> a validated list of runs: a base config, fixed overrides, and a grid of config
// keys whose cartesian product gives one `bnlab train` run per point. Every point's config is
// resolved up front, so a typo stops the sweep before anything trains.
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { closest, distance } from 'fastest-levenshtein';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, loadConfig, readConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { forkProblems } from '../train/fork.js';
import { keptAtEnd } from '../run/retention.js';

const scalar = z.union([z.number(), z.string(), z.boolean(), z.null(), z.array(z.union([z.number(), z.string(), z.boolean()]))]);
const overrides = z.record(z.string(), scalar);
// Paths and the name template end up in #SBATCH lines, comments and the runs list of a Slurm
// script, where a newline would end the line and run the rest as a command.
const text = z
  .string()
  .min(1, 'must not be empty')
  .max(4096, 'at most 4096 characters')
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters (newline, tab, NUL): they would break the Slurm script; use a plain name or path');

export const sweepSchema = z
  .object({
    base: z.union([text, z.array(text).min(1)]).optional().describe('config file(s) the runs start from (several merge in order), relative to the sweep file; omitted = built-in default'),
    out: text.describe('sweep folder: each run writes <out>/<run name>; relative to the current directory'),
    set: overrides.default({}).describe("fixed overrides for every run: dotted key -> value, e.g. 'optim.batch_size: 1024'"),
    grid: z.record(z.string(), z.array(scalar).min(1, 'give at least one value')).default({}).describe('dotted key -> list of values; one run per point of the cartesian product'),
    variants: z.array(overrides).min(1).optional().describe('optional list of override sets (values that change together), crossed with the grid'),
    name: text.optional().describe("run folder template, e.g. 'nbs{bn.nbs}' ({key} = the run's resolved value); default key=value of the varied keys joined by '_'"),
    fork: z
      .object({
        from: text.describe("name template of the source run, e.g. 'nbs{bn.nbs}_frozen0_seed{seed}'; a run it names itself trains from scratch"),
        epoch: z.number().int().min(1).describe('the source epoch to start from'),
      })
      .strict()
      .optional()
      .describe("runs that differ from another run of the sweep only after an epoch (bn.frozen_last_epochs, epochs) start from that run's checkpoint there (bnlab train --fork) instead of training the same epochs again; they run after every other run"),
  })
  .strict();
export type SweepFile = z.output<typeof sweepSchema>;
type Value = z.output<typeof scalar>;

export interface SweepRun {
  index: number;
  name: string;
  dir: string;
  /** `--set` assignments for `bnlab train` (fixed ones first, then this point's). */
  sets: string[];
  cfg: Config;
  /** starts from this run of the sweep at the end of `epoch` (bnlab train --fork) */
  fork?: { from: SweepRun; epoch: number };
}
/** `bnlab train --fork` argument of a forked run: its source's folder and epoch. */
export const forkArg = (run: SweepRun): string | undefined => (run.fork ? `${run.fork.from.dir}@${run.fork.epoch}` : undefined);

export interface Sweep {
  file: string;
  /** config files, merged in order (empty = built-in default) */
  base: string[];
  out: string;
  runs: SweepRun[];
}

/** A value as `--set` text: parsed back as YAML it gives the same value. */
export function formatValue(v: Value): string {
  if (typeof v === 'string') {
    let back: unknown;
    try {
      back = parseYaml(v);
    } catch {
      back = undefined;
    }
    return back === v ? v : JSON.stringify(v);
  }
  return JSON.stringify(v); // numbers, booleans, null, lists: JSON is YAML
}

/** Cartesian product of the grid, in file order with the last key varying fastest. */
export function expandGrid(grid: Record<string, Value[]>): Record<string, Value>[] {
  let points: Record<string, Value>[] = [{}];
  for (const [key, values] of Object.entries(grid)) points = points.flatMap((p) => values.map((v) => ({ ...p, [key]: v })));
  return points;
}

const get = (obj: unknown, path: string): unknown => path.split('.').reduce<any>((o, k) => (o && typeof o === 'object' && k in o ? o[k] : undefined), obj);
const leafKeys = (obj: unknown, prefix = ''): string[] =>
  obj && typeof obj === 'object' && !Array.isArray(obj) ? Object.entries(obj).flatMap(([k, v]) => leafKeys(v, prefix ? `${prefix}.${k}` : k)) : [prefix];
const slug = (v: unknown) => (Array.isArray(v) ? v.join('-') : String(v)).replace(/[^\w.=+-]+/g, '-');

/** Run folder name from the template ({dotted.key} -> the run's resolved value). */
export function runName(template: string | undefined, varied: Record<string, Value>, cfg: Config): string {
  if (template === undefined) {
    const parts = Object.entries(varied).map(([k, v]) => `${k}=${slug(v)}`);
    return parts.length ? parts.join('_') : 'run';
  }
  return template.replace(/\{([^}]*)\}/g, (_, key: string) => {
    const v = get(cfg, key.trim());
    if (v === undefined || (typeof v === 'object' && v !== null && !Array.isArray(v))) {
      const keys = leafKeys(cfg);
      const best = closest(key, keys);
      const hint = distance(key, best) <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean '{${best}}'?)` : '';
      throw new ConfigError(`sweep name '${template}': '{${key}}' is not a config key${hint}`);
    }
    return slug(v);
  });
}

function formatIssues(issues: readonly z.core.$ZodIssue[], file: string): string {
  const fields = Object.keys(sweepSchema.shape);
  const lines = issues.map((i) => {
    if (i.code === 'unrecognized_keys') {
      return i.keys
        .map((k) => {
          const best = closest(k, fields);
          const hint = distance(k, best) <= Math.max(2, Math.floor(k.length / 3)) ? `did you mean '${best}'?` : `valid keys: ${fields.join(', ')}`;
          return `unknown key '${k}' (${hint})`;
        })
        .join('\n  ');
    }
    return `${i.path.join('.') || '(top level)'}: ${i.message}`;
  });
  return `invalid sweep file (${file}):\n  ${lines.join('\n  ')}\nA sweep file has: base (config file), out (folder), set (fixed key: value), grid (key: [values]), variants, name, fork (from: name template, epoch)`;
}

export function parseSweep(doc: unknown, file: string): SweepFile {
  const r = sweepSchema.safeParse(doc ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error.issues, file));
  return r.data;
}

/** Each run whose fork.from names another run starts from it; checked now, before anything trains. */
function linkForks(runs: SweepRun[], points: Record<string, Value>[], fork: { from: string; epoch: number }, file: string): void {
  const byName = new Map(runs.map((r) => [r.name, r]));
  for (const run of runs) {
    const from = runName(fork.from, points[run.index], run.cfg);
    if (from === run.name) continue;
    const source = byName.get(from);
    if (!source) throw new ConfigError(`sweep ${file}: fork.from '${fork.from}' gives '${from}' for run '${run.name}', which is not a run of this sweep (runs: ${runs.slice(0, 4).map((r) => r.name).join(', ')}, ...)`);
    const problems = forkProblems(source.cfg, run.cfg, fork.epoch);
    if (source.cfg.epochs < fork.epoch) problems.unshift(`the source trains only ${source.cfg.epochs} epochs`);
    else if (!keptAtEnd(source.cfg).includes(fork.epoch)) problems.unshift(`the source will not keep a checkpoint of epoch ${fork.epoch} (checkpoint_every ${source.cfg.checkpoint_every}, checkpoint.keep_last ${source.cfg.checkpoint.keep_last}); set checkpoint.keep_last 0 or fork at a kept epoch`);
    if (problems.length) throw new ConfigError(`sweep ${file}: run '${run.name}' cannot fork from '${from}' at epoch ${fork.epoch}:\n  ${problems.join('\n  ')}`);
    run.fork = { from: source, epoch: fork.epoch };
  }
  for (const run of runs) {
    if (run.fork?.from.fork) throw new ConfigError(`sweep ${file}: run '${run.name}' would fork from '${run.fork.from.name}', itself a fork; point fork.from at runs that train from scratch`);
  }
}

/**
 * Read, validate and expand a sweep file; `outOverride` replaces its `out` (tests, scripts);
 * `extraSets` (`bnlab sweep --set`, e.g. data.path=/datasets/imagenet) apply to every run after
 * the file's `set`, and may not name a key the sweep varies.
 */
export function loadSweep(file: string, outOverride?: string, extraSets: readonly string[] = []): Sweep {
  if (!existsSync(file)) throw new ConfigError(`sweep file not found: ${file} (ready ones live in configs/paper and configs/mini)`);
  const s = parseSweep(readConfigFile(file, 'sweep'), file); // a directory, UTF-16, bad YAML: said so
  const base = (s.base === undefined ? [] : typeof s.base === 'string' ? [s.base] : s.base).map((b) => (isAbsolute(b) ? b : resolve(dirname(file), b)));
  const out = resolve(outOverride ?? s.out);
  const fixed = Object.entries(s.set).map(([k, v]) => `${k}=${formatValue(v)}`);
  const points = (s.variants ?? [{}]).flatMap((variant) => expandGrid(s.grid).map((g) => ({ ...variant, ...g })));
  const variedKeys = new Set(points.flatMap((p) => Object.keys(p)));
  for (const x of extraSets) {
    const key = x.split('=')[0];
    if (variedKeys.has(key)) throw new ConfigError(`--set ${x}: the sweep ${file} varies ${key} (grid or variants); edit the sweep file to change its values`);
  }
  const fixedAll = [...fixed, ...extraSets];
  const runs: SweepRun[] = [];
  const seen = new Map<string, number>();
  points.forEach((varied, index) => {
    const sets = [...fixedAll, ...Object.entries(varied).map(([k, v]) => `${k}=${formatValue(v)}`)];
    let cfg: Config;
    try {
      cfg = loadConfig(base, sets);
    } catch (e) {
      const what = Object.keys(varied).length ? ` at grid point ${Object.entries(varied).map(([k, v]) => `${k}=${formatValue(v)}`).join(', ')}` : '';
      throw new ConfigError(`sweep ${file}${what}: ${(e as Error).message}`);
    }
    const name = runName(s.name, varied, cfg);
    if (!/^[\w.=+-]+$/.test(name)) throw new ConfigError(`sweep ${file}: run name '${name}' may only use letters, digits and _ . = + -`);
    if (seen.has(name)) throw new ConfigError(`sweep ${file}: runs ${seen.get(name)} and ${index} are both named '${name}'; put every varied key in 'name'`);
    seen.set(name, index);
    runs.push({ index, name, dir: resolve(out, name), sets, cfg });
  });
  if (s.fork) linkForks(runs, points, s.fork, file);
  return { file, base, out, runs };
}
