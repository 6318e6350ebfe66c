#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
# Everything runs in release mode so RocksDB is compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}"
# The RocksDB library setup.sh built (the same build; without these exports
# cargo would compile RocksDB file by file again).
rocksdb_env=$(scripts/rocksdb.sh env) # set -e: a failed build stops here
eval "$rocksdb_env"
cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings
# The Kubernetes engine is a cargo feature (off by default: its crates cost a
# cold build about 94 CPU-seconds); lint it too, and test with it on.
cargo clippy --release --locked --all-targets --features kubernetes -- -D warnings
# The remote tests run against Garage: built once (about 15 minutes on 2 cores)
# the first time they need it, then cached in ~/.cache/kcache-tools.
scripts/garage.sh install
cargo test --release --locked --features kubernetes
