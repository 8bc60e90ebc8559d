//! Growth past the first reservation (`Builder::growth`): a multi-thread
//! stress test that needs the extensions, exhaustion at exactly the grown
//! capacity, realloc of an extension block, and the checks on extension
//! blocks.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use crate::common::{check, fill, LiveSet};
use lockfree_slab::{Fallback, SlabAllocator};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const L64: Layout = match Layout::from_size_align(64, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// 512 blocks of 64 B and 128 of 256 B per reservation.
fn growing(extensions: usize, depth: usize, fallback: Fallback) -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[64, 256])
        .capacity(64 * 1024)
        .cache_depth(depth)
        .growth(extensions)
        .fallback(fallback)
        .build()
        .unwrap()
}

#[test]
fn threads_grow_past_the_first_reservation_and_lose_nothing() {
    let threads = 4u64;
    let peak_per_thread = 300; // 1,200 live at most: more than 512, less than 4 × 512 minus caches
    let slab = Arc::new(growing(3, 16, Fallback::Error));
    let live = Arc::new(LiveSet::new());
    let (tx, rx) = mpsc::sync_channel::<(usize, u64)>(256);
    // Every worker holds its first peak at the same moment, so the peak
    // needs an extension however the threads are scheduled.
    let at_peak = Arc::new(Barrier::new(threads as usize));
    let remote = {
        let (slab, live) = (Arc::clone(&slab), Arc::clone(&live));
        thread::spawn(move || {
            for (addr, tag) in rx {
                let p = NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: handed over by its allocating thread, which no
                // longer touches it.
                unsafe { assert_eq!(check(p, 64, tag), Ok(()), "block {p:p} corrupted") };
                live.remove(addr);
                // SAFETY: allocated with L64, freed once.
                unsafe { slab.deallocate(p, L64) };
            }
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (slab, live, tx, at_peak) = (Arc::clone(&slab), Arc::clone(&live), tx.clone(), Arc::clone(&at_peak));
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t + 7);
                let mut mine: Vec<(NonNull<u8>, u64)> = Vec::new();
                for round in 0..3 {
                    // Build up to the peak, then free most of it, some remotely.
                    for i in 0..peak_per_thread {
                        let tag = t << 40 | round << 20 | i;
                        let p = slab.allocate(L64).expect("the extensions hold the peak");
                        assert!(slab.owns(p.as_ptr()));
                        assert_eq!(slab.usable_size(p), Some(64));
                        live.insert(p.as_ptr() as usize);
                        // SAFETY: ours, 64 bytes.
                        unsafe { fill(p, 64, tag) };
                        mine.push((p, tag));
                    }
                    if round == 0 {
                        at_peak.wait();
                    }
                    while mine.len() > 20 {
                        let (p, tag) = mine.swap_remove(rng.random_range(0..mine.len()));
                        if rng.random_range(0..4) == 0 {
                            tx.send((p.as_ptr() as usize, tag)).unwrap();
                        } else {
                            // SAFETY: ours, checked, freed once.
                            unsafe { assert_eq!(check(p, 64, tag), Ok(()), "block {p:p} corrupted") };
                            live.remove(p.as_ptr() as usize);
                            // SAFETY: allocated with L64, freed once.
                            unsafe { slab.deallocate(p, L64) };
                        }
                    }
                }
                for (p, tag) in mine {
                    // SAFETY: as above.
                    unsafe { assert_eq!(check(p, 64, tag), Ok(())) };
                    live.remove(p.as_ptr() as usize);
                    // SAFETY: as above.
                    unsafe { slab.deallocate(p, L64) };
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    drop(tx);
    remote.join().unwrap();
    assert_eq!(live.len(), 0);
    let stats = slab.stats();
    assert!(stats.grown_reservations >= 1, "the peak needed an extension: {stats}");
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.in_use, 0, "{stats}");
    assert_eq!(stats.classes[0].fallbacks, 0, "no request went to the fallback: {stats}");
    assert_eq!(stats.capacity_bytes, (1 + stats.grown_reservations as usize) * 64 * 1024);
}

#[test]
fn a_grown_class_runs_dry_at_exactly_its_grown_capacity() {
    for extensions in [0, 1, 3] {
        let slab = growing(extensions, 0, Fallback::Error);
        let per_reservation = slab.stats().classes[0].capacity as usize;
        let blocks: Vec<_> = std::iter::from_fn(|| slab.allocate(L64).ok()).take(100_000).collect();
        assert_eq!(blocks.len(), per_reservation * (1 + extensions), "extensions {extensions}");
        let mut sorted: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), blocks.len(), "a block handed out twice");
        let stats = slab.stats();
        assert_eq!(stats.grown_reservations as usize, extensions);
        assert_eq!(stats.classes[0].fallbacks, 1, "the refused request is counted once");
        for p in blocks {
            // SAFETY: allocated above with L64, freed once.
            unsafe { slab.deallocate(p, L64) };
        }
        let stats = slab.stats();
        assert!(stats.is_consistent(), "{stats}");
        assert_eq!(stats.totals.in_use, 0);
        // Freed extension blocks are found again before the fallback.
        let again: Vec<_> = std::iter::from_fn(|| slab.allocate(L64).ok()).take(100_000).collect();
        assert_eq!(again.len(), per_reservation * (1 + extensions));
        for p in again {
            // SAFETY: as above.
            unsafe { slab.deallocate(p, L64) };
        }
    }
}

