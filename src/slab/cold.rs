//! Every path off the cache hit. The call tree of all of them, from the
//! entry points down (HOT: `hot.rs`, inlined into the caller; everything
//! else is `#[cold]`, `#[inline(never)]`):
//!
//! ```text
//! allocate / GlobalAlloc::alloc / Allocator::allocate
//! └─ allocate_with                          HOT  hot.rs
//!    ├─ front entry not ours (or no slot, checked, not READY) ──> allocate_miss
//!    │   ├─ not READY ──> allocate_unready       lazy.rs: first use, or the system
//!    │   ├─ no class holds it ──> allocate_unclassed
//!    │   └─ allocate_lookup                      registry::slot_for (claims a slot)
//!    │       ├─ checked ──> allocate_checked      the same paths, then checks::on_allocate
//!    │       ├─ no slot ──> allocate_uncached     pool.take_one_or_wait; dry: allocate_fallback(class)
//!    │       └─ allocate_in
//!    ├─ no class holds it ──> allocate_unclassed  zero size: dangling; else allocate_fallback(None)
//!    └─ allocate_in                         HOT  magazine pop
//!       └─ empty ──> allocate_refill              refill_and_pop (pool.take_batch: free blocks
//!                                                 of the runs on top, else carve); dry:
//!                                                 retry_while_trimmed, then allocate_fallback(class)
//! allocate_fallback(class or None)                growth (a further reservation) for a dry class,
//!                                                 a zero-size request: dangling; else the
//!                                                 configured Fallback (System or AllocError)
//!
//! deallocate / GlobalAlloc::dealloc / Allocator::deallocate
//! └─ deallocate_with                        HOT  hot.rs
//!    ├─ front entry not ours (or no slot, checked, not READY) ──> deallocate_miss
//!    │   ├─ not READY, or outside the first region ──> deallocate_unclassed
//!    │   └─ deallocate_lookup                     checks::on_free; registry::slot_for
//!    │       ├─ no slot ──> deallocate_uncached   pool.give_back
//!    │       └─ deallocate_in
//!    ├─ outside the first region ──> deallocate_unclassed
//!    │                                            an extension's block (Region::locate): its
//!    │                                            class's runs; else the checks' foreign-pointer
//!    │                                            tests; System.dealloc
//!    └─ deallocate_in                       HOT  magazine push
//!       └─ full ──> deallocate_flush              flush_and_push (pool.give_batch: a fetch_or
//!                                                 per run, one push for the runs that were empty)
//! ```
//!
//! `allocate_zeroed`, `resize_in_place` and `realloc` (`resize.rs`,
//! `global.rs`) enter through the same two trees.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};

use super::{registry, SlabAllocator};
use crate::cache::SlotPtr;
use crate::checks::{self, OnMisuse};
use crate::config::Fallback;
use crate::size_class::ScaledClass;
use crate::sync::Ordering;
use crate::AllocError;

impl SlabAllocator {
    /// The current thread's cache slot, looked up or claimed (see
    /// `registry.rs`); the cold half of the lookup.
    #[inline]
    pub(super) fn slot(&self) -> Option<SlotPtr> {
        let region = self.region();
        registry::slot_for(region.id(), region, self.owner())
    }

    /// The front thread-local entry is not this allocator's (or has no
    /// slot, or this allocator is checked or not ready yet): the checks of
    /// the hot path in the safe order — ready, class, then the lookup.
    #[cold]
    #[inline(never)]
    pub(super) fn allocate_miss<R: OnMisuse>(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let Some(hot) = self.ready_hot() else {
            return self.allocate_unready::<R>(layout);
        };
        let Some(class) = hot.class_for(layout.size(), layout.align()) else {
            return self.allocate_unclassed(layout);
        };
        self.allocate_lookup::<R>(class, layout)
    }

