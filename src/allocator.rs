//! [`SlabAllocator`]: ties the region, the size classes, the thread caches
//! and the fallback together.
//!
//! The hot path (a cache hit) is: a state check, a size-class table load, a
//! thread-local front entry compare, and a magazine pop or push. Everything
//! else — first-use initialisation, refill, flush, uncached threads, fallback
//! — is a tail call to a `#[cold]` function below it.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};
use std::sync::Arc;

use crate::checks::{self, OnMisuse, Panic};
use crate::config::{Builder, ConfigError, Fallback, Profile, ValidConfig};
use crate::lazy::{LazyConfig, FAILED, INITIALIZING, READY, UNINIT};
use crate::region::{HotPath, Region, RegionOwner};
use crate::stats::Stats;
use crate::sync::{AtomicU8, Ordering, UnsafeCell};
use crate::thread_cache::SlotPtr;
use crate::thread_registry;
use crate::trim::TrimReport;
use crate::AllocError;

/// A lock-free, size-class slab allocator, shared across threads by
/// reference, through `Arc`, or as the `#[global_allocator]`.
///
/// See the crate documentation for examples and for what each method
/// promises.
pub struct SlabAllocator {
    /// The hot-path constants of an eagerly built allocator (from
    /// `Builder::build`), immutable for its whole life — so the compiler may
    /// keep them in registers across calls. [`HotPath::EMPTY`] (id 0) for a
    /// lazily built one, which uses `lazy_hot` instead.
    hot: HotPath,
    /// `UNINIT`, `INITIALIZING`, `READY` or `FAILED` (see `lazy.rs`).
    state: AtomicU8,
    /// A lazily built allocator's hot-path constants; written once, before
    /// `state` becomes `READY`.
    lazy_hot: UnsafeCell<HotPath>,
    /// Keeps the region mapped; thread caches hold weak references to it.
    /// Written once, before `state` becomes `READY`.
    owner: UnsafeCell<Option<Arc<RegionOwner>>>,
    /// What to build on first use, for the `const` constructors.
    lazy: LazyConfig,
}

// SAFETY: all shared state in the region is atomics or immutable after
// `create`; per-thread state is reached only through the calling thread's
// own cache slot; the two cells are written once, by the thread that won the
// initialisation CAS, before the Release store of `READY`, and only read
// after an Acquire load of `READY`.
unsafe impl Send for SlabAllocator {}
// SAFETY: as for `Send`.
unsafe impl Sync for SlabAllocator {}

macro_rules! lazy_constructors {
    ($($constness:ident)?) => {
        /// An allocator with the general-purpose configuration
        /// ([`Profile::General`]), whose region is reserved on first use.
        /// `const`, so it can be the global allocator:
        ///
        /// ```rust
        /// use lockfree_slab::SlabAllocator;
        ///
        /// #[global_allocator]
        /// static GLOBAL: SlabAllocator = SlabAllocator::new();
        /// # fn main() { let v = vec![1, 2, 3]; assert_eq!(v.len(), 3); }
        /// ```
        ///
        /// While the first use initialises it, other requests (including
        /// the allocations initialisation itself makes) are served by the
        /// system allocator. If the configuration cannot be reserved, every
        /// request goes to the system allocator.
        pub $($constness)? fn new() -> Self {
            Self::lazy(LazyConfig::Profile(Profile::General))
        }

        /// Like [`new`](Self::new), with a reference configuration.
        pub $($constness)? fn with_profile(profile: Profile) -> Self {
            Self::lazy(LazyConfig::Profile(profile))
        }

        /// Like [`new`](Self::new), with explicit classes, split (percent per
        /// class) and capacity; the other settings as for
        /// [`Profile::General`]. An invalid configuration is detected on first
        /// use, and the allocator then hands every request to the system
        /// allocator (check it beforehand with
        /// `Builder::new().size_classes(..).split(..).capacity(..).validate()`).
        pub $($constness)? fn with_size_classes(
            classes: &'static [usize],
            split: &'static [u8],
            capacity: usize,
        ) -> Self {
            Self::lazy(LazyConfig::Classes { classes, split, capacity })
        }

        $($constness)? fn lazy(lazy: LazyConfig) -> Self {
            SlabAllocator {
                hot: HotPath::EMPTY,
                state: AtomicU8::new(UNINIT),
                lazy_hot: UnsafeCell::new(HotPath::EMPTY),
                owner: UnsafeCell::new(None),
                lazy,
            }
        }
    };
}

