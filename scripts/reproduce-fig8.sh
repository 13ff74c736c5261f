#!/usr/bin/env bash
# Fig. 8: information leakage within a batch. A model trained with every NBS group drawn from
# K = 2 classes (bn.composition: classes), evaluated each epoch with mini-batch statistics of test
# groups composed the same way, of random test groups, and with population statistics (EMA,
# PreciseBN); --mini adds the same recipe with random groups and runs four seeds of each. At the
# end, every run's last epoch is evaluated again with 5 repeats of each mini-batch mode.
# Usage: scripts/reproduce-fig8.sh [--mini] [sweep flags]
# Cost: paper ~200 V100-hours (ESTIMATE, not measured); --mini 8 runs, ~15 CPU-minutes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ "$SCALE" = smoke ]; then echo "reproduce-fig8.sh: Fig. 8 has no smoke scale (its --mini runs are smoke-sized already); use --mini" >&2; exit 2; fi
sweep "$CFG/fig8.sweep.yaml"
for run in "$OUT"/fig8/*/; do
  [ -f "$run/metrics.csv" ] || continue
  grep -q ',composed,' "$run/eval.csv" 2>/dev/null && continue   # evaluated by an earlier call
  bnlab eval --run "$run" --stats composed,minibatch --repeats 5 --quiet
  bnlab eval --run "$run" --stats ema,precise --quiet
done
report
figure fig8 8
