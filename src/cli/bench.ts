// `bnlab bench`: how fast a config trains, infers and runs PreciseBN on this backend, and the
// memory it needs. Figures, not pass/fail: speed targets live here, not in timed tests.
import type { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { loadConfig } from '../config/load.js';
import { microBatch } from '../config/schema.js';
import { loadDataset } from '../data/dataset.js';
import { permutation } from '../data/loader.js';
import { evaluate } from '../eval/evaluate.js';
import { countParams } from '../nn/resnet.js';
import { preciseBNStats } from '../stats/precise.js';
import { createState, emaStats } from '../train/state.js';
import { trainStep } from '../train/step.js';
import { disposeState } from '../train/trainer.js';

const collect = (v: string, prev: string[]) => [...prev, v];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export interface BenchResult {
  backend: string;
  model: string;
  params: number;
  input: string;
  batch: number;
  nbs: number;
  train_images_per_s: number;
  train_step_ms: number;
  inference_images_per_s: number;
  precise_samples: number;
  precise_seconds: number;
  peak_rss_mb: number;
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure training and inference images/s, PreciseBN pass time and peak memory for a config on the current backend')
    .option('-c, --config <file>', 'YAML config (default: the built-in quick experiment)')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--backend <name>', 'auto | cuda | wasm | cpu')
    .option('--steps <n>', 'timed training steps (after one warm-up step)', '5')
    .option('--json', 'print JSON instead of a table')
    .action(async (o: { config?: string; set: string[]; backend?: string; steps: string; json?: boolean }) => {
      if (o.backend) o.set.push(`backend=${o.backend}`);
      const cfg = loadConfig(o.config, o.set);
      const steps = Math.max(1, parseInt(o.steps, 10) || 5);
      const backend = await initBackend(cfg.backend, cfg.threads);
      if (!o.json) process.stderr.write(`backend: ${backend.name} — ${backend.reason}\n`);
      const data = await loadDataset(cfg.data);
      const s = createState(cfg, data.train.channels, data.numClasses);
      const bs = cfg.optim.batch_size;
      const micro = microBatch(cfg);
      const order = permutation(data.train.n, cfg.seed, 0);
      const stepOpts = { nbs: cfg.bn.nbs, eps: cfg.bn.eps, emaDecay: cfg.bn.ema_decay, emaGroups: cfg.bn.ema_groups, lr: 0.01, momentum: 0.9, nesterov: false };

      // Training: one warm-up step (kernel setup, wasm heap growth), then timed steps.
      const times: number[] = [];
      for (let i = 0; i <= steps; i++) {
        const start = ((i * bs) % Math.max(1, data.train.n - bs + 1)) | 0;
        const micros = [];
        for (let m = 0; m < bs; m += micro) micros.push(await data.train.load(order.subarray(start + m, start + m + micro), { augment: true, seed: cfg.seed, epoch: 0 }));
        const t = performance.now();
        trainStep(s, micros, stepOpts);
        if (i > 0) times.push(performance.now() - t);
      }
      const stepMs = median(times);

      // Inference with population statistics (EMA), at the eval batch size.
      const evalSet = { ...data.val, n: Math.min(data.val.n, cfg.eval.batch_size * 3) };
      const evalOpts = { ctx: { source: 'population' as const, nbs: cfg.bn.nbs, eps: cfg.bn.eps, population: emaStats(s) }, batchSize: cfg.eval.batch_size };
      await evaluate(s.net, s.params, { ...evalSet, n: Math.min(evalSet.n, cfg.eval.batch_size) }, evalOpts); // warm-up
      let t = performance.now();
      await evaluate(s.net, s.params, evalSet, evalOpts);
      const inferMs = performance.now() - t;

      const preciseN = Math.min(cfg.precise.samples, data.train.n);
      t = performance.now();
      await preciseBNStats(s.net, s.params, data.train, {
        samples: preciseN,
        batchSize: cfg.precise.batch_size,
        estimator: cfg.precise.estimator,
        eps: cfg.bn.eps,
        augment: cfg.precise.augment,
        seed: cfg.seed,
        epoch: 0,
        forwardBatch: Math.max(micro, cfg.eval.batch_size),
      });
      const preciseS = (performance.now() - t) / 1000;

      const r: BenchResult = {
        backend: backend.name,
        model: cfg.model.arch === 'resnet-cifar' ? `resnet-cifar-${cfg.model.depth} (width ${cfg.model.width})` : `resnet50 (width ${cfg.model.width})`,
        params: countParams(s.net.params),
        input: `${data.train.height}x${data.train.width}x${data.train.channels}`,
        batch: bs,
        nbs: cfg.bn.nbs,
        train_images_per_s: +((bs * 1000) / stepMs).toFixed(1),
        train_step_ms: +stepMs.toFixed(1),
        inference_images_per_s: +((evalSet.n * 1000) / inferMs).toFixed(1),
        precise_samples: preciseN,
        precise_seconds: +preciseS.toFixed(2),
        peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      };
      disposeState(s);
      tf.disposeVariables();
      if (o.json) return void process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      const rows: [string, string][] = [
        ['model', `${r.model}, ${r.params.toLocaleString('en')} params, input ${r.input}`],
        ['batch / NBS / micro', `${bs} / ${cfg.bn.nbs} / ${micro}`],
        ['train', `${r.train_images_per_s} img/s (${r.train_step_ms} ms/step, median of ${steps})`],
        ['inference', `${r.inference_images_per_s} img/s (batch ${cfg.eval.batch_size})`],
        ['PreciseBN', `${r.precise_seconds} s for N=${preciseN}, B=${cfg.precise.batch_size}`],
        ['peak RSS', `${r.peak_rss_mb} MB`],
      ];
      process.stdout.write(rows.map(([k, v]) => `${k.padEnd(20)} ${v}`).join('\n') + '\n');
    });
}
