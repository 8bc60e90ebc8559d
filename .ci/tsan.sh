#!/usr/bin/env bash
# ThreadSanitizer: the multi-threaded tests (the crate's unit tests and the
# integration tests in tests/) built with -Zsanitizer=thread, std included
# (-Zbuild-std), so every atomic and every plain access of the allocator and
# of the tests is checked for data races.
#
# The property test (tests/it/model.rs) is single-threaded and slow when
# instrumented; it is left to the native run. The stress tests are shrunk
# with LFS_STRESS_OPS (operations per thread; default 40 000 natively).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    echo "tsan: skipped: the nightly toolchain or its rust-src component is missing (rustup component add --toolchain nightly rust-src)"
    exit 0
fi

export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export CARGO_TARGET_DIR="$PWD/target/tsan"
export LFS_STRESS_OPS="${LFS_STRESS_OPS:-20000}"
# The fuzz driver's bounded run (tests/it/fuzz_smoke.rs) keeps its 3000
# programs (about 13 s instrumented): its storms are the one place where two
# threads work on the same allocators with a model checking every answer.
export LFS_FUZZ_CASES="${LFS_FUZZ_CASES:-3000}"
# Fail on the first report; keep both stacks of a race.
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}"

# tests/it/ is one binary of the tests that share a process; every other
# tests/*.rs is a binary of its own.
tests=(--test it)
for f in tests/*.rs; do
    name=$(basename "$f" .rs)
    case "$name" in
        reserve_failure) ;; # limits RLIMIT_AS, which TSan's shadow memory needs
        trim_rss) ;; # single-threaded; compares RSS to the page, which TSan's shadow memory blurs
        *) tests+=(--test "$name") ;;
    esac
done

start=$(date +%s)
# Every binary gets the same --skip filters, each a substring of the test
# path ("module::name" in tests/it). `model::` is the property test above.
# populate_means_no_page_faults_after_build counts page faults, and TSan's
# shadow memory faults on every newly touched application page; it checks no
# concurrency and runs natively.
cargo +nightly test -Zbuild-std --target "$target" --lib "${tests[@]}" "$@" \
    -- --skip model:: --skip populate_means_no_page_faults_after_build
echo "tsan: done in $(( $(date +%s) - start ))s (LFS_STRESS_OPS=$LFS_STRESS_OPS, LFS_FUZZ_CASES=$LFS_FUZZ_CASES)"
