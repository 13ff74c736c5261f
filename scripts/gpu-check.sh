#!/usr/bin/env bash
# The GPU check: everything bnlab's cuda backend must show on a real GPU, in one command that fits
# a 15-minute device window on a bare machine (no node, no network): at most 9 minutes, each step
# under its own timeout, every step recorded as PASS, FAIL or SKIPPED with the reason, one report.
#
# Here, first:   bash scripts/gpu-bundle.sh        (builds gpu-bundle/, ignored by git, ~40 MiB)
# Then, through the device tool, in the repository root there:
#   run(command="bash scripts/gpu-check.sh", carry=["gpu-bundle"], timeout_s=600)
# It writes $OUT/gpu-check.md (the report) and $OUT/gpu-check.log (every step's full output).
# Without $OUT (here) both go to ./gpu-check-out/. --dry-run stops before the first step that
# needs a GPU; so does a machine without one (that step FAILs). Exit 0 only when all steps pass.
#
# Steps: environment (nvidia-smi, driver, glibc, torch + CUDA + cuDNN, the nvidia wheels) - unpack
# node and node_modules into a work folder - build the CUDA addon with g++ and the bundled Node
# headers - GPU present - bnlab doctor - gpu-golden --check with TF32 off and on - gpu-golden --step
# (the training runs) - gpu-torch-check (one step against PyTorch float64) - a 1-epoch ImageFolder
# run with PreciseBN and every evaluation mode - bnlab bench ResNet-50 224x224 batch 256 NBS 32
# beside PyTorch on the same GPU. What each checks and its tolerances: docs/gpu.md.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0; [[ "${1:-}" == --dry-run ]] && DRY=1
WINDOW=540 # seconds: 9 minutes
B=$PWD/gpu-bundle
W=${TMPDIR:-/tmp}/bnlab-gpu-check # node, node_modules and the build go here, never into the carried bundle
OUT=${OUT:-$PWD/gpu-check-out}
rm -rf "$W" && mkdir -p "$W/logs" "$OUT"
export PATH="$W/node/bin:$PATH" BNLAB_CUDA_CACHE="$W/cuda-cache" BNLAB_BACKEND_TIMEOUT_S=300 PYTHONUNBUFFERED=1
PY=$(command -v python3 || echo python3)
export BNLAB_PYTHON=$PY B W
BNLAB="node $W/app/bnlab.mjs"
STOP="" SKIP="" N=0 TABLE="" SECTIONS=""
[ -d "$B" ] || STOP="no gpu-bundle/ here: run bash scripts/gpu-bundle.sh on the development machine and carry it (carry: [\"gpu-bundle\"])" SKIP="no gpu-bundle/"

# step NAME CAP COMMAND...: runs under min(CAP, what is left of the window); the reason of a FAIL
# is its output's last line. Once STOP holds a reason every later step is SKIPPED (SKIP says why in
# short), except with ALWAYS=1; a step run with STOP_ON_FAIL=1 sets them when it fails.
step() {
  local name=$1 cap=$2; shift 2
  N=$((N + 1))
  local log=$W/logs/$(printf %02d $N).log left=$((WINDOW - SECONDS)) result why t0=$SECONDS
  if [[ -n $STOP && ${ALWAYS:-0} == 0 ]]; then result=SKIPPED why=$SKIP
  elif ((left < 15)); then result=SKIPPED why="not enough of the ${WINDOW}-s window left (${left} s)"
  else
    local t=$((cap < left - 5 ? cap : left - 5))
    echo "== $name (timeout $t s)" >&2
    timeout -k 10 "$t" "$@" >"$log" 2>&1
    local rc=$?
    if ((rc == 0)); then result=PASS why=""
    elif ((rc == 124 || rc == 137)); then result=FAIL why="timed out after $t s"
    else result=FAIL why="exit $rc: $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-300)"
    fi
    if [[ $result == FAIL && ${STOP_ON_FAIL:-0} == 1 ]]; then STOP="step $N ($name) failed: $why" SKIP="step $N failed"; fi
  fi
  echo "   $result ${why:+— $why}" >&2
  TABLE+="| $N | $name | **$result** | $((SECONDS - t0)) | ${why//|/\\|} |"$'\n'
  SECTIONS+=$'\n'"## $N. $name: $result"$'\n'"${why:+$why}"$'\n'
  if [[ -f $log ]]; then
    SECTIONS+=$'\n```\n'"$(tail -n "${TAIL:-40}" "$log")"$'\n```\n'
    { echo "===== $N. $name: $result $why"; cat "$log"; } >>"$OUT/gpu-check.log"
  fi
}

