#!/usr/bin/env bash
# RUSTC_WORKSPACE_WRAPPER for .ci/loom.sh: cargo runs it for this crate only
# (not for dependencies), so the test-only cfgs in $LOCKFREE_SLAB_TEETH_CFG
# reach lockfree-slab without changing RUSTFLAGS, and the dependencies built
# for the plain loom run stay valid.
rustc="$1"
shift
# shellcheck disable=SC2086 # the cfg list is split on purpose
exec "$rustc" "$@" ${LOCKFREE_SLAB_TEETH_CFG:-}
