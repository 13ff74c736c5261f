// bnlab's command line: one file per command under src/cli; this one only wires them up.
import { Command } from 'commander';
import { ConfigError } from '../config/load.js';
import { registerBench } from './bench.js';
import { registerConfig } from './config.js';
import { registerData } from './data.js';
import { registerDoctor } from './doctor.js';
import { registerPlot } from './plot.js';
import { registerReport } from './report.js';
import { registerEval } from './eval.js';
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

const program = new Command('bnlab')
  .description('A lab for BatchNorm research: which "batch" BatchNorm normalizes over, and how population statistics are estimated')
  .showHelpAfterError();
registerTrain(program);
registerEval(program);
registerConfig(program);
registerData(program);
registerDoctor(program);
registerBench(program);
registerReport(program);
registerPlot(program);
registerSweep(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error;
  process.stderr.write(`bnlab: ${err instanceof ConfigError ? '' : `${err.name === 'Error' ? 'error' : err.name}: `}${err.message}\n`);
  if (process.env.BNLAB_DEBUG) process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
