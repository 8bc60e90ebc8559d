#!/usr/bin/env bash
# Loom: model-check every lock-free protocol (loom_tests/), then prove the
# models have teeth: rebuilt with the ABA tag switched off, the ABA models of
# the stack and of the run stack must fail; rebuilt with the push's (and the
# free's) Release weakened to Relaxed, the payload models (one block, one
# flush) must fail; rebuilt with a run's swap split into a load and a store,
# the model of a free racing a take must fail; rebuilt with the trim giving
# a chunk's blocks back before it releases their pages, the trim model must
# fail. Exits non-zero if a model fails or a tooth model passes.
#
# Env: LOOM_MAX_PREEMPTIONS (default 3), LOOM_LOG / LOOM_LOCATION /
# LOOM_CHECKPOINT_FILE as loom documents, for debugging a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Preemption bound 3: every known bug class of a Treiber stack with a tagged
# head needs at most two preemptions (ABA: one thread stalls between reading
# the head and its CAS, while another pops twice and pushes back; the stale
# pop result found by stack::push_pop_three_threads: two), so 3 gives one
# spare. Unbounded search explodes on the three-thread model; with 3 the whole
# suite explores ~580k interleavings in ~3.5 min (the first-use model ~3 min
# of it, the three-thread model ~20 s), and with 4 the three-thread model
# alone runs for many minutes.
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export RUSTFLAGS="--cfg lockfree_slab_loom"
# Under $CARGO_TARGET_DIR when it is set (a shared build dir), else target/.
target_root="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_DIR="$target_root/loom"
# Loom's own backtraces are what you want when a model fails.
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

say() { printf '\n== %s\n' "$*"; }

say "building the loom models ($CARGO_TARGET_DIR)"
cargo test --release --lib --no-run --quiet

mapfile -t models < <(cargo test --release --lib --quiet -- --list 2>/dev/null \
    | sed -n 's/^\(loom_tests::[^:]*::[^:]*\): test$/\1/p')
if [ "${#models[@]}" -eq 0 ]; then
    echo "no loom models found" >&2
    exit 1
fi

say "running ${#models[@]} models, LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS"
total_start=$(date +%s.%N)
failed=()
for model in "${models[@]}"; do
    start=$(date +%s.%N)
    if out=$(cargo test --release --lib --quiet -- --exact "$model" --nocapture --test-threads=1 2>&1); then
        status=ok
    else
        status=FAILED
        failed+=("$model")
    fi
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    line=$(grep -m1 '^loom model\|loom model ' <<<"$out" | sed 's/.*loom model /loom model /' || true)
    printf '%-7s %-72s %6.1fs  %s\n' "$status" "$model" "$secs" "${line#*: }"
    if [ "$status" = FAILED ]; then
        echo "$out" | tail -60
    fi
done
printf 'all models: %.1fs\n' "$(echo "$(date +%s.%N) - $total_start" | bc)"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "FAILED models: ${failed[*]}" >&2
    exit 1
fi

# The teeth. Each broken build gets its own target dir, seeded from the loom
# one: the test-only cfg goes to this crate alone through a workspace wrapper
# (.ci/loom-rustc-wrapper.sh), so RUSTFLAGS and every dependency stay as
# they are and only lockfree-slab is rebuilt.
teeth_failed=0
tooth() {
    local cfg=$1 model=$2 expect=$3
    local dir="$target_root/loom-${cfg#lockfree_slab_}"
    dir=${dir//_/-}
    say "teeth: --cfg $cfg must make $model fail ($expect)"
    if [ ! -d "$dir" ]; then
        cp -a "$target_root/loom" "$dir"
    fi
    local out start secs
    start=$(date +%s.%N)
    if out=$(CARGO_TARGET_DIR="$dir" RUSTC_WORKSPACE_WRAPPER="$root/.ci/loom-rustc-wrapper.sh" \
        LOCKFREE_SLAB_TEETH_CFG="--cfg $cfg" RUST_BACKTRACE=0 \
        cargo test --release --lib --quiet -- --exact "$model" --nocapture --test-threads=1 2>&1); then
        echo "UNEXPECTED PASS: $model passed with --cfg $cfg; the model cannot catch the bug it exists for" >&2
        teeth_failed=1
    elif grep -q "$expect" <<<"$out"; then
        secs=$(echo "$(date +%s.%N) - $start" | bc)
        printf 'ok: failed as it must (%.1fs incl. build): %s\n' "$secs" \
            "$(grep -m1 "$expect" <<<"$out")"
    else
        echo "$out" | tail -40
        echo "WRONG FAILURE: $model failed with --cfg $cfg, but not with \"$expect\"" >&2
        teeth_failed=1
    fi
}
tooth lockfree_slab_no_aba_tag loom_tests::stack::aba_stale_head_cannot_win \
    "blocks lost or handed out twice\|more blocks than exist"
tooth lockfree_slab_weak_push loom_tests::payload::previous_owners_writes_happen_before_next_owners_reads \
    "Causality violation"
tooth lockfree_slab_no_aba_tag loom_tests::runs::run_aba_cannot_put_a_run_on_the_stack_twice \
    "more runs than exist\|blocks lost or handed out twice"
tooth lockfree_slab_weak_push loom_tests::runs::a_flush_publishes_its_blocks_to_the_next_taker \
    "Causality violation\|read before its previous owner"
tooth lockfree_slab_runs_split_swap loom_tests::runs::a_free_racing_a_take_is_never_lost \
    "blocks lost or handed out twice"
tooth lockfree_slab_trim_push_first loom_tests::trim::trim_races_give_back_and_take \
    "trim released the page of a block\|trim released a page under a block"
exit "$teeth_failed"
