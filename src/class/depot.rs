//! The depot: one class's batches of free blocks, moved between thread
//! caches and the shared layer in O(1) per batch.
//!
//! A *record* is a fixed array of `batch` block indices in the region's
//! metadata. A full record holds one batch of free blocks, in the order its
//! magazine freed them; an empty record holds nothing. Records move between
//! two [`TaggedStack`]s of record indices (full and empty), so a transfer is
//!
//! ```text
//! put (a flush):   pop an empty record (or carve a fresh one) → copy the batch in → push it on `full`
//! take (a refill): pop a full record → copy the batch out → push it on `empty`
//! ```
//!
//! two CASes and a sequential copy, never a walk of per-block links (each a
//! dependent cache miss): the magazine array and the record are both
//! contiguous. Block memory still carries no allocator metadata.
//!
//! **Bounded.** A class has records for up to [`MAX_DEPOT_BLOCKS`] free
//! blocks (its whole capacity if smaller), plus [`SLACK`] records for the
//! ones threads hold for a moment between their pop and push. The depot
//! serves blocks *in transit* between thread caches; a class that holds
//! more free blocks than that keeps the rest on its per-block stack. So a
//! `put` that finds no record says so and the caller pushes the batch on the
//! stack instead: never a wait. The bound keeps the depot's metadata (4
//! bytes per block it can hold) small next to the links, which matters when
//! `populate` commits all metadata up front.
//!
//! **Orderings.** Both stacks are [`TaggedStack`]s, whose pushes publish
//! with Release and pops acquire, and whose tag stops ABA. So the writer of
//! a record's contents (Relaxed stores, before the push on `full`)
//! happens-before its reader (after the pop from `full`), and the reader's
//! loads (before the push on `empty`) happen-before the next writer's stores
//! (after the pop from `empty`). The loom model `depot::*` checks both,
//! with a tooth: with the push weakened to Relaxed it reads stale contents.

use crate::class::carver::Carver;
use crate::class::stack::TaggedStack;
use crate::sync::{AtomicU32, Ordering};

/// Records beyond the most that can be full at once: transfers in flight.
pub(crate) const SLACK: u32 = 16;

/// Most free blocks one class's depot holds (4 MiB of record contents).
pub(crate) const MAX_DEPOT_BLOCKS: u32 = 1 << 20;

/// The records of one class (see the module docs).
pub(crate) struct Depot {
    /// Blocks per record (0: the class has no thread caches, so no depot).
    batch: u32,
    /// `records × batch` indices, record `r` at `r * batch`.
    contents: *const AtomicU32,
    full: TaggedStack,
    empty: TaggedStack,
    /// Records never used yet: the empty ones not on `empty`.
    fresh: Carver,
}

// SAFETY: the contents are atomics in the region's metadata, written only by
// the thread that holds the record (popped it, see the module docs); the rest
// is atomics or written once in `new`.
unsafe impl Send for Depot {}
// SAFETY: as for `Send`.
unsafe impl Sync for Depot {}

impl Depot {
    /// No records: for a class without thread caches.
    pub(crate) fn none() -> Self {
        // SAFETY: a stack of capacity 0 never reads its (dangling) links.
        let empty_stack = || unsafe { TaggedStack::new(core::ptr::NonNull::dangling().as_ptr(), 0) };
        Depot {
            batch: 0,
            contents: core::ptr::NonNull::dangling().as_ptr(),
            full: empty_stack(),
            empty: empty_stack(),
            fresh: Carver::new(0),
        }
    }

    /// How many records a class of `capacity` blocks gets for batches of
    /// `batch` (0 when `batch` is 0).
    pub(crate) fn records_for(capacity: u32, batch: u32) -> u32 {
        match batch {
            0 => 0,
            _ => capacity.min(MAX_DEPOT_BLOCKS).div_ceil(batch).saturating_add(SLACK),
        }
    }

    /// Atomics of metadata a depot of `records` records of `batch` blocks
    /// needs: the contents, then the two stacks' links.
    pub(crate) fn words(records: u32, batch: u32) -> usize {
        records as usize * batch as usize + 2 * records as usize
    }

    /// # Safety
    ///
    /// `memory` points to [`words`](Self::words)`(records, batch)`
    /// initialised atomics that only this depot uses, for as long as it
    /// lives.
    pub(crate) unsafe fn new(memory: *const AtomicU32, records: u32, batch: u32) -> Self {
        if records == 0 || batch == 0 {
            return Self::none();
        }
        let contents = memory;
        let full_links = memory.wrapping_add(records as usize * batch as usize);
        let empty_links = full_links.wrapping_add(records as usize);
        Depot {
            batch,
            contents,
            // SAFETY: each link array holds `records` atomics of `memory`
            // (this function's contract), used by this stack alone.
            full: unsafe { TaggedStack::new(full_links, records) },
            // SAFETY: as above, the next `records` atomics.
            empty: unsafe { TaggedStack::new(empty_links, records) },
            fresh: Carver::new(records),
        }
    }

