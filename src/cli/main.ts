// bnlab's command line: one file per command under src/cli; this one only wires them up.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../config/load.js';
import { convLayoutProblem } from '../backend/native-addon.js';
import { registerBench } from './bench.js';
import { registerConfig } from './config.js';
import { registerData } from './data.js';
import { registerDoctor } from './doctor.js';
import { envHelp } from './env-vars.js';
import { registerPlot } from './plot.js';
import { registerReport } from './report.js';
import { registerEval } from './eval.js';
import { registerExport } from './export.js';
import { registerTrain } from './train.js';
import { registerSweep } from './sweep.js';

// `bnlab sweep ... | head`: the reader went away. Say nothing (no EPIPE stack) and stop writing
// to that stream, but carry on: a training run or a sweep piped into a reader that quits must not
// die half-way (train.log keeps every line), and the exit status stays the command's own.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    stream.write = (() => true) as typeof stream.write;
  });
}

// tfjs's console notes ("install our node backend for speed", platform overrides) are silenced:
// in tfjs 4.22 PROD only gates those messages, and bnlab reports the backend and why itself.
tf.env().set('PROD', true);

/** The one exit-code scheme of every command (README, `bnlab --help`). */
export const EXIT = { ok: 0, runtime: 1, usage: 2, interrupted: 130 } as const;

const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command('bnlab')
  .description('A lab for BatchNorm research: which "batch" BatchNorm normalizes over, and how population statistics are estimated')
  .version(version, '-V, --version', 'print the bnlab version')
  .showHelpAfterError()
  // Commander's own usage errors throw (instead of exiting 1) so they follow the scheme below;
  // inherited by every command registered after this line.
  .exitOverride()
  .addHelpText(
    'after',
    `
Exit codes (every command):
  0    success
  ${EXIT.usage}    usage or config error: unknown command or option, bad value, invalid config (nothing was run)
  ${EXIT.runtime}    runtime error: data, training (divergence), I/O, a run folder held by another writer
  ${EXIT.interrupted}  interrupted (Ctrl-C or SIGTERM): bnlab train saved a checkpoint; continue with --resume

Environment:
${envHelp()}`,
  );
registerTrain(program);
registerEval(program);
registerExport(program);
registerConfig(program);
registerData(program);
registerDoctor(program);
registerBench(program);
registerReport(program);
registerPlot(program);
registerSweep(program);

try {
  // environment read by native code, which cannot report a bad value itself
  const bad = convLayoutProblem();
  if (bad) throw new ConfigError(bad);
  await program.parseAsync(process.argv);
} catch (e) {
  // Commander has printed its message (or the help / version) already.
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? EXIT.ok : EXIT.usage);
  const err = e as Error;
  process.stderr.write(`bnlab: ${err instanceof ConfigError ? '' : `${err.name === 'Error' ? 'error' : err.name}: `}${err.message}\n`);
  if (process.env.BNLAB_DEBUG) process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof ConfigError ? EXIT.usage : EXIT.runtime);
}
