//! Exhaustion and the fallback: `Fallback::Error` answers `AllocError` at
//! exactly the capacity; `Fallback::System` serves the extra requests from the
//! system allocator, and `deallocate` routes them back by address. Requests
//! no class can hold, and zero-size requests, get the documented answers.

use std::alloc::Layout;

use crate::common::{check, fill, LiveSet};
use lockfree_slab::{Fallback, SlabAllocator};

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn error_fallback_refuses_at_exactly_the_capacity() {
    for depth in [0, 2, 64] {
        let slab = SlabAllocator::builder()
            .size_classes(&[64])
            .capacity(64 * 100)
            .cache_depth(depth)
            .fallback(Fallback::Error)
            .build()
            .unwrap();
        let l = layout(64, 8);
        let blocks: Vec<_> =
            (0..100).map(|i| slab.allocate(l).unwrap_or_else(|_| panic!("block {i} refused"))).collect();
        assert!(slab.allocate(l).is_err(), "101st block of a 100-block class was served (depth {depth})");
        assert!(slab.allocate(layout(1, 1)).is_err(), "a smaller request was served from the dry class");
        let stats = slab.stats();
        assert_eq!(stats.classes[0].in_use, 100);
        assert_eq!(stats.classes[0].fallbacks, 2);
        // Free one: exactly one more fits.
        // SAFETY: allocated above with `l`.
        unsafe { slab.deallocate(blocks[7], l) };
        let again = slab.allocate(l).expect("a freed block is served again");
        assert_eq!(again, blocks[7], "LIFO reuse of the block just freed");
        assert!(slab.allocate(l).is_err());
        for (i, p) in blocks.into_iter().enumerate() {
            if i != 7 {
                // SAFETY: allocated above with `l`, freed once.
                unsafe { slab.deallocate(p, l) };
            }
        }
        // SAFETY: allocated above with `l`.
        unsafe { slab.deallocate(again, l) };
        assert!(slab.stats().is_consistent());
        assert_eq!(slab.stats().totals.in_use, 0);
    }
}

#[test]
fn system_fallback_serves_and_takes_back_the_overflow() {
    let slab = SlabAllocator::builder()
        .size_classes(&[64, 256])
        .capacity(64 * 100 + 256 * 100)
        .split(&[20, 80])
        .fallback(Fallback::System)
        .build()
        .unwrap();
    let capacity = slab.stats().classes[0].capacity as usize;
    let l = layout(48, 16);
    let live = LiveSet::new();
    let mut blocks = Vec::new();
    for i in 0..capacity + 50 {
        let p = slab.allocate(l).expect("the system fallback serves what the pool cannot");
        assert_eq!(p.as_ptr() as usize % 16, 0);
        live.insert(p.as_ptr() as usize);
        // SAFETY: a fresh block of at least 48 bytes.
        unsafe { fill(p, 48, i as u64) };
        blocks.push(p);
    }
    let (inside, outside): (Vec<&std::ptr::NonNull<u8>>, Vec<_>) = blocks.iter().partition(|p| slab.owns(p.as_ptr()));
    assert_eq!(inside.len(), capacity);
    assert_eq!(outside.len(), 50);
    assert!(outside.iter().all(|p| slab.usable_size(**p).is_none()));
    assert!(inside.iter().all(|p| slab.usable_size(**p) == Some(64)));
    // Oversize and over-aligned requests also go to the system.
    let big = layout(1 << 20, 8);
    let huge_align = layout(64, 8192);
    let b = slab.allocate(big).unwrap();
    let h = slab.allocate(huge_align).unwrap();
    assert!(!slab.owns(b.as_ptr()) && !slab.owns(h.as_ptr()));
    assert_eq!(h.as_ptr() as usize % 8192, 0);
    let stats = slab.stats();
    assert_eq!(stats.classes[0].fallbacks, 50);
    assert_eq!(stats.oversize_fallbacks, 2);
    for (i, p) in blocks.into_iter().enumerate() {
        // SAFETY: filled above with tag `i`.
        assert_eq!(unsafe { check(p, 48, i as u64) }, Ok(()), "block {i} corrupted");
        live.remove(p.as_ptr() as usize);
        // SAFETY: allocated above with `l`; the allocator routes it by address.
        unsafe { slab.deallocate(p, l) };
    }
    // SAFETY: allocated above with these layouts.
    unsafe {
        slab.deallocate(b, big);
        slab.deallocate(h, huge_align);
    }
    let stats = slab.stats();
    assert!(stats.is_consistent());
    assert_eq!(stats.totals.in_use, 0);
}

