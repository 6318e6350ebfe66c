#!/usr/bin/env bash
# RocksDB's C++ as a unity build: the sources librocksdb-sys would compile
# one by one (328 files, each re-reading the same large headers: ~16
# CPU-minutes, most of a cold `cargo build`), compiled as a few
# translation units that #include them (~3 CPU-minutes), the way RocksDB's
# own Makefile builds `unity.a`. librocksdb-sys then links this library
# instead of compiling (its ROCKSDB_LIB_DIR / ROCKSDB_STATIC switch), and
# kcache's build.rs adds libstdc++.
#
#   eval "$(scripts/rocksdb.sh env)"    build the library if missing, print the
#                                      exports that make cargo use it
#   scripts/rocksdb.sh path            where it is (or would be)
#
# The same sources (librocksdb-sys's own copy, the version Cargo.lock pins)
# with the defines and flags its build.rs gives them on x86_64 Linux with
# kcache's features (lz4 only, no RTTI, NDEBUG); -O1, as Cargo.toml's
# profile gives the bundled build. The library is keyed by the version and
# this script's own hash, built in a temporary directory and moved into
# place, so a killed build leaves nothing that looks finished.
# scripts/setup.sh and scripts/test.sh use it; a bare `cargo build`
# compiles RocksDB file by file instead (the same code, slower).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:?usage: rocksdb.sh env|path}
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
registry=${CARGO_HOME:-$HOME/.cargo}/registry/src

locked_version() { # the version Cargo.lock pins for crate $1
  awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/[" ]/, "", $0); sub(/^version=/, "", $0); print; exit }' Cargo.lock
}
crate_dir() { # crate $1's sources in cargo's registry
  local dirs=("$registry"/*/"$1-$(locked_version "$1")")
  [ -d "${dirs[0]}" ] || { cargo fetch --locked >&2; dirs=("$registry"/*/"$1-$(locked_version "$1")"); }
  [ -d "${dirs[0]}" ] || { echo "rocksdb.sh: no sources of $1 in $registry" >&2; exit 1; }
  printf '%s\n' "${dirs[0]}"
}

version=$(locked_version librocksdb-sys)
[ -n "$version" ] || { echo "rocksdb.sh: librocksdb-sys is not in Cargo.lock" >&2; exit 1; }
stamp=$(sha256sum "$0" | cut -c1-12)
dir="$target/rocksdb-unity/$version-$stamp"

if [ "$mode" = path ]; then
  echo "$dir/librocksdb.a"
  exit 0
fi
[ "$mode" = env ] || { echo "rocksdb.sh: unknown mode $mode (env or path)" >&2; exit 2; }
if [ "$(uname -m)" != x86_64 ]; then
  # The flags below are librocksdb-sys's for x86_64: elsewhere cargo
  # compiles RocksDB itself (no exports).
  echo "rocksdb.sh: $(uname -m): RocksDB is compiled by librocksdb-sys (file by file)" >&2
  exit 0
fi

work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

build() {
  local src lz4 jobs
  src=$(crate_dir librocksdb-sys)
  lz4=$(crate_dir lz4-sys)/liblz4/lib
  mkdir -p "$target/rocksdb-unity"
  work=$(mktemp -d "$target/rocksdb-unity/building.XXXXXX")
  # The files librocksdb-sys compiles (its list, less the build_version.cc
  # it replaces with its own), in 8 translation units of about equal size.
  grep -v '^util/build_version.cc$' "$src/rocksdb_lib_sources.txt" | sed '/^[[:space:]]*$/d' >"$work/files"
  split -n l/8 -d "$work/files" "$work/unit"
  for u in "$work"/unit0?; do
    sed "s|.*|#include \"$src/rocksdb/&\"|" "$u" >"$u.cc"
  done
  echo "#include \"$src/build_version.cc\"" >>"$work/unit07.cc"
  jobs=$(nproc)
  echo "rocksdb.sh: compiling RocksDB $version as 8 unity units, $jobs at a time" >&2
  printf '%s\n' "$work"/unit0?.cc | xargs -P "$jobs" -I{} \
    g++ -O1 -ffunction-sections -fdata-sections -fPIC -m64 -msse2 -std=c++17 \
      -DNDEBUG=1 -DLZ4=1 -DOS_LINUX -DROCKSDB_PLATFORM_POSIX -DROCKSDB_LIB_IO_POSIX \
      -DROCKSDB_SCHED_GETCPU_PRESENT -DROCKSDB_SUPPORT_THREAD_LOCAL \
      -I "$src/rocksdb/include" -I "$src/rocksdb" -I "$src/rocksdb/third-party/gtest-1.8.1/fused-src" \
      -I "$lz4" -I "$src" -w -c {} -o {}.o
  ar rcs "$work/librocksdb.a" "$work"/unit0?.cc.o
  rm -rf "$dir"
  mkdir -p "$dir"
  mv "$work/librocksdb.a" "$dir/librocksdb.a"
}

[ -f "$dir/librocksdb.a" ] || build
echo "export ROCKSDB_LIB_DIR='$dir' ROCKSDB_STATIC=1"
