// `bnlab sweep`: one `bnlab train` per point of a grid over config keys, locally (K in parallel,
// one GPU each) or as a Slurm array. Re-running a sweep skips finished runs and resumes the rest.
import type { Command } from 'commander';
import { ConfigError } from '../config/load.js';
import { localTrainArgs, logPath, runLocal, stopRuns, trainArgs } from '../sweep/local.js';
import { cpusFor, writeSlurm, submit, shq, type SlurmArray } from '../sweep/slurm.js';
import { loadSweep, type Sweep, type SweepRun } from '../sweep/spec.js';
import { recordFinishedRoles, runStatus, sessionNote, type RunStatus } from '../sweep/status.js';

interface SweepFlags {
  config: string;
  set: string[];
  out?: string;
  quiet?: boolean;
  jobs?: string;
  gpus?: string;
  slurm?: boolean;
  submit?: boolean;
  dryRun?: boolean;
  partition?: string;
  time?: string;
  cpusPerTask?: string;
  slurmGpus?: string;
}

const posInt = (flag: string, v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${flag} ${v}: expected a positive integer`);
  return n;
};

export function registerSweep(program: Command): void {
  program
    .command('sweep')
    .description('train every point of a grid over config keys (sweep YAML: base, out, set, grid, variants, name, fork); finished runs are skipped, unfinished ones resumed')
    .requiredOption('-c, --config <file>', 'sweep YAML (see configs/mini/*.sweep.yaml)')
    .option('-o, --out <dir>', "sweep folder (overrides the file's out)")
    .option('--set <key=value>', 'override a config key in every run, after the sweep file\'s set (e.g. --set data.path=/datasets/imagenet); recorded in each run\'s config (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('-j, --jobs <k>', 'runs at once (locally; with --slurm the array throttle %K); default: number of --gpus, else 1')
    .option('--gpus <ids>', 'GPU ids, e.g. 0,1,2,3: each parallel run gets one (CUDA_VISIBLE_DEVICES, round-robin)')
    .option('--slurm', 'write <out>/sweep.sbatch (an array job) and <out>/sweep.runs instead of running')
    .option('--submit', 'with --slurm: sbatch the script and print the job id')
    .option('--partition <name>', 'Slurm partition')
    .option('--time <limit>', 'Slurm time limit per run, e.g. 48:00:00')
    .option('--cpus-per-task <n>', 'Slurm CPUs per run (also the wasm thread count on CPU)')
    .option('--slurm-gpus <n>', 'Slurm GPUs per run (--gres=gpu:N); --gpus implies 1')
    .option('--dry-run', 'validate every run and print what would run, without training')
    .option('-q, --quiet', 'no progress bar or periodic progress lines (each run\'s start and end are still printed)')
    .action(runSweep);
}

const print = (l: string) => process.stdout.write(`${l}\n`);

type RunAndStatus = RunStatus & { run: SweepRun };

/** Where the runs go: the parallel runs and the GPU each one gets. */
interface Placement {
  jobs: number;
  gpus: string[];
}

/** `bnlab sweep`: what is finished, then a dry run's listing, a Slurm array, or the runs here. */
async function runSweep(f: SweepFlags): Promise<void> {
  const sweep = loadSweep(f.config, f.out, f.set); // validates every grid point's config first
  const gpus = f.gpus ? f.gpus.split(',').map((g) => g.trim()).filter(Boolean) : [];
  const at: Placement = { jobs: posInt('--jobs', f.jobs) ?? Math.max(1, gpus.length), gpus };
  const states: RunAndStatus[] = sweep.runs.map((r) => ({ run: r, ...runStatus(r) }));
  const todo = states.filter((s) => s.state !== 'finished');
  print(`sweep ${f.config}: ${sweep.runs.length} runs in ${sweep.out} (${sweep.runs.length - todo.length} finished, ${todo.length} to run)`);
  if (!f.dryRun) recordFinishedRoles(states, print);
  if (f.dryRun) printDryRun(f, sweep, states, at);
  // a dry run with --slurm also shows the array script it would write
  if (f.slurm) return writeSlurmArrays(f, sweep, todo, at);
  if (f.dryRun) return;
  if (f.submit) throw new ConfigError('--submit needs --slurm');
  await runHere(sweep, at, f.quiet);
}

/** --dry-run: every run's state and, for those left, the command it gets. */
function printDryRun(f: SweepFlags, sweep: Sweep, states: RunAndStatus[], at: Placement): void {
  for (const s of states) {
    const about = [s.lastEpoch ? `epoch ${s.lastEpoch}/${s.run.cfg.epochs}` : '', sessionNote(s).slice(2)].filter(Boolean).join('; ');
    print(`  ${s.run.name}: ${s.state}${about ? ` (${about})` : ''}`);
    // locally: exactly the command the run gets; with --slurm the array script adds threads itself
    const args = f.slurm ? trainArgs(sweep, s.run) : localTrainArgs(sweep, s.run, at);
    if (s.state !== 'finished') print(`    bnlab ${args.map(shq).join(' ')}`);
  }
}

/** --slurm: the unfinished runs as array jobs (the forks' array its own), written, shown or submitted. */
function writeSlurmArrays(f: SweepFlags, sweep: Sweep, todo: RunAndStatus[], at: Placement): void {
  if (todo.length === 0) {
    print('every run is finished; nothing to submit');
    return;
  }
  const gpusPerTask = posInt('--slurm-gpus', f.slurmGpus) ?? (at.gpus.length ? 1 : 0);
  const opts = { jobs: f.jobs ? at.jobs : undefined, gpusPerTask, partition: f.partition, time: f.time, cpusPerTask: posInt('--cpus-per-task', f.cpusPerTask), cwd: process.cwd() };
  if (cpusFor(todo.map((s) => s.run), opts.cpusPerTask) === undefined && todo.some((s) => s.run.cfg.data.name === 'imagefolder')) {
    print('note: no --cpus-per-task and data.workers is 0 (one per core): Slurm gives each task 1 CPU, too few to decode JPEGs; pass --cpus-per-task N or set data.workers');
  }
  const arrays = writeSlurm(sweep, todo.map((s) => s.run), opts, !!f.dryRun);
  for (const a of arrays) print(a.text !== undefined ? `would write ${a.script} (${a.runs} array tasks) and ${a.list}:\n${a.text}` : `wrote ${a.script} (${a.runs} array tasks) and ${a.list}`);
  if (f.submit && !f.dryRun) return submitArrays(sweep, arrays);
  // the forks' array after the other: its runs start from checkpoints the first writes
  if (arrays.length === 2) print(`submit with: id=$(sbatch --parsable ${shq(arrays[0].script)}) && sbatch --dependency=afterok:$id ${shq(arrays[1].script)}`);
  else print(`submit with: sbatch ${shq(arrays[0].script)}`);
}

/** --submit: sbatch each array, the second after the first succeeds; the last job id alone on the last line. */
function submitArrays(sweep: Sweep, arrays: SlurmArray[]): void {
  let id: string | undefined;
  for (const a of arrays) {
    const after: string | undefined = id;
    id = submit(a.script, after);
    print(`submitted job ${id}${after ? ` (starts after job ${after} succeeds)` : ''}; logs ${sweep.out}/logs/slurm-${id}_<task>.out; watch with: squeue -j ${id}`);
  }
  print(id!);
}

/** The runs on this machine, K at a time; Ctrl-C or SIGTERM has every running run save a checkpoint and stop. */
async function runHere(sweep: Sweep, at: Placement, quiet: boolean | undefined): Promise<void> {
  let stop = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stop) return;
    stop = true;
    stopRuns('SIGINT');
    process.stderr.write(`\nbnlab sweep: ${sig === 'SIGINT' ? 'Ctrl-C' : sig} — running runs save a checkpoint and stop; re-run the sweep to resume\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const failed = await runLocal(sweep, { ...at, print, stopped: () => stop, quiet });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (stop) process.exit(130);
  if (failed.length) {
    print(`${failed.length} of ${sweep.runs.length} runs failed:`);
    for (const r of failed) print(`  ${r.name}: ${logPath(sweep, r)}`);
    process.exit(1);
  }
  print(`sweep done: ${sweep.runs.length} runs finished in ${sweep.out}`);
}
