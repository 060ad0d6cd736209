#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target for FUZZ_SECONDS (default 60) each, one after
# another, starting from its committed seed corpus (corpus/<target>/, never written to: new
# inputs go to a working corpus beside the build). Installs cargo-fuzz if it is missing
# (cached under ~/.cache/pushcluster/tools). Works on stable Rust: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass its -Z flags (sanitizer, coverage instrumentation).
#
#   FUZZ_SECONDS=5 make fuzz            # a smoke run: a few seconds per target
#   FUZZ_TARGETS="jwt_parse" make fuzz  # only some targets
#   FUZZ_RUNS=1000000 make fuzz         # stop a target after this many executions (or FUZZ_SECONDS)
#   FUZZ_SANITIZER=none make fuzz       # without AddressSanitizer (about twice as fast)
#   FUZZ_JOBS=2 make fuzz               # libFuzzer worker processes per target
# A crash stops the run; its input is in fuzz/artifacts/<target>/ and
# `cargo fuzz run <target> fuzz/artifacts/<target>/crash-…` replays it.
set -euo pipefail
cd "$(dirname "$0")"

version=0.13.2
tools="${PUSHCLUSTER_TOOLS:-$HOME/.cache/pushcluster/tools}"
root="$tools/cargo-fuzz-$version"
if [ ! -x "$root/bin/cargo-fuzz" ]; then
    echo "== installing cargo-fuzz $version into $root"
    cargo install cargo-fuzz --version "$version" --locked --root "$root"
fi
export PATH="$root/bin:$PATH"
export RUSTC_BOOTSTRAP=1

seconds="${FUZZ_SECONDS:-60}"
runs="${FUZZ_RUNS:-}"
sanitizer="${FUZZ_SANITIZER:-address}"
jobs="${FUZZ_JOBS:-1}"
target_dir="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}"
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
build=(--sanitizer "$sanitizer" --debug-assertions --target-dir "$target_dir")

echo "== building fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build "${build[@]}"

limit=(-max_total_time="$seconds")
if [ -n "$runs" ]; then
    limit+=(-runs="$runs")
fi
if [ "$jobs" -gt 1 ]; then
    limit+=(-jobs="$jobs" -workers="$jobs")
fi
summary=()
for t in $targets; do
    work="$target_dir/corpus/$t"
    mkdir -p "$work" "artifacts/$t"
    log="$target_dir/$t.log"
    echo "== $t: ${limit[*]} (log: $log)"
    # New inputs go to $work; the committed seeds are read only.
    if ! cargo fuzz run "${build[@]}" "$t" "$work" "corpus/$t" -- \
        "${limit[@]}" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "== $t FAILED: see $log and fuzz/artifacts/$t/"
        exit 1
    fi
    # libFuzzer's closing lines: executions, rate, coverage.
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true)
    rate=$(grep -E '^stat::average_exec_per_sec' "$log" | tail -n 1 | awk '{print $2}')
    cov=$(grep -E '#[0-9]+.*(DONE|pulse|NEW|REDUCE).*cov: ' "$log" | tail -n 1 |
        sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+).*corp: ([0-9]+).*/cov \1, ft \2, corpus \3/')
    summary+=("$t: ${done_line:-?} — ${rate:-?} exec/s — ${cov:-?}")
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
