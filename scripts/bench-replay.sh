#!/usr/bin/env bash
# Benchmark: `kcache log replay` over a corpus of at least 2,308 logs (the
# dev logs copied under new names until there are enough).
#
#   scripts/bench-replay.sh [WORKDIR]     COUNT (default 2308), KCACHE_SHARED
#
# Every log is parsed, analyzed and judged (kcache::judge: the culprit's
# probability by its own runs), as `kcache log replay` does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/kcache-bench-replay}
count=${COUNT:-2308}
kcache=${KCACHE:-${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}/release/kcache}
dev="${KCACHE_SHARED:-$root/../shared}/bisect-logs/dev"
rm -rf "$work"
mkdir -p "$work"
n=0
while [ "$n" -lt "$count" ]; do
  for f in "$dev"/*.txt; do
    [ "$n" -ge "$count" ] && break
    cp "$f" "$work/$(printf '%05d' "$n")_$(basename "$f")"
    n=$((n + 1))
  done
done
bytes=$(du -sm "$work" | cut -f1)
cat "$work"/* > /dev/null
s=$(date +%s.%N)
"$kcache" log replay "$work" > "$work.out"
e=$(date +%s.%N)
head -n 3 "$work.out"
awk -v a="$s" -v b="$e" -v n="$count" -v m="$bytes" 'BEGIN { printf "replayed %d logs (%d MB) in %.2fs\n", n, m, b - a }'
