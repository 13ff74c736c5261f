// The run folder's bookkeeping, without training: metrics.jsonl beside metrics.csv, the end-of-run
// summary, checkpoint retention and eval's choice of file, run.json sessions, plain progress lines.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeCheckpoint } from '../src/run/checkpoint.js';
import { describeSession, gitCommit, readRunInfo, startSession, wallSeconds } from '../src/run/metadata.js';
import { METRIC_COLUMNS, readMetrics, restoreMetrics, withFrozenColumn, writeMetrics } from '../src/run/metrics.js';
import { findRuns } from '../src/report/runs.js';
import { runPaths } from '../src/run/paths.js';
import { checkpointFor, isNewBest, keptEpochs, pruneEpochCheckpoints } from '../src/run/retention.js';
import { summarizeRun, summaryLines } from '../src/run/summary.js';
import { createProgress, progressInterval } from '../src/util/progress.js';

const dir = mkdtempSync(join(tmpdir(), 'bnlab-runfiles-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fresh = (name: string) => {
  const d = join(dir, name);
  mkdirSync(join(d, 'checkpoints'), { recursive: true });
  return runPaths(d);
};

/** A metrics row as cells, from the columns given (the rest empty). */
const cells = (v: Partial<Record<(typeof METRIC_COLUMNS)[number], string>>) => METRIC_COLUMNS.map((c) => v[c] ?? '');

describe('metrics.jsonl', () => {
  const history = [
    cells({ epoch: '1', lr: '0.1', val_err_ema: '50.5', val_err_precise: '40.25', train_images_per_s: '100', bn_mode: 'batch' }),
    cells({ epoch: '2', lr: '0.1', val_err_ema: '45', train_images_per_s: '300', bn_mode: 'batch' }),
  ];

  it('holds the CSV rows as JSON: numbers as numbers, null where not computed, labels as strings', () => {
    const p = fresh('jsonl');
    writeMetrics(p.metrics, history);
    const lines = readFileSync(p.metricsJsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ epoch: 1, lr: 0.1, val_err_ema: 50.5, val_err_precise: 40.25, train_err_nbs: null, bn_mode: 'batch' });
    expect(lines[1].val_err_precise).toBeNull();
    expect(Object.keys(lines[0])).toEqual([...METRIC_COLUMNS]);
  });

  it('a resume rebuilds a missing or edited metrics.jsonl from the checkpoint history, with the CSV', () => {
    const p = fresh('jsonl-repair');
    writeMetrics(p.metrics, history);
    const want = readFileSync(p.metricsJsonl, 'utf8');
    rmSync(p.metricsJsonl);
    expect(restoreMetrics(p.metrics, 2, history)).toMatch(/metrics\.jsonl written/);
    expect(readFileSync(p.metricsJsonl, 'utf8')).toBe(want);
    writeFileSync(p.metricsJsonl, want + '{"epoch":3}\n');
    expect(restoreMetrics(p.metrics, 2, history)).toMatch(/metrics\.jsonl rebuilt/);
    expect(readFileSync(p.metricsJsonl, 'utf8')).toBe(want);
    expect(restoreMetrics(p.metrics, 2, history)).toBeNull();
    // a truncated CSV: both files come back from the history
    writeMetrics(p.metrics, history.slice(0, 1));
    expect(restoreMetrics(p.metrics, 2, history)).toMatch(/had epochs 1, the checkpoint 1 2/);
    expect(readFileSync(p.metricsJsonl, 'utf8')).toBe(want);
  });

  it("a checkpoint from before a column was added resumes: its rows get the new column empty, once", () => {
    const p = fresh('jsonl-old');
    const old = history.map((r) => r.slice(0, -1)); // one column fewer, as bnlab wrote it before
    expect(restoreMetrics(p.metrics, 2, old)).toMatch(/rebuilt/);
    expect(restoreMetrics(p.metrics, 2, old)).toBeNull();
    const last = JSON.parse(readFileSync(p.metricsJsonl, 'utf8').trim().split('\n')[1]);
    expect(last[METRIC_COLUMNS[METRIC_COLUMNS.length - 1]]).toBeNull();
  });
});

