#!/usr/bin/env bash
# Builds native/addon/bnlab_native.node: the tfjs wasm backend's convolutions computed by oneDNN
# (Debian's libdnnl, the library PyTorch's CPU convolutions use), in place on the wasm heap.
# Needs g++, Node's headers and libdnnl-dev (apt-get install -y g++ libdnnl-dev).
# --optional (used by `npm ci`): when something is missing, say so and succeed; bnlab then
# runs its convolutions on XNNPACK inside the wasm backend (slower, same results).
set -euo pipefail
cd "$(dirname "$0")/.."
optional=0; [[ "${1:-}" == --optional ]] && optional=1
out=native/addon/bnlab_native.node
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
skip() {
  if (( optional )); then
    echo "bnlab: native oneDNN convolutions not built ($1); bnlab works without them, slower." >&2
    echo "       To build them: apt-get install -y g++ libdnnl-dev && npm run build:native" >&2
    exit 0
  fi
  echo "build-native: $1" >&2; exit 1
}
command -v g++ >/dev/null || skip "g++ not found"
[[ -f "$inc/node_api.h" ]] || skip "Node headers not found at $inc"
[[ -f /usr/include/oneapi/dnnl/dnnl.hpp ]] || skip "libdnnl-dev not installed"
[[ "$(uname -m)" == x86_64 || "$(uname -m)" == aarch64 ]] || skip "unsupported CPU $(uname -m)"
g++ -O3 -march=native -fopenmp -std=c++17 -shared -fPIC -fvisibility=hidden -I"$inc" native/addon/*.cc -ldnnl -lgomp -o "$out.tmp" \
  || skip "g++ failed"
mv "$out.tmp" "$out"
echo "bnlab: built $out ($(node -e "console.log(require('./$out').version())"))" >&2
