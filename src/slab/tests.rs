//! Small pools, so Miri can run them too.

use core::alloc::Layout;

use super::SlabAllocator;
use crate::checks;
use crate::config::Fallback;
use crate::stats::Stats;

fn tiny(depth: usize, fallback: Fallback) -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[16, 64])
        .capacity(16 * 8 + 64 * 8)
        .split(&[20, 80])
        .cache_depth(depth)
        .max_cached_threads(2)
        .fallback(fallback)
        .build()
        .unwrap()
}

/// The classes of [`tiny`] with two-block magazines and the checks on.
fn tiny_checked() -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[16, 64])
        .capacity(16 * 8 + 64 * 8)
        .split(&[20, 80])
        .cache_depth(2)
        .fallback(Fallback::Error)
        .checks(true)
        .build()
        .unwrap()
}

fn l(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
fn blocks_are_distinct_writable_and_reused() {
    for depth in [0, 2, 4] {
        let slab = tiny(depth, Fallback::Error);
        let cap = slab.stats().classes[0].capacity as usize;
        let blocks: Vec<_> = (0..cap).map(|_| slab.allocate(l(16)).unwrap()).collect();
        for (i, p) in blocks.iter().enumerate() {
            // SAFETY: each block is 16 bytes and ours.
            unsafe { p.as_ptr().write_bytes(i as u8, 16) };
        }
        for (i, p) in blocks.iter().enumerate() {
            // SAFETY: as above; the blocks do not overlap, so each still
            // holds its own byte.
            assert_eq!(unsafe { *p.as_ptr().add(15) }, i as u8);
        }
        assert!(slab.allocate(l(16)).is_err());
        for p in &blocks {
            // SAFETY: allocated above with l(16), freed once.
            unsafe { slab.deallocate(*p, l(16)) };
        }
        let again = slab.allocate(l(16)).unwrap();
        assert!(blocks.contains(&again));
        // SAFETY: allocated above.
        unsafe { slab.deallocate(again, l(16)) };
        slab.flush_thread_cache();
        let stats = slab.stats();
        assert!(stats.is_consistent(), "{stats}");
        assert_eq!(stats.classes[0].free_in_stack, cap as u64);
    }
}

#[test]
fn fallback_blocks_go_back_to_the_system() {
    let slab = tiny(2, Fallback::System);
    let big = slab.allocate(l(100)).unwrap();
    assert!(!slab.owns(big.as_ptr()));
    // SAFETY: 100 bytes, ours.
    unsafe { big.as_ptr().write_bytes(7, 100) };
    // SAFETY: allocated above with l(100).
    unsafe { slab.deallocate(big, l(100)) };
    assert_eq!(slab.stats().oversize_fallbacks, 1);
}

static CLASSES: [usize; 2] = [16, 64];
static SPLIT: [u8; 2] = [50, 50];

#[test]
fn a_const_allocator_reserves_its_region_on_first_use() {
    let slab = SlabAllocator::with_size_classes(&CLASSES, &SPLIT, 64 * 8);
    assert_eq!(slab.stats(), Stats::default(), "nothing reserved before first use");
    assert!(slab.fallback().is_none());
    let p = slab.allocate(l(16)).unwrap();
    assert!(slab.owns(p.as_ptr()), "the first request is served by the new pool");
    assert_eq!(slab.stats().classes.len(), 2);
    assert_eq!(slab.fallback(), Some(Fallback::System));
    // SAFETY: allocated above with l(16).
    unsafe { slab.deallocate(p, l(16)) };
    assert_eq!(slab.stats().totals.in_use, 0);
}

#[test]
fn an_invalid_const_configuration_hands_everything_to_the_system() {
    static BAD: [usize; 1] = [20]; // not a multiple of 8
    let slab = SlabAllocator::with_size_classes(&BAD, &[100], 1 << 16);
    let p = slab.allocate(l(16)).expect("the system serves it");
    assert!(!slab.owns(p.as_ptr()));
    // SAFETY: 16 bytes, ours.
    unsafe { p.as_ptr().write_bytes(1, 16) };
    // SAFETY: allocated above with l(16).
    unsafe { slab.deallocate(p, l(16)) };
    let z = slab.allocate(Layout::from_size_align(0, 8).unwrap()).unwrap();
    // SAFETY: a zero-size allocation, freed with its layout.
    unsafe { slab.deallocate(z, Layout::from_size_align(0, 8).unwrap()) };
    assert_eq!(slab.stats(), Stats::default());
}

#[test]
fn an_unused_const_allocator_drops_without_a_region() {
    let slab = SlabAllocator::new();
    assert!(format!("{slab:?}").contains("state"));
    drop(slab);
}

#[test]
fn checks_report_misuse_and_poison_freed_blocks() {
    let slab = tiny_checked();
    let p = slab.allocate(l(64)).unwrap();
    // SAFETY: 64 bytes, ours.
    unsafe { p.as_ptr().write_bytes(1, 64) };
    // SAFETY: allocated above with l(64), freed once.
    unsafe { slab.deallocate(p, l(64)) };
    // SAFETY: the freed block is still mapped; reading it shows the poison.
    assert_eq!(unsafe { *p.as_ptr().add(63) }, checks::POISON);
    let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: (not: the double free under test; reported before
        // anything is touched.)
        unsafe { slab.deallocate(p, l(64)) }
    }));
    let message = twice.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("double free") && message.contains("block 0"), "{message}");
    let q = slab.allocate(l(64)).unwrap();
    assert_eq!(p, q, "the intact block is handed out again");
    // SAFETY: allocated above.
    unsafe { slab.deallocate(q, l(64)) };
}

