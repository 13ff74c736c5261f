# Sourced by the reproduce-*.sh and sweep-*.sh scripts: repo root, `bnlab`, `--mini`, and the
# sweep flags passed through (--jobs K, --gpus 0,1,..., --slurm [--submit], --partition, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bnlab() { echo "+ bnlab $*" >&2; node bin/bnlab.js "$@"; }
SCALE=paper SLURM=0 SWEEP_ARGS=()
for a in "$@"; do
  case $a in
    --mini) SCALE=mini ;;
    --smoke) SCALE=smoke ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    --slurm) SLURM=1; SWEEP_ARGS+=("$a") ;;
    *) SWEEP_ARGS+=("$a") ;;
  esac
done
CFG=configs/$SCALE OUT=results/$SCALE
# Table 1's small-batch run: Table 2's nbs32 and Fig. 8's control reuse it.
SMALL=$([ "$SCALE" = paper ] && echo b256 || echo b128)
# Runs a sweep file (finished runs are skipped, so re-running a script only evaluates again).
# With --slurm the runs are submitted and the script stops: re-run it without --slurm once the
# jobs are done, and it finds every run finished and goes on to the evaluations.
sweep() {
  bnlab sweep --config "$1" ${SWEEP_ARGS[@]+"${SWEEP_ARGS[@]}"}
  if [ "$SLURM" = 1 ]; then
    echo "Submitted to Slurm. When the jobs are done, run $0 again without --slurm to evaluate and report." >&2
    exit 0
  fi
}
# The tables and figures (`bnlab report` / `bnlab plot`, written separately) from every run so far.
report() { bnlab report --all "$OUT"; }
# `figure EXP N`: figure N from OUT/EXP's runs, into OUT/figures with every other stage's.
figure() { bnlab plot "$OUT/$1" --fig "$2" --out "$OUT/figures"; }
# The finished runs of an experiment playing one role: OUT/EXP/NAME itself (paper, smoke: one
# seed) and OUT/EXP/NAME_seed* (mini: several seeds).
runs() {
  local d
  for d in "$OUT/$1/$2" "$OUT/$1/$2"_seed*; do [ -f "$d/metrics.csv" ] && echo "$d"; done
  return 0
}
# `finished RUN`: true when the run's summary.json says it finished (a run still training, e.g. on
# Slurm, is not yet another experiment's control or a fork's source).
finished() { grep -q '"finished": true' "$1/summary.json" 2>/dev/null; }
# The same as runs, finished only.
finished_runs() {
  local d
  for d in $(runs "$@"); do finished "$d" && echo "$d"; done
  return 0
}
# `reuse FROM TO`: OUT/TO becomes a link to the run OUT/FROM (both EXP/RUN), one run shared by two
# experiments (the report counts it once), if FROM exists and TO does not. A real folder at TO
# (a run trained there) is kept and said so: it is not the shared run.
reuse() {
  if [ -d "$OUT/$1" ] && [ ! -e "$OUT/$2" ] && [ ! -L "$OUT/$2" ]; then
    mkdir -p "$(dirname "$OUT/$2")" && ln -s "../$1" "$OUT/$2"
  elif [ -d "$OUT/$2" ] && [ ! -L "$OUT/$2" ]; then
    echo "note: $OUT/$2 is a run folder of its own, not a link to $OUT/$1; it is used as it is (remove it to share $OUT/$1)" >&2
  fi
}
# `bnlab eval --run RUN ARGS...` once: a finished evaluation is listed in RUN/evals.done and
# skipped when a script runs again, so an interrupted reproduction resumes where it stopped.
ev() {
  local run=$1; shift
  local key="$*"
  if grep -qxF -- "$key" "$run/evals.done" 2>/dev/null; then echo "= already evaluated: $run $key" >&2; return 0; fi
  bnlab eval --run "$run" "$@" --quiet
  echo "$key" >> "$run/evals.done"
}
