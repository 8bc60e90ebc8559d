#!/usr/bin/env bash
# Fuzzing: a bounded cargo-fuzz run of tests/fuzz's target `slab` (the
# driver in tests/fuzz/driver.rs, which `cargo test` also runs on 3000
# fixed programs). libFuzzer mutates programs for one or two allocators and
# checks every answer, every byte and the statistics against a model, with
# AddressSanitizer on the system-fallback blocks.
#
# Env: LFS_FUZZ_SECONDS (default 60). Installs cargo-fuzz (pinned) if it is
# missing; if that or the nightly toolchain is not available, it says so on
# one line and exits 0 (the bounded run in `cargo test` still happened).
# A crash fails CI; the input is saved under tests/fuzz/artifacts/slab/ and
# docs/CORRECTNESS.md, "Fuzzing", says how to replay and minimise it.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${LFS_FUZZ_SECONDS:-60}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    # About 30 s of compiling on two cores.
    if ! timeout 600 cargo install cargo-fuzz --version 0.13.2 --locked >/dev/null 2>&1; then
        echo "fuzz: skipped: cargo-fuzz could not be installed (cargo install cargo-fuzz)"
        exit 0
    fi
fi

start=$(date +%s)
mkdir -p tests/fuzz/corpus/slab target
log=target/fuzz-slab.log
# Seeds: the corpus of earlier runs on this machine (if any) and the saved
# regressions; new inputs go to the first directory.
if cargo +nightly fuzz run --fuzz-dir tests/fuzz slab tests/fuzz/corpus/slab tests/fuzz/regressions -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
    echo "fuzz: ${secs}s of fuzzing found nothing; done in $(( $(date +%s) - start ))s (log: $log)"
else
    grep -v -E '^#[0-9]+' "$log" | tail -80
    echo "fuzz: FAILED (full log: $log; the failing input is in tests/fuzz/artifacts/slab/)" >&2
    exit 1
fi
