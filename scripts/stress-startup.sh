#!/usr/bin/env bash
# Start-up stress test (issue 12, section 1): many backend start-ups in parallel pairs, each
# under a time limit, counting starts / ok / hangs / failures.
#
# Usage: scripts/stress-startup.sh [-n STARTS] [-t TIMEOUT_S] [-m init|train] [-b BACKEND] [-j PAR]
#   -n STARTS     total starts (default 200; 1-in-25 events need >= 150 to show)
#   -t TIMEOUT_S  per-start limit; a start still running then is killed and counted as a hang
#                 (default 60 for init, 120 for train)
#   -m init       (default) scripts/stress-startup.child.ts: initBackend as `bnlab train` does,
#                 one conv on the pool, exit (~1 s a start)
#   -m train      `bnlab train --set epochs=1 --set data.train_limit=512 ...` into a temp folder
#   -b BACKEND    auto (default) | wasm | cpu
#   -j PAR        starts run together (default 2: "parallel pairs")
# Every pair starts together; the second start of a pair is delayed by a random 0-400 ms so the
# overlap between one process's start-up and the other's varies.
# A start that the backend watchdog stopped (BNLAB_BACKEND_TIMEOUT_S, stderr "did not initialise")
# counts as a hang too ("watchdog" column): the watchdog makes hangs visible, it does not fix them.
# Output of every start that was not ok is kept under $OUT (printed at the end).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=200 T= MODE=init BACKEND=auto PAR=2
while getopts "n:t:m:b:j:h" o; do
  case $o in
    n) N=$OPTARG ;; t) T=$OPTARG ;; m) MODE=$OPTARG ;; b) BACKEND=$OPTARG ;; j) PAR=$OPTARG ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 0 ;;
  esac
done
[ -n "$T" ] || { [ "$MODE" = train ] && T=120 || T=60; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/bnlab-stress-XXXXXX")

one() { # $1 = index; writes $OUT/$1.{out,err,rc}
  local i=$1 cmd
  if [ "$MODE" = train ]; then
    cmd=(node bin/bnlab.js train --quiet --out "$OUT/run-$i" --backend "$BACKEND" --set epochs=1 --set data.train_limit=512 --set data.val_limit=256)
  else
    cmd=(node --import tsx scripts/stress-startup.child.ts "$BACKEND")
  fi
  local t0=$(date +%s%N)
  timeout -k 5 "$T" "${cmd[@]}" >"$OUT/$i.out" 2>"$OUT/$i.err"
  echo "$? $(( ($(date +%s%N) - t0) / 1000000 ))" >"$OUT/$i.rc"
}

ok=0 hang=0 watchdog=0 fail=0 done=0 max_ms=0 sum_ms=0
t_start=$(date +%s)
while [ "$done" -lt "$N" ]; do
  pids=()
  for ((k = 0; k < PAR && done + k < N; k++)); do
    i=$((done + k))
    if [ "$k" -gt 0 ]; then sleep "0.$(printf '%03d' $((RANDOM % 400)))"; fi
    one "$i" & pids+=($!)
  done
  wait "${pids[@]}"
  for ((k = 0; k < ${#pids[@]}; k++)); do
    i=$((done + k))
    read -r rc ms <"$OUT/$i.rc"
    sum_ms=$((sum_ms + ms)); [ "$ms" -gt "$max_ms" ] && max_ms=$ms
    if [ "$rc" = 0 ]; then ok=$((ok + 1)); rm -rf "$OUT/$i".* "$OUT/run-$i"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then hang=$((hang + 1)); echo "start $i: HANG (killed after ${T}s)"
    elif grep -q 'did not initialise' "$OUT/$i.err"; then watchdog=$((watchdog + 1)); echo "start $i: WATCHDOG: $(grep -m1 'did not initialise' "$OUT/$i.err")"
    else fail=$((fail + 1)); echo "start $i: FAILED rc=$rc: $(tail -n 2 "$OUT/$i.err" | tr '\n' ' ')"
    fi
  done
  done=$((done + ${#pids[@]}))
  if [ $((done % 50)) -lt "$PAR" ]; then echo "... $done/$N starts: ok $ok, hangs $hang, watchdog $watchdog, failures $fail" >&2; fi
done
printf 'mode %s, backend %s, %d at a time, timeout %ss, %ds total\n' "$MODE" "$BACKEND" "$PAR" "$T" "$(( $(date +%s) - t_start ))"
printf 'starts %d  ok %d  hangs %d  watchdog %d  failures %d  (mean %d ms, max %d ms a start)\n' \
  "$N" "$ok" "$hang" "$watchdog" "$fail" "$((sum_ms / N))" "$max_ms"
if [ $((hang + watchdog + fail)) -eq 0 ]; then rm -rf "$OUT"; else echo "logs of the starts that were not ok: $OUT"; fi
[ $((hang + watchdog + fail)) -eq 0 ]
