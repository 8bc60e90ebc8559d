//! The process's one slab allocator: where it lives, and its first use.
//!
//! It is built eagerly (`Builder::build`, so its hot-path constants are
//! plain fields) with [`Profile::General`] and [`Fallback::Error`]: the slab
//! itself never calls Rust's `System` allocator, which is C's `malloc` —
//! that is, under `LD_PRELOAD`, this crate. Every request the slab answers
//! with `AllocError` (too large, aligned beyond a class, a dry class) is
//! sent by `api.rs` to glibc's own `__libc_*` entry points.
//!
//! ```text
//! UNINIT --(one CAS winner builds)--> INITIALIZING --> READY
//!                                                 \--> FAILED (mmap refused)
//! ```
//!
//! **First use.** The first request that allocates (or asks for the stats),
//! from any thread, claims the build with one CAS and builds the allocator
//! (`free` and the size queries never build it: no pointer can be the
//! slab's before). Building allocates (the builder's vectors, the region's
//! owner): through Rust's global allocator, which in a shared library is
//! `System`, i.e. `malloc`, i.e. us again. Nothing waits and nothing
//! recurses: while the state is not `READY` every request — those nested
//! calls, and other threads' first calls — is served by glibc, and glibc's
//! blocks go back to glibc when freed (they are outside the slab's region).
//! `FAILED` is permanent: glibc serves everything. This also makes the
//! library safe before `main` and inside the dynamic loader, which call
//! `malloc` before any constructor of ours ran: the only things first use
//! needs are `mmap` and atomics.
//!
//! **After first use**, one path can still re-enter: a thread's first
//! allocation claims a cache slot, which registers the thread-exit guard
//! (`__cxa_thread_atexit_impl`, which calls `calloc`). The slab handles that
//! itself: the nested call is served from the shared stacks
//! (`registry.rs`'s `registering` flag). Nothing else in the slab allocates
//! once built with `Fallback::Error` and no growth or background trim.
//!
//! **Thread-local storage.** This crate has none. The slab's registry is a
//! `thread_local!` with a `const` initialiser and no destructor, which Rust
//! compiles to plain ELF TLS; in a shared library that is the
//! general-dynamic model, so each access calls `__tls_get_addr`. For a
//! library loaded at startup (`LD_PRELOAD`, or `DT_NEEDED`) that call never
//! allocates: the library is one of the initial modules, whose TLS blocks
//! are part of every thread's static TLS, set up when the thread is created,
//! and whose slot generation is 0, so glibc's `_dl_update_slotinfo` (the one
//! path in `__tls_get_addr` that resizes the DTV with `malloc`) finds
//! nothing to do for it, even after the program has `dlopen`ed other modules
//! with TLS. `dlopen`ing *this* library is not supported: its TLS would be
//! allocated lazily by `__tls_get_addr`, with `malloc`. (A Rust binary
//! with the `override` feature links the slab into the executable, whose TLS
//! is local-exec: no call at all.) `tests/c/loader.c` allocates in threads
//! while modules with TLS are `dlopen`ed and closed. The general-dynamic
//! call is also most of what the C ABI adds to a cache hit (measured, with
//! the TLS-descriptor alternative, in docs/PERFORMANCE.md).
//!
//! **Thread exit.** The slab's exit guard is a Rust thread-local with a
//! destructor, which std registers with glibc's `__cxa_thread_atexit_impl`;
//! glibc runs those destructors for every thread that ends, `pthread_create`d
//! ones included, so a C program's threads give their cached blocks back too
//! (`tests/c/threads.c` checks it after 1,000 joins).
//!
//! **fork.** A child inherits the state as it was: `READY` stays `READY`;
//! a build in flight in another thread leaves the child `INITIALIZING`, so it
//! is served by glibc for its whole life, and never waits. The slab's own
//! state is lock-free (DESIGN.md, invariant 8): blocks other parent threads
//! held in their caches are simply not available in the child. glibc's
//! `fork` takes and resets its own arena locks around the fork, for the
//! requests we pass on. So no `pthread_atfork` handler is needed here.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use lockfree_slab::{Fallback, Profile, SlabAllocator};

const UNINIT: u8 = 0;
const INITIALIZING: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// An allocator built on first use by `build`, with the protocol above.
/// The process has one ([`GLOBAL`]); the tests race their own.
pub(crate) struct Global {
    state: AtomicU8,
    slab: UnsafeCell<MaybeUninit<SlabAllocator>>,
    /// The largest request (in bytes) the slab serves, once `READY`; larger
    /// ones go straight to glibc without a table lookup.
    largest: AtomicUsize,
    build: fn() -> Option<SlabAllocator>,
}

// SAFETY: `slab` is written once, by the thread that won the CAS of `state`
// from UNINIT, before its Release store of READY; it is only read after an
// Acquire load of READY, and never written again. `SlabAllocator` is Sync.
unsafe impl Sync for Global {}

/// The general-purpose configuration; every miss (`AllocError`) is glibc's.
fn build_general() -> Option<SlabAllocator> {
    SlabAllocator::builder().profile(Profile::General).fallback(Fallback::Error).build().ok()
}

static GLOBAL: Global = Global::new(build_general);

/// The process's slab, if it is ready; `None` while it is being built, if it
/// could not be, or before first use (which this call then performs).
#[inline(always)]
pub(crate) fn slab() -> Option<&'static SlabAllocator> {
    GLOBAL.get()
}

/// The process's slab, if it is ready, without trying to build it (for
/// `free` and the size queries: a pointer can only be the slab's if it is).
#[inline(always)]
pub(crate) fn slab_if_ready() -> Option<&'static SlabAllocator> {
    GLOBAL.get_if_ready()
}

