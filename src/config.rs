//! Configuration: [`Builder`], the reference [`Profile`]s, [`Fallback`] and
//! every way a configuration can be wrong ([`ConfigError`]).
//!
//! This module only validates; it touches no memory. [`Builder::build`] hands
//! a [`ValidConfig`] to the region, which reserves and lays out the memory.
//!
//! Precedence: a value set explicitly on the builder wins over the value the
//! chosen profile suggests, which wins over the crate default, whatever the
//! order of the calls.

use core::fmt;

use crate::size_class::{GRANULE, MAX_CLASSES, MAX_CLASS_SIZE};

/// Smallest block size: a block must hold at least one machine word.
pub const MIN_CLASS_SIZE: usize = 8;
/// Default pool capacity: 1 GiB of address space, committed on first touch.
pub const DEFAULT_CAPACITY: usize = 1 << 30;
/// Capacity of [`Profile::General`]: 64 GiB of address space. Only touched
/// pages are committed, so this costs nothing until used; it keeps every one
/// of the 56 classes (about 1.1 GiB each) from running dry in ordinary
/// programs, which matters most when the allocator is the global one.
pub const GENERAL_CAPACITY: usize = 64 << 30;
/// Default per-thread, per-class magazine depth (blocks).
pub const DEFAULT_CACHE_DEPTH: usize = 64;
/// Largest accepted magazine depth.
pub const MAX_CACHE_DEPTH: usize = 4096;
/// Default byte budget of one magazine: small classes get deeper magazines
/// (up to [`MAX_SCALED_DEPTH`] blocks), large ones shallower (down to
/// [`MIN_SCALED_DEPTH`]), so that no thread keeps more than about this much
/// of one class to itself.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 10;
/// Deepest magazine that `cache_bytes` scaling gives a class.
pub const MAX_SCALED_DEPTH: usize = 1024;
/// Shallowest magazine that `cache_bytes` scaling gives a class (one whose
/// blocks are larger than half the budget).
pub const MIN_SCALED_DEPTH: usize = 2;
/// Default number of threads that get a private cache; further threads are
/// served straight from the shared stacks.
pub const DEFAULT_CACHED_THREADS: usize = 256;
/// Largest accepted number of cached threads.
pub const MAX_CACHED_THREADS: usize = 4096;
/// Shortest interval [`Builder::background_trim`] accepts.
pub const MIN_TRIM_INTERVAL: core::time::Duration = core::time::Duration::from_millis(10);
/// Longest interval [`Builder::background_trim`] accepts (a day): anything
/// longer is almost certainly a unit mistake, and never trimming is the
/// default anyway.
pub const MAX_TRIM_INTERVAL: core::time::Duration = core::time::Duration::from_secs(24 * 60 * 60);
/// Most extra reservations [`Builder::growth`] may add to the first.
pub const MAX_GROWTH: usize = 15;
/// Largest accepted capacity (1 TiB): spans are laid out in one reservation.
pub const MAX_CAPACITY: usize = 1 << 40;

/// What the allocator does with a request it cannot serve from its pool: a
/// size larger than the largest class, an alignment no class can give, or a
/// class whose share of the pool is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fallback {
    /// Forward the request to [`std::alloc::System`]; `deallocate` recognises
    /// such pointers by address and returns them there.
    System,
    /// Answer with [`AllocError`](crate::AllocError).
    Error,
}

/// The reference configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// General purpose (the default): 64 GiB of address space (committed
    /// on touch), 56 classes from 8 B to 256 KiB, stepping
    /// by 8 B up to 64 B, by 16 B up to 128 B, then four steps per doubling.
    /// Rounding up wastes at most 7 bytes below 24 B (the 8-byte granule),
    /// at most 25 % of a block above 24 B and at most 20 % above 64 B. An
    /// explicit capacity is split evenly and must hold a block of every
    /// class: at least 14 MiB.
    #[default]
    General,
    /// One 16-byte class: the most blocks per byte and the shortest path.
    MaxThroughput,
    /// One 4096-byte class: page-sized, page-aligned blocks.
    MinOverhead,
    /// 64, 256 and 1024 B at 60 / 30 / 10 %.
    Balanced,
    /// 32 and 128 B at 80 / 20 %, pages committed up front.
    LatencyOptimised,
    /// Packet buffers: 64 B headers, 256 B small frames, 1536 B Ethernet
    /// frames, 9216 B jumbo frames at 30 / 30 / 30 / 10 %.
    Network,
    /// A small, fixed budget: 16–256 B in 1 MiB, committed up front, no
    /// system fallback, shallow caches.
    Embedded,
}