    /// Blocks per record (0: no depot).
    pub(crate) fn batch(&self) -> u32 {
        self.batch
    }

    /// The `batch` index slots of record `record`.
    fn record(&self, record: u32) -> &[AtomicU32] {
        // SAFETY: `record` came from one of the stacks or the carver, so it
        // is below `records`, and its slots are inside `contents` (`new`).
        unsafe {
            core::slice::from_raw_parts(self.contents.add(record as usize * self.batch as usize), self.batch as usize)
        }
    }

    /// Stores exactly `batch` block indices as one full record; `false` (and
    /// nothing stored) when no record is free or `indices` has another
    /// length than `batch`.
    ///
    /// # Safety
    ///
    /// The blocks are the caller's (free, on no stack, in no record), and
    /// stay untouched by it once this returns `true`.
    pub(crate) unsafe fn put(&self, indices: impl ExactSizeIterator<Item = u32>) -> bool {
        if self.batch == 0 || indices.len() != self.batch as usize {
            return false;
        }
        let Some(record) = self.reserve() else {
            return false;
        };
        // SAFETY: a record we hold, `batch` blocks of the caller's.
        unsafe { self.publish(record, indices) };
        true
    }

    /// An empty record for the caller to fill: off the `empty` stack, or
    /// never used; `None` when every record is full or held.
    pub(crate) fn reserve(&self) -> Option<u32> {
        self.empty.pop().or_else(|| {
            let fresh = self.fresh.carve(1);
            (!fresh.is_empty()).then_some(fresh.start)
        })
    }

    /// Fills `record` with `batch` block indices and pushes it on `full`.
    ///
    /// # Safety
    ///
    /// `record` came from [`reserve`](Self::reserve) and is still held; the
    /// `batch` blocks are as for [`put`](Self::put).
    pub(crate) unsafe fn publish(&self, record: u32, indices: impl ExactSizeIterator<Item = u32>) {
        debug_assert_eq!(indices.len(), self.batch as usize);
        for (slot, index) in self.record(record).iter().zip(indices) {
            // Relaxed: published by the push on `full` below (Release).
            slot.store(index, Ordering::Relaxed);
        }
        // SAFETY: `record` is ours (reserved), below `records`.
        unsafe { self.full.push(record) };
    }

    /// Fills one record from `indices`: `true` if a whole batch went in
    /// and was published. Otherwise (too few indices left, or no record
    /// free) every index it consumed is handed to `leftover` and the record,
    /// if any, goes back empty. For a trim giving back what it held, whose
    /// count is not a multiple of the batch.
    ///
    /// # Safety
    ///
    /// The blocks `indices` yields are the caller's, as for [`put`](Self::put).
    pub(crate) unsafe fn fill_from(
        &self,
        indices: &mut impl Iterator<Item = u32>,
        mut leftover: impl FnMut(u32),
    ) -> bool {
        let Some(record) = self.reserve().filter(|_| self.batch > 0) else {
            indices.for_each(leftover);
            return false;
        };
        let slots = self.record(record);
        let mut filled = 0;
        for (slot, index) in slots.iter().zip(&mut *indices) {
            // Relaxed: published by the push on `full` (Release), or read
            // back below by this same thread.
            slot.store(index, Ordering::Relaxed);
            filled += 1;
        }
        if filled == slots.len() {
            // SAFETY: a record we hold, now holding `batch` of the caller's blocks.
            unsafe { self.full.push(record) };
            return true;
        }
        for slot in &slots[..filled] {
            // Relaxed: written just above by this thread.
            leftover(slot.load(Ordering::Relaxed));
        }
        // SAFETY: a record we hold, empty again.
        unsafe { self.empty.push(record) };
        false
    }

    /// The stack of full records, for the ABA model that replays a stale
    /// take's CAS on it.
    #[cfg(all(test, lockfree_slab_loom))]
    pub(crate) fn full_stack(&self) -> &TaggedStack {
        &self.full
    }

    /// The block indices in `record` (for the ABA model, after it took the
    /// record by hand).
    #[cfg(all(test, lockfree_slab_loom))]
    pub(crate) fn contents_of(&self, record: u32) -> Vec<u32> {
        self.record(record).iter().map(|slot| slot.load(Ordering::Relaxed)).collect()
    }

