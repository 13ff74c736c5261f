// `bnlab eval`'s plan and the modes' behaviour as pure functions: no backend, no data, no tensors.
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { epochJobs, evalPreciseRequest, MODES, STATS_MODES, type HeldStats } from '../src/bn/modes.js';
import type { Population } from '../src/bn/population.js';
import { evalRows, parseEvalFlags, planEval, type EvalFacts, type EvalFlags } from '../src/cli/eval-plan.js';

const cfg = (over: Record<string, unknown> = {}): Config => validateConfig({ data: { name: 'synthetic' }, precise: { samples: 64, batch_size: 16 }, bn: { nbs: 8 }, ...over });
const flags = (f: Partial<EvalFlags> = {}): EvalFlags => ({ run: 'r', stats: 'ema,precise', repeats: '1', ...f });
const facts = (f: Partial<EvalFacts> = {}): EvalFacts => ({ statsImages: 128, evalImages: 256, numClasses: 4, held: { precise: true, frozen: false }, ...f });
const plan = (f: Partial<EvalFlags>, c = cfg(), x: Partial<EvalFacts> = {}) => planEval(parseEvalFlags(flags(f), c), c, facts(x));

describe('bnlab eval: flags -> request', () => {
  it('refuses an unknown mode, a bad integer, a bad estimator (usage errors)', () => {
    expect(() => parseEvalFlags(flags({ stats: 'ema,bogus' }), cfg())).toThrow(/--stats: unknown source 'bogus' \(use ema, precise, minibatch, composed, frozen\)/);
    expect(() => parseEvalFlags(flags({ repeats: '0' }), cfg())).toThrow(/--repeats must be an integer >= 1, got '0'/);
    expect(() => parseEvalFlags(flags({ samples: '2.5' }), cfg())).toThrow(ConfigError);
    expect(() => parseEvalFlags(flags({ estimator: 'median' }), cfg())).toThrow(/--estimator must be pooled or mean-of-var/);
    expect(() => parseEvalFlags(flags({ data: 'split=test' }), cfg())).toThrow(/split must be train or val/);
  });

  it('re-estimates PreciseBN when a flag implies it; --batch only with precise', () => {
    const re = (f: Partial<EvalFlags>) => parseEvalFlags(flags(f), cfg()).reestimate;
    expect(re({})).toBe(false);
    for (const f of [{ preciseBn: true }, { samples: '10' }, { estimator: 'pooled' }, { statsData: 'split=val' }, { repeats: '2' }, { batch: '4' }]) expect(re(f)).toBe(true);
    expect(re({ stats: 'minibatch', batch: '4' })).toBe(false);
  });
});

