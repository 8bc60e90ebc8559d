//! Which cache slot the current thread owns in each allocator it uses, and
//! giving the slots back when the thread exits.
//!
//! Each thread keeps a small most-recently-used list of entries
//! `(region id, slot, weak owner)` in a `const`-initialised thread-local with
//! no destructor, so the hot path is one thread-local load and one compare
//! against the front entry. On a miss the thread claims a slot in the
//! region's [`SlotMap`](crate::cache::SlotMap) and puts an entry in
//! front; when the list is full, the least recently used entry is evicted
//! (its magazines flushed, its slot released).
//!
//! **Any number of threads.** When every slot of a region is taken, the thread
//! records a *negative* entry and is served straight from the shared stacks
//! (one CAS per operation — slower, never refused); after
//! [`RETRY_AFTER`] such operations it tries again for a slot.
//!
//! **Thread exit.** A separate thread-local guard with a destructor is
//! registered the first time the thread claims a slot (not on its first
//! allocation). Its destructor flushes every entry's magazines back to their
//! stacks, releases the slots and closes the registry: allocations made later
//! in the thread's teardown (other thread-locals' destructors) are served
//! uncached. If the guard cannot be registered (the thread is already tearing
//! down), the thread simply stays uncached.
//!
//! **Allocator drop.** Entries hold a `Weak` reference to the allocator's
//! [`RegionOwner`]. A flush first upgrades it: if the allocator is gone the
//! entry is discarded without touching the unmapped region; if not, the
//! upgraded reference keeps the region mapped until the flush is done (and
//! unmaps it, if it was the last). That is deferred reclamation done with
//! std's reference counts: it runs exactly when the last user lets go, needs
//! no global epoch to advance, never leaves a region mapped because no other
//! thread happened to pin, and allocates nothing (so it also serves the
//! `static` global instance, whose owner simply never drops).
//!
//! **Re-entrancy.** Dropping an entry's reference can free the allocator's
//! owner (its `ArcInner`, its region's vectors, its growth) through the
//! global allocator — which may be a slab allocator whose very next step is
//! a lookup in this registry. So no reference is dropped while the entries
//! are being changed: an entry is taken out whole ([`Evicted`]), the update
//! completed, and only then is the entry finished (flushed, released,
//! dropped). The nested call sees a consistent registry; thread exit keeps
//! taking entries until none is left, whatever a nested call moved.

use core::cell::Cell;
use std::sync::{Arc, Weak};

use crate::cache::SlotPtr;
use crate::region::{Region, RegionOwner};
use crate::size_class::ScaledClass;

/// Allocators one thread caches for at once.
const ENTRIES: usize = 8;
/// Uncached operations before a thread without a slot asks again.
pub(crate) const RETRY_AFTER: u32 = 4096;

struct Entry {
    /// The region's id; 0 marks an empty entry.
    id: Cell<u64>,
    /// What the hot path compares: `id` when the entry has a slot, else 0
    /// (which no allocator's hot-path id is), so one compare answers both
    /// "this allocator?" and "with a slot?".
    hot_id: Cell<u64>,
    /// `None`: no slot was free (negative entry, served uncached).
    slot: Cell<Option<SlotPtr>>,
    /// `Weak::into_raw` of the region's owner.
    owner: Cell<*const RegionOwner>,
    /// Uncached operations left before a negative entry retries.
    retry: Cell<u32>,
}

impl Entry {
    const fn empty() -> Entry {
        Entry {
            id: Cell::new(0),
            hot_id: Cell::new(0),
            slot: Cell::new(None),
            owner: Cell::new(core::ptr::null()),
            retry: Cell::new(0),
        }
    }

    fn swap(&self, other: &Entry) {
        self.id.swap(&other.id);
        self.hot_id.swap(&other.hot_id);
        self.slot.swap(&other.slot);
        self.owner.swap(&other.owner);
        self.retry.swap(&other.retry);
    }
}

