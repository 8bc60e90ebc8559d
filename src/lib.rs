#![doc = include_str!("../README.md")]

// Layers, bottom up: each module uses only modules listed before it (never
// one after it), and each file's docs say what it owns.
mod sync; //       the only importer of atomics / thread-locals (std or loom)
mod os; //         the only caller of the OS: mmap, madvise, mincore, write, pthread_atfork
mod size_class; // (size, align) -> class, one table load
mod config; //     Builder, Profile, Fallback, ConfigError: validation, no memory
mod class; //      one class's shared state: ClassPool over its runs of free blocks, carver, block states
mod cache; //      per-thread slots and magazines, batch refill / flush
mod region; //     one reservation and its layout, its extensions, address -> (region, class)
mod growth; //     adding extensions when a class runs dry
mod checks; //     misuse detection: block states, poison, reports
mod fork; //       trims and fork exclude each other
mod stats; //      counters snapshot and its table
mod trim; //       giving free pages back to the OS (madvise), safely under load
mod slab; //       SlabAllocator: first use, thread slots, hot path, cold paths
mod global; //     GlobalAlloc and allocator_api2::Allocator glue
mod arena; //      Arena: a lock-free bump arena over its own reservation (uses only sync, os)

#[cfg(all(test, lockfree_slab_loom))]
#[path = "../loom_tests/mod.rs"]
mod loom_tests;

/// The examples in `docs/`, run as doctests like the README's.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../docs/CONFIGURATION.md")]
    struct Configuration;
    #[doc = include_str!("../docs/CORRECTNESS.md")]
    struct Correctness;
}

pub use allocator_api2::alloc::AllocError;
pub use arena::{Arena, ArenaError};
pub use config::{
    Builder, ConfigError, Fallback, Profile, DEFAULT_CACHED_THREADS, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_DEPTH,
    DEFAULT_CAPACITY, GENERAL_CAPACITY, MAX_CACHED_THREADS, MAX_CACHE_DEPTH, MAX_CAPACITY, MAX_GROWTH,
    MAX_SCALED_DEPTH, MAX_TRIM_INTERVAL, MIN_CLASS_SIZE, MIN_SCALED_DEPTH, MIN_TRIM_INTERVAL,
};
pub use global::SlabHandle;
pub use size_class::{natural_alignment, MAX_ALIGN, MAX_CLASSES, MAX_CLASS_SIZE};
pub use slab::SlabAllocator;
pub use stats::{ClassStats, Stats};
pub use trim::TrimReport;
