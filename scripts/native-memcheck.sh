#!/usr/bin/env bash
# The native kernels under a memory checker (issue 27): scripts/native-memcheck.mjs (every kernel
# at awkward channel counts against float64 references, canaries around every tensor) run
#   1. under valgrind memcheck on a debug build for x86-64-v3 (AVX2): valgrind knows no AVX-512,
#      so oneDNN dispatches its AVX2 kernels there, the code an AVX2 machine runs; any invalid
#      read or write, oneDNN's JIT code included, fails the step;
#   2. without valgrind on the real build at the host's own ISA, and with ONEDNN_MAX_CPU_ISA=AVX2
#      (an AVX-512 host also runs what an AVX2 one does), on 1 and 2 threads each.
# Needs g++, libdnnl-dev, libjpeg-dev, valgrind. Usage: scripts/native-memcheck.sh [--no-valgrind]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for isa in native AVX2; do
  for t in 1 2; do
    if [[ $isa == native ]]; then env -u ONEDNN_MAX_CPU_ISA node scripts/native-memcheck.mjs --threads $t || status=1
    else ONEDNN_MAX_CPU_ISA=$isa node scripts/native-memcheck.mjs --threads $t || status=1; fi
  done
done
if [[ "${1:-}" != --no-valgrind ]]; then
  command -v valgrind >/dev/null || { echo "native-memcheck: valgrind not found (apt-get install -y valgrind)" >&2; exit 1; }
  BNLAB_NATIVE_FLAGS="-O1 -g -march=x86-64-v3" BNLAB_NATIVE_OUT="$tmp" bash scripts/build-native.sh
  # One OpenMP thread: valgrind runs threads one at a time, and spinning barriers crawl.
  if OMP_NUM_THREADS=1 valgrind --error-exitcode=99 --errors-for-leak-kinds=none --suppressions=scripts/valgrind-node.supp --log-file="$tmp/valgrind.log" \
      node scripts/native-memcheck.mjs --addon "$tmp/bnlab_native.node" --jpeg "$tmp/bnlab_jpeg.node" --threads 1 &&
     grep -q 'ERROR SUMMARY: 0 errors' "$tmp/valgrind.log"; then
    echo "native-memcheck: valgrind clean ($(grep -o 'ERROR SUMMARY.*' "$tmp/valgrind.log" | head -1))"
  else
    echo "native-memcheck: valgrind found errors:" >&2
    grep -A30 -E 'Invalid|uninitialised|Process terminating' "$tmp/valgrind.log" | head -80 >&2
    status=1
  fi
fi
exit $status
