//! Multi-threaded stress: one allocator in an `Arc`, 2, 4 and 16 threads (on
//! a 2-core machine: oversubscription is the point). Every block is filled
//! with a pattern unique to its owner and checked before it is freed; a share
//! of the blocks is freed by another thread than the one that allocated it.
//! At the end: no address was ever live twice (shadow set), nothing was lost
//! (each class hands out exactly its capacity before reporting exhaustion),
//! and the statistics add up.
//!
//! `LFS_STRESS_OPS` sets the operations per thread (default 40 000); the
//! ThreadSanitizer job lowers it.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use crate::common::{check, fill, LiveSet};
use lockfree_slab::{Builder, Fallback, SlabAllocator};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u64,
}

// SAFETY: a block is handed over whole; its sender never touches it again.
unsafe impl Send for Block {}

/// Request sizes spread over the four classes (16, 64, 256, 1024), including
/// exact fits and odd sizes.
const SIZES: [usize; 8] = [1, 16, 17, 60, 64, 200, 256, 1000];
const ALIGNS: [usize; 3] = [1, 8, 16];

fn ops_per_thread() -> u64 {
    std::env::var("LFS_STRESS_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(40_000)
}

fn config() -> Builder {
    // Small enough that the 1024 B class runs dry under load, so the
    // exhaustion path races too.
    SlabAllocator::builder()
        .size_classes(&[16, 64, 256, 1024])
        .split(&[10, 20, 30, 40])
        .capacity(1 << 20)
        .cache_depth(32)
        .fallback(Fallback::Error)
}

fn free_checked(slab: &SlabAllocator, live: &LiveSet, block: Block) {
    // SAFETY: the block is live and ours; it was filled with `tag`.
    if let Err(at) = unsafe { check(block.ptr, block.layout.size(), block.tag) } {
        panic!("block {:p} (tag {:#x}) corrupted at byte {at}", block.ptr, block.tag);
    }
    live.remove(block.ptr.as_ptr() as usize);
    // SAFETY: allocated by `slab` with this layout, freed once.
    unsafe { slab.deallocate(block.ptr, block.layout) };
}

/// Runs the churn and returns (operations performed, allocations refused).
fn churn(slab: &Arc<SlabAllocator>, threads: usize) -> (u64, u64) {
    let live = Arc::new(LiveSet::new());
    let mailboxes: Arc<Vec<Mutex<Vec<Block>>>> = Arc::new((0..threads).map(|_| Mutex::new(Vec::new())).collect());
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (slab, live, mailboxes, barrier) = (slab.clone(), live.clone(), mailboxes.clone(), barrier.clone());
            thread::spawn(move || {
                // A worker that panics must still reach the barrier, or the
                // others would wait for it forever; its panic is re-raised.
                let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut rng =
                        SmallRng::seed_from_u64(0x1234_5678_9ABC_DEF1 ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9));
                    let mut held: Vec<Block> = Vec::new();
                    let (mut ops, mut refused) = (0u64, 0u64);
                    for i in 0..ops_per_thread() {
                        let r = rng.random_range(0..100);
                        if r < 50 && held.len() < 256 {
                            let size = SIZES[rng.random_range(0..SIZES.len())];
                            let align = ALIGNS[rng.random_range(0..ALIGNS.len())];
                            let layout = Layout::from_size_align(size, align).unwrap();
                            match slab.allocate(layout) {
                                Ok(ptr) => {
                                    assert_eq!(ptr.as_ptr() as usize % align, 0, "misaligned block");
                                    live.insert(ptr.as_ptr() as usize);
                                    let tag = (t as u64) << 40 | i;
                                    // SAFETY: a fresh block of at least `size` bytes.
                                    unsafe { fill(ptr, size, tag) };
                                    held.push(Block { ptr, layout, tag });
                                }
                                Err(_) => refused += 1,
                            }
                        } else if r < 85 && !held.is_empty() {
                            let k = rng.random_range(0..held.len());
                            free_checked(&slab, &live, held.swap_remove(k));
                        } else if !held.is_empty() {
                            // Hand a block to the next thread, which frees it.
                            let k = rng.random_range(0..held.len());
                            mailboxes[(t + 1) % threads].lock().unwrap().push(held.swap_remove(k));
                        }
                        ops += 1;
                        if i % 64 == 0 {
                            let inbox = std::mem::take(&mut *mailboxes[t].lock().unwrap());
                            ops += inbox.len() as u64;
                            for block in inbox {
                                free_checked(&slab, &live, block);
                            }
                        }
                    }
                    (held, ops, refused)
                }));
                // Nobody sends after everybody has passed the barrier.
                barrier.wait();
                let (held, mut ops, refused) = work.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                let inbox = std::mem::take(&mut *mailboxes[t].lock().unwrap());
                for block in inbox.into_iter().chain(held) {
                    free_checked(&slab, &live, block);
                    ops += 1;
                }
                (ops, refused)
            })
        })
        .collect();
    let (ops, refused) =
        handles.into_iter().map(|h| h.join().expect("worker panicked")).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert_eq!(live.len(), 0, "blocks still live after every thread freed its own");
    (ops, refused)
}

/// After the threads are gone: the accounting adds up, nothing is in use or
/// cached, and every class hands out exactly its capacity, no block twice.
fn assert_nothing_lost(slab: &SlabAllocator) {
    let stats = slab.stats();
    assert!(stats.is_consistent(), "accounting does not add up:\n{stats}");
    for c in &stats.classes {
        assert_eq!(c.in_use, 0, "{} B class: blocks still in use\n{stats}", c.block_size);
        assert_eq!(c.in_caches, 0, "{} B class: exited threads left blocks cached\n{stats}", c.block_size);
        assert_eq!(c.allocations, c.frees);
    }
    crate::common::assert_every_class_hands_out_its_capacity(slab);
    slab.flush_thread_cache();
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.free_in_stack, stats.totals.capacity, "every block back on its stack\n{stats}");
}

fn run(threads: usize, builder: Builder) {
    let slab = Arc::new(builder.build().expect("valid configuration"));
    let (ops, refused) = churn(&slab, threads);
    let stats = slab.stats();
    println!("{threads} threads: {ops} operations, {refused} allocations refused (class dry)\n{stats}");
    assert!(stats.totals.allocations > 0);
    assert_nothing_lost(&slab);
}

#[test]
fn two_threads() {
    run(2, config());
}

#[test]
fn four_threads() {
    run(4, config());
}

#[test]
fn sixteen_threads() {
    run(16, config());
}

#[test]
fn sixteen_threads_with_only_four_cache_slots() {
    // Twelve threads find no free slot and are served from the shared stacks.
    let slab = Arc::new(config().max_cached_threads(4).build().unwrap());
    let (ops, _) = churn(&slab, 16);
    let stats = slab.stats();
    println!("16 threads, 4 slots: {ops} operations\n{stats}");
    assert!(stats.totals.uncached_allocations > 0, "no thread went uncached:\n{stats}");
    assert_nothing_lost(&slab);
}

#[test]
fn sixteen_threads_without_caches() {
    let slab = Arc::new(config().cache_depth(0).build().unwrap());
    let (ops, _) = churn(&slab, 16);
    let stats = slab.stats();
    println!("16 threads, no caches: {ops} operations\n{stats}");
    assert_eq!(stats.totals.cache_hits, 0);
    assert_eq!(stats.totals.uncached_allocations, stats.totals.allocations);
    assert_nothing_lost(&slab);
}
