#!/usr/bin/python3
"""PyTorch twin of one `bnlab train` run: the same recipe on the same images, in PyTorch.

    /usr/bin/python3 scripts/torch_twin.py --config FILE [--config FILE2 ...] [--set key=value ...]
        --seed S --out DIR [--threads 2] [--quiet]

The config (a recipe such as configs/mini/base.yaml with --set overrides, or a resolved
results/<run>/config.yaml) is resolved by bnlab's own loader through scripts/subset-indices.ts, which
also names the images bnlab uses (data.train_limit / val_limit through bnlab's limitSet), bnlab's
normalization mean/std, and bnlab's deterministic evaluation orders for the seed. The twin reads the
same IDX files, checks their SHA-256 against bnlab's, and trains scripts/torch_resnet.py's model
(standard nn.BatchNorm2d; NBS < batch through ghost_forward: consecutive groups of NBS).

Writes DIR/config.yaml (the resolved recipe, seed = S, plus `framework: pytorch <version>`) and
DIR/metrics.csv, one row per epoch, with bnlab's column names and number format:
    epoch, lr, train_loss, train_err, val_err_precise, epoch_seconds, train_images_per_s,
    precise_seconds, train_err_nbs, val_err_minibatch, bn_mode, val_err_frozen
(errors in %, empty = not computed that epoch, as bnlab). One line per epoch on stdout.

Same as bnlab (by construction or checked):
  - data: the same training/validation images in bnlab's order (SHA-256 checked), normalized with
    bnlab's per-channel mean/std of the (limited) training set, (v/255 - mean)/std in float32.
  - augmentation (data.augment): offsets dy, dx uniform in [-pad_crop, pad_crop], out-of-image pixels
    raw 0 (zero padding before normalization), crop then horizontal flip with probability 1/2.
  - model: parameter names/shapes/count (scripts/torch_resnet.py); init distributions of bnlab's
    initParams: convs He-normal over fan-out, fc N(0, 0.01), biases/betas 0, gammas 1, the last BN
    gamma of each residual block 0 when model.zero_init_last_gamma.
  - BN: PyTorch's own nn.BatchNorm2d, run per group of bn.nbs consecutive samples of each total
    batch (biased batch variance, eps bn.eps); population statistics used as given (bnlab's are
    the unbiased variance).
  - SGD (torch.optim.SGD: d = g + wd*w; v = m*v + d; w -= lr*(nesterov ? d + m*v : v)), weight_decay
    on conv and fc weights, weight_decay_bn (null = weight_decay) on BN gamma/beta and the fc bias;
    the loss is the mean cross-entropy over the total batch; floor(n / batch_size) steps per epoch
    (the last partial batch dropped); lr per step = bnlab's learningRate(epoch + step/steps):
    base_lr * batch/256, step (x gamma at each of `steps`) or cosine, linear warmup from
    warmup_factor; the CSV's lr is the lr at the start of the epoch, as bnlab writes it.
  - PreciseBN (precise.*): the frozen model on min(N, n) training samples (augmented when
    precise.augment) in batches of B consecutive samples (the last smaller, weighted by its size),
    every BN layer's per-batch mean and biased variance (float32, as BN computes them) aggregated
    in float64 by bnlab's estimator:
    pooled  mean = sum_i c_i mu_i / C, var = C/(C-1) [sum_i c_i (mu_i^2 + var_i) / C - mean^2]
    mean-of-var var = sum_i c_i var_i c_i/(c_i - 1) / C,  c_i = elements per channel (B*H*W);
    run every precise.every epochs and after the last; val_err_precise = all validation images
    with those statistics.
  - FrozenBN (bn.frozen_last_epochs = K): at the start of epoch epochs-K, PreciseBN statistics become
    fixed; training normalizes with them (BN in eval mode, gradients through the fixed affine
    normalization); val_err_frozen then uses them; bn_mode = frozen.
  - val_err_minibatch (eval.minibatch): train-mode BN over groups of NBS validation images taken
    consecutively from bnlab's own test order for this seed (src/bn/modes.ts testOrder; the last
    group smaller), no statistics stored. train_err_nbs (eval.train_minibatch): the same on
    un-augmented training images, bnlab's fixed subset of eval.train_minibatch_samples for this
    seed, in its order (subset-indices.ts repeats the one expression in src/train/trainer.ts
    evaluateModes that picks it: it is not exported). train_err / train_loss: the running error and loss of the epoch's
    training steps (augmented, as trained). eval.every: evaluations every K epochs and the last.

Different by design:
  - randomness: PyTorch/NumPy generators seeded from --seed (init draws, epoch shuffles,
    augmentation draws, PreciseBN's samples and their augmentation); bnlab's mulberry32 streams are
    not reproduced. Same distributions, different draws: compare over several seeds. (bnlab's
    PreciseBN augments a sample exactly as training did in that epoch; the twin draws afresh.)
  - no EMA (no val_err_ema column): PyTorch's running statistics under ghost batches update once per
    NBS group, a different estimator from bnlab's EMA (once per SGD step, from one group:
    bn.ema_groups one); the twin sets BN momentum to 0 and uses the running buffers only to hold
    PreciseBN / FrozenBN statistics. bn.ema_decay and bn.ema_groups are therefore ignored.
  - arithmetic: PyTorch's float32 CPU kernels (summation order differs from bnlab's kernels).
  - epoch_seconds / train_images_per_s: this process's time (PyTorch, --threads threads;
    OMP_WAIT_POLICY defaults to PASSIVE: see the comment at the imports).
  - no checkpoints, resume, locks, metrics.jsonl, summary.json or train.log; the last partial
    epoch is not saved on Ctrl-C (exit 130).
  - not affecting the numbers, ignored: name, backend, threads, optim.micro_batch (the whole batch
    runs at once: the same math as bnlab's gradient accumulation), checkpoint*, data.prefetch and
    the imagefolder-only data keys.
Refused (exit 2, nothing run or written): any other dataset than fashion-mnist, fashion-mnist-mini,
mnist; data.corruption; bn.composition other than random (and so eval.composed); trace.layers;
PreciseBN with B >= N (bnlab's exact one-layer-at-a-time B = N); a batch larger than the training
set; any config key this script does not know; and whatever bnlab's own loader rejects (its
message, unchanged).
Exit codes: 0 done, 1 runtime error (data mismatch, divergence: loss non-finite or > max_loss),
2 usage/config, 130 interrupted.
"""
import argparse
import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import time

