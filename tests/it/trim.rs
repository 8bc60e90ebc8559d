//! `SlabAllocator::trim` from the user's side: under concurrent load it
//! loses no block and no byte of live data, it never makes a request fail
//! that would otherwise succeed, and on an untouched allocator it reports
//! nothing. (That RSS drops by the amount reported is checked on its own, in
//! `tests/trim_rss.rs`: RSS is per process, so no other test may run beside
//! it.)

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use crate::common::{check, fill, LiveSet};
use lockfree_slab::{Fallback, SlabAllocator, TrimReport};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u64,
}

fn ops_per_thread() -> u64 {
    std::env::var("LFS_STRESS_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(40_000)
}

fn free_checked(slab: &SlabAllocator, live: &LiveSet, block: Block) {
    // SAFETY: the block is live and ours; it was filled with `tag`.
    if let Err(at) = unsafe { check(block.ptr, block.layout.size(), block.tag) } {
        panic!("block {:p} (tag {:#x}) corrupted at byte {at}: trim released a page in use?", block.ptr, block.tag);
    }
    live.remove(block.ptr.as_ptr() as usize);
    // SAFETY: allocated by `slab` with this layout, freed once.
    unsafe { slab.deallocate(block.ptr, block.layout) };
}

/// Trims `slab` in a loop until `stop`, counting trims in `done`; returns
/// the bytes released and the number of trims.
fn trimmer(
    slab: Arc<SlabAllocator>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
) -> thread::JoinHandle<(usize, usize)> {
    thread::spawn(move || {
        let (mut released, mut trims) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            released += slab.trim().released_bytes;
            trims += 1;
            done.fetch_add(1, Ordering::Relaxed);
            thread::yield_now();
        }
        (released, trims)
    })
}

/// Trims a worker must see happen before it stops, so that the trims
/// really overlap the work (on two cores the trimmer may otherwise get no
/// time slice before the workers are done).
const MIN_TRIMS: usize = 200;

/// After everything was freed and every worker has exited: the accounting
/// adds up, nothing is in use or cached, and every class hands out exactly
/// its capacity, no block twice.
fn assert_nothing_lost(slab: &SlabAllocator) {
    slab.flush_thread_cache();
    let stats = slab.stats();
    assert!(stats.is_consistent(), "accounting does not add up:\n{stats}");
    for c in &stats.classes {
        assert_eq!(c.in_use, 0, "{} B class: blocks still in use\n{stats}", c.block_size);
        assert_eq!(c.in_caches, 0, "{} B class: blocks still cached\n{stats}", c.block_size);
        assert_eq!(c.free_in_stack, c.carved, "{} B class: free blocks missing\n{stats}", c.block_size);
    }
    crate::common::assert_every_class_hands_out_its_capacity(slab);
}

