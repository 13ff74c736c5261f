// bnlab's ResNet parameters and a set of BN population statistics as a PyTorch state_dict: the keys
// torchvision.models.resnet50 uses (ResNet-50) or scripts/torch_resnet.py's (CIFAR ResNets, whose
// module names are bnlab's own), in PyTorch's layouts and in state_dict order. A pure function: the
// CLI (cli/export.ts) reads the checkpoint and writes the file.
import type { SafeTensor } from '../util/safetensors.js';
import type { ModelConfig, Network } from './resnet.js';

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** torchvision's module name for a bnlab ResNet-50 module: stem.conv -> conv1, s2.b1.proj_bn -> layer2.0.downsample.1. */
export function torchvisionModule(name: string): string {
  if (name === 'stem.conv') return 'conv1';
  if (name === 'stem.bn') return 'bn1';
  if (name === 'fc') return 'fc';
  const m = /^s(\d+)\.b(\d+)\.(conv[123]|bn[123]|proj|proj_bn)$/.exec(name);
  if (!m) throw new Error(`no torchvision name for bnlab module '${name}'`);
  const leaf = m[3] === 'proj' ? 'downsample.0' : m[3] === 'proj_bn' ? 'downsample.1' : m[3];
  return `layer${m[1]}.${Number(m[2]) - 1}.${leaf}`;
}

/** The PyTorch module name of a bnlab module: torchvision's for resnet50, bnlab's own (= scripts/torch_resnet.py's) for resnet-cifar. */
export const torchModule = (arch: ModelConfig['arch'], name: string): string => (arch === 'resnet50' ? torchvisionModule(name) : name);

/** HWIO [k, k, cin, cout] (tfjs) -> OIHW [cout, cin, k, k] (PyTorch). */
function hwioToOihw(t: HostTensor): HostTensor {
  const [kh, kw, ci, co] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let h = 0; h < kh; h++)
    for (let w = 0; w < kw; w++)
      for (let i = 0; i < ci; i++)
        for (let o = 0; o < co; o++) out[((o * ci + i) * kh + h) * kw + w] = t.data[((h * kw + w) * ci + i) * co + o];
  return { shape: [co, ci, kh, kw], data: out };
}

/** [in, out] (x @ W) -> [out, in] (nn.Linear). */
function transpose2d(t: HostTensor): HostTensor {
  const [r, c] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { shape: [c, r], data: out };
}

/**
 * The state_dict of the model whose parameters `param` returns (by bnlab name, bnlab layout) with
 * BN population statistics `stats` (by BN layer; variance unbiased, as PyTorch's running_var). Each
 * BN layer also gets num_batches_tracked = 0 (as in torchvision's published weights; PyTorch reads
 * it only when momentum is None). A missing tensor or a shape unlike the model's throws, naming it.
 */
export function torchStateDict(
  net: Pick<Network, 'params' | 'bnLayers'>,
  arch: ModelConfig['arch'],
  param: (name: string) => HostTensor | undefined,
  stats: (layer: string) => { mean?: HostTensor; variance?: HostTensor },
): SafeTensor[] {
  const get = (what: string, t: HostTensor | undefined, shape: number[]): HostTensor => {
    if (!t) throw new Error(`no tensor for ${what}`);
    if (t.shape.join(',') !== shape.join(',')) throw new Error(`${what} has shape [${t.shape}] but the model needs [${shape}]`);
    return t;
  };
  const f32 = (name: string, t: HostTensor): SafeTensor => ({ name, dtype: 'F32', shape: t.shape, data: t.data });
  const channels = new Map(net.bnLayers.map((l) => [l.name, l.channels]));
  const out: SafeTensor[] = [];
  for (const s of net.params) {
    const t = get(`parameter '${s.name}'`, param(s.name), s.shape);
    if (s.kind === 'conv') out.push(f32(`${torchModule(arch, s.name)}.weight`, hwioToOihw(t)));
    else if (s.kind === 'fc') out.push(f32('fc.weight', transpose2d(t)));
    else if (s.kind === 'bias') out.push(f32('fc.bias', t));
    else {
      const layer = s.name.slice(0, s.name.lastIndexOf('.'));
      const mod = torchModule(arch, layer);
      if (s.kind === 'gamma') out.push(f32(`${mod}.weight`, t));
      else {
        // beta closes the layer's parameters: its buffers follow, as in BatchNorm2d's state_dict.
        const c = channels.get(layer)!;
        const st = stats(layer);
        out.push(f32(`${mod}.bias`, t), f32(`${mod}.running_mean`, get(`'${layer}' mean`, st.mean, [c])), f32(`${mod}.running_var`, get(`'${layer}' variance`, st.variance, [c])));
        out.push({ name: `${mod}.num_batches_tracked`, dtype: 'I64', shape: [], data: new BigInt64Array(1) });
      }
    }
  }
  return out;
}
