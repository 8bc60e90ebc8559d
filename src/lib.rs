#![doc = include_str!("../README.md")]

// Layers, bottom up; each file's docs say what it owns.
mod allocator; //      SlabAllocator: the parts tied together, fallback
mod arena; //          Arena: a lock-free bump arena over its own reservation
mod carver; //         bump frontier over never-used blocks
mod checks; //         misuse detection: block states, poison, reports
mod class_pool; //     one class's shared state: stack + carver + geometry
mod config; //         Builder, Profile, Fallback, ConfigError
mod fork; //           trims and fork exclude each other (pthread_atfork)
mod global; //         GlobalAlloc and allocator_api2::Allocator glue
mod growth; //         further reservations when a class runs dry
mod lazy; //         const construction, once-only initialisation
mod os; //             mmap / madvise / mincore / munmap
mod region; //         the reservation and its layout, address -> class
mod size_class; //     (size, align) -> class, one table load
mod stats; //          counters snapshot and its table
mod sync; //           the only importer of atomics / thread-locals (std or loom)
mod tagged_stack; //   Treiber stack of block indices, tagged head, external links
mod thread_cache; //   per-thread magazines, batch refill / flush, slot map
mod thread_registry; // current thread's slot per allocator, flush on exit
mod trim; //           giving free pages back to the OS (madvise), safely under load

#[cfg(all(test, lockfree_slab_loom))]
#[path = "../loom_tests/mod.rs"]
mod loom_tests;

pub use allocator::SlabAllocator;
pub use allocator_api2::alloc::AllocError;
pub use arena::{Arena, ArenaError};
pub use config::{
    Builder, ConfigError, Fallback, Profile, DEFAULT_CACHED_THREADS, DEFAULT_CACHE_BYTES, DEFAULT_CACHE_DEPTH,
    DEFAULT_CAPACITY, GENERAL_CAPACITY, MAX_CACHED_THREADS, MAX_CACHE_DEPTH, MAX_CAPACITY, MAX_GROWTH,
    MAX_SCALED_DEPTH, MAX_TRIM_INTERVAL, MIN_CLASS_SIZE, MIN_TRIM_INTERVAL,
};
pub use global::SlabHandle;
pub use size_class::{natural_alignment, MAX_ALIGN, MAX_CLASSES, MAX_CLASS_SIZE};
pub use stats::{ClassStats, Stats};
pub use trim::TrimReport;