environment() {
  set -x
  uname -a; ldd --version | head -1; nproc; free -g | head -2
  nvidia-smi; cat /proc/driver/nvidia/version; ls /proc/driver/nvidia/gpus
  g++ --version | head -1; nvcc --version | tail -2
  "$BNLAB_PYTHON" - <<'EOF'
import glob, os, sys
print('python', sys.version.split()[0], sys.executable)
try:
    import torch
    print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(),
          'gpu', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')
except Exception as e:
    print('torch: not importable:', e)
for p in sys.path:  # where pip put the NVIDIA libraries bnlab's cuda backend loads
    for d in sorted(glob.glob(os.path.join(p, 'nvidia', '*', 'lib'))):
        print(d, ' '.join(sorted(f for f in os.listdir(d) if '.so' in f)))
EOF
  true # a missing tool is information here, not a failure
}

# xz and tar -J where they exist, else Python's lzma/tarfile (the GPU machine surely has Python)
unpack() {
  mkdir -p "$W/node/bin" "$W/node/include" && cp -r "$B/node/include/node" "$W/node/include/" && cp -r "$B/app" "$W/app" || return 1
  if command -v xz >/dev/null; then
    xz -dc "$B/node/bin/node.xz" >"$W/node/bin/node" && tar -xJf "$B/app/node_modules.tar.xz" -C "$W/app"
  else
    "$BNLAB_PYTHON" -c "import lzma, shutil, sys, tarfile
shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb')); tarfile.open(sys.argv[3]).extractall(sys.argv[4])" \
      "$B/node/bin/node.xz" "$W/node/bin/node" "$B/app/node_modules.tar.xz" "$W/app"
  fi || return 1
  chmod +x "$W/node/bin/node" && node --version
}

build_addon() {
  bash "$W/app/scripts/build-native.sh" --optional
  [ -f "$W/app/native/cuda/bnlab_cuda.node" ] || { echo "native/cuda/bnlab_cuda.node was not built (g++ output above)"; return 1; }
}

