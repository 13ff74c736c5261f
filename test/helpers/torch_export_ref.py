"""PyTorch side of test/export.test.ts: load a `bnlab export` file into the reference model with
load_state_dict(strict=True) and compute eval-mode logits on given images.

Usage: /usr/bin/python3 torch_export_ref.py <dir>
<dir>/case.json: {"file": export path, "model": "torchvision" | "torch_resnet", "arch", "depth",
"width", "in_ch", "classes", "eps", "x_shape": [N, H, W, C]}; <dir>/x.bin: float32 NHWC images.
Writes <dir>/out.json: {"metadata", "keys", "f32": logits (float32 model), "f64": logits (the same
model in float64)}.

The file is read by the safetensors spec, independently of bnlab's writer and strictly (Debian 12
has no python3-safetensors): u64 LE header length, JSON header, dtype and shape against the byte
ranges, ranges contiguous from 0 and covering the data exactly.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'scripts'))
import torch_resnet  # noqa: E402

DTYPES = {'F32': np.dtype('<f4'), 'I64': np.dtype('<i8')}


def read_safetensors(path):
    buf = open(path, 'rb').read()
    n = int.from_bytes(buf[:8], 'little')
    assert 8 + n <= len(buf), 'header runs past the end'
    text = buf[8:8 + n].decode('utf-8')
    assert text.startswith('{'), 'header is not a JSON object'
    header = json.loads(text)
    metadata = header.pop('__metadata__', {})
    assert all(isinstance(v, str) for v in metadata.values()), '__metadata__ values must be strings'
    data = buf[8 + n:]
    spans, out = [], {}
    for name, e in header.items():
        dt = DTYPES[e['dtype']]
        begin, end = e['data_offsets']
        count = math.prod(e['shape'])
        assert end - begin == count * dt.itemsize, f'{name}: byte range does not fit dtype and shape'
        spans.append((begin, end))
        arr = np.frombuffer(data, dtype=dt, count=count, offset=begin).reshape(e['shape'])
        out[name] = torch.from_numpy(arr.copy())
    pos = 0
    for begin, end in sorted(spans):
        assert begin == pos, f'hole or overlap at byte {begin}'
        pos = end
    assert pos == len(data), 'data past the last tensor'
    return out, metadata


def build(c):
    if c['model'] == 'torchvision':
        import torchvision
        return torchvision.models.resnet50(num_classes=c['classes'])
    return torch_resnet.build_model(c['arch'], c['depth'], c['width'], c['in_ch'], c['classes'], eps=c['eps'])


def main(d):
    c = json.load(open(os.path.join(d, 'case.json')))
    sd, metadata = read_safetensors(c['file'])
    model = build(c)
    model.load_state_dict(sd, strict=True)
    model.eval()
    x = torch.from_numpy(np.fromfile(os.path.join(d, 'x.bin'), dtype='<f4').reshape(c['x_shape'])).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        f32 = model(x)
        f64 = model.double()(x.double())
    bn_eps = {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    json.dump({'metadata': metadata, 'keys': len(sd), 'eps': sorted(bn_eps), 'f32': f32.flatten().tolist(), 'f64': f64.flatten().tolist()}, open(os.path.join(d, 'out.json'), 'w'))


if __name__ == '__main__':
    main(sys.argv[1])
