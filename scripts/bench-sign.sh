#!/usr/bin/env bash
# Benchmark: `kcache sign` on a large vmlinux-like ELF (big allocated
# sections plus a bigger debug section), against `sha256sum` of the whole
# file, in one run. Reports MB/s of allocated bytes, wall time and peak RSS.
#
#   scripts/bench-sign.sh [WORKDIR]     ALLOC_MB (default 400), DEBUG_MB (default 600)
set -euo pipefail
work=${1:-/tmp/kcache-bench-sign}
alloc_mb=${ALLOC_MB:-400}
debug_mb=${DEBUG_MB:-600}
kcache=${KCACHE:-${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}/release/kcache}
mkdir -p "$work"
cd "$work"
elf=vmlinux-like-${alloc_mb}-${debug_mb}.elf
if [ ! -f "$elf" ]; then
  printf 'int main(void) { return 0; }\n' > t.c
  gcc -O2 -g t.c -o base
  part=$((alloc_mb / 4))
  args=()
  for s in ktext krodata kdata kinit; do
    head -c "${part}M" /dev/urandom > "$s.bin"
    args+=(--add-section ".$s=$s.bin" --set-section-flags ".$s=alloc,load,contents,data")
  done
  head -c "${debug_mb}M" /dev/urandom > debug.bin
  args+=(--add-section ".debug_big=debug.bin")
  objcopy "${args[@]}" base "$elf"
  rm -f ./*.bin
fi
alloc_bytes=$("$kcache" sign --json "$elf" | grep -o '"size":[0-9]*' | awk -F: '{s += $2} END {print s}')
file_bytes=$(stat -c %s "$elf")

best() { # best wall seconds and peak RSS (KiB) of 3 runs of "$@"
  local b=999999 rss=0
  for _ in 1 2 3; do
    local out
    out=$( { /usr/bin/time -f '%e %M' "$@" >/dev/null; } 2>&1 | tail -n 1)
    b=$(awk -v a="$b" -v x="${out% *}" 'BEGIN { print (x < a ? x : a) }')
    rss=${out#* }
  done
  echo "$b $rss"
}
cat "$elf" > /dev/null # warm the page cache for both tools alike
read -r k_s k_rss < <(best "$kcache" sign "$elf")
read -r s_s s_rss < <(best sha256sum "$elf")
printf 'file: %s (%d MB, %d MB allocated and hashed)\n' "$elf" $((file_bytes >> 20)) $((alloc_bytes >> 20))
printf '%-14s %8s %14s %12s %10s\n' tool wall 'alloc MB/s' 'file MB/s' 'peak RSS'
awk -v t="$k_s" -v a="$alloc_bytes" -v f="$file_bytes" -v r="$k_rss" 'BEGIN { printf "%-14s %7.2fs %14.0f %12.0f %8.0f MB\n", "kcache sign", t, a/1048576/(t>0?t:0.01), f/1048576/(t>0?t:0.01), r/1024 }'
awk -v t="$s_s" -v a="$alloc_bytes" -v f="$file_bytes" -v r="$s_rss" 'BEGIN { printf "%-14s %7.2fs %14s %12.0f %8.0f MB\n", "sha256sum", t, "-", f/1048576/(t>0?t:0.01), r/1024 }'
