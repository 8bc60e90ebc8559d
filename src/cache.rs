//! Per-thread caches: one *slot* per cached thread, holding one *magazine*
//! per class — a bounded array of free blocks that only its thread touches.
//!
//! A cache hit is a pop or a push on the magazine's array (a free also adds
//! one to an owner-only counter, a plain add with no `lock` prefix; nothing
//! else is counted per call). A miss refills up to half a magazine from
//! the class's runs (`class/runs.rs`: neighbouring blocks, lowest address
//! first) or fresh blocks; an overflow flushes the older half back as one
//! batch. So the shared lines of a class are touched once per batch, not
//! per block, and a batch costs an atomic per run it touches.
//!
//! Slots live in the region's metadata area, not on the heap, so a cache
//! never allocates through the allocator it serves. A [`SlotMap`] bitmap says
//! which slots are claimed; claiming (Acquire) pairs with releasing (Release),
//! so a thread that takes over a slot sees the previous owner's last writes to
//! its magazines and counters. Counters stay with the slot when its thread
//! exits, so totals survive the thread.
//!
//! Which slot the *current* thread owns for a given allocator is the business
//! of `slab/registry.rs`; this file only knows slots.

use core::ptr::NonNull;

use crate::class::ClassPool;
use crate::config::MAX_CACHED_THREADS;
#[cfg(not(lockfree_slab_loom))]
use crate::size_class::CLASS_STRIDE;
use crate::size_class::{ScaledClass, MAX_CLASSES};
use crate::sync::{bump_owned, AtomicPtr, AtomicU32, AtomicU64, Ordering, UnsafeCell, ZeroableAtomic};

/// The hot half of one magazine: what a cache hit reads and writes, 32
/// bytes, so the headers of a slot's classes sit two to a cache line, packed
/// together at the start of the slot. Only the owner writes it; other threads
/// read `top` and `frees` (for statistics) with relaxed loads.
///
/// The magazine is a stack of pointers that `top` walks: a pop reads the
/// entry below `top`, a push writes the entry at `top`. The entry below the
/// first is a null sentinel, never written (`CacheGeometry::with_depths`
/// leaves room for it), so a pop finds the magazine empty by the entry it
/// reads, with no bound to compare: the cache hit is a load of `top`, a
/// load of the entry, a test and a store of `top`.
///
/// The hot path writes one counter: `frees`, on a cache-hit free. The rest
/// are derived (with the cold [`MagazineCounters`]):
///
/// ```text
/// hits = frees + refilled_blocks - flushed_blocks - refills - len
/// ```
///
/// (blocks in minus blocks out; every successful refill hands out one block
/// itself).
#[repr(C, align(32))]
pub(crate) struct MagazineHeader {
    /// One past the newest free block: `base + len`. Null until a thread
    /// first claims the slot.
    top: AtomicPtr<Entry>,
    /// `base + depth`: a push finds the magazine full when `top` reaches it.
    /// With `base`, written when a thread claims the slot
    /// ([`CacheArea::claim`]) and read only by that thread. Not atomics, so
    /// that the hot path reads them directly.
    limit: UnsafeCell<*mut Entry>,
    /// The magazine's block array (elsewhere in the slot, after its
    /// sentinel); entries `base..top` are free blocks of the class, oldest
    /// first.
    base: UnsafeCell<*mut Entry>,
    /// Frees taken into the magazine.
    frees: AtomicU64,
}

/// One entry of a magazine's block array: a free block, or the null
/// sentinel below the first entry.
pub(crate) type Entry = Option<NonNull<u8>>;

/// The cold half of one magazine: counters written once per refill or
/// flush, kept apart from the headers so that the hot lines hold only what
/// a cache hit needs.
#[repr(C)]
pub(crate) struct MagazineCounters {
    /// Allocations that found the magazine empty.
    misses: AtomicU64,
    /// Successful refills; each one also served one allocation.
    refills: AtomicU64,
    /// Flushes (batches given back).
    flushes: AtomicU64,
    /// Blocks taken in by refills.
    refilled_blocks: AtomicU64,
    /// Blocks given back by flushes.
    flushed_blocks: AtomicU64,
}

