//! The region: one `mmap` reservation holding everything an allocator owns,
//! laid out as
//!
//! ```text
//! ┌──────────────────────── metadata ────────────────────────┐┌──── spans ────┐
//! │ Region │ ClassPool × n │ size tables │ runs × n │ states × n │ slots ││ class 0 │ … │
//! └──────────────────────────────────────────────────────────┘└───────────────┘
//! ```
//!
//! - `Region` (this control block) and the `ClassPool`s: constants, stack
//!   heads, carver frontiers, counters;
//! - the two size-class lookup tables (`size_class.rs`);
//! - per class, per run of 64 blocks, one `AtomicU64` of free bits and one
//!   `AtomicU32` stack link (`class/runs.rs`: 12 bytes per 64 blocks), and
//!   with checks on, one `AtomicU8` state per block (`checks.rs`);
//! - the thread-cache slots (`cache.rs`);
//! - the spans: every class owns one equal, power-of-two-sized span starting
//!   at a page boundary, so a pointer's class is `(addr - spans_base) >>
//!   span_shift` and a pointer past the last span is not ours. A class carves
//!   only its share of the capacity from the start of its span; the rest of
//!   the span is address space that is never touched.
//!
//! With `huge_pages(true)` the spans (not the metadata) are advised to be
//! backed by transparent huge pages; the kernel may decline, which changes
//! nothing but the page size.
//!
//! Keeping the metadata in the reservation means building an allocator
//! allocates nothing through any Rust allocator, and dropping it is one
//! `munmap`. Pages are committed on first touch (links and magazines too)
//! unless the configuration asks to `populate`, in which case the metadata and
//! every class's share are committed in `create`.

use core::ptr::NonNull;

use crate::cache::{CacheArea, CacheGeometry};
use crate::class::runs::Runs;
use crate::class::states::BlockStates;
use crate::class::ClassPool;
use crate::config::{ConfigError, Fallback, ValidConfig, MAX_GROWTH};
use crate::os::{self, PAGE};
use crate::size_class::{build_tables, ClassLookup, ScaledClass, CLASS_STRIDE};
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, CachePadded, Ordering};

/// Set in a checked allocator's hot-path id and in no thread's registry
/// entry (region ids count up from 1 and never reach it), so the hot path's
/// front-entry compare always fails and sends the operation to the cold,
/// checked path.
pub(crate) const CHECKED_ID: u64 = 1 << 63;

/// Counters for requests that no class serves (too large, over-aligned).
#[derive(Default)]
pub(crate) struct OversizeCounters {
    /// Requests served by the system fallback.
    pub(crate) served: AtomicU64,
    /// Requests answered with `AllocError`.
    pub(crate) refused: AtomicU64,
}

/// Byte offsets of the parts of a region, computed before reserving it.
#[derive(Debug)]
struct Layout {
    pools: usize,
    by_granule: usize,
    by_align: usize,
    /// Per class, where its run words and its run links start.
    runs: Vec<(usize, usize)>,
    /// Per class, where its block states start (empty without checks).
    states: Vec<usize>,
    slots: usize,
    meta_len: usize,
    span_shift: u32,
    total: usize,
}

impl Layout {
    fn new(config: &ValidConfig, by_granule_len: usize, by_align_len: usize, cache: &CacheGeometry) -> Self {
        let n = config.classes.len();
        let pools = core::mem::size_of::<Region>().next_multiple_of(128);
        let by_granule = pools + n * core::mem::size_of::<ClassPool>();
        let by_align = by_granule + by_granule_len * core::mem::size_of::<u16>();
        let mut cursor = by_align + by_align_len;
        let runs = config
            .blocks
            .iter()
            .map(|&blocks| {
                let count = Runs::count_for(blocks) as usize;
                let words = cursor.next_multiple_of(64);
                let links = words + count * core::mem::size_of::<AtomicU64>();
                cursor = links + count * core::mem::size_of::<AtomicU32>();
                (words, links)
            })
            .collect();
        let states = match config.checks {
            true => config
                .blocks
                .iter()
                .map(|&blocks| {
                    let at = cursor.next_multiple_of(64);
                    cursor = at + blocks as usize * core::mem::size_of::<AtomicU8>();
                    at
                })
                .collect(),
            false => Vec::new(),
        };
        let slots = cursor.next_multiple_of(PAGE);
        let meta_len = (slots + cache.area_len()).next_multiple_of(PAGE);
        let largest_share = config.classes.iter().zip(&config.blocks).map(|(&s, &b)| s * b as usize).max().unwrap_or(0);
        let span = largest_share.next_power_of_two().max(PAGE);
        Layout {
            pools,
            by_granule,
            by_align,
            runs,
            states,
            slots,
            meta_len,
            span_shift: span.trailing_zeros(),
            total: meta_len + n * span,
        }
    }
}

