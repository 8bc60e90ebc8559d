//! lockfree-slab as C's `malloc`: a shared library for `LD_PRELOAD`, and,
//! with the `override` feature (on by default), the same symbols linked
//! statically into a Rust binary, so that its C dependencies allocate from
//! the slab too.
//!
//! ```sh
//! cargo build --release -p lockfree-slab-malloc
//! LD_PRELOAD=$PWD/target/release/liblockfree_slab_malloc.so python3 script.py
//! LOCKFREE_SLAB_STATS=1 LD_PRELOAD=... program   # the stats table on stderr at exit
//! ```
//!
//! From Rust (the C code linked into the binary uses the slab too):
//!
//! ```toml
//! lockfree-slab-malloc = { path = "malloc", features = ["override"] }
//! ```
//! ```rust,ignore
//! use lockfree_slab_malloc as _; // link it: malloc, free, ... are the slab's
//! ```
//!
//! Rust's own allocations go to its `#[global_allocator]`: the default,
//! `System`, calls `malloc`, so they reach the slab as well.
//!
//! Modules, each using only those above it:
//!
//! - `sys`: the one door to the C library — glibc's own `__libc_*`
//!   allocator, `errno`, `write(2)`, `getenv`;
//! - `global`: the process's one `SlabAllocator` and its first use (why it
//!   never recurses, its TLS, fork);
//! - `api`: the `malloc` family with glibc's semantics;
//! - `stats`: the prefixed C entry points of `include/lockfree_slab.h` and
//!   the `LOCKFREE_SLAB_STATS` exit report.

// This crate *is* `malloc`: keep LLVM from treating its own calls to
// `malloc`/`free` as the C library's builtins (eliding a pair, folding a
// null check), as C allocators build with `-fno-builtin`.
#![no_builtins]

mod api;
mod global;
mod stats;
mod sys;

pub use api::{
    aligned_alloc, calloc, free, malloc, malloc_usable_size, memalign, posix_memalign, pvalloc, realloc, reallocarray,
    valloc, MIN_ALIGN,
};
pub use stats::{
    lockfree_slab_flush_thread_cache, lockfree_slab_owns, lockfree_slab_stats, lockfree_slab_stats_print,
    lockfree_slab_trim, LockfreeSlabStats,
};
