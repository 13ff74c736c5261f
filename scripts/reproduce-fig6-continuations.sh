#!/usr/bin/env bash
# Fig. 6 (miniature only): more continuations of each NBS-2 fork. Each seed's FrozenBN and regular
# arms fork from one epoch-40 checkpoint (reproduce-fig5-6.sh), so a seed's pair samples one
# continuation of its model. Here each fork is continued twice more, both arms, with other
# shuffles, augmentation and PreciseBN samples from epoch 41 on (continuation.seed 1 and 2): the
# findings average a seed's continuations before comparing seeds (report.roles fig6.continuation),
# and show each continuation's difference. Needs the fig5-6 NBS-2 runs (reproduce-fig5-6.sh --mini).
# Usage: scripts/reproduce-fig6-continuations.sh --mini
# Time (2 idle Zen 5 cores, measured 2026-12-07; results/mini/TIMES.md): see the README.
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ "$SCALE" = mini ] || { echo "reproduce-fig6-continuations.sh: the continuations exist for the miniature only: run it with --mini" >&2; exit 2; }
FORK_EPOCH=40 # the fig5-6 sweep's fork point: FrozenBN for the last 10 of 50 epochs
sources=$(finished_runs fig5-6 nbs2_frozen0)
[ -n "$sources" ] || { echo "reproduce-fig6-continuations.sh: no finished fig5-6 NBS-2 run in $OUT/fig5-6; run scripts/reproduce-fig5-6.sh --mini first" >&2; exit 2; }
for src in $sources; do
  ckpt=$src/checkpoints/epoch-$(printf %04d $FORK_EPOCH).ckpt
  if [ ! -f "$ckpt" ]; then
    # git keeps no checkpoints: a committed run trained elsewhere has none here
    echo "reproduce-fig6-continuations.sh: skipping $src: no $ckpt to fork from (retrain it into another folder with bnlab train -c $src/config.yaml, check its metrics.csv matches, and copy its checkpoints in)" >&2
    continue
  fi
  for k in 1 2; do
    for frozen in 0 10; do
      out=$OUT/fig6-continuations/nbs2_frozen${frozen}_seed${src##*_seed}_cont$k
      finished "$out" && continue
      args=(train -c "$src/config.yaml" --set continuation.seed=$k --set continuation.after_epoch=$FORK_EPOCH
        --set bn.frozen_last_epochs=$frozen --set 'report.roles=[fig6.continuation]' --out "$out" --quiet)
      # an interrupted continuation resumes from its own checkpoints (its fork point is one of them)
      if [ -d "$out" ]; then bnlab "${args[@]}" --resume; else bnlab "${args[@]}" --fork "$src@$FORK_EPOCH"; fi
    done
  done
done
report
