//! Growth beyond the first reservation ([`Builder::growth`](crate::Builder::growth)).
//!
//! **Shape.** When a class of the first region has carved its whole share and
//! its stack is empty, the allocation (already on its cold path) calls
//! [`take`]: up to `growth` further regions (*extensions*, kept in the first
//! region's [`Extensions`] slots, which `region.rs` owns and searches), each a complete
//! region built from the same configuration (same classes, split and
//! capacity; no thread caches). They are created on demand, in order, and
//! kept until the allocator drops, so nothing is ever retired while another
//! thread may still read it — which is why no epoch scheme
//! (`crossbeam-epoch`) is needed: a published extension stays valid for as
//! long as the region that points to it, and that region outlives every
//! operation on the allocator.
//!
//! **Class from address stays O(1).** A pointer outside the first region's
//! spans is looked up in at most [`MAX_GROWTH`](crate::MAX_GROWTH) extensions, each with the
//! same subtract-shift-compare as the first region. The hot path never does
//! this: it only ever sees the first region; a free of an extension block
//! is sent to the cold path by the first region's address check (the path
//! fallback blocks already take) and is found there.
//!
//! **Publication.** An extension slot goes from null to a region exactly
//! once, by a compare-exchange (`AcqRel`: its Release half publishes the
//! region, written entirely in `Region::create`, to every thread that loads
//! the slot with Acquire). Two threads that find the slot empty at once both
//! build a region; the loser destroys its own, which no one else has seen,
//! and uses the winner's.
//!
//! **Re-entrancy.** Building a region allocates a few small vectors through
//! the global allocator, which may be this one; a thread-local flag makes a
//! nested request that would grow again take the fallback instead, so growth
//! never recurses.
//!
//! **Cost.** Blocks of extensions go through their class's shared stack (one
//! CAS per allocation or free), not through the thread caches; growth is for
//! a peak that the configuration did not foresee, and the first region keeps
//! the fast path. Raise `capacity` if the extensions are used all the time.

use core::cell::Cell;
use core::ptr::NonNull;

use crate::config::ValidConfig;
use crate::region::{Extensions, Region};
use crate::sync::{AtomicPtr, Ordering};

crate::sync::thread_local! {
    /// Set while this thread builds an extension (see the module docs).
    static GROWING: Cell<bool> = Cell::new(false);
}

/// A block of `class` from the first extension of `region` that has one,
/// creating extensions as needed; `None` when growth is off or used up.
pub(crate) fn take(region: &Region, class: usize) -> Option<(&Region, NonNull<u8>)> {
    let extensions: &Extensions = &region.extensions;
    let config = extensions.config()?;
    for slot in extensions.slots() {
        // Acquire: as in `Extensions::iter`.
        let mut extension = slot.load(Ordering::Acquire);
        if extension.is_null() {
            extension = install(slot, config)?;
        }
        // SAFETY: published, so valid until the first region drops.
        let extension = unsafe { &*extension };
        // (A trim of the extension may hold its free blocks: wait for
        // them, as the first region's dry path does.)
        if let Some(block) = extension.pool(class).take_one_or_wait() {
            return Some((extension, block));
        }
    }
    None
}

/// Builds an extension and publishes it in `slot`, or returns the one
/// another thread published first; `None` if the OS refuses the reservation
/// or this thread is already building one.
fn install(slot: &AtomicPtr<Region>, config: &ValidConfig) -> Option<*mut Region> {
    let nested = GROWING.try_with(|growing| growing.replace(true)).unwrap_or(true);
    if nested {
        return None;
    }
    let built = Region::create(config);
    let _ = GROWING.try_with(|growing| growing.set(false));
    let built = built.ok()?;
    // AcqRel: Release publishes the region built above to every Acquire
    // load of the slot; Acquire (also on failure) makes the winner's region
    // visible to us.
    match slot.compare_exchange(core::ptr::null_mut(), built.as_ptr(), Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(built.as_ptr()),
        Err(winner) => {
            // SAFETY: our region was never published: nothing refers to it.
            unsafe { Region::destroy(built) };
            Some(winner)
        }
    }
}
