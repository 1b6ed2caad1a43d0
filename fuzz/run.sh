#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 60) and prints the executions
# per target. Needs cargo-fuzz (`cargo install cargo-fuzz`); a stable toolchain works with
# RUSTC_BOOTSTRAP=1, set here. Findings land in fuzz/artifacts/<target>/; turn each into a
# named regression test.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cohort-target}"
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer none
for target in $targets; do
    mkdir -p "corpus/$target"
    log="$(mktemp)"
    cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536 >"$log" 2>&1 || {
        echo "$target: FAILED"; tail -40 "$log"; exit 1; }
    runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo "?")
    echo "$target: $runs executions in ${seconds} s, no crash"
done
