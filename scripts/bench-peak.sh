#!/bin/sh
# Sustained fp32 GFLOP/s of this machine through oneDNN (large sgemm, large 3x3 convolutions,
# ResNet-20's conv layers), with 1 and 2 OpenMP threads, and how the ISA was detected.
#   flock /tmp/bnlab-cpu.lock scripts/bench-peak.sh [--seconds 3]
# Needs g++ and Debian's libdnnl-dev (as the native addon does).
set -e
cd "$(dirname "$0")/.."
bin=${TMPDIR:-/tmp}/bnlab-bench-peak
g++ -O3 -march=native -fopenmp -o "$bin" scripts/bench-peak.cc -ldnnl -lgomp
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) ($(nproc) CPUs)"
echo "cpuinfo avx flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|fma)' | sort | tr '\n' ' ')"
echo "oneDNN dispatch (ONEDNN_VERBOSE=1): $(ONEDNN_VERBOSE=1 OMP_NUM_THREADS=1 "$bin" --seconds 0 | grep -E '^onednn_verbose,info,cpu,isa|^dnnl_verbose,info,cpu,isa' | head -1)"
for t in 1 2; do OMP_NUM_THREADS=$t OMP_PROC_BIND=true "$bin" "$@"; done