impl Profile {
    /// All profiles, for tables and tests.
    pub const ALL: [Profile; 7] = [
        Profile::General,
        Profile::MaxThroughput,
        Profile::MinOverhead,
        Profile::Balanced,
        Profile::LatencyOptimised,
        Profile::Network,
        Profile::Embedded,
    ];

    /// The block sizes of this profile, ascending.
    pub fn size_classes(self) -> Vec<usize> {
        match self {
            Profile::General => general_classes(),
            Profile::MaxThroughput => vec![16],
            Profile::MinOverhead => vec![4096],
            Profile::Balanced => vec![64, 256, 1024],
            Profile::LatencyOptimised => vec![32, 128],
            Profile::Network => vec![64, 256, 1536, 9216],
            Profile::Embedded => vec![16, 32, 64, 128, 256],
        }
    }

    /// Relative shares of capacity per class (they need not sum to 100).
    fn weights(self) -> Vec<u32> {
        match self {
            Profile::General => vec![1; general_classes().len()],
            Profile::MaxThroughput | Profile::MinOverhead => vec![100],
            Profile::Balanced => vec![60, 30, 10],
            Profile::LatencyOptimised => vec![80, 20],
            Profile::Network => vec![30, 30, 30, 10],
            Profile::Embedded => vec![20; 5],
        }
    }

    fn capacity(self) -> usize {
        match self {
            Profile::General => GENERAL_CAPACITY,
            Profile::Embedded => 1 << 20,
            _ => DEFAULT_CAPACITY,
        }
    }

    fn populate(self) -> bool {
        matches!(self, Profile::LatencyOptimised | Profile::Embedded)
    }

    fn cache_depth(self) -> usize {
        match self {
            Profile::Embedded => 16,
            _ => DEFAULT_CACHE_DEPTH,
        }
    }

    fn cache_bytes(self) -> usize {
        match self {
            Profile::Embedded => 0,
            _ => DEFAULT_CACHE_BYTES,
        }
    }

    fn fallback(self) -> Fallback {
        match self {
            Profile::Embedded => Fallback::Error,
            _ => Fallback::System,
        }
    }
}

/// The general-purpose classes: 8..=64 by 8, 80..=128 by 16, then four steps
/// per power of two up to 256 KiB. 56 classes: larger requests are rare
/// enough, and large enough, for the fallback (glibc maps them on their own).
fn general_classes() -> Vec<usize> {
    let mut classes: Vec<usize> = (1..=8).map(|i| i * 8).collect();
    classes.extend([80, 96, 112, 128]);
    let mut base = 128;
    while base < 256 * 1024 {
        let step = base / 4;
        classes.extend((1..=4).map(|i| base + i * step));
        base *= 2;
    }
    classes
}

