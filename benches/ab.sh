#!/usr/bin/env bash
# Before/after pairs for a speed claim: runs two zs-bench binaries alternately, ROUNDS times
# each, with the same arguments, and prints every run's final "ratio" line and the medians.
# Only ratios from one machine in one run mean anything here (see BENCHMARKS.md).
#
#   benches/ab.sh BEFORE_BIN AFTER_BIN ROUNDS rpc --seconds 3 --tarpc false
set -euo pipefail
before=$1 after=$2 rounds=$3
shift 3
median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
: >/tmp/ab.before
: >/tmp/ab.after
for ((i = 1; i <= rounds; i++)); do
    for side in before after; do
        bin=${!side}
        line=$("$bin" "$@" 2>&1 | grep -E 'ratio [0-9.]+' | tail -1)
        ratio=$(grep -oE 'ratio [0-9.]+' <<<"$line" | head -1 | cut -d' ' -f2)
        echo "round $i $side: $line"
        echo "$ratio" >>"/tmp/ab.$side"
    done
done
echo "median ratio: before $(median </tmp/ab.before), after $(median </tmp/ab.after)"
