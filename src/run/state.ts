// Everything a run carries from step to step: parameters, SGD velocity, the EMA population
// statistics, the last PreciseBN statistics and where in training it is. It round-trips through
// a checkpoint exactly (float32 values, JSON counters), which is what makes --resume exact.
// Here, below train/, because `bnlab eval` and `bnlab export` load a checkpoint without the trainer.
import * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../config/schema.js';
import { emaPopulation, type EmaBuffers } from '../bn/ema.js';
import { disposePopulation, type Population } from '../bn/population.js';
import { buildNetwork, initParamValues, type Network } from '../nn/resnet.js';
import type { Checkpoint, StoredTensor } from './checkpoint.js';
import { MODE } from '../bn/columns.js';

/** Sums over the steps done so far in the current epoch (so a mid-epoch resume continues them). */
export interface EpochProgress {
  step: number;
  lossSum: number;
  errors: number;
  seen: number;
  seconds: number;
}

export interface RunMeta {
  /** The run's id (run.json's `id`): which run this state belongs to (absent in older checkpoints). */
  run_id?: string;
  epoch: number; // completed epochs
  progress: EpochProgress;
  config: Config;
  /** metrics.csv's rows up to `epoch`, as written: a resume checks and repairs the file against it. */
  history?: string[][];
}

export interface RunState {
  net: Network;
  params: Map<string, tf.Variable>;
  velocity: Map<string, tf.Variable>;
  ema: EmaBuffers;
  precise: Population | null;
  /** FrozenBN's fixed population statistics, set at the switch (null before it). */
  frozen: Population | null;
  weightDecay: Map<string, number>;
  meta: RunMeta;
}

export const emptyProgress = (): EpochProgress => ({ step: 0, lossSum: 0, errors: 0, seen: 0, seconds: 0 });

export function createState(cfg: Config, inputChannels: number, numClasses: number): RunState {
  const net = buildNetwork(cfg.model, inputChannels, numClasses);
  const params = new Map<string, tf.Variable>();
  const velocity = new Map<string, tf.Variable>();
  const weightDecay = new Map<string, number>();
  const wdBn = cfg.optim.weight_decay_bn ?? cfg.optim.weight_decay;
  for (const [spec, init] of initParamValues(net.params, cfg.seed)) {
    // Unnamed variables: tfjs names must be unique per process, and benches/tests build several models.
    params.set(spec.name, tf.tidy(() => tf.variable(tf.tensor(init, spec.shape), true)));
    velocity.set(spec.name, tf.tidy(() => tf.variable(tf.zeros(spec.shape), false)));
    weightDecay.set(spec.name, spec.kind === 'conv' || spec.kind === 'fc' ? cfg.optim.weight_decay : wdBn);
  }
  // PyTorch's initial running statistics: mean 0, variance 1.
  const ema: EmaBuffers = new Map();
  for (const { name, channels } of net.bnLayers) {
    ema.set(name, tf.tidy(() => ({ mean: tf.variable(tf.zeros([channels]), false), variance: tf.variable(tf.ones([channels]), false) })));
  }
  return { net, params, velocity, ema, precise: null, frozen: null, weightDecay, meta: { epoch: 0, progress: emptyProgress(), config: cfg } };
}

/** The EMA buffers as population statistics (a view: the tensors stay the state's). */
export const emaStats = (state: RunState): Population => emaPopulation(state.ema);

const store = (t: tf.Tensor): StoredTensor => ({ shape: t.shape.slice(), data: t.dataSync() as Float32Array });

export function toCheckpoint(state: RunState): Checkpoint<RunMeta> {
  const tensors = new Map<string, StoredTensor>();
  for (const [k, v] of state.params) tensors.set(`param/${k}`, store(v));
  for (const [k, v] of state.velocity) tensors.set(`velocity/${k}`, store(v));
  for (const [k, v] of state.ema) {
    tensors.set(`ema/${k}/mean`, store(v.mean));
    tensors.set(`ema/${k}/variance`, store(v.variance));
  }
  for (const kind of [MODE.precise, MODE.frozen] as const) {
    for (const [k, v] of state[kind] ?? []) {
      tensors.set(`${kind}/${k}/mean`, store(v.mean));
      tensors.set(`${kind}/${k}/variance`, store(v.variance));
    }
  }
  return { meta: state.meta, tensors };
}

