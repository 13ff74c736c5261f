// Start-up as a user waits for it: `bnlab train` from process start to its first trained step,
// read from the run's own train.log line. bin/bnlab.js runs the compiled dist/ (built by npm ci's
// prepare): no TypeScript compiler at start-up. Best of three, so one slow start on a shared
// machine does not decide; the bound is the (3 s here).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDirs } from './helpers/run.js';

const ROOT = join(__dirname, '..');
const temp = tempDirs('bnlab-startup-');

describe('start-up', () => {
  it('dist/ is current, and the first training step comes within 3 s of the process start', () => {
    const built = statSync(join(ROOT, 'dist', '.build-stamp')).mtimeMs;
    const newer = readdirSync(join(ROOT, 'src'), { recursive: true }).map(String).filter((f) => statSync(join(ROOT, 'src', f)).mtimeMs > built);
    expect(newer, 'dist/ is older than these sources: run npm run build (npm ci does)').toEqual([]);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const out = join(temp(), 'run');
      const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'bnlab.js'), 'train', '--out', out, '--quiet',
        ...['data.name=synthetic', 'data.synthetic.train=32', 'data.synthetic.val=32', 'data.synthetic.size=8', 'model.width=4', 'optim.batch_size=32', 'bn.nbs=8', 'precise.samples=32', 'epochs=1'].flatMap((s) => ['--set', s])],
        { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      times.push(Number(/first step done ([\d.]+) s after the process started/.exec(readFileSync(join(out, 'train.log'), 'utf8'))![1]));
    }
    expect(Math.min(...times), `first-step times ${times.join(', ')} s`).toBeLessThan(3);
  }, 120_000);
});
