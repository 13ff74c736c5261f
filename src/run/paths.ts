// The layout of a run folder: every file bnlab train and bnlab eval read or write in it.
import { join } from 'node:path';

export const runPaths = (dir: string) => ({
  config: join(dir, 'config.yaml'),
  metrics: join(dir, 'metrics.csv'),
  metricsJsonl: join(dir, 'metrics.jsonl'),
  summary: join(dir, 'summary.json'),
  runInfo: join(dir, 'run.json'),
  log: join(dir, 'train.log'),
  trace: join(dir, 'bn_trace.csv'),
  scalars: join(dir, 'scalars.jsonl'),
  tensorboard: join(dir, 'tb'),
  eval: join(dir, 'eval.csv'),
  lock: join(dir, '.bnlab.lock'),
  checkpoints: join(dir, 'checkpoints'),
  last: join(dir, 'checkpoints', 'last.ckpt'),
  best: join(dir, 'checkpoints', 'best.ckpt'),
  epoch: (e: number) => join(dir, 'checkpoints', `epoch-${String(e).padStart(4, '0')}.ckpt`),
});

export type RunPaths = ReturnType<typeof runPaths>;
