#!/usr/bin/env bash
# Prebuild benchmark (issue: dense storage <= 1% of raw, restore <= 1 s,
# prebuild wall <= building each commit incrementally, then a bisection with
# 0 builds). Not in CI: on a kernel history it takes hours.
#
#   scripts/bench-prebuild.sh REPO RANGE [prebuild recipe args...]
#   e.g. scripts/bench-prebuild.sh ~/linux v6.1.175..v6.1.176 --kbuild --config scripts/kernel/bench.config
#
# Prints: prebuild wall time and what it did; the artifacts' raw bytes (each
# distinct blob once), the bytes one zstd -1 blob each would take (today's
# format before deltas), the dense store's bytes; restore time per build
# (p50, max) from the local tier. KCACHE (binary) and BENCH_CACHE (cache
# directory, default a fresh temp dir) may be set.
set -euo pipefail
# The RocksDB build setup.sh made (scripts/rocksdb.sh).
rocksdb_env=$("$(dirname "$0")"/rocksdb.sh env)
eval "$rocksdb_env"
repo=$1 range=$2
shift 2
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
kcache=${KCACHE:-$target/release/kcache}
cache=${BENCH_CACHE:-$(mktemp -d)}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
kc() { "$kcache" --cache-dir "$cache" "$@"; }

t0=$(date +%s.%N)
kc prebuild --repo "$repo" "$range" "$@" --json >"$scratch/prebuild.json"
t1=$(date +%s.%N)
echo "prebuild: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s  $(cat "$scratch/prebuild.json")"

python3 - "$kcache" "$cache" "$scratch" <<'PY'
import glob, os, statistics, subprocess, sys, time
kcache, cache, scratch = sys.argv[1:4]

def kind(data):
    """What an artifact is, from its bytes (the recipe's names are not in the blob)."""
    if data[:4] == b"\x7fELF":
        return "vmlinux (ELF)"
    if data[0x202:0x206] == b"HdrS":
        return "boot image (compressed)"
    return "text (System.map, config)"

rows = {}
times = []
for b in glob.glob(os.path.join(cache, "blobs", "*", "*.zst")):
    key = os.path.basename(b)[:-4]
    dest = os.path.join(scratch, "r")
    t = time.monotonic()
    # Decode one blob (chain included) the way a restore does.
    r = subprocess.run([kcache, "--cache-dir", cache, "get", "--blob", key, "--dest", dest], capture_output=True)
    if r.returncode != 0:
        continue
    times.append(time.monotonic() - t)
    data = open(dest, "rb").read()
    full = len(subprocess.run(["zstd", "-1", "-q", "-c"], input=data, capture_output=True).stdout)
    row = rows.setdefault(kind(data), [0, 0, 0, 0])
    row[0] += 1
    row[1] += len(data)
    row[2] += full
    row[3] += os.path.getsize(b)
total = [sum(r[i] for r in rows.values()) for i in range(4)]
for name, (n, raw, full, dense) in sorted(rows.items()) + [("all artifacts", total)]:
    print(f"{name}: {n} distinct, raw {raw} B, one zstd -1 blob each {full} B, dense {dense} B "
          f"({100 * dense / max(raw, 1):.2f}% of raw, 1/{full / max(dense, 1):.1f} of full blobs)")
if times:
    print(f"restore per blob: p50 {statistics.median(times):.3f} s, max {max(times):.3f} s ({len(times)} blobs)")
PY

# The issue's framing: every commit's build kept (166 x each artifact),
# against one zstd blob per artifact per commit (tests/bench_dense.rs).
cd "$(dirname "$0")/.."
BENCH_CACHE=$cache cargo test --release --quiet --test bench_dense -- --ignored --nocapture 2>/dev/null | grep '^per commit'
