// Per-step scalars (scalars.jsonl) and TensorBoard event files, read back by an independent
// reader (test/helpers/tfevents_reader.py: its own CRC32C, Google's protobuf runtime): the same
// steps and values as scalars.jsonl and metrics.csv, and a resume that continues the curves.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readMetrics } from '../src/run/metrics.js';
import { truncateScalars, type StepScalars } from '../src/train/steplog.js';
import { tempDirs } from './helpers/run.js';

const BIN = join(__dirname, '..', 'bin', 'bnlab.js');
const temp = tempDirs('bnlab-scalars-');
const train = (out: string, extra: string[]) =>
  spawnSync(process.execPath, [BIN, 'train', '--out', out, '--quiet', ...['data.name=synthetic', 'data.synthetic.train=256', 'data.synthetic.size=8', 'model.width=4', 'optim.batch_size=32', 'bn.nbs=8', 'precise.samples=64', 'log.every_steps=3'].flatMap((s) => ['--set', s]), ...extra], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, BNLAB_WASM_THREADS: '1' },
  });
interface Ev { file: string; step: number; file_version?: string; scalars?: Record<string, number> }
const events = (dir: string): Ev[] => {
  const files = readdirSync(join(dir, 'tb')).sort().map((f) => join(dir, 'tb', f));
  const r = spawnSync('/usr/bin/python3', [join(__dirname, 'helpers', 'tfevents_reader.py'), ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Ev[];
};
const jsonl = (dir: string) => readFileSync(join(dir, 'scalars.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepScalars);

describe('per-step scalars and TensorBoard', () => {
  it('every K steps in scalars.jsonl and TensorBoard alike; each epoch\'s metrics.csv row as epoch/*; a resume continues both', () => {
    const out = join(temp(), 'run');
    const r = train(out, ['--set', 'epochs=2']);
    expect(r.status, r.stderr).toBe(0);
    const rows = jsonl(out);
    expect(rows.map((x) => x.step)).toEqual([3, 6, 9, 12, 15]); // 8 steps per epoch
    expect(rows[2].epoch).toBeCloseTo(9 / 8, 6);
    const ev = events(out);
    expect(ev[0].file_version).toBe('brain.Event:2');
    const train0 = ev.filter((e) => e.scalars?.['train/loss'] !== undefined);
    expect(train0.map((e) => e.step)).toEqual([3, 6, 9, 12, 15]);
    train0.forEach((e, i) => {
      expect(e.scalars!['train/loss']).toBeCloseTo(rows[i].loss, 5); // float32 in the event file
      expect(e.scalars!['train/lr']).toBeCloseTo(rows[i].lr, 7);
    });
    const metrics = readMetrics(join(out, 'metrics.csv'));
    const perEpoch = ev.filter((e) => e.scalars?.['epoch/val_err_precise'] !== undefined);
    expect(perEpoch.map((e) => e.step)).toEqual([8, 16]);
    perEpoch.forEach((e, i) => expect(e.scalars!['epoch/val_err_precise']).toBeCloseTo(Number(metrics[i].val_err_precise), 3));

    const again = train(out, ['--resume', '--set', 'epochs=3']);
    expect(again.status, again.stderr).toBe(0);
    expect(jsonl(out).map((x) => x.step)).toEqual([3, 6, 9, 12, 15, 18, 21, 24]);
    const ev2 = events(out);
    expect(new Set(ev2.map((e) => e.file)).size).toBe(2); // one event file per session
    expect(ev2.filter((e) => e.scalars?.['epoch/train_err'] !== undefined).map((e) => e.step)).toEqual([8, 16, 24]);
  }, 120_000);

  it('a resume cuts scalars.jsonl back to its checkpoint\'s step, dropping a line a kill cut short', () => {
    const f = join(temp(), 'scalars.jsonl');
    const line = (step: number) => JSON.stringify({ step, epoch: step / 8, loss: 1, lr: 0.1, images_per_s: 1, data_wait_s: 0, time: 't' });
    writeFileSync(f, `${line(3)}\n${line(6)}\n${line(9)}\n{"step":12,"ep`);
    truncateScalars(f, 8);
    expect(readFileSync(f, 'utf8')).toBe(`${line(3)}\n${line(6)}\n`);
  });
});
