#!/usr/bin/env bash
# The standard benchmark set, sized for the project's 2-core machine:
#   bench/run.sh all|idle|standalone|cluster
#   idle        10,000 idle connections: server RSS and CPU per connection (~1 min)
#   standalone  unicast (2,000 acking users, 64 requests in flight, 100-byte payloads, flat
#               out then paced at half that rate) and fan-out (one message to 5,000 and to
#               10,000 connected users) on `pushd standalone` (~3 min)
#   cluster     unicast and fan-out through auth, collect, 2 dispatch, 2 push nodes, Redis and
#               FerretDB, on PostgreSQL and on SQLite (FERRETDB_BACKENDS; or MONGODB_URI) (~5 min)
#   all         the three, and bench/REPORT.md
# Builds the release pushd and pushbench, runs the scenarios into a new directory
# bench/results/<time>-<commit>/ (one JSON file per scenario run, commands.txt) and renders
# its report: bench/REPORT.md for `all`, RESULTS_DIR/REPORT.md otherwise.
# ROUNDS=n (default 3): fresh servers per scenario and binary; the report gives medians.
# BASE=<commit>: also measure pushd built at that commit (bench/build-pushd.sh), alternating
# with the current one round by round; the report then compares them.
# PERF=1: profile the server during every measured phase (perf record; see the report).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
case "$what" in all | idle | standalone | cluster) ;; *)
  echo "usage: $0 all|idle|standalone|cluster" >&2
  exit 64
  ;;
esac
cargo="${CARGO:-cargo}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${PUSHCLUSTER_BENCH_VENV:-$HOME/.cache/pushcluster/bench-venv}"
rounds="${ROUNDS:-3}"
backends="${FERRETDB_BACKENDS:-postgresql sqlite}"

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
extra=(--rounds "$rounds")
[ -n "${PERF:-}" ] && extra+=(--perf)

run="${RESULTS_DIR:-bench/results/$(date -u +%Y%m%d-%H%M%S)-$(git rev-parse --short=12 HEAD)}"
mkdir -p "$run"
bench() {
  echo "pushbench run ${pushd_args[*]} ${extra[*]} --out $run $*" | tee -a "$run/commands.txt"
  "$pushbench" run "${pushd_args[@]}" "${extra[@]}" --out "$run" "$@"
}

if [ "$what" = all ] || [ "$what" = idle ]; then
  bench --target standalone --scenario idle --users 10000
fi
if [ "$what" = all ] || [ "$what" = standalone ]; then
  bench --target standalone --scenario unicast --users 2000 --in-flight 64 --payload 100 \
    --paced 0.5 --duration 5s
  bench --target standalone --scenario fanout --users 10000 --fanout 5000x100,10000x100 \
    --fanout-max 20 --fanout-duration 3s
fi
if [ "$what" = all ] || [ "$what" = cluster ]; then
  if [ -n "${MONGODB_URI:-}" ]; then backends=mongodb; fi
  for backend in $backends; do
    echo "PUSHCLUSTER_FERRETDB_BACKEND=$backend" >>"$run/commands.txt"
    PUSHCLUSTER_FERRETDB_BACKEND="$backend" bench --target cluster --scenario unicast,fanout \
      --users 2000 --push-nodes 2 --dispatchers 1 --in-flight 64 --paced 0.5 --duration 5s \
      --fanout 1000x100 --fanout-max 3
  done
fi

report="$run/REPORT.md"
[ "$what" = all ] && report="bench/REPORT.md"
py=python3
[ -x "$venv/bin/python" ] && py="$venv/bin/python"
"$py" bench/report.py "$run" --out "$report"