/// A snapshot of one magazine's counters, for statistics.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MagazineStats {
    pub(crate) len: u64,
    pub(crate) frees: u64,
    pub(crate) misses: u64,
    pub(crate) refills: u64,
    pub(crate) flushes: u64,
    pub(crate) refilled_blocks: u64,
    pub(crate) flushed_blocks: u64,
}

impl MagazineStats {
    /// Allocations served straight from the magazine (see
    /// [`MagazineHeader`]); a snapshot taken while the owner works may be off
    /// by the operation in flight.
    pub(crate) fn hits(&self) -> u64 {
        (self.frees + self.refilled_blocks).saturating_sub(self.flushed_blocks + self.refills + self.len)
    }
}

impl ZeroableAtomic for MagazineHeader {
    fn zero() -> Self {
        MagazineHeader {
            top: AtomicPtr::new(core::ptr::null_mut()),
            limit: UnsafeCell::new(core::ptr::null_mut()),
            base: UnsafeCell::new(core::ptr::null_mut()),
            frees: AtomicU64::zero(),
        }
    }
}

impl ZeroableAtomic for MagazineCounters {
    fn zero() -> Self {
        MagazineCounters {
            misses: AtomicU64::zero(),
            refills: AtomicU64::zero(),
            flushes: AtomicU64::zero(),
            refilled_blocks: AtomicU64::zero(),
            flushed_blocks: AtomicU64::zero(),
        }
    }
}

/// Where the slots are and how they are cut. A slot is
///
/// ```text
/// [ headers: 32 B × classes ][ counters: 40 B × classes ][ 0, blocks of class 0 ][ 0, blocks of class 1 ] …
/// ```
///
/// so the hot headers of a thread's classes share a few cache lines, a
/// header is one shift and add from the slot, and its block array is a
/// pointer in the header (written when the slot is claimed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheGeometry {
    /// Magazine depth of each class.
    depths: [u16; MAX_CLASSES],
    /// Byte offset of the counters in a slot.
    counters: usize,
    /// Byte offset of each class's block array in a slot (its first entry;
    /// the null sentinel is the word before).
    blocks: [u32; MAX_CLASSES],
    /// Bytes per slot, padded so that two threads' slots never share a
    /// (pair of) cache line(s).
    pub(crate) slot_size: usize,
    /// Number of slots.
    pub(crate) slots: u32,
}

// Two headers to a cache line, and a header's offset its scaled class.
// (Loom's atomics are larger; under loom headers are addressed by index.)
#[cfg(not(lockfree_slab_loom))]
const _: () = assert!(core::mem::size_of::<MagazineHeader>() == CLASS_STRIDE);

impl CacheGeometry {
    /// No caches at all.
    pub(crate) const DISABLED: CacheGeometry =
        CacheGeometry { depths: [0; MAX_CLASSES], counters: 0, blocks: [0; MAX_CLASSES], slot_size: 0, slots: 0 };

