//! [`SlabAllocator`]: ties the region, the size classes, the thread caches
//! and the fallback together.
//!
//! The hot path (a cache hit) is: size-class table load, thread-local front
//! entry compare, magazine pop or push. Everything else — refill, flush,
//! uncached threads, fallback, zero-size requests — sits in `#[cold]`
//! functions below it.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};
use std::sync::Arc;

use crate::config::{Builder, ConfigError, Fallback, ValidConfig};
use crate::region::{HotPath, Region, RegionOwner};
use crate::stats::Stats;
use crate::sync::Ordering;
use crate::thread_cache::SlotPtr;
use crate::thread_registry;
use crate::AllocError;

/// A lock-free, size-class slab allocator, shared across threads by
/// reference or through `Arc`.
///
/// See the crate documentation for an example and for what each method
/// promises.
pub struct SlabAllocator {
    /// A copy of the region's read-only hot-path constants.
    hot: HotPath,
    region: NonNull<Region>,
    owner: Arc<RegionOwner>,
}

// SAFETY: all shared state in the region is atomics or immutable after
// `create`; per-thread state is reached only through the calling thread's
// own cache slot.
unsafe impl Send for SlabAllocator {}
// SAFETY: as for `Send`.
unsafe impl Sync for SlabAllocator {}

