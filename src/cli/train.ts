// `bnlab train`: resolve the config, pick a backend, load data, run, and stop cleanly on Ctrl-C.
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { initBackend, type BackendReport } from '../backend/index.js';
import { ConfigError, configDiff, parseBackend, RESUMABLE_KEYS, loadConfig, readConfigFile, validateConfig } from '../config/load.js';
import { BACKENDS, unionRoles, type Config } from '../config/schema.js';
import { dataSourceProblem, loadDataset } from '../data/dataset.js';
import { acquireLock } from '../run/lock.js';
import { runPaths } from '../run/paths.js';
import { train, type TrainOptions, type TrainResult } from '../train/trainer.js';
import { loadFork, type Fork } from '../train/fork.js';
import { createLogger, type Logger } from '../util/log.js';
import type { Dataset } from '../data/dataset.js';
import { buildNetwork } from '../nn/resnet.js';
import { readCheckpointMeta, writeFileAtomic } from '../run/checkpoint.js';
import { deleteRunOutputs, describeFiles, folderInTheWay, foreignFolderProblem, inspectFolder } from '../run/folder.js';
import { newRunId } from '../run/identity.js';
import { keptEpochs } from '../run/retention.js';
import type { RunMeta } from '../train/state.js';
import { DIED, describeSession, readRunInfo, startSession, wallSeconds, type OpenSession } from '../run/metadata.js';
import { readMetrics } from '../run/metrics.js';
import { summarizeRun, summaryLines } from '../run/summary.js';
import { createProgress } from '../util/progress.js';

const collect = (v: string, prev: string[]) => [...prev, v];

interface TrainFlags {
  config: string[];
  set: string[];
  out?: string;
  resume?: boolean;
  autoResume?: boolean;
  overwrite?: boolean;
  fork?: string;
  backend?: string;
  quiet?: boolean;
}


/** The config of a run: from its folder when resuming (only `epochs` and `backend` may change). */
function resolveRun(f: TrainFlags, requested: Config, outDir: string, existed: boolean): { cfg: Config; note?: string; fork?: Fork } {
  const paths = runPaths(outDir);
  const folder = inspectFolder(outDir);
  const foreign = foreignFolderProblem(outDir, folder) ?? folderInTheWay(outDir);
  if (foreign) throw new ConfigError(foreign);
  const hasCheckpoint = folder.outputs.some((o) => o.endsWith('.ckpt'));
  if (f.resume && existed && !existsSync(paths.config) && !hasCheckpoint) {
    // Killed before it wrote anything to continue from: start it, with the config given now.
    return { cfg: requested, note: `--resume: ${outDir} holds no config.yaml and no checkpoint yet (the run stopped before its first); starting it from the beginning` };
  }
  if (f.resume) {
    if (!existed) throw new ConfigError(`--resume: ${outDir} does not exist, so there is nothing to resume; start the run without --resume`);
    if (!existsSync(paths.config)) throw new ConfigError(`--resume: ${outDir} has no config.yaml; is it a bnlab run folder? (pass --out DIR or the run's --config)`);
    const saved = validateConfig(readConfigFile(paths.config), paths.config);
    // Without --config the run's own config is the base, and --set changes it (e.g. epochs=20).
    const wanted = f.config.length ? requested : loadConfig([paths.config], f.set);
    const changed = configDiff(saved, wanted).filter((k) => !RESUMABLE_KEYS.has(k));
    if (changed.length) throw new ConfigError(`--resume: the config differs from the run's saved config in ${changed.join(', ')}; resume with the run's own config (only ${[...RESUMABLE_KEYS].join(', ')} may change)`);
    return { cfg: { ...saved, epochs: wanted.epochs, backend: wanted.backend, threads: wanted.threads, checkpoint: wanted.checkpoint, cuda: wanted.cuda, log: wanted.log, report: { roles: unionRoles(saved.report.roles, wanted.report.roles) } } };
  }
  if (folder.isRun && !f.overwrite) {
    throw new ConfigError(`${outDir} already holds a run. Continue it with --resume, start over with --overwrite (deletes that run's files only), or write elsewhere with --out DIR or --set name=NEW`);
  }
  return { cfg: requested, ...(f.fork ? { fork: loadFork(f.fork, requested, outDir) } : {}) };
}

