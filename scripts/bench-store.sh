#!/usr/bin/env bash
# Benchmark: `kcache put` and `kcache get` of a ~300 MB vmlinux-like ELF
# (real machine code from this system's libraries in allocated sections),
# next to `cp` and `zstd -1 -T0` of the same file, then `kcache lookup`
# latency against an index of a million build records.
#
#   scripts/bench-store.sh [WORKDIR]      SIZE_MB (default 300), RECORDS (default 1000000)
set -euo pipefail
# The RocksDB build setup.sh made (scripts/rocksdb.sh).
rocksdb_env=$("$(dirname "$0")"/rocksdb.sh env)
eval "$rocksdb_env"
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/kcache-bench-store}
size_mb=${SIZE_MB:-300}
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
kcache=${KCACHE:-$target/release/kcache}
mkdir -p "$work"
cd "$work"
elf=vmlinux-like-$size_mb.elf
if [ ! -f "$elf" ]; then
  # head closes the pipe early on purpose: ignore the SIGPIPE further up.
  { find /usr/lib /usr/bin /usr/libexec -type f -size +200k 2>/dev/null | sort | xargs cat 2>/dev/null |
    head -c "${size_mb}M" > code.bin; } || true
  printf 'int main(void) { return 0; }\n' > t.c
  gcc -O2 t.c -o base
  objcopy --add-section .ktext=code.bin --set-section-flags .ktext=alloc,load,contents,code base "$elf" 2>/dev/null
  rm -f code.bin
fi
bytes=$(stat -c %s "$elf")
mb() { awk -v b="$bytes" -v t="$1" 'BEGIN { printf "%.0f", b / 1048576 / (t > 0 ? t : 0.001) }'; }
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.3f", b - a }'; }

rm -rf cache out repo
git init -q repo
git -C repo -c user.name=b -c user.email=b@b commit -q --allow-empty -m bench
cat "$elf" > /dev/null
put=$(secs "$kcache" --cache-dir cache put --repo repo --toolchain bench "$elf")
stored=$("$kcache" --cache-dir cache stats --json | grep -o '"blob_bytes": [0-9]*' | awk '{print $2}')
put2=$(secs "$kcache" --cache-dir cache put --repo repo --toolchain bench2 "$elf")
stored2=$("$kcache" --cache-dir cache stats --json | grep -o '"blob_bytes": [0-9]*' | awk '{print $2}')
key=$("$kcache" --cache-dir cache key --repo repo --toolchain bench)
get=$(secs "$kcache" --cache-dir cache get --build-key "$key" --dest out)
cmp -s "$elf" "out/$elf" || { echo "bench: restored file differs" >&2; exit 1; }
cp_t=$(secs cp "$elf" copy.elf)
zstd_t=$(secs zstd -q -f -1 -T0 "$elf" -o copy.zst)
unzstd_t=$(secs zstd -q -f -d copy.zst -o copy2.elf)
rm -f copy.elf copy.zst copy2.elf

printf 'file: %s, %d MB; stored as %d MB of zstd blob\n' "$elf" $((bytes >> 20)) $((stored >> 20))
printf '%-34s %8s %8s\n' operation seconds MB/s
printf '%-34s %8s %8s\n' "kcache put (sign+hash+zstd+fsync)" "$put" "$(mb "$put")"
printf '%-34s %8s %8s   (blob bytes added: %d)\n' "kcache put, same artifact again" "$put2" "$(mb "$put2")" $((stored2 - stored))
printf '%-34s %8s %8s\n' "kcache get (unzstd+verify+write)" "$get" "$(mb "$get")"
printf '%-34s %8s %8s\n' "cp" "$cp_t" "$(mb "$cp_t")"
printf '%-34s %8s %8s\n' "zstd -1 -T0" "$zstd_t" "$(mb "$zstd_t")"
printf '%-34s %8s %8s\n' "zstd -d" "$unzstd_t" "$(mb "$unzstd_t")"

cd "$root"
KCACHE_BENCH_RECORDS=${RECORDS:-1000000} KCACHE_BENCH_DIR="$work/lookup-index" \
  cargo test --release --quiet --test bench_lookup -- --ignored --nocapture 2>&1 | grep -E '^(kcache|filled)'
