//! Growth (`growth.rs`): two threads find the first region's class dry at
//! once and race to build the first extension. Exactly one extension must
//! be published (the loser's is destroyed, which loom's leak check at the
//! end of each execution confirms), and both threads get distinct blocks of
//! it.

use core::alloc::Layout;
use std::sync::Arc;

use loom::thread;

use super::check;
use crate::{Fallback, SlabAllocator};

const BLOCK: Layout = match Layout::from_size_align(16, 16) {
    Ok(layout) => layout,
    Err(_) => panic!("16/16 is a valid layout"),
};

#[test]
fn two_threads_racing_to_grow_publish_one_extension() {
    check("growth::two_threads_racing_to_grow", || {
        let slab = Arc::new(
            SlabAllocator::builder()
                .size_classes(&[16])
                .capacity(16 * 2)
                .cache_depth(0)
                .growth(1)
                .fallback(Fallback::Error)
                .build()
                .expect("a valid tiny configuration"),
        );
        // Use up the first region: its two blocks.
        let first = [slab.allocate(BLOCK).unwrap(), slab.allocate(BLOCK).unwrap()];
        let grower = || {
            let slab = Arc::clone(&slab);
            thread::spawn(move || slab.allocate(BLOCK).expect("the extension has room for both").as_ptr() as usize)
        };
        let (a, b) = (grower(), grower());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_ne!(a, b, "one block handed out twice");
        let stats = slab.stats();
        assert_eq!(stats.grown_reservations, 1, "exactly one extension is published");
        assert!(slab.allocate(BLOCK).is_err(), "both regions are used up");
        for p in first.into_iter().chain([a, b].map(|p| core::ptr::NonNull::new(p as *mut u8).unwrap())) {
            assert!(slab.owns(p.as_ptr()));
            // SAFETY: each block came from `slab.allocate(BLOCK)` and is freed once.
            unsafe { slab.deallocate(p, BLOCK) };
        }
        let stats = slab.stats();
        assert!(stats.is_consistent());
        assert_eq!(stats.totals.in_use, 0);
    });
}
