// What a run folder holds, told apart by who wrote it: bnlab trains only into an empty folder or
// a run of its own, and --overwrite deletes only the files a bnlab run writes, naming them.
// A user's own folder (checkpoints/model-final.pt, notes, a summary.json of theirs) is never
// trained into and nothing in it is ever deleted.
import { closeSync, existsSync, openSync, readdirSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readRunInfo } from './metadata.js';
import { METRIC_COLUMNS } from './metrics.js';
import { runPaths } from './paths.js';

/** Files a run (or bnlab's scripts and `bnlab report RUN`) writes at a run folder's top. */
const OUTPUTS = new Set(['config.yaml', 'metrics.csv', 'metrics.jsonl', 'summary.json', 'run.json', 'train.log', 'bn_trace.csv', 'scalars.jsonl', 'tb', 'eval.csv', 'evals.done', 'report.md', 'report.html', 'model-ema.safetensors', 'model-precise.safetensors', 'model-frozen.safetensors']);
/** Locks and the temporaries of an atomic write by a process that died mid-write. */
const TRANSIENT = /^(\.bnlab\.lock|eval\.csv\.lock|.*\.(tmp|link|copy)-\d+|config\.yaml\.tmp|run\.json\.damaged-.*)$/;
const CHECKPOINT = /^(epoch-\d+|last|best)\.ckpt$/;

export interface FolderContents {
  /** Holds a bnlab run: a readable run.json, a bnlab checkpoint, or a metrics.csv with bnlab's header. */
  isRun: boolean;
  /** bnlab outputs present (relative paths), what --overwrite deletes. */
  outputs: string[];
  /** Everything else (relative paths): never deleted, and a folder of them is never trained into. */
  foreign: string[];
}

const hasMagic = (path: string) => {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(8);
      readSync(fd, b, 0, 8, 0);
      return b.toString('ascii').startsWith('BNLABCK');
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
};

const bnlabMetrics = (path: string) => {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(200);
      const n = readSync(fd, b, 0, 200, 0);
      return b.toString('utf8', 0, n).startsWith(METRIC_COLUMNS.slice(0, 6).join(','));
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
};

export function inspectFolder(dir: string): FolderContents {
  const out: FolderContents = { isRun: false, outputs: [], foreign: [] };
  if (!existsSync(dir)) return out;
  const p = runPaths(dir);
  for (const name of readdirSync(dir)) {
    if (TRANSIENT.test(name)) continue;
    if (name === 'checkpoints' && statSync(p.checkpoints).isDirectory()) {
      for (const c of readdirSync(p.checkpoints)) {
        const rel = join('checkpoints', c);
        if (TRANSIENT.test(c)) continue;
        if (CHECKPOINT.test(c)) {
          out.outputs.push(rel);
          if (hasMagic(join(dir, rel))) out.isRun = true;
        } else out.foreign.push(rel);
      }
      continue;
    }
    (OUTPUTS.has(name) ? out.outputs : out.foreign).push(name);
  }
  if (readRunInfo(p.runInfo) || bnlabMetrics(p.metrics)) out.isRun = true;
  return out;
}

/** A folder where bnlab keeps one of its files (metrics.csv, eval.csv, ...): the refusal naming it (null: none). */
export function folderInTheWay(dir: string): string | null {
  for (const name of OUTPUTS) {
    const path = join(dir, name);
    if (name !== 'tb' && existsSync(path) && statSync(path).isDirectory()) return `${path} is a folder, where bnlab keeps its ${name} file; move it out of the run folder and run the command again`;
  }
  return null;
}

/** The refusal for a folder that is not a bnlab run but holds files (null: bnlab may write there). */
export function foreignFolderProblem(dir: string, c: FolderContents): string | null {
  if (c.isRun || (c.foreign.length === 0 && c.outputs.length === 0)) return null;
  const files = [...c.foreign, ...c.outputs];
  const shown = files.slice(0, 5).join(', ') + (files.length > 5 ? `, and ${files.length - 5} more` : '');
  return `${dir} is not a bnlab run folder but holds files bnlab did not write (${shown}); bnlab trains only into an empty folder or one of its own runs, and never deletes files it did not write: pass another --out (or --set name=NEW)`;
}

/**
 * --overwrite: delete the previous run's outputs (never anything else). Returns what was deleted
 * and what was kept, for the log. The caller holds the run's lock and eval.csv's.
 */
export function deleteRunOutputs(dir: string): { deleted: string[]; kept: string[] } {
  const c = inspectFolder(dir);
  // tb/ holds only the event files bnlab wrote there
  for (const rel of c.outputs) rmSync(join(dir, rel), { force: true, recursive: rel === 'tb' });
  for (const name of existsSync(dir) ? readdirSync(dir) : []) if (TRANSIENT.test(name) && !name.endsWith('.lock')) rmSync(join(dir, name), { force: true });
  const ck = runPaths(dir).checkpoints;
  if (existsSync(ck) && statSync(ck).isDirectory()) {
    for (const name of readdirSync(ck)) if (TRANSIENT.test(name)) rmSync(join(ck, name), { force: true });
    if (readdirSync(ck).length === 0) rmSync(ck, { recursive: true, force: true });
  }
  return { deleted: c.outputs, kept: c.foreign };
}

/** "config.yaml, metrics.csv and 3 checkpoints" for a log line. */
export function describeFiles(files: readonly string[]): string {
  const ckpts = files.filter((f) => f.startsWith('checkpoints'));
  const rest = files.filter((f) => !f.startsWith('checkpoints'));
  return [...rest, ...(ckpts.length ? [`${ckpts.length} checkpoint${ckpts.length > 1 ? 's' : ''} (${ckpts.map((f) => f.slice('checkpoints/'.length)).join(', ')})`] : [])].join(', ');
}
