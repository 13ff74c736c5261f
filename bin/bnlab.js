#!/usr/bin/env node
// The bnlab executable: registers tsx so the TypeScript sources run without a build step.
import { availableParallelism } from 'node:os';
import { register } from 'tsx/esm/api';

// Image decoding (sharp) runs in libuv's pool, 4 threads by default; size it to the machine
// before anything uses the pool.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

// Ctrl-C or SIGTERM before a command has installed its own handler (start-up, config loading):
// exit 130 as every command does, saying so, instead of Node's silent 143.
const early = (sig) => {
  if (process.listenerCount(sig) > 1) return; // the command's own handler decides
  process.stderr.write(`\nbnlab: ${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopped\n`);
  process.exit(130);
};
process.on('SIGINT', early);
process.on('SIGTERM', early);

register();
await import('../src/cli/main.ts');
