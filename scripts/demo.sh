#!/usr/bin/env bash
# The demo: generate a toy-kernel history, bisect it with kcache twice (cold,
# then warm) and once with plain `git bisect run` using the same build and
# test scripts, and print the three side by side.
#
#   scripts/demo.sh [WORKDIR]        (default: /tmp/kcache-demo)
#
# Environment: DEMO_RUNS (test runs per kernel, default 10), DEMO_POLICY
# (kcache's --policy, default bayes), KCACHE (the kcache binary, default:
# the release build), and the DEMO_* settings of scripts/make-demo-repo.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/kcache-demo}
runs=${DEMO_RUNS:-10}
policy=${DEMO_POLICY:-bayes}
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
kcache=${KCACHE:-$target/release/kcache}
[ -x "$kcache" ] || { echo "demo: no kcache binary at $kcache; run scripts/setup.sh first" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work"
repo=$work/toy-kernel
cache=$work/cache
"$here/make-demo-repo.sh" "$repo" >/dev/null
good=$(git -C "$repo" rev-list --max-parents=0 HEAD)
bad=$(git -C "$repo" rev-parse HEAD)
echo "demo: $(git -C "$repo" rev-list --count "$good..$bad") commits between good ${good:0:12} and bad ${bad:0:12}"

build='make -s vmlinux'
test_cmd="$here/demo-test.sh"

bisect_kcache() {
  local label=$1
  local t0=$(date +%s.%N)
  "$kcache" --cache-dir "$cache" bisect --repo "$repo" --good "$good" --bad "$bad" \
    --build "$build" --test "$test_cmd" --runs "$runs" --policy "$policy" --json --log "$work/$label.log" \
    >"$work/$label.json" 2>"$work/$label.stderr"
  local t1=$(date +%s.%N)
  local culprit
  culprit=$(grep -o '"commit": "[0-9a-f]*"' "$work/$label.json" | head -n 1 | cut -d'"' -f4)
  printf '%-16s %5s %7s %6s %8.2fs  %s\n' "$label" "$(field steps "$work/$label.json")" \
    "$(field builds_done "$work/$label.json")" "$(field runs_done "$work/$label.json")" \
    "$(elapsed "$t0" "$t1")" "${culprit:0:12}" >>"$work/table"
}

# A number from the summary's "totals" (the only place these keys hold numbers).
field() { grep -o "\"$1\": [0-9][0-9]*" "$2" | head -n 1 | awk '{print $2}'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# Plain git bisect: every step builds and runs the test, like syzbot without a cache.
bisect_plain() {
  local clone=$work/plain
  git clone -q "$repo" "$clone"
  : >"$work/plain-counts"
  local t0=$(date +%s.%N)
  (cd "$clone" && git bisect start "$bad" "$good" >/dev/null && PLAIN_BUILD=$build PLAIN_TEST=$test_cmd PLAIN_RUNS=$runs PLAIN_COUNTS=$work/plain-counts \
    git bisect run "$here/plain-bisect-step.sh" >"$work/plain.log" 2>&1)
  local t1=$(date +%s.%N)
  local culprit=$(grep -m1 'is the first bad commit' "$work/plain.log" | cut -c1-12)
  local steps=$(grep -c '^running' "$work/plain.log" || true)
  printf '%-16s %5s %7s %6s %8.2fs  %s\n' "git bisect run" "$steps" "$(grep -cx build "$work/plain-counts")" \
    "$(grep -cx run "$work/plain-counts")" "$(elapsed "$t0" "$t1")" "${culprit:-none}" >>"$work/table"
}

printf '%-16s %5s %7s %6s %9s  %s\n' "" steps builds runs wall culprit >"$work/table"
bisect_kcache "kcache cold"
bisect_kcache "kcache warm"
bisect_plain
echo
cat "$work/table"
echo
echo "regression: $(git -C "$repo" log --format='%h %s' --grep='grow the pool')"
echo "logs: $work/{kcache cold,kcache warm}.log (syzkaller format), $work/plain.log"
"$kcache" --cache-dir "$cache" log analyze "$work/kcache cold.log" | head -3
warm="$work/kcache warm.json"
[ "$(field builds_done "$warm")" = 0 ] && [ "$(field runs_done "$warm")" = 0 ] ||
  { echo "demo: the warm bisection built or tested something" >&2; exit 1; }
