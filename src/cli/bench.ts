// `bnlab bench`: how fast a config trains, infers and runs PreciseBN on this backend, and the
// memory it needs. Figures, not pass/fail: speed targets live here, not in timed tests.
import type { Command } from 'commander';
import { spawn, spawnSync } from 'node:child_process';
import readline from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { formatProfile, profileKernels } from '../backend/profile.js';
import { ConfigError, loadConfig, parseBackend } from '../config/load.js';
import { BACKENDS, microBatch, type Config } from '../config/schema.js';
import { loadDataset, type Dataset, type Split } from '../data/dataset.js';
import { permutation } from '../data/loader.js';
import { evaluate } from '../eval/evaluate.js';
import { countParams } from '../nn/resnet.js';
import { preciseBNStats, preciseRequest } from '../bn/precise.js';
import { createState, disposeState, emaStats, type RunState } from '../run/state.js';
import { trainStep } from '../train/step.js';
import { median } from '../util/median.js';

const collect = (v: string, prev: string[]) => [...prev, v];
const INFER_PASSES = 5;

export interface BenchResult {
  backend: string;
  model: string;
  params: number;
  input: string;
  batch: number;
  nbs: number;
  train_images_per_s: number;
  train_step_ms: number;
  /** every timed step, in order (the spread shows how noisy the machine is) */
  train_steps_ms?: number[];
  inference_images_per_s: number;
  /** every timed inference pass, in order (bench --lockstep: each beside one of the peer's) */
  inference_passes_ms?: number[];
  precise_samples: number;
  precise_seconds: number;
  peak_rss_mb: number;
  threads: number;
  /** steps and inference passes alternated one by one with the peer's (bench --lockstep):
   *  train_steps_ms and inference_passes_ms pair up */
  lockstep?: boolean;
}

/** What `scripts/bench-peer.py` prints (PyTorch on the same model, input, batch and threads). */
export type PeerResult = Omit<BenchResult, 'backend' | 'model' | 'precise_samples'> & { framework: string };

const PEER_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/bench-peer.py');

type BenchFlags = { config?: string; set: string[]; backend?: string; steps: string; json?: boolean; profile?: boolean; peer?: boolean; lockstep?: boolean; python: string };

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('measure training and inference images/s, PreciseBN pass time and peak memory for a config on the current backend')
    .option('-c, --config <file>', 'YAML config (default: the built-in quick experiment)')
    .option('--set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--backend <name>', `${BACKENDS.join(' | ')} (overrides the config)`)
    .option('--steps <n>', 'timed training steps (after one warm-up step)', '5')
    .option('--json', 'print JSON instead of a table')
    .option('--profile', 'also print the time share of each tfjs kernel in one training step')
    .option('--peer', 'also run the same model, input, batch and threads in PyTorch (scripts/bench-peer.py) and print both')
    .option('--lockstep', 'with --peer: alternate bnlab and PyTorch training steps and inference passes one by one (both processes alive, one computing at a time), so the per-step ratio is measured seconds apart on a host whose speed drifts')
    .option('--python <exe>', 'python with torch for --peer', process.env.BNLAB_PYTHON ?? '/usr/bin/python3')
    .action(runBench);
}

type Lockstep = Awaited<ReturnType<typeof startLockstep>>;

/** What every phase of a bench shares. */
interface Bench {
  cfg: Config;
  data: Dataset;
  s: RunState;
  micro: number;
  order: Int32Array;
  lockstep: Lockstep | null;
}

