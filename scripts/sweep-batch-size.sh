#!/usr/bin/env bash
# Total batch 256, 512, 1024, 2048, 4096, 8192 with linear lr scaling and warmup (NBS 32):
# how the EMA/PreciseBN gap grows with the batch (Fig. 4's 256 vs 8192, filled in).
# Usage: scripts/sweep-batch-size.sh [--smoke] [--jobs K] [--gpus 0,1,...] [--slurm --submit]
# --smoke (or --mini: this sweep has one CPU scale): 128 ... 4096 (the same 32x span), ResNet-8 on
# the 10k subset, results/smoke/batch-size.
# Paper scale: ESTIMATE, NOT MEASURED ~1,200 V100-hours. --smoke: 295 s on 2 idle cores (measured, native kernels).
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ "$SCALE" = mini ]; then SCALE=smoke CFG=configs/smoke OUT=results/smoke; fi
sweep "$CFG/batch-size.sweep.yaml"
report
bnlab plot "$OUT/batch-size" --fig 4   # EMA vs PreciseBN per epoch, every batch size
