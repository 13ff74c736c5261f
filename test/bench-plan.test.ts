// `bnlab bench`'s plan as pure functions: flags -> request -> what is timed and the PyTorch peer's
// command line, and the figures from what was measured. No backend, no data, no tensors.
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { benchResult, INFER_PASSES, parseBenchFlags, PEER_SCRIPT, planBench, type BenchFacts, type BenchFlags, type BenchMeasured } from '../src/cli/bench-plan.js';

const cfg = (over: Record<string, unknown> = {}): Config =>
  validateConfig({ data: { name: 'synthetic' }, optim: { batch_size: 64, micro_batch: 16 }, bn: { nbs: 8, eps: 0.001 }, eval: { batch_size: 100 }, precise: { samples: 500, batch_size: 32 }, ...over });
const flags = (f: Partial<BenchFlags> = {}): BenchFlags => ({ set: [], steps: '5', python: '/usr/bin/python3', ...f });
const facts = (f: Partial<BenchFacts> = {}): BenchFacts => ({
  backend: { name: 'wasm', threads: 2 }, cpus: 16, train: { n: 300, height: 28, width: 28, channels: 1 }, valImages: 250, numClasses: 10, ...f,
});
const plan = (f: Partial<BenchFlags> = {}, c = cfg(), x: Partial<BenchFacts> = {}) => planBench(parseBenchFlags(flags(f)), c, facts(x));

describe('bnlab bench: flags -> request', () => {
  it('refuses --lockstep without --peer, saying to add it', () => {
    expect(() => parseBenchFlags(flags({ lockstep: true }))).toThrow(ConfigError);
    expect(() => parseBenchFlags(flags({ lockstep: true }))).toThrow(/--lockstep alternates with the PyTorch peer; add --peer/);
  });

  it('refuses --steps that is not a whole number >= 1, with an example of one', () => {
    for (const bad of ['0', '-1', '2.5', 'abc', '', '5x', '1e3']) {
      expect(() => parseBenchFlags(flags({ steps: bad })), bad).toThrow(new RegExp(`--steps must be a whole number of timed training steps, at least 1, got '${bad}' \\(e\\.g\\. --steps 5\\)`));
    }
    expect(parseBenchFlags(flags({ steps: '12' })).steps).toBe(12);
  });

  it('refuses an unknown --backend by name, with the closest one', () => {
    expect(() => parseBenchFlags(flags({ backend: 'wsam' }))).toThrow(/--backend 'wsam' is not a backend \(did you mean 'wasm'\?\); use one of: auto, cuda, tensorflow, wasm, cpu/);
  });

  it('defaults: 5 steps, a table, no profile, no peer; --backend is the last --set, the flags left as they were', () => {
    const f = flags({ set: ['bn.nbs=4'], backend: 'cpu', config: 'x.yaml' });
    expect(parseBenchFlags(f)).toEqual({ config: 'x.yaml', set: ['bn.nbs=4', 'backend=cpu'], steps: 5, json: false, profile: false, peer: null });
    expect(f.set).toEqual(['bn.nbs=4']);
    expect(parseBenchFlags(flags({ peer: true, lockstep: true, python: 'py', json: true, profile: true }))).toMatchObject({ json: true, profile: true, peer: { python: 'py', lockstep: true } });
    expect(parseBenchFlags(flags({ peer: true })).peer).toEqual({ python: '/usr/bin/python3', lockstep: false });
  });
});

