//! The hot path, and nothing else: a cache hit allocates with a
//! thread-local front-entry compare (which also proves the allocator is
//! ready and the thread has a slot), a size-class table load and a magazine
//! pop; it frees with the same compare, an address check and a magazine
//! push. Every way off it is a tail call to a `#[cold]` function in
//! `cold.rs`, whose header maps every path.

use core::alloc::Layout;
use core::ptr::NonNull;

use super::{registry, SlabAllocator};
use crate::cache::SlotPtr;
use crate::checks::{OnMisuse, Panic};
use crate::region::HotPath;
use crate::size_class::ScaledClass;
use crate::sync::Ordering;
use crate::AllocError;

impl SlabAllocator {
    /// Allocates a block for `layout`.
    ///
    /// - Served from the smallest size class that holds `layout.size()` at
    ///   `layout.align()` (see [`usable_size`](Self::usable_size)).
    /// - A size of 0 is served like a size of 1: a unique block of the
    ///   smallest class aligned enough, to be deallocated as usual. (If no
    ///   class has the alignment, a dangling pointer aligned to
    ///   `layout.align()`, which uses no memory and whose deallocation does
    ///   nothing.)
    /// - A request no class can hold (larger than the largest class, or
    ///   aligned more than any class that fits), or of a class whose share of
    ///   the pool is used up, goes to the configured [`Fallback`](crate::Fallback): the system
    ///   allocator, or `Err(AllocError)`.
    ///
    /// Never panics, unless [checks](crate::Builder::checks) are on and find that
    /// a freed block handed out again was written to after its free.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.allocate_with::<Panic>(layout)
    }

    /// [`allocate`](Self::allocate), reporting misuse the checks find with
    /// `R`.
    #[inline(always)]
    pub(crate) fn allocate_with<R: OnMisuse>(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // Every way off the hot path is a tail call to a cold function, so
        // this one needs no stack frame when it is not inlined.
        // Relaxed: see `registry::front_slot` (a match proves the rest).
        let Some(slot) = registry::front_slot(self.hot_id.load(Ordering::Relaxed)) else {
            return self.allocate_miss::<R>(layout);
        };
        let hot = self.hot();
        let Some(class) = hot.scaled_class_for(layout.size(), layout.align()) else {
            return self.allocate_unclassed(layout);
        };
        // SAFETY: `slot` is this thread's own slot of this region (the front
        // entry of its registry matched our id); `class` is one of ours.
        unsafe { self.allocate_in(hot, slot, class, layout) }
    }

    /// A cache hit from `slot`'s magazine of `class`, or a refill.
    ///
    /// # Safety
    ///
    /// `slot` is the calling thread's own slot of this region and `class` is
    /// one of its classes.
    #[inline(always)]
    pub(super) unsafe fn allocate_in(
        &self,
        hot: &HotPath,
        slot: SlotPtr,
        class: ScaledClass,
        layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: forwarded from the caller.
        let magazine = unsafe { hot.cache.magazine(slot, class) };
        match magazine.pop() {
            Some(block) => Ok(block),
            None => self.allocate_refill(slot, class.index(), layout),
        }
    }

    /// Returns a block to the allocator.
    ///
    /// The block's class is found from its address; `layout` is only used
    /// to free fallback blocks and zero-size dangling pointers.
    ///
    /// With [checks](crate::Builder::checks) on, a violation of this contract that
    /// the checks detect panics, naming the misuse, the class, the block and
    /// the address.
    ///
    /// # Safety
    ///
    /// `ptr` must have been returned by [`allocate`](Self::allocate) of this
    /// allocator with this `layout`, and not been freed since.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { self.deallocate_with::<Panic>(ptr, layout) }
    }

    /// [`deallocate`](Self::deallocate), reporting misuse the checks find
    /// with `R`.
    ///
    /// # Safety
    ///
    /// As for [`deallocate`](Self::deallocate).
    #[inline(always)]
    pub(crate) unsafe fn deallocate_with<R: OnMisuse>(&self, ptr: NonNull<u8>, layout: Layout) {
        // Relaxed: as in `allocate_with`.
        let Some(slot) = registry::front_slot(self.hot_id.load(Ordering::Relaxed)) else {
            // SAFETY: forwarded from the caller.
            return unsafe { self.deallocate_miss::<R>(ptr, layout) };
        };
        let hot = self.hot();
        let Some(class) = hot.scaled_class_of(ptr.as_ptr()) else {
            // SAFETY: forwarded from the caller: not ours, so from the
            // fallback (or a zero-size dangling pointer).
            return unsafe { self.deallocate_unclassed::<R>(ptr, layout) };
        };
        // SAFETY: this thread's own slot; `class` from the address; `ptr`
        // is being freed (caller).
        unsafe { self.deallocate_in(hot, slot, class, ptr) }
    }

    /// A cache hit into `slot`'s magazine of `class`, or a flush.
    ///
    /// # Safety
    ///
    /// `slot` is the calling thread's own slot of this region, and `ptr` is
    /// a block of `class` that the caller is freeing.
    #[inline(always)]
    pub(super) unsafe fn deallocate_in(&self, hot: &HotPath, slot: SlotPtr, class: ScaledClass, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        let magazine = unsafe { hot.cache.magazine(slot, class) };
        if !magazine.push(ptr) {
            // SAFETY: forwarded from the caller.
            unsafe { self.deallocate_flush(slot, class.index(), ptr) };
        }
    }
}