# libgomp's threads spin at every barrier by default. On this project's 2 cores shared with a bnlab
# training job, ResNet-20 training steps (batch 128, NBS 32, 2 threads) ran at 10-200 img/s spinning
# and a steady 130-200 img/s with passive waiting. An explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no scripts/__pycache__ in the repository
import torch_resnet as tr  # noqa: E402


def onednn_is_safe():
    """Debian's PyTorch runs its convolutions on the system oneDNN 2.6.3, whose AVX2 kernels
    corrupt the heap (issue 27: the twin aborted with "double free or corruption" on AVX2 machines
    and with ONEDNN_MAX_CPU_ISA=AVX2). Its AVX-512 kernels are the ones checked against bnlab."""
    isa = os.environ.get('ONEDNN_MAX_CPU_ISA', '').upper()
    try:
        avx512 = 'avx512f' in open('/proc/cpuinfo').read()
    except OSError:
        avx512 = False
    return avx512 and (isa in ('', 'ALL') or isa.startswith('AVX512'))


# Elsewhere PyTorch's own (non-oneDNN) convolutions: slower, the same math.
torch.backends.mkldnn.enabled = onednn_is_safe()

COLUMNS = ['epoch', 'lr', 'train_loss', 'train_err', 'val_err_precise', 'epoch_seconds', 'train_images_per_s',
           'precise_seconds', 'train_err_nbs', 'val_err_minibatch', 'bn_mode', 'val_err_frozen']

