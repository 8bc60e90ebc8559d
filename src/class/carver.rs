//! The carver: one atomic bump frontier per class that turns never-used span
//! into blocks, a batch at a time.
//!
//! Blocks below the frontier have been handed out at least once; blocks at or
//! above it have never been touched, so their pages may still be
//! uncommitted (and read as zero). A class carves only when its stack is dry,
//! which keeps the working set compact: freed blocks are reused before new
//! pages are touched.

use core::ops::Range;

use crate::sync::{AtomicUsize, CachePadded, Ordering};

/// The never-used tail of one class's blocks `frontier..capacity`.
pub(crate) struct Carver {
    /// Next never-used block index. May overshoot `capacity` by the batches
    /// of threads that raced past the end; readers clamp. `usize` so that
    /// overshoot can never wrap.
    frontier: CachePadded<AtomicUsize>,
    capacity: u32,
}

impl Carver {
    pub(crate) fn new(capacity: u32) -> Self {
        Carver { frontier: CachePadded::new(AtomicUsize::new(0)), capacity }
    }

    /// Claims up to `max` never-used blocks; empty when the class is carved
    /// out. One read-modify-write, no loop.
    #[inline]
    pub(crate) fn carve(&self, max: u32) -> Range<u32> {
        let capacity = self.capacity as usize;
        // Relaxed (both): carved blocks are fresh memory that no thread has
        // written, so there is nothing to synchronise with; the fetch_add's
        // atomicity alone keeps two threads from claiming the same index.
        // The load only keeps a dry class from pushing the frontier further.
        if self.frontier.load(Ordering::Relaxed) >= capacity {
            return 0..0;
        }
        let start = self.frontier.fetch_add(max as usize, Ordering::Relaxed);
        let end = (start + max as usize).min(capacity);
        if start >= end {
            return 0..0;
        }
        start as u32..end as u32
    }

    /// Blocks carved so far (never more than the capacity).
    pub(crate) fn carved(&self) -> u32 {
        // Relaxed: a statistic.
        self.frontier.load(Ordering::Relaxed).min(self.capacity as usize) as u32
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn carves_exactly_the_capacity() {
        let c = Carver::new(10);
        assert_eq!(c.carve(4), 0..4);
        assert_eq!(c.carve(4), 4..8);
        assert_eq!(c.carve(4), 8..10);
        assert_eq!(c.carved(), 10);
        assert_eq!(c.carve(4), 0..0);
        assert_eq!(c.carved(), 10);
    }

    #[test]
    #[cfg_attr(miri, ignore = "thread-heavy; loom covers the race")]
    fn racing_threads_carve_disjoint_ranges() {
        let c = std::sync::Arc::new(Carver::new(10_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut got = vec![];
                    loop {
                        let r = c.carve(7);
                        if r.is_empty() {
                            return got;
                        }
                        got.extend(r);
                    }
                })
            })
            .collect();
        let mut all: Vec<u32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    }
}