/// The read-only constants the hot path needs, small and `Copy`, so the
/// allocator can keep a copy next to its other fields and reach them without
/// a dependent load through the region pointer.
#[derive(Clone, Copy)]
pub(crate) struct HotPath {
    /// The id the hot path compares the thread's front registry entry with
    /// (never 0): the region's id, or for a checked allocator that id with
    /// [`CHECKED_ID`] set, which no entry carries, so that every operation
    /// takes the cold, checked path.
    pub(crate) id: u64,
    /// The control block these constants were copied from.
    pub(crate) region: *const Region,
    spans_base: usize,
    /// `log2(span) - log2(CLASS_STRIDE)`: shifting an offset into the spans
    /// right by this (and clearing the low bits) gives its class, scaled.
    scaled_shift: u32,
    /// Classes × `CLASS_STRIDE`: the first scaled class that is not one.
    scaled_limit: usize,
    by_granule: *const u16,
    by_granule_len: usize,
    by_align: *const u8,
    by_align_len: usize,
    pub(crate) cache: CacheGeometry,
}

impl HotPath {
    /// The constants of no region: no class matches any request or address.
    pub(crate) const EMPTY: HotPath = HotPath {
        id: 0,
        region: core::ptr::null(),
        spans_base: 0,
        scaled_shift: 0,
        scaled_limit: 0,
        by_granule: core::ptr::null(),
        by_granule_len: 0,
        by_align: core::ptr::null(),
        by_align_len: 0,
        cache: CacheGeometry::DISABLED,
    };

    /// The class for a request.
    #[inline(always)]
    pub(crate) fn class_for(&self, size: usize, align: usize) -> Option<usize> {
        self.scaled_class_for(size, align).map(ScaledClass::index)
    }

    /// The class for a request, scaled, in one table load (see
    /// `size_class.rs`).
    #[inline(always)]
    pub(crate) fn scaled_class_for(&self, size: usize, align: usize) -> Option<ScaledClass> {
        // SAFETY: both tables were copied into the region in `create` with
        // these lengths and are never written again; the region outlives
        // every holder of its `HotPath`.
        let lookup = unsafe {
            ClassLookup {
                by_granule: core::slice::from_raw_parts(self.by_granule, self.by_granule_len),
                by_align: core::slice::from_raw_parts(self.by_align, self.by_align_len),
            }
        };
        lookup.class_for(size, align)
    }

    /// The class whose span holds `ptr`, or `None` if `ptr` is not in the
    /// region's spans (it came from the fallback).
    #[inline(always)]
    pub(crate) fn class_of(&self, ptr: *const u8) -> Option<usize> {
        self.scaled_class_of(ptr).map(ScaledClass::index)
    }

    /// [`class_of`](Self::class_of), scaled: a subtract, a shift, a mask
    /// and a compare.
    #[inline(always)]
    pub(crate) fn scaled_class_of(&self, ptr: *const u8) -> Option<ScaledClass> {
        let offset = (ptr as usize).wrapping_sub(self.spans_base);
        let scaled = (offset >> self.scaled_shift) & !(CLASS_STRIDE - 1);
        (scaled < self.scaled_limit).then(|| ScaledClass::from_offset(scaled))
    }
}

/// The control block at the start of a region. Everything but the atomics
/// inside `ClassPool`s, the slot map and the counters is written once in
/// [`Region::create`] and read-only afterwards.
pub(crate) struct Region {
    /// A process-unique id (never 0), so thread-local entries of a dropped
    /// allocator can never match a new one at the same address.
    id: u64,
    /// Whether misuse checks are on (`checks.rs`).
    checks: bool,
    hot: HotPath,
    reservation: NonNull<u8>,
    reservation_len: usize,
    classes: usize,
    pools: *const ClassPool,
    fallback: Fallback,
    capacity: usize,
    populated: bool,
    pub(crate) caches: CacheArea,
    pub(crate) oversize: CachePadded<OversizeCounters>,
    /// Further regions a dry class may add (created by `growth.rs`).
    pub(crate) extensions: Extensions,
    /// Bytes every trim so far gave back to the OS (`trim.rs`).
    pub(crate) trimmed_bytes: AtomicU64,
}