/// Four workers allocate, fill, check and free blocks of four classes (one
/// smaller than a page that does not divide it, two of a page and more,
/// one larger than two pages) while two threads trim over and over. Every
/// live block keeps its pattern to the last byte; afterwards nothing is lost.
#[test]
fn trim_under_concurrent_load_loses_no_block_and_no_byte() {
    const THREADS: usize = 4;
    let slab = Arc::new(
        SlabAllocator::builder()
            .size_classes(&[48, 256, 4096, 9216])
            .capacity(16 << 20)
            .cache_depth(16)
            .fallback(Fallback::Error)
            .build()
            .unwrap(),
    );
    let sizes = [40usize, 48, 200, 256, 3000, 4096, 5000, 9216];
    let live = Arc::new(LiveSet::new());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let trimmers: Vec<_> = (0..2).map(|_| trimmer(slab.clone(), stop.clone(), done.clone())).collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (slab, live, barrier, done) = (slab.clone(), live.clone(), barrier.clone(), done.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut rng = SmallRng::seed_from_u64(0xDEAD_BEEF_0BAD_F00D ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9));
                let mut held: Vec<Block> = Vec::new();
                let mut refused = 0u64;
                let mut i = 0;
                while i < ops_per_thread() || done.load(Ordering::Relaxed) < MIN_TRIMS {
                    i += 1;
                    // Waves: grow to a few hundred blocks, then shrink to
                    // none, so whole pages come free while others stay live.
                    let growing = (i / 2000) % 2 == 0;
                    if (growing && rng.random_range(0..100) < 70) || held.is_empty() {
                        let size = sizes[rng.random_range(0..sizes.len())];
                        let layout = Layout::from_size_align(size, 8).unwrap();
                        match slab.allocate(layout) {
                            Ok(ptr) => {
                                live.insert(ptr.as_ptr() as usize);
                                let tag = (t as u64) << 40 | i;
                                // SAFETY: a fresh block of at least `size` bytes.
                                unsafe { fill(ptr, size, tag) };
                                held.push(Block { ptr, layout, tag });
                            }
                            Err(_) => refused += 1,
                        }
                    } else {
                        let k = rng.random_range(0..held.len());
                        free_checked(&slab, &live, held.swap_remove(k));
                    }
                    if i % 4096 == 0 {
                        for b in &held {
                            // SAFETY: live blocks of ours, filled with `tag`.
                            if let Err(at) = unsafe { check(b.ptr, b.layout.size(), b.tag) } {
                                panic!("live block {:p} corrupted at byte {at}", b.ptr);
                            }
                        }
                    }
                }
                assert!(held.len() < 100_000, "runaway");
                for b in held {
                    free_checked(&slab, &live, b);
                }
                refused
            })
        })
        .collect();
    let refused: u64 = workers.into_iter().map(|w| w.join().expect("worker panicked")).sum();
    stop.store(true, Ordering::Relaxed);
    let (released, trims) = trimmers.into_iter().map(|t| t.join().unwrap()).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    println!("{trims} trims released {released} bytes; {refused} allocations refused\n{}", slab.stats());
    assert_eq!(live.len(), 0);
    assert!(trims >= MIN_TRIMS && released > 0, "{trims} trims ran but never released anything");
    assert_nothing_lost(&slab);
    // Quiescent now: one more trim gives back what is left and still loses
    // nothing.
    let last = slab.trim();
    println!("final trim: {last}");
    assert_nothing_lost(&slab);
}