describe('FrozenBN\'s column', () => {
  it('a run written before val_err_frozen existed reads as a new one: its FrozenBN epochs\' values move from val_err_precise', () => {
    const legacy = 'results/mini/fig5-6/nbs2_frozen10_seed0/metrics.csv'; // committed, bnlab of 2026-12-03
    expect(readFileSync(legacy, 'utf8').split('\n')[0]).not.toContain('val_err_frozen');
    const rows = readMetrics(legacy);
    const [regular, frozen] = [rows.find((r) => r.epoch === '40')!, rows.find((r) => r.epoch === '50')!];
    expect([regular.bn_mode, frozen.bn_mode]).toEqual(['batch', 'frozen']);
    expect(Number(regular.val_err_precise)).toBeGreaterThan(0);
    expect(regular.val_err_frozen ?? '').toBe('');
    expect([frozen.val_err_precise, frozen.val_err_frozen]).toEqual(['', '17.9400']);
    // the report reads it the same way
    const run = findRuns([join('results/mini/fig5-6/nbs2_frozen10_seed0')])[0];
    expect([run.metrics.at(-1)!.val_err_frozen, run.metrics.at(-1)!.val_err_precise]).toEqual([17.94, null]);
    // a new file has the column after the first releases' 13, and a row already in the new form is left alone
    expect(METRIC_COLUMNS.slice(13)).toEqual(['val_err_frozen']);
    const now = { epoch: '3', bn_mode: 'frozen', val_err_precise: '', val_err_frozen: '12.5' };
    expect(withFrozenColumn(now)).toBe(now);
  });
});

describe('summary', () => {
  const rows = [
    { epoch: '1', val_err_ema: '30', val_err_precise: '20', val_err_minibatch: '', train_images_per_s: '100', epoch_seconds: '10', bn_mode: 'batch' },
    { epoch: '2', val_err_ema: '25', val_err_precise: '', val_err_minibatch: '', train_images_per_s: '300', epoch_seconds: '5', bn_mode: 'batch' },
    { epoch: '3', val_err_ema: '', val_err_precise: '20', val_err_minibatch: '', train_images_per_s: '300', epoch_seconds: '5', bn_mode: 'frozen' },
  ];

  it('final and best per statistics source with epochs (ties: the earlier), time, throughput, files', () => {
    const p = fresh('summary');
    // epoch 3 as bnlab wrote FrozenBN epochs before val_err_frozen existed: read as the new column
    const s = summarizeRun(join(dir, 'summary'), p, rows.map(withFrozenColumn), 4, 42);
    expect(s.sources).toEqual([
      { source: 'EMA', column: 'val_err_ema', final: { epoch: 2, err: 25 }, best: { epoch: 2, err: 25 } },
      { source: 'PreciseBN', column: 'val_err_precise', final: { epoch: 1, err: 20 }, best: { epoch: 1, err: 20 } },
      { source: 'FrozenBN', column: 'val_err_frozen', final: { epoch: 3, err: 20 }, best: { epoch: 3, err: 20 } },
    ]);
    expect(s).toMatchObject({ finished: false, epochs: { done: 3, total: 4 }, train_seconds: 20, wall_seconds: 42 });
    // 3 epochs of equal size at 100, 300, 300 img/s: 3 / (1/100 + 2/300) = 180
    expect(s.train_images_per_s).toBeCloseTo(180, 6);
    expect(s.files).toMatchObject({ metrics: p.metrics, metrics_jsonl: p.metricsJsonl, run_info: p.runInfo, summary: p.summary, last_checkpoint: p.last });
    const text = summaryLines(s).join('\n');
    expect(text).toMatch(/stopped at 3\/4 epochs, 20\.0s of epochs, 42\.0s wall-clock, training 180 img\/s/);
    expect(text).toMatch(/val_err FrozenBN +final 20\.00% \(epoch 3\) +best 20\.00% \(epoch 3\)/);
    expect(text).not.toMatch(/mini-batch/);
  });
});

