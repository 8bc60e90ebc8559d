//! Statistics: a snapshot summed from every thread's owner-only magazine
//! counters and the classes' shared counters when [`stats`] is called — the
//! hot path never writes a shared counter — and its `Display` table.
//!
//! Each term of the accounting equation is counted on its own: *carved* by
//! the carver, *free* by the bits of the class's runs, *in caches* by
//! the magazines' lengths, *in use* as allocations minus frees (cache hits are
//! derived from a magazine's block flow, see `MagazineHeader`). So
//! [`ClassStats::is_consistent`] can fail, and the tests rely on that. While other threads work, the
//! snapshot is a mix of slightly different moments; when nothing is in
//! flight it is exact.
//!
//! [`stats`]: crate::SlabAllocator::stats

use core::fmt;

use crate::region::Region;
use crate::sync::{AtomicU64, Ordering};

/// One size class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Bytes per block.
    pub block_size: usize,
    /// Blocks this class may carve (its share of the capacity).
    pub capacity: u64,
    /// Blocks carved so far (handed out at least once).
    pub carved: u64,
    /// Blocks allocated and not yet freed.
    pub in_use: u64,
    /// Free blocks in the shared layer (the class's runs; the name is from
    /// when they were a stack of blocks).
    pub free_in_stack: u64,
    /// Free blocks held in thread caches.
    pub in_caches: u64,
    /// Allocations served from a thread cache without refilling.
    pub cache_hits: u64,
    /// Allocations that found the thread cache empty.
    pub cache_misses: u64,
    /// Batches moved from the shared layer (or carver) into a thread cache.
    pub refills: u64,
    /// Batches moved from a thread cache to the shared layer.
    pub flushes: u64,
    /// Allocations served by threads without a cache (straight from the
    /// shared layer).
    pub uncached_allocations: u64,
    /// Requests of this class sent to the fallback (or refused) because the
    /// class was dry.
    pub fallbacks: u64,
    /// Allocations served from this class, in total.
    pub allocations: u64,
    /// Frees into this class, in total.
    pub frees: u64,
    /// Bytes asked for by those allocations, counted only by an allocator
    /// with [checks](crate::Builder::checks) on (0 otherwise): counting them
    /// would cost every cache hit a store.
    pub requested_bytes: u64,
    /// Bytes handed out for them (`allocations * block_size`).
    pub handed_out_bytes: u64,
}

impl ClassStats {
    /// `carved == in_use + free_in_stack + in_caches`: exact whenever no
    /// operation is in flight.
    pub fn is_consistent(&self) -> bool {
        self.carved == self.in_use + self.free_in_stack + self.in_caches
    }

    /// Share of handed-out bytes lost to rounding up to the block size;
    /// `None` when nothing was measured (no allocation, or checks off: see
    /// [`requested_bytes`](Self::requested_bytes)).
    pub fn internal_fragmentation(&self) -> Option<f64> {
        if self.handed_out_bytes == 0 || self.requested_bytes == 0 {
            None
        } else {
            Some(1.0 - self.requested_bytes as f64 / self.handed_out_bytes as f64)
        }
    }

    fn add(&mut self, other: &ClassStats) {
        self.capacity += other.capacity;
        self.carved += other.carved;
        self.in_use += other.in_use;
        self.free_in_stack += other.free_in_stack;
        self.in_caches += other.in_caches;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.refills += other.refills;
        self.flushes += other.flushes;
        self.uncached_allocations += other.uncached_allocations;
        self.fallbacks += other.fallbacks;
        self.allocations += other.allocations;
        self.frees += other.frees;
        self.requested_bytes += other.requested_bytes;
        self.handed_out_bytes += other.handed_out_bytes;
    }
}

