#!/usr/bin/python3
"""PyTorch twins of bnlab's two ResNets (src/nn/resnet.ts), with the same parameter names.

Used by scripts/torch_crosscheck.py (numerical cross-check against bnlab) and as the PyTorch
peer for speed comparisons. The model is an ordinary nn.Module with standard nn.BatchNorm2d
layers (gamma/beta = BatchNorm2d.weight/bias), so it is a fair peer.

Architectures (as in bnlab):
  resnet-cifar: depth 6n+2, basic blocks, widths w, 2w, 4w; stride 2 on the first block of
                stages 2 and 3; 1x1 projection + BN shortcut where shape changes.
  resnet50:     ResNet-50 v1.5: stem 7x7 s2 pad 3 + BN + ReLU + maxpool 3x3 s2 pad 1, bottlenecks
                [3, 4, 6, 3] with mid widths w, 2w, 4w, 8w (x4 out), stride on the 3x3, 1x1
                projection + BN shortcut on each stage's first block.
All convs have no bias and symmetric padding k//2; global average pool; fc.

Name mapping (bnlab <-> torch state_dict):
  <conv>            <-> <conv>.weight    HWIO [k,k,cin,cout]  <-> OIHW [cout,cin,k,k]
  <bn>.gamma/.beta  <-> <bn>.weight/.bias
  fc.weight         <-> fc.weight        [features, classes]  <-> [classes, features]
  fc.bias           <-> fc.bias
  population mean / variance (unbiased) <-> <bn>.running_mean / <bn>.running_var
BN module names equal bnlab's BN layer names (e.g. "s2.b1.proj_bn"). `bnlab export` writes a
resnet-cifar run as this model's state_dict (safetensors; ResNet-50 under torchvision's names).

Ghost batch norm (normalization batch size nbs < batch) is emulated by ghost_forward(): split the
batch into consecutive groups of nbs (a remainder forms one smaller group) and run the model per
group in train mode; all other layers are per-sample, so this is exactly BN over groups.

CLI:  /usr/bin/python3 scripts/torch_resnet.py --arch resnet-cifar --depth 20 --width 16 \
          --in-ch 3 --classes 10 --count [--names]
"""
import argparse
import math
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, eps):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps)
        self.conv2 = _conv(cout, cout, 3)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)
        if stride != 1 or cin != cout:
            self.proj = _conv(cin, cout, 1, stride)
            self.proj_bn = nn.BatchNorm2d(cout, eps=eps)
        else:
            self.proj = None

    # A property, not an attribute: a module assigned to an attribute is registered again, and
    # state_dict() would list bn2 twice (as last_bn.*), so a bnlab export would not load strictly.
    @property
    def last_bn(self):
        return self.bn2

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        sc = self.proj_bn(self.proj(x)) if self.proj is not None else x
        return F.relu(y + sc)


class Bottleneck(nn.Module):
    def __init__(self, cin, mid, cout, stride, proj, eps):
        super().__init__()
        self.conv1 = _conv(cin, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid, eps=eps)
        self.conv2 = _conv(mid, mid, 3, stride)  # v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(mid, eps=eps)
        self.conv3 = _conv(mid, cout, 1)
        self.bn3 = nn.BatchNorm2d(cout, eps=eps)
        if proj:
            self.proj = _conv(cin, cout, 1, stride)
            self.proj_bn = nn.BatchNorm2d(cout, eps=eps)
        else:
            self.proj = None

    @property
    def last_bn(self):
        return self.bn3

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        sc = self.proj_bn(self.proj(x)) if self.proj is not None else x
        return F.relu(y + sc)


class Stem(nn.Module):
    def __init__(self, cin, cout, k, stride, pool, eps):
        super().__init__()
        self.conv = _conv(cin, cout, k, stride)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.pool = pool

    def forward(self, x):
        y = F.relu(self.bn(self.conv(x)))
        return F.max_pool2d(y, 3, 2, 1) if self.pool else y


class ResNet(nn.Module):
    def __init__(self, arch, depth, width, in_ch, classes, eps=1e-5, zero_init_last_gamma=False):
        super().__init__()
        w = width
        if arch == 'resnet-cifar':
            if (depth - 2) % 6 != 0 or depth < 8:
                raise ValueError(f'resnet-cifar depth must be 6n+2 >= 8, got {depth}')
            n = (depth - 2) // 6
            self.stem = Stem(in_ch, w, 3, 1, False, eps)
            cin = w
            for s in range(3):
                cout = w * 2 ** s
                blocks = OrderedDict()
                for b in range(n):
                    stride = 2 if s > 0 and b == 0 else 1
                    blocks[f'b{b + 1}'] = BasicBlock(cin, cout, stride, eps)
                    cin = cout
                self.add_module(f's{s + 1}', nn.Sequential(blocks))
        elif arch == 'resnet50':
            self.stem = Stem(in_ch, w, 7, 2, True, eps)
            cin = w
            for s, count in enumerate([3, 4, 6, 3]):
                mid = w * 2 ** s
                cout = mid * 4
                blocks = OrderedDict()
                for b in range(count):
                    stride = 2 if s > 0 and b == 0 else 1
                    blocks[f'b{b + 1}'] = Bottleneck(cin, mid, cout, stride, b == 0, eps)
                    cin = cout
                self.add_module(f's{s + 1}', nn.Sequential(blocks))
        else:
            raise ValueError(f'unknown arch {arch!r}')
        self.stages = [getattr(self, f's{i}') for i in range(1, 4 if arch == 'resnet-cifar' else 5)]
        self.fc = nn.Linear(cin, classes)
        self.features = cin
        self._init(zero_init_last_gamma)

    def _init(self, zero_init_last_gamma):
        # Same distributions as bnlab's initParams (not the same draws).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        if zero_init_last_gamma:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn.weight)

    def forward(self, x):
        y = self.stem(x)
        for stage in self.stages:
            y = stage(y)
        return self.fc(y.mean(dim=(2, 3)))


