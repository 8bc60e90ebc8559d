// Own test binary: it reads /proc/self/maps, where a parallel test's region could reuse a range just unmapped.
//! Dropping an allocator returns its region to the OS, also while another
//! thread still has a cache registered for it (that thread's exit flush must
//! then notice the allocator is gone and touch nothing).
//!
//! One test in its own binary, because it reads `/proc/self/maps`: a region
//! created by a test running in parallel could reuse the address range that
//! was just unmapped.

use std::sync::{mpsc, Arc};
use std::thread;

mod common;

use common::{small_slab, L32};
use lockfree_slab::Fallback;

#[test]
#[cfg_attr(miri, ignore = "reads /proc/self/maps")]
fn regions_are_unmapped_when_their_allocator_drops() {
    the_region_is_unmapped_on_drop();
    dropping_the_allocator_while_another_thread_caches_for_it();
}

/// Whether `addr` lies in any mapping of this process.
fn is_mapped(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|line| {
        let range = line.split_whitespace().next().unwrap();
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (usize::from_str_radix(lo, 16).unwrap(), usize::from_str_radix(hi, 16).unwrap());
        (lo..hi).contains(&addr)
    })
}

fn dropping_the_allocator_while_another_thread_caches_for_it() {
    let slab = small_slab(Fallback::Error);
    let (to_worker, worker_rx) = mpsc::channel::<()>();
    let (to_main, main_rx) = mpsc::channel::<usize>();
    let slab = Arc::new(slab);
    let worker = {
        let slab = slab.clone();
        thread::spawn(move || {
            let blocks: Vec<_> = (0..8).map(|_| slab.allocate(L32).unwrap()).collect();
            let addr = blocks[0].as_ptr() as usize;
            for p in blocks {
                // SAFETY: allocated above with L32.
                unsafe { slab.deallocate(p, L32) };
            }
            drop(slab); // the worker's cache stays registered
            to_main.send(addr).unwrap();
            worker_rx.recv().unwrap();
            // Now exit: the exit flush must notice the allocator is gone.
        })
    };
    let addr = main_rx.recv().unwrap();
    assert!(is_mapped(addr));
    assert_eq!(Arc::strong_count(&slab), 1);
    drop(slab);
    assert!(!is_mapped(addr), "the region outlived its allocator");
    to_worker.send(()).unwrap();
    worker.join().expect("the exit flush of a dropped allocator must not crash");
}

fn the_region_is_unmapped_on_drop() {
    let slab = small_slab(Fallback::Error);
    let p = slab.allocate(L32).unwrap();
    let addr = p.as_ptr() as usize;
    // SAFETY: allocated above.
    unsafe { slab.deallocate(p, L32) };
    assert!(is_mapped(addr));
    drop(slab);
    assert!(!is_mapped(addr));
}
