//! One size class's shared state: its geometry (block size, span, capacity),
//! its free blocks (bitmaps of runs of neighbouring blocks, and a
//! [`TaggedStack`] of the runs that have any: [`Runs`]), its [`Carver`], and
//! the counters of its slow paths. Converts between block indices and
//! addresses. Its parts are private: the layers above take and give blocks
//! through its methods, so "free blocks by address, else carve" is written
//! once, here.
//!
//! Accounting of a class, exact whenever no operation is in flight:
//!
//! ```text
//! carved = in use + free (in the runs) + in thread caches
//! ```
//!
//! where *in use* is allocations minus frees summed over every thread's
//! counters and the uncached path's counters (see `stats.rs`). Tests check it
//! after every stress run; each term is counted independently. (A trim in
//! flight holds free blocks that are in none of the terms until it gives
//! them back: see `trim.rs`, and the dry-path check
//! [`ClassPool::retry_while_trimmed`] here.)

use core::ops::Range;
use core::ptr::NonNull;

use crate::sync::{AtomicU64, Backoff, CachePadded, Ordering};
use carver::Carver;
use runs::Runs;
#[cfg(doc)]
use stack::TaggedStack;
use states::BlockStates;

pub(crate) mod carver;
pub(crate) mod runs;
pub(crate) mod stack;
pub(crate) mod states;

/// Counters of the paths that already touch shared lines: the uncached path
/// (threads without a cache) and fallbacks. Never written on a cache hit.
#[derive(Default)]
pub(crate) struct SharedCounters {
    /// Requests of this class that the fallback served or that failed
    /// because the class was dry.
    pub(crate) fallbacks: AtomicU64,
    /// Allocations served by the uncached path.
    pub(crate) uncached_allocs: AtomicU64,
    /// Frees taken by the uncached path.
    pub(crate) uncached_frees: AtomicU64,
    /// Bytes requested by the allocations of a checked allocator (cache
    /// hits included): counted only there, so that a cache hit writes no
    /// counter for it.
    pub(crate) requested: AtomicU64,
    /// Trims of this class: how many ever started (high 32 bits, wrapping)
    /// and how many are in progress (low 32 bits). Only `trim.rs` writes it
    /// (one RMW at each end of a trim); only a class that looks dry reads
    /// it (see [`ClassPool::retry_while_trimmed`]).
    trims: AtomicU64,
}

/// One more trim started, and one more in progress.
const TRIM_STARTED: u64 = 1 << 32 | 1;
/// The in-progress half of [`SharedCounters::trims`].
const TRIMS_ACTIVE: u64 = u32::MAX as u64;

/// Exact division of an offset by the block size, for offsets that are
/// multiples of it: `size = odd << shift`, and dividing a multiple of `size`
/// is a shift and a multiplication by the inverse of `odd` modulo 2⁶⁴.
#[derive(Clone, Copy, Debug)]
struct ExactDivisor {
    shift: u32,
    inverse: u64,
}

impl ExactDivisor {
    fn new(size: usize) -> Self {
        let shift = size.trailing_zeros();
        let odd = (size >> shift) as u64;
        // Newton's iteration doubles the correct low bits each step; an odd
        // number is its own inverse modulo 8 (3 bits), so 5 steps give 96.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        debug_assert_eq!(odd.wrapping_mul(inverse), 1);
        ExactDivisor { shift, inverse }
    }

    #[inline(always)]
    fn divide(self, multiple: usize) -> usize {
        ((multiple as u64 >> self.shift).wrapping_mul(self.inverse)) as usize
    }
}

/// The shared state of one size class.
pub(crate) struct ClassPool {
    block_size: usize,
    /// Blocks this class may carve: its share of the capacity.
    capacity: u32,
    /// Block 0: a pointer derived from the region's reservation, so block
    /// pointers carry its provenance (Miri checks this with strict
    /// provenance).
    span_base: *mut u8,
    divisor: ExactDivisor,
    /// Per-block states for the checks (`BlockStates::NONE` when off).
    states: BlockStates,
    runs: Runs,
    carver: Carver,
    counters: CachePadded<SharedCounters>,
}

// SAFETY: the shared state is atomics (runs, carver, counters); the rest,
// `span_base` included, is written once in `new` and only read afterwards.
unsafe impl Send for ClassPool {}
// SAFETY: as for `Send`.
unsafe impl Sync for ClassPool {}

impl ClassPool {
    /// # Safety
    ///
    /// `span_base..span_base + block_size * capacity` must be memory this
    /// pool may hand out for as long as it lives; `runs` is this pool's
    /// alone, made for `capacity` blocks, with none free; `states`, if
    /// enabled, holds a state for each block.
    pub(crate) unsafe fn new(
        block_size: usize,
        capacity: u32,
        span_base: *mut u8,
        runs: Runs,
        states: BlockStates,
    ) -> Self {
        ClassPool {
            block_size,
            capacity,
            span_base,
            divisor: ExactDivisor::new(block_size),
            states,
            runs,
            carver: Carver::new(capacity),
            counters: CachePadded::new(SharedCounters::default()),
        }
    }

