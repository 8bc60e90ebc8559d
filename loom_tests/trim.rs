//! Trim racing with other threads on a small pool: the protocol of
//! `src/trim.rs` (detach the stack, release the pages that hold only
//! detached blocks, push back chunk by chunk) against take / give-back,
//! carving near exhaustion, the dry path, and a thread cache's refill.
//!
//! Under loom, `os::discard` writes zeros over the released range, so a
//! page released under a block in use shows up as a lost payload. The
//! models use pages of two 16-byte blocks, one page per chunk, so a pool of
//! four blocks has two pages and two chunks.
//!
//! With `--cfg lockfree_slab_trim_push_first` (a chunk's blocks pushed back
//! before its pages are released) `trim_races_give_back_and_take` fails,
//! which `.ci/loom.sh` checks.

use core::alloc::Layout;
use core::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use super::exit::{long_paths, wait_for_exit_flushes};
use super::{assert_all_blocks, check, check_with, PoolFixture};
use crate::trim::{trim_class, Geometry};
use crate::SlabAllocator;

/// Two 16-byte blocks per page, one page per chunk.
const GEOMETRY: Geometry = Geometry { page: 32, chunk_pages: 1 };

fn block(addr: usize) -> NonNull<u8> {
    NonNull::new(addr as *mut u8).expect("a block address")
}

/// Writes `byte` over a 16-byte block the caller holds.
fn fill(addr: usize, byte: u8) {
    // SAFETY: the caller holds the 16-byte block at `addr`.
    unsafe { block(addr).as_ptr().write_bytes(byte, 16) }
}

/// Whether the block the caller holds still reads as `byte` throughout.
fn holds(addr: usize, byte: u8) -> bool {
    // SAFETY: as for `fill`.
    (0..16).all(|k| unsafe { *block(addr).as_ptr().add(k) } == byte)
}

/// Four blocks, three free (0, 1, 2) and one held by the worker (3), all
/// carved. The worker checks its block, gives it back and takes one (the
/// uncached path, with the dry-path check), and writes it; the trimmer
/// trims. Whatever the order: the held block is never released under the
/// worker (its payload survives), the block taken is never released after
/// it was handed out, the take never fails, and every block is accounted
/// for. Page 0 (blocks 0, 1) is always released; page 1 only when block 3
/// was back before the detach and the worker did not take it first.
#[test]
fn trim_races_give_back_and_take() {
    check("trim::trim_races_give_back_and_take", || {
        const CAP: u32 = 4;
        let f = Arc::new(PoolFixture::new(CAP));
        let all: Vec<usize> = (0..CAP).map(|_| f.pool.take_one().unwrap().as_ptr() as usize).collect();
        for (i, &b) in all.iter().enumerate() {
            fill(b, 0xA0 + i as u8);
        }
        for &b in &all[..3] {
            // SAFETY: taken above, not used any more.
            unsafe { f.pool.give_back(block(b)) };
        }
        let held = all[3];
        let worker = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                assert!(holds(held, 0xA3), "trim released a page under a block in use");
                // SAFETY: our block, given back once.
                unsafe { f.pool.give_back(block(held)) };
                let taken = f.pool.take_one_or_wait().expect("four blocks, one taker: never dry").as_ptr() as usize;
                fill(taken, 0xEE);
                taken
            })
        };
        let trimmer = {
            let f = Arc::clone(&f);
            thread::spawn(move || trim_class(&f.pool, GEOMETRY))
        };
        let taken = worker.join().unwrap();
        let report = trimmer.join().unwrap();
        assert!(holds(taken, 0xEE), "trim released the page of a block after it was handed out again");
        assert!(matches!(report.released_bytes, 32 | 64), "{report:?}");
        assert_eq!(report.pages * 32, report.released_bytes);
        let mut got = f.drain();
        got.push(f.pool.index_of(block(taken)));
        assert_all_blocks(got, CAP);
    });
}