/// A snapshot of the whole allocator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// One entry per size class, ascending.
    pub classes: Vec<ClassStats>,
    /// Sums over all classes (`block_size` is 0).
    pub totals: ClassStats,
    /// Requests no class could serve (too large or over-aligned) that the
    /// system fallback served.
    pub oversize_fallbacks: u64,
    /// Requests no class could serve that were answered with `AllocError`.
    pub oversize_refused: u64,
    /// Threads holding a cache slot right now.
    pub cached_threads: u32,
    /// Capacity in bytes: the configured one, times the number of
    /// reservations (see [`grown_reservations`](Self::grown_reservations)).
    pub capacity_bytes: usize,
    /// Address space reserved (metadata and spans), in bytes, all
    /// reservations together.
    pub reserved_bytes: usize,
    /// Reservations added by [`Builder::growth`](crate::Builder::growth)
    /// since the allocator was built.
    pub grown_reservations: u32,
    /// How many reservations growth may add in all (the configured
    /// `growth`).
    pub growth_limit: u32,
    /// Bytes of physical memory all trims so far (by
    /// [`SlabAllocator::trim`](crate::SlabAllocator::trim) or in the
    /// background) gave back to the OS.
    pub trimmed_bytes: u64,
}

impl Stats {
    /// Every class's accounting adds up (see [`ClassStats::is_consistent`]).
    pub fn is_consistent(&self) -> bool {
        self.classes.iter().all(ClassStats::is_consistent)
    }

    /// Bytes currently handed out from the pool (`in_use * block_size`).
    pub fn bytes_in_use(&self) -> u64 {
        self.classes.iter().map(|c| c.in_use * c.block_size as u64).sum()
    }
}

/// Relaxed reads of the counters, for statistics.
pub(crate) fn load(counter: &AtomicU64) -> u64 {
    // Relaxed: a statistic.
    counter.load(Ordering::Relaxed)
}

/// Sums a region's counters, its growth's included.
pub(crate) fn collect(region: &Region) -> Stats {
    let mut stats = collect_one(region);
    for extension in region.extensions.iter() {
        let grown = collect_one(extension);
        for (class, more) in stats.classes.iter_mut().zip(&grown.classes) {
            class.add(more);
        }
        stats.totals.add(&grown.totals);
        stats.capacity_bytes += grown.capacity_bytes;
        stats.reserved_bytes += grown.reserved_bytes;
        stats.grown_reservations += 1;
    }
    stats
}

/// Sums one region's counters.
fn collect_one(region: &Region) -> Stats {
    let caches = &region.caches;
    let slots = if caches.is_enabled() { caches.map.high_water() } else { 0 };
    let classes: Vec<ClassStats> = region
        .pools()
        .iter()
        .enumerate()
        .map(|(class, pool)| {
            let mut s = ClassStats {
                block_size: pool.block_size(),
                capacity: u64::from(pool.capacity()),
                carved: u64::from(pool.carved()),
                free_in_stack: pool.free_blocks(),
                fallbacks: load(&pool.counters().fallbacks),
                uncached_allocations: load(&pool.counters().uncached_allocs),
                requested_bytes: load(&pool.counters().requested),
                ..ClassStats::default()
            };
            let mut frees = load(&pool.counters().uncached_frees);
            let mut allocations = s.uncached_allocations;
            for slot in 0..slots {
                let m = caches.stats_of(slot, class);
                let hits = m.hits();
                s.in_caches += m.len;
                s.cache_hits += hits;
                s.cache_misses += m.misses;
                s.refills += m.refills;
                s.flushes += m.flushes;
                allocations += hits + m.refills;
                frees += m.frees;
            }
            s.allocations = allocations;
            s.frees = frees;
            s.in_use = allocations.saturating_sub(frees);
            s.handed_out_bytes = allocations * pool.block_size() as u64;
            s
        })
        .collect();
    let mut totals = ClassStats::default();
    for c in &classes {
        totals.add(c);
    }
    Stats {
        classes,
        totals,
        oversize_fallbacks: load(&region.oversize.served),
        oversize_refused: load(&region.oversize.refused),
        cached_threads: if caches.is_enabled() { caches.map.claimed() } else { 0 },
        capacity_bytes: region.capacity(),
        reserved_bytes: region.reserved_bytes(),
        grown_reservations: 0,
        growth_limit: region.extensions.limit() as u32,
        trimmed_bytes: load(&region.trimmed_bytes),
    }
}

