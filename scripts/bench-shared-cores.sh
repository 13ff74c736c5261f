#!/usr/bin/env bash
# Throughput when cores are shared (issue 12, section 2): one default run alone, then two started
# together on the same cores; prints each run's training img/s (mean over its epochs) and the
# pair's fraction of the solo figure. Run on an otherwise idle machine.
#
# Usage: scripts/bench-shared-cores.sh [-r REPEATS] [-- extra bnlab train args]
#   e.g. scripts/bench-shared-cores.sh -- --set data.name=synthetic
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
R=1
while getopts "r:h" o; do
  case $o in r) R=$OPTARG ;; *) sed -n '2,8p' "$0"; exit 0 ;; esac
done
shift $((OPTIND - 1)); [ "${1:-}" = -- ] && shift
OUT=$(mktemp -d "${TMPDIR:-/tmp}/bnlab-shared-XXXXXX"); trap 'rm -rf "$OUT"' EXIT
ips() { # mean train_images_per_s of a run's metrics.csv
  node -e "const l=require('fs').readFileSync(process.argv[1],'utf8').trim().split('\n');const h=l[0].split(',');const i=h.indexOf('train_images_per_s');const v=l.slice(1).map(r=>+r.split(',')[i]);console.log((v.reduce((a,b)=>a+b,0)/v.length).toFixed(0))" "$1/metrics.csv"
}
train() { local n=$1; shift; node bin/bnlab.js train --quiet --out "$OUT/$n" "$@" >/dev/null 2>"$OUT/$n.err" || { echo "run $n failed:"; cat "$OUT/$n.err"; exit 1; }; }
for ((k = 1; k <= R; k++)); do
  train "solo-$k" "$@"; solo=$(ips "$OUT/solo-$k")
  train "a-$k" "$@" & pa=$!; train "b-$k" "$@" & pb=$!; wait $pa $pb
  a=$(ips "$OUT/a-$k"); b=$(ips "$OUT/b-$k")
  echo "repeat $k: solo $solo img/s; together $a and $b img/s ($(( 100 * a / solo ))% and $(( 100 * b / solo ))% of solo)"
  grep -h '^.*backend:' "$OUT/solo-$k/train.log" | head -1 | sed 's/^/  /'
done
