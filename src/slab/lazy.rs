//! Deferred construction for `const` allocators (`SlabAllocator::new` and
//! friends, usable as a `#[global_allocator]`), the once-only
//! initialisation protocol, and the accessors every path uses to reach the
//! state it publishes (the hot-path constants, the region, the owner).
//!
//! An allocator is in one of four states:
//!
//! ```text
//! UNINIT --(one CAS winner)--> INITIALIZING --> READY
//!                                          \--> FAILED (config invalid or mmap refused)
//! ```
//!
//! The winner of the CAS reserves the region, writes the hot-path constants
//! and the owner into their cells, then stores `READY` with Release; every
//! reader loads the state with Acquire before touching the cells, so it sees
//! them complete. Nobody waits: a request that finds the allocator
//! `INITIALIZING` — another thread's first use, or the initialising thread's
//! own nested allocations (validating a configuration and creating the
//! region's owner allocate through the global allocator, which may be this
//! one) — is served by the system allocator, so first use is race-free,
//! cannot deadlock and never recurses. Such blocks are recognised by address
//! later and returned to the system. `FAILED` is permanent: every request
//! then takes the fallback.

use core::alloc::Layout;
use core::ptr::NonNull;
use std::alloc::{GlobalAlloc, System};
use std::sync::Arc;

use super::{cold::dangling, SlabAllocator};
use crate::checks::OnMisuse;
use crate::config::{Builder, Profile};
use crate::region::{HotPath, Region, RegionOwner};
use crate::sync::Ordering;
use crate::AllocError;

pub(crate) const UNINIT: u8 = 0;
pub(crate) const INITIALIZING: u8 = 1;
pub(crate) const READY: u8 = 2;
pub(crate) const FAILED: u8 = 3;

/// The hot-path id of an allocator that is not `READY`: bit 63 is set, so
/// no registry entry (region ids count up from 1 and never reach it) can
/// match it, and every operation takes the cold path, which checks the state.
pub(crate) const NOT_READY: u64 = u64::MAX;

/// What a lazily initialised allocator builds on first use.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LazyConfig {
    /// Built eagerly by `Builder::build`: nothing to do.
    Built,
    /// A reference configuration.
    Profile(Profile),
    /// Explicit classes, split and capacity; the rest as for `Profile::General`.
    Classes { classes: &'static [usize], split: &'static [u8], capacity: usize },
}

impl LazyConfig {
    /// The builder to run on first use (`None` for an eagerly built one).
    pub(crate) fn builder(self) -> Option<Builder> {
        match self {
            LazyConfig::Built => None,
            LazyConfig::Profile(profile) => Some(Builder::new().profile(profile)),
            LazyConfig::Classes { classes, split, capacity } => {
                Some(Builder::new().size_classes(classes).split(split).capacity(capacity))
            }
        }
    }
}

impl SlabAllocator {
    /// The hot-path constants if the region exists: the state loaded with
    /// Acquire (pairing with the Release store of `READY` in `initialise`,
    /// or made before the allocator was shared, so the cell is complete).
    #[inline(always)]
    pub(super) fn ready_hot(&self) -> Option<&HotPath> {
        if self.state.load(Ordering::Acquire) == READY {
            // SAFETY: written once before the Release store of READY that we
            // just observed with Acquire; never written again.
            return Some(unsafe { &*self.hot.get() });
        }
        None
    }

    /// Whether the region exists.
    #[inline(always)]
    pub(super) fn is_ready(&self) -> bool {
        self.ready_hot().is_some()
    }

    /// The hot-path constants, for the cold paths: only called once
    /// [`ready_hot`](Self::ready_hot) returned `Some` on this path.
    #[inline(always)]
    pub(super) fn hot(&self) -> &HotPath {
        // SAFETY: the caller observed READY (Acquire) earlier on this path,
        // or this thread's front registry entry matched the hot-path id
        // (which it made after observing READY, see `registry::front_slot`);
        // the cell was written before that and never changes again.
        unsafe { &*self.hot.get() }
    }

    /// The region. Only called once [`is_ready`](Self::is_ready) was seen.
    #[inline(always)]
    pub(super) fn region(&self) -> &Region {
        debug_assert!(self.is_ready());
        // SAFETY: READY was observed, so `hot.region` points to the region,
        // which `owner` keeps mapped for as long as `self`.
        unsafe { &*self.hot().region }
    }

    /// The region, if it exists.
    pub(super) fn ready_region(&self) -> Option<&Region> {
        self.is_ready().then(|| self.region())
    }

    /// The owner. Only called once [`is_ready`](Self::is_ready) was seen.
    pub(super) fn owner(&self) -> &Arc<RegionOwner> {
        // SAFETY: as for `hot`: written once before READY.
        unsafe { (*self.owner.get()).as_ref() }.expect("a READY allocator has an owner")
    }

    /// First use of a lazily built allocator: the CAS winner reserves the
    /// region; everybody else (and the winner's own nested allocations) is
    /// told "not now". Returns whether the allocator is `READY`.
    #[cold]
    #[inline(never)]
    pub(super) fn initialise(&self) -> bool {
        // Acquire on success: nothing to pair with yet, but keeps the
        // initialisation after the claim; failure: Acquire, pairs with the
        // Release store below when another thread finished first.
        match self.state.compare_exchange(UNINIT, INITIALIZING, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {}
            Err(state) => return state == READY,
        }
        let built = self.lazy.builder().map(|b| b.validate().and_then(|config| Region::create(&config)));
        match built {
            Some(Ok(region)) => {
                let owner = Arc::new(RegionOwner::new(region));
                let hot = owner.region().hot();
                // SAFETY: we won the CAS, so we are the only writer, and no
                // reader touches the cells before seeing READY below.
                unsafe {
                    *self.hot.get() = hot;
                    *self.owner.get() = Some(owner);
                }
                // Release: pairs with the Acquire loads of `is_ready`.
                self.state.store(READY, Ordering::Release);
                // Relaxed: the hot path only compares it with a registry
                // entry, which a thread makes after its own Acquire of READY.
                self.hot_id.store(hot.id, Ordering::Relaxed);
                true
            }
            _ => {
                // Release: the same pairing; nothing was written.
                self.state.store(FAILED, Ordering::Release);
                false
            }
        }
    }

    /// A request that found the allocator not `READY`: initialise it if it
    /// never was, then serve the request; while another thread initialises
    /// it, or if it failed, the system allocator serves the request.
    #[cold]
    #[inline(never)]
    pub(super) fn allocate_unready<R: OnMisuse>(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        // The caller's policy goes on: under `GlobalAlloc` a report here must
        // abort, never unwind.
        if self.state.load(Ordering::Acquire) == UNINIT && self.initialise() {
            return self.allocate_with::<R>(layout);
        }
        if self.is_ready() {
            return self.allocate_with::<R>(layout);
        }
        // INITIALIZING or FAILED. (Consulting the configured fallback here
        // would allocate, and so recurse: the system serves these.)
        if layout.size() == 0 {
            return Ok(dangling(layout));
        }
        // SAFETY: non-zero size, as `alloc` requires.
        NonNull::new(unsafe { System.alloc(layout) }).ok_or(AllocError)
    }
}
