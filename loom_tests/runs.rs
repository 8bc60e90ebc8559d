//! A class's free blocks by address (`class/runs.rs`): runs of blocks with
//! a bitmap word each, and a tagged stack of the runs that have any.
//!
//! - `run_aba_cannot_put_a_run_on_the_stack_twice`: the ABA interleaving of
//!   the run stack. With the tag off (`--cfg lockfree_slab_no_aba_tag`) it
//!   fails, which `.ci/loom.sh` checks.
//! - `a_free_racing_a_take_is_never_lost`: a free or-s its bit into the run
//!   a taker is emptying, and the taker or-s back what it does not keep.
//!   With the swap split into a load and a store
//!   (`--cfg lockfree_slab_runs_split_swap`) the free is lost.
//! - `takes_in_place_race_a_pop_and_a_free`: takes that clear bits in place
//!   race each other and the main thread's free.
//! - `a_flush_publishes_its_blocks_to_the_next_taker`: the previous owner's
//!   writes to every block of a flush happen-before the next owner's reads,
//!   whether the flush pushed the run or found it on the stack already. With
//!   the frees' Release weakened (`--cfg lockfree_slab_weak_push`) it fails.
//! - `trim_detaches_the_runs_while_a_refill_races`: a trim's detach takes
//!   every free run, and a refill that finds the class dry while the trim
//!   holds them waits for them instead of failing.

use core::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use super::{check, Payloads, PoolFixture};
use crate::class::runs::RUN_BLOCKS;
use crate::class::stack::NIL;

/// Two runs: blocks `0..64` and `64..128`.
const CAP: u32 = 2 * RUN_BLOCKS;

/// A pool with every block carved and held by the model (none free).
fn carved_pool() -> PoolFixture {
    let f = PoolFixture::new(CAP);
    assert_eq!(take(&f, CAP).len(), CAP as usize);
    f
}

/// Takes one batch (at most `max` blocks) as block indices.
fn take(f: &PoolFixture, max: u32) -> Vec<u32> {
    let mut got = vec![0; max as usize];
    let n = f.pool.take_batch(max, |position, block| got[position as usize] = f.pool.index_of(block));
    got.truncate(n as usize);
    got
}

/// Gives `indices` back as one batch (a flush).
fn give(f: &PoolFixture, indices: &[u32]) {
    let blocks: Vec<NonNull<u8>> = indices.iter().map(|&i| f.pool.address_of(i)).collect();
    // SAFETY: the caller took these blocks from the pool and stops using them.
    unsafe { f.pool.give_batch(&blocks) };
}

/// Asserts that `got` is exactly `want`, each block once.
#[track_caller]
fn assert_blocks(mut got: Vec<u32>, want: &[u32]) {
    got.sort_unstable();
    assert_eq!(got, want, "blocks lost or handed out twice");
}

/// The ABA interleaving of the run stack. A stale take reads the head run
/// `r1` and its link `r0`, and is paused before its CAS. Meanwhile the other
/// thread takes `r1` and `r0` (emptying both), frees `r1`'s block (so `r1`
/// is on top again, now alone) and then `r0`'s. Without the tag the stale
/// CAS lands between those two frees and installs `r0` as the head while
/// its word is 0; the free of `r0`'s block then pushes `r0` onto itself: a
/// cycle, and runs handed out without end.
#[test]
fn run_aba_cannot_put_a_run_on_the_stack_twice() {
    check("runs::run_aba_cannot_put_a_run_on_the_stack_twice", || {
        let f = Arc::new(carved_pool());
        give(&f, &[0]); // run 0
        give(&f, &[64]); // run 1, on top
        let stale_taker = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let runs = f.pool.runs();
                let head = runs.stack().head();
                if head.index == NIL {
                    return Vec::new();
                }
                let next = runs.stack().next_of(head.index);
                if runs.stack().try_replace_head(head, next).is_err() {
                    return Vec::new();
                }
                let bits = runs.swap_out(head.index);
                (0..RUN_BLOCKS).filter(|b| bits >> b & 1 == 1).map(|b| head.index * RUN_BLOCKS + b).collect()
            })
        };
        let take_take_give = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let a = take(&f, 1);
                let b = take(&f, 1);
                give(&f, &a);
                give(&f, &b);
            })
        };
        let mut got = stale_taker.join().unwrap();
        take_take_give.join().unwrap();
        // (`len` walks the stack, bounded: a cycle reads as 3.)
        assert!(f.pool.runs().stack().len() <= 2, "the run stack holds more runs than exist");
        got.extend(f.drain());
        assert_blocks(got, &[0, 64]);
    });
}

