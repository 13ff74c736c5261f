#!/usr/bin/python3
"""PyTorch peer for `bnlab bench --peer`: the same ResNet (scripts/torch_resnet.py, identical
architecture and parameter names), input size, batch, BN grouping and thread count, timed the
way bnlab times itself. Prints one JSON object.

  training   forward (train mode, BN over groups of nbs) + cross-entropy + backward + SGD
             momentum step; one warm-up step, median of --steps
  inference  eval mode, no grad, --infer-n samples in batches of --infer-batch, median of --infer-passes passes
  precise    PreciseBN pass: train-mode forward without grad over --precise-n samples in batches
             of --precise-batch (BN statistics of each batch; the aggregation is negligible)

--lockstep (used by `bnlab bench --peer --lockstep`): after the warm-up step, print {"ready": ...}
and take commands on stdin, one per line: `step` runs one timed training step and prints
{"ms": ...}; `infer` one timed inference pass (the first one warms up first) and prints {"ms": ...};
`finish` runs PreciseBN (and inference, if no `infer` came) and prints the result. bnlab
alternates its own steps and passes with these, so a slow minute of a shared host hits both sides
alike.

--device cuda (bnlab bench passes it when bnlab runs on its cuda backend): model and data on the
GPU, cuDNN autotuning on (torch.backends.cudnn.benchmark, as bnlab's addon picks each
convolution's algorithm by measuring), TF32 as --tf32 says for convolutions and matmuls alike
(bnlab's cuda.tf32 covers both), and every timer stops after torch.cuda.synchronize().

Run with Debian's /usr/bin/python3 (python3-torch), e.g.
  /usr/bin/python3 scripts/bench-peer.py --arch resnet-cifar --depth 20 --size 32 --in-ch 3 \
      --classes 10 --batch 128 --nbs 128 --threads 2
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_resnet import add_model_args, build_model, count_params, ghost_forward  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_model_args(ap)
    ap.add_argument('--size', type=int, default=32)
    ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--nbs', type=int, default=0, help='BN group size (0 = batch)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--eps', type=float, default=1e-5)
    ap.add_argument('--infer-n', type=int, default=256)
    ap.add_argument('--infer-passes', type=int, default=5, help='timed passes over the --infer-n samples; the median counts')
    ap.add_argument('--infer-batch', type=int, default=256)
    ap.add_argument('--precise-n', type=int, default=512)
    ap.add_argument('--precise-batch', type=int, default=32)
    ap.add_argument('--skip', default='', help='comma list of phases to skip: train,infer,precise')
    ap.add_argument('--lockstep', action='store_true', help='training steps and inference passes on command from stdin (see above)')
    ap.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    ap.add_argument('--tf32', type=int, choices=[0, 1], default=1, help='with --device cuda: TF32 tensor cores for convolutions and matmuls')
    a = ap.parse_args(argv)
    if a.infer_passes < 1:
        ap.error('--infer-passes must be at least 1')
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    skip = set(s for s in a.skip.split(',') if s)
    dev = torch.device(a.device)
    if a.device == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = bool(a.tf32)
    # GPU work is asynchronous: a timer reads the clock only after the device has finished
    sync = torch.cuda.synchronize if a.device == 'cuda' else (lambda: None)
    model = build_model(a.arch, a.depth, a.width, a.in_ch, a.classes, eps=a.eps).to(dev)
    nbs = a.nbs if a.nbs > 0 else a.batch
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-5)
    out = {
        'framework': f'pytorch {torch.__version__}' + (f' on {torch.cuda.get_device_name()}' if a.device == 'cuda' else ''),
        'threads': torch.get_num_threads(),
        'params': count_params(model),
        'input': f'{a.size}x{a.size}x{a.in_ch}',
        'batch': a.batch,
        'nbs': nbs,
    }

    infer_xs = []

    def infer_pass():
        """One timed pass over --infer-n samples in eval mode; the first call warms up first."""
        model.eval()
        with torch.no_grad():
            if not infer_xs:
                infer_xs.append(torch.randn(a.infer_n, a.in_ch, a.size, a.size, device=dev))
                model(infer_xs[0][: min(a.infer_batch, a.infer_n)])  # warm-up
            sync()
            t = time.perf_counter()
            for s in range(0, a.infer_n, a.infer_batch):
                model(infer_xs[0][s: s + a.infer_batch]).argmax(1)
            sync()
            dt = time.perf_counter() - t
        model.train()
        return dt

    infer_times = []
    if 'train' not in skip:
        x = torch.randn(a.batch, a.in_ch, a.size, a.size, device=dev)
        y = torch.randint(0, a.classes, (a.batch,), device=dev)
        def step():
            sync()
            t = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(ghost_forward(model, x, nbs), y)
            loss.backward()
            opt.step()
            sync()
            return time.perf_counter() - t

        step()  # warm-up
        times = []
        if a.lockstep:
            print(json.dumps({'ready': True}), flush=True)
            finished = False
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == 'finish':
                    finished = True
                    break
                if cmd == 'step':
                    times.append(step())
                    print(json.dumps({'ms': round(times[-1] * 1000, 2)}), flush=True)
                elif cmd == 'infer':
                    infer_times.append(infer_pass())
                    print(json.dumps({'ms': round(infer_times[-1] * 1000, 2)}), flush=True)
                else:
                    raise SystemExit(f'bench-peer.py --lockstep: unknown command {cmd!r} (step, infer, finish)')
            if not finished:  # bnlab went away: no orphan inference run
                raise SystemExit('bench-peer.py --lockstep: stdin closed before finish')
            if not times:
                raise SystemExit('bench-peer.py --lockstep: no step was asked for')
            out['train_steps_ms'] = [round(t * 1000, 2) for t in times]
            out['lockstep'] = True
        else:
            times = [step() for _ in range(a.steps)]
        ms = statistics.median(times) * 1000
        out['train_step_ms'] = round(ms, 1)
        out['train_images_per_s'] = round(a.batch * 1000 / ms, 1)

    if 'infer' not in skip:
        # lockstep: the passes bnlab asked for, each beside one of its own; else median of our own
        passes = infer_times or [infer_pass() for _ in range(a.infer_passes)]
        out['inference_images_per_s'] = round(a.infer_n / statistics.median(passes), 1)
        if infer_times:
            out['inference_passes_ms'] = [round(t * 1000, 2) for t in infer_times]

    if 'precise' not in skip:
        model.train()
        xs = torch.randn(a.precise_n, a.in_ch, a.size, a.size, device=dev)
        with torch.no_grad():
            sync()
            t = time.perf_counter()
            for s in range(0, a.precise_n, a.precise_batch):
                model(xs[s: s + a.precise_batch])
            sync()
            dt = time.perf_counter() - t
        out['precise_seconds'] = round(dt, 2)
        out['precise_images_per_s'] = round(a.precise_n / dt, 1)

    out['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


if __name__ == '__main__':
    sys.exit(main())
