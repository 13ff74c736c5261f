#!/usr/bin/python3
"""Float64 PyTorch reference for test/torch-crosscheck.test.ts.

Usage: /usr/bin/python3 scripts/torch_crosscheck.py <dir>

Reads <dir>/input.json + <dir>/input.bin (float32, little-endian). input.json:
  {"model": {"arch", "depth", "width", "in_ch", "classes"}, "eps", "nbs",
   "tensors": {name: {"shape": [...], "offset": <element offset into input.bin>}}}
with tensors "x" (NHWC), "R" ([N, classes]), "param/<bnlab name>" (bnlab layouts),
"pop_mean/<bn layer>", "pop_var/<bn layer>".

Writes <dir>/output.json + <dir>/output.bin (float64), same "tensors" format, plus
"param_count" and "param_shapes" (bnlab names and layouts):
  logits_train       train mode, BN over consecutive groups of nbs samples
  stat_mean/<layer>  [G, C] each group's batch mean at that BN layer's input
  stat_var/<layer>   [G, C] biased variance
  grad/<name>        d sum(logits_train * R) / d param, bnlab layout
  logits_eval        eval mode with running stats = pop_mean/pop_var
  grad_frozen/<param> gradients of sum(logits_eval * R) in eval mode (FrozenBN training)
  f32/logits_train, f32/logits_eval, f32/grad/<name>: the same computed in float32
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_resnet as tr  # noqa: E402


def compute(m, eps, nbs, get, names, dtype):
    model = tr.build_model(m['arch'], m['depth'], m['width'], m['in_ch'], m['classes'], eps=eps).to(dtype)
    tr.load_bnlab_params(model, {n: get('param/' + n) for n in names})
    x = get('x').permute(0, 3, 1, 2).contiguous().to(dtype)  # NHWC -> NCHW
    R = get('R').to(dtype)

    # Per-group batch statistics, recorded at each BN input (one call per group, in order).
    stats = {n: ([], []) for n in tr.bn_layers(model)}
    hooks = []
    for name, mod in tr.bn_layers(model).items():
        def hook(_m, inp, name=name):
            if _m.training:
                v = inp[0].detach()
                stats[name][0].append(v.mean(dim=(0, 2, 3)))
                stats[name][1].append(v.var(dim=(0, 2, 3), unbiased=False))
        hooks.append(mod.register_forward_pre_hook(hook))

    model.zero_grad()
    logits = tr.ghost_forward(model, x, nbs)
    (logits * R).sum().backward()
    for h in hooks:
        h.remove()
    grads = {n: g.detach().clone() for n, g in tr.bnlab_grads(model).items()}

    tr.load_population(model, {n: (get('pop_mean/' + n), get('pop_var/' + n)) for n in tr.bn_layers(model)})
    model.eval()
    with torch.no_grad():
        logits_eval = model(x)
    # FrozenBN training: gradients through the fixed normalization (no batch-statistics terms).
    model.zero_grad()
    (model(x) * R).sum().backward()

    out = {'_model': model, 'logits_train': logits.detach(), 'logits_eval': logits_eval}
    for n, (means, vars_) in stats.items():
        out['stat_mean/' + n] = torch.stack(means)
        out['stat_var/' + n] = torch.stack(vars_)
    for n, g in grads.items():
        out['grad/' + n] = g
    for n, g in tr.bnlab_grads(model).items():
        out['grad_frozen/' + n] = g
    return out


def main(d):
    with open(os.path.join(d, 'input.json')) as f:
        hdr = json.load(f)
    blob = np.fromfile(os.path.join(d, 'input.bin'), dtype='<f4')

    def get(name):
        t = hdr['tensors'][name]
        size = int(np.prod(t['shape'])) if t['shape'] else 1
        return torch.from_numpy(blob[t['offset']:t['offset'] + size].astype(np.float64).reshape(t['shape']))

    m = hdr['model']
    eps, nbs = float(hdr['eps']), int(hdr['nbs'])
    names = [k[len('param/'):] for k in hdr['tensors'] if k.startswith('param/')]
    out = compute(m, eps, nbs, get, names, torch.float64)
    # The same in float32: how far PyTorch's own float32 is from float64 (the conditioning of the
    # case), reported next to bnlab's error by the test.
    out.update({'f32/' + k: v for k, v in compute(m, eps, nbs, get, names, torch.float32).items()
                if not k.startswith('stat_')})
    model = out.pop('_model')
    out.pop('f32/_model')

    tensors, chunks, off = {}, [], 0
    for k, t in out.items():
        a = np.ascontiguousarray(t.detach().numpy(), dtype='<f8')
        tensors[k] = {'shape': list(a.shape), 'offset': off}
        chunks.append(a.ravel())
        off += a.size
    np.concatenate(chunks).tofile(os.path.join(d, 'output.bin'))
    res = {
        'torch': torch.__version__,
        'param_count': tr.count_params(model),
        'param_shapes': {n: list(t.shape) for n, t in tr.bnlab_params(model).items()},
        'tensors': tensors,
    }
    with open(os.path.join(d, 'output.json'), 'w') as f:
        json.dump(res, f)


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: torch_crosscheck.py <dir>')
    main(sys.argv[1])
