#!/usr/bin/env bash
# One-time setup on a fresh Debian machine: the system packages kcache's build
# and tests need, then the release build of kcache. Safe to run again
# (installs only what is missing; the build is incremental).
#
#   scripts/setup.sh                   packages + release build (the quick start)
#   scripts/setup.sh --kernel          also what real kernel builds and the kernel
#                                      benchmark need (kbuild tools, openssl, qemu)
#   scripts/setup.sh --print-packages  the packages plain setup installs, one a line
#                                      (.ci/run checks the build needs nothing else)
#
# Packages are decided by name with dpkg-query, never by looking for files: a
# file glob once matched libclang-cpp.so (shipped by the image) and skipped
# libclang-dev, which bindgen needs (see scripts/check-packages.sh).
# Garage, the S3 server of the remote tests, is not built here: scripts/test.sh
# builds it the first time the remote tests need it (scripts/garage.sh install).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the build and the test suite use, by Debian package:
#   git, make, diffutils (cmp)   the demo, the tests' real git histories and builds
#   gcc, g++                     the C/C++ of the bundled RocksDB (librocksdb-sys), zstd, lz4 and ring; the tests' toy kernels
#   gcc-11                       tests/build_env.rs: a toy history that builds only with GCC 11 before a tag
#                                (and with the default GCC 12 after it); the shipped build environment
#                                table's compiler for kernels before v5.16
#   libclang-dev                 librocksdb-sys generates its bindings with libclang (bindgen)
#   binutils                     objcopy/strip in the signature tests
#   chromium                     the report test renders the HTML report headless
#   libc6-dev                    static glibc: reproducers and the VM's init are built with gcc -static
#   qemu-system-x86              the reproducer harness boots kernels in qemu-system-x86_64 (tests/repro.rs)
#   linux-image-cloud-amd64      a real kernel (/boot/vmlinuz-*) for tests/repro.rs to boot
#   strace                       tests/faults.rs kills `verify --repair` at each of its fsyncs (fault injection)
#   slurmctld, slurmd,           tests/slurm.rs and scripts/bench-slurm.sh start a real one-host
#   slurm-client, munge          Slurm cluster (scripts/slurm.sh); slurm-client is also what a
#                                driver with `--executor slurm` calls (sbatch, squeue, scontrol, scancel)
#   procps                       pgrep in scripts/slurm.sh stop
packages=(git make diffutils gcc g++ gcc-11 libclang-dev binutils chromium)
packages+=(libc6-dev qemu-system-x86 linux-image-cloud-amd64 strace)
packages+=(slurmctld slurmd slurm-client munge procps)
kernel_packages=(flex bison bc cpio openssl xz-utils libelf-dev libssl-dev qemu-system-x86)

case "${1:-}" in
  --print-packages) printf '%s\n' "${packages[@]}"; exit 0 ;;
  --print-kernel-packages) printf '%s\n' "${kernel_packages[@]}"; exit 0 ;;
  --kernel) packages+=("${kernel_packages[@]}") ;;
  "") ;;
  *) echo "setup.sh: unknown option $1 (see the header of $0)" >&2; exit 2 ;;
esac

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

need=()
for p in "${packages[@]}"; do
  installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Nothing the build or the tests use may come from a package not named above.
scripts/check-packages.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}"
# RocksDB's C++ as a unity build first (a fifth of its CPU time), then the
# Rust build links it (scripts/rocksdb.sh).
rocksdb_env=$(scripts/rocksdb.sh env) # set -e: a failed build stops here
eval "$rocksdb_env"
cargo build --release --locked
kcache=$CARGO_TARGET_DIR/release/kcache
echo "kcache built: $kcache"

# Shell completions and man pages, generated from the CLI's own definitions,
# into the user's XDG directories (no root needed; bash-completion, zsh with
# ~/.local/share/zsh/site-functions in fpath, fish and man(1) find them there).
data=${XDG_DATA_HOME:-$HOME/.local/share}
mkdir -p "$data/bash-completion/completions" "$data/zsh/site-functions" \
  "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions" "$data/man/man1"
"$kcache" completions bash >"$data/bash-completion/completions/kcache"
"$kcache" completions zsh >"$data/zsh/site-functions/_kcache"
"$kcache" completions fish >"${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions/kcache.fish"
"$kcache" man "$data/man/man1"
echo "completions (bash, zsh, fish) and man pages (man kcache, man kcache-bisect, ...) installed under $data"