/// Every way a configuration can be rejected. Each message says what to
/// change; the fields carry the offending values (sizes in bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // fields: the offending values, named in each message
pub enum ConfigError {
    /// `size_classes(&[])`.
    NoSizeClasses,
    /// More classes than the allocator supports.
    TooManyClasses { count: usize, max: usize },
    /// A class below [`MIN_CLASS_SIZE`].
    ClassTooSmall { size: usize },
    /// A class that is not a multiple of 8.
    ClassNotMultipleOf8 { size: usize },
    /// A class above the largest supported block size.
    ClassTooLarge { size: usize, max: usize },
    /// Classes given out of order or twice.
    ClassesNotAscending { previous: usize, next: usize },
    /// `split` has a different length than the class list.
    SplitLengthMismatch { classes: usize, split: usize },
    /// `split` percentages do not add up to 100.
    SplitNotHundred { sum: u32 },
    /// A class given 0 % of the pool.
    ZeroShare { class: usize },
    /// A class's share of the capacity holds less than one block.
    CapacityTooSmall { class: usize, share: usize },
    /// Capacity above [`MAX_CAPACITY`].
    CapacityTooLarge { capacity: usize, max: usize },
    /// A class would have more blocks than a 32-bit block index can name.
    TooManyBlocks { class: usize, blocks: usize },
    /// A magazine depth outside `0` or `2..=MAX_CACHE_DEPTH`.
    InvalidCacheDepth { depth: usize },
    /// `max_cached_threads` outside `1..=MAX_CACHED_THREADS`.
    InvalidCachedThreads { threads: usize },
    /// A `background_trim` interval below [`MIN_TRIM_INTERVAL`].
    TrimIntervalTooShort { interval: core::time::Duration },
    /// A `background_trim` interval above [`MAX_TRIM_INTERVAL`].
    TrimIntervalTooLong { interval: core::time::Duration },
    /// `growth` above [`MAX_GROWTH`].
    TooMuchGrowth { extensions: usize, max: usize },
    /// The operating system refused the address-space reservation.
    ReserveFailed { bytes: usize, errno: i32 },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::NoSizeClasses => write!(
                f,
                "no size classes given: pass at least one block size to `size_classes`, or pick a `Profile`"
            ),
            ConfigError::TooManyClasses { count, max } => write!(
                f,
                "{count} size classes given, at most {max} are supported: merge neighbouring classes"
            ),
            ConfigError::ClassTooSmall { size } => write!(
                f,
                "size class {size} B is smaller than the minimum {MIN_CLASS_SIZE} B: raise it to at least {MIN_CLASS_SIZE}"
            ),
            ConfigError::ClassNotMultipleOf8 { size } => write!(
                f,
                "size class {size} B is not a multiple of {GRANULE}: use {} B instead",
                size.next_multiple_of(GRANULE)
            ),
            ConfigError::ClassTooLarge { size, max } => write!(
                f,
                "size class {size} B exceeds the largest supported class ({max} B): leave larger requests to the fallback"
            ),
            ConfigError::ClassesNotAscending { previous, next } => write!(
                f,
                "size classes must be strictly ascending, but {next} B follows {previous} B: sort them and remove duplicates"
            ),
            ConfigError::SplitLengthMismatch { classes, split } => write!(
                f,
                "split has {split} entries for {classes} size classes: give exactly one percentage per class"
            ),
            ConfigError::SplitNotHundred { sum } => write!(
                f,
                "split percentages add up to {sum}, not 100: adjust them so they sum to exactly 100"
            ),
            ConfigError::ZeroShare { class } => write!(
                f,
                "size class {class} B was given 0 % of the pool: give it at least 1 % or remove the class"
            ),
            ConfigError::CapacityTooSmall { class, share } => write!(
                f,
                "size class {class} B gets {share} B of the capacity, less than one block: raise `capacity` or that class's split"
            ),
            ConfigError::CapacityTooLarge { capacity, max } => write!(
                f,
                "capacity {capacity} B exceeds the supported maximum of {max} B: lower `capacity`"
            ),
            ConfigError::TooManyBlocks { class, blocks } => write!(
                f,
                "size class {class} B would hold {blocks} blocks, more than a 32-bit index can name: lower `capacity` or that class's split"
            ),
            ConfigError::InvalidCacheDepth { depth } => write!(
                f,
                "cache depth {depth} is invalid: use 0 (no thread caches) or 2..={MAX_CACHE_DEPTH}"
            ),
            ConfigError::InvalidCachedThreads { threads } => write!(
                f,
                "max_cached_threads {threads} is invalid: use 1..={MAX_CACHED_THREADS} (threads beyond it are served uncached)"
            ),
            ConfigError::TrimIntervalTooShort { interval } => write!(
                f,
                "background trim every {interval:?} would keep a core busy: use at least {MIN_TRIM_INTERVAL:?} (trim walks every free block)"
            ),
            ConfigError::TrimIntervalTooLong { interval } => write!(
                f,
                "background trim every {interval:?} is longer than {MAX_TRIM_INTERVAL:?}: use a shorter interval, or leave `background_trim` off (the default) and call `trim()` yourself"
            ),
            ConfigError::TooMuchGrowth { extensions, max } => write!(
                f,
                "growth of {extensions} extra reservations is more than the {max} allowed: raise `capacity` instead, so each reservation holds more"
            ),
            ConfigError::ReserveFailed { bytes, errno } => write!(
                f,
                "the OS refused to reserve {bytes} B of address space (errno {errno}): lower `capacity` or raise the process's address-space limit (ulimit -v)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A checked configuration, ready to be laid out in memory; returned by
/// [`Builder::validate`] so a configuration can be checked without reserving
/// memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidConfig {
    /// Block sizes, strictly ascending multiples of 8.
    pub(crate) classes: Vec<usize>,
    /// Blocks each class may carve (its share of the capacity).
    pub(crate) blocks: Vec<u32>,
    pub(crate) capacity: usize,
    pub(crate) populate: bool,
    pub(crate) cache_depth: usize,
    /// Byte budget per magazine (0: every class gets `cache_depth`).
    pub(crate) cache_bytes: usize,
    pub(crate) cached_threads: usize,
    pub(crate) fallback: Fallback,
    /// Advise the kernel to back the spans with transparent huge pages.
    pub(crate) huge_pages: bool,
    /// Detect misuse (double free, bad pointers, writes after free).
    pub(crate) checks: bool,
    /// Extra reservations a class that runs dry may add (0: none).
    pub(crate) growth: usize,
    /// Trim in a background thread at this interval (`None`: never).
    pub(crate) trim_interval: Option<core::time::Duration>,
}

impl ValidConfig {
    /// The magazine depth of each class (see [`Builder::cache_bytes`]).
    pub(crate) fn class_depths(&self) -> Vec<usize> {
        self.classes
            .iter()
            .map(|&size| match (self.cache_depth, self.cache_bytes) {
                (0, _) => 0,
                (depth, 0) => depth,
                (depth, bytes) => match bytes / size {
                    fits if fits >= depth => fits.min(MAX_SCALED_DEPTH).max(depth),
                    fits => fits.max(MIN_SCALED_DEPTH),
                },
            })
            .collect()
    }
}

/// Builds a [`SlabAllocator`](crate::SlabAllocator); see the crate docs for
/// an example. Every setting is optional.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    profile: Profile,
    classes: Option<Vec<usize>>,
    split: Option<Vec<u8>>,
    capacity: Option<usize>,
    populate: Option<bool>,
    cache_depth: Option<usize>,
    cache_bytes: Option<usize>,
    cached_threads: Option<usize>,
    fallback: Option<Fallback>,
    huge_pages: bool,
    checks: Option<bool>,
    growth: usize,
    trim_interval: Option<core::time::Duration>,
}