#[test]
fn realloc_moves_an_extension_block_without_handing_it_to_the_system() {
    let slab = growing(1, 0, Fallback::System);
    let per_reservation = slab.stats().classes[0].capacity as usize;
    let first: Vec<_> = (0..per_reservation).map(|_| slab.allocate(L64).unwrap()).collect();
    // SAFETY: GlobalAlloc's contract: a valid layout; the block is freed below.
    let p = unsafe { GlobalAlloc::alloc(&slab, L64) };
    assert!(slab.owns(p) && slab.stats().grown_reservations == 1, "an extension block");
    // SAFETY: ours, 64 bytes.
    unsafe { fill(NonNull::new(p).unwrap(), 64, 99) };
    // Grow to a size no class holds: must copy out, not call the system's
    // realloc on a pool block.
    // SAFETY: `p` is live with L64; the new size is valid.
    let q = unsafe { GlobalAlloc::realloc(&slab, p, L64, 1 << 21) };
    assert!(!q.is_null() && !slab.owns(q));
    // SAFETY: the first 64 bytes were copied over.
    unsafe { assert_eq!(check(NonNull::new(q).unwrap(), 64, 99), Ok(())) };
    // SAFETY: `q` is live with the new layout.
    unsafe { GlobalAlloc::dealloc(&slab, q, Layout::from_size_align(1 << 21, 8).unwrap()) };
    for p in first {
        // SAFETY: allocated above with L64.
        unsafe { slab.deallocate(p, L64) };
    }
    assert_eq!(slab.stats().totals.in_use, 0);
}

#[test]
fn checks_cover_extension_blocks() {
    let slab = SlabAllocator::builder()
        .size_classes(&[64])
        .capacity(64 * 8)
        .cache_depth(0)
        .growth(1)
        .fallback(Fallback::Error)
        .checks(true)
        .build()
        .unwrap();
    let first: Vec<_> = (0..8).map(|_| slab.allocate(L64).unwrap()).collect();
    let grown = slab.allocate(L64).unwrap();
    assert_eq!(slab.stats().grown_reservations, 1);
    // SAFETY: allocated above, freed once.
    unsafe { slab.deallocate(grown, L64) };
    let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: (not: the double free under test; the checks report it
        // before anything is touched.)
        unsafe { slab.deallocate(grown, L64) }
    }));
    let message = twice.expect_err("a double free of an extension block").downcast::<String>().unwrap();
    assert!(
        message.starts_with(&format!("lockfree-slab checks: double free at {grown:p}, class 0 (64 B blocks), block 0")),
        "{message}"
    );
    for p in first {
        // SAFETY: allocated above.
        unsafe { slab.deallocate(p, L64) };
    }
}

#[test]
fn trim_gives_back_the_pages_of_extensions_too() {
    let slab = growing(2, 0, Fallback::Error);
    let per_reservation = slab.stats().classes[0].capacity as usize;
    let blocks: Vec<_> = (0..3 * per_reservation).map(|_| slab.allocate(L64).unwrap()).collect();
    for &p in &blocks {
        // SAFETY: ours; touching the pages makes them resident.
        unsafe { fill(p, 64, 3) };
    }
    assert_eq!(slab.stats().grown_reservations, 2);
    for p in blocks {
        // SAFETY: allocated above with L64, freed once.
        unsafe { slab.deallocate(p, L64) };
    }
    let report = slab.trim();
    // Three reservations of 32 KiB of 64-byte blocks each, every page free.
    assert_eq!(report.free_page_bytes, 3 * per_reservation * 64, "{report}");
    assert_eq!(report.free_blocks as usize, 3 * per_reservation, "{report}");
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.free_in_stack as usize, 3 * per_reservation);
}
