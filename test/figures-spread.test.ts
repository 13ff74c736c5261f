// Figures that show their spread: Figs. 5-6 draw ours as points with ± std bars only at the NBS we
// ran (no line across an NBS never measured), Figs. 3-4 draw each seed under the mean, Fig. 2 says
// which seed its trace is from. Run data made up here.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../src/config/load.js';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFigures, render } from '../src/report/figures.js';
import type { Num, Run } from '../src/report/runs.js';

const run = (name: string, o: { nbs: number; seed: number; batch?: number; rows: Record<string, number>[]; trace?: string }): Run => ({
  dir: `/nonexistent/${name}`, name, batch: o.batch ?? 128, nbs: o.nbs, frozen: 0, epochs: o.rows.length, preciseBatch: 32,
  config: validateConfig({ seed: o.seed, data: { name: 'fashion-mnist' }, optim: { batch_size: o.batch ?? 128 }, bn: { nbs: o.nbs } }), framework: null,
  metrics: o.rows.map((r, i) => ({ epoch: i + 1, ...r })) as Record<string, Num>[], evals: [], tracePath: o.trace ?? null, session: 'finished', roles: [],
});
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('figures with their spread', () => {
  it('Figs. 5-6: our points only at measured NBS, bars = ± std over seeds, the paper as lines', async () => {
    const end = (pop: number, mb: number, tr: number): Record<string, number>[] => [{ val_err_precise: 50 }, { val_err_precise: pop, val_err_minibatch: mb, train_err_nbs: tr }];
    const runs = [run('f/nbs2_s0', { nbs: 2, seed: 0, rows: end(19, 20, 14) }), run('f/nbs2_s1', { nbs: 2, seed: 1, rows: end(21, 22, 16) }), run('f/nbs32_s0', { nbs: 32, seed: 0, rows: end(18, 19, 3) }), run('f/nbs32_s1', { nbs: 32, seed: 1, rows: end(18, 19, 3) })];
    const fig = buildFigures(runs, ['5']).figures[0];
    const [paper, bars, points] = (fig.spec as any).layer;
    expect([paper.mark.type, bars.mark.type, points.mark.type]).toEqual(['line', 'rule', 'point']);
    const ours = paper.data.values.filter((v: any) => v.source === 'ours');
    expect([...new Set(ours.map((v: any) => v.nbs))].sort((a: any, b: any) => a - b)).toEqual([2, 32]);
    const pop2 = ours.find((v: any) => v.nbs === 2 && v.series.startsWith('val, population'));
    expect(pop2.err).toBe(20);
    expect(pop2.hi - pop2.lo).toBeCloseTo(2 * Math.SQRT2, 12); // ± std of 19, 21
    expect(ours.find((v: any) => v.nbs === 2 && v.series.startsWith('train')).x).toBeLessThan(2); // dodged sideways, its tick still at 2
    expect(paper.transform[0].filter).toContain("!== 'ours'");
    const r = await render(fig);
    expect(r.svg.match(/class="mark-line role-mark/g)).toHaveLength(3); // the paper's three curves, none of ours
    expect(r.svg).toMatch(/class="mark-rule role-mark/);
  }, 30_000);
  it('Figs. 3-4: each seed a thin line under the mean of the seeds', () => {
    const rows = (e: number[]) => e.map((x) => ({ val_err_ema: x + 2, val_err_precise: x, train_err: x }));
    const runs = [run('t/b128_seed0', { nbs: 32, seed: 0, rows: rows([30, 20, 10]) }), run('t/b128_seed1', { nbs: 32, seed: 1, rows: rows([40, 20, 12]) }), run('t/b1024_seed0', { nbs: 32, seed: 0, batch: 1024, rows: rows([60, 30, 20]) })];
    for (const f of ['3', '4'] as const) {
      const spec = buildFigures(runs, [f]).figures[0].spec as any;
      const [seeds, mean] = spec.layer;
      expect(seeds.encoding.detail).toEqual({ field: 'seed' });
      expect(new Set(seeds.data.values.map((v: any) => v.seed))).toEqual(new Set(['t/b128_seed0', 't/b128_seed1'])); // a one-seed recipe has no thin lines
      expect(mean.data.values.find((v: any) => v.epoch === 1 && v.series === 'val, PreciseBN' && v.run === 'batch 128, NBS 32').err).toBe(35);
      expect(spec.title.subtitle.join(' ')).toContain('thin: each seed');
    }
  });
  it("Fig. 2's title names the seed of the run it traces", () => {
    const d = mkdtempSync(join(tmpdir(), 'bnlab-fig2-'));
    dirs.push(d);
    const trace = join(d, 'bn_trace.csv');
    writeFileSync(trace, 'epoch,iter,layer,channel,kind,value\n1,0,s1.b1.bn1,0,batch,0.1\n1,0,s1.b1.bn1,0,batch,0.3\n1,0,s1.b1.bn1,0,population,0.2\n1,0,s1.b1.bn1,0,ema,0.15\n');
    const fig = buildFigures([run('t/b128_seed1', { nbs: 32, seed: 1, rows: [{}], trace })], ['2']).figures[0];
    expect((fig.spec as any).title.text).toMatch(/seed 1\)$/);
    expect(fig.title).toContain('seed 1');
  });
});