impl SlabAllocator {
    /// A [`Builder`] with the general-purpose defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_config(config: &ValidConfig) -> Result<Self, ConfigError> {
        let region = Region::create(config)?;
        let owner = Arc::new(RegionOwner::new(region));
        Ok(SlabAllocator { hot: owner.region().hot(), region, owner })
    }

    #[inline(always)]
    fn region(&self) -> &Region {
        // SAFETY: `owner` keeps the region mapped for as long as `self`.
        unsafe { self.region.as_ref() }
    }

    /// The current thread's cache slot, looked up or claimed (see
    /// `thread_registry.rs`); the cold half of the lookup.
    #[inline]
    fn slot(&self) -> Option<SlotPtr> {
        thread_registry::slot_for(self.hot.id, self.region(), Some(&self.owner))
    }

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
    ///   the pool is used up, goes to the configured [`Fallback`]: the system
    ///   allocator, or `Err(AllocError)`.
    ///
    /// Never panics.
    #[inline]
    pub fn allocate(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // Every way off the hot path is a tail call to a cold function, so
        // this one needs no stack frame when it is not inlined.
        let Some(class) = self.hot.class_for(layout.size(), layout.align()) else {
            return self.allocate_unclassed(layout);
        };
        let Some(slot) = thread_registry::front_slot(self.hot.id) else {
            return self.allocate_lookup(class, layout);
        };
        // SAFETY: `slot` is this thread's own slot of this region (the front
        // entry of its registry matched our id); `class` is one of ours.
        unsafe { self.allocate_in(slot, class, layout) }
    }

    /// A cache hit from `slot`'s magazine of `class`, or a refill.
    ///
    /// # Safety
    ///
    /// `slot` is the calling thread's own slot of this region and `class` is
    /// one of its classes.
    #[inline(always)]
    unsafe fn allocate_in(&self, slot: SlotPtr, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: forwarded from the caller.
        let magazine = unsafe { self.hot.cache.magazine(slot, class) };
        match magazine.pop(layout.size()) {
            Some(block) => Ok(block),
            None => self.allocate_refill(slot, class, layout),
        }
    }

    /// Returns a block to the allocator.
    ///
    /// The block's class is found from its address; `layout` is only used
    /// to free fallback blocks and zero-size dangling pointers.
    ///
    /// # Safety
    ///
    /// `ptr` must have been returned by [`allocate`](Self::allocate) of this
    /// allocator with this `layout`, and not been freed since.
    #[inline]
    pub unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let Some(class) = self.hot.class_of(ptr.as_ptr()) else {
            // SAFETY: forwarded from the caller: not ours, so from the
            // fallback (or a zero-size dangling pointer).
            return unsafe { self.deallocate_unclassed(ptr, layout) };
        };
        let Some(slot) = thread_registry::front_slot(self.hot.id) else {
            // SAFETY: `ptr` is a block of `class` being freed (caller).
            return unsafe { self.deallocate_lookup(class, ptr) };
        };
        // SAFETY: this thread's own slot; `class` from the address; `ptr`
        // is being freed (caller).
        unsafe { self.deallocate_in(slot, class, ptr) }
    }

    /// A cache hit into `slot`'s magazine of `class`, or a flush.
    ///
    /// # Safety
    ///
    /// `slot` is the calling thread's own slot of this region, and `ptr` is
    /// a block of `class` that the caller is freeing.
    #[inline(always)]
    unsafe fn deallocate_in(&self, slot: SlotPtr, class: usize, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        let magazine = unsafe { self.hot.cache.magazine(slot, class) };
        if !magazine.push(ptr) {
            // SAFETY: forwarded from the caller.
            unsafe { self.deallocate_flush(slot, class, ptr) };
        }
    }

    /// The front thread-local entry is another allocator's (or says "no
    /// slot"): look the slot up, claim one if needed, then allocate.
    #[cold]
    #[inline(never)]
    fn allocate_lookup(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let Some(slot) = self.slot() else {
            return self.allocate_uncached(class, layout);
        };
        // SAFETY: `slot_for` returned this thread's own slot of this region.
        unsafe { self.allocate_in(slot, class, layout) }
    }

    /// As [`allocate_lookup`](Self::allocate_lookup), for a free.
    ///
    /// # Safety
    ///
    /// `ptr` is a block of `class` that the caller is freeing.
    #[cold]
    #[inline(never)]
    unsafe fn deallocate_lookup(&self, class: usize, ptr: NonNull<u8>) {
        let Some(slot) = self.slot() else {
            // SAFETY: forwarded from the caller.
            return unsafe { self.deallocate_uncached(class, ptr) };
        };
        // SAFETY: `slot_for` returned this thread's own slot of this region;
        // the rest is forwarded from the caller.
        unsafe { self.deallocate_in(slot, class, ptr) }
    }

    #[cold]
    #[inline(never)]
    fn allocate_refill(&self, slot: SlotPtr, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: as in `allocate`, whose slot and class these are.
        let magazine = unsafe { self.hot.cache.magazine(slot, class) };
        match magazine.refill_and_pop(self.region().pool(class), self.hot.cache.batch, layout.size()) {
            Some(block) => Ok(block),
            None => self.allocate_fallback(Some(class), layout),
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate_uncached(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let region = self.region();
        thread_registry::note_uncached(region);
        let pool = region.pool(class);
        match pool.take_one() {
            Some(block) => {
                // Relaxed: statistics.
                pool.counters.uncached_allocs.fetch_add(1, Ordering::Relaxed);
                pool.counters.uncached_requested.fetch_add(layout.size() as u64, Ordering::Relaxed);
                Ok(block)
            }
            None => self.allocate_fallback(Some(class), layout),
        }
    }

    /// Requests no class can hold.
    #[cold]
    #[inline(never)]
    fn allocate_unclassed(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        self.allocate_fallback(None, layout)
    }

    /// The configured fallback, for a dry `class` or for a request no class
    /// can hold (`None`).
    #[cold]
    #[inline(never)]
    fn allocate_fallback(&self, class: Option<usize>, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let region = self.region();
        let result = match region.fallback() {
            // The system allocator does not take zero sizes; a dry class's
            // zero-size request gets a one-byte block instead.
            Fallback::System => {
                let layout = Layout::from_size_align(layout.size().max(1), layout.align()).map_err(|_| AllocError)?;
                // SAFETY: `layout` has a non-zero size, as `alloc` requires.
                NonNull::new(unsafe { System.alloc(layout) }).ok_or(AllocError)
            }
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
    unsafe fn deallocate_flush(&self, slot: SlotPtr, class: usize, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller (`deallocate`).
        unsafe {
            let magazine = self.hot.cache.magazine(slot, class);
            magazine.flush_and_push(self.region().pool(class), self.hot.cache.batch, ptr);
        }
    }

    /// # Safety
    ///
    /// `ptr` is a block of `class` that the caller is freeing.
    #[cold]
    #[inline(never)]
    unsafe fn deallocate_uncached(&self, class: usize, ptr: NonNull<u8>) {
        let region = self.region();
        thread_registry::note_uncached(region);
        let pool = region.pool(class);
        // SAFETY: forwarded from the caller.
        unsafe { pool.give_back(ptr) };
        // Relaxed: statistics.
        pool.counters.uncached_frees.fetch_add(1, Ordering::Relaxed);
    }

    /// # Safety
    ///
    /// `ptr` was allocated with `layout` and is outside the region: a
    /// zero-size dangling pointer or a fallback block.
    #[cold]
    #[inline(never)]
    unsafe fn deallocate_unclassed(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() == 0 && self.hot.class_for(0, layout.align()).is_none() {
            // The dangling pointer of `allocate_unclassed`.
            return;
        }
        match self.region().fallback() {
            // SAFETY: with `Fallback::System`, every block outside the region
            // came from `System.alloc` with this layout, its size raised to 1.
            Fallback::System => unsafe {
                System.dealloc(ptr.as_ptr(), Layout::from_size_align_unchecked(layout.size().max(1), layout.align()))
            },
            // With `Fallback::Error` nothing outside the region was ever
            // handed out; there is nothing to free.
            Fallback::Error => {}
        }
    }

    /// The usable size of the block at `ptr`: its class's block size if
    /// `ptr` is inside this allocator's pool, `None` if it is not (a
    /// fallback block, a zero-size allocation, or a foreign pointer).
    pub fn usable_size(&self, ptr: NonNull<u8>) -> Option<usize> {
        let region = self.region();
        self.hot.class_of(ptr.as_ptr()).map(|class| region.pool(class).block_size())
    }

    /// The block size a request for `layout` would get from the pool, or
    /// `None` if it would go to the fallback.
    pub fn class_size_for(&self, layout: Layout) -> Option<usize> {
        let region = self.region();
        region.class_for(layout.size(), layout.align()).map(|class| region.pool(class).block_size())
    }

    /// Whether `ptr` points into this allocator's pool (as opposed to a
    /// fallback block or foreign memory).
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.region().class_of(ptr).is_some()
    }

    /// The configured fallback.
    pub fn fallback(&self) -> Fallback {
        self.region().fallback()
    }

    /// Whether the pool's pages were committed up front.
    pub fn is_populated(&self) -> bool {
        self.region().populated()
    }

    /// A snapshot of the allocator's counters (see [`Stats`]).
    pub fn stats(&self) -> Stats {
        crate::stats::collect(self.region())
    }

    /// Returns the calling thread's cached blocks of this allocator to the
    /// shared stacks and gives up its cache slot (the next allocation on this
    /// thread claims one again). Threads do this by themselves when they exit.
    pub fn flush_thread_cache(&self) {
        thread_registry::flush_current(self.region());
    }
}

impl core::fmt::Debug for SlabAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let region = self.region();
        f.debug_struct("SlabAllocator")
            .field("classes", &region.pools().iter().map(|p| p.block_size()).collect::<Vec<_>>())
            .field("capacity", &region.capacity())
            .field("fallback", &region.fallback())
            .finish_non_exhaustive()
    }
}

/// A non-null pointer aligned to `layout.align()`, for zero-size requests.
fn dangling(layout: Layout) -> NonNull<u8> {
    // SAFETY: an alignment is a non-zero power of two.
    unsafe { NonNull::new_unchecked(core::ptr::without_provenance_mut(layout.align())) }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    //! Small pools, so Miri can run them too.

    use super::*;

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
}
