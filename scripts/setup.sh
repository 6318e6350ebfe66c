#!/usr/bin/env bash
# One-time setup on a fresh Debian machine: system packages, the release
# build of kcache, and Garage for the remote-cache tests. Safe to run again
# (everything is incremental and cached).
#
#   scripts/setup.sh            what the tests need
#   scripts/setup.sh --kernel   also what real kernel builds and the kernel
#                               benchmark need (kbuild tools, openssl, qemu)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
command -v gcc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v cmp >/dev/null || need+=(diffutils)
# librocksdb-sys generates its bindings with libclang.
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v g++ >/dev/null || need+=(g++)
if [ "${1:-}" = --kernel ]; then
  for p in flex bison bc cpio openssl xz-utils libelf-dev libssl-dev qemu-system-x86; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}"
cargo build --release --locked
echo "kcache built: $CARGO_TARGET_DIR/release/kcache"
# The S3-compatible server the remote-cache tests run against (built once, cached).
scripts/garage.sh install
echo "garage: ${KCACHE_TOOLS:-$HOME/.cache/kcache-tools}/bin/garage"
