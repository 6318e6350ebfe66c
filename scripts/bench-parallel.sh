#!/usr/bin/env bash
# Issue 24's real-process benchmark: the demo history with a slow test (each
# run sleeps PAR_TEST_SLEEP s first) and slow builds (each sleeps
# PAR_BUILD_SLEEP s first), bisected from a cold cache with
# `--jobs 1 --build-jobs 1` (one thing at a time) and with
# `--jobs 5 --build-jobs 2`, alternating, PAR_REPEATS times per policy;
# prints each policy's median wall times side by side, their ratio and the
# culprits (which must agree).
#
#   scripts/bench-parallel.sh [WORKDIR]      (default: /tmp/kcache-bench-parallel)
#
# Environment: PAR_TEST_SLEEP (1), PAR_BUILD_SLEEP (1), PAR_RUNS (10),
# PAR_REPEATS (3), PAR_POLICIES ("bayes classic"), KCACHE (the binary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/kcache-bench-parallel}
test_sleep=${PAR_TEST_SLEEP:-1}
build_sleep=${PAR_BUILD_SLEEP:-1}
runs=${PAR_RUNS:-10}
repeats=${PAR_REPEATS:-3}
policies=${PAR_POLICIES:-bayes classic}
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
kcache=${KCACHE:-$target/release/kcache}
[ -x "$kcache" ] || { echo "bench-parallel: no kcache binary at $kcache" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work"
repo=$work/toy-kernel
"$here/make-demo-repo.sh" "$repo" >/dev/null
good=$(git -C "$repo" rev-list --max-parents=0 HEAD)
bad=$(git -C "$repo" rev-parse HEAD)
cat >"$work/slow-test.sh" <<EOF
#!/bin/sh
sleep $test_sleep
exec "$here/demo-test.sh"
EOF
chmod +x "$work/slow-test.sh"
build="sleep $build_sleep; make -s vmlinux"

# One cold bisection; prints "<seconds> <culprit>".
bisect_once() {
  local policy=$1 jobs=$2 build_jobs=$3 label=$4
  local cache=$work/cache-$label
  rm -rf "$cache"
  local t0 t1
  t0=$(date +%s.%N)
  "$kcache" --cache-dir "$cache" bisect --repo "$repo" --good "$good" --bad "$bad" --build "$build" \
    --test "$work/slow-test.sh" --runs "$runs" --policy "$policy" --jobs "$jobs" --build-jobs "$build_jobs" \
    --json >"$work/$label.json" 2>"$work/$label.stderr"
  t1=$(date +%s.%N)
  local culprit
  culprit=$(grep -o '"commit": "[0-9a-f]*"' "$work/$label.json" | head -n 1 | cut -d'"' -f4)
  awk -v a="$t0" -v b="$t1" -v c="${culprit:0:12}" 'BEGIN { printf "%.2f %s\n", b - a, c }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-parallel: $(git -C "$repo" rev-list --count "$good..$bad") commits, test +${test_sleep}s/run, build +${build_sleep}s, $runs runs/kernel, $repeats repeats, $(nproc) cores"
printf '%-8s %22s %22s %7s  %s\n' policy "--jobs 1 --build-jobs 1" "--jobs 5 --build-jobs 2" ratio culprits
for policy in $policies; do
  : >"$work/$policy-seq" && : >"$work/$policy-par"
  for i in $(seq "$repeats"); do
    bisect_once "$policy" 1 1 "$policy-seq-$i" >>"$work/$policy-seq"
    bisect_once "$policy" 5 2 "$policy-par-$i" >>"$work/$policy-par"
  done
  seq_median=$(cut -d' ' -f1 "$work/$policy-seq" | median)
  par_median=$(cut -d' ' -f1 "$work/$policy-par" | median)
  culprits=$(cut -d' ' -f2 "$work/$policy-seq" "$work/$policy-par" | sort -u | tr '\n' ' ')
  printf '%-8s %21.2fs %21.2fs %7.2f  %s\n' "$policy" "$seq_median" "$par_median" \
    "$(awk -v a="$par_median" -v b="$seq_median" 'BEGIN { print a / b }')" "$culprits"
  [ "$(echo "$culprits" | wc -w)" = 1 ] || { echo "bench-parallel: the culprits differ ($policy)" >&2; exit 1; }
done