# Every config key, by what the twin does with it (IMPLEMENTED includes keys checked to hold the one
# value it implements). A key in neither set is refused (a newer bnlab
# knob the twin would silently ignore).
IMPLEMENTED = {
    'seed', 'epochs', 'max_loss',
    'data.name', 'data.path', 'data.train_limit', 'data.val_limit', 'data.augment.pad_crop', 'data.augment.flip',
    'model.arch', 'model.depth', 'model.width', 'model.zero_init_last_gamma',
    'bn.nbs', 'bn.eps', 'bn.frozen_last_epochs', 'bn.composition', 'bn.composition_classes',
    'optim.batch_size', 'optim.base_lr', 'optim.momentum', 'optim.nesterov', 'optim.weight_decay',
    'optim.weight_decay_bn', 'optim.schedule', 'optim.steps', 'optim.gamma', 'optim.warmup_epochs',
    'optim.warmup_factor',
    'precise.enabled', 'precise.every', 'precise.samples', 'precise.batch_size', 'precise.estimator',
    'precise.augment',
    'eval.batch_size', 'eval.every', 'eval.minibatch', 'eval.composed', 'eval.train_minibatch',
    'eval.train_minibatch_samples',
    'data.corruption', 'trace.layers', 'continuation.seed', 'continuation.after_epoch',
}
IGNORED = {
    'name', 'backend', 'threads', 'cuda.tf32', 'cuda.deterministic', 'checkpoint_every', 'checkpoint.keep_last', 'checkpoint.best_metric',
    'bn.ema_decay', 'bn.ema_groups', 'optim.micro_batch',
    'data.val_labels', 'data.image_size', 'data.workers', 'data.decoder', 'data.shrink_on_load', 'data.prefetch',
    'data.on_error', 'data.cache_dir', 'data.augment.scale', 'data.augment.ratio',
    'data.synthetic.classes', 'data.synthetic.train', 'data.synthetic.val', 'data.synthetic.size',
    'data.synthetic.channels', 'data.synthetic.seed',
    'trace.channels', 'trace.batches', 'trace.batch_size', 'trace.every_iters', 'trace.until_epoch',
    'log.every_steps', 'log.tensorboard', 'report.roles',
}
IDX_DATASETS = ('fashion-mnist', 'fashion-mnist-mini', 'mnist')


class UsageError(Exception):
    pass


class RunError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# config and data


def flat_keys(d, prefix=''):
    out = {}
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            out.update(flat_keys(v, key + '.'))
        else:
            out[key] = v
    return out


def check_supported(cfg, train_n):
    """Problems with the config the twin would otherwise silently get wrong (empty: fine)."""
    flat = flat_keys(cfg)
    problems = [f'{k}: unknown to the twin (a newer bnlab key?)' for k in flat if k not in IMPLEMENTED | IGNORED
                and not k.startswith('data.corruption.')]
    d, bn, p, ev = cfg['data'], cfg['bn'], cfg['precise'], cfg['eval']
    if d['name'] not in IDX_DATASETS:
        problems.append(f"data.name {d['name']}: the twin reads IDX datasets only ({', '.join(IDX_DATASETS)})")
    if d.get('corruption') is not None:
        problems.append('data.corruption: corrupted copies are not implemented (use null)')
    if (cfg.get('continuation') or {}).get('seed') is not None:
        problems.append('continuation.seed: other continuations of a fork are not implemented (use null)')
    if bn['composition'] != 'random':
        problems.append(f"bn.composition {bn['composition']}: only 'random' groups are implemented")
    if ev['composed']:
        problems.append('eval.composed: not implemented (use false)')
    if cfg['trace']['layers']:
        problems.append('trace.layers: the Fig. 2 trace is not implemented (use [])')
    if p['estimator'] not in ('pooled', 'mean-of-var'):
        problems.append(f"precise.estimator {p['estimator']}: unknown")
    if cfg['optim']['schedule'] not in ('step', 'cosine'):
        problems.append(f"optim.schedule {cfg['optim']['schedule']}: unknown")
    if cfg['model']['arch'] not in ('resnet-cifar', 'resnet50'):
        problems.append(f"model.arch {cfg['model']['arch']}: unknown")
    n_precise = min(p['samples'], train_n)
    if p['batch_size'] >= n_precise and (p['enabled'] or bn['frozen_last_epochs'] > 0):
        problems.append(f"precise.batch_size {p['batch_size']} >= N = {n_precise}: bnlab's exact B = N PreciseBN "
                        '(one pass per BN layer) is not implemented')
    if cfg['optim']['batch_size'] > train_n:
        problems.append(f"optim.batch_size {cfg['optim']['batch_size']} is larger than the {train_n} training images")
    return problems


def tsx_command():
    local = os.path.join(ROOT, 'node_modules', '.bin', 'tsx')
    return [local] if os.path.exists(local) else ['npx', '--no-install', 'tsx']


