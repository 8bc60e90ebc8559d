//! Thread exit and allocator drop, through the public `SlabAllocator`.
//!
//! Under loom the region's stand-in memory comes from `loom::alloc`, so every
//! model here also checks that the region is released exactly once: a leak
//! fails the model at the end of the execution, a second release panics.

use core::alloc::Layout;
use std::sync::Arc;

use loom::sync::atomic::{fence, Ordering};
use loom::thread;

use super::{check, check_with};
use crate::SlabAllocator;

fn tiny(cached_threads: usize) -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[16])
        .capacity(16 * 4)
        .cache_depth(2)
        .max_cached_threads(cached_threads)
        .build()
        .expect("a valid tiny configuration")
}

const BLOCK: Layout = match Layout::from_size_align(16, 16) {
    Ok(layout) => layout,
    Err(_) => panic!("16/16 is a valid layout"),
};

/// Allocates two blocks and frees them: they end up in the thread's cache
/// (or on the stack, for an uncached thread).
fn churn(slab: &SlabAllocator) {
    let p = slab.allocate(BLOCK).expect("four blocks, at most three live");
    let q = slab.allocate(BLOCK).expect("four blocks, at most three live");
    // SAFETY: both came from `slab.allocate(BLOCK)` and are freed once.
    unsafe {
        slab.deallocate(p, BLOCK);
        slab.deallocate(q, BLOCK);
    }
}

/// Waits until no thread holds a cache slot, then acquires what the slot
/// releases published.
///
/// Loom's `JoinHandle::join` returns as soon as the thread's closure has
/// returned, *before* loom drops the thread's thread-locals (std's join also
/// waits for those), so after a join the exiting thread's flush may still be
/// to come. Its last act is the `Release` that frees the slot; the
/// `stats()` read of the slot map is `Relaxed`, so an `Acquire` fence after
/// seeing the slot free makes the flushed magazines and stack visible.
pub(super) fn wait_for_exit_flushes(slab: &SlabAllocator) {
    while slab.stats().cached_threads != 0 {
        thread::yield_now();
    }
    fence(Ordering::Acquire);
}

/// The wait in [`wait_for_exit_flushes`] reads the whole statistics (dozens
/// of atomics) per round, which outgrows loom's default of 1000 branches
/// per execution.
pub(super) fn long_paths() -> loom::model::Builder {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder
}

fn assert_all_free(slab: &SlabAllocator) {
    let stats = slab.stats();
    let class = &stats.classes[0];
    assert!(stats.is_consistent(), "carved != in use + on stack + cached: {class:?}");
    assert_eq!(class.in_use, 0, "{class:?}");
    assert_eq!(class.in_caches, 0, "an exited thread's blocks stayed in its cache: {class:?}");
    assert_eq!(class.free_in_stack, class.carved, "{class:?}");
    assert_eq!(stats.cached_threads, 0, "a slot was not released");
}

/// A thread allocates through its cache and exits while the main thread
/// allocates through its own; the exit returns the cached blocks to the
/// stack and the slot to the slot map.
#[test]
fn thread_exit_returns_cached_blocks() {
    check_with("exit::thread_exit_returns_cached_blocks", long_paths(), || {
        let slab = Arc::new(tiny(2));
        let worker = {
            let slab = Arc::clone(&slab);
            thread::spawn(move || churn(&slab))
        };
        let p = slab.allocate(BLOCK).expect("four blocks, at most three live");
        // SAFETY: from `slab.allocate(BLOCK)`, freed once.
        unsafe { slab.deallocate(p, BLOCK) };
        worker.join().unwrap();
        slab.flush_thread_cache();
        wait_for_exit_flushes(&slab);
        assert_all_free(&slab);
    });
}

/// As above with a single cache slot: the two threads race to claim it, and
/// the loser is served straight from the shared stack.
#[test]
fn thread_exit_with_one_slot_for_two_threads() {
    check_with("exit::thread_exit_with_one_slot_for_two_threads", long_paths(), || {
        let slab = Arc::new(tiny(1));
        let worker = {
            let slab = Arc::clone(&slab);
            thread::spawn(move || churn(&slab))
        };
        churn(&slab);
        worker.join().unwrap();
        slab.flush_thread_cache();
        wait_for_exit_flushes(&slab);
        assert_all_free(&slab);
    });
}

/// The allocator is dropped while another thread's cache is still
/// registered (and may be flushing on exit). Whichever side lets go last
/// releases the region, exactly once; a flush after the drop touches
/// nothing (loom's allocation tracking catches a leak or a double release,
/// and a use after release would read freed loom objects and panic).
#[test]
fn allocator_drop_while_a_cache_is_registered() {
    check("exit::allocator_drop_while_a_cache_is_registered", || {
        let slab = Arc::new(tiny(2));
        let worker = {
            let slab = Arc::clone(&slab);
            thread::spawn(move || {
                churn(&slab);
                // Our reference goes first; the cache entry (a weak one)
                // stays until the thread exits.
                drop(slab);
            })
        };
        let p = slab.allocate(BLOCK).expect("four blocks, at most three live");
        // SAFETY: from `slab.allocate(BLOCK)`, freed once.
        unsafe { slab.deallocate(p, BLOCK) };
        drop(slab);
        worker.join().unwrap();
    });
}
