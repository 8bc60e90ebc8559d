//! Deferred construction for `const` allocators (`SlabAllocator::new` and
//! friends, usable as a `#[global_allocator]`), and the once-only
//! initialisation protocol.
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

use crate::config::{Builder, Profile};

pub(crate) const UNINIT: u8 = 0;
pub(crate) const INITIALIZING: u8 = 1;
pub(crate) const READY: u8 = 2;
pub(crate) const FAILED: u8 = 3;

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
