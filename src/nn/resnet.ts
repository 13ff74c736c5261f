// ResNets as pure functions of (parameters, input, BN context): CIFAR-style (depth 6n+2, basic
// blocks) and ResNet-50 v1.5 (bottlenecks, stride on the 3x3). A forward pass mutates nothing and
// returns the logits plus the batch statistics every BN layer observed.
import * as tf from '@tensorflow/tfjs-core';
import { batchNormAffine, batchNormAffineAddRelu, passDone, type BNContext, type BNObserver } from './batchnorm.js';
import { Rng } from '../util/rng.js';
import { globalAvgPool } from './fused.js';

export type ModelConfig = {
  arch: 'resnet-cifar' | 'resnet50';
  depth: number;
  width: number;
  zero_init_last_gamma: boolean;
};

/** A parameter's role decides its initialisation and weight decay. */
export type ParamKind = 'conv' | 'fc' | 'gamma' | 'beta' | 'bias';

export interface ParamSpec {
  name: string;
  shape: number[];
  kind: ParamKind;
  /** gamma initial value (0 for the last BN of a residual block when zero-init is on) */
  init?: number;
}

/** A stage's output; once the context's observer is done (passDone), whatever it had computed. */
type StageFn = (p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, ctx: BNContext) => tf.Tensor4D;

/** A link of the chain `forward` runs before the head: the stem or one residual block. */
export interface Stage {
  /** The BN layers inside it, in forward order. */
  bnLayers: string[];
  run: StageFn;
}

export interface Network {
  params: ParamSpec[];
  /** BN layer names and channel counts, in forward order. */
  bnLayers: { name: string; channels: number }[];
  /** What forward runs before the head, stage by stage (exact B = N PreciseBN walks it so). */
  stages: Stage[];
  /** A BN layer's affine parameters in `p` (undefined where `p` lacks them). */
  bnAffine(p: ReadonlyMap<string, tf.Tensor>, layer: string): { gamma?: tf.Tensor1D; beta?: tf.Tensor1D };
  /** Logits; with an observer in `ctx`, every BN layer's batch statistics go to it. */
  forward(p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, ctx: BNContext): tf.Tensor2D;
  /** A statistics-only pass: the stages in order until the observer is done (no head, no logits). */
  observe(p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, ctx: Extract<BNContext, { source: 'batch' }> & { observer: BNObserver }): void;
}