impl Builder {
    /// A builder with the [`Profile::General`] defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from a reference configuration: its classes and split, and its
    /// suggested capacity, populate, cache depth and fallback (each of which an
    /// explicit call overrides).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Explicit block sizes (bytes), strictly ascending multiples of 8.
    /// Without [`split`](Self::split) the capacity is divided evenly.
    pub fn size_classes(mut self, classes: &[usize]) -> Self {
        self.classes = Some(classes.to_vec());
        self
    }

    /// Percent of the capacity per class, one entry per class, summing to 100.
    pub fn split(mut self, percent: &[u8]) -> Self {
        self.split = Some(percent.to_vec());
        self
    }

    /// Total bytes of blocks the pool may hold, across all classes.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Commit every page of the pool in `build()`: afterwards no page fault and
    /// no system call happens for work within capacity.
    pub fn populate(mut self, populate: bool) -> Self {
        self.populate = Some(populate);
        self
    }

    /// Blocks each thread may keep per class (0 disables thread caches). Half
    /// a magazine moves to or from the shared layer at a time. Set
    /// explicitly, it is every class's depth exactly, unless
    /// [`cache_bytes`](Self::cache_bytes) is set too.
    pub fn cache_depth(mut self, depth: usize) -> Self {
        self.cache_depth = Some(depth);
        self
    }

