#!/usr/bin/env bash
# Table 1: EMA vs PreciseBN with N = 10 ... 10^4 samples (std over 5 random draws), for the
# batch-256 model at the end and the large-batch model at the end of its first lr stage and at
# the end. Usage: scripts/reproduce-table1.sh [--mini] [--jobs K] [--gpus 0,1] [--slurm --submit]
# Paper scale (8192, epochs 30/100): ESTIMATE, NOT MEASURED ~400 V100-hours.
# --mini (128 and 1024, epochs 3/10 of 10): ~5 minutes on 2 idle cores with the native kernels (estimate).
set -euo pipefail
source "$(dirname "$0")/common.sh"
sweep "$CFG/table1.sweep.yaml"
if [ "$SCALE" = mini ]; then
  # epoch 3 of 10 plays the paper's 30 of 100
  runs=("b128:10" "b1024:3" "b1024:10") ns=(10 100 1000 10000)
else
  runs=("b256:100" "b8192:30" "b8192:100") ns=(10 100 1000 10000)
fi
for r in "${runs[@]}"; do
  run=$OUT/table1/${r%%:*} epoch=${r##*:}
  bnlab eval --run "$run" --epoch "$epoch" --stats ema
  for n in "${ns[@]}"; do
    bnlab eval --run "$run" --epoch "$epoch" --stats precise --samples "$n" --repeats 5
  done
done
report
