#!/usr/bin/env node
// The bnlab executable: registers tsx so the TypeScript sources run without a build step.
import { availableParallelism } from 'node:os';
import { register } from 'tsx/esm/api';

// Image decoding (sharp) runs in libuv's pool, 4 threads by default; size it to the machine
// before anything uses the pool.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

register();
await import('../src/cli/main.ts');