impl Region {
    /// Reserves and lays out a region for `config`.
    pub(crate) fn create(config: &ValidConfig) -> Result<NonNull<Region>, ConfigError> {
        let n = config.classes.len();
        let (by_granule, by_align) = build_tables(&config.classes);
        let cache = CacheGeometry::with_depths(&config.class_depths(), config.cached_threads);
        let layout = Layout::new(config, by_granule.len(), by_align.len(), &cache);
        let base = os::reserve(layout.total)
            .map_err(|e| ConfigError::ReserveFailed { bytes: layout.total, errno: e.errno })?;
        let at = |offset: usize| base.as_ptr().wrapping_add(offset);
        let spans_base = base.as_ptr() as usize + layout.meta_len;
        // SAFETY: every write below lands inside the fresh, zero-filled,
        // exclusively owned reservation of `layout.total` bytes: `Layout`
        // places each part after the previous one, with the alignment its
        // type needs (pools at 128, run words at 64, slots at a page), and the
        // spans after the metadata. Nothing else can see the region yet.
        unsafe {
            core::ptr::copy_nonoverlapping(by_granule.as_ptr(), at(layout.by_granule).cast(), by_granule.len());
            core::ptr::copy_nonoverlapping(by_align.as_ptr(), at(layout.by_align), by_align.len());
            let pools = at(layout.pools).cast::<ClassPool>();
            for (class, (&size, &blocks)) in config.classes.iter().zip(&config.blocks).enumerate() {
                let (words, links) = layout.runs[class];
                let (words, links) = (at(words).cast::<AtomicU64>(), at(links).cast::<AtomicU32>());
                let count = Runs::count_for(blocks) as usize;
                crate::sync::init_zeroed_atomics(words, count);
                crate::sync::init_zeroed_atomics(links, count);
                let runs = Runs::new(words, links, blocks);
                let span_base = at(layout.meta_len + (class << layout.span_shift));
                let states = match layout.states.get(class) {
                    Some(&offset) => {
                        let first = at(offset).cast::<AtomicU8>();
                        crate::sync::init_zeroed_atomics(first, blocks as usize);
                        BlockStates::new(first)
                    }
                    None => BlockStates::NONE,
                };
                pools.add(class).write(ClassPool::new(size, blocks, span_base, runs, states));
            }
            let caches = CacheArea::new(cache, at(layout.slots), n);
            let region = base.cast::<Region>();
            let id = crate::sync::next_region_id();
            region.as_ptr().write(Region {
                id,
                checks: config.checks,
                hot: HotPath {
                    id: if config.checks { id | CHECKED_ID } else { id },
                    region: region.as_ptr(),
                    spans_base,
                    scaled_shift: layout.span_shift - CLASS_STRIDE.trailing_zeros(),
                    scaled_limit: n * CLASS_STRIDE,
                    by_granule: at(layout.by_granule).cast(),
                    by_granule_len: by_granule.len(),
                    by_align: at(layout.by_align),
                    by_align_len: by_align.len(),
                    cache,
                },
                reservation: base,
                reservation_len: layout.total,
                classes: n,
                pools,
                fallback: config.fallback,
                capacity: config.capacity,
                populated: config.populate,
                caches,
                oversize: CachePadded::new(OversizeCounters::default()),
                extensions: Extensions::new(config),
                trimmed_bytes: AtomicU64::new(0),
            });
            // Before populate, so that populating faults in huge pages where
            // the kernel grants them. A refusal (no THP) is not an error:
            // the spans work the same with base pages.
            if config.huge_pages {
                let _accepted = os::advise_huge_pages(at(layout.meta_len), n << layout.span_shift);
            }
            if config.populate {
                os::populate(base.as_ptr(), layout.meta_len);
                for (class, (&size, &blocks)) in config.classes.iter().zip(&config.blocks).enumerate() {
                    os::populate(at(layout.meta_len + (class << layout.span_shift)), size * blocks as usize);
                }
            }
            Ok(region)
        }
    }

