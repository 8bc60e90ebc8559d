#!/usr/bin/env bash
# Miri: the crate's unit tests (stack, size-class table, carver, class pool,
# configuration; small pools) under Miri with strict provenance, so
# integer-to-pointer casts, out-of-bounds or misaligned accesses, data races
# between Miri's threads and leaks are reported. Tests too slow for Miri are
# `#[cfg_attr(miri, ignore = "...")]` in the source.
#
# Under Miri the region comes from a zeroed, page-aligned heap allocation
# (src/os.rs), so what Miri cannot check is the mmap/munmap calls themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped: the nightly toolchain's miri component is missing (rustup component add --toolchain nightly miri rust-src)"
    exit 0
fi

# -Zmiri-strict-provenance: no pointer may be made from a bare integer
# (the crate computes block addresses from the region base with
# provenance-preserving pointer arithmetic).
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
start=$(date +%s)
cargo +nightly miri test --lib "$@"
echo "miri: done in $(( $(date +%s) - start ))s"
