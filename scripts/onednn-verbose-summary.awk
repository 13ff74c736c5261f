#!/usr/bin/awk -f
# Sums ONEDNN_VERBOSE=1 output: executions and milliseconds per primitive kind, propagation kind
# and implementation (the last field of an exec line is its time in ms). With two runs that
# differ only in the number of timed steps, the difference of the sums is what those steps ran.
#   ONEDNN_VERBOSE=1 bnlab bench ... | awk -F, -f scripts/onednn-verbose-summary.awk
BEGIN { FS = "," }
$1 ~ /(onednn|dnnl)_verbose/ && $2 == "exec" { k = $4 " " $6 " " $5; n[k]++; t[k] += $NF; N++; T += $NF }
END {
  for (k in n) printf "%-60s %7d %10.1f ms\n", k, n[k], t[k]
  printf "%-60s %7d %10.1f ms\n", "total", N, T
}
