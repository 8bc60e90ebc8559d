//! First use of a `const`-constructed allocator: two threads allocate at
//! once from an allocator nobody has initialised. Exactly one of them reserves
//! the region (loom's tracked allocator fails the model on a second, leaked
//! reservation, and on a region freed twice); the other is served either by
//! the system (while initialisation is in flight) or by the pool (once it
//! sees `READY`, whose Release/Acquire pairing makes the hot-path constants
//! visible). Both blocks are usable and distinct, and both go back to where
//! they came from.

use std::alloc::Layout;

use loom::sync::Arc;
use loom::thread;

use super::check;
use crate::SlabAllocator;

static CLASSES: [usize; 1] = [16];
static SPLIT: [u8; 1] = [100];

#[test]
fn first_use_from_two_threads_initialises_once() {
    check("lazy::first_use_from_two_threads_initialises_once", || {
        let slab = Arc::new(SlabAllocator::with_size_classes(&CLASSES, &SPLIT, 16 * 4));
        let layout = Layout::from_size_align(16, 8).unwrap();
        let other = {
            let slab = Arc::clone(&slab);
            thread::spawn(move || {
                let p = slab.allocate(layout).expect("served by the pool or the system");
                // SAFETY: 16 bytes, ours.
                unsafe { p.as_ptr().write_bytes(0xB, 16) };
                p.as_ptr() as usize
            })
        };
        let mine = slab.allocate(layout).expect("served by the pool or the system");
        // SAFETY: 16 bytes, ours.
        unsafe { mine.as_ptr().write_bytes(0xA, 16) };
        let theirs = other.join().unwrap();
        assert_ne!(mine.as_ptr() as usize, theirs, "one block handed to both threads");
        // SAFETY: our own block, written above; still ours.
        assert_eq!(unsafe { *mine.as_ptr().add(15) }, 0xA);
        let stats = slab.stats();
        assert_eq!(stats.classes.len(), 1, "initialised exactly once");
        let theirs = core::ptr::NonNull::new(theirs as *mut u8).unwrap();
        // SAFETY: both blocks came from `slab.allocate(layout)`; each freed
        // once, after its writer is done (joined).
        unsafe {
            slab.deallocate(mine, layout);
            slab.deallocate(theirs, layout);
        }
    });
}
