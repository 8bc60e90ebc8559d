//! The synchronisation facade: the only module that names atomics, padded
//! cells, backoff and spin hints.
//!
//! Under `--cfg lockfree_slab_loom` every item comes from [loom](https://docs.rs/loom), so the model
//! checker sees (and permutes) every access the lock-free code makes; otherwise
//! the items are std's and crossbeam-utils'. The cfg is crate-specific on
//! purpose: a user who runs *their own* crate under `--cfg loom` must not flip
//! their `#[global_allocator]` into loom mode.
//!
//! Memory that the allocator carves out of its `mmap` region is zero-filled by
//! the kernel, and the all-zero bit pattern is a valid `AtomicU32`/`AtomicU64`
//! holding 0 for std's types. Loom's types carry model state and must be
//! constructed, so [`init_zeroed_atomics`] writes them under loom and does
//! nothing otherwise (leaving the pages untouched keeps them uncommitted).

#[cfg(not(lockfree_slab_loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

#[cfg(lockfree_slab_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// The cells an allocator writes once, before publishing them with a Release
/// store of its state (see `slab/lazy.rs`). Always std's: they must be
/// const-constructible for `SlabAllocator::new`, and the happens-before edge
/// that protects them is the state atomic, which loom does model.
pub(crate) use core::cell::UnsafeCell;

pub(crate) use crossbeam_utils::CachePadded;

/// Exponential backoff for CAS retry loops.
#[cfg(not(lockfree_slab_loom))]
pub(crate) use crossbeam_utils::Backoff;

/// Under loom a retry loop must yield to the scheduler so that the model can
/// run the thread that made our CAS fail; spinning would only burn the
/// preemption budget.
#[cfg(lockfree_slab_loom)]
pub(crate) struct Backoff;

#[cfg(lockfree_slab_loom)]
impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff
    }
    pub(crate) fn spin(&self) {
        loom::thread::yield_now();
    }
    /// Waiting for another thread (not retrying a CAS): also just a yield.
    pub(crate) fn snooze(&self) {
        loom::thread::yield_now();
    }
}

/// An atomic type whose value 0 may be produced from zero-filled memory.
pub(crate) trait ZeroableAtomic {
    /// A fresh atomic holding 0 (only called under loom).
    #[cfg_attr(not(lockfree_slab_loom), allow(dead_code))]
    fn zero() -> Self;
}

impl ZeroableAtomic for AtomicU32 {
    fn zero() -> Self {
        AtomicU32::new(0)
    }
}

impl ZeroableAtomic for AtomicU8 {
    fn zero() -> Self {
        AtomicU8::new(0)
    }
}

impl ZeroableAtomic for AtomicU64 {
    fn zero() -> Self {
        AtomicU64::new(0)
    }
}

/// Makes `count` atomics at `first` hold 0, given that their memory is
/// zero-filled.
///
/// With std's atomics this is a no-op: zero bytes already are a valid atomic
/// holding 0, and not writing keeps lazily committed pages uncommitted. Under
/// loom each atomic is constructed in place so the model knows about it.
///
/// # Safety
///
/// `first..first + count` must be valid for writes, properly aligned, and
/// zero-filled; no other thread may access it during the call.
#[allow(unused_variables)]
pub(crate) unsafe fn init_zeroed_atomics<T: ZeroableAtomic>(first: *mut T, count: usize) {
    #[cfg(lockfree_slab_loom)]
    for i in 0..count {
        // SAFETY: the caller guarantees `first..first + count` is valid for
        // writes and exclusively ours; `i < count` keeps the write in range.
        unsafe { first.add(i).write(T::zero()) };
    }
}

/// A relaxed "increment" of a counter that only one thread ever writes: a load
/// and a store, not a read-modify-write, so it compiles to a plain add with no
/// `lock` prefix. Other threads may read the counter (for statistics) at any
/// time and see some recent value; that is all they need.
#[inline(always)]
pub(crate) fn bump_owned(counter: &AtomicU64, by: u64) {
    // Relaxed: the counter orders nothing; single writer, so load+store
    // cannot lose an update.
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

/// A process-unique, non-zero id for each region.
///
/// Deliberately std's atomic even under loom: it is a global counter outside
/// every modelled protocol, and loom forbids atomics in `static`s.
pub(crate) fn next_region_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // Relaxed: uniqueness needs only the atomicity of the RMW.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `thread_local!` for the thread registry: std's with a `const`
/// initialiser (no lazy-init check on access), or loom's, whose thread-locals
/// are per model thread and run their destructors when it ends.
#[cfg(not(lockfree_slab_loom))]
macro_rules! facade_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        std::thread_local! { $(#[$attr])* static $name: $t = const { $init }; }
    };
}

#[cfg(lockfree_slab_loom)]
macro_rules! facade_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        loom::thread_local! { $(#[$attr])* static $name: $t = $init; }
    };
}

pub(crate) use facade_thread_local as thread_local;