/// Three blocks; 0 and 1 carved and free, 2 never carved. The worker takes
/// three blocks (carving the last one while the trim may hold the other
/// two, then waiting on the dry path for one of them), writes them, gives
/// the last back. The trimmer's frontier may be 2 or 3 and its detach may
/// catch block 2 freed after the frontier was read (a "late" block, pushed
/// straight back). No take fails, no payload is lost, no block is lost.
#[test]
fn trim_races_carving_and_the_dry_path() {
    check("trim::trim_races_carving_and_the_dry_path", || {
        const CAP: u32 = 3;
        let f = Arc::new(PoolFixture::new(CAP));
        let first: Vec<_> = (0..2).map(|_| f.pool.take_one().unwrap()).collect();
        for b in first {
            // SAFETY: carved above, not used.
            unsafe { f.pool.give_back(b) };
        }
        let worker = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let taken: Vec<usize> = (0..CAP)
                    .map(|k| {
                        let b = f.pool.take_one_or_wait().expect("three blocks, one taker: never dry");
                        fill(b.as_ptr() as usize, 0xB0 + k as u8);
                        b.as_ptr() as usize
                    })
                    .collect();
                // SAFETY: ours; the last block taken goes back.
                unsafe { f.pool.give_back(block(taken[2])) };
                [taken[0], taken[1]]
            })
        };
        let trimmer = {
            let f = Arc::clone(&f);
            thread::spawn(move || trim_class(&f.pool, GEOMETRY))
        };
        let kept = worker.join().unwrap();
        let _report = trimmer.join().unwrap();
        assert!(holds(kept[0], 0xB0) && holds(kept[1], 0xB1), "trim released a page under a block in use");
        let mut got = f.drain();
        got.extend(kept.iter().map(|&b| f.pool.index_of(block(b))));
        assert_all_blocks(got, CAP);
    });
}

/// Through the public allocator: a thread with a cache (depth 2, refills of
/// one block) allocates two blocks and frees them while the main thread
/// trims. All four blocks are carved and free, so the refills must never
/// find the class dry, even when the trim holds every free block at that
/// moment: they wait on the dry path. Afterwards the accounting adds up.
#[test]
fn trim_races_a_cache_refill() {
    check_with("trim::trim_races_a_cache_refill", long_paths(), || {
        let slab = Arc::new(
            SlabAllocator::builder()
                .size_classes(&[16])
                .capacity(16 * 4)
                .cache_depth(2)
                .max_cached_threads(2)
                .fallback(crate::Fallback::Error)
                .build()
                .expect("a valid tiny configuration"),
        );
        let layout = Layout::from_size_align(16, 16).unwrap();
        {
            let all: Vec<_> = (0..4).map(|_| slab.allocate(layout).unwrap()).collect();
            for p in all {
                // SAFETY: allocated above with `layout`, freed once.
                unsafe { slab.deallocate(p, layout) };
            }
        }
        slab.flush_thread_cache();
        let worker = {
            let slab = Arc::clone(&slab);
            thread::spawn(move || {
                let p = slab.allocate(layout).expect("four free blocks: never dry").as_ptr() as usize;
                fill(p, 0xC1);
                let q = slab.allocate(layout).expect("three free blocks: never dry").as_ptr() as usize;
                fill(q, 0xC2);
                assert!(holds(p, 0xC1) && holds(q, 0xC2), "trim released a page under a block in use");
                // SAFETY: allocated above with `layout`, freed once.
                unsafe {
                    slab.deallocate(block(p), layout);
                    slab.deallocate(block(q), layout);
                }
            })
        };
        let _report = slab.trim_with(GEOMETRY);
        worker.join().unwrap();
        wait_for_exit_flushes(&slab);
        let stats = slab.stats();
        let class = &stats.classes[0];
        assert!(stats.is_consistent(), "carved != in use + on stack + cached: {class:?}");
        assert_eq!((class.in_use, class.free_in_stack, class.fallbacks), (0, 4, 0), "{class:?}");
    });
}
