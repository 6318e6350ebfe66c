#!/usr/bin/env bash
# The real-kernel benchmark: bisect Debian's linux 6.1.176-1 patch series
# (166 commits, scripts/kernel-history.sh) for the patch that disables Yama
# at boot (scripts/kernel-boot-test.sh, qemu-system-x86_64 under TCG), built
# with kcache's kbuild recipe and the small config scripts/kernel/bench.config.
#
#   scripts/bench-kernel.sh                 the four bisections (work: ~/.cache/kcache-bench/run)
#   scripts/bench-kernel.sh --reproducible  build HEAD twice from clean trees, compare
#   scripts/bench-kernel.sh --check         check the last run's signatures, and every prediction its
#                                           input sets allow over the whole history, against the truth
#   scripts/bench-kernel.sh --maintainer    the same patches as a maintainer tree (each run of patches
#                                           from one debian/patches/ directory a topic branch merged
#                                           --no-ff): plain `git bisect run` against kcache's default
#                                           search, cold and warm (work: ~/.cache/kcache-bench/run-maintainer);
#                                           the culprit must be the same patch, never a merge
#   scripts/bench-kernel.sh --maintainer-repro
#                                           the maintainer tree bisected with kcache's reproducer harness
#                                           instead of a boot script: `bisect --kbuild --repro
#                                           scripts/kernel/yama-repro.c` (ptrace to a sibling allowed =
#                                           Yama off = the regression; it then crashes the kernel), config
#                                           bench.config + kernel/repro.fragment (work: run-repro)
#   scripts/bench-kernel.sh --build-jobs    the maintainer tree, kcache's default search from two cold
#                                           caches side by side: `--build-jobs 1` (no speculation) and
#                                           `--build-jobs 2` (one speculative build slot), both `--jobs 2`
#                                           (issue 24: does speculation help when the cores are the limit?)
#                                           (work: ~/.cache/kcache-bench/run-build-jobs; BENCH_ORDER="2 1"
#                                           runs them the other way round, in run-build-jobs-21)
#
# Four bisections of the same range, side by side: plain `git bisect run`
# with the same build and test scripts, kcache cold, kcache warm (the same
# range again), kcache cold with --no-predict. Every signature kcache
# reports, built or predicted, is checked against the ground truth
# scripts/kernel/bench-truth.tsv (every commit built once; remake it with
# scripts/kernel-truth.sh). Not part of CI: it builds kernels for an hour.
# Needs what `scripts/setup.sh --kernel` installs (kbuild tools, openssl, qemu-system-x86).
#
# Environment: BENCH_RUNS (boots per kernel, default 3), KCACHE (binary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${KCACHE_BENCH:-$HOME/.cache/kcache-bench}
work=$bench/run
runs=${BENCH_RUNS:-3}
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
kcache=${KCACHE:-$target/release/kcache}
config=$here/kernel/bench.config
truth=$here/kernel/bench-truth.tsv
test_cmd=$here/kernel-boot-test.sh
[ -x "$kcache" ] || { echo "bench-kernel: no kcache at $kcache; run scripts/setup.sh" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "bench-kernel: install qemu-system-x86" >&2; exit 2; }

shape=line
mode=${1:-}
if [ "$mode" = --maintainer ]; then
  shape=maintainer
  work=$bench/run-maintainer
elif [ "$mode" = --maintainer-repro ]; then
  shape=maintainer
  work=$bench/run-repro
