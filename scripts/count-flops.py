#!/usr/bin/python3
"""Forward FLOPs per image of a bnlab ResNet (scripts/torch_resnet.py, the same architecture as
bnlab's): 2 x multiply-adds of every convolution and the fc layer, counted with forward hooks on
one image (BN, ReLU, adds and pooling not counted: < 1% for these models). Training arithmetic
is counted as 3x forward (forward, gradient w.r.t. inputs, gradient w.r.t. weights).

  /usr/bin/python3 scripts/count-flops.py --arch resnet-cifar --depth 20 --size 32
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
from torch_resnet import add_model_args, build_model  # noqa: E402


def forward_flops(model, in_ch, size):
    total = [0]

    def conv(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += 2 * out.numel() * k

    def fc(m, inp, out):
        total[0] += 2 * out.numel() * m.in_features

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
        elif isinstance(m, torch.nn.Linear):
            m.register_forward_hook(fc)
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_ch, size, size))
    return total[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_model_args(ap)
    ap.add_argument('--size', type=int, default=32)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    f = forward_flops(build_model(a.arch, a.depth, a.width, a.in_ch, a.classes), a.in_ch, a.size)
    print(f'{a.arch} depth {a.depth} width {a.width} {a.size}x{a.size}x{a.in_ch}: forward {f / 1e6:.1f} MFLOP/image, '
          f'training (3x) {3 * f / 1e6:.1f} MFLOP/image')


if __name__ == '__main__':
    sys.exit(main())