/// Block 0 is free in run 0. One thread takes one block, which pops the
/// run to empty it; another frees block 2 into the same run meanwhile, so
/// the taker may find two blocks and or one back. Every block ends up
/// either taken or free, exactly once, and run 0 is on the stack at most
/// once.
#[test]
fn a_free_racing_a_take_is_never_lost() {
    check("runs::a_free_racing_a_take_is_never_lost", || {
        let f = Arc::new(carved_pool());
        give(&f, &[0]);
        let taker = {
            let f = Arc::clone(&f);
            thread::spawn(move || take(&f, 1))
        };
        let freer = {
            let f = Arc::clone(&f);
            thread::spawn(move || give(&f, &[2]))
        };
        let mut got = taker.join().unwrap();
        freer.join().unwrap();
        assert_eq!(got.len(), 1, "a block was free: the take finds one");
        assert!(f.pool.runs().stack().len() <= 1, "a run is on the stack at most once");
        got.extend(f.drain());
        assert_blocks(got, &[0, 2]);
    });
}

/// Blocks 0 and 1 are free in run 0. Two threads take one block each,
/// so each clears a bit of the run's word in place (leaving it on the
/// stack), or pops it when only one is left; the main thread frees block 3. No
/// block is handed out twice, none is lost.
#[test]
fn takes_in_place_race_a_pop_and_a_free() {
    check("runs::takes_in_place_race_a_pop_and_a_free", || {
        let f = Arc::new(carved_pool());
        give(&f, &[0, 1]);
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let f = Arc::clone(&f);
                thread::spawn(move || take(&f, 1))
            })
            .collect();
        give(&f, &[3]);
        let mut got: Vec<u32> = takers.into_iter().flat_map(|t| t.join().unwrap()).collect();
        assert_eq!(got.len(), 2, "two blocks were free, a third coming: both takes find one");
        assert!(f.pool.runs().stack().len() <= 1, "a run is on the stack at most once");
        got.extend(f.drain());
        assert_blocks(got, &[0, 1, 3]);
    });
}

/// Block 1 is already free, so run 0 is on the stack: the writer's flush of
/// blocks 0 (run 0, no push: only its `fetch_or` publishes) and 64 (run 1,
/// pushed) must both reach the reader with the writer's contents.
#[test]
fn a_flush_publishes_its_blocks_to_the_next_taker() {
    check("runs::a_flush_publishes_its_blocks_to_the_next_taker", || {
        let p = Arc::new(Payloads::new(carved_pool()));
        give(&p.f, &[1]);
        let mine = [0u32, 64];
        let writer = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                for &i in &mine {
                    // SAFETY: this thread holds the block, so it owns its cell.
                    p.cells[i as usize].with_mut(|v| unsafe { *v = 40 + u64::from(i) });
                }
                give(&p.f, &mine);
            })
        };
        let reader = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                for _ in 0..2 {
                    for i in take(&p.f, 2) {
                        // SAFETY: we hold the block now, so we own its cell.
                        let seen = p.cells[i as usize].with(|v| unsafe { *v });
                        let expected = if mine.contains(&i) { 40 + u64::from(i) } else { 0 };
                        assert_eq!(seen, expected, "block {i} read before its previous owner's write");
                    }
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
    });
}

#[test]
fn trim_detaches_the_runs_while_a_refill_races() {
    check("runs::trim_detaches_the_runs_while_a_refill_races", || {
        let f = Arc::new(PoolFixture::new(2));
        let carved = take(&f, 2);
        give(&f, &carved);
        let trimmer = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                // What a trim does to the free blocks (the page release is
                // `trim.rs`'s business and modelled there): mark, detach
                // everything, give it back, unmark.
                f.pool.begin_trim();
                let mut held = Vec::new();
                let taken = f.pool.detach_free(2, |index| held.push(index));
                assert_eq!(taken as usize, held.len());
                // SAFETY: detached, so the trim's; each once.
                unsafe { f.pool.give_back_detached(held.into_iter()) };
                f.pool.end_trim();
            })
        };
        let refill = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let attempt = || Some(take(&f, 2)).filter(|got| !got.is_empty());
                attempt().or_else(|| f.pool.retry_while_trimmed(attempt)).expect("two free blocks: never dry")
            })
        };
        trimmer.join().unwrap();
        let mut got = refill.join().unwrap();
        got.extend(f.drain());
        assert_blocks(got, &[0, 1]);
    });
}
