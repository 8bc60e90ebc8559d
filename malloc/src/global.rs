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
//! **First use.** The first call of any entry point, from any thread, claims
//! the build with one CAS and builds the allocator. Building allocates (the
//! builder's vectors, the region's owner): through Rust's global allocator,
//! which in a shared library is `System`, i.e. `malloc`, i.e. us again.
//! Nothing waits and nothing recurses: while the state is not `READY`
//! every request — those nested calls, and other threads' first calls —
//! is served by glibc, and glibc's blocks go back to glibc when freed (they
//! are outside the slab's region). `FAILED` is permanent: glibc serves
//! everything. This also makes the library safe before `main` and inside the
//! dynamic loader, which call `malloc` before any constructor of ours ran:
//! the only things first use needs are `mmap` and atomics.
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
//! is local-exec: no call at all.)
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

struct Global {
    state: AtomicU8,
    slab: UnsafeCell<MaybeUninit<SlabAllocator>>,
}

// SAFETY: `slab` is written once, by the thread that won the CAS of `state`
// from UNINIT, before its Release store of READY; it is only read after an
// Acquire load of READY, and never written again. `SlabAllocator` is Sync.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global { state: AtomicU8::new(UNINIT), slab: UnsafeCell::new(MaybeUninit::uninit()) };

/// The largest request (in bytes) the slab serves, once `READY`; larger
/// ones go straight to glibc without a table lookup.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The slab, if it is ready; `None` while it is being built, if it could not
/// be, or before first use (which this call then performs).
#[inline(always)]
pub(crate) fn slab() -> Option<&'static SlabAllocator> {
    // Acquire: pairs with the Release store of READY in `initialise`, so the
    // allocator it wrote is complete.
    if GLOBAL.state.load(Ordering::Acquire) == READY {
        // SAFETY: READY was observed with Acquire: the cell holds an
        // initialised allocator that is never written again.
        return Some(unsafe { (*GLOBAL.slab.get()).assume_init_ref() });
    }
    initialise()
}

/// The slab, if it is ready, without trying to build it (for `free` and the
/// size queries: a pointer can only be the slab's if it is ready).
#[inline(always)]
pub(crate) fn slab_if_ready() -> Option<&'static SlabAllocator> {
    // Acquire: as in `slab`.
    if GLOBAL.state.load(Ordering::Acquire) == READY {
        // SAFETY: as in `slab`.
        return Some(unsafe { (*GLOBAL.slab.get()).assume_init_ref() });
    }
    None
}

/// The largest block size the slab has (0 until it is ready).
#[inline(always)]
pub(crate) fn largest() -> usize {
    // Relaxed: written before the Release store of READY, and read only by
    // callers that saw READY with Acquire (in `slab`).
    LARGEST.load(Ordering::Relaxed)
}

#[cold]
#[inline(never)]
fn initialise() -> Option<&'static SlabAllocator> {
    // Acquire on failure: pairs with the Release store below when another
    // thread finished first. Success needs nothing: no data is read yet.
    if GLOBAL.state.compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire).is_err() {
        return slab_if_ready();
    }
    // From here until the store of READY, every request (ours, nested in
    // `build`, and other threads') finds the state not READY and goes to
    // glibc.
    let built = SlabAllocator::builder().profile(Profile::General).fallback(Fallback::Error).build();
    let Ok(built) = built else {
        // Release: nothing to publish, but pairs like READY does.
        GLOBAL.state.store(FAILED, Ordering::Release);
        return None;
    };
    let largest = largest_class(&built);
    // SAFETY: we won the CAS from UNINIT, so we are the only writer, and no
    // reader looks at the cell before seeing READY below.
    let slab = unsafe { (*GLOBAL.slab.get()).write(built) };
    // Relaxed: published by the Release store below.
    LARGEST.store(largest, Ordering::Relaxed);
    crate::stats::keep_exit_hook();
    // Release: pairs with the Acquire loads in `slab` and `slab_if_ready`.
    GLOBAL.state.store(READY, Ordering::Release);
    Some(slab)
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

/// Whether the slab has been built (for the stats report).
pub(crate) fn state_name() -> &'static str {
    // Relaxed: a report; nothing is read on the strength of it.
    match GLOBAL.state.load(Ordering::Relaxed) {
        UNINIT => "never used",
        INITIALIZING => "being built",
        READY => "ready",
        _ => "could not reserve its region (glibc serves everything)",
    }
}
