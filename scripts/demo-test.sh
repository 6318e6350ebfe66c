#!/bin/sh
# Boots the toy kernel once. Exit 0: it booted; exit 1 with a `crash: TITLE`
# line: it reported a BUG; exit 125: there was nothing to run.
# The run number (KCACHE_RUN under kcache, DEMO_SEED otherwise) is the seed
# a flaky bug depends on.
vmlinux="${KCACHE_ARTIFACTS:-.}/vmlinux"
[ -x "$vmlinux" ] || exit 125
seed="${KCACHE_RUN:-${DEMO_SEED:-1}}"
out=$("$vmlinux" "$seed" 2>&1)
rc=$?
bug=$(printf '%s\n' "$out" | grep -o 'BUG: .*' | head -n 1)
if [ -n "$bug" ]; then
	echo "crash: $bug"
	exit 1
fi
if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -q 'toy kernel booted'; then
	exit 0
fi
echo "crash: toy kernel exited with status $rc"
exit 1