#[test]
fn error_fallback_refuses_what_no_class_holds() {
    let slab =
        SlabAllocator::builder().size_classes(&[64, 4096]).capacity(1 << 20).fallback(Fallback::Error).build().unwrap();
    assert!(slab.allocate(layout(4097, 8)).is_err());
    assert!(slab.allocate(layout(64, 8192)).is_err());
    // 4096 B blocks are page-aligned, so a 4096-aligned small request fits.
    let p = slab.allocate(layout(10, 4096)).unwrap();
    assert_eq!(p.as_ptr() as usize % 4096, 0);
    assert_eq!(slab.usable_size(p), Some(4096));
    // SAFETY: allocated above with that layout.
    unsafe { slab.deallocate(p, layout(10, 4096)) };
    assert_eq!(slab.stats().oversize_refused, 2);
}

#[test]
fn zero_size_requests_get_a_unique_block_or_a_dangling_pointer() {
    let slab = SlabAllocator::builder().profile(lockfree_slab::Profile::Balanced).build().unwrap();
    // Alignments a class can give: a unique block of the smallest such class.
    let live = LiveSet::new();
    let mut blocks = Vec::new();
    for align in [1, 8, 64] {
        let l = layout(0, align);
        for _ in 0..3 {
            let p = slab.allocate(l).expect("zero-size requests succeed");
            assert_eq!(p.as_ptr() as usize % align, 0);
            assert_eq!(slab.usable_size(p), Some(64));
            live.insert(p.as_ptr() as usize);
            blocks.push((p, l));
        }
    }
    assert_eq!(slab.stats().totals.in_use, 9);
    for (p, l) in blocks {
        // SAFETY: allocated above with `l`.
        unsafe { slab.deallocate(p, l) };
    }
    // Alignments no class gives: a dangling, aligned pointer, no memory.
    for align in [4096, 1 << 16] {
        let l = layout(0, align);
        let p = slab.allocate(l).expect("zero-size requests succeed");
        assert_eq!(p.as_ptr() as usize % align, 0);
        assert!(!slab.owns(p.as_ptr()));
        // SAFETY: allocated above with `l`; a no-op.
        unsafe { slab.deallocate(p, l) };
    }
    let stats = slab.stats();
    assert_eq!(stats.totals.in_use, 0);
    assert_eq!(stats.oversize_fallbacks + stats.oversize_refused, 0);
}

#[test]
fn usable_size_and_class_size_agree_with_the_table() {
    let slab = SlabAllocator::builder().build().unwrap();
    for (size, align, expect) in [
        (1, 1, 8),
        (9, 8, 16),
        (20, 16, 32),
        (24, 8, 24),
        (65, 8, 80),
        (129, 8, 160),
        (32769, 8, 40960),
        (262144, 8, 262144),
    ] {
        let l = layout(size, align);
        assert_eq!(slab.class_size_for(l), Some(expect), "size {size} align {align}");
        let p = slab.allocate(l).unwrap();
        assert_eq!(slab.usable_size(p), Some(expect));
        // SAFETY: allocated above with `l`.
        unsafe { slab.deallocate(p, l) };
    }
    assert_eq!(slab.class_size_for(layout(262145, 8)), None);
}
