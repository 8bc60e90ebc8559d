//! `huge_pages(true)`: the spans are advised to use transparent huge pages.
//! Whether the kernel grants them cannot be asserted (THP may be off, or
//! memory fragmented); what must hold is that such an allocator builds and
//! works exactly like one without the advice.

use std::alloc::Layout;
use std::ptr::NonNull;

use lockfree_slab::SlabAllocator;

fn fill_and_check(slab: &SlabAllocator, rounds: usize) {
    let sizes = [16usize, 64, 256, 1024, 4096];
    let mut live: Vec<(NonNull<u8>, Layout, u8)> = Vec::new();
    for round in 0..rounds {
        for (i, &size) in sizes.iter().cycle().take(2_000).enumerate() {
            let layout = Layout::from_size_align(size, 8).unwrap();
            let p = slab.allocate(layout).expect("the pool has room");
            let tag = (round * 7 + i) as u8;
            // SAFETY: the block holds `size` bytes and is ours.
            unsafe { p.as_ptr().write_bytes(tag, size) };
            live.push((p, layout, tag));
        }
        // Free every other block, keep the rest across the next round.
        let mut kept = Vec::new();
        for (k, (p, layout, tag)) in live.drain(..).enumerate() {
            // SAFETY: the block is live with `layout`.
            let bytes = unsafe { std::slice::from_raw_parts(p.as_ptr(), layout.size()) };
            assert!(bytes.iter().all(|&b| b == tag), "block {p:?} lost its contents");
            if k % 2 == 0 {
                // SAFETY: allocated from `slab` with `layout`, freed once.
                unsafe { slab.deallocate(p, layout) };
            } else {
                kept.push((p, layout, tag));
            }
        }
        live = kept;
    }
    for (p, layout, tag) in live {
        // SAFETY: as above.
        unsafe {
            assert_eq!(*p.as_ptr().add(layout.size() - 1), tag);
            slab.deallocate(p, layout);
        }
    }
    assert_eq!(slab.stats().totals.in_use, 0);
}

#[test]
fn a_huge_pages_allocator_builds_and_works() {
    let slab = SlabAllocator::builder()
        .size_classes(&[16, 64, 256, 1024, 4096])
        .capacity(64 << 20)
        .huge_pages(true)
        .build()
        .expect("huge-page advice never makes build fail");
    fill_and_check(&slab, 5);
}

#[test]
fn huge_pages_with_populate_builds_and_works() {
    let slab = SlabAllocator::builder()
        .size_classes(&[16, 64, 256, 1024, 4096])
        .capacity(16 << 20)
        .huge_pages(true)
        .populate(true)
        .build()
        .expect("huge-page advice never makes build fail");
    assert!(slab.is_populated());
    fill_and_check(&slab, 3);
}