    /// Drops the control block and returns the whole reservation to the OS.
    ///
    /// # Safety
    ///
    /// `region` came from [`create`](Self::create), is destroyed once, and
    /// nothing inside it (blocks, caches, metadata) is used afterwards.
    pub(crate) unsafe fn destroy(region: NonNull<Region>) {
        // SAFETY: the caller's contract: the region is valid and unused.
        unsafe {
            let (reservation, len) = {
                let r = region.as_ref();
                (r.reservation, r.reservation_len)
            };
            let r = region.as_ref();
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(r.pools.cast_mut(), r.classes));
            core::ptr::drop_in_place(region.as_ptr());
            os::release(reservation, len);
        }
    }

    /// The region's id (see [`HotPath::id`]).
    #[inline(always)]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether misuse checks are on.
    pub(crate) fn checks(&self) -> bool {
        self.checks
    }

    /// Whether `ptr` lies in the region's metadata (before the spans).
    pub(crate) fn in_metadata(&self, ptr: *const u8) -> bool {
        let start = self.reservation.as_ptr() as usize;
        (start..self.hot.spans_base).contains(&(ptr as usize))
    }

    /// A copy of the hot-path constants.
    pub(crate) fn hot(&self) -> HotPath {
        self.hot
    }

    pub(crate) fn fallback(&self) -> Fallback {
        self.fallback
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn populated(&self) -> bool {
        self.populated
    }

    /// Bytes of address space reserved (metadata and spans).
    pub(crate) fn reserved_bytes(&self) -> usize {
        self.reservation_len
    }

    /// See [`HotPath::class_for`].
    #[inline(always)]
    pub(crate) fn class_for(&self, size: usize, align: usize) -> Option<usize> {
        self.hot.class_for(size, align)
    }

    /// See [`HotPath::class_of`].
    #[inline(always)]
    pub(crate) fn class_of(&self, ptr: *const u8) -> Option<usize> {
        self.hot.class_of(ptr)
    }

    /// Whose block is `ptr`: this region's or one of its extensions', and
    /// which class; `None` for a pointer outside all of them (a fallback
    /// block, a dangling zero-size pointer, foreign memory).
    #[inline]
    pub(crate) fn locate(&self, ptr: *const u8) -> Option<(&Region, usize)> {
        match self.class_of(ptr) {
            Some(class) => Some((self, class)),
            None => {
                self.extensions.iter().find_map(|extension| extension.class_of(ptr).map(|class| (extension, class)))
            }
        }
    }

    /// The shared state of `class`.
    #[inline(always)]
    pub(crate) fn pool(&self, class: usize) -> &ClassPool {
        &self.pools()[class]
    }

    /// All classes' shared state.
    pub(crate) fn pools(&self) -> &[ClassPool] {
        // SAFETY: `create` wrote `classes` pools at `pools`; they live as
        // long as the region.
        unsafe { core::slice::from_raw_parts(self.pools, self.classes) }
    }
}

// SAFETY: the raw pointers point into the region itself, whose shared state
// is atomics or written once before the region is shared.
unsafe impl Send for Region {}
// SAFETY: as for `Region`: the pointers lead to tables written once in
// `create` and read-only afterwards.
unsafe impl Send for HotPath {}
// SAFETY: as for `Send`.
unsafe impl Sync for HotPath {}
// SAFETY: as for `Send`.
unsafe impl Sync for Region {}

/// The extension slots of a first region: where `growth.rs` publishes the
/// regions it adds, each once, and where [`Region::locate`] looks for a
/// pointer outside the first region. Extensions live until the first region
/// is destroyed, which destroys them.
pub(crate) struct Extensions {
    /// How every extension is built (`None`: growth is off).
    config: Option<ValidConfig>,
    /// One slot per extension allowed (none when growth is off), filled in
    /// order, each once.
    regions: Box<[AtomicPtr<Region>]>,
}

impl Extensions {
    /// The extensions `config` allows, none created yet.
    fn new(config: &ValidConfig) -> Self {
        let allowed = config.growth.min(MAX_GROWTH);
        let config = (allowed > 0).then(|| ValidConfig {
            // Extension blocks are served from the shared stacks (see
            // `growth.rs`), so extensions reserve no cache slots, and do
            // not grow themselves.
            cache_depth: 0,
            cache_bytes: 0,
            growth: 0,
            ..config.clone()
        });
        let regions = (0..allowed).map(|_| AtomicPtr::new(core::ptr::null_mut())).collect();
        Extensions { config, regions }
    }

    /// How every extension is built; `None` when growth is off.
    pub(crate) fn config(&self) -> Option<&ValidConfig> {
        self.config.as_ref()
    }

    /// The slots, in order, for `growth.rs` to fill.
    pub(crate) fn slots(&self) -> &[AtomicPtr<Region>] {
        &self.regions
    }

    /// How many extensions may be created in all.
    pub(crate) fn limit(&self) -> usize {
        self.regions.len()
    }

    /// The extensions created so far, in creation order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().map_while(|slot| {
            // Acquire: pairs with the Release of the publishing CAS in
            // `growth::install`, so the region is seen fully built.
            let region = slot.load(Ordering::Acquire);
            // SAFETY: a published region lives until `self` drops.
            (!region.is_null()).then(|| unsafe { &*region })
        })
    }
}