elif [ "$mode" = --build-jobs ]; then
  shape=maintainer
  work=$bench/run-build-jobs${BENCH_ORDER:+-${BENCH_ORDER// /}}
fi
repo=$bench/linux
[ "$shape" = line ] || repo=$bench/linux-$shape
"$here/kernel-history.sh" "$repo" "$shape" >&2
good=$(git -C "$repo" rev-list --max-parents=0 HEAD)
bad=$(git -C "$repo" rev-parse HEAD)
table=$work/table

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
field() { grep -o "\"$1\": [0-9][0-9]*" "$2" | head -n 1 | awk '{print $2}'; }

bisect_kcache() {
  local label=$1 cache=$2
  shift 2
  local t0 t1 culprit
  t0=$(date +%s.%N)
  # The classic driver: the README's kernel figures measure no-op prediction,
  # which the noisy search does not use (yet). BENCH_POLICY=bayes to compare.
  "$kcache" --cache-dir "$cache" bisect --repo "$repo" --good "$good" --bad "$bad" --kbuild \
    --policy "${BENCH_POLICY:-classic}" \
    --config "$config" --test "$test_cmd" --runs "$runs" --json --log "$work/$label.log" "$@" \
    >"$work/$label.json" 2>"$work/$label.progress"
  t1=$(date +%s.%N)
  culprit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outcome"].get("commit","-"))' "$work/$label.json")
  printf '%-22s %6s %6s %9s %6s %8ss  %s\n' "$label" "$(field steps "$work/$label.json")" \
    "$(field builds_done "$work/$label.json")" "$(field builds_predicted "$work/$label.json")" \
    "$(field runs_done "$work/$label.json")" "$(elapsed "$t0" "$t1")" \
    "${culprit:0:12} $(git -C "$repo" log -1 --format=%s "$culprit" 2>/dev/null)" >>"$table"
}

bisect_plain() {
  local clone=$work/plain t0 t1 culprit
  git clone -q --shared "$repo" "$clone"
  : >"$work/plain-counts"
  t0=$(date +%s.%N)
  (cd "$clone" && git bisect start "$bad" "$good" &&
    PLAIN_BUILD="KCACHE_CONFIG='$config' KCACHE_CACHE_DIR='$work/plain-keys' '$here/kernel/kbuild.sh'" \
      PLAIN_TEST="'$test_cmd'" PLAIN_RUNS=$runs PLAIN_COUNTS=$work/plain-counts PLAIN_LOG=$work/plain-build.log \
      git bisect run "$here/plain-bisect-step.sh") >"$work/plain.progress" 2>&1
  t1=$(date +%s.%N)
  culprit=$(grep -o '^[0-9a-f]\{40\} is the first bad commit' "$work/plain.progress" | cut -d' ' -f1)
  printf '%-22s %6s %6s %9s %6s %8ss  %s\n' "plain git bisect run" "$(grep -c build "$work/plain-counts")" \
    "$(grep -c build "$work/plain-counts")" 0 "$(grep -c run "$work/plain-counts")" "$(elapsed "$t0" "$t1")" \
    "${culprit:0:12} $(git -C "$repo" log -1 --format=%s "$culprit" 2>/dev/null)" >>"$table"
}

# The recipe's promise: the same commit built twice from clean trees (two
# fresh clones, two different paths) gives the same signature.
check_reproducible() {
  local commit=$1 sigs=()
  for n in 1 2; do
    local tree=$bench/repro/clean-$n
    git clone -q --shared --no-checkout "$repo" "$tree"
    git -C "$tree" checkout -q --detach "$commit"
    (cd "$tree" && KCACHE_CONFIG=$config KCACHE_CACHE_DIR=$bench/repro/keys "$here/kernel/kbuild.sh" >"$tree.log" 2>&1)
    sigs+=("$("$kcache" sign "$tree/kcache-out/vmlinux" | cut -d' ' -f1)")
    rm -rf "$tree"
  done
  echo "reproducible build of ${commit:0:12} from two clean trees: ${sigs[0]:0:16} ${sigs[1]:0:16}"
  [ "${sigs[0]}" = "${sigs[1]}" ] || { echo "bench-kernel: NOT REPRODUCIBLE" >&2; return 1; }
}

# Every prediction the cold run's input sets allow, over the whole history:
# each (reference build, commit) pair judged "same kernel" must have equal
# true signatures. A stricter test than the bisections' own steps.
check_all_predictions() {
  git -C "$repo" rev-list HEAD |
    xargs "$kcache" --cache-dir "$work/cache" predict --repo "$repo" --json >"$work/predict-all.jsonl"
  python3 - "$truth" "$work/predict-all.jsonl" <<'EOF'
import json, sys
truth = {l.split("\t")[1]: l.split("\t")[2] for l in open(sys.argv[1])}
pairs = equal = same = wrong = 0
for line in open(sys.argv[2]):
    d = json.loads(line)
    for r in d["references"]:
        pairs += 1
        equal += truth[d["commit"]] == truth[r["reference"]]
        if r["same_kernel"]:
            same += 1
            if truth[d["commit"]] != truth[r["reference"]]:
                wrong += 1
                print(f"WRONG: {d['commit'][:12]} predicted equal to {r['reference'][:12]}")
print(f"all predictions: {pairs} (reference, commit) pairs, {equal} with equal true signatures, "
      f"{same} predicted equal, {wrong} of them wrong")
sys.exit(1 if wrong else 0)
EOF
}

# Every signature a kcache run reports (built, reused or predicted) must be
# the commit's true signature.
check_against_truth() {
  python3 - "$truth" "$work"/kcache-*.json <<'EOF'
import json, sys
truth = {}
for line in open(sys.argv[1]):
    i, commit, sig, _ = line.rstrip("\n").split("\t", 3)
    truth[commit] = sig
bad = 0
for path in sys.argv[2:]:
    steps = json.load(open(path))["steps"]
    for s in steps:
        want = truth.get(s["commit"])
        got = s.get("signature") or "-"
        if want is None:
            print(f"{path}: {s['commit'][:12]} is not in the truth map"); bad += 1
        elif want != got:
            print(f"{path}: {s['commit'][:12]} {s['build']}: signature {got[:16]}, truth {want[:16]}"); bad += 1
    predicted = sum(s["build"] == "predicted" for s in steps)
    print(f"{path.rsplit('/', 1)[-1]}: {len(steps)} steps, {predicted} predicted, all match the truth" if bad == 0 else "")
sys.exit(1 if bad else 0)
EOF
}

# The maintainer shape: the answer must be a patch (a commit with one
# parent) with the subject the line history's bisection names.
check_not_a_merge() {
  local json=$1 culprit parents
  culprit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outcome"].get("commit",""))' "$json")
  [ -n "$culprit" ] || { echo "bench-kernel: $json names no culprit" >&2; return 1; }
  parents=$(git -C "$repo" rev-list --parents -n 1 "$culprit" | wc -w)
  if [ "$parents" -gt 2 ]; then
    echo "bench-kernel: $json blames a merge: $(git -C "$repo" log -1 --format='%h %s' "$culprit")" >&2
    return 1
  fi
  echo "$json: culprit $(git -C "$repo" log -1 --format='%h %s' "$culprit") (not a merge)"
}

# The maintainer tree bisected by the reproducer harness: the test of
# every step is `kcache repro`'s VM on the built boot image, each run
# titled; the culprit must be the Yama patch, not a merge.
bisect_repro() {
  local cache=$work/cache t0 t1 culprit
  cat "$config" "$here/kernel/repro.fragment" >"$work/repro.config"
  t0=$(date +%s.%N)
  "$kcache" --cache-dir "$cache" bisect --repo "$repo" --good "$good" --bad "$bad" --kbuild \
    --config "$work/repro.config" --repro "$here/kernel/yama-repro.c" --repro-timeout 30 \
    --runs "$runs" --json --log "$work/kcache-repro.log" --report "$work/report.html" \
    >"$work/kcache-repro.json" 2>"$work/kcache-repro.progress"
  t1=$(date +%s.%N)
  culprit=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outcome"].get("commit","-"))' "$work/kcache-repro.json")
  printf '%-22s %6s %6s %9s %6s %8ss  %s\n' kcache-repro "$(field steps "$work/kcache-repro.json")" \
    "$(field builds_done "$work/kcache-repro.json")" "$(field builds_predicted "$work/kcache-repro.json")" \
    "$(field runs_done "$work/kcache-repro.json")" "$(elapsed "$t0" "$t1")" \
    "${culprit:0:12} $(git -C "$repo" log -1 --format=%s "$culprit" 2>/dev/null)" >>"$table"
}

if [ "$mode" = --maintainer-repro ]; then
  rm -rf "$work"
  mkdir -p "$work"
  printf '%-22s %6s %6s %9s %6s %9s  %s\n' run steps builds predicted boots wall culprit >"$table"
  bisect_repro
  cat "$table"
  check_not_a_merge "$work/kcache-repro.json"
  subject=$(git -C "$repo" log -1 --format=%s "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outcome"]["commit"])' "$work/kcache-repro.json")")
  [ "$subject" = "yama: Disable by default" ] || { echo "bench-kernel: the reproducer blamed '$subject'" >&2; exit 1; }
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
  exit
fi
if [ "$mode" = --build-jobs ]; then
  rm -rf "$work"
  mkdir -p "$work"
  printf '%-22s %6s %6s %9s %6s %9s  %s\n' run steps builds predicted boots wall culprit >"$table"
  for m in ${BENCH_ORDER:-1 2}; do
    BENCH_POLICY=bayes bisect_kcache "kcache-build-jobs-$m" "$work/cache-$m" --jobs 2 --build-jobs "$m"
  done
  cat "$table"
  for m in 1 2; do
    check_not_a_merge "$work/kcache-build-jobs-$m.json"
    grep -o 'speculative builds (--build-jobs)[^"]*' "$work/kcache-build-jobs-$m.json" || true
  done
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  exit
fi
if [ "$shape" = maintainer ]; then
  rm -rf "$work"
  mkdir -p "$work"
  printf '%-22s %6s %6s %9s %6s %9s  %s\n' run steps builds predicted boots wall culprit >"$table"
  bisect_plain
  BENCH_POLICY=${BENCH_POLICY:-bayes} bisect_kcache kcache-cold "$work/cache"
  BENCH_POLICY=${BENCH_POLICY:-bayes} bisect_kcache kcache-warm "$work/cache"
  cat "$table"
  check_not_a_merge "$work/kcache-cold.json"
  check_not_a_merge "$work/kcache-warm.json"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
  exit
fi
if [ "${1:-}" = --check ]; then
  check_against_truth
  check_all_predictions
  exit
fi
if [ "${1:-}" = --reproducible ]; then
  rm -rf "$bench/repro" && mkdir -p "$bench/repro"
  check_reproducible "$bad"
  exit
fi
rm -rf "$work"
mkdir -p "$work"
printf '%-22s %6s %6s %9s %6s %9s  %s\n' run steps builds predicted boots wall culprit >"$table"
bisect_plain
bisect_kcache kcache-cold "$work/cache"
bisect_kcache kcache-warm "$work/cache"
bisect_kcache kcache-cold-no-predict "$work/cache-np" --no-predict
cat "$table"
if [ -s "$truth" ]; then
  check_against_truth
  check_all_predictions
else
  echo "bench-kernel: no ground truth at $truth (scripts/kernel-truth.sh makes it)" >&2
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