/// The largest block size of the process's slab (0 until it is ready).
#[inline(always)]
pub(crate) fn largest() -> usize {
    GLOBAL.largest()
}

impl Global {
    pub(crate) const fn new(build: fn() -> Option<SlabAllocator>) -> Self {
        Global {
            state: AtomicU8::new(UNINIT),
            slab: UnsafeCell::new(MaybeUninit::uninit()),
            largest: AtomicUsize::new(0),
            build,
        }
    }

    /// The slab if ready, else first use (if nobody started it).
    #[inline(always)]
    pub(crate) fn get(&self) -> Option<&SlabAllocator> {
        match self.get_if_ready() {
            Some(slab) => Some(slab),
            None => self.initialise(),
        }
    }

    #[inline(always)]
    pub(crate) fn get_if_ready(&self) -> Option<&SlabAllocator> {
        // Acquire: pairs with the Release store of READY in `initialise`, so
        // the allocator it wrote is complete.
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: READY was observed with Acquire: the cell holds an
            // initialised allocator that is never written again.
            return Some(unsafe { (*self.slab.get()).assume_init_ref() });
        }
        None
    }

    #[inline(always)]
    pub(crate) fn largest(&self) -> usize {
        // Relaxed: written before the Release store of READY, and read only
        // by callers that saw READY with Acquire (in `get`).
        self.largest.load(Ordering::Relaxed)
    }

    #[cold]
    #[inline(never)]
    fn initialise(&self) -> Option<&SlabAllocator> {
        // Acquire on failure: pairs with the Release store below when
        // another thread finished first. Success needs nothing: no data is
        // read yet.
        if self.state.compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire).is_err() {
            return self.get_if_ready();
        }
        // From here until the store of READY, every request (ours, nested
        // in `build`, and other threads') finds the state not READY and goes
        // to glibc.
        let Some(built) = (self.build)() else {
            // Release: nothing to publish, but pairs like READY does.
            self.state.store(FAILED, Ordering::Release);
            return None;
        };
        let largest = largest_class(&built);
        // SAFETY: we won the CAS from UNINIT, so we are the only writer, and
        // no reader looks at the cell before seeing READY below.
        let slab = unsafe { (*self.slab.get()).write(built) };
        // Relaxed: published by the Release store below.
        self.largest.store(largest, Ordering::Relaxed);
        crate::stats::keep_exit_hook();
        // Release: pairs with the Acquire loads in `get_if_ready`.
        self.state.store(READY, Ordering::Release);
        Some(slab)
    }

    /// The state, in words (for the stats report).
    fn state_name(&self) -> &'static str {
        // Relaxed: a report; nothing is read on the strength of it.
        match self.state.load(Ordering::Relaxed) {
            UNINIT => "never used",
            INITIALIZING => "being built",
            READY => "ready",
            _ => "could not reserve its region (glibc serves everything)",
        }
    }
}

/// The largest request size the slab serves at malloc's alignment: its
/// largest class. `class_size_for` is monotone in the size (`Some` up to
/// the largest class, `None` above), so a binary search finds it.
fn largest_class(slab: &SlabAllocator) -> usize {
    let serves = |size: usize| {
        core::alloc::Layout::from_size_align(size, crate::api::MIN_ALIGN)
            .ok()
            .and_then(|layout| slab.class_size_for(layout))
            .is_some()
    };
    // Invariant: `serves(low)` (size 0 is always served) and
    // `!serves(high)` (nothing above MAX_CLASS_SIZE is).
    let (mut low, mut high) = (0, lockfree_slab::MAX_CLASS_SIZE + 1);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if serves(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

/// The process's slab's state, in words (for the stats report).
pub(crate) fn state_name() -> &'static str {
    GLOBAL.state_name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Barrier;
    use std::time::Duration;

    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    static RACED: Global = Global::new(build_small);

    fn build_small() -> Option<SlabAllocator> {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        // A request nested in the build (as the builder's own allocations
        // reach `malloc`): told "not ready" at once, no recursion, no wait.
        assert!(RACED.get().is_none(), "a nested request must not see the slab");
        // Keep the window open so that the other threads arrive during it.
        std::thread::sleep(Duration::from_millis(20));
        SlabAllocator::builder().size_classes(&[16, 64, 256]).capacity(1 << 20).fallback(Fallback::Error).build().ok()
    }

    #[test]
    fn first_use_from_many_threads_builds_once_and_nobody_waits() {
        const THREADS: usize = 8;
        let barrier = Barrier::new(THREADS);
        let served: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        usize::from(RACED.get().is_some())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("no panic")).sum()
        });
        assert_eq!(BUILDS.load(Ordering::SeqCst), 1, "exactly one thread builds");
        // The builder got the slab; whoever came while it was being built
        // was sent to glibc instead of waiting (all, unless scheduled late).
        assert!((1..=THREADS).contains(&served));
        assert_eq!(RACED.state_name(), "ready");
        assert_eq!(RACED.largest(), 256, "the largest class at alignment 16");
        let slab = RACED.get().expect("ready");
        let block = slab.allocate(core::alloc::Layout::from_size_align(200, 16).expect("valid")).expect("a block");
        assert!(slab.owns(block.as_ptr()));
    }

    static FAILING: Global = Global::new(|| None);

    #[test]
    fn a_failed_build_is_permanent_and_never_retried() {
        assert!(FAILING.get().is_none());
        assert!(FAILING.get().is_none());
        assert_eq!(FAILING.largest(), 0);
        assert!(FAILING.state_name().starts_with("could not reserve"));
    }
}