/// A class whose carver is used up and whose blocks are all free or held
/// by two workers (never more than half of them): an allocation must never
/// fail, even while a trim holds every free block of the class. Without the
/// dry-path check of `retry_while_trimmed`, it fails within a few thousand
/// operations. Run without caches (the uncached path) and with them (refills).
#[test]
fn a_trim_never_makes_an_allocation_fail() {
    for depth in [0, 8] {
        const BLOCKS: usize = 1 << 16;
        let layout = Layout::from_size_align(64, 8).unwrap();
        let slab = Arc::new(
            SlabAllocator::builder()
                .size_classes(&[64])
                .capacity(64 * BLOCKS)
                .cache_depth(depth)
                .fallback(Fallback::Error)
                .build()
                .unwrap(),
        );
        // Carve everything, touch it, free it: the carver is exhausted.
        let all: Vec<_> = (0..BLOCKS).map(|_| slab.allocate(layout).unwrap()).collect();
        for &p in &all {
            // SAFETY: fresh 64-byte blocks, then freed once.
            unsafe {
                p.as_ptr().write_bytes(1, 64);
                slab.deallocate(p, layout);
            }
        }
        slab.flush_thread_cache();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let trims = trimmer(slab.clone(), stop.clone(), done.clone());
        let failures = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2u64)
            .map(|t| {
                let (slab, failures, done) = (slab.clone(), failures.clone(), done.clone());
                thread::spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(0x5EED ^ (t + 1) << 20);
                    let mut held = Vec::new();
                    let mut i = 0;
                    while i < ops_per_thread() || done.load(Ordering::Relaxed) < MIN_TRIMS {
                        i += 1;
                        if held.len() < BLOCKS / 4 && (rng.random_range(0..2) == 0 || held.is_empty()) {
                            match slab.allocate(layout) {
                                Ok(p) => {
                                    // SAFETY: a fresh 64-byte block.
                                    unsafe { fill(p, 64, t << 40 | i) };
                                    held.push((p, t << 40 | i));
                                }
                                Err(_) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        } else {
                            let (p, tag) = held.swap_remove(rng.random_range(0..held.len()));
                            // SAFETY: ours, filled with `tag`; freed once.
                            unsafe {
                                assert_eq!(check(p, 64, tag), Ok(()), "live block corrupted");
                                slab.deallocate(p, layout);
                            }
                        }
                    }
                    for (p, tag) in held {
                        // SAFETY: as above.
                        unsafe {
                            assert_eq!(check(p, 64, tag), Ok(()), "live block corrupted");
                            slab.deallocate(p, layout);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker panicked");
        }
        stop.store(true, Ordering::Relaxed);
        let (released, n) = trims.join().unwrap();
        println!("cache depth {depth}: {n} trims released {released} bytes");
        assert!(n >= MIN_TRIMS);
        assert_eq!(failures.load(Ordering::Relaxed), 0, "cache depth {depth}: allocations failed while trimming");
        assert_eq!(slab.stats().classes[0].fallbacks, 0);
        assert_nothing_lost(&slab);
    }
}

#[test]
fn an_untouched_allocator_has_nothing_to_give_back() {
    // Lazily built: trim must not reserve the pool.
    let lazy = SlabAllocator::new();
    assert_eq!(lazy.trim(), TrimReport::default());
    assert_eq!(lazy.stats(), lockfree_slab::Stats::default(), "trim initialised the allocator");
    // Built but never used, and used with everything still live.
    // No caches: the one block allocated is the only one carved.
    // Checks off even under the `checks` feature: their poison writes the
    // freed block, and this test is about a page that was never written.
    let slab = SlabAllocator::builder()
        .size_classes(&[64, 4096])
        .capacity(1 << 20)
        .cache_depth(0)
        .checks(false)
        .build()
        .unwrap();
    assert_eq!(slab.trim(), TrimReport::default());
    let layout = Layout::from_size_align(4096, 8).unwrap();
    let p = slab.allocate(layout).unwrap();
    assert_eq!(slab.trim().released_bytes, 0, "a block in use is not released");
    // SAFETY: allocated above; freed once.
    unsafe { slab.deallocate(p, layout) };
    // Freed but never written: not resident, so nothing to report, but the
    // page is examined.
    let report = slab.trim();
    assert_eq!((report.released_bytes, report.free_page_bytes, report.free_blocks), (0, 4096, 1), "{report}");
}

#[test]
fn freed_pages_come_back_zeroed_and_usable() {
    let layout = Layout::from_size_align(256, 8).unwrap();
    let slab = SlabAllocator::builder().size_classes(&[256]).capacity(1 << 20).cache_depth(0).build().unwrap();
    let blocks: Vec<_> = (0..64).map(|_| slab.allocate(layout).unwrap()).collect();
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: fresh 256-byte blocks.
        unsafe { fill(p, 256, i as u64) };
    }
    for &p in &blocks[..32] {
        // SAFETY: allocated above, freed once.
        unsafe { slab.deallocate(p, layout) };
    }
    let report = slab.trim();
    assert_eq!((report.released_bytes, report.pages, report.free_blocks), (2 * 4096, 2, 32), "{report}");
    assert!(report.to_string().starts_with("released 8.0 KiB (2 pages)"), "{report}");
    // The lowest free block comes first, and it reads as zero.
    let again = slab.allocate(layout).unwrap();
    assert_eq!(again, blocks[0]);
    // SAFETY: a live 256-byte block of ours.
    unsafe {
        assert!(std::slice::from_raw_parts(again.as_ptr(), 256).iter().all(|&b| b == 0));
        fill(again, 256, 99);
        assert_eq!(check(again, 256, 99), Ok(()));
        slab.deallocate(again, layout);
    }
    for (i, &p) in blocks.iter().enumerate().skip(32) {
        // SAFETY: live, filled with `i`; freed once.
        unsafe {
            assert_eq!(check(p, 256, i as u64), Ok(()));
            slab.deallocate(p, layout);
        }
    }
}

#[test]
fn populated_capacity_beyond_the_frontier_stays_committed() {
    let layout = Layout::from_size_align(64, 8).unwrap();
    let slab =
        SlabAllocator::builder().size_classes(&[64]).capacity(1 << 20).populate(true).cache_depth(0).build().unwrap();
    let blocks: Vec<_> = (0..1024).map(|_| slab.allocate(layout).unwrap()).collect();
    for &p in &blocks {
        // SAFETY: allocated above, freed once.
        unsafe { slab.deallocate(p, layout) };
    }
    let report = slab.trim();
    // Only the 16 pages of used-then-freed blocks; the other 240 populated
    // pages were never carved.
    assert_eq!((report.released_bytes, report.free_page_bytes), (16 * 4096, 16 * 4096), "{report}");
}

/// Threads of this process named `lockfree-trim` (the background trim
/// threads; a thread's name is at most 15 bytes on Linux, which it fits).
fn background_trim_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim_end() == "lockfree-trim")
                .count()
        })
        .unwrap_or(0)
}