describe('bnlab eval: the plan', () => {
  it('ema and the checkpoint\'s PreciseBN: one repeat each, the run\'s N, B and estimator', () => {
    const p = plan({});
    expect(p.modes.map((m) => [m.mode, m.repeats, m.samples, m.batch, m.estimator, !!m.reestimate])).toEqual([
      ['ema', 1, '', '', '', false],
      ['precise', 1, 64, 16, 'pooled', false],
    ]);
    expect(p.dataSpec.split).toBe('val');
    expect(p.statsSpec.split).toBe('train');
    // no PreciseBN statistics in the checkpoint: estimated, once
    expect(plan({}, cfg(), { held: { precise: false, frozen: false } }).modes[1]).toMatchObject({ repeats: 1, reestimate: { augment: true, disjoint: false } });
  });

  it('re-estimated PreciseBN: N, B (B >= N is N), estimator, repeats; N capped at the statistics set', () => {
    expect(plan({ stats: 'precise', samples: '32', batch: '8', estimator: 'mean-of-var', repeats: '3' }).modes[0]).toMatchObject({ repeats: 3, samples: 32, batch: 8, estimator: 'mean-of-var' });
    expect(plan({ stats: 'precise', samples: '40', batch: '64' }).modes[0]).toMatchObject({ samples: 40, batch: 40 });
    expect(plan({ stats: 'precise', samples: '9999' }).modes[0]).toMatchObject({ samples: 128, batch: 16 });
  });

  it('statistics from the evaluation images: kept apart, refused when they would take every image', () => {
    const p = plan({ stats: 'precise', statsData: 'split=val', samples: '32' }, cfg(), { statsImages: 256 });
    expect(p.modes[0].reestimate).toEqual({ augment: false, disjoint: true });
    expect(() => plan({ stats: 'precise', statsData: 'split=val', samples: '9999' }, cfg(), { statsImages: 256 })).toThrow(/--samples 256: the statistics would take every image of , leaving none to evaluate .* use --samples < 256/);
    // augmentation: the run's precise.augment on the training set, none elsewhere unless asked
    expect(plan({ stats: 'precise', statsData: 'split=val,augment=true', samples: '8' }, cfg(), { statsImages: 256 }).modes[0].reestimate!.augment).toBe(true);
    expect(plan({ stats: 'precise', preciseBn: true }, cfg({ precise: { samples: 64, batch_size: 16, augment: false } })).modes[0].reestimate!.augment).toBe(false);
  });

  it('mini-batch modes: NBS from --batch or bn.nbs, every repeat; composed checked before anything runs', () => {
    expect(plan({ stats: 'minibatch,composed', repeats: '2' }).modes.map((m) => [m.repeats, m.batch, m.nbs ?? m.composition?.nbs])).toEqual([[2, 8, 8], [2, 8, 8]]);
    expect(plan({ stats: 'minibatch', batch: '4' }).modes[0]).toMatchObject({ batch: 4, nbs: 4, samples: '', estimator: '' });
    const classes = cfg({ bn: { nbs: 8, composition: 'classes', composition_classes: 2 } });
    expect(() => plan({ stats: 'ema,composed', batch: '3' }, classes)).toThrow(/--stats composed: bn.composition_classes 2 does not divide NBS 3.*\(--batch sets NBS\)/);
    expect(() => plan({ stats: 'composed' }, cfg({ bn: { nbs: 8, composition: 'classes', composition_classes: 8 } }))).toThrow(/exceeds the dataset's 4 classes/);
  });

  it('frozen: refused without FrozenBN statistics, else one repeat of them', () => {
    expect(() => plan({ stats: 'frozen' })).toThrow(/--stats frozen: this checkpoint has no FrozenBN statistics \(the run has bn.frozen_last_epochs = 0\)/);
    expect(plan({ stats: 'frozen', repeats: '3' }, cfg(), { held: { precise: true, frozen: true } }).modes[0]).toMatchObject({ mode: 'frozen', repeats: 1, samples: '' });
  });

  it('rows: one per mode, stats_data only where statistics come from the statistics set', () => {
    const p = plan({ stats: 'minibatch,precise', statsData: 'split=train,augment=false', data: 'split=val', repeats: '2', samples: '16' });
    const rows = evalRows(p, 7, [[10, 12], [20.123456, 20.123456]]);
    expect(rows).toEqual([
      { epoch: 7, stats: 'minibatch', stats_data: '', data: 'split=val', samples: '', batch: 8, estimator: '', repeats: 2, err_mean: 11, err_std: 1.4142, errs: '10.0000;12.0000' },
      { epoch: 7, stats: 'precise', stats_data: 'split=train,augment=false', data: 'split=val', samples: 16, batch: 16, estimator: 'pooled', repeats: 2, err_mean: 20.1235, err_std: 0, errs: '20.1235;20.1235' },
    ]);
  });

  it('a re-estimated PreciseBN repeat: its own N samples, seed + r, the checkpoint\'s epoch', () => {
    const p = plan({ stats: 'precise', samples: '32', repeats: '2' }).modes[0];
    const [a, b] = [0, 1].map((r) => evalPreciseRequest(p, r, cfg(), 128, 5));
    expect(a).toMatchObject({ samples: 32, batchSize: 16, estimator: 'pooled', augment: true, seed: 0, epoch: 5 });
    expect(b.seed).toBe(1);
    expect(a.indices!.length).toBe(32);
    expect(new Set(a.indices).size).toBe(32);
    expect([...a.indices!]).not.toEqual([...b.indices!]);
    expect([...evalPreciseRequest(p, 0, cfg(), 128, 5).indices!]).toEqual([...a.indices!]);
  });
});

describe('the modes at the end of a training epoch', () => {
  const pop = (): Population => new Map();
  const held = (frozen: boolean): HeldStats => ({ ema: new Map(), precise: pop(), frozen: frozen ? pop() : null });
  const jobs = (c: Config, frozen: boolean, preciseRan: boolean) => epochJobs({ cfg: c, held: held(frozen), frozen, preciseRan, trainImages: 100 }).map((j) => `${j.column}:${j.stats.mode}:${j.split}`);

  it('EMA and PreciseBN (when it ran) by default; FrozenBN in its own column after the switch', () => {
    expect(jobs(cfg(), false, true)).toEqual(['val_err_ema:ema:val', 'val_err_precise:precise:val']);
    expect(jobs(cfg(), false, false)).toEqual(['val_err_ema:ema:val']);
    expect(jobs(cfg(), true, false)).toEqual(['val_err_frozen:frozen:val']);
  });

  it('eval.minibatch, eval.train_minibatch and eval.composed switch on their columns', () => {
    const c = cfg({ eval: { minibatch: true, composed: true, train_minibatch: true, train_minibatch_samples: 30 } });
    expect(jobs(c, false, true)).toEqual(['val_err_ema:ema:val', 'val_err_precise:precise:val', 'val_err_minibatch:minibatch:val', 'train_err_nbs:minibatch:train', 'val_err_composed:composed:val']);
    const train = epochJobs({ cfg: c, held: held(false), frozen: false, preciseRan: true, trainImages: 100 }).find((j) => j.split === 'train')!;
    expect(train.order!.length).toBe(30);
    expect(train.label).toBe('train NBS');
  });

  it('every column a mode writes is its valColumn or trainColumn', () => {
    const c = cfg({ eval: { minibatch: true, composed: true, train_minibatch: true } });
    for (const m of STATS_MODES) {
      for (const frozen of [false, true]) {
        for (const j of MODES[m].epochJobs({ cfg: c, held: held(frozen), frozen, preciseRan: true, trainImages: 100 })) expect([MODES[j.stats.mode].valColumn, MODES[j.stats.mode].trainColumn]).toContain(j.column);
      }
    }
  });
});