async function runBench(o: BenchFlags): Promise<void> {
  if (o.lockstep && !o.peer) throw new ConfigError('bench: --lockstep alternates with the PyTorch peer; add --peer');
  if (o.backend) o.set.push(`backend=${parseBackend(o.backend)}`);
  const cfg = loadConfig(o.config, o.set);
  const steps = Math.max(1, parseInt(o.steps, 10) || 5);
  const backend = await initBackend(cfg.backend, cfg.threads, cfg.cuda);
  if (!o.json) process.stderr.write(`backend: ${backend.name} — ${backend.reason}\n`);
  const data = await loadDataset(cfg.data);
  const s = createState(cfg, data.train.channels, data.numClasses);
  const bs = cfg.optim.batch_size;
  const micro = microBatch(cfg);
  const evalSet = { ...data.val, n: Math.min(data.val.n, cfg.eval.batch_size * 3) };
  const preciseN = Math.min(cfg.precise.samples, data.train.n);
  const threads = backend.name === 'wasm' ? backend.threads ?? 1 : backend.name === 'cpu' ? 1 : os.availableParallelism();
  if (o.peer && data.train.height !== data.train.width) throw new ConfigError('bench --peer: square inputs only');
  const peerArgs = [PEER_SCRIPT, '--arch', cfg.model.arch, '--depth', String(cfg.model.depth), '--width', String(cfg.model.width),
    '--in-ch', String(data.train.channels), '--classes', String(data.numClasses), '--size', String(data.train.height),
    '--batch', String(bs), '--nbs', String(Math.min(cfg.bn.nbs, micro)), '--threads', String(threads), '--steps', String(steps),
    '--eps', String(cfg.bn.eps), '--infer-n', String(evalSet.n), '--infer-batch', String(cfg.eval.batch_size), '--infer-passes', String(INFER_PASSES),
    '--precise-n', String(preciseN), '--precise-batch', String(cfg.precise.batch_size),
    ...(backend.name === 'cuda' ? ['--device', 'cuda', '--tf32', cfg.cuda.tf32 ? '1' : '0'] : [])];
  // The peer starts now and waits, its model built and warmed up, for each step it is asked for.
  const lockstep = o.lockstep ? await startLockstep(o.python, peerArgs) : null;
  const b: Bench = { cfg, data, s, micro, order: permutation(data.train.n, cfg.seed, 0), lockstep };

  const times = await timeTraining(b, steps);
  const stepMs = median(times);
  const profileText = o.profile ? await profileStep(b) : null;
  const passes = await timeInference(b, evalSet);
  const inferMs = median(passes);
  const t = performance.now();
  await preciseBNStats(s.net, s.params, data.train, preciseRequest(cfg, 0), { eps: cfg.bn.eps, forwardBatch: Math.max(micro, cfg.eval.batch_size) });
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
    train_steps_ms: times.map((t) => +t.toFixed(1)),
    inference_images_per_s: +((evalSet.n * 1000) / inferMs).toFixed(1),
    ...(lockstep ? { inference_passes_ms: passes.map((t) => +t.toFixed(2)) } : {}),
    precise_samples: preciseN,
    precise_seconds: +preciseS.toFixed(2),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    threads,
    ...(lockstep ? { lockstep: true } : {}),
  };
  disposeState(s);
  tf.disposeVariables();
  const peer = await peerResult(o, lockstep, peerArgs);
  if (peer && peer.params !== r.params) process.stderr.write(`warning: parameter counts differ: bnlab ${r.params}, peer ${peer.params}\n`);
  if (o.json) return void process.stdout.write(JSON.stringify(peer || profileText ? { bnlab: r, peer, profile: profileText } : r, null, 2) + '\n');
  printBench(r, cfg, micro, steps, times, profileText, peer, preciseN);
}

const stepOptions = (cfg: Config) => ({ nbs: cfg.bn.nbs, eps: cfg.bn.eps, emaDecay: cfg.bn.ema_decay, emaGroups: cfg.bn.ema_groups, lr: 0.01, momentum: 0.9, nesterov: false });

/** Training: one warm-up step (kernel setup, wasm heap growth), then timed steps; in lockstep,
 *  each bnlab step beside one of the peer's, alternating which goes first. */