    /// Every one of `classes` classes with magazines of `depth` blocks.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn new(classes: usize, depth: usize, slots: usize) -> Self {
        Self::with_depths(&vec![depth; classes], slots)
    }

    /// One magazine depth per class (all 0: caches disabled). Depths are at
    /// most `MAX_CACHE_DEPTH`, so they fit the table's `u16`.
    pub(crate) fn with_depths(depths: &[usize], slots: usize) -> Self {
        let classes = depths.len();
        let depth = depths.iter().copied().max().unwrap_or(0);
        if depth == 0 {
            return Self::DISABLED;
        }
        let counters = (classes * core::mem::size_of::<MagazineHeader>()).next_multiple_of(64);
        let mut cursor = (counters + classes * core::mem::size_of::<MagazineCounters>()).next_multiple_of(64);
        let mut table = [0u16; MAX_CLASSES];
        let mut blocks = [0u32; MAX_CLASSES];
        for ((entry, offset), &d) in table.iter_mut().zip(&mut blocks).zip(depths) {
            *entry = d as u16;
            // The sentinel (never written, so null), then `d` entries.
            *offset = (cursor + ENTRY) as u32;
            cursor = (cursor + (d + 1) * ENTRY).next_multiple_of(64);
        }
        CacheGeometry { depths: table, counters, blocks, slot_size: cursor.next_multiple_of(128), slots: slots as u32 }
    }

    /// Blocks one refill or flush of `class` moves: half a magazine, so that
    /// a thread allocating and freeing at a magazine boundary moves a batch
    /// at most once per half-magazine of operations.
    pub(crate) fn batch_of(&self, class: usize) -> u32 {
        (u32::from(self.depths[class]) / 2).max(1)
    }

    /// Bytes of the whole slot area.
    pub(crate) fn area_len(&self) -> usize {
        self.slot_size * self.slots as usize
    }

    /// The magazine of `class` in `slot`.
    ///
    /// # Safety
    ///
    /// `slot` is a slot of the area this geometry describes, the calling
    /// thread owns it (claimed it and has not released it), and `class` is a
    /// class of the region.
    #[inline(always)]
    pub(crate) unsafe fn magazine(&self, slot: SlotPtr, class: ScaledClass) -> Magazine<'static> {
        let base = slot.0.as_ptr();
        // SAFETY: the slot and class are in range (caller), so the header
        // and counters are inside the area, initialised and aligned. The area
        // lives as long as the region, which the caller keeps alive while it
        // uses the magazine (the `'static` never escapes a method of the
        // allocator).
        unsafe { Magazine { header: &*self.header_at(base, class), counters: &*self.counters_at(base, class.index()) } }
    }

    /// The header of `class` in the slot at `slot_base`.
    #[inline(always)]
    fn header_at(&self, slot_base: *mut u8, class: ScaledClass) -> *mut MagazineHeader {
        #[cfg(not(lockfree_slab_loom))]
        let header = slot_base.wrapping_add(class.offset()).cast::<MagazineHeader>();
        #[cfg(lockfree_slab_loom)]
        let header = slot_base.cast::<MagazineHeader>().wrapping_add(class.index());
        header
    }

    /// The first entry of the block array of `class` in the slot at
    /// `slot_base`.
    #[inline(always)]
    fn blocks_at(&self, slot_base: *mut u8, class: usize) -> *mut Entry {
        slot_base.wrapping_add(self.blocks[class] as usize).cast()
    }

    /// The cold counters of `class` in the slot at `slot_base`.
    #[inline(always)]
    fn counters_at(&self, slot_base: *mut u8, class: usize) -> *mut MagazineCounters {
        slot_base.wrapping_add(self.counters).cast::<MagazineCounters>().wrapping_add(class)
    }
}

/// Bytes of one magazine entry.
const ENTRY: usize = core::mem::size_of::<Entry>();

const WORDS: usize = MAX_CACHED_THREADS / 64;

/// Which slots are claimed: one bit per slot.
pub(crate) struct SlotMap {
    bits: [AtomicU64; WORDS],
    /// One past the highest slot ever claimed: statistics scan `0..high_water`.
    high_water: AtomicU32,
}

impl SlotMap {
    pub(crate) fn new() -> Self {
        SlotMap { bits: core::array::from_fn(|_| AtomicU64::new(0)), high_water: AtomicU32::new(0) }
    }

