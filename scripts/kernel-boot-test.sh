#!/usr/bin/env bash
# The kernel benchmark's test: boot the built kernel in qemu-system-x86_64
# (TCG, no disk, no init) and read its console.
#
# The predicate: Yama's ptrace protection must be on at boot. Debian's patch
# "yama: Disable by default" (series entry 40) turns it off and changes the
# boot message from "Yama: becoming mindful." to "Yama: disabled by default;
# ...": a behaviour regression a boot can observe, like a security default a
# CI boot test checks.
#
# Run by kcache in a directory of its own that links the restored artifacts (KCACHE_ARTIFACTS), or by
# hand with the boot image as $1. Exit 0 ok, 1 regression ("crash: TITLE"
# on stdout), 125 the kernel did not boot far enough to tell.
set -uo pipefail
image=${1:-${KCACHE_ARTIFACTS:-.}/kcache-out/boot-image}
[ -f "$image" ] || { echo "boot-test: no boot image at $image" >&2; exit 125; }
console=$(mktemp)
trap 'rm -f "$console"' EXIT
# panic=-1 reboots at the "no root filesystem" panic; -no-reboot makes
# qemu exit then, so a boot takes seconds.
timeout 120 qemu-system-x86_64 -accel tcg -m 256 -smp 1 -nographic -no-reboot \
  -kernel "$image" -append "console=ttyS0 panic=-1 loglevel=7" </dev/null >"$console" 2>&1
if ! grep -q "Linux version" "$console"; then
  echo "boot-test: no kernel banner on the console" >&2
  tail -n 5 "$console" >&2
  exit 125
fi
if grep -q "Yama: becoming mindful." "$console"; then
  exit 0
fi
if grep -q "Yama: disabled by default" "$console"; then
  echo "crash: Yama ptrace protection disabled at boot"
  exit 1
fi
echo "boot-test: no Yama message on the console" >&2
exit 125