    #[inline(always)]
    pub(crate) fn block_size(&self) -> usize {
        self.block_size
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The address of block `index`.
    #[inline(always)]
    pub(crate) fn address_of(&self, index: u32) -> NonNull<u8> {
        debug_assert!(index < self.capacity);
        let block = self.span_base.wrapping_add(index as usize * self.block_size);
        // SAFETY: span_base is a non-null pointer into the region, and a
        // block offset inside the span cannot wrap it to 0.
        unsafe { NonNull::new_unchecked(block) }
    }

    /// The index of the block at `addr`, which must be the start of a block
    /// of this class (a pointer this pool handed out).
    #[inline(always)]
    pub(crate) fn index_of(&self, addr: NonNull<u8>) -> u32 {
        let offset = (addr.as_ptr() as usize).wrapping_sub(self.span_base as usize);
        let index = self.divisor.divide(offset);
        debug_assert!(
            index < self.capacity as usize && index * self.block_size == offset,
            "{addr:p} is not a block of the {} B class",
            self.block_size
        );
        index as u32
    }

    /// The byte offset of `addr` from the start of the span (any address in
    /// the span, not only block starts).
    pub(crate) fn offset_of(&self, addr: *const u8) -> usize {
        (addr as usize).wrapping_sub(self.span_base as usize)
    }

    /// The per-block states of the checks.
    pub(crate) fn states(&self) -> BlockStates {
        self.states
    }

    /// The block range `indices` as addresses, lowest first.
    pub(crate) fn addresses(&self, indices: Range<u32>) -> impl DoubleEndedIterator<Item = NonNull<u8>> + '_ {
        indices.map(|i| self.address_of(i))
    }

    /// Up to `max` free blocks for a thread cache, as `sink(position,
    /// block)` for positions `0..returned`: the free blocks of a few runs
    /// ([`Runs::take`]), else up to `max` fresh ones. Either way, the lowest
    /// address comes last, so that a magazine hands them out in address
    /// order. 0 when the class is dry.
    pub(crate) fn take_batch(&self, max: u32, mut sink: impl FnMut(u32, NonNull<u8>)) -> u32 {
        let mut position = 0;
        self.runs.take(max, |index| {
            sink(position, self.address_of(index));
            position += 1;
        });
        if position > 0 {
            return position;
        }
        let carved = self.carver.carve(max);
        for (position, block) in self.addresses(carved.clone()).rev().enumerate() {
            sink(position as u32, block);
        }
        carved.len() as u32
    }

    /// Gives free blocks back from a thread cache ([`Runs::give`]).
    ///
    /// # Safety
    ///
    /// Every block was handed out by this pool and is not in use any more.
    pub(crate) unsafe fn give_batch(&self, blocks: &[NonNull<u8>]) {
        // SAFETY: the blocks are this pool's and the caller's (this
        // function's contract), each once.
        unsafe { self.runs.give(blocks.iter().map(|&block| self.index_of(block))) }
    }

    /// One free block, else a freshly carved one; `None` when the class is
    /// exhausted. The uncached path.
    pub(crate) fn take_one(&self) -> Option<NonNull<u8>> {
        let mut taken = None;
        if self.runs.take(1, |index| taken = Some(index)) == 0 {
            let carved = self.carver.carve(1);
            taken = (!carved.is_empty()).then_some(carved.start);
        }
        Some(self.address_of(taken?))
    }

    /// Frees one block. The uncached path.
    ///
    /// # Safety
    ///
    /// `block` was handed out by this pool and is not in use any more.
    pub(crate) unsafe fn give_back(&self, block: NonNull<u8>) {
        // SAFETY: a block of this pool, now the caller's.
        unsafe { self.runs.give_one(self.index_of(block)) }
    }

    /// Detaches every free block below `frontier` as `sink(index)` and
    /// returns how many (those at or above it stay free); the blocks are
    /// then the caller's (a trim's), to give back with
    /// [`give_back_detached`](Self::give_back_detached). The detach is one
    /// CAS with Release, which
    /// [`retry_while_trimmed`](Self::retry_while_trimmed) relies on.
    pub(crate) fn detach_free(&self, frontier: u32, sink: impl FnMut(u32)) -> u64 {
        self.runs.take_all(frontier, sink)
    }

    /// Gives back blocks a trim held ([`detach_free`](Self::detach_free)).
    ///
    /// # Safety
    ///
    /// The blocks are the caller's (detached and not yet given back), each
    /// yielded once.
    pub(crate) unsafe fn give_back_detached(&self, indices: impl Iterator<Item = u32>) {
        // SAFETY: forwarded from the caller.
        unsafe { self.runs.give(indices) }
    }

    /// Whether the class looked to have no free block a moment ago (a hint).
    pub(crate) fn looks_dry(&self) -> bool {
        self.runs.looks_empty()
    }

    /// Blocks carved so far.
    pub(crate) fn carved(&self) -> u32 {
        self.carver.carved()
    }

    /// Free blocks in the runs (exact when quiescent).
    pub(crate) fn free_blocks(&self) -> u64 {
        self.runs.free_blocks(self.carved())
    }