struct Registry {
    entries: [Entry; ENTRIES],
    /// Set once the thread's exit guard has run (or could not be
    /// registered): no more slots are claimed.
    closed: Cell<bool>,
    /// Set while this thread registers a slot. Registering the exit guard's
    /// destructor may allocate through the global allocator (what std does
    /// there has changed across Rust versions: rust-lang/rust#116390); if
    /// that is this allocator, the nested call must not register again, so
    /// it is served from the shared stacks.
    registering: Cell<bool>,
}

impl Registry {
    const fn new() -> Self {
        Registry {
            entries: [const { Entry::empty() }; ENTRIES],
            closed: Cell::new(false),
            registering: Cell::new(false),
        }
    }

    #[cold]
    #[inline(never)]
    fn find_or_register(&self, region: &Region, owner: &Arc<RegionOwner>) -> Option<SlotPtr> {
        if let Some(i) = (1..ENTRIES).find(|&i| self.entries[i].id.get() == region.id()) {
            self.entries[0].swap(&self.entries[i]);
            return self.entries[0].slot.get();
        }
        if self.closed.get() || self.registering.get() || !region.caches.is_enabled() {
            return None;
        }
        self.registering.set(true);
        let guarded = exit_guard_registered();
        self.registering.set(false);
        if !guarded {
            return None;
        }
        let slot = region.caches.claim();
        // The whole update first, with the victim taken out whole; its
        // references are dropped only once the entries are consistent again.
        let victim = self.take(ENTRIES - 1);
        for i in (1..ENTRIES).rev() {
            self.entries[i].swap(&self.entries[i - 1]);
        }
        let front = &self.entries[0];
        front.id.set(region.id());
        front.hot_id.set(if slot.is_some() { region.id() } else { 0 });
        front.slot.set(slot);
        front.owner.set(Weak::into_raw(Arc::downgrade(owner)));
        front.retry.set(RETRY_AFTER);
        if let Some(victim) = victim {
            victim.finish();
            // Finishing may have re-entered and reordered (in principle even
            // evicted) the entries: answer from where ours is now.
            return self.entries.iter().find(|e| e.id.get() == region.id()).and_then(|e| e.slot.get());
        }
        slot
    }

    /// Empties entry `i` and hands back what it held, for
    /// [`Evicted::finish`] once the registry is consistent again.
    fn take(&self, i: usize) -> Option<Evicted> {
        let entry = &self.entries[i];
        if entry.id.replace(0) == 0 {
            return None;
        }
        entry.hot_id.set(0);
        let slot = entry.slot.take();
        let owner = entry.owner.replace(core::ptr::null());
        // SAFETY: `owner` came from `Weak::into_raw` in `find_or_register`
        // and is turned back exactly once (the entry was just cleared).
        let owner = unsafe { Weak::from_raw(owner) };
        Some(Evicted { slot, owner })
    }

    /// Empties entry `i`: flushes its magazines and releases its slot if its
    /// region is still alive. For callers that change nothing else.
    fn evict(&self, i: usize) {
        if let Some(evicted) = self.take(i) {
            evicted.finish();
        }
    }

    /// The thread is exiting: flush everything, claim nothing more. Finishing
    /// an entry may re-enter (see [`Evicted`]) and move the others, so this
    /// takes whichever entry is left until none is.
    fn close(&self) {
        self.closed.set(true);
        while let Some(evicted) = (0..ENTRIES).find_map(|i| self.take(i)) {
            evicted.finish();
        }
    }
}

/// An entry taken out of the registry, whose slot is still claimed and whose
/// reference to the allocator's owner is still held.
///
/// Dropping that reference (or the strong one the flush upgrades to) may
/// free the owner, its region's vectors and its growth — through the
/// global allocator, which may be a slab allocator using this very registry.
/// So an entry is first taken out, the registry's update is completed, and
/// only then is the entry finished: the nested call finds a consistent
/// registry, whatever it changes.
struct Evicted {
    slot: Option<SlotPtr>,
    owner: Weak<RegionOwner>,
}

impl Evicted {
    /// Flushes the slot's magazines and releases the slot if the region is
    /// still alive (the upgraded reference keeps it mapped meanwhile, and
    /// unmaps it at the end if the allocator was dropped meanwhile), then
    /// drops the references.
    fn finish(self) {
        if let (Some(strong), Some(slot)) = (self.owner.upgrade(), self.slot) {
            flush_slot(strong.region(), slot);
        }
    }
}

