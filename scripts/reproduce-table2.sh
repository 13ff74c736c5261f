#!/usr/bin/env bash
# Table 2: models trained with NBS 32 and NBS 2 (total batch 256); population statistics from
# the EMA, or PreciseBN on N samples in batches of B = 2, 10, 100, 1000, N.
# Usage: scripts/reproduce-table2.sh [--mini] [--jobs K] [--gpus 0,1] [--slurm --submit]
# Paper scale: ESTIMATE, NOT MEASURED ~400 V100-hours (~200 if Table 1's b256 run exists: it is
# the same config as nbs32 and is reused). --mini (batch 128, N = 10^4): ~5 minutes (estimate).
set -euo pipefail
source "$(dirname "$0")/common.sh"
small=$([ "$SCALE" = paper ] && echo b256 || echo b128)
if [ -d "$OUT/table1/$small" ] && [ ! -e "$OUT/table2/nbs32" ]; then
  mkdir -p "$OUT/table2" && ln -s "../table1/$small" "$OUT/table2/nbs32"
fi
sweep "$CFG/table2.sweep.yaml"
n=10000   # the paper's N (the mini training set has exactly 10^4 images)
for nbs in 32 2; do
  run=$OUT/table2/nbs$nbs
  bnlab eval --run "$run" --stats ema
  # B = N is computed exactly (as if all N images were one batch) one BN layer at a time: one
  # pass over the N images per BN layer. Small B also with the BN paper's mean-of-var estimator.
  for b in 2 10 100 1000 "$n"; do
    bnlab eval --run "$run" --stats precise --samples "$n" --batch "$b"
  done
  for b in 2 10; do
    bnlab eval --run "$run" --stats precise --samples "$n" --batch "$b" --estimator mean-of-var
  done
done
report
