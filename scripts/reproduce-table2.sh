#!/usr/bin/env bash
# Table 2: models trained with NBS 32 and NBS 2; population statistics from the EMA, or PreciseBN
# on N = 10^4 samples in batches of B = 2, 10, 100, 1000, N.
# Usage: scripts/reproduce-table2.sh [--mini | --smoke] [--jobs K] [--gpus 0,1] [--slurm --submit]
# Paper scale (batch 256): ESTIMATE, NOT MEASURED ~400 V100-hours (~200 if Table 1's b256 run
# exists: it is the same config as nbs32 and is reused). --mini: a ResNet-56 (55 BN layers) on
# 10,000 images, 5 seeds; B = N is computed exactly, one BN layer at a time (stage by stage from
# the N images' activations held in memory: ~1 min per run on 2 cores).
# --smoke (ResNet-8, batch 128): ~5 minutes (estimate).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ "$SCALE" != mini ]; then   # nbs32 is Table 1's small-batch run (the same config), reused
  reuse "table1/$SMALL" table2/nbs32
fi
sweep "$CFG/table2.sweep.yaml"
n=10000
bs=(2 10 100 1000 "$n")
for run in $(runs table2 nbs32) $(runs table2 nbs2); do
  ev "$run" --stats ema
  for b in "${bs[@]}"; do ev "$run" --stats precise --samples "$n" --batch "$b"; done
  # small B also with the BN paper's mean-of-var estimator
  for b in 2 10; do ev "$run" --stats precise --samples "$n" --batch "$b" --estimator mean-of-var; done
done
report