/// `bytes` with a binary unit, one decimal (`3.0 MiB`).
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>8} {:>10} {:>10} {:>10} {:>9} {:>8} {:>12} {:>9} {:>8} {:>8} {:>9} {:>6}",
            "class",
            "capacity",
            "carved",
            "in use",
            "stack",
            "caches",
            "hits",
            "misses",
            "refills",
            "flushes",
            "fallback",
            "frag"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, label: String, c: &ClassStats| {
            writeln!(
                f,
                "{:>8} {:>10} {:>10} {:>10} {:>9} {:>8} {:>12} {:>9} {:>8} {:>8} {:>9} {:>6}",
                label,
                c.capacity,
                c.carved,
                c.in_use,
                c.free_in_stack,
                c.in_caches,
                c.cache_hits,
                c.cache_misses,
                c.refills,
                c.flushes,
                c.fallbacks,
                c.internal_fragmentation().map_or("-".to_string(), |f| format!("{:.1}%", 100.0 * f))
            )
        };
        for c in self.classes.iter().filter(|c| c.carved > 0 || c.fallbacks > 0) {
            row(f, format!("{} B", c.block_size), c)?;
        }
        row(f, "total".to_string(), &self.totals)?;
        writeln!(
            f,
            "in use {} of {} capacity ({} reserved); requested {} for {} handed out; \
             {} oversize to fallback, {} refused; {} threads cached",
            human(self.bytes_in_use()),
            human(self.capacity_bytes as u64),
            human(self.reserved_bytes as u64),
            match self.totals.requested_bytes {
                0 => "(not counted without checks)".to_string(),
                bytes => human(bytes),
            },
            human(self.totals.handed_out_bytes),
            self.oversize_fallbacks,
            self.oversize_refused,
            self.cached_threads
        )
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    fn class(carved: u64, in_use: u64, stack: u64, caches: u64) -> ClassStats {
        ClassStats {
            block_size: 64,
            capacity: 100,
            carved,
            in_use,
            free_in_stack: stack,
            in_caches: caches,
            ..Default::default()
        }
    }

    #[test]
    fn consistency_is_the_accounting_equation() {
        assert!(class(10, 4, 5, 1).is_consistent());
        assert!(!class(10, 4, 5, 0).is_consistent(), "a lost block must show");
        assert!(!class(10, 5, 5, 1).is_consistent(), "a duplicated block must show");
    }

    #[test]
    fn fragmentation_is_the_share_lost_to_rounding() {
        let c = ClassStats { requested_bytes: 48, handed_out_bytes: 64, ..Default::default() };
        assert!((c.internal_fragmentation().expect("measured") - 0.25).abs() < 1e-9);
        assert_eq!(ClassStats::default().internal_fragmentation(), None);
        let unmeasured = ClassStats { handed_out_bytes: 64, ..Default::default() };
        assert_eq!(unmeasured.internal_fragmentation(), None, "checks off: requested bytes not counted");
    }

    #[test]
    fn the_table_lists_active_classes_and_totals() {
        let mut s = Stats {
            classes: vec![class(10, 4, 5, 1), ClassStats { block_size: 128, ..Default::default() }],
            ..Default::default()
        };
        s.totals = class(10, 4, 5, 1);
        let text = s.to_string();
        assert!(text.contains("class") && text.contains("in use") && text.contains("total"));
        assert!(text.contains("64 B"), "{text}");
        assert!(!text.contains("128 B"), "idle classes are left out:\n{text}");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
