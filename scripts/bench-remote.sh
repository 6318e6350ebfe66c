#!/usr/bin/env bash
# Benchmark: a ~300 MB vmlinux-like ELF through a 3-node Garage cluster on
# loopback (upload with `kcache put`, download with `kcache get` into an
# empty cache), and member B's warm bisection of the demo history that
# member A bisected.
#
#   scripts/bench-remote.sh [WORKDIR]      SIZE_MB (default 300)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-/tmp/kcache-bench-remote}
size_mb=${SIZE_MB:-300}
kcache=${KCACHE:-${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}/release/kcache}
rm -rf "$work"
mkdir -p "$work"
cd "$work"
"$here/garage.sh" start "$work/garage" 28900 > /dev/null
trap '"$here/garage.sh" stop "$work/garage"' EXIT
# shellcheck disable=SC1091
source "$work/garage/env"
remote=s3://kcache/bench

{ find /usr/lib /usr/bin /usr/libexec -type f -size +200k 2>/dev/null | sort | xargs cat 2>/dev/null |
  head -c "${size_mb}M" > code.bin; } || true
printf 'int main(void) { return 0; }\n' > t.c
gcc -O2 t.c -o base
objcopy --add-section .ktext=code.bin --set-section-flags .ktext=alloc,load,contents,code base vmlinux 2>/dev/null
rm -f code.bin
bytes=$(stat -c %s vmlinux)
git init -q repo
git -C repo -c user.name=b -c user.email=b@b commit -q --allow-empty -m bench
secs() { local s e; s=$(date +%s.%N); "$@" > /dev/null; e=$(date +%s.%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", b - a }'; }
mbs() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / 1048576 / t }'; }

local_put=$(secs "$kcache" --cache-dir local-only put --repo repo --toolchain bench vmlinux)
put=$(secs "$kcache" --cache-dir a --remote "$remote" put --repo repo --toolchain bench vmlinux)
stored=$("$kcache" --cache-dir a stats --json | grep -o '"blob_bytes": [0-9]*' | awk '{print $2}')
key=$("$kcache" --cache-dir a key --repo repo --toolchain bench)
get=$(secs "$kcache" --cache-dir b --remote "$remote" get --build-key "$key" --dest out)
cmp -s vmlinux out/vmlinux || { echo "bench: the restored vmlinux differs" >&2; exit 1; }
local_get=$(secs "$kcache" --cache-dir b get --build-key "$key" --dest out2)

"$here/make-demo-repo.sh" demo > /dev/null
good=$(git -C demo rev-list --max-parents=0 HEAD)
run_bisect() {
  "$kcache" --cache-dir "$1" --remote "$remote" bisect --repo demo --good "$good" --bad HEAD \
    --build 'make -s vmlinux' --test "$here/demo-test.sh" --json 2> /dev/null
}
cold=$(secs run_bisect ma)
warm=$(secs run_bisect mb)
run_bisect mb2 > mb2.json
builds=$(grep -o '"builds_done": [0-9]*' mb2.json | head -n 1 | awk '{print $2}')
runs=$(grep -o '"runs_done": [0-9]*' mb2.json | head -n 1 | awk '{print $2}')

printf 'vmlinux: %d MB (a %d MB zstd blob on the remote)\n' $((bytes >> 20)) $((stored >> 20))
printf '%-46s %8s %8s\n' operation seconds 'MB/s'
printf '%-46s %8s %8s\n' "kcache put, local only" "$local_put" "$(mbs "$bytes" "$local_put")"
printf '%-46s %8s %8s\n' "kcache put + upload to Garage (3 replicas)" "$put" "$(mbs "$bytes" "$put")"
printf '%-46s %8s %8s\n' "kcache get, download from Garage + verify" "$get" "$(mbs "$bytes" "$get")"
printf '%-46s %8s %8s\n' "kcache get, local tier" "$local_get" "$(mbs "$bytes" "$local_get")"
printf '%-46s %8s\n' "demo bisection, member A (cold)" "$cold"
printf '%-46s %8s   (%s builds, %s test runs)\n' "demo bisection, member B (warm from Garage)" "$warm" "$builds" "$runs"
