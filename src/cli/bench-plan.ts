// `bnlab bench` without a backend: its flags checked, then the plan — how many training steps,
// inference passes and PreciseBN samples are timed, at which batch sizes and threads, and the
// PyTorch peer's command line — as pure functions of the flags, the config and a few facts about
// the backend and the data; and the figures (BenchResult) from what was measured
// (test/bench-plan.test.ts). src/cli/bench.ts runs the plan and writes the figures.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseBackend } from '../config/load.js';
import { microBatch, type Config } from '../config/schema.js';
import { median } from '../util/median.js';

export interface BenchFlags {
  config?: string;
  set: string[];
  backend?: string;
  steps: string;
  json?: boolean;
  profile?: boolean;
  peer?: boolean;
  lockstep?: boolean;
  python: string;
}

/** What the flags ask for, checked. */
export interface BenchRequest {
  config?: string;
  /** --set, then --backend as one more (backend=NAME) */
  set: string[];
  /** timed training steps, after one warm-up step */
  steps: number;
  json: boolean;
  profile: boolean;
  /** the PyTorch peer (--peer): its python, and whether it alternates with bnlab step by step (--lockstep) */
  peer: { python: string; lockstep: boolean } | null;
}

/** The flags as a request (ConfigError: a usage error, exit 2), before any config is read. */
export function parseBenchFlags(f: BenchFlags): BenchRequest {
  if (f.lockstep && !f.peer) throw new ConfigError('bench: --lockstep alternates with the PyTorch peer; add --peer');
  const set = f.backend ? [...f.set, `backend=${parseBackend(f.backend)}`] : [...f.set];
  const steps = Number(f.steps);
  if (!/^\s*\d+\s*$/.test(f.steps) || !Number.isSafeInteger(steps) || steps < 1) {
    throw new ConfigError(`--steps must be a whole number of timed training steps, at least 1, got '${f.steps}' (e.g. --steps 5)`);
  }
  return { config: f.config, set, steps, json: !!f.json, profile: !!f.profile, peer: f.peer ? { python: f.python, lockstep: !!f.lockstep } : null };
}

/** What the plan needs to know about the backend that started and the data that loaded. */
export interface BenchFacts {
  backend: { name: 'cuda' | 'tensorflow' | 'wasm' | 'cpu'; threads?: number };
  /** os.availableParallelism(): the threads a backend without its own count uses */
  cpus: number;
  train: { n: number; height: number; width: number; channels: number };
  valImages: number;
  numClasses: number;
}

/** The whole passes timed for inference: one pass of a few batches varies 2-3x from run to run, their median does not. */
export const INFER_PASSES = 5;

export const PEER_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/bench-peer.py');

/** What one bench measures, and the peer's command line for the same work. */
export interface BenchPlan {
  model: string;
  /** height x width x channels */
  input: string;
  steps: number;
  batch: number;
  nbs: number;
  /** images per forward pass in a training step (config microBatch) */
  micro: number;
  /** population-statistics inference: the first `images` validation images, `passes` whole passes */
  inference: { images: number; batch: number; passes: number };
  /** one PreciseBN estimate: N (the config's, at most the training set), B, and its forward batch */
  precise: { samples: number; batch: number; forwardBatch: number };
  threads: number;
  json: boolean;
  profile: boolean;
  peer: { python: string; lockstep: boolean; args: string[] } | null;
}

/** The request on this config, backend and data (ConfigError: what the peer cannot run). */
export function planBench(req: BenchRequest, cfg: Config, facts: BenchFacts): BenchPlan {
  const { train } = facts;
  if (req.peer && train.height !== train.width) throw new ConfigError('bench --peer: square inputs only');
  const micro = microBatch(cfg);
  const plan: BenchPlan = {
    model: cfg.model.arch === 'resnet-cifar' ? `resnet-cifar-${cfg.model.depth} (width ${cfg.model.width})` : `resnet50 (width ${cfg.model.width})`,
    input: `${train.height}x${train.width}x${train.channels}`,
    steps: req.steps,
    batch: cfg.optim.batch_size,
    nbs: cfg.bn.nbs,
    micro,
    // three eval batches: enough for a steady figure, few enough to stay quick
    inference: { images: Math.min(facts.valImages, cfg.eval.batch_size * 3), batch: cfg.eval.batch_size, passes: INFER_PASSES },
    precise: { samples: Math.min(cfg.precise.samples, train.n), batch: cfg.precise.batch_size, forwardBatch: Math.max(micro, cfg.eval.batch_size) },
    // the threads the backend computes on (the peer is given as many)
    threads: facts.backend.name === 'wasm' ? facts.backend.threads ?? 1 : facts.backend.name === 'cpu' ? 1 : facts.cpus,
    json: req.json,
    profile: req.profile,
    peer: null,
  };
  if (req.peer) plan.peer = { ...req.peer, args: peerArgs(plan, cfg, facts) };
  return plan;
}

/** scripts/bench-peer.py's arguments: the same model, input, batch, NBS, threads and work in PyTorch. */
function peerArgs(p: BenchPlan, cfg: Config, facts: BenchFacts): string[] {
  const { train } = facts;
  return [PEER_SCRIPT, '--arch', cfg.model.arch, '--depth', String(cfg.model.depth), '--width', String(cfg.model.width),
    '--in-ch', String(train.channels), '--classes', String(facts.numClasses), '--size', String(train.height),
    '--batch', String(p.batch), '--nbs', String(Math.min(p.nbs, p.micro)), '--threads', String(p.threads), '--steps', String(p.steps),
    '--eps', String(cfg.bn.eps), '--infer-n', String(p.inference.images), '--infer-batch', String(p.inference.batch), '--infer-passes', String(p.inference.passes),
    '--precise-n', String(p.precise.samples), '--precise-batch', String(p.precise.batch),
    ...(facts.backend.name === 'cuda' ? ['--device', 'cuda', '--tf32', cfg.cuda.tf32 ? '1' : '0'] : [])];
}

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

/** What a bench measured, unrounded. */
export interface BenchMeasured {
  backend: string;
  params: number;
  stepsMs: number[];
  passesMs: number[];
  preciseSeconds: number;
  /** process.resourceUsage().maxRSS, in KiB */
  maxRssKb: number;
}

/** The figures: medians as images/s, every step's time, rounded as printed. */
export function benchResult(p: BenchPlan, m: BenchMeasured): BenchResult {
  const stepMs = median(m.stepsMs);
  const inferMs = median(m.passesMs);
  const lockstep = !!p.peer?.lockstep;
  return {
    backend: m.backend,
    model: p.model,
    params: m.params,
    input: p.input,
    batch: p.batch,
    nbs: p.nbs,
    train_images_per_s: +((p.batch * 1000) / stepMs).toFixed(1),
    train_step_ms: +stepMs.toFixed(1),
    train_steps_ms: m.stepsMs.map((t) => +t.toFixed(1)),
    inference_images_per_s: +((p.inference.images * 1000) / inferMs).toFixed(1),
    ...(lockstep ? { inference_passes_ms: m.passesMs.map((t) => +t.toFixed(2)) } : {}),
    precise_samples: p.precise.samples,
    precise_seconds: +m.preciseSeconds.toFixed(2),
    peak_rss_mb: Math.round(m.maxRssKb / 1024),
    threads: p.threads,
    ...(lockstep ? { lockstep: true } : {}),
  };
}