gpu_present() {
  local seen=0
  nvidia-smi -L && seen=1
  if ls -d /proc/driver/nvidia/gpus/* 2>/dev/null; then seen=1; else echo "(no /proc/driver/nvidia/gpus/*: bnlab's driver check reads it)"; fi
  ((seen)) && return 0
  echo "no NVIDIA GPU on this machine (nvidia-smi -L and /proc/driver/nvidia/gpus show none)"
  return 1
}

doctor() {
  local out
  out=$($BNLAB doctor 2>&1)
  echo "$out"
  grep -q 'auto would use: cuda' <<<"$out" || { echo "doctor does not choose the cuda backend (above)"; return 1; }
}

imagefolder() {
  $BNLAB train --backend cuda -c "$W/app/configs/imagenet-tiny-smoke.yaml" --set data.path="$B/jpeg-tree" --set data.cache_dir="$W/cache" \
    --set eval.minibatch=true --set eval.composed=true --set eval.train_minibatch=true --set eval.train_minibatch_samples=32 \
    --set bn.composition=classes --set bn.composition_classes=2 --set data.workers=8 --out "$W/imagefolder" -q || return 1
  cat "$W/imagefolder/metrics.csv"
  # one epoch: a finite loss near ln(4) for 4 classes, and an error in [0, 100] for every mode
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { loss = $col["train_loss"]; if (!(loss > 0 && loss < 10)) bad = bad " train_loss=" loss
      n = split("val_err_ema val_err_precise val_err_minibatch val_err_composed train_err_nbs", m, " ")
      for (k = 1; k <= n; k++) { v = $col[m[k]]; if (!(m[k] in col) || v == "" || v < 0 || v > 100) bad = bad " " m[k] "=" v } }
    END { if (NR != 2) bad = bad " rows=" NR - 1; if (bad) { print "metrics.csv out of range:" bad; exit 1 } print "metrics.csv: 1 epoch, every mode reported" }' \
    "$W/imagefolder/metrics.csv"
}

bench() {
  $BNLAB bench --backend cuda --set data.name=synthetic --set data.synthetic.size=224 --set data.synthetic.classes=1000 \
    --set data.synthetic.channels=3 --set data.synthetic.train=256 --set data.synthetic.val=256 --set model.arch=resnet50 --set optim.batch_size=256 --set bn.nbs=32 \
    --set precise.samples=256 --set precise.batch_size=64 --set eval.batch_size=256 --steps 5 --peer --python "$BNLAB_PYTHON"
}
export -f environment unpack build_addon gpu_present doctor imagefolder bench
export BNLAB

# the first three need no GPU: a dry run (or a machine without one) gets this far
ALWAYS=1 TAIL=200 step "environment" 60 bash -c environment
STOP_ON_FAIL=1 step "unpack node and node_modules" 60 bash -c unpack
STOP_ON_FAIL=1 step "build the CUDA addon (g++, bundled Node headers)" 120 bash -c build_addon
((DRY)) && [[ -z $STOP ]] && STOP="--dry-run: stopped before the first step that needs a GPU" SKIP="dry run"
STOP_ON_FAIL=1 step "GPU present" 20 bash -c gpu_present
TAIL=60 step "bnlab doctor" 90 bash -c doctor
step "gpu-golden --check, TF32 off" 120 node "$W/app/scripts/gpu-golden.js" --check "$B/goldens" --tf32 off
step "gpu-golden --check, TF32 on" 90 node "$W/app/scripts/gpu-golden.js" --check "$B/goldens" --tf32 on
step "gpu-golden --step (training runs), TF32 off" 120 node "$W/app/scripts/gpu-golden.js" --step "$B/goldens" --tf32 off
step "gpu-torch-check (one step vs PyTorch float64), TF32 off" 150 node "$W/app/scripts/gpu-torch-check.js" --tf32 off --python "$BNLAB_PYTHON"
step "ImageFolder: 1 epoch, PreciseBN, every eval mode" 150 bash -c imagefolder
step "bench: ResNet-50 224x224, batch 256, NBS 32, PyTorch peer" 240 bash -c bench

fails=$(grep -c '\*\*FAIL\*\*' <<<"$TABLE")
{
  echo "# bnlab GPU check"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname); $(cat "$B/BUILD" 2>/dev/null || echo 'no gpu-bundle/BUILD'); ${SECONDS} s of a ${WINDOW}-s window$( ((DRY)) && echo '; **dry run**')"
  [[ -n $STOP ]] && echo && echo "**Stopped early: $STOP.**"
  echo
  echo "| # | step | result | s | reason |"
  echo "| --- | --- | --- | --- | --- |"
  printf %s "$TABLE"
  echo "$SECTIONS"
} >"$OUT/gpu-check.md"
sed '/^## /,$d' "$OUT/gpu-check.md" # the summary, for whoever reads only this command's output
echo "gpu-check: $OUT/gpu-check.md ($fails failed${STOP:+; stopped: $STOP})" >&2
if ((fails)); then exit 1; elif [[ -n $STOP ]]; then exit 2; fi