    /// A byte budget per magazine, which scales each class's depth to its
    /// block size: a class of `size`-byte blocks keeps `bytes / size` blocks
    /// per thread, at least `cache_depth` when that many fit the budget (at
    /// most [`MAX_SCALED_DEPTH`], or `cache_depth` if larger), and at least
    /// [`MIN_SCALED_DEPTH`] when fewer do. So small classes absorb larger
    /// bursts without touching the shared layer, and a thread never holds
    /// more than about `bytes` of a large class that other threads could
    /// use. The profiles default to 64 KiB ([`Profile::Embedded`]: 0, a
    /// uniform depth); 0 turns scaling off.
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = Some(bytes);
        self
    }

    /// How many threads at once get a private cache; further threads are still
    /// served, straight from the shared stacks.
    pub fn max_cached_threads(mut self, threads: usize) -> Self {
        self.cached_threads = Some(threads);
        self
    }

    /// What to do when a request can't be served from the pool.
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Ask the kernel to back the blocks' spans with transparent huge pages
    /// (`madvise(MADV_HUGEPAGE)`, Linux), which cuts TLB misses when many
    /// blocks are touched. Off by default. This is advice, not a demand: a
    /// kernel without THP support, or with THP set to `never`, ignores it and
    /// `build()` still succeeds with ordinary pages; even with THP on, the
    /// kernel grants huge pages only where it has them. Huge pages commit
    /// memory 2 MiB at a time, so a lightly used pool may take more RSS.
    pub fn huge_pages(mut self, huge_pages: bool) -> Self {
        self.huge_pages = huge_pages;
        self
    }

    /// Detect misuse at the call that causes it (see the crate docs,
    /// "Checks"): double frees (also two racing ones), pointers that are not
    /// the start of a block, pointers that are not this allocator's where
    /// that can be known, and writes to a block after it was freed (freed
    /// blocks are poisoned, and the poison is verified when the block is
    /// handed out again). Misuse panics with a message naming the kind, the
    /// class, the block index and the address (`GlobalAlloc` aborts instead,
    /// as unwinding out of a global allocator is undefined behaviour).
    ///
    /// Off by default, unless the crate's `checks` cargo feature is enabled.
    /// Off, it costs nothing: a checked allocator's operations take the cold
    /// path, and an unchecked one's never look at the setting. On, every
    /// operation does one atomic read-modify-write on the block's state
    /// byte and writes or reads the whole block once.
    pub fn checks(mut self, checks: bool) -> Self {
        self.checks = Some(checks);
        self
    }

    /// For users who do not know their peak: when a class has used up its
    /// share, reserve another region like the first (same classes, split and
    /// capacity; address space only, committed as it is used), up to
    /// `extensions` more reservations in all, before taking the
    /// [`fallback`](Self::fallback). 0 (the default) means never grow.
    ///
    /// Blocks of the extra reservations are found from their address in
    /// O(1) (one compare per reservation, at most [`MAX_GROWTH`]); they do
    /// not pass through the thread caches, so each of their operations costs
    /// an atomic on the shared stack (see docs/CONFIGURATION.md, "Growing past the first reservation").
    pub fn growth(mut self, extensions: usize) -> Self {
        self.growth = extensions;
        self
    }

    /// Trim in the background: a thread (`lockfree-trim`) calls
    /// [`SlabAllocator::trim`](crate::SlabAllocator::trim) every `interval`
    /// ([`MIN_TRIM_INTERVAL`]..=[`MAX_TRIM_INTERVAL`], else `build` returns
    /// a [`ConfigError`]) for as long as the allocator lives, for servers
    /// whose load comes in waves. Off by default; only for allocators built
    /// with [`build`](Self::build) (a `const` allocator cannot spawn a thread
    /// from inside its first allocation). The thread holds a weak reference
    /// and is woken when the allocator drops: it exits then (after the trim
    /// it may be in the middle of), not at the end of its interval.
    /// What it released shows in [`Stats::trimmed_bytes`](crate::Stats::trimmed_bytes).
    pub fn background_trim(mut self, interval: core::time::Duration) -> Self {
        self.trim_interval = Some(interval);
        self
    }

    /// Checks the configuration without reserving memory.
    pub fn validate(&self) -> Result<ValidConfig, ConfigError> {
        let classes = self.classes.clone().unwrap_or_else(|| self.profile.size_classes());
        validate_classes(&classes)?;
        let weights = match (&self.split, &self.classes) {
            (Some(split), _) => validate_split(split, classes.len(), &classes)?,
            (None, Some(_)) => vec![1; classes.len()],
            (None, None) => self.profile.weights(),
        };
        // The profile's capacity fits the profile's classes; explicit classes
        // get the plain default.
        let capacity = self.capacity.unwrap_or_else(|| match self.classes {
            Some(_) => DEFAULT_CAPACITY,
            None => self.profile.capacity(),
        });
        if capacity > MAX_CAPACITY {
            return Err(ConfigError::CapacityTooLarge { capacity, max: MAX_CAPACITY });
        }
        let blocks = shares(&classes, &weights, capacity)?;
        let cache_depth = self.cache_depth.unwrap_or_else(|| self.profile.cache_depth());
        if cache_depth == 1 || cache_depth > MAX_CACHE_DEPTH {
            return Err(ConfigError::InvalidCacheDepth { depth: cache_depth });
        }
        // An explicit depth means exactly that depth unless a byte budget is
        // given as well.
        let cache_bytes = self.cache_bytes.unwrap_or(match self.cache_depth {
            Some(_) => 0,
            None => self.profile.cache_bytes(),
        });
        let cached_threads = self.cached_threads.unwrap_or(DEFAULT_CACHED_THREADS);
        if cached_threads == 0 || cached_threads > MAX_CACHED_THREADS {
            return Err(ConfigError::InvalidCachedThreads { threads: cached_threads });
        }
        match self.trim_interval {
            Some(interval) if interval < MIN_TRIM_INTERVAL => {
                return Err(ConfigError::TrimIntervalTooShort { interval })
            }
            Some(interval) if interval > MAX_TRIM_INTERVAL => {
                return Err(ConfigError::TrimIntervalTooLong { interval })
            }
            _ => {}
        }
        if self.growth > MAX_GROWTH {
            return Err(ConfigError::TooMuchGrowth { extensions: self.growth, max: MAX_GROWTH });
        }
        Ok(ValidConfig {
            classes,
            blocks,
            capacity,
            populate: self.populate.unwrap_or_else(|| self.profile.populate()),
            cache_depth,
            cache_bytes,
            cached_threads,
            fallback: self.fallback.unwrap_or_else(|| self.profile.fallback()),
            huge_pages: self.huge_pages,
            checks: self.checks.unwrap_or(cfg!(feature = "checks")),
            growth: self.growth,
            trim_interval: self.trim_interval,
        })
    }
}