/** Builds the spec (params, BN layers) and the forward function together, so they never disagree. */
export function buildNetwork(cfg: ModelConfig, inputChannels: number, numClasses: number): Network {
  const params: ParamSpec[] = [];
  const bnLayers: { name: string; channels: number }[] = [];

  const convSpec = (name: string, k: number, cin: number, cout: number) => params.push({ name, shape: [k, k, cin, cout], kind: 'conv' });
  const bnSpec = (name: string, c: number, gamma = 1) => {
    params.push({ name: `${name}.gamma`, shape: [c], kind: 'gamma', init: gamma }, { name: `${name}.beta`, shape: [c], kind: 'beta' });
    bnLayers.push({ name, channels: c });
  };

  // Ops: each closes over names, so forward code reads like the architecture.
  const conv = (p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, name: string, stride: number): tf.Tensor4D => {
    const w = p.get(name) as tf.Tensor4D;
    const k = w.shape[0];
    // Symmetric padding k//2 as in PyTorch (TF 'same' pads stride-2 convs asymmetrically).
    return tf.conv2d(x, w, stride, k === 1 ? 'valid' : Math.floor(k / 2));
  };
  const bnAffine: Network['bnAffine'] = (p, name) => ({ gamma: p.get(`${name}.gamma`) as tf.Tensor1D | undefined, beta: p.get(`${name}.beta`) as tf.Tensor1D | undefined });
  const affineOf = (p: ReadonlyMap<string, tf.Tensor>, name: string) => bnAffine(p, name) as { gamma: tf.Tensor1D; beta: tf.Tensor1D };
  // BN -> affine (-> ReLU): one fused kernel where the backend has it (see batchNormAffine).
  const bn = (p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, name: string, ctx: BNContext, relu = false) => {
    const { gamma, beta } = affineOf(p, name);
    return batchNormAffine(x, name, ctx, gamma, beta, relu) as tf.Tensor4D;
  };
  // A block's end, relu(BN(x) + shortcut): at inference one fused pass (see batchNormAffineAddRelu).
  const bnAddRelu = (p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, name: string, ctx: BNContext, shortcut: () => tf.Tensor4D) => {
    const { gamma, beta } = affineOf(p, name);
    return batchNormAffineAddRelu(x, name, ctx, gamma, beta, shortcut) as tf.Tensor4D;
  };

  // A stage owns the BN layers declared since the previous one.
  const stages: Stage[] = [];
  let owned = 0;
  const stage = (run: StageFn) => {
    stages.push({ bnLayers: bnLayers.slice(owned).map((l) => l.name), run });
    owned = bnLayers.length;
  };
  const zeroGamma = cfg.zero_init_last_gamma ? 0 : 1;
  let features: number;

  if (cfg.arch === 'resnet-cifar') {
    const n = (cfg.depth - 2) / 6;
    const w = cfg.width;
    convSpec('stem.conv', 3, inputChannels, w);
    bnSpec('stem.bn', w);
    stage((p, x, ctx) => bn(p, conv(p, x, 'stem.conv', 1), 'stem.bn', ctx, true));
    let cin = w;
    for (let s = 0; s < 3; s++) {
      const cout = w * 2 ** s;
      for (let b = 0; b < n; b++) {
        const name = `s${s + 1}.b${b + 1}`;
        const stride = s > 0 && b === 0 ? 2 : 1;
        const proj = stride !== 1 || cin !== cout;
        convSpec(`${name}.conv1`, 3, cin, cout);
        bnSpec(`${name}.bn1`, cout);
        convSpec(`${name}.conv2`, 3, cout, cout);
        bnSpec(`${name}.bn2`, cout, zeroGamma);
        if (proj) {
          convSpec(`${name}.proj`, 1, cin, cout);
          bnSpec(`${name}.proj_bn`, cout);
        }
        stage((p, x, ctx) => {
          const y = bn(p, conv(p, x, `${name}.conv1`, stride), `${name}.bn1`, ctx, true);
          if (passDone(ctx)) return y;
          const shortcut = () => (proj ? bn(p, conv(p, x, `${name}.proj`, stride), `${name}.proj_bn`, ctx) : x);
          return bnAddRelu(p, conv(p, y, `${name}.conv2`, 1), `${name}.bn2`, ctx, shortcut);
        });
        cin = cout;
      }
    }
    features = cin;
  } else {
    const w = cfg.width;
    convSpec('stem.conv', 7, inputChannels, w);
    bnSpec('stem.bn', w);
    stage((p, x, ctx) => {
      const y = bn(p, conv(p, x, 'stem.conv', 2), 'stem.bn', ctx, true);
      return passDone(ctx) ? y : tf.maxPool(y, 3, 2, 1);
    });
    let cin = w;
    [3, 4, 6, 3].forEach((count, s) => {
      const mid = w * 2 ** s;
      const cout = mid * 4;
      for (let b = 0; b < count; b++) {
        const name = `s${s + 1}.b${b + 1}`;
        const stride = s > 0 && b === 0 ? 2 : 1;
        const proj = b === 0;
        convSpec(`${name}.conv1`, 1, cin, mid);
        bnSpec(`${name}.bn1`, mid);
        convSpec(`${name}.conv2`, 3, mid, mid);
        bnSpec(`${name}.bn2`, mid);
        convSpec(`${name}.conv3`, 1, mid, cout);
        bnSpec(`${name}.bn3`, cout, zeroGamma);
        if (proj) {
          convSpec(`${name}.proj`, 1, cin, cout);
          bnSpec(`${name}.proj_bn`, cout);
        }
        stage((p, x, ctx) => {
          let y = bn(p, conv(p, x, `${name}.conv1`, 1), `${name}.bn1`, ctx, true);
          if (passDone(ctx)) return y;
          y = bn(p, conv(p, y, `${name}.conv2`, stride), `${name}.bn2`, ctx, true);
          if (passDone(ctx)) return y;
          const shortcut = () => (proj ? bn(p, conv(p, x, `${name}.proj`, stride), `${name}.proj_bn`, ctx) : x);
          return bnAddRelu(p, conv(p, y, `${name}.conv3`, 1), `${name}.bn3`, ctx, shortcut);
        });
        cin = cout;
      }
    });
    features = cin;
  }
  params.push({ name: 'fc.weight', shape: [features, numClasses], kind: 'fc' }, { name: 'fc.bias', shape: [numClasses], kind: 'bias' });

  // Each stage in its own tidy: a stage's intermediates are freed when it ends, not when the
  // whole forward does. Without gradients (evaluation, PreciseBN) that is all of them: ResNet-50
  // 64x64 inference at batch 128 grew the wasm heap 812 -> 1382 MB, kept until the batch ended.
  // With gradients, what backprop needs is saved by the engine beyond any tidy; observed
  // statistics are tf.keep'd by batchnorm.ts. Same ops, same results.
  const runStages = (p: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor4D, ctx: BNContext, stopWhenDone: boolean) => {
    let y = x;
    for (const s of stages) {
      const input = y;
      y = tf.tidy(() => s.run(p, input, ctx));
      if (stopWhenDone && passDone(ctx)) break;
    }
    return y;
  };
  const forward: Network['forward'] = (p, x, ctx) => {
    const features = runStages(p, x, ctx, false);
    // a stage returns early once the observer is done: its output is then no stage's output
    if (passDone(ctx)) throw new Error('forward: the observer ended the pass early; a statistics-only pass is observe()');
    const pooled = globalAvgPool(features);
    return tf.add(tf.matMul(pooled, p.get('fc.weight') as tf.Tensor2D), p.get('fc.bias') as tf.Tensor1D) as tf.Tensor2D;
  };
  const observe: Network['observe'] = (p, x, ctx) => void tf.dispose(runStages(p, x, ctx, true));
  return { params, bnLayers, stages, bnAffine, forward, observe };
}