    /// Takes one full record: calls `sink(position, index)` for its `batch`
    /// blocks, oldest first, and returns `batch`; 0 when no record is full.
    /// The blocks are then the caller's.
    pub(crate) fn take(&self, mut sink: impl FnMut(u32, u32)) -> u32 {
        let Some(record) = self.full.pop() else {
            return 0;
        };
        for (position, slot) in self.record(record).iter().enumerate() {
            // Relaxed: ordered after the writer's stores by the pop from
            // `full` (Acquire), and before the next writer's by the push on
            // `empty` (Release) below.
            sink(position as u32, slot.load(Ordering::Relaxed));
        }
        // SAFETY: `record` is ours (popped), below `records`.
        unsafe { self.empty.push(record) };
        self.batch
    }

    /// Takes every full record at once (one CAS with Release, see
    /// [`TaggedStack::take_all`]): `sink(index)` for each of their blocks;
    /// returns how many blocks. For trim, which must hold all free blocks.
    pub(crate) fn take_all(&self, mut sink: impl FnMut(u32)) -> u64 {
        // No allocation here: a trim calls this while it holds the class's
        // blocks, and an allocation of that class would wait for itself.
        let mut blocks = 0;
        self.full.take_all(|record| {
            for slot in self.record(record) {
                // Relaxed: ordered by the detach (Acquire), as in `take`.
                sink(slot.load(Ordering::Relaxed));
                blocks += 1;
            }
            // SAFETY: detached from `full`, so ours; `take_all` has read its
            // `full` link already, and `empty` has links of its own.
            unsafe { self.empty.push(record) };
        });
        blocks
    }

    /// Blocks in full records (exact when no transfer is in flight).
    pub(crate) fn blocks(&self) -> u64 {
        self.full.len() * u64::from(self.batch)
    }

    /// Whether no record looked full a moment ago (a hint, as
    /// [`TaggedStack::looks_empty`]).
    pub(crate) fn looks_empty(&self) -> bool {
        self.full.looks_empty()
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    fn memory(records: u32, batch: u32) -> Vec<AtomicU32> {
        (0..Depot::words(records, batch)).map(|_| AtomicU32::new(0)).collect()
    }

    #[test]
    fn batches_come_back_whole_and_in_order() {
        let mem = memory(4, 3);
        // SAFETY: `mem` holds the words for 4 records of 3 and outlives the depot.
        let depot = unsafe { Depot::new(mem.as_ptr(), 4, 3) };
        // SAFETY: distinct indices, nobody else's.
        unsafe {
            assert!(depot.put([7, 8, 9].into_iter()));
            assert!(depot.put([1, 2, 3].into_iter()));
            assert!(!depot.put([4, 5].into_iter()), "a partial batch is refused");
        }
        assert_eq!(depot.blocks(), 6);
        let mut got = [0; 3];
        assert_eq!(depot.take(|p, i| got[p as usize] = i), 3);
        assert_eq!(got, [1, 2, 3], "last in, first out, each batch in its own order");
        assert_eq!(depot.take(|p, i| got[p as usize] = i), 3);
        assert_eq!(got, [7, 8, 9]);
        assert_eq!(depot.take(|_, _| unreachable!()), 0);
        assert_eq!(depot.blocks(), 0);
    }

    #[test]
    fn records_run_out_without_waiting_and_are_reused() {
        let mem = memory(2, 1);
        // SAFETY: as above.
        let depot = unsafe { Depot::new(mem.as_ptr(), 2, 1) };
        // SAFETY: distinct indices.
        unsafe {
            assert!(depot.put([0].into_iter()));
            assert!(depot.put([1].into_iter()));
            assert!(!depot.put([2].into_iter()), "both records are full");
        }
        assert_eq!(depot.take(|_, _| {}), 1);
        // SAFETY: as above.
        assert!(unsafe { depot.put([2].into_iter()) }, "the emptied record is reused");
        let mut all = Vec::new();
        assert_eq!(depot.take_all(|i| all.push(i)), 2);
        all.sort_unstable();
        assert_eq!(all, [0, 2]);
        assert!(depot.looks_empty());
    }

    #[test]
    fn no_depot_takes_nothing() {
        let depot = Depot::none();
        // SAFETY: no blocks are handed over (the put is refused).
        assert!(!unsafe { depot.put([1].into_iter()) });
        assert_eq!(depot.take(|_, _| unreachable!()), 0);
        assert_eq!(Depot::records_for(1000, 0), 0);
        assert_eq!(Depot::records_for(1000, 64), 16 + SLACK);
        assert_eq!(Depot::records_for(u32::MAX, 512), MAX_DEPOT_BLOCKS / 512 + SLACK, "bounded for huge classes");
    }
}
