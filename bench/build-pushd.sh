#!/usr/bin/env bash
# Prints the path of a release `pushd` built from COMMIT (built once, then cached): the "before"
# binary of a same-run comparison, `make bench BASE=COMMIT`.
#   bench/build-pushd.sh COMMIT
# The source is exported with `git archive` (no worktree, the repository is not touched) and
# built in the same cargo target dir as the current code, so dependencies are compiled once.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 COMMIT" >&2; exit 64; }
commit="$(git rev-parse --verify "$1^{commit}")"
cache="${PUSHCLUSTER_BENCH_CACHE:-$HOME/.cache/pushcluster/bench-base}"
bin="$cache/bin/pushd-$commit"
if [ ! -x "$bin" ]; then
  src="$cache/src-$commit"
  rm -rf "$src"
  mkdir -p "$src" "$cache/bin"
  git archive "$commit" | tar -x -C "$src"
  target="${CARGO_TARGET_DIR:-$PWD/target}"
  echo "== building pushd at ${commit:0:12} (target dir $target)" >&2
  (cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release -q -p pushd >&2)
  cp "$target/release/pushd" "$bin.tmp" && mv "$bin.tmp" "$bin"
  rm -rf "$src"
fi
echo "$bin"
