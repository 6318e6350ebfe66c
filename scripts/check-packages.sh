#!/usr/bin/env bash
# Fails when something the build or the test suite uses on this machine comes
# from a Debian package that scripts/setup.sh does not install (itself or as a
# dependency). .ci/run calls it before building, so a missing install step fails
# CI here instead of failing on a new user's machine (libclang once did: the
# image shipped libclang-cpp.so, a file glob took it for libclang, and only a
# hand-installed libclang-dev kept CI green).
#
# What is checked is what is used: every command the build and the tests run,
# and the libclang that bindgen (librocksdb-sys) would load, each resolved to
# the file on this machine and to the package that owns it with `dpkg -S`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Commands the build (cc, c++ through the cc crate), the scripts and the tests run.
commands=(git gcc g++ gcc-11 gcc-12 cc c++ make cmp objcopy strip sh bash awk sed od flock timeout chmod chromium
  qemu-system-x86_64 strace munged mungekey slurmctld slurmd sinfo sbatch squeue scontrol scancel pgrep)

mapfile -t named < <(scripts/setup.sh --print-packages)
# Packages every Debian system has (Essential or required): setup need not name them.
mapfile -t base < <(dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' |
  awk '$2 == "yes" || $3 == "required" { print $1 }')
# What setup's packages pull in, as installed here.
mapfile -t closure < <(apt-cache depends --recurse --installed --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances "${named[@]}" 2>/dev/null |
  grep -v '^ ' | tr -d '<>' | sort -u)
declare -A covered=()
for p in "${named[@]}" "${base[@]}" "${closure[@]}"; do covered[${p%%:*}]=1; done

failed=0
owner() { # FILE -> package name, or nothing
  local f pkg
  # usrmerge: dpkg may know /usr/bin/dash as /bin/dash.
  for f in "$1" "${1#/usr}"; do
    pkg=$({ dpkg -S "$f" 2>/dev/null || true; } | head -n1 | cut -d: -f1 | cut -d, -f1)
    [ -n "$pkg" ] && { echo "$pkg"; return 0; }
  done
  return 0
}
check_file() { # WHAT FILE
  local what=$1 file=$2 real pkg
  real=$(readlink -f "$file")
  pkg=$(owner "$real")
  [ -n "$pkg" ] || pkg=$(owner "$file")
  if [ -z "$pkg" ]; then
    echo "check-packages: $what ($real) belongs to no Debian package: install it through scripts/setup.sh" >&2
    failed=1
  elif [ -z "${covered[$pkg]:-}" ]; then
    echo "check-packages: $what ($real) comes from package $pkg, which scripts/setup.sh does not install" >&2
    failed=1
  fi
}

# A command may be on PATH twice (the image has a git under /usr/local too):
# it is covered when one of its copies comes from a package setup installs.
for c in "${commands[@]}"; do
  mapfile -t paths < <(type -ap "$c" || true)
  if [ ${#paths[@]} -eq 0 ]; then
    echo "check-packages: command $c is not installed (scripts/setup.sh should install it)" >&2
    failed=1
    continue
  fi
  ok=""
  for path in "${paths[@]}"; do
    pkg=$(owner "$(readlink -f "$path")")
    [ -n "$pkg" ] || pkg=$(owner "$path")
    if [ -n "$pkg" ] && [ -n "${covered[$pkg]:-}" ]; then ok=1; break; fi
  done
  [ -n "$ok" ] || check_file "command $c" "${paths[0]}"
done

# libclang as clang-sys finds it: LIBCLANG_PATH, llvm-config's libdir, the
# usual directories; libclang-cpp is a different library and does not count.
dirs=()
[ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
command -v llvm-config >/dev/null && dirs+=("$(llvm-config --libdir)")
dirs+=(/usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib)
libclang=""
for d in "${dirs[@]}"; do
  for f in "$d"/libclang.so* "$d"/libclang-[0-9]*.so*; do
    [ -e "$f" ] || continue
    libclang=$f
    break 2
  done
done
if [ -z "$libclang" ]; then
  echo "check-packages: no libclang.so for bindgen (librocksdb-sys): scripts/setup.sh must install libclang-dev" >&2
  failed=1
else
  check_file "bindgen's libclang" "$libclang"
fi


if [ "$failed" -ne 0 ]; then
  echo "check-packages: setup.sh installs: ${named[*]}" >&2
  exit 1
fi
echo "check-packages: everything the build and tests use comes from what scripts/setup.sh installs (${named[*]})"
