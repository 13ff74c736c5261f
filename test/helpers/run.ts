// Shared by the tests that train in-process or drive `bnlab train` as a child process.
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** TrainOptions' logging and progress, silenced. */
export const quiet = { log: () => {}, progress: { start() {}, update() {}, stop() {} } };

/** A maker of temporary folders, all removed after the test file. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

/** Sends `signal` once the child's stdout shows `text`; resolves with its exit code and output. */
export function signalWhen(child: ChildProcessWithoutNullStreams, text: string, signal: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && stdout.includes(text)) sent = child.kill(signal);
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
