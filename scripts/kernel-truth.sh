#!/usr/bin/env bash
# Ground truth for the kernel benchmark: the signature of every commit of the
# history under the benchmark config, built once each with scripts/kernel/kbuild.sh,
# oldest first, incrementally in one tree (as a bisection's worktree does).
#
#   scripts/kernel-truth.sh REPO CONFIG OUT.tsv
#
# OUT.tsv: index, commit, signature ("-" if the build failed), subject. An
# existing OUT.tsv is resumed: commits already in it are not built again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "${1:?usage: kernel-truth.sh REPO CONFIG OUT.tsv}" && pwd)
config=$(realpath "${2:?config}")
out=$(realpath -m "${3:?output}")
target=${CARGO_TARGET_DIR:-$HOME/.cache/kcache-target}
kcache=${KCACHE:-$target/release/kcache}
tree=${KCACHE_TRUTH_TREE:-$HOME/.cache/kcache-bench/truth-tree}

[ -d "$tree/.git" ] || git clone -q --shared "$repo" "$tree"
touch "$out"
i=0
git -C "$repo" rev-list --reverse HEAD | while read -r commit; do
  if grep -q "^$i	$commit	" "$out"; then i=$((i + 1)); continue; fi
  git -C "$tree" fetch -q "$repo" "$commit" 2>/dev/null || true
  git -C "$tree" checkout -q --force --detach "$commit"
  start=$(date +%s)
  if (cd "$tree" && KCACHE_CONFIG=$config "$here/kernel/kbuild.sh" >"$tree.log" 2>&1); then
    sig=$("$kcache" sign "$tree/kcache-out/vmlinux" | cut -d' ' -f1)
  else
    sig=-
  fi
  printf '%d\t%s\t%s\t%s\n' "$i" "$commit" "$sig" "$(git -C "$repo" log -1 --format=%s "$commit")" >>"$out"
  echo "truth: [$i] ${commit:0:12} ${sig:0:16} $(( $(date +%s) - start ))s" >&2
  i=$((i + 1))
done