    /// Claims a free slot below `slots`, or `None` when all are taken.
    pub(crate) fn claim(&self, slots: u32) -> Option<u32> {
        for (w, word) in self.bits.iter().enumerate().take((slots as usize).div_ceil(64)) {
            let valid = match slots as usize - w * 64 {
                n if n >= 64 => u64::MAX,
                n => (1u64 << n) - 1,
            };
            // Relaxed: only a hint of which bits are free; the CAS decides.
            let mut current = word.load(Ordering::Relaxed);
            loop {
                let free = !current & valid;
                if free == 0 {
                    break;
                }
                let bit = free.trailing_zeros();
                // Success: Acquire, pairs with the Release in `release`, so
                // we see the previous owner's last writes to the slot.
                match word.compare_exchange_weak(current, current | 1 << bit, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        let slot = w as u32 * 64 + bit;
                        // Relaxed: statistics bound only; the slot's
                        // contents are ordered by the bitmap.
                        self.high_water.fetch_max(slot + 1, Ordering::Relaxed);
                        return Some(slot);
                    }
                    Err(actual) => current = actual,
                }
            }
        }
        None
    }

    /// Gives `slot` back for another thread.
    pub(crate) fn release(&self, slot: u32) {
        // Release: pairs with the Acquire CAS in `claim`; publishes the flushed
        // (empty) magazines and final counters to the next owner.
        self.bits[slot as usize / 64].fetch_and(!(1u64 << (slot % 64)), Ordering::Release);
    }

    /// Slots claimed at the moment.
    pub(crate) fn claimed(&self) -> u32 {
        // Relaxed: a statistic.
        self.bits.iter().map(|w| w.load(Ordering::Relaxed).count_ones()).sum()
    }

    pub(crate) fn high_water(&self) -> u32 {
        // Relaxed: see `claim`.
        self.high_water.load(Ordering::Relaxed)
    }
}

/// The slot area of a region: its geometry, its base and its claim bitmap.
pub(crate) struct CacheArea {
    pub(crate) geometry: CacheGeometry,
    base: *mut u8,
    classes: usize,
    pub(crate) map: SlotMap,
}

impl CacheArea {
    /// # Safety
    ///
    /// `base` must point to `geometry.area_len()` zero-filled bytes, aligned
    /// to 128, that stay valid and are used by nothing else while the area
    /// lives.
    pub(crate) unsafe fn new(geometry: CacheGeometry, base: *mut u8, classes: usize) -> Self {
        for slot in 0..geometry.slots as usize {
            let slot_base = base.wrapping_add(slot * geometry.slot_size);
            // SAFETY: the header and counter arrays of a slot inside the
            // zero-filled area, aligned (slots at multiples of 128, the
            // counters at a multiple of 64).
            unsafe {
                crate::sync::init_zeroed_atomics(geometry.header_at(slot_base, ScaledClass::of(0)), classes);
                crate::sync::init_zeroed_atomics(geometry.counters_at(slot_base, 0), classes);
            }
        }
        CacheArea { geometry, base, classes, map: SlotMap::new() }
    }

    /// Claims a free slot for the calling thread and sets its magazines'
    /// depths and block arrays; `None` when every slot is taken.
    pub(crate) fn claim(&self) -> Option<SlotPtr> {
        let slot = self.slot(self.map.claim(self.geometry.slots)?);
        let base = slot.0.as_ptr();
        for class in 0..self.classes {
            // SAFETY: a header of the slot we just claimed (initialised in
            // `new`).
            let header = unsafe { &*self.geometry.header_at(base, ScaledClass::of(class)) };
            let blocks = self.geometry.blocks_at(base, class);
            let limit = blocks.wrapping_add(usize::from(self.geometry.depths[class]));
            // SAFETY: only the slot's owner reads or writes `limit` and
            // `base`, and we own the slot now (the claim's Acquire orders us
            // after the previous owner's release). The array is inside the
            // slot (`CacheGeometry::with_depths`).
            unsafe {
                *header.limit.get() = limit;
                *header.base.get() = blocks;
            }
            // Relaxed: owner-only. A released slot's magazines are empty
            // (flushed at thread exit), so `top` is null (never claimed) or
            // already `blocks`.
            debug_assert!({
                let top = header.top.load(Ordering::Relaxed);
                top.is_null() || top == blocks
            });
            header.top.store(blocks, Ordering::Relaxed);
        }
        Some(slot)
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.geometry.slots > 0
    }

    /// The base of slot `slot`.
    pub(crate) fn slot(&self, slot: u32) -> SlotPtr {
        debug_assert!(slot < self.geometry.slots);
        // SAFETY: `slot < slots`, so the address is inside the area, whose
        // base is non-null.
        SlotPtr(unsafe { NonNull::new_unchecked(self.base.add(slot as usize * self.geometry.slot_size)) })
    }

