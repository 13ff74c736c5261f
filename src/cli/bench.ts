// `bnlab bench`: how fast a config trains, infers and runs PreciseBN on this backend, and the
// memory it needs. Figures, not pass/fail: speed targets live here, not in timed tests.
// Flags -> a checked request and a plan (src/cli/bench-plan.ts: pure, tested) -> the timed phases
// -> the figures as a table or JSON, beside the PyTorch peer's with --peer.
import type { Command } from 'commander';
import { spawn, spawnSync } from 'node:child_process';
import readline from 'node:readline';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { formatProfile, profileKernels } from '../backend/profile.js';
import { loadConfig } from '../config/load.js';
import { BACKENDS, type Config } from '../config/schema.js';
import { loadDataset, type Dataset, type Split } from '../data/dataset.js';
import { permutation } from '../data/loader.js';
import { evaluate } from '../eval/evaluate.js';
import type { BNContext } from '../nn/batchnorm.js';
import { countParams } from '../nn/resnet.js';
import { preciseBNStats, preciseRequest } from '../bn/precise.js';
import { createState, disposeState, emaStats, type RunState } from '../run/state.js';
import { trainStep } from '../train/step.js';
import { benchResult, parseBenchFlags, PEER_SCRIPT, planBench, type BenchFlags, type BenchPlan, type BenchResult, type PeerResult } from './bench-plan.js';

export type { BenchResult, PeerResult } from './bench-plan.js';

const collect = (v: string, prev: string[]) => [...prev, v];

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
  plan: BenchPlan;
  data: Dataset;
  state: RunState;
  order: Int32Array;
  lockstep: Lockstep | null;
}

/** `bnlab bench`: the request is checked before the config is read, the plan before the model is built. */
async function runBench(o: BenchFlags): Promise<void> {
  const req = parseBenchFlags(o);
  const cfg = loadConfig(req.config, req.set);
  const backend = await initBackend(cfg.backend, cfg.threads, cfg.cuda);
  if (!req.json) process.stderr.write(`backend: ${backend.name} — ${backend.reason}\n`);
  const data = await loadDataset(cfg.data);
  const plan = planBench(req, cfg, {
    backend, cpus: os.availableParallelism(), train: data.train, valImages: data.val.n, numClasses: data.numClasses,
  });
  const state = createState(cfg, data.train.channels, data.numClasses);
  // The peer starts now and waits, its model built and warmed up, for each step it is asked for.
  const lockstep = plan.peer?.lockstep ? await startLockstep(plan.peer.python, plan.peer.args) : null;
  const b: Bench = { cfg, plan, data, state, order: permutation(data.train.n, cfg.seed, 0), lockstep };

  const stepsMs = await timeTraining(b);
  const profileText = plan.profile ? await profileStep(b) : null;
  const passesMs = await timeInference(b, { ...data.val, n: plan.inference.images });
  const preciseSeconds = await timePrecise(b);
  const r = benchResult(plan, { backend: backend.name, params: countParams(state.net.params), stepsMs, passesMs, preciseSeconds, maxRssKb: process.resourceUsage().maxRSS });
  disposeState(state);
  tf.disposeVariables();
  const peer = await peerResult(plan, lockstep);
  if (peer && peer.params !== r.params) process.stderr.write(`warning: parameter counts differ: bnlab ${r.params}, peer ${peer.params}\n`);
  if (plan.json) return void process.stdout.write(JSON.stringify(peer || profileText ? { bnlab: r, peer, profile: profileText } : r, null, 2) + '\n');
  printBench(r, plan, stepsMs, profileText, peer);
}

const stepOptions = (cfg: Config) => ({ nbs: cfg.bn.nbs, eps: cfg.bn.eps, emaDecay: cfg.bn.ema_decay, emaGroups: cfg.bn.ema_groups, lr: 0.01, momentum: 0.9, nesterov: false });

/** Training: one warm-up step (kernel setup, wasm heap growth), then timed steps; in lockstep,
 *  each bnlab step beside one of the peer's, alternating which goes first. */