describe('checkpoint retention', () => {
  const ckpt = (epoch: number, step = 0) => ({ meta: { epoch, progress: { step } }, tensors: new Map([['w', { shape: [1], data: new Float32Array([epoch]) }]]) });

  it('keeps the newest K epoch files, never last.ckpt or best.ckpt; 0 keeps all', () => {
    const p = fresh('prune');
    for (const e of [1, 2, 3, 4, 5]) writeCheckpoint(p.epoch(e), ckpt(e));
    writeCheckpoint(p.last, ckpt(5));
    writeCheckpoint(p.best, ckpt(2));
    expect(pruneEpochCheckpoints(p, 0)).toEqual([]);
    expect(pruneEpochCheckpoints(p, 2)).toEqual([1, 2, 3]);
    expect(keptEpochs(p)).toEqual([4, 5]);
    expect(pruneEpochCheckpoints(p, 2)).toEqual([]);
    // eval: a pruned epoch held by best.ckpt is found there; one held nowhere names what is kept
    expect(checkpointFor(p, { epoch: 2 })).toBe(p.best);
    expect(checkpointFor(p, { epoch: 4 })).toBe(p.epoch(4));
    expect(checkpointFor(p, { checkpoint: 'best' })).toBe(p.best);
    expect(checkpointFor(p, {})).toBe(p.last);
    expect(() => checkpointFor(p, { epoch: 1 })).toThrow(/epoch-0001\.ckpt.*not kept.*epochs 4, 5; best\.ckpt \(epoch 2\); last\.ckpt \(epoch 5\)/);
  });

  it('a mid-epoch last.ckpt does not stand in for a finished epoch; a missing best.ckpt says why', () => {
    const p = fresh('midepoch');
    writeCheckpoint(p.last, ckpt(3, 7));
    expect(() => checkpointFor(p, { epoch: 3 })).toThrow(/not kept/);
    expect(() => checkpointFor(p, { checkpoint: 'best' })).toThrow(/best\.ckpt does not exist .*checkpoint\.best_metric/);
  });

  it('best: computed this epoch and strictly below every earlier value', () => {
    const h = (...v: string[]) => v.map((x, i) => cells({ epoch: String(i + 1), val_err_precise: x }));
    expect(isNewBest(h('30', '20'), 'val_err_precise')).toBe(true);
    expect(isNewBest(h('20', '20'), 'val_err_precise')).toBe(false);
    expect(isNewBest(h('20', ''), 'val_err_precise')).toBe(false);
    expect(isNewBest(h('', '25'), 'val_err_precise')).toBe(true);
    expect(isNewBest(h('20', '30', '19'), 'val_err_precise')).toBe(true);
    expect(isNewBest(h('20'), 'none')).toBe(false);
  });
});

