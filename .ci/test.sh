#!/usr/bin/env bash
# The test command (README: "run every test"). On a fresh machine with only
# the Rust toolchain it runs, in order:
#   1. every unit, integration and doc test (`cargo test`);
#   2. every loom model, bounded, plus the teeth checks (.ci/loom.sh);
#   3. a smoke run of the benchmarks: each criterion bench executes once
#      (`--test`, no timing) and the comparison tool runs a tiny
#      configuration. Nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s\n' "$*"; }
start=$(date +%s)

step "cargo test (unit, integration, doc tests)"
cargo test --all-targets
cargo test --doc

step "loom models"
bash .ci/loom.sh

step "benchmark smoke run (builds and executes once; no timing asserted)"
cargo bench --bench '*' -- --test
cargo run --release --example compare -- --quick --out target/compare-quick

echo
echo "all tests passed in $(( $(date +%s) - start ))s"
