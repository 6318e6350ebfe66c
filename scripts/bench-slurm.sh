#!/usr/bin/env bash
# Benchmark: the engine's per-step overhead on a real one-host Slurm
# cluster (scripts/slurm.sh) with a 3-node Garage as the team store: a
# classic bisection of a 6-commit toy line (`--executor slurm`, one run a
# kernel), each build `sleep BUILD_SECONDS` + gcc and each run
# `sleep RUN_SECONDS` + the toy. For every step the driver prints its wall
# time (submit to result seen in the store) and the step's own time (the
# build command's or the runs' seconds, as recorded); the overhead is the
# difference: sbatch, scheduling, the worker's start, the git fetch of the
# commit, the artifacts' upload and restore, and the driver's polls.
#
#   scripts/bench-slurm.sh [WORKDIR]      BUILD_SECONDS (default 10), RUN_SECONDS (default 5),
#                                         STORE=garage (default) or file (a file:// store, no Garage)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/kcache-bench-slurm}
build_s=${BUILD_SECONDS:-10}
run_s=${RUN_SECONDS:-5}
kcache=${KCACHE:-${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}/release/kcache}
rm -rf "$work"
mkdir -p "$work"
cd "$work"
if [ "${STORE:-garage}" = file ]; then
  remote=file://$work/store
  mkdir -p "$work/store"
  "$here/slurm.sh" start "$work/slurm" 11900 > /dev/null
  trap '"$here/slurm.sh" stop "$work/slurm"' EXIT
else
  remote=s3://kcache/bench
  "$here/garage.sh" start "$work/garage" 28600 > /dev/null
  "$here/slurm.sh" start "$work/slurm" 11900 > /dev/null
  trap '"$here/slurm.sh" stop "$work/slurm"; "$here/garage.sh" stop "$work/garage"' EXIT
  # shellcheck disable=SC1091
  source "$work/garage/env"
fi
# shellcheck disable=SC1091
source "$work/slurm/env"

git init -q -b master repo
cat > repo/main.c <<'C'
#include <stdio.h>
__attribute__((weak)) int bug_on;
int main(void) { if (bug_on) { puts("BUG: toy crash in main"); return 1; } return 0; }
C
git -C repo add -A && git -C repo -c user.name=b -c user.email=b@b commit -q -m init
for i in 1 2 3 4 5 6; do
  if [ "$i" = 4 ]; then echo 'int bug_on = 1;' > repo/bug.c; else echo "int f$i(void) { return $i; }" > "repo/f$i.c"; fi
  git -C repo add -A && git -C repo -c user.name=b -c user.email=b@b commit -q -m "change $i"
done
cat > test.sh <<T
#!/bin/sh
sleep $run_s
"\$KCACHE_ARTIFACTS/vmlinux" > /dev/null || { echo "crash: BUG: toy crash in main"; exit 1; }
T
chmod +x test.sh
mkdir -p config/kcache
cat > config/kcache/config.toml <<C
[engine]
poll_seconds = 0.5
[slurm]
build_partition = "kbuild"
test_partition = "ktest"
worker_cache_dir = "$work/workers"
log_dir = "$work/job-logs"
C
start=$(date +%s.%N)
XDG_CONFIG_HOME=$work/config "$kcache" --cache-dir driver --remote "$remote" --verbose \
  bisect --repo repo --good "$(git -C repo rev-list --max-parents=0 HEAD)" --bad HEAD \
  --build "sleep $build_s; gcc -O2 -o vmlinux *.c" --test "$work/test.sh" \
  --policy classic --runs 1 --executor slurm --json > summary.json 2> driver.log
end=$(date +%s.%N)
grep -q '"kind": "culprit"' summary.json || { echo "bench: the bisection named no culprit; see $work/driver.log" >&2; exit 1; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; slurm $(sinfo -V | awk '{print $2}')"
echo "store: $remote; build: sleep ${build_s}s + gcc; run: sleep ${run_s}s + the toy; one run a kernel"
printf '%-6s %10s %10s %10s %9s\n' step wall_s own_s overhead_s overhead
awk '
  /built on slurm/ { kind = "build" }
  /run\(s\) done on slurm/ { kind = "test" }
  /built on slurm|run\(s\) done on slurm/ {
    match($0, /step [0-9.]+s/); wall = substr($0, RSTART + 5, RLENGTH - 6)
    match($0, /(build|runs) [0-9.]+s/); own = substr($0, RSTART, RLENGTH); sub(/^[a-z]+ /, "", own); sub(/s$/, "", own)
    o = wall - own; sum[kind] += o; n[kind]++
    printf "%-6s %10.2f %10.2f %10.2f %8.1f%%\n", kind, wall, own, o, 100 * o / own
  }
  END {
    for (k in n) printf "mean overhead of a %s step: %.2f s\n", k, sum[k] / n[k]
    if (n["build"]) printf "against a 10-minute kernel build: %.2f%%\n", 100 * sum["build"] / n["build"] / 600
    if (n["test"]) printf "against a 1-minute kernel run: %.2f%%\n", 100 * sum["test"] / n["test"] / 60
  }' driver.log
awk -v a="$start" -v b="$end" 'BEGIN { printf "bisection wall time: %.1f s\n", b - a }'
