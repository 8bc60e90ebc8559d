#![doc = include_str!("../README.md")]

// Layers, bottom up: each module uses only modules above it in this list
// (never one below), and each file's docs say what it owns.
mod arena;
mod cache; //      per-thread magazines, batch refill / flush, slot map
mod checks; //     misuse detection: poison, reports
mod class; //      one class's shared state: ClassPool, tagged stack, carver, block states
mod config; //     Builder, Profile, Fallback, ConfigError: validation, no memory
mod fork; //       trims and fork exclude each other
mod global; //     GlobalAlloc and allocator_api2::Allocator glue
mod growth; //     further reservations when a class runs dry
mod os; //         the only caller of the OS: mmap, madvise, mincore, pthread_atfork
mod region; //     one reservation and its layout, address -> class
mod size_class; // (size, align) -> class, one table load
mod slab; //       SlabAllocator: first use, thread slots, hot path, cold paths
mod stats; //      counters snapshot and its table
mod sync; //       the only importer of atomics / thread-locals (std or loom)
mod trim; //       giving free pages back to the OS (madvise), safely under load //      Arena: a lock-free bump arena over its own reservation (uses only sync, os)

#[cfg(all(test, lockfree_slab_loom))]
#[path = "../loom_tests/mod.rs"]
mod loom_tests;

pub use allocator_api2::alloc::AllocError;
pub use arena::{Arena, ArenaError};
pub use config::{
    Builder, ConfigError, Fallback, Profile, DEFAULT_CACHED_THREADS, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_DEPTH,
    DEFAULT_CAPACITY, GENERAL_CAPACITY, MAX_CACHED_THREADS, MAX_CACHE_DEPTH, MAX_CAPACITY, MAX_GROWTH,
    MAX_SCALED_DEPTH, MAX_TRIM_INTERVAL, MIN_CLASS_SIZE, MIN_TRIM_INTERVAL,
};
pub use global::SlabHandle;
pub use size_class::{natural_alignment, MAX_ALIGN, MAX_CLASSES, MAX_CLASS_SIZE};
pub use slab::SlabAllocator;
pub use stats::{ClassStats, Stats};
pub use trim::TrimReport;