async function timeTraining({ cfg, data, s, micro, order, lockstep }: Bench, steps: number): Promise<number[]> {
  const bs = cfg.optim.batch_size;
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const start = ((i * bs) % Math.max(1, data.train.n - bs + 1)) | 0;
    const micros = [];
    for (let m = 0; m < bs; m += micro) micros.push(await data.train.load(order.subarray(start + m, start + m + micro), { augment: true, seed: cfg.seed, epoch: 0 }));
    if (lockstep && i > 0 && i % 2 === 0) await lockstep.step();
    const t = performance.now();
    trainStep(s, micros, stepOptions(cfg));
    if (i > 0) times.push(performance.now() - t);
    if (lockstep && i > 0 && i % 2 === 1) await lockstep.step();
  }
  return times;
}

/** bench --profile: each tfjs kernel's share of one training step. */
async function profileStep({ cfg, data, s, micro, order }: Bench): Promise<string> {
  const micros: Awaited<ReturnType<typeof data.train.load>>[] = [];
  for (let m = 0; m < cfg.optim.batch_size; m += micro) micros.push(await data.train.load(order.subarray(m, m + micro), { augment: true, seed: cfg.seed, epoch: 0 }));
  const p = profileKernels(tf.getBackend(), () => void trainStep(s, micros, stepOptions(cfg)));
  return `kernel time of one training step (self time; ${tf.getBackend()}):\n${formatProfile(p)}`;
}

/** Inference with population statistics (EMA), at the eval batch size. The median of
 *  INFER_PASSES whole passes (the peer's too): one pass of a few batches varied 2-3x from run
 *  to run. In lockstep each pass sits beside one of the peer's, alternating which goes first. */
async function timeInference({ cfg, s, lockstep }: Bench, evalSet: Split): Promise<number[]> {
  const evalOpts = { ctx: { source: 'population' as const, nbs: cfg.bn.nbs, eps: cfg.bn.eps, population: emaStats(s) }, batchSize: cfg.eval.batch_size };
  await evaluate(s.net, s.params, { ...evalSet, n: Math.min(evalSet.n, cfg.eval.batch_size) }, evalOpts); // warm-up
  const passes: number[] = [];
  for (let k = 0; k < INFER_PASSES; k++) {
    if (lockstep && k % 2 === 1) await lockstep.infer();
    const t0 = performance.now();
    await evaluate(s.net, s.params, evalSet, evalOpts);
    passes.push(performance.now() - t0);
    if (lockstep && k % 2 === 0) await lockstep.infer();
  }
  return passes;
}

