//! Zeroed allocation and resizing: `allocate_zeroed` (a block as for
//! `allocate`, cleared),
//! `resize_in_place` (same class: keep the block), the "both with the
//! system" test that lets `realloc` hand a move to the system allocator, and
//! the size queries `usable_size` and `class_size_for`.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};

use super::SlabAllocator;
use crate::checks::{self, OnMisuse, Panic};
use crate::config::Fallback;
use crate::sync::Ordering;
use crate::AllocError;

impl SlabAllocator {
    /// Like [`allocate`](Self::allocate), with the block's first
    /// `layout.size()` bytes zeroed.
    ///
    /// The block is found as by `allocate` (a freed block is reused) and
    /// cleared; requests that go to the system fallback use its
    /// `alloc_zeroed`.
    pub fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.allocate_zeroed_with::<Panic>(layout)
    }

    /// [`allocate_zeroed`](Self::allocate_zeroed), reporting misuse the
    /// checks find with `R`.
    pub(crate) fn allocate_zeroed_with<R: OnMisuse>(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.is_ready() && layout.size() > 0 {
            let region = self.region();
            if region.class_for(layout.size(), layout.align()).is_none() && region.fallback() == Fallback::System {
                // SAFETY: non-zero size, as `alloc_zeroed` requires.
                let block = NonNull::new(unsafe { System.alloc_zeroed(layout) }).ok_or(AllocError)?;
                // Relaxed: statistics.
                region.oversize.served.fetch_add(1, Ordering::Relaxed);
                return Ok(block);
            }
        }
        // A freed block is reused and cleared, like any other allocation:
        // taking never-used (zero) blocks instead would fault in new pages
        // on every zeroed request while the class has never-used space, and
        // grow the footprint of a calloc/free loop to the class's whole share.
        let block = self.allocate_with::<R>(layout)?;
        // SAFETY: the block holds at least `layout.size()` bytes and is ours.
        unsafe { block.as_ptr().write_bytes(0, layout.size()) };
        Ok(block)
    }

    /// If the block at `ptr` (allocated with some layout) can hold
    /// `new_layout` without moving — it is in the pool, and `new_layout`
    /// maps to the same class — its block size; otherwise `None` (the
    /// caller allocates, copies and frees). With [checks](crate::Builder::checks)
    /// on, `ptr` must be a live block of the pool or a pointer outside it.
    pub fn resize_in_place(&self, ptr: NonNull<u8>, new_layout: Layout) -> Option<usize> {
        self.resize_in_place_with::<Panic>(ptr, new_layout)
    }

    /// [`resize_in_place`](Self::resize_in_place), reporting misuse the
    /// checks find with `R`.
    pub(crate) fn resize_in_place_with<R: OnMisuse>(&self, ptr: NonNull<u8>, new_layout: Layout) -> Option<usize> {
        let region = self.ready_region()?;
        // The first region's block, or an extension's (same classes).
        let (owner, class) = region.locate(ptr.as_ptr())?;
        if owner.checks() {
            checks::assert_live::<R>(owner.pool(class), class, ptr);
        }
        (region.class_for(new_layout.size(), new_layout.align()) == Some(class)
            && ptr.as_ptr() as usize % new_layout.align() == 0)
            .then(|| owner.pool(class).block_size())
    }

    /// Whether a block of `old` at `ptr` lives in the system allocator and a
    /// block of `new` would too, so that resizing can be left to it: the
    /// block is outside the pool, neither layout is zero-size, and no class
    /// holds `new` (while the allocator is still being initialised or failed
    /// to, every request is the system's).
    pub(crate) fn both_with_the_system(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> bool {
        if old.size() == 0 || new.size() == 0 {
            return false;
        }
        match self.ready_region() {
            Some(region) => {
                region.locate(ptr.as_ptr()).is_none()
                    && region.class_for(new.size(), new.align()).is_none()
                    && region.fallback() == Fallback::System
            }
            None => true,
        }
    }

    /// The usable size of the block at `ptr`: its class's block size if
    /// `ptr` is inside this allocator's pool, `None` if it is not (a
    /// fallback block, a zero-size allocation, or a foreign pointer).
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        let (owner, class) = self.ready_region()?.locate(ptr.as_ptr())?;
        Some(owner.pool(class).block_size())
    }

    /// The block size a request for `layout` would get from the pool, or
    /// `None` if it would go to the fallback (or the pool is not reserved
    /// yet: a lazily built allocator reserves it on first allocation).
    pub fn class_size_for(&self, layout: Layout) -> Option<usize> {
        let region = self.ready_region()?;
        region.class_for(layout.size(), layout.align()).map(|class| region.pool(class).block_size())
    }
}
