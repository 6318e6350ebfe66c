#!/usr/bin/env bash
# kcache's own overhead on the demo (issue: cold <= 1.3x plain `git bisect
# run`, warm <= 0.5 s): runs scripts/demo.sh ROUNDS times for each policy,
# alternating, and prints the median wall times and the median of the
# per-round ratios against the plain bisection of the same round.
#
#   scripts/bench-overhead.sh [ROUNDS]      (default 7)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-7}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# "label wall" pairs from one demo table.
walls() { awk '/^kcache cold|^kcache warm|^git bisect run/ { w = $(NF-1); sub(/s$/, "", w); print $1 "_" $2, w }' "$1"; }

for i in $(seq "$rounds"); do
  for policy in classic bayes; do
    DEMO_POLICY=$policy "$here/demo.sh" "$out/work" >"$out/demo.txt" 2>&1 ||
      { cat "$out/demo.txt" >&2; exit 1; }
    walls "$out/demo.txt" | awk -v p="$policy" '
      { w[$1] = $2 }
      END { printf "%s %s %s %s %.3f %.3f\n", p, w["kcache_cold"], w["kcache_warm"], w["git_bisect"],
              w["kcache_cold"] / w["git_bisect"], w["kcache_warm"] }' >>"$out/rows"
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '%-8s %10s %10s %10s %12s\n' policy "cold (s)" "warm (s)" "plain (s)" "cold/plain"
for policy in classic bayes; do
  col() { awk -v p="$policy" -v c="$1" '$1 == p { print $c }' "$out/rows" | median; }
  printf '%-8s %10s %10s %10s %12s\n' "$policy" "$(col 2)" "$(col 3)" "$(col 4)" "$(col 5)"
done
echo "($rounds rounds, medians; cold/plain is the median of per-round ratios)"