/** The PyTorch peer's figures: from the lockstep peer, or a run of its own (--peer). */
async function peerResult(o: BenchFlags, lockstep: Lockstep | null, peerArgs: string[]): Promise<PeerResult | null> {
  if (lockstep) return lockstep.finish();
  if (!o.peer) return null;
  const run = spawnSync(o.python, peerArgs, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`bench --peer: ${o.python} ${path.basename(PEER_SCRIPT)} failed (${run.status}): ${(run.stderr || run.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as PeerResult;
}

function printBench(r: BenchResult, cfg: Config, micro: number, steps: number, times: number[], profileText: string | null, peer: PeerResult | null, preciseN: number): void {
  const rows: [string, string][] = [
    ['model', `${r.model}, ${r.params.toLocaleString('en')} params, input ${r.input}`],
    ['batch / NBS / micro', `${cfg.optim.batch_size} / ${cfg.bn.nbs} / ${micro}`],
    ['train', `${r.train_images_per_s} img/s (${r.train_step_ms} ms/step, median of ${steps}; range ${Math.min(...times).toFixed(0)}-${Math.max(...times).toFixed(0)} ms)`],
    ['inference', `${r.inference_images_per_s} img/s (batch ${cfg.eval.batch_size}, median of ${INFER_PASSES} passes)`],
    ['PreciseBN', `${r.precise_seconds} s for N=${preciseN}, B=${cfg.precise.batch_size}`],
    ['peak RSS', `${r.peak_rss_mb} MB`],
  ];
  process.stdout.write(rows.map(([k, v]) => `${k.padEnd(20)} ${v}`).join('\n') + '\n');
  if (profileText) process.stdout.write('\n' + profileText + '\n');
  if (peer) process.stdout.write('\n' + formatPeer(r, peer, preciseN) + '\n');
}

/**
 * The PyTorch peer in lockstep (bench-peer.py --lockstep): started once, asked for one training
 * step or inference pass at a time, then for its PreciseBN figure. Every wait is bounded: a peer that
 * stops answering ends the bench with its last stderr lines, never a hang.
 */
async function startLockstep(python: string, args: string[]): Promise<{ step(): Promise<number>; infer(): Promise<number>; finish(): Promise<PeerResult> }> {
  const child = spawn(python, [...args, '--lockstep'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const fail = (why: string) => {
    child.kill('SIGKILL');
    return new Error(`bench --lockstep: ${path.basename(PEER_SCRIPT)} ${why}: ${stderr.trim().split('\n').slice(-3).join(' | ') || '(no stderr)'}`);
  };
  // stdout can close before the exit event: wait for the code, a few seconds at most
  const exitCode = () => child.exitCode !== null ? Promise.resolve(String(child.exitCode)) : new Promise<string>((resolve) => {
    const t = setTimeout(() => resolve('unknown'), 5000);
    child.once('exit', (code, signal) => (clearTimeout(t), resolve(String(code ?? signal))));
  });
  const next = async (what: string, seconds: number): Promise<Record<string, unknown>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => void (timer = setTimeout(() => reject(fail(`did not answer within ${seconds} s (${what})`)), seconds * 1000)));
    try {
      const r = await Promise.race([lines.next(), timeout]);
      if (r.done) throw fail(`exited (code ${await exitCode()}) before ${what}`);
      return JSON.parse(r.value) as Record<string, unknown>;
    } finally {
      clearTimeout(timer);
    }
  };
  await next('its warm-up step', 600);
  return {
    async step() {
      child.stdin.write('step\n');
      return (await next('a training step', 600)).ms as number;
    },
    async infer() {
      child.stdin.write('infer\n');
      return (await next('an inference pass', 600)).ms as number;
    },
    async finish() {
      child.stdin.end('finish\n');
      return (await next('PreciseBN', 1800)) as unknown as PeerResult;
    },
  };
}

/** Side-by-side table: bnlab vs the PyTorch peer, with bnlab/peer ratios (>1: bnlab faster). */
export function formatPeer(r: BenchResult, p: PeerResult, preciseN: number): string {
  const preciseB = preciseN / r.precise_seconds;
  const preciseP = preciseN / p.precise_seconds;
  const rows: string[][] = [
    ['', `bnlab (${r.backend}, ${r.threads} thr)`, `${p.framework} (${p.threads} thr)`, 'ratio'],
    ['params', r.params.toLocaleString('en'), p.params.toLocaleString('en'), r.params === p.params ? 'same' : 'DIFFER'],
    ['input / batch / nbs', `${r.input} / ${r.batch} / ${Math.min(r.nbs, r.batch)}`, `${p.input} / ${p.batch} / ${p.nbs}`, ''],
    ['train img/s', String(r.train_images_per_s), String(p.train_images_per_s), (r.train_images_per_s / p.train_images_per_s).toFixed(2)],
    ['inference img/s', String(r.inference_images_per_s), String(p.inference_images_per_s), (r.inference_images_per_s / p.inference_images_per_s).toFixed(2)],
    [`PreciseBN img/s (N=${preciseN})`, preciseB.toFixed(1), preciseP.toFixed(1), (preciseB / preciseP).toFixed(2)],
    ['peak RSS MB', String(r.peak_rss_mb), String(p.peak_rss_mb), ''],
  ];
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}