    /// Index of the slot at `ptr`.
    pub(crate) fn index_of(&self, slot: SlotPtr) -> u32 {
        ((slot.0.as_ptr() as usize - self.base as usize) / self.geometry.slot_size) as u32
    }

    /// The magazine of `class` in `slot`.
    ///
    /// # Safety
    ///
    /// As for [`CacheGeometry::magazine`].
    #[inline(always)]
    pub(crate) unsafe fn magazine(&self, slot: SlotPtr, class: ScaledClass) -> Magazine<'_> {
        // SAFETY: forwarded from the caller; the area outlives `&self`.
        unsafe { self.geometry.magazine(slot, class) }
    }

    /// A snapshot of the counters of `class` in `slot`, for statistics,
    /// from any thread.
    pub(crate) fn stats_of(&self, slot: u32, class: usize) -> MagazineStats {
        let base = self.slot(slot).0.as_ptr();
        // SAFETY: in range (slot < slots by `self.slot`, class < classes by
        // the caller), initialised, and only atomics are read through them.
        let (h, c) = unsafe {
            (&*self.geometry.header_at(base, ScaledClass::of(class)), &*self.geometry.counters_at(base, class))
        };
        // Relaxed: statistics (see `MagazineStats::hits`).
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let top = h.top.load(Ordering::Relaxed);
        let len = if top.is_null() {
            0 // never claimed
        } else {
            (top as usize - self.geometry.blocks_at(base, class) as usize) / ENTRY
        };
        MagazineStats {
            len: len as u64,
            frees: load(&h.frees),
            misses: load(&c.misses),
            refills: load(&c.refills),
            flushes: load(&c.flushes),
            refilled_blocks: load(&c.refilled_blocks),
            flushed_blocks: load(&c.flushed_blocks),
        }
    }
}

/// The base address of a claimed slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotPtr(pub(crate) NonNull<u8>);

/// One class's magazine in a slot owned by the current thread.
pub(crate) struct Magazine<'a> {
    header: &'a MagazineHeader,
    counters: &'a MagazineCounters,
}

