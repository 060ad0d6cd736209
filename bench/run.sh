#!/usr/bin/env bash
# The standard benchmark set, sized for the project's 2-core machine (a few minutes):
#   bench/run.sh all|standalone|cluster
# Builds the release pushd and pushbench, runs the scenarios into a new directory
# bench/results/<time>-<commit>/ (one JSON file per scenario run) and renders its report:
# bench/REPORT.md for `all`, RESULTS_DIR/REPORT.md otherwise.
# BASE=<commit>: also measure pushd built at that commit, alternating with the current one in
# the same run; the report then has a table of ratios (current / BASE).
# PERF=1: profile the server during every measured phase (perf record; see the report).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
cargo="${CARGO:-cargo}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${PUSHCLUSTER_BENCH_VENV:-$HOME/.cache/pushcluster/bench-venv}"

base_bin=""
if [ -n "${BASE:-}" ]; then
  base_bin="$(bench/build-pushd.sh "$BASE")"
fi
"$cargo" build --release -q -p pushd -p pushbench
pushbench="$target/release/pushbench"
if [ -n "$base_bin" ]; then
  pushd_args=(--pushd "base=$base_bin" --pushd "new=$target/release/pushd")
else
  pushd_args=(--pushd "$target/release/pushd")
fi
extra=()
[ -n "${PERF:-}" ] && extra+=(--perf)

run="bench/results/$(date -u +%Y%m%d-%H%M%S)-$(git rev-parse --short=12 HEAD)"
mkdir -p "$run"
bench() { "$pushbench" run "${pushd_args[@]}" "${extra[@]}" --out "$run" "$@"; }

if [ "$what" = all ] || [ "$what" = standalone ]; then
  # 10,000 idle connections, three fresh servers (the median is reported).
  bench --target standalone --scenario idle --users 10000 --rounds 3
  # 64 requests in flight flat out, then paced at 25/50/75 % of that; fan-out 1,000 and
  # 10,000 recipients, 100-byte and 64 KiB payloads.
  bench --target standalone --scenario unicast --users 10000 --paced 0.25,0.5,0.75
  bench --target standalone --scenario fanout --users 10000 \
    --fanout 1000x100,10000x100,10000x65536
fi
if [ "$what" = all ] || [ "$what" = cluster ]; then
  # auth, collect, 2 dispatch, 3 push nodes, Redis, FerretDB on PostgreSQL (or MONGODB_URI).
  bench --target cluster --scenario idle,unicast,fanout --users 3000 --paced 0.5 \
    --fanout 1000x100 --fanout-max 5 --duration 5s
fi

report="$run/REPORT.md"
[ "$what" = all ] && report="bench/REPORT.md"
"$venv/bin/python" bench/report.py "$run" --out "$report"
