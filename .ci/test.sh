#!/usr/bin/env bash
# The test command (README: "run every test"). On a fresh machine with only
# the Rust toolchain it runs, in order:
#   1. every unit, integration and doc test (`cargo test`), then the unit
#      and integration tests again with the `checks` feature, which turns the
#      misuse checks on in every allocator they build (the global one too):
#      valid use must never be reported;
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
step "cargo test --features checks (every allocator checked: no false alarm)"
cargo test --features checks --lib --tests

step "loom models"
bash .ci/loom.sh

step "benchmark smoke run (builds and executes once; no timing asserted)"
cargo bench --bench '*' -- --test
cargo run --release --example compare -- --quick --out target/compare-quick
step "the C ABI: malloc/ under LD_PRELOAD, C tests and real programs" && bash .ci/malloc.sh

echo
echo "all tests passed in $(( $(date +%s) - start ))s"
