//! [`SlabAllocator`]: ties the region, the size classes, the thread caches
//! and the fallback together. This file: the type, its constructors
//! (`Builder::build` included) and the whole-allocator operations (stats,
//! flush, trim, ownership). The rest, one concern a file:
//!
//! - `lazy.rs`: first use of a `const` allocator, and the state it publishes;
//! - `registry.rs`: which cache slot this thread owns in each allocator;
//! - `hot.rs`: the cache hit, and nothing else;
//! - `cold.rs`: every other path, headed by the call tree of all of them;
//! - `resize.rs`: zeroed allocation, resizing in place, size queries.

use std::sync::Arc;

use crate::config::{Builder, ConfigError, Fallback, Profile, ValidConfig};
use crate::region::{HotPath, Region, RegionOwner};
use crate::stats::Stats;
use crate::sync::{AtomicU64, AtomicU8, Ordering, UnsafeCell};
use crate::trim::TrimReport;
use lazy::{LazyConfig, NOT_READY, READY, UNINIT};

mod cold;
mod hot;
mod lazy;
pub(crate) mod registry;
mod resize;

/// A lock-free, size-class slab allocator, shared across threads by
/// reference, through `Arc`, or as the `#[global_allocator]`.
///
/// See the crate documentation for examples and for what each method
/// promises.
pub struct SlabAllocator {
    /// What the hot path compares with the thread's front registry entry
    /// (`registry::front_slot`): the region's hot-path id once the
    /// allocator is `READY`, [`NOT_READY`] before. Written once, after
    /// `hot`; read Relaxed (a match proves the rest, see `front_slot`).
    hot_id: AtomicU64,
    /// `UNINIT`, `INITIALIZING`, `READY` or `FAILED` (see `lazy.rs`).
    state: AtomicU8,
    /// The hot-path constants: written once, at construction by
    /// `Builder::build` or on first use of a `const` allocator, before
    /// `state` becomes `READY`.
    hot: UnsafeCell<HotPath>,
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
                hot_id: AtomicU64::new(NOT_READY),
                state: AtomicU8::new(UNINIT),
                hot: UnsafeCell::new(HotPath::EMPTY),
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

    fn from_config(config: &ValidConfig) -> Result<Self, ConfigError> {
        let region = Region::create(config)?;
        let owner = Arc::new(RegionOwner::new(region));
        let hot = owner.region().hot();
        #[cfg(not(lockfree_slab_loom))]
        if let Some(interval) = config.trim_interval {
            crate::trim::spawn_background(&owner, interval);
        }
        Ok(SlabAllocator {
            hot_id: AtomicU64::new(hot.id),
            state: AtomicU8::new(READY),
            hot: UnsafeCell::new(hot),
            owner: UnsafeCell::new(Some(owner)),
            lazy: LazyConfig::Built,
        })
    }

    /// Whether `ptr` points into this allocator's pool, its growth
    /// included (as opposed to a fallback block or foreign memory).
    pub fn owns(&self, ptr: *const u8) -> bool {
        self.ready_region().is_some_and(|region| region.locate(ptr).is_some())
    }

    /// The configured fallback (`None` until a lazily built allocator has
    /// reserved its pool).
    pub fn fallback(&self) -> Option<Fallback> {
        self.ready_region().map(Region::fallback)
    }

    /// Whether misuse [checks](crate::Builder::checks) are on (`false`
    /// until a lazily built allocator has reserved its pool).
    pub fn has_checks(&self) -> bool {
        self.ready_region().is_some_and(Region::checks)
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
            registry::flush_current(region);
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
    ///   the metadata (the runs' free bits and links, the caches).
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
        registry::flush_current(region);
        crate::trim::trim_region(region, geometry)
    }
}

impl Builder {
    /// Validates the configuration and reserves the pool.
    pub fn build(self) -> Result<SlabAllocator, ConfigError> {
        let config = self.validate()?;
        SlabAllocator::from_config(&config)
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

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests;