fn validate_classes(classes: &[usize]) -> Result<(), ConfigError> {
    if classes.is_empty() {
        return Err(ConfigError::NoSizeClasses);
    }
    if classes.len() > MAX_CLASSES {
        return Err(ConfigError::TooManyClasses { count: classes.len(), max: MAX_CLASSES });
    }
    for (i, &size) in classes.iter().enumerate() {
        if size < MIN_CLASS_SIZE {
            return Err(ConfigError::ClassTooSmall { size });
        }
        if size % GRANULE != 0 {
            return Err(ConfigError::ClassNotMultipleOf8 { size });
        }
        if size > MAX_CLASS_SIZE {
            return Err(ConfigError::ClassTooLarge { size, max: MAX_CLASS_SIZE });
        }
        if i > 0 && classes[i - 1] >= size {
            return Err(ConfigError::ClassesNotAscending { previous: classes[i - 1], next: size });
        }
    }
    Ok(())
}

fn validate_split(split: &[u8], count: usize, classes: &[usize]) -> Result<Vec<u32>, ConfigError> {
    if split.len() != count {
        return Err(ConfigError::SplitLengthMismatch { classes: count, split: split.len() });
    }
    let sum: u32 = split.iter().map(|&p| u32::from(p)).sum();
    if sum != 100 {
        return Err(ConfigError::SplitNotHundred { sum });
    }
    if let Some(i) = split.iter().position(|&p| p == 0) {
        return Err(ConfigError::ZeroShare { class: classes[i] });
    }
    Ok(split.iter().map(|&p| u32::from(p)).collect())
}

