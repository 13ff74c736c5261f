#!/usr/bin/env bash
# Builds bnlab's three optional native addons (Debian packages; nothing is downloaded):
#   native/addon/bnlab_native.node  the tfjs wasm backend's convolutions by oneDNN (Debian's
#     libdnnl, the library PyTorch's CPU convolutions use), OpenMP BatchNorm and fused updates,
#     in place on the wasm heap. Needs g++, Node's headers, libdnnl-dev.
#   native/jpeg/bnlab_jpeg.node     the image-folder pipeline's JPEG decode + crop + resize by
#     libjpeg-turbo (Debian's libjpeg62-turbo-dev). Needs g++, Node's headers, libjpeg-dev.
#   native/cuda/bnlab_cuda.node     the cuda backend's device layer (src/backend/cuda/addon.ts). Needs
#     g++ and Node's headers only: it declares the CUDA driver, NVRTC, cuBLAS and cuDNN entry points
#     itself (native/cuda/api.h) and dlopen()s those libraries at run time, so it builds without CUDA.
# --optional (used by `npm ci`): an addon whose requirements are missing is skipped with the fix
# and bnlab runs that part without it (WebAssembly kernels; sharp for JPEGs): slower, same results.
# BNLAB_NATIVE_FLAGS replaces "-O3 -march=native" (the CUDA addon's "-O2") and BNLAB_NATIVE_OUT puts
# the addons in another folder (scripts/native-memcheck.sh builds an AVX2 debug copy that valgrind can run).
set -euo pipefail
cd "$(dirname "$0")/.."
optional=0; [[ "${1:-}" == --optional ]] && optional=1
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
failed=0
flags=(${BNLAB_NATIVE_FLAGS:--O3 -march=native})
outdir=${BNLAB_NATIVE_OUT:-}

# build NAME OUT HEADER PACKAGE FLAGS...: one addon, or why not.
build() {
  local name=$1 out=$2 header=$3 pkg=$4; shift 4
  local why=""
  command -v g++ >/dev/null || why="g++ not found"
  [[ -z "$why" && ! -f "$inc/node_api.h" ]] && why="Node headers not found at $inc"
  [[ -z "$why" && ! -f "$header" ]] && why="$pkg not installed"
  [[ -z "$why" && "$(uname -m)" != x86_64 && "$(uname -m)" != aarch64 ]] && why="unsupported CPU $(uname -m)"
  if [[ -z "$why" ]]; then
    if g++ "${flags[@]}" -std=c++17 -shared -fPIC -fvisibility=hidden -I"$inc" "$@" -o "$out.tmp"; then
      mv "$out.tmp" "$out"
      echo "bnlab: built $out ($(node -e "console.log(require(require('path').resolve('$out')).version())"))" >&2
      return
    fi
    why="g++ failed"
  fi
  if (( optional )); then
    echo "bnlab: $name not built ($why); bnlab works without it, slower." >&2
    echo "       To build it: apt-get install -y g++${pkg:+ $pkg} && npm run build:native" >&2
  else
    echo "build-native: $name: $why" >&2; failed=1
  fi
}

build "native kernels (oneDNN)" "${outdir:-native/addon}/bnlab_native.node" /usr/include/oneapi/dnnl/dnnl.hpp libdnnl-dev \
  -fopenmp native/addon/*.cc -ldnnl -lgomp
build "native JPEG decoder (libjpeg-turbo)" "${outdir:-native/jpeg}/bnlab_jpeg.node" /usr/include/jpeglib.h libjpeg-dev \
  native/jpeg/jpeg.cc -ljpeg
# Host-side glue only, the arithmetic runs on the GPU: -O2, and no -march=native.
flags=(${BNLAB_NATIVE_FLAGS:--O2})
build "CUDA device layer" "${outdir:-native/cuda}/bnlab_cuda.node" "$inc/node_api.h" "" \
  native/cuda/*.cc -ldl
exit $failed