def bnlab_data(configs, sets, seed):
    """scripts/subset-indices.ts's answer: resolved config, dataset facts, indices, eval orders."""
    cmd = tsx_command() + [os.path.join(HERE, 'subset-indices.ts')]
    for c in configs:
        cmd += ['-c', c]
    for s in sets:
        cmd += ['--set', s]
    if seed is not None:
        cmd += ['--seed', str(seed)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        msg = r.stderr.strip() or f'exit {r.returncode}'
        if r.returncode == 2:
            raise UsageError(msg)
        raise RunError(f'scripts/subset-indices.ts failed: {msg}')
    return json.loads(r.stdout)


def read_idx(path):
    with open(path, 'rb') as f:
        buf = f.read()
    if buf[:2] == b'\x1f\x8b':
        buf = gzip.decompress(buf)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] != 0x08:
        raise RunError(f'{path}: not an unsigned-byte IDX file')
    ndim = buf[3]
    dims = [int.from_bytes(buf[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    data = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise RunError(f'{path}: {data.size} bytes of data for dims {dims}')
    return data.reshape(dims)


def idx_file(d, base):
    for name in (base + '.gz', base):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise RunError(f'{d} lacks {base}[.gz]')


def load_split(source, images_base, labels_base, indices, sha, what):
    images = read_idx(idx_file(source, images_base))
    labels = read_idx(idx_file(source, labels_base)).astype(np.int64)
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        images, labels = images[idx], labels[idx]
    images = np.ascontiguousarray(images[..., None] if images.ndim == 3 else images)  # NHWC
    got = hashlib.sha256(images.tobytes() + labels.astype(np.uint8).tobytes()).hexdigest()
    if got != sha:
        raise RunError(f'{what} images differ from bnlab\'s (sha256 {got[:12]}... vs {sha[:12]}...)')
    return images, labels


# ---------------------------------------------------------------------------------------------
# the recipe


def learning_rate(o, epoch, total_epochs):
    """bnlab's learningRate (src/train/schedule.ts)."""
    lr = o['base_lr'] * o['batch_size'] / 256
    if o['schedule'] == 'step':
        for s in o['steps']:
            if epoch >= s:
                lr *= o['gamma']
    else:
        lr *= 0.5 * (1 + math.cos(math.pi * min(epoch, total_epochs) / total_epochs))
    if epoch < o['warmup_epochs']:
        t = epoch / o['warmup_epochs']
        lr *= o['warmup_factor'] + (1 - o['warmup_factor']) * t
    return lr


class Images:
    """uint8 NHWC images -> normalized NCHW float32 batches, with bnlab's pad-crop/flip."""

    def __init__(self, images, labels, mean, std, pad, flip):
        self.images, self.labels = images, labels
        self.n, self.h, self.w, self.c = images.shape
        v = np.arange(256, dtype=np.float64) / 255
        # bnlab's lookup table: (v/255 - mean[c]) / std[c] in float64, stored as float32.
        self.lut = np.stack([((v - mean[c]) / std[c]).astype(np.float32) for c in range(self.c)])
        self.pad, self.flip = pad, flip
        self.padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad > 0 else images

    def _normalize(self, u8):
        out = np.empty(u8.shape, dtype=np.float32)
        for c in range(self.c):
            out[..., c] = self.lut[c][u8[..., c]]
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    def batch(self, idx, rng=None):
        """Images idx (positions); augmented with fresh draws from rng when given. Returns (x NCHW, y)."""
        idx = np.asarray(idx, dtype=np.int64)
        if rng is None:
            return self._normalize(self.images[idx]), torch.from_numpy(self.labels[idx])
        b, p = len(idx), self.pad
        oy = rng.integers(0, 2 * p + 1, size=b)
        ox = rng.integers(0, 2 * p + 1, size=b)
        f = rng.random(b) < 0.5
        return self.augmented(idx, oy, ox, f & self.flip)

    def augmented(self, idx, oy, ox, flip):
        """bnlab's pad-crop-flip with given draws: offsets oy, ox in [0, 2*pad] (dy = oy - pad),
        flip per image. out(r, c) = src(r + dy, c' + dx), c' = W-1-c when flipped; outside = raw 0."""
        idx = np.asarray(idx, dtype=np.int64)
        oy, ox, flip = np.asarray(oy), np.asarray(ox), np.asarray(flip, dtype=bool)
        rows = oy[:, None] + np.arange(self.h)[None, :]
        cols_fwd = np.arange(self.w)[None, :]
        cols = ox[:, None] + np.where(flip[:, None], self.w - 1 - cols_fwd, cols_fwd)
        u8 = self.padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]
        return self._normalize(u8), torch.from_numpy(self.labels[idx])


def set_bn(model, training):
    for m in tr.bn_layers(model).values():
        m.train(training)


def param_groups(model, wd, wd_bn):
    """bnlab's weight decay split: conv and fc weights get weight_decay, the rest weight_decay_bn."""
    decay, other = [], []
    for name, p in model.named_parameters():
        mod = model.get_submodule(name.rpartition('.')[0])
        (decay if isinstance(mod, (nn.Conv2d, nn.Linear)) and name.endswith('.weight') else other).append(p)
    return [{'params': decay, 'weight_decay': wd}, {'params': other, 'weight_decay': wd_bn}]


@torch.no_grad()
def precise_bn(model, data, idx, B, estimator, per, rng):
    """Population statistics of the frozen model on images idx (positions) in batches of B."""
    layers = tr.bn_layers(model)
    acc = {n: [0.0, None, None] for n in layers}  # count, sum c*mu, sum (c*(mu^2+var) | c*var*c/(c-1))

    def hook(name):
        def f(_m, inp):
            # the group's moments in float32 (as BN computes them, as bnlab does), summed in float64
            x = inp[0].detach()
            c = x.shape[0] * x.shape[2] * x.shape[3]
            var, mu = (t.double() for t in torch.var_mean(x, dim=(0, 2, 3), unbiased=False))
            second = c * (mu * mu + var) if estimator == 'pooled' else c * var * (c / (c - 1) if c > 1 else 1.0)
            a = acc[name]
            a[0] += c
            a[1] = c * mu if a[1] is None else a[1] + c * mu
            a[2] = second if a[2] is None else a[2] + second
        return f

    hooks = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        model.train()
        for start in range(0, len(idx), per):
            x, _ = data.batch(idx[start:start + per], rng)
            tr.ghost_forward(model, x, B)
    finally:
        for h in hooks:
            h.remove()
    out = {}
    for name, (count, s1, s2) in acc.items():
        mean = s1 / count
        if estimator == 'pooled':
            bessel = count / (count - 1) if count > 1 else 1.0
            var = torch.clamp(bessel * (s2 / count - mean * mean), min=0)
        else:
            var = s2 / count
        out[name] = (mean.float(), var.float())
    return out


@torch.no_grad()
def error_population(model, data, stats, batch):
    tr.load_population(model, stats)
    model.eval()
    wrong = 0
    for start in range(0, data.n, batch):
        x, y = data.batch(np.arange(start, min(data.n, start + batch)))
        wrong += (model(x).argmax(1) != y).sum().item()
    return 100.0 * wrong / data.n


@torch.no_grad()
def error_minibatch(model, data, order, nbs, eval_batch):
    """Train-mode BN over consecutive groups of nbs of `order` (the last smaller); nothing stored."""
    per = max(nbs, (eval_batch // nbs) * nbs)
    order = np.asarray(order, dtype=np.int64)
    wrong = 0
    for start in range(0, len(order), per):
        x, y = data.batch(order[start:start + per])
        wrong += (tr.ghost_forward(model, x, nbs).argmax(1) != y).sum().item()
    return 100.0 * wrong / len(order)


def fmt(v):
    """bnlab's metrics.csv cell: '' for None, integers as such, else JS toPrecision(6)."""
    if v is None:
        return ''
    if isinstance(v, str):
        return v
    if float(v).is_integer():
        return str(int(v))
    m, e = f'{v:.5e}'.split('e')
    e = int(e)
    if e < -6 or e >= 6:
        return f"{m}e{'+' if e >= 0 else '-'}{abs(e)}"
    return f'{v:.{5 - e}f}'


def pct(v):
    return '-' if v is None else f'{v:.2f}%'


# ---------------------------------------------------------------------------------------------


def train(cfg, info, out, quiet):
    ds = info['dataset']
    seed, epochs = cfg['seed'], cfg['epochs']
    d, m, bn, o, pr, ev = cfg['data'], cfg['model'], cfg['bn'], cfg['optim'], cfg['precise'], cfg['eval']
    src = ds['source']
    tri, trl = load_split(src, 'train-images-idx3-ubyte', 'train-labels-idx1-ubyte', info['train_indices'], ds['train_sha256'], 'training')
    vai, val = load_split(src, 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', info['val_indices'], ds['val_sha256'], 'validation')
    pad = d['augment']['pad_crop']
    train_set = Images(tri, trl, ds['mean'], ds['std'], pad, d['augment']['flip'])
    val_set = Images(vai, val, ds['mean'], ds['std'], 0, False)
    n = train_set.n
    bs, nbs = o['batch_size'], bn['nbs']
    steps = n // bs
    n_precise = min(pr['samples'], n)

    torch.manual_seed(seed)
    model = tr.build_model(m['arch'], m['depth'], m['width'], ds['channels'], ds['num_classes'], eps=bn['eps'],
                           zero_init_last_gamma=m['zero_init_last_gamma'])
    for mod in tr.bn_layers(model).values():
        mod.momentum = 0.0  # running buffers only hold PreciseBN/FrozenBN statistics (no EMA)
    wd_bn = o['weight_decay'] if o['weight_decay_bn'] is None else o['weight_decay_bn']
    opt = torch.optim.SGD(param_groups(model, o['weight_decay'], wd_bn), lr=learning_rate(o, 0, epochs),
                          momentum=o['momentum'], nesterov=o['nesterov'])
    rng = lambda *tag: np.random.default_rng([seed, *tag])  # noqa: E731
    forward_batch = max(bs if o['micro_batch'] is None else o['micro_batch'], ev['batch_size'])
    per_precise = max(pr['batch_size'], (forward_batch // pr['batch_size']) * pr['batch_size'])

    def precise(epoch):
        r = rng(0x70726563, epoch)
        idx = r.permutation(n)[:n_precise]
        return precise_bn(model, train_set, idx, pr['batch_size'], pr['estimator'], per_precise, r if pr['augment'] else None)

    frozen_from = epochs - bn['frozen_last_epochs'] if bn['frozen_last_epochs'] > 0 else math.inf
    frozen_stats = None
    pop_stats = None
    orders = info['eval_orders']
    csv_path = os.path.join(out, 'metrics.csv')
    with open(csv_path, 'w') as f:
        f.write(','.join(COLUMNS) + '\n')
    log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    log(f"torch twin: {m['arch']}{'-' + str(m['depth']) if m['arch'] == 'resnet-cifar' else ''} width {m['width']} "
        f"({tr.count_params(model)} parameters), {n} training / {val_set.n} validation images from {src}, "
        f"seed {seed}, {torch.get_num_threads()} threads, PyTorch {torch.__version__}")

    for epoch in range(epochs):
        frozen = epoch >= frozen_from
        if frozen and frozen_stats is None:
            frozen_stats = precise(epoch)
            log(f'epoch {epoch + 1}: switching to FrozenBN (population statistics from PreciseBN on {n_precise} samples)')
        t0 = time.perf_counter()
        r = rng(0x7472, epoch)
        order = r.permutation(n)
        loss_sum, errors, seen = 0.0, 0, 0
        if frozen:
            tr.load_population(model, frozen_stats)
        for step in range(steps):
            x, y = train_set.batch(order[step * bs:(step + 1) * bs], r)
            lr = learning_rate(o, epoch + step / steps, epochs)
            for g in opt.param_groups:
                g['lr'] = lr
            if frozen:
                model.train()
                set_bn(model, False)  # normalize with the fixed statistics, gradients flow through them
                logits = model(x)
            else:
                logits = tr.ghost_forward(model, x, nbs)
            losses = F.cross_entropy(logits, y, reduction='none')
            loss = losses.mean()
            lsum = losses.sum().item()
            if not math.isfinite(lsum) or lsum / len(y) > cfg['max_loss']:
                raise RunError(f"training diverged at epoch {epoch + 1}, step {step + 1}: loss {lsum / len(y)} (max_loss {cfg['max_loss']})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += lsum
            errors += (logits.detach().argmax(1) != y).sum().item()
            seen += len(y)
        train_seconds = time.perf_counter() - t0
        t_end = time.perf_counter()

        last = epoch + 1 == epochs
        precise_seconds = None
        precise_ran = False
        if frozen:
            pop_stats = frozen_stats
        elif pr['enabled'] and ((epoch + 1) % pr['every'] == 0 or last):
            tp = time.perf_counter()
            pop_stats = precise(epoch)
            precise_seconds = time.perf_counter() - tp
            precise_ran = True
        row = {c: None for c in COLUMNS}
        row.update(epoch=epoch + 1, lr=learning_rate(o, epoch, epochs), train_loss=loss_sum / seen,
                   train_err=100.0 * errors / seen, train_images_per_s=seen / train_seconds,
                   precise_seconds=precise_seconds, bn_mode='frozen' if frozen else 'batch')
        if (epoch + 1) % ev['every'] == 0 or last:
            if pop_stats is not None and (frozen or precise_ran):
                row['val_err_frozen' if frozen else 'val_err_precise'] = error_population(model, val_set, pop_stats, ev['batch_size'])
            if ev['minibatch']:
                row['val_err_minibatch'] = error_minibatch(model, val_set, orders['val_minibatch'], nbs, ev['batch_size'])
            if ev['train_minibatch']:
                row['train_err_nbs'] = error_minibatch(model, train_set, orders['train_minibatch'], nbs, ev['batch_size'])
        row['epoch_seconds'] = train_seconds + (time.perf_counter() - t_end)
        with open(csv_path, 'a') as f:
            f.write(','.join(fmt(row[c]) for c in COLUMNS) + '\n')
        extra = '  '.join(s for s in [
            f"mini-batch {pct(row['val_err_minibatch'])}" if row['val_err_minibatch'] is not None else '',
            f"train(NBS) {pct(row['train_err_nbs'])}" if row['train_err_nbs'] is not None else '',
        ] if s)
        log(f"epoch {epoch + 1}/{epochs}  lr {row['lr']:.4f}  loss {row['train_loss']:.4f}  train_err {pct(row['train_err'])}  "
            f"val_err {'FrozenBN' if frozen else 'PreciseBN'} {pct(row['val_err_frozen' if frozen else 'val_err_precise'])}{'  ' + extra if extra else ''}  "
            f"{row['train_images_per_s']:.0f} img/s  {row['epoch_seconds']:.1f} s")


def write_config(cfg, out):
    doc = dict(cfg)
    doc['framework'] = f'pytorch {torch.__version__}'
    path = os.path.join(out, 'config.yaml')
    try:
        import yaml
        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    except ImportError:  # JSON is YAML
        text = json.dumps(doc, indent=2) + '\n'
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                 epilog='See the module docstring for what matches bnlab and what differs.')
    ap.add_argument('-c', '--config', action='append', default=[], help='bnlab config YAML (repeatable: merged in order, as bnlab)')
    ap.add_argument('--set', action='append', default=[], metavar='KEY=VALUE', help='override a config key, as bnlab --set (repeatable)')
    ap.add_argument('--seed', type=int, default=None, help="seed (default: the config's); also picks bnlab's evaluation orders")
    ap.add_argument('--out', required=True, help='output folder (metrics.csv and config.yaml are overwritten)')
    ap.add_argument('--threads', type=int, default=2, help='torch.set_num_threads (default 2)')
    ap.add_argument('--quiet', action='store_true', help='no per-epoch lines')
    a = ap.parse_args(argv)
    if a.seed is not None and a.seed < 0:
        ap.error('--seed must be >= 0')
    if a.threads < 1:
        ap.error('--threads must be >= 1')
    try:
        info = bnlab_data(a.config, a.set, a.seed)
        cfg = info['config']
        problems = check_supported(cfg, info['dataset']['train_n'])
        if problems:
            raise UsageError('the twin does not implement this config:\n  ' + '\n  '.join(problems))
        torch.set_num_threads(a.threads)
        os.makedirs(a.out, exist_ok=True)
        write_config(cfg, a.out)
        train(cfg, info, a.out, a.quiet)
    except UsageError as e:
        print(f'torch_twin: {e}', file=sys.stderr)
        return 2
    except RunError as e:
        print(f'torch_twin: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('torch_twin: interrupted', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
