//! Lifecycles: many allocators in one thread, threads that exit with blocks
//! cached, allocators dropped while other threads still hold caches for them,
//! more threads than cache slots, and `populate`.

use std::alloc::Layout;
use std::sync::{Arc, Barrier};
use std::thread;

use crate::common::{small_slab as small, LiveSet, L32};
use lockfree_slab::{Fallback, SlabAllocator};

#[test]
fn one_thread_uses_more_allocators_than_its_cache_list_holds() {
    // The thread keeps 8 entries; 20 allocators force evictions (flushes)
    // in a round-robin that revisits every allocator.
    let slabs: Vec<SlabAllocator> = (0..20).map(|_| small(Fallback::Error)).collect();
    let live = LiveSet::new();
    let mut held: Vec<Vec<std::ptr::NonNull<u8>>> = vec![Vec::new(); slabs.len()];
    for round in 0..50 {
        for (i, slab) in slabs.iter().enumerate() {
            for _ in 0..10 {
                let p = slab.allocate(L32).unwrap();
                assert!(slab.owns(p.as_ptr()));
                live.insert(p.as_ptr() as usize);
                held[i].push(p);
            }
            let keep = if round % 2 == 0 { 5 } else { 0 };
            while held[i].len() > keep {
                let p = held[i].pop().unwrap();
                live.remove(p.as_ptr() as usize);
                // SAFETY: allocated from `slab` with L32.
                unsafe { slab.deallocate(p, L32) };
            }
        }
    }
    for (slab, held) in slabs.iter().zip(&held) {
        let stats = slab.stats();
        assert!(stats.is_consistent(), "{stats}");
        assert_eq!(stats.classes[0].in_use, held.len() as u64);
        assert!(stats.totals.flushes > 0, "evictions flush the magazines:\n{stats}");
    }
}

#[test]
fn an_exiting_thread_returns_its_cached_blocks() {
    let slab = Arc::new(small(Fallback::Error));
    let s = slab.clone();
    thread::spawn(move || {
        let blocks: Vec<_> = (0..12).map(|_| s.allocate(L32).unwrap()).collect();
        for p in blocks {
            // SAFETY: allocated above with L32.
            unsafe { s.deallocate(p, L32) };
        }
        let stats = s.stats();
        assert!(stats.classes[0].in_caches >= 12, "freed blocks sit in the thread's cache:\n{stats}");
    })
    .join()
    .unwrap();
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.classes[0].in_caches, 0, "the exited thread kept blocks:\n{stats}");
    assert_eq!(stats.classes[0].free_in_stack, stats.classes[0].carved);
    assert_eq!(stats.cached_threads, 0, "the exited thread kept its slot");
}

#[test]
fn more_threads_than_cache_slots_are_all_served() {
    let slab = Arc::new(
        SlabAllocator::builder()
            .size_classes(&[32])
            .capacity(1 << 16)
            .max_cached_threads(2)
            .fallback(Fallback::Error)
            .build()
            .unwrap(),
    );
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (slab, barrier) = (slab.clone(), barrier.clone());
            thread::spawn(move || {
                let mut blocks = vec![slab.allocate(L32).expect("every thread is served")];
                barrier.wait(); // all 8 threads are alive at once
                blocks.extend((0..100).map(|_| slab.allocate(L32).expect("every thread is served")));
                barrier.wait();
                for p in blocks {
                    // SAFETY: allocated above with L32.
                    unsafe { slab.deallocate(p, L32) };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.in_use, 0);
    assert!(stats.totals.uncached_allocations >= 6 * 101, "six threads had no slot:\n{stats}");
}

#[cfg(target_os = "linux")]
fn minor_faults_of_this_thread() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage.ru_minflt
    }
}

/// Allocates and writes every block of a 4 MiB, 4 KiB-class pool; returns the
/// page faults the touching caused.
#[cfg(target_os = "linux")]
fn faults_touching_every_block(populate: bool) -> i64 {
    let slab = SlabAllocator::builder()
        .size_classes(&[4096])
        .capacity(4 << 20)
        .populate(populate)
        .fallback(Fallback::Error)
        .build()
        .unwrap();
    let l = Layout::from_size_align(4096, 4096).unwrap();
    let mut blocks = Vec::with_capacity(1024);
    // Warm the thread's cache slot and the Vec before counting.
    let first = slab.allocate(l).unwrap();
    // SAFETY: allocated above.
    unsafe { slab.deallocate(first, l) };
    let before = minor_faults_of_this_thread();
    while let Ok(p) = slab.allocate(l) {
        // SAFETY: a fresh 4 KiB block.
        unsafe { p.as_ptr().write_bytes(0xA5, 4096) };
        blocks.push(p);
    }
    let faults = minor_faults_of_this_thread() - before;
    assert_eq!(blocks.len(), 1024);
    for p in blocks {
        // SAFETY: allocated above with `l`.
        unsafe { slab.deallocate(p, l) };
    }
    faults
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "mmap and getrusage")]
fn populate_means_no_page_faults_after_build() {
    let lazy = faults_touching_every_block(false);
    let populated = faults_touching_every_block(true);
    println!("page faults touching 1024 pages: lazy {lazy}, populated {populated}");
    assert!(lazy >= 1000, "lazily committed pages should fault on first touch ({lazy})");
    assert!(populated <= 4, "populated pool still faulted {populated} times");
}

/// A zeroed-allocation loop reuses its freed blocks (cleared) instead of
/// taking never-used ones each time, which would fault in new pages on
/// every call and grow the footprint to the class's whole share.
#[test]
fn a_zeroed_allocation_loop_reuses_freed_blocks() {
    const ROUNDS: usize = 2_000;
    let slab = SlabAllocator::builder().size_classes(&[8192]).capacity(64 << 20).build().unwrap();
    let layout = Layout::from_size_align(8192, 8).unwrap();
    for round in 0..ROUNDS {
        let p = slab.allocate_zeroed(layout).expect("capacity for a few blocks");
        // SAFETY: a live 8 KiB block of ours.
        let bytes = unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), 8192) };
        assert!(bytes.iter().all(|&b| b == 0), "round {round}: a zeroed block holds a non-zero byte");
        bytes.fill(0xAB);
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { slab.deallocate(p, layout) };
    }
    let class = &slab.stats().classes[0];
    assert!(class.carved <= 128, "{ROUNDS} zeroed allocations carved {} fresh blocks instead of reusing", class.carved);
}
