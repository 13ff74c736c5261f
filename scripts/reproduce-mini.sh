#!/usr/bin/env bash
# The whole miniature reproduction, one command: every experiment of configs/mini/ (Table 1 with
# Figs. 2-4 and Table 4, Table 2, Figs. 5-6, Fig. 8), its evaluations, the PyTorch twin of the
# Figs. 5-6 NBS-32 recipe, then results/mini/report.md and every figure.
# Resumable: finished runs and evaluations are skipped (sweeps check each run's files, evaluations
# are listed in each run's evals.done), so after an interruption run the same command again.
# Usage: scripts/reproduce-mini.sh [--jobs K]   (K parallel runs; on 2 cores keep 1)
# Time on 2 idle cores: measured per stage in results/mini/TIMES.md by this script.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s) log=results/mini/TIMES.md
mkdir -p results/mini
[ -f "$log" ] || printf "| stage | time | finished (UTC) | machine |\n|---|---|---|---|\n" > "$log"
stages=(table1 table4 fig3-4 table2 fig5-6 fig8)
hms() { printf '%dh%02dm%02ds' $(($1 / 3600)) $(($1 % 3600 / 60)) $(($1 % 60)); }
i=0
for s in "${stages[@]}"; do
  i=$((i + 1)) ts=$(date +%s)
  echo "=== [$i/${#stages[@]}] reproduce-$s.sh --mini (elapsed $(hms $((ts - t0))))" >&2
  bash "scripts/reproduce-$s.sh" --mini "$@"
  echo "| $s | $(hms $(($(date +%s) - ts))) | $(date -u +%FT%TZ) | $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg) |" >> "$log"
done
echo "=== done in $(hms $(($(date +%s) - t0))); stage times appended to $log" >&2
