#!/usr/bin/env node
// The bnlab executable: runs the compiled JavaScript in dist/ (npm's prepare builds it: no
// compiler at start-up), or the TypeScript sources through tsx when dist/ is missing or older
// than any file in src/ (a checkout being edited), so it never runs stale code.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

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

const at = (rel) => fileURLToPath(new URL(rel, import.meta.url));

/** dist/ was built after the newest change in src/ (a few ms: ~100 files' mtimes). */
function distIsCurrent() {
  const stamp = at('../dist/.build-stamp');
  if (!existsSync(stamp)) return false;
  const src = at('../src');
  if (!existsSync(src)) return true; // an installed package: no sources to be newer
  const built = statSync(stamp).mtimeMs;
  return readdirSync(src, { recursive: true }).every((rel) => statSync(`${src}/${rel}`).mtimeMs <= built);
}

if (distIsCurrent()) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