/** The folder for --out: created, or an error naming it and why it cannot be (read-only, a file in the way). */
function makeRunFolder(dir: string): void {
  try {
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw Object.assign(new Error('exists'), { code: 'ENOTDIR' });
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const code = writeProblem(dir) ?? (e as NodeJS.ErrnoException).code;
    const why =
      code === 'EROFS' ? 'it is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOTDIR' || code === 'EEXIST' ? 'it (or a folder above it) is a file, not a folder' : code === 'ENOSPC' ? 'the disk is full' : (e as Error).message;
    throw new ConfigError(`cannot use ${dir} as the run folder: ${why}; pass another --out`);
  }
}

/** Why the nearest existing folder above `dir` cannot be written (a recursive mkdir reports ENOENT for a read-only mount). */
function writeProblem(dir: string): string | undefined {
  let d = dirname(dir);
  while (!existsSync(d) && d !== dirname(d)) d = dirname(d);
  try {
    accessSync(d, constants.W_OK);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
}

/** The run's id: its run.json's, else (run.json damaged or from before ids) its newest checkpoint's, else a new one. */
function runIdOf(outDir: string, resuming: boolean): string {
  if (!resuming) return newRunId();
  const p = runPaths(outDir);
  const fromInfo = readRunInfo(p.runInfo)?.id;
  if (fromInfo) return fromInfo;
  for (const file of [p.last, ...keptEpochs(p).reverse().map(p.epoch)]) {
    try {
      const id = readCheckpointMeta<RunMeta>(file).run_id;
      if (id) return id;
    } catch {
      // unreadable: the resume itself says so
    }
  }
  return newRunId();
}

/** "resnet-cifar-8 width 16 (78.0k parameters)": what was built, so a silent default shows. */
function modelLine(cfg: Config, data: Dataset): string {
  const net = buildNetwork(cfg.model, data.train.channels, data.numClasses);
  const n = net.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  const count = n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`;
  return `model ${cfg.model.arch}${cfg.model.arch === 'resnet-cifar' ? `-${cfg.model.depth}` : ''} width ${cfg.model.width} (${count} parameters)`;
}

/** summary.json and its lines in train.log (and stdout unless --quiet). */
function writeSummary(outDir: string, cfg: Config, wall: number | null, log: Logger): void {
  const paths = runPaths(outDir);
  const summary = summarizeRun(outDir, paths, readMetrics(paths.metrics), cfg.epochs, wall);
  writeFileAtomic(paths.summary, [Buffer.from(JSON.stringify(summary, null, 2) + '\n', 'utf8')]);
  for (const line of summaryLines(summary)) log(line);
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('train a model, writing metrics.csv (EMA and PreciseBN error per epoch), checkpoints and a log to results/<name>')
    .option('-c, --config <file>', 'YAML config (default: the built-in quick Fashion-MNIST experiment; see `bnlab config`); repeat to merge several, later ones win', collect, [])
    .option('--set <key=value>', 'override a config key, e.g. --set bn.nbs=4 (repeatable)', collect, [])
    .option('-o, --out <dir>', 'run folder (default results/<name>)')
    .option('--resume', 'continue the run in the folder from its last checkpoint')
    .option('--overwrite', "replace the run in the folder (deletes that run's files, nothing else)")
    .option('--auto-resume', 'continue the run in the folder if there is one, else start it (what sweeps and Slurm requeues use)')
    .option('--fork <run[@epoch]>', "start from another run's checkpoint at the end of an epoch (default its last) instead of from scratch; the config may differ from that run's only in bn.frozen_last_epochs (FrozenBN starting after that epoch), epochs and name, so its first epochs are that run's exactly")
    .option('--backend <name>', `${BACKENDS.join(' | ')} (overrides the config; see \`bnlab config\` for each)`)
    .option('-q, --quiet', 'no progress bars or per-epoch lines (the log file still gets them)')
    .action(runTrain);
}

/**
 * `bnlab train`, top to bottom. Every refusal (ConfigError, exit 2) comes before a backend starts
 * or an old run's file is deleted; once run.json has this session, a failure is recorded there.
 */
async function runTrain(f: TrainFlags): Promise<void> {
  checkFlags(f);
  const started = new Date();
  const requested = loadConfig(f.config, f.set); // once: a config from a pipe can be read only once
  const outDir = resolve(f.out ?? join('results', requested.name));
  const paths = runPaths(outDir);
  // Before a backend starts or a folder is made: missing data is a config error (exit 2).
  const noData = dataSourceProblem(requested.data);
  if (noData) throw new ConfigError(noData);
  const { created, stale } = await claimFolder(outDir);
  if (f.autoResume) resumeOrStart(f, outDir);
  const resolved = resolveOrLeaveNothing(f, requested, outDir, created);
  const { cfg } = resolved;
  const overwritten = f.overwrite ? await deleteOldRun(outDir) : null;
  mkdirSync(outDir, { recursive: true });
  const log = createLogger(paths.log, !!f.quiet);
  logStartNotes(log, stale, overwritten, resolved.note);
  const backend = await initBackend(cfg.backend, cfg.threads, cfg.cuda);
  log(`backend: ${backend.name} — ${backend.reason}`);
  for (const d of backend.details) log(`  ${d}`);
  const session = openSession(outDir, backend, started, resolved.fork, !!f.resume, log);
  const data = await loadDataOrEnd(cfg, session);
  log(`data: ${data.name} (${data.train.n} train / ${data.val.n} val, ${data.train.height}x${data.train.width}x${data.train.channels}) from ${data.source}`);
  log(`run: ${outDir}  ${modelLine(cfg, data)}  batch ${cfg.optim.batch_size}  NBS ${cfg.bn.nbs}  epochs ${cfg.epochs}`);

  const signals = stopOnSignal();
  const res = await trainOrEnd(cfg, data, { outDir, runId: session.id, resume: !!f.resume, fork: resolved.fork, log, progress: createProgress(!!f.quiet), interrupted: signals.stopped }, session);
  // Exit while the handler is still installed: a further Ctrl-C now must not kill mid-exit.
  if (res.interrupted) {
    session.end('interrupted', res.state.meta.epoch);
    process.exit(130);
  }
  signals.remove();
  // A resume of a finished run trained nothing: no session to record, only its summary to show.
  const alreadyFinished = res.rows.length === 0;
  if (alreadyFinished) session.discard();
  const info = alreadyFinished ? readRunInfo(paths.runInfo) : session.end('finished', res.state.meta.epoch);
  writeSummary(outDir, cfg, wallSeconds(info), log);
}

/** Flags that contradict each other are refused before anything is read; --backend becomes a --set. */
function checkFlags(f: TrainFlags): void {
  if (f.backend) f.set.push(`backend=${parseBackend(f.backend)}`);
  if (f.resume && f.fork) throw new ConfigError('--resume and --fork contradict each other: --resume continues the run in the folder (a fork is resumed like any run), --fork starts a new one; pass one');
  if (f.autoResume && (f.resume || f.overwrite)) throw new ConfigError('--auto-resume decides between continuing and starting by itself; pass it without --resume or --overwrite');
  if (f.resume && f.overwrite) throw new ConfigError('--resume and --overwrite contradict each other: --resume continues the run in the folder, --overwrite deletes it; pass one');
}

/** One writer per run folder, taken before anything in it is read or deleted. */
async function claimFolder(outDir: string): Promise<{ created: boolean; stale: string[] }> {
  const created = !existsSync(outDir);
  makeRunFolder(outDir);
  const stale: string[] = [];
  await acquireLock(runPaths(outDir).lock, 'bnlab train', { onStale: (m) => stale.push(m) });
  return { created, stale };
}

/** --auto-resume (a sweep task or a Slurm requeue): continue what is there, else start (a fork only then). */
function resumeOrStart(f: TrainFlags, outDir: string): void {
  const folder = inspectFolder(outDir);
  const hasCheckpoint = folder.outputs.some((o) => o.endsWith('.ckpt'));
  if (folder.isRun && (hasCheckpoint || !f.fork)) f.resume = true;
  else if (folder.isRun) f.overwrite = true;
  if (f.resume) delete f.fork;
}

/** resolveRun; a refused start leaves nothing behind (the folder this start made is removed). */
function resolveOrLeaveNothing(f: TrainFlags, requested: Config, outDir: string, created: boolean): ReturnType<typeof resolveRun> {
  try {
    return resolveRun(f, requested, outDir, !created);
  } catch (e) {
    if (created) rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
}

/** --overwrite, under eval.csv's lock: an eval of the old run still running must not append to the new one. */
async function deleteOldRun(outDir: string): Promise<ReturnType<typeof deleteRunOutputs>> {
  const releaseEval = await acquireLock(`${runPaths(outDir).eval}.lock`, 'bnlab train --overwrite', { waitMs: 60_000 });
  try {
    return deleteRunOutputs(outDir);
  } finally {
    releaseEval();
  }
}

/** What happened before the log existed: stale locks taken over, files --overwrite deleted or kept, a resume that starts over. */
function logStartNotes(log: Logger, stale: string[], overwritten: ReturnType<typeof deleteRunOutputs> | null, note: string | undefined): void {
  for (const m of stale) log(m);
  if (overwritten?.deleted.length) log(`--overwrite: deleted the previous run's ${describeFiles(overwritten.deleted)}`);
  if (overwritten?.kept.length) log(`--overwrite: kept what bnlab did not write: ${overwritten.kept.join(', ')}`);
  if (note) log(note);
}

/** This start's session in run.json (the run's id), after saying whether the previous one died. */
function openSession(outDir: string, backend: BackendReport, started: Date, fork: Fork | undefined, resuming: boolean, log: Logger): OpenSession {
  const paths = runPaths(outDir);
  const forked = fork && { forked_from: { run: fork.run, checkpoint: fork.checkpoint, epoch: fork.epoch } };
  // this process holds the lock: a session still marked running died without a word
  const prev = readRunInfo(paths.runInfo)?.sessions.at(-1);
  if (prev?.status === 'running') log(`the previous session (started ${prev.start}, ${prev.command.join(' ')}) ${DIED}`);
  const session = startSession(paths.runInfo, outDir, { ...describeSession({ name: backend.name, reason: backend.reason }, started), ...forked }, runIdOf(outDir, resuming));
  if (session.note) log(session.note);
  return session;
}

/** The dataset; a failure to load it ends the session as failed. */
async function loadDataOrEnd(cfg: Config, session: OpenSession): Promise<Dataset> {
  try {
    return await loadDataset(cfg.data);
  } catch (e) {
    session.end('failed', null, (e as Error).message);
    throw e;
  }
}

/**
 * Ctrl-C or SIGTERM: the first finishes this step and saves a checkpoint, a second exits at once.
 * Slurm, systemd and `kill` send SIGTERM: the message names the signal that arrived, not a keypress.
 */
function stopOnSignal(): { stopped: () => boolean; remove: () => void } {
  let stop = false;
  const onSignal = (sig: NodeJS.Signals) => {
    const what = sig === 'SIGINT' ? 'Ctrl-C' : sig;
    if (stop) {
      process.stderr.write(`\nbnlab: second ${what}, exiting without saving this step\n`);
      process.exit(130);
    }
    stop = true;
    process.stderr.write(`\nbnlab: ${what} — finishing this step and saving a checkpoint (${sig === 'SIGINT' ? 'Ctrl-C' : 'a second signal'} again to abort)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stopped: () => stop,
    remove: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The training; a failure reaches train.log (a Slurm job's log is often the only thing read) and ends the session. */
async function trainOrEnd(cfg: Config, data: Dataset, o: TrainOptions, session: OpenSession): Promise<TrainResult> {
  try {
    return await train(cfg, data, o);
  } catch (e) {
    appendFileSync(runPaths(o.outDir).log, `${new Date().toISOString()} error: ${(e as Error).message}\n`);
    session.end('failed', null, (e as Error).message);
    throw e;
  }
}