/// Waits (a liveness bound, not a timing assertion) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within 20 s");
        thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The background-trim tests count this process's trim threads: one at a
/// time.
static ONE_BACKGROUND_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn background_trim_gives_memory_back_and_stops_with_the_allocator() {
    let _one = ONE_BACKGROUND_TEST.lock().unwrap_or_else(|e| e.into_inner());
    let layout = Layout::from_size_align(64, 8).unwrap();
    let slab = SlabAllocator::builder()
        .size_classes(&[64])
        .capacity(16 << 20)
        .cache_depth(0)
        .background_trim(std::time::Duration::from_millis(20))
        .build()
        .unwrap();
    assert_eq!(slab.stats().trimmed_bytes, 0);
    let blocks: Vec<_> = (0..16_384).map(|_| slab.allocate(layout).unwrap()).collect();
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: ours, 64 bytes; touching commits the pages.
        unsafe { fill(p, 64, i as u64) };
    }
    // Keep every 64th block (one per page) for a while: nothing can go yet.
    for (i, &p) in blocks.iter().enumerate().filter(|(i, _)| i % 64 != 0) {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe {
            assert_eq!(check(p, 64, i as u64), Ok(()));
            slab.deallocate(p, layout);
        }
    }
    for (i, &p) in blocks.iter().enumerate().filter(|(i, _)| i % 64 == 0) {
        // SAFETY: the survivors are intact (the background trim released
        // no page under them), then freed.
        unsafe {
            assert_eq!(check(p, 64, i as u64), Ok(()), "a live block was released");
            slab.deallocate(p, layout);
        }
    }
    eventually("a background trim", || slab.stats().trimmed_bytes >= 512 << 10);
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.in_use, 0);
    assert_eq!(background_trim_threads(), 1, "the allocator's trim thread is counted");
    drop(slab);
    eventually("the trim thread's exit after the allocator dropped", || background_trim_threads() == 0);
}

#[test]
fn dropping_the_allocator_ends_its_trim_thread_whatever_the_interval() {
    let _one = ONE_BACKGROUND_TEST.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(background_trim_threads(), 0);
    for round in 0..500 {
        let slab = SlabAllocator::builder()
            .size_classes(&[64])
            .capacity(1 << 16)
            .background_trim(lockfree_slab::MAX_TRIM_INTERVAL)
            .build()
            .unwrap();
        let p = slab.allocate(Layout::from_size_align(64, 8).unwrap()).unwrap();
        // SAFETY: allocated just above with this layout, freed once.
        unsafe { slab.deallocate(p, Layout::from_size_align(64, 8).unwrap()) };
        if round == 0 {
            eventually("the first trim thread's start", || background_trim_threads() == 1);
        }
    }
    // 500 threads parked for a day each, unless dropping woke them.
    eventually("every trim thread's exit after its allocator dropped", || background_trim_threads() == 0);
}