impl Magazine<'_> {
    /// `base + depth`: one past the last entry.
    #[inline(always)]
    fn limit(&self) -> *mut Entry {
        // SAFETY: written by this thread when it claimed the slot (the
        // magazine is only reached through its owner's claimed slot).
        unsafe { *self.header.limit.get() }
    }

    /// The first entry of the block array.
    #[inline(always)]
    fn base(&self) -> *mut Entry {
        // SAFETY: as for `limit`.
        unsafe { *self.header.base.get() }
    }

    /// One past the newest free block.
    #[inline(always)]
    fn top(&self) -> *mut Entry {
        // Relaxed: owner-only state; other threads only read it for stats.
        self.header.top.load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn set_top(&self, top: *mut Entry) {
        // Relaxed: as in `top`.
        self.header.top.store(top, Ordering::Relaxed);
    }

    /// Free blocks held.
    fn len(&self) -> u32 {
        // SAFETY: `base..top` is inside the one block array.
        unsafe { self.top().offset_from(self.base()) as u32 }
    }

    /// The cache hit: the newest free block, or `None` if empty.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<NonNull<u8>> {
        let top = self.top();
        // SAFETY: `base <= top <= limit`, and the entry below `base` is the
        // null sentinel (`CacheGeometry::with_depths`), so the entry below
        // `top` is inside the array: a free block, or the sentinel when the
        // magazine is empty.
        let block = unsafe { *top.sub(1) }?;
        // SAFETY: not the sentinel, so `top - 1 >= base`.
        self.set_top(unsafe { top.sub(1) });
        Some(block)
    }

    /// The cache hit of a free: `false` (and nothing done) when full.
    #[inline(always)]
    pub(crate) fn push(&self, block: NonNull<u8>) -> bool {
        let top = self.top();
        if top == self.limit() {
            return false;
        }
        // SAFETY: `top < limit`, so the entry is inside the array.
        unsafe { top.write(Some(block)) };
        // SAFETY: `top + 1 <= limit`.
        self.set_top(unsafe { top.add(1) });
        bump_owned(&self.header.frees, 1);
        true
    }

    /// After [`pop`](Self::pop) found the magazine empty: refills up to
    /// `batch` blocks with one take from the pool and returns the first;
    /// `None` when the class is dry.
    #[cold]
    pub(crate) fn refill_and_pop(&self, pool: &ClassPool, batch: u32) -> Option<NonNull<u8>> {
        bump_owned(&self.counters.misses, 1);
        self.refill(pool, batch)
    }

    /// The refill of [`refill_and_pop`](Self::refill_and_pop), without
    /// counting a miss: what a dry path retries while a trim holds the
    /// class's blocks (`ClassPool::retry_while_trimmed`).
    #[cold]
    pub(crate) fn refill(&self, pool: &ClassPool, batch: u32) -> Option<NonNull<u8>> {
        debug_assert_eq!(self.len(), 0);
        // SAFETY: `base + batch <= limit`.
        debug_assert!(unsafe { self.base().add(batch as usize) } <= self.limit());
        let base = self.base();
        let got = pool.take_batch(batch, |position, block| {
            // SAFETY: position < batch <= depth: inside the magazine.
            unsafe { base.add(position as usize).write(Some(block)) };
        });
        if got == 0 {
            return None;
        }
        bump_owned(&self.counters.refills, 1);
        bump_owned(&self.counters.refilled_blocks, u64::from(got));
        // SAFETY: `got >= 1` entries were just written, and `got <= depth`.
        let newest = unsafe { base.add(got as usize - 1) };
        self.set_top(newest);
        // SAFETY: written above (so `Some`).
        unsafe { *newest }
    }

    /// After [`push`](Self::push) found the magazine full: gives the older
    /// `batch` blocks to the pool as one batch, then takes `block`.
    ///
    /// # Safety
    ///
    /// `block` is a block of `pool` that the caller is freeing.
    #[cold]
    pub(crate) unsafe fn flush_and_push(&self, pool: &ClassPool, batch: u32, block: NonNull<u8>) {
        // SAFETY: the magazine holds only blocks of `pool`.
        unsafe { self.flush(pool, batch) };
        let pushed = self.push(block);
        debug_assert!(pushed);
    }

    /// Gives every cached block to the pool (thread exit, eviction).
    pub(crate) fn flush_all(&self, pool: &ClassPool) {
        let len = self.len();
        if len > 0 {
            // SAFETY: the magazine holds only blocks of `pool`.
            unsafe { self.flush(pool, len) };
        }
    }

    /// Gives the `count` oldest blocks back to the pool and moves the rest
    /// down.
    ///
    /// # Safety
    ///
    /// Every block in the magazine belongs to `pool`.
    unsafe fn flush(&self, pool: &ClassPool, count: u32) {
        let len = self.len();
        let count = count.min(len);
        if count == 0 {
            return;
        }
        let base = self.base();
        // SAFETY: entries `base..top` hold blocks of `pool` (so none is the
        // sentinel: `Entry` is `Option<NonNull>`, laid out as a pointer) that
        // this thread owns and gives up here; the rest are moved down inside
        // the array.
        unsafe {
            let oldest = core::slice::from_raw_parts(base.cast::<NonNull<u8>>(), count as usize);
            pool.give_batch(oldest);
            core::ptr::copy(base.add(count as usize), base, (len - count) as usize);
            self.set_top(base.add((len - count) as usize));
        }
        bump_owned(&self.counters.flushes, 1);
        bump_owned(&self.counters.flushed_blocks, u64::from(count));
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    impl CacheGeometry {
        fn max_depth(&self) -> u16 {
            self.depths.iter().copied().max().unwrap_or(0)
        }
    }

    #[test]
    fn geometry_packs_headers_and_keeps_slots_apart() {
        let g = CacheGeometry::new(44, 64, 8);
        assert_eq!(g.batch_of(43), 32);
        assert_eq!(g.counters, 44 * 32, "the hot headers come first, 32 bytes each");
        let first = (44 * 32 + 44 * 40usize).next_multiple_of(64) as u32;
        assert_eq!(g.blocks[0], first + 8, "then the counters, then a sentinel word");
        assert_eq!(g.blocks[43], g.blocks[0] + 43 * 576, "then a sentinel and 64 pointers per class, to a cache line");
        assert_eq!(g.slot_size % 128, 0);
        assert!(g.slot_size >= g.blocks[43] as usize + 512);
        let odd = CacheGeometry::new(3, 6, 1);
        assert_eq!((odd.max_depth(), odd.batch_of(0)), (6, 3));
        assert_eq!(odd.blocks[1] - odd.blocks[0], 64, "a sentinel and 6 pointers round up to a cache line");
        assert_eq!(CacheGeometry::new(3, 0, 8).area_len(), 0, "depth 0 disables caches");
        let scaled = CacheGeometry::with_depths(&[1024, 256, 64], 1);
        assert_eq!(scaled.max_depth(), 1024);
        assert_eq!(scaled.blocks[0], 256 + 8);
        assert_eq!(
            scaled.blocks[1..3],
            [256 + 8256 + 8, 256 + 8256 + 2112 + 8],
            "each class's array fits its own depth and its sentinel"
        );
        assert_eq!((scaled.batch_of(0), scaled.batch_of(2)), (512, 32), "refills and flushes move the same batch");
    }

    #[test]
    fn a_magazine_is_empty_at_its_sentinel_and_full_at_its_limit() {
        let geometry = CacheGeometry::with_depths(&[3, 5], 2);
        let layout = std::alloc::Layout::from_size_align(geometry.area_len(), 128).unwrap();
        // SAFETY: a non-zero size (two slots of two magazines).
        let memory = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!memory.is_null());
        // SAFETY: zero-filled, 128-aligned, `area_len` bytes, ours alone.
        let area = unsafe { CacheArea::new(geometry, memory, 2) };
        let slot = area.claim().expect("a free slot");
        let index = area.index_of(slot);
        let words = [0u64; 6];
        let block = |i: usize| NonNull::from(&words[i]).cast::<u8>();
        // SAFETY: our own claimed slot, class 1 of 2.
        let magazine = unsafe { area.magazine(slot, ScaledClass::of(1)) };
        assert_eq!(magazine.pop(), None, "a fresh magazine pops its sentinel");
        for i in 0..5 {
            assert!(magazine.push(block(i)), "entry {i} of 5");
        }
        assert!(!magazine.push(block(5)), "full at depth 5");
        assert_eq!(area.stats_of(index, 1).len, 5);
        assert_eq!(area.stats_of(index, 1).frees, 5, "the refused push is not counted");
        assert_eq!(area.stats_of(index, 0).len, 0, "the other class is untouched");
        for i in (0..5).rev() {
            assert_eq!(magazine.pop(), Some(block(i)), "newest first");
        }
        assert_eq!(magazine.pop(), None, "empty again: the sentinel");
        assert_eq!(area.stats_of(index, 1).len, 0);
        // SAFETY: allocated above with this layout; nothing uses it now.
        unsafe { std::alloc::dealloc(memory, layout) };
    }

    #[test]
    fn slot_map_hands_out_each_slot_once_and_takes_it_back() {
        let map = SlotMap::new();
        let slots = 70; // spans two words, the second one partly
        let mut got: Vec<u32> = (0..slots).map(|_| map.claim(slots).expect("a free slot")).collect();
        assert_eq!(map.claim(slots), None, "all {slots} slots are taken");
        got.sort_unstable();
        assert_eq!(got, (0..slots).collect::<Vec<_>>());
        assert_eq!(map.claimed(), slots);
        assert_eq!(map.high_water(), slots);
        map.release(65);
        assert_eq!(map.claim(slots), Some(65));
        map.release(3);
        map.release(65);
        assert_eq!(map.claimed(), slots - 2);
    }
}