/** Tensor names a checkpoint of this state holds: every parameter, velocity and EMA buffer, and PreciseBN / FrozenBN statistics when set. */
function expectedTensors(state: RunState, has: (key: string) => boolean): Set<string> {
  const names = new Set<string>();
  for (const k of state.params.keys()) names.add(`param/${k}`).add(`velocity/${k}`);
  for (const k of state.ema.keys()) names.add(`ema/${k}/mean`).add(`ema/${k}/variance`);
  for (const kind of [MODE.precise, MODE.frozen]) {
    if (!has(`${kind}/${state.net.bnLayers[0].name}/mean`)) continue;
    for (const { name } of state.net.bnLayers) names.add(`${kind}/${name}/mean`).add(`${kind}/${name}/variance`);
  }
  return names;
}

/** Why the checkpoint's tensors are not exactly this state's (null: they are, names and shapes). */
export function tensorProblem(state: RunState, ckpt: Checkpoint<RunMeta>): string | null {
  const expected = expectedTensors(state, (k) => ckpt.tensors.has(k));
  const extra = [...ckpt.tensors.keys()].filter((k) => !expected.has(k));
  const missing = [...expected].filter((k) => !ckpt.tensors.has(k));
  const list = (xs: string[]) => `${xs.slice(0, 3).join(', ')}${xs.length > 3 ? `, ... (${xs.length})` : ''}`;
  if (extra.length) return `it holds tensors this model does not have (${list(extra)}): it was written by a different model config`;
  if (missing.length) return `it lacks tensors this model has (${list(missing)}): it was written by a different model config`;
  const shapeOf = (k: string): number[] => {
    const [kind, ...rest] = k.split('/');
    const name = kind === 'param' || kind === 'velocity' ? rest.join('/') : rest.slice(0, -1).join('/');
    if (kind === 'param' || kind === 'velocity') return state.params.get(name)!.shape;
    return [state.net.bnLayers.find((l) => l.name === name)!.channels];
  };
  for (const k of expected) {
    const want = shapeOf(k);
    const got = ckpt.tensors.get(k)!.shape;
    if (got.join(',') !== want.join(',')) return `tensor '${k}' has shape [${got}] but the model needs [${want}]: it was written by a different model config`;
  }
  return null;
}

/**
 * Load a checkpoint into a freshly created state of the same architecture. The checkpoint must
 * hold exactly the tensors the state has: one from a deeper or wider model is refused, not loaded
 * by whichever names happen to match.
 */
export function loadCheckpointInto(state: RunState, ckpt: Checkpoint<RunMeta>, source: string): void {
  const problem = tensorProblem(state, ckpt);
  if (problem) throw new Error(`${source}: ${problem}`);
  const get = (key: string, shape: number[]) => {
    const t = ckpt.tensors.get(key);
    if (!t) throw new Error(`${source}: checkpoint has no tensor '${key}' (was it written by a different model config?)`);
    if (t.shape.join(',') !== shape.join(',')) throw new Error(`${source}: tensor '${key}' has shape [${t.shape}] but the model needs [${shape}]`);
    return tf.tensor(t.data, t.shape);
  };
  const assign = (v: tf.Variable, key: string) => tf.tidy(() => v.assign(get(key, v.shape)));
  for (const [k, v] of state.params) assign(v, `param/${k}`);
  for (const [k, v] of state.velocity) assign(v, `velocity/${k}`);
  for (const [k, v] of state.ema) {
    assign(v.mean, `ema/${k}/mean`);
    assign(v.variance, `ema/${k}/variance`);
  }
  for (const kind of [MODE.precise, MODE.frozen] as const) {
    disposePopulation(state[kind]);
    state[kind] = null;
    if (!ckpt.tensors.has(`${kind}/${state.net.bnLayers[0].name}/mean`)) continue;
    state[kind] = new Map(
      state.net.bnLayers.map(({ name, channels }) => [
        name,
        { mean: get(`${kind}/${name}/mean`, [channels]) as tf.Tensor1D, variance: get(`${kind}/${name}/variance`, [channels]) as tf.Tensor1D },
      ]),
    );
  }
  state.meta = { ...ckpt.meta, config: state.meta.config };
}

/** Free every tensor a run state holds (tests and benchmarks build several in one process). */
export function disposeState(state: RunState): void {
  for (const v of [...state.params.values(), ...state.velocity.values()]) v.dispose();
  for (const e of state.ema.values()) tf.dispose([e.mean, e.variance]);
  disposePopulation(state.precise);
  disposePopulation(state.frozen);
}
