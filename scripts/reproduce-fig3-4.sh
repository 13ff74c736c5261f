#!/usr/bin/env bash
# Figs. 3-4: per-epoch validation error with EMA and PreciseBN (and training error) for total
# batch 256 and the large batch (mini: 128 and 1024). These are Table 1's runs (same sweep, same folders): each
# epoch's row of metrics.csv holds val_err_ema, val_err_precise and train_err, so nothing new
# trains if Table 1 ran. Usage: scripts/reproduce-fig3-4.sh [--mini | --smoke] [sweep flags]
# The mini b128 run also records Fig. 2's BN trace (bn_trace.csv).
# Cost: Table 1's (paper ~400 V100-hours, ESTIMATE; --mini ~12 CPU-minutes), else ~0.
set -euo pipefail
source "$(dirname "$0")/common.sh"
sweep "$CFG/table1.sweep.yaml"
report
for f in 2 3 4; do figure table1 $f; done