/// Loom takes *all* of a model thread's thread-locals before dropping any of
/// them, so [`ExitGuard`]'s `REGISTRY.try_with` always fails there and its
/// `close` would never run. Under loom the registry closes itself instead
/// (std's registry has no destructor: its `const` initialiser keeps the hot
/// path free of a lazy-init check, and `ExitGuard` does the job).
#[cfg(lockfree_slab_loom)]
impl Drop for Registry {
    fn drop(&mut self) {
        self.close();
    }
}

/// Gives every block in `slot`'s magazines back to the stacks and releases
/// the slot. Called only by the slot's owner thread.
fn flush_slot(region: &Region, slot: SlotPtr) {
    for (class, pool) in region.pools().iter().enumerate() {
        // SAFETY: this thread owns `slot` until the release below; `class`
        // ranges over the region's classes.
        unsafe { region.caches.magazine(slot, ScaledClass::of(class)) }.flush_all(pool);
    }
    region.caches.map.release(region.caches.index_of(slot));
}

crate::sync::thread_local! {
    static REGISTRY: Registry = Registry::new();
}

/// Runs [`Registry::close`] when the thread exits.
struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let _ = REGISTRY.try_with(Registry::close);
    }
}

crate::sync::thread_local! {
    static EXIT_GUARD: ExitGuard = ExitGuard;
}

/// Registers the exit guard (first call per thread); `false` if the thread is
/// already tearing down its thread-locals.
fn exit_guard_registered() -> bool {
    EXIT_GUARD.try_with(|_| ()).is_ok()
}

/// The slot of the current thread's most recently used allocator, if that
/// is the region whose hot-path id is `hot_id` and the thread has a slot in
/// it: the whole hot-path lookup, one thread-local load and one compare.
/// `None` sends the caller to its cold path.
///
/// A match also proves the region exists and this thread has seen it
/// published: the entry was made by this thread after it found the
/// allocator READY (`lazy.rs`), so the hot path reads the allocator's
/// constants without another Acquire.
#[inline(always)]
pub(crate) fn front_slot(hot_id: u64) -> Option<SlotPtr> {
    REGISTRY
        .try_with(|r| {
            let front = &r.entries[0];
            if front.hot_id.get() == hot_id {
                // SAFETY: `hot_id` is never 0 (region ids start at 1; a
                // non-READY allocator's is `NOT_READY`), and an entry's
                // `hot_id` is non-zero only while it holds a slot.
                Some(unsafe { front.slot.get().unwrap_unchecked() })
            } else {
                None
            }
        })
        .ok()
        .flatten()
}

/// The slot the current thread owns in `region` (whose id is `id`),
/// claiming one on first use; `None` means: serve this operation from the
/// shared stacks.
///
#[inline]
pub(crate) fn slot_for(id: u64, region: &Region, owner: &Arc<RegionOwner>) -> Option<SlotPtr> {
    REGISTRY
        .try_with(|r| {
            let front = &r.entries[0];
            if front.id.get() == id {
                return front.slot.get();
            }
            r.find_or_register(region, owner)
        })
        .ok()
        .flatten()
}

/// Called on the uncached path: counts down a negative entry so the thread
/// asks for a slot again from time to time.
#[cold]
pub(crate) fn note_uncached(region: &Region) {
    let _ = REGISTRY.try_with(|r| {
        let front = &r.entries[0];
        if front.id.get() == region.id() && front.slot.get().is_none() {
            match front.retry.get() {
                0 | 1 => r.evict(0),
                n => front.retry.set(n - 1),
            }
        }
    });
}

/// Flushes and releases the current thread's cache for `region`, if it has
/// one (the blocks go back to the shared stacks).
pub(crate) fn flush_current(region: &Region) {
    let _ = REGISTRY.try_with(|r| {
        if let Some(i) = (0..ENTRIES).find(|&i| r.entries[i].id.get() == region.id()) {
            r.evict(i);
        }
    });
}