/// Every path that can report misuse reports with the policy its caller
/// passed: `GlobalAlloc` passes `Abort` to these same functions, so no
/// path reachable from it can unwind. Driven here with a policy whose
/// report carries a marker, on each entry point `GlobalAlloc` uses, the
/// unready path (a request that saw the allocator before it was READY)
/// included.
#[test]
fn misuse_is_reported_with_the_callers_policy_on_every_path() {
    use checks::{Marked, PanicMarked};
    let slab = tiny_checked();
    let marked = |what: &str, f: &dyn Fn()| {
        let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err(what);
        let report = payload.downcast::<Marked>().unwrap_or_else(|_| panic!("{what}: reported with another policy"));
        assert!(report.0.contains("lockfree-slab checks"), "{what}: {}", report.0);
    };
    // A block written after its free: the next allocation of its class
    // reports it, on the unready path as on the normal one.
    let corrupt = || {
        let p = slab.allocate(l(64)).unwrap();
        // SAFETY: allocated above with l(64), freed once.
        unsafe { slab.deallocate(p, l(64)) };
        // SAFETY: (not: the write after free under test; the block is
        // still mapped and nobody else uses it.)
        unsafe { p.as_ptr().write(7) };
    };
    corrupt();
    marked("allocate_unready", &|| {
        let _ = slab.allocate_unready::<PanicMarked>(l(64));
    });
    corrupt();
    marked("allocate_with", &|| {
        let _ = slab.allocate_with::<PanicMarked>(l(64));
    });
    corrupt();
    marked("allocate_zeroed_with", &|| {
        let _ = slab.allocate_zeroed_with::<PanicMarked>(l(64));
    });
    let p = slab.allocate(l(16)).unwrap();
    // SAFETY: allocated above with l(16), freed once.
    unsafe { slab.deallocate(p, l(16)) };
    // SAFETY: (not: the double free and the resize of a freed block
    // under test; both are reported before anything is touched.)
    marked("deallocate_with", &|| unsafe { slab.deallocate_with::<PanicMarked>(p, l(16)) });
    marked("resize_in_place_with", &|| {
        let _ = slab.resize_in_place_with::<PanicMarked>(p, l(8));
    });
}

#[test]
fn growth_adds_a_reservation_when_a_class_runs_dry() {
    let slab = SlabAllocator::builder()
        .size_classes(&[16])
        .capacity(16 * 4)
        .cache_depth(0)
        .growth(1)
        .fallback(Fallback::Error)
        .build()
        .unwrap();
    let blocks: Vec<_> = (0..8).map(|_| slab.allocate(l(16)).unwrap()).collect();
    assert!(slab.allocate(l(16)).is_err(), "two reservations of four blocks");
    assert_eq!(slab.stats().grown_reservations, 1);
    for p in &blocks {
        assert!(slab.owns(p.as_ptr()));
        // SAFETY: allocated above with l(16), freed once.
        unsafe { slab.deallocate(*p, l(16)) };
    }
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!((stats.totals.in_use, stats.totals.capacity), (0, 8));
}

#[test]
fn two_threads_share_one_allocator() {
    let slab = std::sync::Arc::new(tiny(2, Fallback::Error));
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let slab = slab.clone();
            std::thread::spawn(move || {
                for i in 0..20u8 {
                    if let Ok(p) = slab.allocate(l(64)) {
                        // SAFETY: 64 bytes, ours until freed below.
                        unsafe {
                            p.as_ptr().write_bytes(i ^ t, 64);
                            assert_eq!(*p.as_ptr().add(63), i ^ t);
                            slab.deallocate(p, l(64));
                        }
                    }
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
    assert_eq!(stats.totals.in_caches, 0, "exited threads flushed their caches");
}