    /// The counters of the uncached path and the fallback, for statistics.
    pub(crate) fn counters(&self) -> &SharedCounters {
        &self.counters
    }

    /// Counts an allocation the uncached path (or growth) served.
    pub(crate) fn count_uncached_alloc(&self) {
        // Relaxed: statistics.
        self.counters.uncached_allocs.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the bytes an allocation of a checked allocator asked for.
    pub(crate) fn count_requested(&self, requested: usize) {
        // Relaxed: statistics.
        self.counters.requested.fetch_add(requested as u64, Ordering::Relaxed);
    }

    /// Counts a free the uncached path (or growth) took.
    pub(crate) fn count_uncached_free(&self) {
        // Relaxed: statistics.
        self.counters.uncached_frees.fetch_add(1, Ordering::Relaxed);
    }

    /// The free runs, for the models and unit tests that look at them.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> &Runs {
        &self.runs
    }

    /// The uncached path's [`take_one`](Self::take_one), with the dry-path
    /// check for trims: `None` only when the class really is dry.
    pub(crate) fn take_one_or_wait(&self) -> Option<NonNull<u8>> {
        self.take_one().or_else(|| self.retry_while_trimmed(|| self.take_one()))
    }

    /// Marks a trim of this class as in progress. Called before the trim
    /// detaches the stack; must be matched by [`end_trim`](Self::end_trim).
    pub(crate) fn begin_trim(&self) {
        // Relaxed: the detach CAS that follows in program order is a Release
        // (`TaggedStack::take_all`, through `Runs::take_all`), so whoever acquires the empty head it
        // leaves sees this increment; that is the only ordering needed.
        self.counters.trims.fetch_add(TRIM_STARTED, Ordering::Relaxed);
    }

    /// Marks a trim as finished, after it has pushed back every block it
    /// detached.
    pub(crate) fn end_trim(&self) {
        // Release: pairs with the Acquire loads in `retry_while_trimmed`: a
        // dry path that sees this trim ended also sees its push-backs (and
        // every RMW on the word continues the release sequence).
        let before = self.counters.trims.fetch_sub(1, Ordering::Release);
        debug_assert_ne!(before & TRIMS_ACTIVE, 0, "end_trim without begin_trim");
    }

    /// Called when `attempt` (a pop-or-carve of this class) has just found
    /// the class dry. A trim may be holding the class's free blocks (it
    /// detaches the whole stack for a moment), so that answer may be wrong;
    /// this retries `attempt` until it succeeds or until it fails with no
    /// trim of this class in progress or started meanwhile. Returns `None`
    /// only then.
    ///
    /// Why that is enough: a failed attempt whose empty stack was a trim's
    /// detach read that detach's head (or a later one), so — the detach
    /// being a Release and the pop an Acquire — the trim's `begin_trim`
    /// happened before the attempt and every later load of the word sees
    /// it. So if the word reads the same, with no trim in progress, before
    /// and after a failed attempt, no trim could have emptied the stack that
    /// attempt saw: a trim that began before the first read had also ended
    /// before it (pushed back, ordered by `end_trim`'s Release), and one
    /// that began later would have changed the count. (Equal words 2³²
    /// trims apart are the one gap, as wide as the stack tag's.)
    ///
    /// Cost: on a class no trim has ever touched, one load. Otherwise one
    /// more attempt, and — only while a trim holds blocks — retries with
    /// backoff: the only place a thread waits for another, on a path that
    /// would otherwise fail. The hot path and the refills that find blocks
    /// never come here. The trimming thread never waits for itself: it
    /// allocates nothing while it holds a class's blocks. And the trim is
    /// always a live thread's: a fork child never inherits one in flight
    /// (`fork.rs`).
    #[cold]
    pub(crate) fn retry_while_trimmed<T>(&self, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
        // Acquire (here and below): pairs with the Release in `end_trim`, so
        // a trim seen as ended has pushed back what it held before we retry.
        let mut seen = self.counters.trims.load(Ordering::Acquire);
        if seen == 0 {
            // No trim has ever started on this class before the failed
            // attempt could have seen it (see above): really dry.
            return None;
        }
        let backoff = Backoff::new();
        loop {
            if let Some(found) = attempt() {
                return Some(found);
            }
            let now = self.counters.trims.load(Ordering::Acquire);
            if now == seen && now & TRIMS_ACTIVE == 0 {
                return None;
            }
            if now & TRIMS_ACTIVE != 0 {
                // A trim holds blocks; it pushes them back a chunk at a time.
                backoff.snooze();
            }
            seen = now;
        }
    }

    /// Records a request of this class that the pool could not serve.
    pub(crate) fn count_fallback(&self) {
        // Relaxed: a statistic.
        self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn exact_division_matches_for_every_class_shape() {
        for size in [8usize, 24, 40, 48, 56, 80, 96, 112, 160, 1536, 9216, 4104, 1 << 20] {
            let d = ExactDivisor::new(size);
            for index in [0usize, 1, 2, 3, 1000, 123_456, (u32::MAX - 1) as usize] {
                assert_eq!(d.divide(index * size), index, "size {size} index {index}");
            }
        }
    }
}