/**
 * Initial values, deterministic given the seed: convs He-normal over fan-out (pycls/torchvision),
 * fc normal(0, 0.01), gammas 1 (or 0 where zero-init applies), betas and biases 0. Yielded one
 * parameter at a time in spec order, so a caller can upload each and let it go: holding them all
 * (ResNet-50: 94 MB of JS arrays) kept them alive past the first step's wasm heap growth.
 */
export function* initParamValues(specs: readonly ParamSpec[], seed: number): Generator<[ParamSpec, Float32Array]> {
  const rng = new Rng(seed);
  for (const s of specs) {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const v = new Float32Array(size);
    if (s.kind === 'conv') {
      const [k, , , cout] = s.shape;
      const std = Math.sqrt(2 / (k * k * cout));
      for (let i = 0; i < size; i++) v[i] = rng.normal() * std;
    } else if (s.kind === 'fc') {
      for (let i = 0; i < size; i++) v[i] = rng.normal() * 0.01;
    } else if (s.kind === 'gamma') {
      v.fill(s.init ?? 1);
    }
    yield [s, v];
  }
}

/** All initial values at once, by name. */
export const initParams = (specs: readonly ParamSpec[], seed: number): Map<string, Float32Array> =>
  new Map([...initParamValues(specs, seed)].map(([s, v]) => [s.name, v]));

export const countParams = (specs: readonly ParamSpec[]) => specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);

/**
 * trace.layers must be BN layers of the model and trace.channels must exist in each of them. BN
 * channel counts depend only on the model config, so config/ runs this at validation, before a
 * run folder or a sweep exists; `layers` (a built network's) skips rebuilding the specs.
 */
export function checkTracedLayers(trace: { layers: readonly string[]; channels: readonly number[] }, model: ModelConfig, layers?: readonly { name: string; channels: number }[]): void {
  if (!trace.layers.length) return;
  const known = layers ?? buildNetwork(model, 3, 1).bnLayers; // specs only: no tensors
  for (const l of trace.layers) {
    const layer = known.find((x) => x.name === l);
    if (!layer) throw new Error(`trace.layers: no BN layer '${l}' in this model (layers: ${known.slice(0, 6).map((x) => x.name).join(', ')}, ...)`);
    const beyond = trace.channels.find((c) => c >= layer.channels);
    if (beyond !== undefined) throw new Error(`trace.channels: channel ${beyond} does not exist in BN layer '${l}', which has ${layer.channels} channels (0..${layer.channels - 1}); pick channels below ${layer.channels} or trace a wider layer`);
  }
}