    /// As [`allocate_miss`](Self::allocate_miss), for a free.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn deallocate_miss<R: OnMisuse>(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = self.ready_hot().and_then(|hot| hot.class_of(ptr.as_ptr())) else {
            // SAFETY: no region yet (or never), or outside it: from the
            // system allocator or the fallback, or a zero-size dangling
            // pointer, or an extension's block (caller).
            return unsafe { self.deallocate_unclassed::<R>(ptr, layout) };
        };
        // SAFETY: `ptr` is a block of `class` being freed (caller).
        unsafe { self.deallocate_lookup::<R>(class, ptr) }
    }

    /// The front thread-local entry is another allocator's (or says "no
    /// slot", or this allocator is checked): look the slot up, claim one if
    /// needed, then allocate.
    #[cold]
    #[inline(never)]
    pub(super) fn allocate_lookup<R: OnMisuse>(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.region().checks() {
            return self.allocate_checked::<R>(class, layout);
        }
        let Some(slot) = self.slot() else {
            return self.allocate_uncached(class, layout);
        };
        // SAFETY: `slot_for` returned this thread's own slot of this region.
        unsafe { self.allocate_in(self.hot(), slot, ScaledClass::of(class), layout) }
    }

    /// Every allocation of a checked allocator: as the unchecked paths, then
    /// the block's state and poison are checked (`checks.rs`).
    #[cold]
    #[inline(never)]
    pub(super) fn allocate_checked<R: OnMisuse>(
        &self,
        class: usize,
        layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        let block = match self.slot() {
            // SAFETY: `slot_for` returned this thread's own slot of this region.
            Some(slot) => unsafe { self.allocate_in(self.hot(), slot, ScaledClass::of(class), layout) },
            None => self.allocate_uncached(class, layout),
        }?;
        // A dry class's block comes from an extension, the fallback, or is
        // dangling.
        if let Some((owner, class)) = self.region().locate(block.as_ptr()) {
            let pool = owner.pool(class);
            checks::on_allocate::<R>(pool, class, block);
            pool.count_requested(layout.size());
        }
        Ok(block)
    }

    /// As [`allocate_lookup`](Self::allocate_lookup), for a free; a checked
    /// allocator checks (and poisons) the block first.
    ///
    /// # Safety
    ///
    /// `ptr` is a block of `class` that the caller is freeing (for a checked
    /// allocator: a pointer into `class`'s span, which the checks verify).
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn deallocate_lookup<R: OnMisuse>(&self, class: usize, ptr: NonNull<u8>) {
        if self.region().checks() {
            checks::on_free::<R>(self.region().pool(class), class, ptr);
        }
        let Some(slot) = self.slot() else {
            // SAFETY: forwarded from the caller.
            return unsafe { self.deallocate_uncached(class, ptr) };
        };
        // SAFETY: `slot_for` returned this thread's own slot of this region;
        // the rest is forwarded from the caller.
        unsafe { self.deallocate_in(self.hot(), slot, ScaledClass::of(class), ptr) }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn allocate_refill(
        &self,
        slot: SlotPtr,
        class: usize,
        layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: as in `allocate`, whose slot and class these are.
        let magazine = unsafe { self.hot().cache.magazine(slot, ScaledClass::of(class)) };
        let (pool, batch) = (self.region().pool(class), self.hot().cache.batch_of(class));
        match magazine.refill_and_pop(pool, batch) {
            Some(block) => Ok(block),
            // The class looks dry: unless a trim was holding its free blocks
            // (then retried until it has pushed them back), take the fallback.
            None => match pool.retry_while_trimmed(|| magazine.refill(pool, batch)) {
                Some(block) => Ok(block),
                None => self.allocate_fallback(Some(class), layout),
            },
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn allocate_uncached(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let region = self.region();
        registry::note_uncached(region);
        let pool = region.pool(class);
        match pool.take_one_or_wait() {
            Some(block) => {
                pool.count_uncached_alloc();
                Ok(block)
            }
            None => self.allocate_fallback(Some(class), layout),
        }
    }

    /// Requests no class can hold.
    #[cold]
    #[inline(never)]
    pub(super) fn allocate_unclassed(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        self.allocate_fallback(None, layout)
    }

    /// The configured fallback, for a dry `class` or for a request no class
    /// can hold (`None`).
    #[cold]
    #[inline(never)]
    pub(super) fn allocate_fallback(&self, class: Option<usize>, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let region = self.region();
        // A class that is dry in the first region grows, if allowed, before
        // anything else: zero-size requests included, which get a unique
        // block whenever the pool has one.
        if let Some(class) = class {
            if let Some((extension, block)) = crate::growth::take(region, class) {
                let pool = extension.pool(class);
                pool.count_uncached_alloc();
                return Ok(block);
            }
        }
        if layout.size() == 0 {
            // A dry class's zero-size request: no memory needed.
            return Ok(dangling(layout));
        }
        let result = match region.fallback() {
            // SAFETY: `layout` has a non-zero size, as `alloc` requires.
            Fallback::System => NonNull::new(unsafe { System.alloc(layout) }).ok_or(AllocError),
            Fallback::Error => Err(AllocError),
        };
        // Relaxed: statistics.
        match class {
            Some(class) => region.pool(class).count_fallback(),
            None if result.is_ok() => {
                region.oversize.served.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                region.oversize.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// # Safety
    ///
    /// `ptr` is a block of `class` that the caller is freeing; `slot` is this
    /// thread's slot.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn deallocate_flush(&self, slot: SlotPtr, class: usize, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller (`deallocate`).
        unsafe {
            let magazine = self.hot().cache.magazine(slot, ScaledClass::of(class));
            magazine.flush_and_push(self.region().pool(class), self.hot().cache.batch_of(class), ptr);
        }
    }

    /// # Safety
    ///
    /// `ptr` is a block of `class` that the caller is freeing.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn deallocate_uncached(&self, class: usize, ptr: NonNull<u8>) {
        let region = self.region();
        registry::note_uncached(region);
        let pool = region.pool(class);
        // SAFETY: forwarded from the caller.
        unsafe { pool.give_back(ptr) };
        pool.count_uncached_free();
    }

    /// # Safety
    ///
    /// `ptr` was allocated with `layout` and is outside the region: a
    /// zero-size dangling pointer or a fallback block. (A checked allocator
    /// reports a `ptr` that cannot be either, see `checks.rs`.)
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn deallocate_unclassed<R: OnMisuse>(&self, ptr: NonNull<u8>, layout: Layout) {
        // Outside the first region (the hot path's check), so an extension's
        // block or nobody's.
        if let Some((extension, class)) = self.ready_region().and_then(|r| r.locate(ptr.as_ptr())) {
            let pool = extension.pool(class);
            if extension.checks() {
                checks::on_free::<R>(pool, class, ptr);
            }
            // SAFETY: a block of this extension's `class` (found by its
            // address), being freed (caller).
            unsafe { pool.give_back(ptr) };
            pool.count_uncached_free();
            return;
        }
        if let Some(region) = self.ready_region().filter(|r| r.checks()) {
            if region.in_metadata(ptr.as_ptr()) {
                checks::foreign::<R>(ptr, "it points into the allocator's own metadata");
            }
            if layout.size() == 0 && ptr != dangling(layout) {
                checks::foreign::<R>(
                    ptr,
                    "a zero-size free outside the pool must be of the dangling pointer that zero-size requests get",
                );
            }
            // Only an eagerly built allocator never had blocks from the
            // system (a lazy one's first use serves some from it).
            if layout.size() != 0
                && region.fallback() == Fallback::Error
                && matches!(self.lazy, super::lazy::LazyConfig::Built)
            {
                checks::foreign::<R>(ptr, "it is outside the pool, and with Fallback::Error no block lives elsewhere");
            }
        }
        // Zero-size requests outside the pool only ever get dangling
        // pointers; every other block outside it came from the system
        // allocator (the `System` fallback, or the initialisation window).
        if layout.size() == 0 {
            return;
        }
        // SAFETY: a non-zero-size block from `System.alloc(layout)` (caller).
        unsafe { System.dealloc(ptr.as_ptr(), layout) }
    }
}

/// A non-null pointer aligned to `layout.align()`, for zero-size requests.
pub(super) fn dangling(layout: Layout) -> NonNull<u8> {
    // SAFETY: an alignment is a non-zero power of two.
    unsafe { NonNull::new_unchecked(core::ptr::without_provenance_mut(layout.align())) }
}