describe('bnlab bench: the plan', () => {
  it('times the config\'s batch in micro-batches, three eval batches of inference, PreciseBN\'s N capped at the training set', () => {
    expect(plan({ steps: '3' })).toEqual({
      model: 'resnet-cifar-8 (width 16)',
      input: '28x28x1',
      steps: 3,
      batch: 64,
      nbs: 8,
      micro: 16,
      inference: { images: 250, batch: 100, passes: INFER_PASSES },
      precise: { samples: 300, batch: 32, forwardBatch: 100 },
      threads: 2,
      json: false,
      profile: false,
      peer: null,
    });
    // a larger validation set: 3 eval batches; a smaller N; a micro-batch above the eval batch
    const p = plan({}, cfg({ precise: { samples: 50, batch_size: 8 }, eval: { batch_size: 10 } }), { valImages: 10_000 });
    expect([p.inference.images, p.precise.samples, p.precise.forwardBatch]).toEqual([30, 50, 16]);
    expect(plan({}, cfg({ model: { arch: 'resnet50', width: 8 } })).model).toBe('resnet50 (width 8)');
    expect(plan({}, cfg({ model: { depth: 20, width: 4 } })).model).toBe('resnet-cifar-20 (width 4)');
  });

  it('threads: wasm\'s own count (1 when it reports none), 1 on cpu, the machine\'s CPUs on cuda and tensorflow', () => {
    const threads = (backend: BenchFacts['backend']) => plan({}, cfg(), { backend }).threads;
    expect([threads({ name: 'wasm', threads: 4 }), threads({ name: 'wasm' }), threads({ name: 'cpu', threads: 8 }), threads({ name: 'cuda' }), threads({ name: 'tensorflow' })]).toEqual([4, 1, 1, 16, 16]);
  });

  it('--peer: the same model, input, batch, NBS, threads and work on the command line; square inputs only', () => {
    const p = plan({ peer: true, python: 'py', steps: '2' });
    expect(p.peer).toEqual({
      python: 'py',
      lockstep: false,
      args: [PEER_SCRIPT, '--arch', 'resnet-cifar', '--depth', '8', '--width', '16', '--in-ch', '1', '--classes', '10', '--size', '28',
        '--batch', '64', '--nbs', '8', '--threads', '2', '--steps', '2', '--eps', '0.001', '--infer-n', '250', '--infer-batch', '100',
        '--infer-passes', String(INFER_PASSES), '--precise-n', '300', '--precise-batch', '32'],
    });
    expect(PEER_SCRIPT).toMatch(/scripts\/bench-peer\.py$/);
    // on cuda the peer runs on the GPU, with the run's TF32 choice
    expect(plan({ peer: true }, cfg({ cuda: { tf32: false } }), { backend: { name: 'cuda' } }).peer!.args.slice(-4)).toEqual(['--device', 'cuda', '--tf32', '0']);
    expect(() => plan({ peer: true }, cfg(), { train: { n: 300, height: 28, width: 32, channels: 3 } })).toThrow(/bench --peer: square inputs only/);
    // without --peer a non-square input is fine
    expect(plan({}, cfg(), { train: { n: 300, height: 28, width: 32, channels: 3 } }).input).toBe('28x32x3');
  });
});

describe('bnlab bench: the figures', () => {
  const measured: BenchMeasured = { backend: 'wasm', params: 1234, stepsMs: [40.04, 10.06, 20.01, 30.0], passesMs: [100.004, 50.126, 400, 200, 300], preciseSeconds: 1.23456, maxRssKb: 300 * 1024 + 600 };

  it('medians as images/s, every step, rounded as printed, in the order --json prints them', () => {
    const r = benchResult(plan({ steps: '4' }), measured);
    expect(r).toEqual({
      backend: 'wasm', model: 'resnet-cifar-8 (width 16)', params: 1234, input: '28x28x1', batch: 64, nbs: 8,
      train_images_per_s: +((64 * 1000) / 25.005).toFixed(1), // median of 4: the mean of the middle two
      train_step_ms: 25,
      train_steps_ms: [40, 10.1, 20, 30],
      inference_images_per_s: 1250, // 250 images in the median pass of 200 ms
      precise_samples: 300,
      precise_seconds: 1.23,
      peak_rss_mb: 301,
      threads: 2,
    });
    expect(Object.keys(r)).toEqual(['backend', 'model', 'params', 'input', 'batch', 'nbs', 'train_images_per_s', 'train_step_ms', 'train_steps_ms', 'inference_images_per_s', 'precise_samples', 'precise_seconds', 'peak_rss_mb', 'threads']);
  });

  it('in lockstep also every inference pass, and lockstep: true', () => {
    const r = benchResult(plan({ peer: true, lockstep: true }), measured);
    expect(r.inference_passes_ms).toEqual([100, 50.13, 400, 200, 300]);
    expect(r.lockstep).toBe(true);
    expect(Object.keys(r).slice(9)).toEqual(['inference_images_per_s', 'inference_passes_ms', 'precise_samples', 'precise_seconds', 'peak_rss_mb', 'threads', 'lockstep']);
    // --peer alone: the peer runs by itself afterwards, so nothing pairs up
    expect(benchResult(plan({ peer: true }), measured)).not.toHaveProperty('lockstep');
  });
});
