//! Batches through a class's depot (`class/depot.rs`): whole records of
//! block indices moving between thread caches and the shared layer.
//!
//! - `record_aba_cannot_hand_out_a_batch_twice`: the ABA interleaving of
//!   the record stacks (a stale `(record, tag)` head whose next record was
//!   taken and is held meanwhile). With the tag off
//!   (`--cfg lockfree_slab_no_aba_tag`) it fails, which `.ci/loom.sh` checks.
//! - `takes_and_gives_race_without_loss`: two threads each take a batch and
//!   give it back.
//! - `a_batch_hand_off_publishes_the_blocks_and_the_record`: the previous
//!   owner's writes to every block of a batch, and the indices it stored in
//!   the record, happen-before the next owner's reads. With the push's
//!   Release weakened (`--cfg lockfree_slab_weak_push`) it fails.
//! - `trim_detaches_the_depot_while_a_refill_races`: a trim's detach takes
//!   the depot's records too, and a refill that finds the class dry while
//!   the trim holds them waits for them instead of failing.

use core::ptr::NonNull;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::{assert_all_blocks, check, PoolFixture};

/// Takes one batch (at most `max` blocks) as block indices.
fn take(f: &PoolFixture, max: usize) -> Vec<u32> {
    let mut got = vec![0; max];
    let n = f.pool.take_batch(max as u32, |position, block| got[position as usize] = f.pool.index_of(block));
    got.truncate(n as usize);
    got
}

/// Gives `indices` back as one batch.
fn give(f: &PoolFixture, indices: &[u32]) {
    let blocks: Vec<NonNull<u8>> = indices.iter().map(|&i| f.pool.address_of(i)).collect();
    // SAFETY: the caller took these blocks from the pool and stops using them.
    unsafe { f.pool.give_batch(&blocks) };
}

/// Everything free in the pool, by taking batches until it is dry (the
/// depot first, then the stack, then the carver).
fn drain(f: &PoolFixture, capacity: u32) -> Vec<u32> {
    let mut all = Vec::new();
    loop {
        let got = take(f, 2);
        if got.is_empty() {
            return all;
        }
        all.extend(got);
        assert!(all.len() <= capacity as usize, "the pool holds more blocks than exist: {all:?}");
    }
}

/// The ABA interleaving of the record stacks. A stale take reads the full
/// stack's head `(r1, tag)` and its next record `r0`, and is paused before
/// its CAS. Meanwhile the other thread takes `r1` and `r0`, reserves `r0`
/// again for a batch of its own (held, not yet published), and gives a
/// batch back, which puts `r1` on top again — now with nothing under it.
/// Without the tag the stale CAS would install `r0` as the head while its
/// filler still holds it, and the filler's publish would then link `r0` to
/// itself: a batch handed out without end.
#[test]
fn record_aba_cannot_hand_out_a_batch_twice() {
    check("depot::record_aba_cannot_hand_out_a_batch_twice", || {
        const CAP: u32 = 3;
        let f = Arc::new(PoolFixture::with_depot(CAP, 3, 1));
        let blocks = take(&f, 3);
        give(&f, &blocks[0..1]); // record r0
        give(&f, &blocks[1..2]); // record r1, on top
        let own = blocks[2];
        let stale_taker = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let full = f.pool.depot().full_stack();
                let head = full.head();
                if head.index == crate::class::stack::NIL {
                    return Vec::new();
                }
                let next = full.next_of(head.index);
                match full.try_replace_head(head, next) {
                    Ok(()) => f.pool.depot().contents_of(head.index),
                    Err(_) => Vec::new(),
                }
            })
        };
        let take_take_give = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let a = take(&f, 1);
                let b = take(&f, 1);
                let held = f.pool.depot().reserve();
                if !a.is_empty() {
                    give(&f, &a);
                }
                let mut kept = vec![own];
                match held {
                    // SAFETY: reserved above; `b` is ours (taken above).
                    Some(record) if b.len() == 1 => unsafe { f.pool.depot().publish(record, b.into_iter()) },
                    // (A record reserved but nothing to fill it with is
                    // simply not published: the depot has records to spare.)
                    _ => kept.extend(b),
                }
                kept
            })
        };
        let mut got = stale_taker.join().unwrap();
        got.extend(take_take_give.join().unwrap());
        got.extend(drain(&f, CAP));
        assert_all_blocks(got, CAP);
    });
}

/// Takes and gives of whole batches from two threads at once: no block is
/// lost or handed out twice, whichever records they end up in.
#[test]
fn takes_and_gives_race_without_loss() {
    check("depot::takes_and_gives_race_without_loss", || {
        const CAP: u32 = 4;
        let f = Arc::new(PoolFixture::with_depot(CAP, 2, 2));
        let carved = take(&f, 4);
        assert_eq!(carved.len(), 4, "a fresh pool carves a batch of up to `max`");
        give(&f, &carved[0..2]);
        give(&f, &carved[2..4]);
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let f = Arc::clone(&f);
                thread::spawn(move || {
                    let got = take(&f, 2);
                    if !got.is_empty() {
                        give(&f, &got);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_all_blocks(drain(&f, CAP), CAP);
    });
}

/// The blocks' contents are loom cells, one per block, so loom tracks who
/// wrote them and who may read them.
struct Payloads {
    f: PoolFixture,
    cells: Vec<UnsafeCell<u64>>,
}

// SAFETY: a cell is accessed only by the thread that holds its block, which
// is exactly what the model checks.
unsafe impl Sync for Payloads {}

#[test]
fn a_batch_hand_off_publishes_the_blocks_and_the_record() {
    check("depot::a_batch_hand_off_publishes_the_blocks_and_the_record", || {
        const CAP: u32 = 4;
        let p = Arc::new(Payloads {
            f: PoolFixture::with_depot(CAP, 2, 2),
            cells: (0..CAP).map(|_| UnsafeCell::new(0)).collect(),
        });
        // Blocks 2 and 3 wait in one record; 0 and 1 go to the writer, whose
        // put fills the other (fresh) record. The reader may find either,
        // in either order.
        let carved = take(&p.f, 4);
        give(&p.f, &carved[2..4]);
        let mine = [carved[0], carved[1]];
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
                    let got = take(&p.f, 2);
                    for &i in &got {
                        // SAFETY: we hold the block now, so we own its cell.
                        let seen = p.cells[i as usize].with(|v| unsafe { *v });
                        let expected = if mine.contains(&i) { 40 + u64::from(i) } else { 0 };
                        assert_eq!(seen, expected, "block {i} read before its previous owner's write");
                    }
                    if got.is_empty() {
                        continue;
                    }
                    give(&p.f, &got);
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        assert_all_blocks(drain(&p.f, CAP), CAP);
    });
}

#[test]
fn trim_detaches_the_depot_while_a_refill_races() {
    check("depot::trim_detaches_the_depot_while_a_refill_races", || {
        const CAP: u32 = 2;
        let f = Arc::new(PoolFixture::with_depot(CAP, 1, 2));
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
                let taken = f.pool.detach_free(|index| held.push(index));
                assert_eq!(taken as usize, held.len());
                let mut chain = crate::class::stack::Chain::EMPTY;
                for &index in &held {
                    // SAFETY: detached, so the trim's; chained once.
                    unsafe { f.pool.chain_append(&mut chain, index) };
                }
                // SAFETY: the chain of the held blocks.
                unsafe { f.pool.push_chain(chain) };
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
        got.extend(drain(&f, CAP));
        assert_all_blocks(got, CAP);
    });
}
