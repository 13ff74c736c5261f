#!/usr/bin/env bash
# Fig. 8: information leakage within a batch. A model trained with every NBS group drawn from
# K = 2 classes (bn.composition: classes), evaluated each epoch with mini-batch statistics of test
# groups composed the same way, of random test groups, and with population statistics (EMA,
# PreciseBN). The control with random groups is Table 1's small-batch run (the same recipe; --mini:
# its 5 seeds, which record the same per-epoch evaluations), linked in as fig8/random*: run
# reproduce-table1.sh first. --smoke trains its own control (ResNet-8, 4 seeds of each). At the
# end, every run's last epoch is evaluated again with 5 repeats of each mini-batch mode.
# Usage: scripts/reproduce-fig8.sh [--mini | --smoke] [sweep flags]
# Cost: paper ~200 V100-hours (ESTIMATE, not measured); --mini 2 runs of ~21 min on 2 cores
# (see scripts/reproduce-mini.sh for the measured stage time); --smoke 8 runs, ~15 CPU-minutes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
sweep "$CFG/fig8.sweep.yaml"
if [ "$SCALE" != smoke ]; then
  control=$(finished_runs table1 "$SMALL")
  [ -n "$control" ] || echo "reproduce-fig8.sh: no finished Table 1 $SMALL run in $OUT/table1 to serve as the control; run scripts/reproduce-table1.sh$([ "$SCALE" = mini ] && echo ' --mini') first (Fig. 8 is drawn without it)" >&2
  for run in $control; do reuse "table1/${run##*/}" "fig8/random${run##*/$SMALL}"; done
fi
for run in "$OUT"/fig8/*/; do
  [ -f "$run/metrics.csv" ] || continue
  run=${run%/}
  ev "$run" --stats composed,minibatch --repeats 5
  # a linked control has its EMA and PreciseBN (N = 10^4) at this epoch from Table 1 already
  [ -L "$run" ] || ev "$run" --stats ema,precise
done
report
figure fig8 8