def build_model(arch, depth, width, in_ch, classes, eps=1e-5, zero_init_last_gamma=False):
    return ResNet(arch, depth, width, in_ch, classes, eps, zero_init_last_gamma)


def bn_layers(model):
    """BN layer names (== bnlab's) -> module, in forward order."""
    return OrderedDict((n, m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))


def bnlab_name(torch_name):
    base, _, leaf = torch_name.rpartition('.')
    if base == 'fc':
        return torch_name
    if leaf == 'weight' and not base.endswith(('bn', 'bn1', 'bn2', 'bn3', 'proj_bn')):
        return base  # conv
    return base + {'weight': '.gamma', 'bias': '.beta'}[leaf]


def _to_bnlab_layout(name, t):
    if t.dim() == 4:
        return t.permute(2, 3, 1, 0)  # OIHW -> HWIO
    if name == 'fc.weight':
        return t.t()
    return t


def _to_torch_layout(name, t):
    if t.dim() == 4:
        return t.permute(3, 2, 0, 1)  # HWIO -> OIHW
    if name == 'fc.weight':
        return t.t()
    return t


def bnlab_params(model):
    """name -> tensor, in bnlab names and layouts (views of the parameters)."""
    return OrderedDict((bnlab_name(n), _to_bnlab_layout(n, p)) for n, p in model.named_parameters())


def bnlab_grads(model):
    """name -> gradient, in bnlab names and layouts."""
    return OrderedDict((bnlab_name(n), _to_bnlab_layout(n, p.grad)) for n, p in model.named_parameters())


def load_bnlab_params(model, params):
    """Copy params (bnlab name -> array/tensor in bnlab layout) into the model; all names must match."""
    own = OrderedDict((bnlab_name(n), (n, p)) for n, p in model.named_parameters())
    missing, extra = set(own) - set(params), set(params) - set(own)
    if missing or extra:
        raise KeyError(f'parameter names differ: missing {sorted(missing)}, unexpected {sorted(extra)}')
    with torch.no_grad():
        for name, (tname, p) in own.items():
            src = _to_torch_layout(tname, torch.as_tensor(params[name]))
            if tuple(src.shape) != tuple(p.shape):
                raise ValueError(f'{name}: shape {tuple(src.shape)} does not match {tuple(p.shape)}')
            p.copy_(src.to(p.dtype))


def load_population(model, stats):
    """stats: BN layer name -> (mean, variance); used in eval mode."""
    layers = bn_layers(model)
    with torch.no_grad():
        for name, (mean, var) in stats.items():
            m = layers[name]
            m.running_mean.copy_(torch.as_tensor(mean).to(m.running_mean.dtype))
            m.running_var.copy_(torch.as_tensor(var).to(m.running_var.dtype))


def ghost_forward(model, x, nbs):
    """Train-mode forward with BN over consecutive groups of nbs samples (remainder: one group)."""
    model.train()
    if nbs >= x.shape[0]:
        return model(x)
    return torch.cat([model(g) for g in torch.split(x, nbs, dim=0)], dim=0)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def add_model_args(ap):
    """The architecture flags shared by this CLI and scripts/bench-peer.py."""
    ap.add_argument('--arch', choices=['resnet-cifar', 'resnet50'], default='resnet-cifar')
    ap.add_argument('--depth', type=int, default=20)
    ap.add_argument('--width', type=int, default=16)
    ap.add_argument('--in-ch', type=int, default=3)
    ap.add_argument('--classes', type=int, default=10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_model_args(ap)
    ap.add_argument('--count', action='store_true', help='print the parameter count')
    ap.add_argument('--names', action='store_true', help='print bnlab parameter names and shapes')
    a = ap.parse_args(argv)
    m = build_model(a.arch, a.depth, a.width, a.in_ch, a.classes)
    if a.names:
        for n, t in bnlab_params(m).items():
            print(n, list(t.shape))
    if a.count or not a.names:
        print(count_params(m))


if __name__ == '__main__':
    sys.exit(main())
