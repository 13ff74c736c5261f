#!/usr/bin/env bash
# Table 4: population statistics from another domain. One standard model (Table 1's batch-256
# run; mini: batch 128) evaluated on corrupted validation images (severity 3) with statistics from its training
# domain or re-estimated by PreciseBN on 1000 corrupted images (the rest are evaluated), and on
# clean images with statistics from a corrupted domain or un-augmented validation images.
# Usage: scripts/reproduce-table4.sh [--mini | --smoke] [sweep flags] (--mini: every seed of the
# batch-128 model, so the table's errors carry ± over seeds)
# Cost: the model is Table 1's (paper ~200 V100-hours ESTIMATE; --mini ~5 CPU-minutes) plus
# ~9 evaluations (minutes on a GPU; ~2 CPU-minutes in --mini).
set -euo pipefail
source "$(dirname "$0")/common.sh"
sweep "$CFG/table1.sweep.yaml"   # trains the standard model (and the large batch) if not there yet
for run in $(runs table1 "$([ "$SCALE" = paper ] && echo b256 || echo b128)"); do
  ev "$run" --stats precise --data split=val
  ev "$run" --stats precise --samples 1000 --stats-data split=val,corruption.type=contrast,corruption.severity=3 --data split=val
  ev "$run" --stats precise --samples 1000 --stats-data split=val,augment=false --data split=val
  for c in contrast gaussian_noise jpeg_compression; do
    spec="split=val,corruption.type=$c,corruption.severity=3"
    ev "$run" --stats precise --data "$spec"
    ev "$run" --stats precise --samples 1000 --stats-data "$spec" --data "$spec"
  done
done
report
