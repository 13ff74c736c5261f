// A sweep no paper table knows (here the committed smoke batch-size sweep) reported as its varied
// keys against final errors, read from the runs' configs and metrics.csv; a user's flat grid too.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { otherSweeps } from '../src/report/report.js';
import { findRuns } from '../src/report/runs.js';
import { sweepTable } from '../src/report/sweeps.js';
import { tempDirs } from './helpers/run.js';

const SMOKE = join(__dirname, '..', 'results', 'smoke');
const temp = tempDirs('bnlab-sweeps-');
const finalRow = (dir: string) => {
  const [head, ...rows] = readFileSync(join(dir, 'metrics.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
  return Object.fromEntries(head.map((h, i) => [h, rows.at(-1)![i]]));
};

describe('sweeps no paper table knows', () => {
  it('the batch-size sweep: one row per batch size, in order, with each run\'s final errors', () => {
    const t = otherSweeps(findRuns([SMOKE])).find((x) => /batch-size/.test(x.title))!;
    expect(t.head.slice(0, 3)).toEqual(['optim.batch_size', 'optim.warmup_epochs', 'runs']);
    expect(t.rows.map((r) => Number(r[0]))).toEqual([128, 256, 512, 1024, 2048, 4096]);
    for (const r of t.rows) {
      const m = finalRow(join(SMOKE, 'batch-size', `b${r[0]}`));
      expect(r[t.head.indexOf('val PreciseBN %')]).toBe(Number(m.val_err_precise).toFixed(2));
      expect(r[t.head.indexOf('val EMA %')]).toBe(Number(m.val_err_ema).toFixed(2));
    }
    // the paper's own experiments are not repeated as plain tables
    expect(otherSweeps(findRuns([SMOKE])).map((x) => x.title).join()).not.toMatch(/table1|fig5-6/);
  });

  it('seeds pooled as mean ± std; a grid varying only the seed is no table', () => {
    const d = temp();
    const src = join(SMOKE, 'batch-size', 'b256');
    for (const [name, seed, err] of [['a0', 0, 10], ['a1', 1, 14], ['b0', 0, 20]] as const) {
      cpSync(src, join(d, name), { recursive: true });
      const cfg = readFileSync(join(src, 'config.yaml'), 'utf8').replace(/^seed: .*$/m, `seed: ${seed}`).replace(/^ {2}nbs: .*$/m, `  nbs: ${name[0] === 'a' ? 8 : 16}`);
      writeFileSync(join(d, name, 'config.yaml'), cfg);
      const lines = readFileSync(join(src, 'metrics.csv'), 'utf8').trim().split('\n');
      const head = lines[0].split(',');
      const last = lines.at(-1)!.split(',');
      last[head.indexOf('val_err_precise')] = String(err);
      writeFileSync(join(d, name, 'metrics.csv'), [...lines.slice(0, -1), last.join(',')].join('\n') + '\n');
    }
    const t = sweepTable('grid', findRuns([d]))!;
    expect(t.head[0]).toBe('bn.nbs');
    const col = t.head.indexOf('val PreciseBN %');
    expect(t.rows.map((r) => [r[0], r[1], r[col]])).toEqual([['8', '2', '12.00 ± 2.83'], ['16', '1', '20.00']]);
    expect(sweepTable('seeds only', findRuns([d]).filter((r) => r.name.startsWith('a')))).toBeNull();
  });
});
