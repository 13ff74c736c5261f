#!/usr/bin/env bash
# Compiles every kernel of bnlab's CUDA device layer (native/cuda/kernels/*.cu) with nvcc for sm_80
# (A100) and sm_90 (H100) as NVRTC compiles them on a GPU machine at init() (C++17, to CUBIN), so
# that an error, or any warning, shows on a machine without a GPU (CI) rather than at a GPU run's
# start. nvcc compiles the same source NVRTC does; it does not run it. One line per file.
# Needs nvcc (CI: /usr/local/bin/nvcc, CUDA 13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || { echo "cuda-compile-check: nvcc not found (install the CUDA toolkit)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
release=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
status=0
for f in native/cuda/kernels/*.cu; do
  line="$f (nvcc $release):"
  for arch in sm_80 sm_90; do
    # --Werror makes warnings errors; anything else printed (a note, a deprecation) fails too
    if out=$(nvcc --cubin -arch="$arch" -std=c++17 --Werror all-warnings -o "$tmp/k.cubin" "$f" 2>&1) && [[ -z "$out" ]]; then
      line+=" $arch ok ($(stat -c %s "$tmp/k.cubin") bytes)"
    else
      line+=" $arch FAILED"
      printf '%s\n' "$out" >&2
      status=1
    fi
  done
  echo "$line"
done
exit $status