async function timeTraining({ cfg, plan, data, state, order, lockstep }: Bench): Promise<number[]> {
  const { batch: bs, micro } = plan;
  const times: number[] = [];
  for (let i = 0; i <= plan.steps; i++) {
    const start = ((i * bs) % Math.max(1, data.train.n - bs + 1)) | 0;
    const micros = [];
    for (let m = 0; m < bs; m += micro) micros.push(await data.train.load(order.subarray(start + m, start + m + micro), { augment: true, seed: cfg.seed, epoch: 0 }));
    if (lockstep && i > 0 && i % 2 === 0) await lockstep.step();
    const t = performance.now();
    trainStep(state, micros, stepOptions(cfg));
    if (i > 0) times.push(performance.now() - t);
    if (lockstep && i > 0 && i % 2 === 1) await lockstep.step();
  }
  return times;
}

/** bench --profile: each tfjs kernel's share of one training step. */
async function profileStep({ cfg, plan: { batch, micro }, data, state, order }: Bench): Promise<string> {
  const micros: Awaited<ReturnType<typeof data.train.load>>[] = [];
  for (let m = 0; m < batch; m += micro) micros.push(await data.train.load(order.subarray(m, m + micro), { augment: true, seed: cfg.seed, epoch: 0 }));
  const p = profileKernels(tf.getBackend(), () => void trainStep(state, micros, stepOptions(cfg)));
  return `kernel time of one training step (self time; ${tf.getBackend()}):\n${formatProfile(p)}`;
}

/** Inference with population statistics (EMA), at the eval batch size: whole passes over the
 *  plan's images (the peer's too), after a one-batch warm-up. In lockstep each pass sits beside
 *  one of the peer's, alternating which goes first. */
async function timeInference({ cfg, plan, state, lockstep }: Bench, evalSet: Split): Promise<number[]> {
  const { batch, passes: count } = plan.inference;
  const ctx: BNContext = { source: 'population', eps: cfg.bn.eps, population: emaStats(state) };
  const evalOpts = { ctx, batchSize: batch };
  await evaluate(state.net, state.params, { ...evalSet, n: Math.min(evalSet.n, batch) }, evalOpts); // warm-up
  const passes: number[] = [];
  for (let k = 0; k < count; k++) {
    if (lockstep && k % 2 === 1) await lockstep.infer();
    const t0 = performance.now();
    await evaluate(state.net, state.params, evalSet, evalOpts);
    passes.push(performance.now() - t0);
    if (lockstep && k % 2 === 0) await lockstep.infer();
  }
  return passes;
}

/** One PreciseBN estimate of the run's N and B (seconds). */
async function timePrecise({ cfg, plan, data, state }: Bench): Promise<number> {
  const t = performance.now();
  await preciseBNStats(state.net, state.params, data.train, preciseRequest(cfg, 0), { eps: cfg.bn.eps, forwardBatch: plan.precise.forwardBatch });
  return (performance.now() - t) / 1000;
}

/** The PyTorch peer's figures: from the lockstep peer, or a run of its own (--peer). */
async function peerResult({ peer }: BenchPlan, lockstep: Lockstep | null): Promise<PeerResult | null> {
  if (lockstep) return lockstep.finish();
  if (!peer) return null;
  const run = spawnSync(peer.python, peer.args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (run.status !== 0) throw new Error(`bench --peer: ${peer.python} ${path.basename(PEER_SCRIPT)} failed (${run.status}): ${(run.stderr || run.error?.message || '').trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!) as PeerResult;
}

/** The figures as a table, then the kernel profile and the peer's side by side when asked for. */
function printBench(r: BenchResult, plan: BenchPlan, times: number[], profileText: string | null, peer: PeerResult | null): void {
  const preciseN = plan.precise.samples;
  const rows: [string, string][] = [
    ['model', `${r.model}, ${r.params.toLocaleString('en')} params, input ${r.input}`],
    ['batch / NBS / micro', `${plan.batch} / ${plan.nbs} / ${plan.micro}`],
    ['train', `${r.train_images_per_s} img/s (${r.train_step_ms} ms/step, median of ${plan.steps}; range ${Math.min(...times).toFixed(0)}-${Math.max(...times).toFixed(0)} ms)`],
    ['inference', `${r.inference_images_per_s} img/s (batch ${plan.inference.batch}, median of ${plan.inference.passes} passes)`],
    ['PreciseBN', `${r.precise_seconds} s for N=${preciseN}, B=${plan.precise.batch}`],
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
