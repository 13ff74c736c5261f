// A run's log: every line goes to <run>/train.log; stdout too unless --quiet.
import { appendFileSync } from 'node:fs';

export interface Logger {
  (line: string): void;
}

export function createLogger(file: string | null, quiet: boolean): Logger {
  return (line: string) => {
    const stamped = `${new Date().toISOString()} ${line}\n`;
    if (file) appendFileSync(file, stamped);
    if (!quiet) process.stdout.write(line + '\n');
  };
}
