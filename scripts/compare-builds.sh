#!/bin/bash
# Does a refactor change what bnlab computes? The same runs and evaluations (the default run, the
# smoke recipe for 2 epochs, a FrozenBN run, every evaluation mode) with two builds of bnlab, each
# a checkout with node_modules, native addons and dist/ (e.g. `git worktree add /tmp/old REV`,
# `ln -s $PWD/node_modules /tmp/old/`, copy native/*/*.node, `npm run build` there); then
# scripts/compare-builds.py OUT_DIR compares metrics.csv, eval.csv (timing columns aside) and
# every checkpoint tensor (SHA-256 from the checkpoint index). ~4 min on 2 cores.
# Usage: scripts/compare-builds.sh OLD_DIR NEW_DIR OUT_DIR
set -euo pipefail
OLD=$1 NEW=$2 OUT=$3
for side in old new; do
  src=$([ $side = old ] && echo "$OLD" || echo "$NEW")
  d="$OUT/$side"; rm -rf "$d"; mkdir -p "$d"
  b() { (cd "$src" && node bin/bnlab.js "$@"); }
  b train --out "$d/default" --quiet
  b train -c configs/smoke/base.yaml --set epochs=2 --out "$d/smoke" --quiet
  b train -c configs/smoke/base.yaml --set epochs=3 --set 'optim.steps=[1,2]' --set bn.frozen_last_epochs=1 --set eval.minibatch=true --out "$d/frozen" --quiet
  b eval --run "$d/smoke" --stats ema,precise,minibatch,composed --repeats 2 --quiet
  b eval --run "$d/smoke" --precise-bn --samples 500 --batch 10 --quiet
  b eval --run "$d/smoke" --precise-bn --samples 500 --estimator mean-of-var --batch 10 --quiet
  b eval --run "$d/frozen" --stats ema,frozen,minibatch --quiet
  b eval --run "$d/frozen" --stats precise --quiet
  b eval --run "$d/default" --stats ema,precise --quiet
done
