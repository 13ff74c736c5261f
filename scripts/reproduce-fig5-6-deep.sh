#!/usr/bin/env bash
# Figs. 5-6, regime B (miniature only): the Figs. 5-6 recipe with one change written down before
# any run (configs/mini/fig5-6-deep.sweep.yaml: ResNet-56 for ResNet-20, NBS 2 and 32, 3 seeds),
# to see whether depth brings out the train/test inconsistency the committed regime does not show.
# Evaluated as scripts/reproduce-fig5-6.sh evaluates its runs; bnlab report sets these runs beside
# the fig5-6 ones (report.roles fig5-6.variant), never in Figs. 5-6 themselves.
# Usage: scripts/reproduce-fig5-6-deep.sh --mini [--jobs K] [--slurm --submit]
# Time (2 idle Zen 5 cores, measured 2026-12-07; results/mini/TIMES.md): see the README.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ -f "$CFG/fig5-6-deep.sweep.yaml" ] || { echo "reproduce-fig5-6-deep.sh: regime B exists for the miniature only: run it with --mini" >&2; exit 2; }
sweep "$CFG/fig5-6-deep.sweep.yaml"
for run in "$OUT"/fig5-6-deep/nbs*_seed*; do
  [ -f "$run/metrics.csv" ] || continue
  ev "$run" --stats minibatch --repeats 5
  ev "$run" --stats precise --data split=train,augment=false
done
report
# beside the fig5-6 runs, so the figure's title names what regime B changes: fig5-variant.{svg,png}
bnlab plot "$OUT/fig5-6" "$OUT/fig5-6-deep" --fig 5 --out "$OUT/figures"
