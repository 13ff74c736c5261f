#!/usr/bin/env bash
# Figs. 5-6: NBS swept at a fixed total batch, with regular BN and FrozenBN for the last 20% of
# training. Error on un-augmented train and on val with mini-batch statistics are recorded
# during training (eval.train_minibatch, eval.minibatch); val with population statistics is
# val_err_precise. The evaluation below repeats the mini-batch-statistics error over 5 random
# batchings (it depends on which samples share a batch), and adds the training images' error with
# population statistics (the report's row "train, population stats").
# Usage: scripts/reproduce-fig5-6.sh [--mini | --smoke] [--jobs K] [--gpus 0,1] [--slurm --submit]
# Paper scale (batch 1024, NBS 1024..2, 20 runs; the 10 FrozenBN runs fork from their twins at
# epoch 80, so they train 20 epochs each): ESTIMATE, NOT MEASURED ~2,400 V100-hours.
# --mini (ResNet-20 on 2000 images, 50 epochs, batch 128, NBS 128/32/8/2, 5 seeds: 40 runs, the 20 FrozenBN ones forked at epoch 40): see
# scripts/reproduce-mini.sh. --smoke (ResNet-8, NBS 128..2, 10 runs on 2000 images): 288 s on 2 idle
# cores (measured, native kernels).
set -euo pipefail
source "$(dirname "$0")/common.sh"
sweep "$CFG/fig5-6.sweep.yaml"
for run in "$OUT"/fig5-6/nbs*_frozen0 "$OUT"/fig5-6/nbs*_frozen0_seed*; do
  [ -f "$run/metrics.csv" ] || continue
  ev "$run" --stats minibatch --repeats 5
  # Ours, not the paper's: the training images with population statistics. Beside train_err_nbs it
  # tells train/test inconsistency (population worse on the images the model fit) from over-fitting.
  ev "$run" --stats precise --data split=train,augment=false
done
report
for f in 5 6; do figure fig5-6 $f; done