impl Drop for Extensions {
    fn drop(&mut self) {
        for slot in self.regions.iter() {
            // Relaxed: `drop` has `&mut self`; the allocator is gone and no
            // other thread can reach the slots.
            if let Some(region) = NonNull::new(slot.load(Ordering::Relaxed)) {
                // SAFETY: published once, destroyed once, here, after the
                // last use of the allocator that owned it.
                unsafe { Region::destroy(region) };
            }
        }
    }
}

/// Owns a region: dropping the last strong reference unmaps it. Thread
/// caches hold weak references, so a thread that exits after its allocator
/// was dropped finds the region gone instead of touching freed memory.
pub(crate) struct RegionOwner {
    region: NonNull<Region>,
    /// The background trim thread, if any: woken when the owner drops, so
    /// that it sees the allocator gone and exits at once.
    #[cfg(not(lockfree_slab_loom))]
    trimmer: std::sync::OnceLock<std::thread::Thread>,
}

impl RegionOwner {
    pub(crate) fn new(region: NonNull<Region>) -> Self {
        RegionOwner {
            region,
            #[cfg(not(lockfree_slab_loom))]
            trimmer: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn region(&self) -> &Region {
        // SAFETY: the region lives until this owner drops.
        unsafe { self.region.as_ref() }
    }

    /// Records the background trim thread to wake on drop (once).
    #[cfg(not(lockfree_slab_loom))]
    pub(crate) fn set_trimmer(&self, thread: std::thread::Thread) {
        let _ = self.trimmer.set(thread);
    }
}

impl Drop for RegionOwner {
    fn drop(&mut self) {
        // SAFETY: the last owner: no allocator and no cache flush can reach
        // the region any more (flushes upgrade a weak reference first).
        unsafe { Region::destroy(self.region) }
        // After the last strong reference is gone, so the woken thread's
        // check finds it gone (and an unpark before its park is kept).
        #[cfg(not(lockfree_slab_loom))]
        if let Some(trimmer) = self.trimmer.get() {
            trimmer.unpark();
        }
    }
}

// SAFETY: the region is Send + Sync, and the owner only destroys it once.
unsafe impl Send for RegionOwner {}
// SAFETY: as for `Send`.
unsafe impl Sync for RegionOwner {}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;
    use crate::config::Builder;

    fn with_region(builder: Builder, check: impl FnOnce(&Region)) {
        let config = builder.validate().unwrap();
        let region = Region::create(&config).unwrap();
        // SAFETY: just created; destroyed once below, after the last use.
        check(unsafe { region.as_ref() });
        // SAFETY: nothing from the region is used after this.
        unsafe { Region::destroy(region) };
    }

    #[test]
    fn every_block_maps_back_to_its_class_and_nothing_else_does() {
        let builder = Builder::new().size_classes(&[16, 48, 4096]).capacity(48 * 1024).cache_depth(0);
        with_region(builder, |r| {
            for (class, pool) in r.pools().iter().enumerate() {
                let first = pool.address_of(0);
                let last = pool.address_of(pool.capacity() - 1);
                assert_eq!(r.class_of(first.as_ptr()), Some(class));
                assert_eq!(r.class_of(last.as_ptr().wrapping_add(pool.block_size() - 1)), Some(class));
                assert_eq!(pool.index_of(last), pool.capacity() - 1);
                assert_eq!(first.as_ptr() as usize % crate::size_class::natural_alignment(pool.block_size()), 0);
            }
            let first = r.pool(0).address_of(0).as_ptr();
            assert_eq!(r.class_of(first.wrapping_sub(1)), None, "metadata is not a class");
            let past_last = r.pool(2).address_of(0).as_ptr().wrapping_add(1 << 30);
            assert_eq!(r.class_of(past_last), None);
            assert_eq!(r.class_of(core::ptr::null()), None);
        });
    }

    #[test]
    fn spans_are_equal_powers_of_two_and_do_not_overlap() {
        let builder =
            Builder::new().size_classes(&[64, 256, 1024]).split(&[60, 30, 10]).capacity(1 << 20).cache_depth(4);
        with_region(builder, |r| {
            let bases: Vec<usize> = r.pools().iter().map(|p| p.address_of(0).as_ptr() as usize).collect();
            let span = bases[1] - bases[0];
            assert!(span.is_power_of_two());
            assert_eq!(bases[2] - bases[1], span);
            for pool in r.pools() {
                assert!(pool.block_size() * pool.capacity() as usize <= span);
            }
            assert!(r.reserved_bytes() >= 3 * span);
        });
    }
}
