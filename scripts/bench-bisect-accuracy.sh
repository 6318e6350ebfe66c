#!/usr/bin/env bash
# Bisection accuracy under noise: the classic rule and the noisy search on
# simulated histories (issue 12's grid, 200 seeded trials per cell), the
# cells nearest to the shared dev logs, and what p and e look like in those
# logs. Prints Markdown tables (README "Accuracy under noise").
#
#   scripts/bench-bisect-accuracy.sh          (BENCH_TRIALS=N to change 200)
set -euo pipefail
cd "$(dirname "$0")/.."
# The RocksDB build setup.sh made (scripts/rocksdb.sh).
rocksdb_env=$("$(dirname "$0")"/rocksdb.sh env)
eval "$rocksdb_env"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}"
cargo test --release --locked --test bench_accuracy -- --ignored --nocapture --test-threads 1 2>&1 |
  grep -vE '^\s*(Compiling|Finished|Running)|^running|^test result|^$'