describe('run.json', () => {
  const backend = { name: 'wasm', reason: 'test' };

  it('a session per start; a later one is appended, the first one kept; end and status recorded', () => {
    const p = fresh('runinfo');
    const first = startSession(p.runInfo, 'R', describeSession(backend, new Date('2026-01-01T00:00:00Z')));
    expect(readRunInfo(p.runInfo)!.sessions[0]).toMatchObject({ status: 'running', end: null });
    first.end('interrupted', 2);
    const second = startSession(p.runInfo, 'R', describeSession(backend, new Date()));
    const info = second.end('finished', 5);
    expect(info.start).toBe('2026-01-01T00:00:00.000Z');
    expect(info.sessions.map((s) => [s.status, s.epochs_done])).toEqual([['interrupted', 2], ['finished', 5]]);
    expect(info.end).toBe(info.sessions[1].end);
    const s = info.sessions[1];
    expect(s.bnlab_version).toBe(JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')).version);
    expect(s.node).toBe(process.version);
    expect(s.tfjs).toMatch(/^\d+\.\d+\.\d+/);
    expect(s.backend).toEqual(backend);
    expect(s.cpus.available).toBeGreaterThan(0);
    expect(s.cpus.usable).toBeLessThanOrEqual(s.cpus.available);
    expect(s.cpus.limits).toMatch(/cores/);
    expect(s.command[0]).toBe('bnlab');
    expect(wallSeconds(info)).toBeGreaterThan(0);
    // a session that trained nothing is dropped again
    const third = startSession(p.runInfo, 'R', describeSession(backend, new Date()));
    third.discard();
    expect(readRunInfo(p.runInfo)!.sessions).toHaveLength(2);
  });

  it('the git commit of a checkout, null elsewhere (no error)', () => {
    const g = gitCommit();
    if (g) expect(g.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(gitCommit(dir)).toBeNull();
  });
});

describe('progress without a terminal', () => {
  it("the run's ETA counts the evaluation phases to come, and says so before one is measured", async () => {
    const lines: string[] = [];
    const pr = createProgress(false, { tty: false, intervalSeconds: 0, write: (l) => lines.push(l) });
    pr.runSteps!(0, 8, { spentSeconds: 0, remainingSeconds: null });
    pr.start('epoch 1/2', 4);
    await new Promise((r) => setTimeout(r, 5));
    pr.runSteps!(1, 8, { spentSeconds: 0, remainingSeconds: null });
    pr.update(1, 'x');
    expect(lines.at(-1)).toMatch(/ETA [\d.]+s \+ evaluations$/);
    pr.runSteps!(2, 8, { spentSeconds: 0, remainingSeconds: 2 * 3600 });
    pr.update(2, 'x');
    expect(lines.at(-1)).toMatch(/ETA 2h00m$/); // two measured phases of an hour each; the steps take ms
  });

  it('prints step/total, img/s and the run ETA at most every interval; nothing when quiet', async () => {
    const lines: string[] = [];
    const pr = createProgress(false, { tty: false, intervalSeconds: 0, write: (l) => lines.push(l) });
    pr.runSteps!(0, 8);
    pr.start('epoch 1/2', 4);
    for (let step = 1; step <= 4; step++) {
      await new Promise((r) => setTimeout(r, 5));
      pr.runSteps!(step, 8);
      pr.update(step, `loss 1.000 | ${100 * step} img/s`);
    }
    expect(lines.at(-1)).toMatch(/^epoch 1\/2: 4\/4 \| loss 1\.000 \| 400 img\/s \| run 4\/8 steps \(50%\) \| ETA \d/);
    pr.start('eval EMA', 1000);
    pr.update(500);
    await new Promise((r) => setTimeout(r, 5));
    pr.update(1000);
    expect(lines.at(-1)).toMatch(/^eval EMA: 1000\/1000 \| \d+ img\/s/);

    const sparse: string[] = [];
    const slow = createProgress(false, { tty: false, intervalSeconds: 3600, write: (l) => sparse.push(l) });
    slow.start('epoch 1/1', 10);
    for (let i = 1; i <= 10; i++) slow.update(i, 'x');
    expect(sparse).toEqual([]);
    const quiet = createProgress(true, { tty: false, intervalSeconds: 0, write: (l) => sparse.push(l) });
    quiet.start('epoch 1/1', 2);
    quiet.update(1, 'x');
    expect(sparse).toEqual([]);
  });

  it('the interval comes from BNLAB_PROGRESS_SECONDS, 30 s by default', () => {
    expect(progressInterval({})).toBe(30);
    expect(progressInterval({ BNLAB_PROGRESS_SECONDS: '0.5' })).toBe(0.5);
    expect(progressInterval({ BNLAB_PROGRESS_SECONDS: 'soon' })).toBe(30);
  });
});