/// Blocks per class: `capacity * weight / total`, rounded down to whole blocks.
fn shares(classes: &[usize], weights: &[u32], capacity: usize) -> Result<Vec<u32>, ConfigError> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    classes
        .iter()
        .zip(weights)
        .map(|(&class, &weight)| {
            let share = (capacity as u128 * u128::from(weight) / total) as usize;
            let blocks = share / class;
            if blocks == 0 {
                return Err(ConfigError::CapacityTooSmall { class, share });
            }
            // Block indices are u32, and u32::MAX stays unused (a "none").
            u32::try_from(blocks).ok().filter(|&b| b < u32::MAX).ok_or(ConfigError::TooManyBlocks { class, blocks })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(b: Builder) -> ConfigError {
        b.validate().expect_err("configuration should be rejected")
    }

    #[test]
    fn every_profile_validates() {
        for p in Profile::ALL {
            let c = Builder::new().profile(p).validate().unwrap();
            assert_eq!(c.classes, p.size_classes());
            assert!(c.blocks.iter().all(|&b| b > 0));
        }
    }

    #[test]
    fn general_needs_14_mib_for_a_block_of_every_class() {
        let general = |capacity| Builder::new().capacity(capacity).validate();
        assert_eq!(general(14 << 20).unwrap().blocks.last(), Some(&1));
        assert!(matches!(
            general((14 << 20) - 1),
            Err(ConfigError::CapacityTooSmall { class: 262_144, share }) if share < 262_144
        ));
    }

    #[test]
    fn general_classes_waste_at_most_25_percent() {
        let classes = general_classes();
        assert_eq!(classes.len(), 56);
        assert_eq!(*classes.last().unwrap(), 256 * 1024);
        // Any request above the smallest class rounds up to the next class;
        // the worst case is one byte past the previous class.
        for w in classes.windows(2) {
            let (prev, next) = (w[0], w[1]);
            let waste = (next - (prev + 1)) as f64 / next as f64;
            // Below 24 B the 8-byte granule (the minimum alignment step)
            // bounds the waste to 7 bytes instead.
            assert!(next - (prev + 1) < GRANULE || prev >= 64, "{prev}->{next} steps by more than a granule");
            if prev >= 24 {
                assert!(waste <= 0.25, "{prev}->{next} wastes {waste}");
            }
            if prev >= 64 {
                assert!(waste <= 0.20, "{prev}->{next} wastes {waste}");
            }
        }
    }

    #[test]
    fn a_byte_budget_deepens_small_magazines_and_bounds_large_ones() {
        let depths =
            |b: Builder| b.size_classes(&[8, 64, 1024, 4096, 32768, 262144]).validate().unwrap().class_depths();
        // The default: 64 blocks, scaled to a 64 KiB budget.
        assert_eq!(depths(Builder::new()), [1024, 1024, 64, 16, 2, 2]);
        // Never below `cache_depth` where that many fit the budget.
        assert_eq!(depths(Builder::new().cache_depth(128).cache_bytes(1 << 20)), [1024, 1024, 1024, 256, 32, 4]);
        assert_eq!(depths(Builder::new().cache_depth(2048).cache_bytes(1 << 20)), [2048, 2048, 1024, 256, 32, 4]);
        // No budget: every class gets `cache_depth`; no depth: no caches.
        assert_eq!(depths(Builder::new().cache_depth(64)), [64; 6]);
        assert_eq!(depths(Builder::new().cache_depth(0)), [0; 6]);
    }

    #[test]
    fn split_is_applied_in_percent() {
        let c = Builder::new().size_classes(&[64, 256]).split(&[75, 25]).capacity(1 << 20).validate().unwrap();
        assert_eq!(c.blocks, vec![(3 << 18) / 64, (1 << 18) / 256]);
    }

    #[test]
    fn huge_pages_are_off_unless_asked_for() {
        for p in Profile::ALL {
            assert!(!Builder::new().profile(p).validate().unwrap().huge_pages, "{p:?}");
            assert!(Builder::new().huge_pages(true).profile(p).validate().unwrap().huge_pages, "{p:?}");
        }
        assert!(!Builder::new().huge_pages(true).huge_pages(false).validate().unwrap().huge_pages);
    }

    #[test]
    fn explicit_settings_override_profile_whatever_the_order() {
        let c = Builder::new().capacity(4 << 20).populate(false).profile(Profile::Embedded).validate().unwrap();
        assert_eq!(c.capacity, 4 << 20);
        assert!(!c.populate);
        assert_eq!(c.fallback, Fallback::Error); // from the profile
    }

    #[test]
    fn each_error_variant_is_reached_and_says_what_to_change() {
        let cases: Vec<(Builder, ConfigError, &str)> = vec![
            (Builder::new().size_classes(&[]), ConfigError::NoSizeClasses, "at least one"),
            (
                Builder::new().size_classes(&(1..=65).map(|i| i * 8).collect::<Vec<_>>()),
                ConfigError::TooManyClasses { count: 65, max: 64 },
                "merge",
            ),
            (Builder::new().size_classes(&[0]), ConfigError::ClassTooSmall { size: 0 }, "at least 8"),
            (Builder::new().size_classes(&[20]), ConfigError::ClassNotMultipleOf8 { size: 20 }, "use 24 B"),
            (
                Builder::new().size_classes(&[2 << 20]),
                ConfigError::ClassTooLarge { size: 2 << 20, max: MAX_CLASS_SIZE },
                "fallback",
            ),
            (
                Builder::new().size_classes(&[64, 32]),
                ConfigError::ClassesNotAscending { previous: 64, next: 32 },
                "sort",
            ),
            (
                Builder::new().size_classes(&[64, 64]),
                ConfigError::ClassesNotAscending { previous: 64, next: 64 },
                "duplicates",
            ),
            (
                Builder::new().size_classes(&[64, 128]).split(&[100]),
                ConfigError::SplitLengthMismatch { classes: 2, split: 1 },
                "one percentage per class",
            ),
            (
                Builder::new().size_classes(&[64, 128]).split(&[60, 30]),
                ConfigError::SplitNotHundred { sum: 90 },
                "exactly 100",
            ),
            (
                Builder::new().size_classes(&[64, 128]).split(&[100, 0]),
                ConfigError::ZeroShare { class: 128 },
                "at least 1 %",
            ),
            (
                Builder::new().size_classes(&[64, 4096]).split(&[99, 1]).capacity(100_000),
                ConfigError::CapacityTooSmall { class: 4096, share: 1000 },
                "raise `capacity`",
            ),
            (
                Builder::new().capacity(MAX_CAPACITY + 1),
                ConfigError::CapacityTooLarge { capacity: MAX_CAPACITY + 1, max: MAX_CAPACITY },
                "lower `capacity`",
            ),
            (
                Builder::new().size_classes(&[8]).capacity(64 << 30),
                ConfigError::TooManyBlocks { class: 8, blocks: 8 << 30 },
                "32-bit",
            ),
            (Builder::new().cache_depth(1), ConfigError::InvalidCacheDepth { depth: 1 }, "0 (no thread caches)"),
            (
                Builder::new().cache_depth(MAX_CACHE_DEPTH + 1),
                ConfigError::InvalidCacheDepth { depth: MAX_CACHE_DEPTH + 1 },
                "2..=4096",
            ),
            (Builder::new().max_cached_threads(0), ConfigError::InvalidCachedThreads { threads: 0 }, "served uncached"),
            (
                Builder::new().growth(16),
                ConfigError::TooMuchGrowth { extensions: 16, max: MAX_GROWTH },
                "raise `capacity`",
            ),
            (
                Builder::new().background_trim(core::time::Duration::from_millis(1)),
                ConfigError::TrimIntervalTooShort { interval: core::time::Duration::from_millis(1) },
                "at least 10ms",
            ),
            (
                Builder::new().background_trim(core::time::Duration::MAX),
                ConfigError::TrimIntervalTooLong { interval: core::time::Duration::MAX },
                "leave `background_trim` off",
            ),
        ];
        for (builder, expected, hint) in cases {
            let got = err(builder);
            assert_eq!(got, expected);
            let msg = got.to_string();
            assert!(msg.contains(hint), "message {msg:?} lacks hint {hint:?}");
        }
        // The OS error variant is reached by `build`; see the allocator tests.
        let msg = ConfigError::ReserveFailed { bytes: 1, errno: 12 }.to_string();
        assert!(msg.contains("lower `capacity`"));
    }
}
