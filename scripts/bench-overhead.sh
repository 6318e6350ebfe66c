#!/usr/bin/env bash
# kcache's own overhead on the demo (issue: cold <= 1.3x plain `git bisect
# run`, warm <= 0.5 s): runs scripts/demo.sh ROUNDS times for each policy
# (and for each kcache binary given, interleaved: an A/B in one run), and
# prints the median wall times and the median of the per-round ratios
# against the plain bisection of the same round.
#
#   scripts/bench-overhead.sh [ROUNDS] [KCACHE_BINARY...]
#       (default 7 rounds; the binary: $KCACHE, else the release build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-7}
shift || true
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=("${KCACHE:-$target/release/kcache}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# "label wall" pairs from one demo table.
walls() { awk '/^kcache cold|^kcache warm|^git bisect run/ { w = $(NF-1); sub(/s$/, "", w); print $1 "_" $2, w }' "$1"; }

for i in $(seq "$rounds"); do
  for b in "${!binaries[@]}"; do
    for policy in classic bayes; do
      KCACHE=${binaries[$b]} DEMO_POLICY=$policy "$here/demo.sh" "$out/work" >"$out/demo.txt" 2>&1 ||
        { cat "$out/demo.txt" >&2; exit 1; }
      walls "$out/demo.txt" | awk -v p="$policy" -v b="$b" '
        { w[$1] = $2 }
        END { printf "%s %s %s %s %s %.3f\n", b, p, w["kcache_cold"], w["kcache_warm"], w["git_bisect"],
                w["kcache_cold"] / w["git_bisect"] }' >>"$out/rows"
    done
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '%-40s %-8s %10s %10s %10s %12s\n' binary policy "cold (s)" "warm (s)" "plain (s)" "cold/plain"
for b in "${!binaries[@]}"; do
  for policy in classic bayes; do
    col() { awk -v b="$b" -v p="$policy" -v c="$1" '$1 == b && $2 == p { print $c }' "$out/rows" | median; }
    printf '%-40s %-8s %10s %10s %10s %12s\n' "${binaries[$b]}" "$policy" "$(col 3)" "$(col 4)" "$(col 5)" "$(col 6)"
  done
done
echo "($rounds rounds, medians; cold/plain is the median of per-round ratios)"