impl SlabAllocator {
    /// A [`Builder`] with the general-purpose defaults.
    pub fn builder() -> Builder {
        Builder::new()
    }

    // Loom's atomics cannot be built in a `const fn`; under the loom cfg the
    // same constructors exist, not `const`.
    #[cfg(not(lockfree_slab_loom))]
    lazy_constructors!(const);
    #[cfg(lockfree_slab_loom)]
    lazy_constructors!();

    pub(crate) fn from_config(config: &ValidConfig) -> Result<Self, ConfigError> {
        let region = Region::create(config)?;
        let owner = Arc::new(RegionOwner::new(region));
        let hot = owner.region().hot();
        #[cfg(not(lockfree_slab_loom))]
        if let Some(interval) = config.trim_interval {
            crate::trim::spawn_background(&owner, interval);
        }
        Ok(SlabAllocator {
            hot,
            state: AtomicU8::new(READY),
            lazy_hot: UnsafeCell::new(HotPath::EMPTY),
            owner: UnsafeCell::new(Some(owner)),
            lazy: LazyConfig::Built,
        })
    }

    /// The hot-path constants if the region exists. An eagerly built
    /// allocator answers from its immutable copy without touching an atomic;
    /// a lazily built one loads its state with Acquire (pairing with the
    /// Release store of `READY` in `initialise`, so the cell is complete).
    #[inline(always)]
    fn ready_hot(&self) -> Option<&HotPath> {
        if self.hot.id != 0 {
            return Some(&self.hot);
        }
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: written once before the Release store of READY that we
            // just observed with Acquire; never written again.
            return Some(unsafe { &*self.lazy_hot.get() });
        }
        None
    }

    /// Whether the region exists.
    #[inline(always)]
    fn is_ready(&self) -> bool {
        self.ready_hot().is_some()
    }

    /// The hot-path constants, for the cold paths: only called once
    /// [`ready_hot`](Self::ready_hot) returned `Some` on this path.
    #[inline(always)]
    fn hot(&self) -> &HotPath {
        if self.hot.id != 0 {
            return &self.hot;
        }
        // SAFETY: the caller observed READY (Acquire) earlier on this path;
        // the cell was written before that and never changes again.
        unsafe { &*self.lazy_hot.get() }
    }

    /// The region. Only called once [`is_ready`](Self::is_ready) was seen.
    #[inline(always)]
    fn region(&self) -> &Region {
        debug_assert!(self.is_ready());
        // SAFETY: READY was observed, so `hot.region` points to the region,
        // which `owner` keeps mapped for as long as `self`.
        unsafe { &*self.hot().region }
    }

    /// The region, if it exists.
    fn ready_region(&self) -> Option<&Region> {
        self.is_ready().then(|| self.region())
    }

    /// The owner. Only called once [`is_ready`](Self::is_ready) was seen.
    fn owner(&self) -> &Arc<RegionOwner> {
        // SAFETY: as for `hot`: written once before READY.
        unsafe { (*self.owner.get()).as_ref() }.expect("a READY allocator has an owner")
    }

    /// First use of a lazily built allocator: the CAS winner reserves the
    /// region; everybody else (and the winner's own nested allocations) is
    /// told "not now". Returns whether the allocator is `READY`.
    #[cold]
    #[inline(never)]
    fn initialise(&self) -> bool {
        // Acquire on success: nothing to pair with yet, but keeps the
        // initialisation after the claim; failure: Acquire, pairs with the
        // Release store below when another thread finished first.
        match self.state.compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {}
            Err(state) => return state == READY,
        }
        let built = self.lazy.builder().map(|b| b.validate().and_then(|config| Region::create(&config)));
        match built {
            Some(Ok(region)) => {
                let owner = Arc::new(RegionOwner::new(region));
                // SAFETY: we won the CAS, so we are the only writer, and no
                // reader touches the cells before seeing READY below.
                unsafe {
                    *self.lazy_hot.get() = owner.region().hot();
                    *self.owner.get() = Some(owner);
                }
                // Release: pairs with the Acquire loads of `is_ready`.
                self.state.store(READY, Ordering::Release);
                true
            }
            _ => {
                // Release: the same pairing; nothing was written.
                self.state.store(FAILED, Ordering::Release);
                false
            }
        }
    }

    /// A request that found the allocator not `READY`: initialise it if it
    /// never was, then serve the request; while another thread initialises
    /// it, or if it failed, the system allocator serves the request.
    #[cold]
    #[inline(never)]
    fn allocate_unready<R: OnMisuse>(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // The caller's policy goes on: under `GlobalAlloc` a report here must
        // abort, never unwind.
        if self.state.load(Ordering::Acquire) == UNINIT && self.initialise() {
            return self.allocate_with::<R>(layout);
        }
        if self.is_ready() {
            return self.allocate_with::<R>(layout);
        }
        // INITIALIZING or FAILED. (Consulting the configured fallback here
        // would allocate, and so recurse: the system serves these.)
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        // SAFETY: non-zero size, as `alloc` requires.
        NonNull::new(unsafe { System.alloc(layout) }).ok_or(AllocError)
    }

    /// The current thread's cache slot, looked up or claimed (see
    /// `thread_registry.rs`); the cold half of the lookup.
    #[inline]
    fn slot(&self) -> Option<SlotPtr> {
        let region = self.region();
        thread_registry::slot_for(region.id(), region, self.owner())
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
    /// Never panics, unless [checks](Builder::checks) are on and find that
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
        let Some(hot) = self.ready_hot() else {
            return self.allocate_unready::<R>(layout);
        };
        let Some(class) = hot.class_for(layout.size(), layout.align()) else {
            return self.allocate_unclassed(layout);
        };
        let Some(slot) = thread_registry::front_slot(hot.id) else {
            return self.allocate_lookup::<R>(class, layout);
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
    unsafe fn allocate_in(
        &self,
        hot: &HotPath,
        slot: SlotPtr,
        class: usize,
        layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: forwarded from the caller.
        let magazine = unsafe { hot.cache.magazine(slot, class) };
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
    /// With [checks](Builder::checks) on, a violation of this contract that
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
        let Some(hot) = self.ready_hot() else {
            // SAFETY: no region yet (or never), so `ptr` came from the system
            // allocator or is a zero-size dangling pointer.
            return unsafe { self.deallocate_unclassed::<R>(ptr, layout) };
        };
        let Some(class) = hot.class_of(ptr.as_ptr()) else {
            // SAFETY: forwarded from the caller: not ours, so from the
            // fallback (or a zero-size dangling pointer).
            return unsafe { self.deallocate_unclassed::<R>(ptr, layout) };
        };
        let Some(slot) = thread_registry::front_slot(hot.id) else {
            // SAFETY: `ptr` is a block of `class` being freed (caller).
            return unsafe { self.deallocate_lookup::<R>(class, ptr) };
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
    unsafe fn deallocate_in(&self, hot: &HotPath, slot: SlotPtr, class: usize, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller.
        let magazine = unsafe { hot.cache.magazine(slot, class) };
        if !magazine.push(ptr) {
            // SAFETY: forwarded from the caller.
            unsafe { self.deallocate_flush(slot, class, ptr) };
        }
    }

    /// The front thread-local entry is another allocator's (or says "no
    /// slot", or this allocator is checked): look the slot up, claim one if
    /// needed, then allocate.
    #[cold]
    #[inline(never)]
    fn allocate_lookup<R: OnMisuse>(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.region().checks() {
            return self.allocate_checked::<R>(class, layout);
        }
        let Some(slot) = self.slot() else {
            return self.allocate_uncached(class, layout);
        };
        // SAFETY: `slot_for` returned this thread's own slot of this region.
        unsafe { self.allocate_in(self.hot(), slot, class, layout) }
    }

    /// Every allocation of a checked allocator: as the unchecked paths, then
    /// the block's state and poison are checked (`checks.rs`).
    #[cold]
    #[inline(never)]
    fn allocate_checked<R: OnMisuse>(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let block = match self.slot() {
            // SAFETY: `slot_for` returned this thread's own slot of this region.
            Some(slot) => unsafe { self.allocate_in(self.hot(), slot, class, layout) },
            None => self.allocate_uncached(class, layout),
        }?;
        // A dry class's block comes from an extension, the fallback, or is
        // dangling.
        let region = self.region();
        if self.hot().class_of(block.as_ptr()) == Some(class) {
            checks::on_allocate::<R>(region.pool(class), class, block);
        } else if let Some((extension, class)) = region.extensions.find(block.as_ptr()) {
            checks::on_allocate::<R>(extension.pool(class), class, block);
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
    unsafe fn deallocate_lookup<R: OnMisuse>(&self, class: usize, ptr: NonNull<u8>) {
        if self.region().checks() {
            checks::on_free::<R>(self.region().pool(class), class, ptr);
        }
        let Some(slot) = self.slot() else {
            // SAFETY: forwarded from the caller.
            return unsafe { self.deallocate_uncached(class, ptr) };
        };
        // SAFETY: `slot_for` returned this thread's own slot of this region;
        // the rest is forwarded from the caller.
        unsafe { self.deallocate_in(self.hot(), slot, class, ptr) }
    }

    #[cold]
    #[inline(never)]
    fn allocate_refill(&self, slot: SlotPtr, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: as in `allocate`, whose slot and class these are.
        let magazine = unsafe { self.hot().cache.magazine(slot, class) };
        let (pool, batch) = (self.region().pool(class), self.hot().cache.refill_batch(class));
        match magazine.refill_and_pop(pool, batch, layout.size()) {
            Some(block) => Ok(block),
            // The class looks dry: unless a trim was holding its free blocks
            // (then retried until it has pushed them back), take the fallback.
            None => match pool.retry_while_trimmed(|| magazine.refill(pool, batch, layout.size())) {
                Some(block) => Ok(block),
                None => self.allocate_fallback(Some(class), layout),
            },
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate_uncached(&self, class: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let region = self.region();
        thread_registry::note_uncached(region);
        let pool = region.pool(class);
        match pool.take_one_or_wait() {
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
        // A class that is dry in the first region grows, if allowed, before
        // anything else: zero-size requests included, which get a unique
        // block whenever the pool has one.
        if let Some(class) = class {
            if let Some((extension, block)) = region.extensions.take(class) {
                let pool = extension.pool(class);
                // Relaxed: statistics.
                pool.counters.uncached_allocs.fetch_add(1, Ordering::Relaxed);
                pool.counters.uncached_requested.fetch_add(layout.size() as u64, Ordering::Relaxed);
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
    unsafe fn deallocate_flush(&self, slot: SlotPtr, class: usize, ptr: NonNull<u8>) {
        // SAFETY: forwarded from the caller (`deallocate`).
        unsafe {
            let magazine = self.hot().cache.magazine(slot, class);
            magazine.flush_and_push(self.region().pool(class), self.hot().cache.flush_batch(class), ptr);
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
    /// zero-size dangling pointer or a fallback block. (A checked allocator
    /// reports a `ptr` that cannot be either, see `checks.rs`.)
    #[cold]
    #[inline(never)]
    unsafe fn deallocate_unclassed<R: OnMisuse>(&self, ptr: NonNull<u8>, layout: Layout) {
        if let Some((extension, class)) = self.ready_region().and_then(|r| r.extensions.find(ptr.as_ptr())) {
            let pool = extension.pool(class);
            if extension.checks() {
                checks::on_free::<R>(pool, class, ptr);
            }
            // SAFETY: a block of this extension's `class` (found by its
            // address), being freed (caller).
            unsafe { pool.give_back(ptr) };
            // Relaxed: statistics.
            pool.counters.uncached_frees.fetch_add(1, Ordering::Relaxed);
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
            if layout.size() != 0 && region.fallback() == Fallback::Error && self.hot.id != 0 {
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

    /// Like [`allocate`](Self::allocate), with the block's first
    /// `layout.size()` bytes zeroed.
    ///
    /// Large blocks (4 KiB and up) are taken straight from the never-used
    /// part of their class when there is one: those pages have never been
    /// written (or were populated with zeros), so no `memset` is needed.
    /// Requests that go to the system fallback use its `alloc_zeroed`.
    pub fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.allocate_zeroed_with::<Panic>(layout)
    }

    /// [`allocate_zeroed`](Self::allocate_zeroed), reporting misuse the
    /// checks find with `R`.
    pub(crate) fn allocate_zeroed_with<R: OnMisuse>(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        if self.is_ready() && layout.size() > 0 {
            let region = self.region();
            match region.class_for(layout.size(), layout.align()) {
                // (A checked allocator's blocks all go through its checks.)
                Some(class) if region.pool(class).block_size() >= ZERO_BY_CARVING && !region.checks() => {
                    let pool = region.pool(class);
                    if let Some(block) = pool.take_fresh() {
                        // Relaxed: statistics.
                        pool.counters.uncached_allocs.fetch_add(1, Ordering::Relaxed);
                        pool.counters.uncached_requested.fetch_add(layout.size() as u64, Ordering::Relaxed);
                        return Ok(block);
                    }
                }
                None if region.fallback() == Fallback::System => {
                    // SAFETY: non-zero size, as `alloc_zeroed` requires.
                    let block = NonNull::new(unsafe { System.alloc_zeroed(layout) }).ok_or(AllocError)?;
                    // Relaxed: statistics.
                    region.oversize.served.fetch_add(1, Ordering::Relaxed);
                    return Ok(block);
                }
                _ => {}
            }
        }
        let block = self.allocate_with::<R>(layout)?;
        // SAFETY: the block holds at least `layout.size()` bytes and is ours.
        unsafe { block.as_ptr().write_bytes(0, layout.size()) };
        Ok(block)
    }

    /// If the block at `ptr` (allocated with some layout) can hold
    /// `new_layout` without moving — it is in the pool, and `new_layout`
    /// maps to the same class — its block size; otherwise `None` (the
    /// caller allocates, copies and frees). With [checks](Builder::checks)
    /// on, `ptr` must be a live block of the pool or a pointer outside it.
    pub fn resize_in_place(&self, ptr: NonNull<u8>, new_layout: Layout) -> Option<usize> {
        self.resize_in_place_with::<Panic>(ptr, new_layout)
    }

    /// [`resize_in_place`](Self::resize_in_place), reporting misuse the
    /// checks find with `R`.
    pub(crate) fn resize_in_place_with<R: OnMisuse>(&self, ptr: NonNull<u8>, new_layout: Layout) -> Option<usize> {
        let region = self.ready_region()?;
        // The first region's block, or a growth reservation's (same classes).
        let (owner, class) = match region.class_of(ptr.as_ptr()) {
            Some(class) => (region, class),
            None => region.extensions.find(ptr.as_ptr())?,
        };
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
                region.class_of(ptr.as_ptr()).is_none()
                    && region.extensions.find(ptr.as_ptr()).is_none()
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
        let region = self.ready_region()?;
        match self.hot().class_of(ptr.as_ptr()) {
            Some(class) => Some(region.pool(class).block_size()),
            None => region.extensions.find(ptr.as_ptr()).map(|(extension, class)| extension.pool(class).block_size()),
        }
    }

    /// The block size a request for `layout` would get from the pool, or
    /// `None` if it would go to the fallback (or the pool is not reserved
    /// yet: a lazily built allocator reserves it on first allocation).
    pub fn class_size_for(&self, layout: Layout) -> Option<usize> {
        let region = self.ready_region()?;
        region.class_for(layout.size(), layout.align()).map(|class| region.pool(class).block_size())
    }

    /// Whether `ptr` points into this allocator's pool, its growth
    /// included (as opposed to a fallback block or foreign memory).
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.ready_region()
            .is_some_and(|region| region.class_of(ptr).is_some() || region.extensions.find(ptr).is_some())
    }

    /// The configured fallback (`None` until a lazily built allocator has
    /// reserved its pool).
    pub fn fallback(&self) -> Option<Fallback> {
        self.ready_region().map(Region::fallback)
    }

    /// Whether the pool's pages were committed up front.
    pub fn is_populated(&self) -> bool {
        self.ready_region().is_some_and(Region::populated)
    }

    /// A snapshot of the allocator's counters (see [`Stats`]); all zero
    /// before a lazily built allocator's first use.
    pub fn stats(&self) -> Stats {
        self.ready_region().map(crate::stats::collect).unwrap_or_default()
    }

    /// Returns the calling thread's cached blocks of this allocator to the
    /// shared stacks and gives up its cache slot (the next allocation on this
    /// thread claims one again). Threads do this by themselves when they exit.
    pub fn flush_thread_cache(&self) {
        if let Some(region) = self.ready_region() {
            thread_registry::flush_current(region);
        }
    }

    /// Gives the physical memory of free blocks back to the OS, keeping the
    /// address space, and reports how much RSS that released.
    ///
    /// - Flushes the calling thread's cache (as
    ///   [`flush_thread_cache`](Self::flush_thread_cache)), then, per class,
    ///   releases every page that holds nothing but free blocks from the
    ///   class's shared free list, with `madvise(MADV_DONTNEED)`. The blocks
    ///   stay free and are handed out again as usual; their pages fault in
    ///   again (zeroed) on first reuse.
    /// - Not released: pages that hold any byte of a block in use, blocks in
    ///   other threads' caches, never-used capacity (committed only under
    ///   [`populate`](crate::Builder::populate), which stays committed), and
    ///   the metadata (4 bytes of link per block used so far, the caches).
    ///   Released pages fault in again on reuse, also in a populated pool.
    /// - Safe to call while other threads allocate and free: it never
    ///   releases memory in use, loses no block, and makes no request fail
    ///   that would otherwise have succeeded (a request that finds its class
    ///   empty while the trim holds its free blocks waits for them). It does
    ///   not touch the allocation fast path.
    /// - [`TrimReport::released_bytes`] counts only pages that were resident,
    ///   so it is what the process's RSS dropped by.
    /// - A lazily built allocator that has not been used yet has nothing to
    ///   give back and returns an empty report (without reserving its pool).
    ///
    /// The cost is a pass over the free blocks and the used pages of each
    /// class plus the system calls; see the `trim` module's documentation
    /// for the protocol and why it is safe.
    ///
    /// ```rust
    /// use std::alloc::Layout;
    /// use lockfree_slab::SlabAllocator;
    ///
    /// # fn main() -> Result<(), lockfree_slab::ConfigError> {
    /// let slab = SlabAllocator::builder().size_classes(&[64]).capacity(1 << 20).build()?;
    /// let layout = Layout::new::<[u8; 64]>();
    /// let blocks: Vec<_> = (0..4096).map(|_| slab.allocate(layout).unwrap()).collect();
    /// for b in &blocks {
    ///     // SAFETY: a live 64-byte block of ours; touching it commits its page.
    ///     unsafe { b.as_ptr().write_bytes(1, 64) };
    /// }
    /// for &b in &blocks[..2048] {
    ///     // SAFETY: allocated above with `layout`, freed once: the oldest half.
    ///     unsafe { slab.deallocate(b, layout) };
    /// }
    /// let report = slab.trim();
    /// assert_eq!(report.released_bytes, 2048 * 64); // 32 pages, all free
    /// println!("{report}");
    /// # for &b in &blocks[2048..] { unsafe { slab.deallocate(b, layout) } }
    /// # Ok(())
    /// # }
    /// ```
    pub fn trim(&self) -> TrimReport {
        self.trim_with(crate::trim::Geometry::NATIVE)
    }

    /// [`trim`](Self::trim) in a given page geometry (the loom models use
    /// tiny pages).
    pub(crate) fn trim_with(&self, geometry: crate::trim::Geometry) -> TrimReport {
        let Some(region) = self.ready_region() else {
            return TrimReport::default();
        };
        thread_registry::flush_current(region);
        crate::trim::trim_region(region, geometry)
    }
}

impl Default for SlabAllocator {
    /// [`SlabAllocator::new`]: the general-purpose configuration, reserved on
    /// first use.
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for SlabAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut d = f.debug_struct("SlabAllocator");
        match self.ready_region() {
            Some(region) => d
                .field("classes", &region.pools().iter().map(|p| p.block_size()).collect::<Vec<_>>())
                .field("capacity", &region.capacity())
                .field("fallback", &region.fallback()),
            None => d.field("state", &self.state.load(Ordering::Acquire)).field("lazy", &self.lazy),
        };
        d.finish_non_exhaustive()
    }
}

/// Block size from which `allocate_zeroed` takes never-used blocks straight
/// from the carver instead of zeroing a cached one.
const ZERO_BY_CARVING: usize = 4096;

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
        let slab = SlabAllocator::builder()
            .size_classes(&[16, 64])
            .capacity(16 * 8 + 64 * 8)
            .split(&[20, 80])
            .cache_depth(2)
            .fallback(Fallback::Error)
            .checks(true)
            .build()
            .unwrap();
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
        let slab = SlabAllocator::builder()
            .size_classes(&[16, 64])
            .capacity(16 * 8 + 64 * 8)
            .split(&[20, 80])
            .cache_depth(2)
            .fallback(Fallback::Error)
            .checks(true)
            .build()
            .unwrap();
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
        marked("allocate_unready", &|| drop(slab.allocate_unready::<PanicMarked>(l(64))));
        corrupt();
        marked("allocate_with", &|| drop(slab.allocate_with::<PanicMarked>(l(64))));
        corrupt();
        marked("allocate_zeroed_with", &|| drop(slab.allocate_zeroed_with::<PanicMarked>(l(64))));
        let p = slab.allocate(l(16)).unwrap();
        // SAFETY: allocated above with l(16), freed once.
        unsafe { slab.deallocate(p, l(16)) };
        // SAFETY: (not: the double free and the resize of a freed block
        // under test; both are reported before anything is touched.)
        marked("deallocate_with", &|| unsafe { slab.deallocate_with::<PanicMarked>(p, l(16)) });
        marked("resize_in_place_with", &|| drop(slab.resize_in_place_with::<PanicMarked>(p, l(8))));
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
}
