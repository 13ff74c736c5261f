#!/usr/bin/env bash
# Table 1: EMA vs PreciseBN with N = 10 ... 10^4 samples (std over random draws), for the small-
# batch model at the end and the large-batch model at the end of its first lr stage and at the end.
# Usage: scripts/reproduce-table1.sh [--mini | --smoke] [--jobs K] [--gpus 0,1] [--slurm --submit]
# Paper scale (256 and 8192, epochs 30/100): ESTIMATE, NOT MEASURED ~400 V100-hours.
# --mini (ResNet-20 on full Fashion-MNIST, 128 and 1024, 5 seeds each, epochs 3/10 of 10; 3 draws per
#   N): see scripts/reproduce-mini.sh for the measured time. --smoke (ResNet-8, 10k images, 5
#   draws): ~5 minutes on 2 idle cores with the native kernels (estimate).
set -euo pipefail
source "$(dirname "$0")/common.sh"
sweep "$CFG/table1.sweep.yaml"
case $SCALE in
  paper) large=b8192 early=30 last=100 reps=5 ;;
  mini) large=b1024 early=3 last=10 reps=3 ;;
  *) large=b1024 early=3 last=10 reps=5 ;;
esac
table1() { # RUN EPOCH
  ev "$1" --epoch "$2" --stats ema
  for n in 10 100 1000 10000; do ev "$1" --epoch "$2" --stats precise --samples "$n" --repeats "$reps"; done
}
for run in $(runs table1 "$SMALL"); do table1 "$run" "$last"; done
for run in $(runs table1 "$large"); do table1 "$run" "$early"; table1 "$run" "$last"; done
report
