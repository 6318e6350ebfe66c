#!/usr/bin/env bash
# Builds the real kernel history the kernel benchmark bisects: Debian's
# `linux` 6.1.176-1 source package as a git repository, the upstream tree as
# the first commit, then one commit per patch of debian/patches/series, in
# order, each with the patch's own author, date and subject.
#
#   scripts/kernel-history.sh REPO [line|maintainer]
#
# Shapes: `line` (default) commits the patches one after another on master.
# `maintainer` makes each run of consecutive patches from one
# debian/patches/ directory (bugfix/all, features/x86, debian, ...) a topic
# branch forked from master's tip and merged back with `git merge --no-ff`
# ("Merge branch '<dir>-<n>'"), as a maintainer tree looks: the same patches
# and trees, but every patch reaches master through a merge.
#
# The source package is downloaded once into $KCACHE_BENCH/src (default
# ~/.cache/kcache-bench) with a private apt state that has a deb-src line for
# bookworm main; the system's apt configuration is not touched. Reruns reuse
# the tarballs and, when REPO already holds the full history, do nothing.
set -euo pipefail

repo=${1:?usage: kernel-history.sh REPO [line|maintainer]}
shape=${2:-line}
case "$shape" in
line | maintainer) ;;
*) echo "kernel-history: unknown shape '$shape' (line or maintainer)" >&2; exit 2 ;;
esac
version=6.1.176-1
bench=${KCACHE_BENCH:-$HOME/.cache/kcache-bench}
src=$bench/src

fetch_source() {
  [ -f "$src/linux_$version.dsc" ] && [ -f "$src/linux_${version%-*}.orig.tar.xz" ] &&
    [ -f "$src/linux_$version.debian.tar.xz" ] && return 0
  local apt=$bench/apt
  mkdir -p "$apt/lists/partial" "$apt/cache" "$src"
  echo "deb-src http://deb.debian.org/debian bookworm main" >"$apt/src.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/src.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")
  apt-get "${opts[@]}" update >/dev/null
  (cd "$src" && apt-get "${opts[@]}" source --download-only "linux=$version" >/dev/null)
}

# One header field of a patch (format-patch or DEP-3). A folded Subject is
# joined; a DEP-3 Description keeps its first line (the rest is the body).
header() {
  awk -v keys="$2" '
    BEGIN { n = split(keys, k, "|") }
    /^(---|diff |Index: )/ { exit }
    found && /^[ \t]/ && key != "Description" { sub(/^[ \t]+/, " "); value = value $0; next }
    found { exit }
    { for (i = 1; i <= n; i++) if (index($0, k[i] ":") == 1) {
        key = k[i]; value = substr($0, length(key) + 2); sub(/^[ \t]+/, "", value); found = 1; next } }
    END { print value }' "$1"
}

commit_patch() {
  local patch=$1 name=$2 author date subject
  author=$(header "$patch" "From|Author")
  date=$(header "$patch" "Date")
  subject=$(header "$patch" "Subject|Description" | sed -E 's/^\[PATCH[^]]*\] *//')
  [ -n "$subject" ] || subject=$name
  case "$author" in
  *"<"*">"*) ;;
  "") author="Debian Kernel Team <debian-kernel@lists.debian.org>" ;;
  *) author="$author <debian-kernel@lists.debian.org>" ;;
  esac
  # A patch without a date keeps the previous commit's date.
  if [ -z "$date" ] || ! date -d "$date" >/dev/null 2>&1; then
    date=$(git log -1 --format=%aD)
  fi
  git apply --index -p1 "$patch"
  GIT_AUTHOR_NAME=${author%% <*} GIT_AUTHOR_EMAIL=$(sed -E 's/.*<(.*)>.*/\1/' <<<"$author") \
    GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
    git commit -q --allow-empty -m "$subject" -m "Debian patch: $name"
}

# Maintainer shape: the topic branch the next patch goes on, by its
# directory; a new directory merges the current branch and opens another.
topic=''
topics=0
open_topic() {
  local dir=$1
  [ "$dir" = "$topic" ] && return 0
  close_topic
  topic=$dir
  topics=$((topics + 1))
  git checkout -q -b "topic/${dir//\//-}-$topics" master
}
close_topic() {
  [ -n "$topic" ] || return 0
  local branch date
  branch=$(git rev-parse --abbrev-ref HEAD)
  date=$(git log -1 --format=%aD)
  git checkout -q master
  GIT_AUTHOR_NAME="kcache bench" GIT_AUTHOR_EMAIL="kcache@bench.invalid" \
    GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
    git merge -q --no-ff -m "Merge branch '${branch#topic/}'" "$branch"
  topic=''
}

fetch_source
series_count() { grep -v '^[[:space:]]*#' "$1" | grep -c .; }
# An empty marker is an older line history.
marker=$(cat "$repo/.kcache-history-complete" 2>/dev/null || echo none)
if [ -d "$repo/.git" ] && [ "${marker:-line}" = "$shape" ]; then
  echo "kernel-history: $repo ($shape) is complete"
  exit 0
fi

rm -rf "$repo"
mkdir -p "$repo"
tar -xf "$src/linux_${version%-*}.orig.tar.xz" -C "$repo" --strip-components=1
deb=$(mktemp -d)
trap 'rm -rf "$deb"' EXIT
tar -xf "$src/linux_$version.debian.tar.xz" -C "$deb"
cd "$repo"
git init -q -b master .
git config commit.gpgsign false
git config gc.auto 0
upstream_date=$(TZ=UTC date -R -r Makefile)
git add -A
GIT_AUTHOR_NAME="Linux upstream" GIT_AUTHOR_EMAIL="linux-kernel@vger.kernel.org" \
  GIT_COMMITTER_NAME="kcache bench" GIT_COMMITTER_EMAIL="kcache@bench.invalid" \
  GIT_AUTHOR_DATE=$upstream_date GIT_COMMITTER_DATE=$upstream_date \
  git commit -q -m "Linux ${version%-*} (upstream tree of Debian linux $version)"
export GIT_COMMITTER_NAME="kcache bench" GIT_COMMITTER_EMAIL="kcache@bench.invalid"
total=$(series_count "$deb/debian/patches/series")
n=0
while read -r name _; do
  case "$name" in '' | '#'*) continue ;; esac
  n=$((n + 1))
  if [ "$shape" = maintainer ]; then
    open_topic "$(dirname "$name")"
  fi
  commit_patch "$deb/debian/patches/$name" "$name"
done <"$deb/debian/patches/series"
close_topic
[ "$n" -eq "$total" ] || { echo "kernel-history: applied $n of $total patches" >&2; exit 1; }
echo "$shape" >.kcache-history-complete
echo ".kcache-history-complete" >>.git/info/exclude
echo "kernel-history: $repo ($shape): $(git rev-list --count HEAD) commits ($n patches, $topics merged topic branches)"
