#!/bin/sh
# One step of plain `git bisect run`, as syzbot does without a cache: build,
# then run the test up to $PLAIN_RUNS times, stopping at the first failure.
# Used by scripts/demo.sh and scripts/bench-kernel.sh for their baselines.
#
# Environment: PLAIN_BUILD, PLAIN_TEST (commands), PLAIN_RUNS, PLAIN_COUNTS
# (a file that gets a line "build" or "run" for each one done), PLAIN_LOG
# (build output, default /dev/null).
# Exit: 0 good, 1 bad, 125 skip (build failed, or the test could not run).
echo build >>"$PLAIN_COUNTS"
sh -c "$PLAIN_BUILD" >>"${PLAIN_LOG:-/dev/null}" 2>&1 || exit 125
i=0
while [ "$i" -lt "$PLAIN_RUNS" ]; do
  echo run >>"$PLAIN_COUNTS"
  KCACHE_ARTIFACTS=. KCACHE_RUN=$i sh -c "$PLAIN_TEST" >/dev/null
  rc=$?
  [ "$rc" -eq 125 ] && exit 125
  [ "$rc" -ne 0 ] && exit 1
  i=$((i + 1))
done
exit 0
