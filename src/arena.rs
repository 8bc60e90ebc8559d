//! [`Arena`]: the classic bump allocator, over one reservation from the same
//! OS door as the slab (`os.rs`).
//!
//! An arena hands out blocks by moving one cursor forward and frees nothing
//! until [`Arena::reset`] (or drop) takes everything back at once. It suits
//! work with one lifetime: a request's scratch data, a frame, a parse tree.
//!
//! # The cursor and its accounting
//!
//! `cursor` is the offset from `base` of the first byte never handed out
//! since the last reset. Every block occupies `[start, start + footprint)`,
//! where the *footprint* is its size rounded up to [`GRANULE`] (16) bytes,
//! so, as long as nothing else moves it:
//!
//! ```text
//! cursor = Σ footprints of the blocks handed out + Σ alignment padding,
//! cursor ≡ 0 (mod GRANULE),   used() = min(cursor, capacity)
//! ```
//!
//! Two kinds of request take two paths:
//!
//! - **Alignment ≤ 16** (the common case): one `fetch_add` of the footprint.
//!   Because every footprint is a multiple of 16 and the base is page-aligned,
//!   the old cursor is already 16-aligned: no padding, no retry.
//! - **Alignment > 16**: a compare-and-swap loop that rounds the cursor up to
//!   the alignment and claims exactly `padding + footprint`. The alternative,
//!   a `fetch_add` of `size + align - 1` aligned inside, would waste up to
//!   `align - 1` bytes on *every* such block (nearly half of the arena for
//!   [`Arena::alloc_page`]); over-aligned requests are rare, so a CAS that
//!   can retry under contention is the better trade. The loop is lock-free:
//!   a failed CAS means another thread's allocation succeeded.
//!
//! # Exhaustion
//!
//! A `fetch_add` that runs past the end leaves the cursor beyond `capacity`
//! (it may overshoot; every reader clamps). The request then fails with
//! [`ArenaError::Exhausted`] and tries to take its bytes back with one CAS
//! (`start + footprint → start`). While an overshooting add is in place the
//! cursor is above `capacity`, so no request can succeed; the rollback CAS
//! succeeds exactly when every later add has been rolled back too (they undo
//! in reverse order), so it never gives back bytes that someone holds. A
//! single thread therefore never loses the tail of the arena to a failed
//! request; under contention near the end a request may fail while a little
//! space is left, which is the price of a one-instruction fast path.
//!
//! `loom_tests/arena.rs` checks these claims under every interleaving of
//! three threads (bounded preemptions) that mix both paths near the end:
//! blocks disjoint, aligned and in bounds, refusals honest, and the cursor
//! never below a block's end. (It also shows what the rollback's CAS is for:
//! rolled back with an unconditional `fetch_sub` instead, a request that
//! succeeds between two rollbacks loses its block to the next one.)
//!
//! The overshoot is bounded: a request first loads the cursor and adds only
//! if it saw room, and a footprint is at most `capacity`, so the cursor never
//! exceeds `capacity × (1 + threads between their load and their add)`. With
//! `capacity ≤` [`Arena::MAX_CAPACITY`] (2⁴⁰) it cannot wrap a 64-bit `usize`.
//!
//! # Memory orderings
//!
//! Every access to the cursor is `Relaxed`. The cursor only partitions the
//! address range: between resets each byte is handed out at most once (the
//! atomicity of the RMWs guarantees that), and a byte goes back to the cursor
//! only through a rollback of a request that never wrote it. No memory passes
//! from one owner to another through the cursor, so it orders nothing. Reuse
//! after [`Arena::reset`] is ordered by whatever gave the caller `&mut Arena`
//! (a join, a lock, the end of a scope).

use core::alloc::Layout;
use core::fmt;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

use crate::os::{self, PAGE};
use crate::sync::{AtomicUsize, Backoff, CachePadded, Ordering};

/// Every block's footprint is a multiple of this, and every block starts at
/// least this aligned (the largest fundamental alignment on x86_64/aarch64).
pub(crate) const GRANULE: usize = 16;

/// What [`Arena`] could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ArenaError {
    /// [`Arena::new`] was asked for 0 bytes.
    ZeroCapacity,
    /// [`Arena::new`] was asked for more than [`Arena::MAX_CAPACITY`].
    TooLarge {
        /// Bytes asked for.
        bytes: usize,
        /// The largest accepted capacity.
        max: usize,
    },
    /// The OS refused to reserve the address space.
    ReserveFailed {
        /// Bytes of address space asked for (rounded up to pages).
        bytes: usize,
        /// `errno` from `mmap`.
        errno: i32,
    },
    /// The request does not fit in what is left of the arena.
    Exhausted {
        /// Bytes the request asked for (`Layout::size`).
        requested: usize,
        /// Bytes left between the cursor and the end, as this request saw
        /// them (alignment padding and the 16-byte rounding still apply).
        remaining: usize,
    },
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArenaError::ZeroCapacity => {
                write!(f, "an arena of 0 bytes can hold nothing: ask for at least 1 byte (it is rounded up to a 4096-byte page)")
            }
            ArenaError::TooLarge { bytes, max } => {
                write!(f, "an arena of {bytes} B exceeds the supported maximum of {max} B: ask for less, or use several arenas")
            }
            ArenaError::ReserveFailed { bytes, errno } => write!(
                f,
                "the OS refused to reserve {bytes} B of address space for the arena (errno {errno}): ask for less or raise the process's address-space limit (ulimit -v)"
            ),
            ArenaError::Exhausted { requested, remaining } => write!(
                f,
                "the arena has {remaining} B left, not enough for {requested} B: create the arena larger, or `reset` it when its blocks are no longer used"
            ),
        }
    }
}

impl std::error::Error for ArenaError {}

impl From<ArenaError> for AllocError {
    fn from(_: ArenaError) -> Self {
        AllocError
    }
}

/// A lock-free bump arena: many threads may allocate from one `&Arena` at
/// once; everything is freed together by [`reset`](Self::reset) or drop.
///
/// ```rust
/// use std::alloc::Layout;
/// use allocator_api2::vec::Vec;
/// use lockfree_slab::{Arena, ArenaError};
///
/// # fn main() -> Result<(), ArenaError> {
/// let mut arena = Arena::new(1 << 20)?; // 1 MiB of address space, committed on touch
/// let p = arena.alloc(Layout::new::<[u64; 4]>())?;
/// assert_eq!(p.as_ptr() as usize % 8, 0);
///
/// let mut v: Vec<u32, &Arena> = Vec::new_in(&arena);
/// v.extend(0..1000);
/// assert_eq!(v.iter().sum::<u32>(), 499_500);
/// drop(v);
///
/// arena.reset(); // every block, `p` included, is free again
/// assert_eq!(arena.used(), 0);
/// # Ok(())
/// # }
/// ```
///
/// Blocks are at least 16-aligned and hold at least their size; fresh pages
/// read as zero, but memory reused after a reset keeps its old contents.
pub struct Arena {
    /// Start of the reservation; page-aligned. Every block pointer is derived
    /// from it (never from an integer), so provenance is preserved.
    base: NonNull<u8>,
    /// Bytes reserved: a whole number of pages, `≤ MAX_CAPACITY`.
    capacity: usize,
    /// See the module docs: offset of the first byte not handed out; may
    /// overshoot `capacity`. On its own cache line, since every allocating
    /// thread writes it.
    cursor: CachePadded<AtomicUsize>,
}

// SAFETY: the arena owns its reservation outright (no thread-local state);
// `base` and `capacity` are never written after `new`, and the only shared
// mutable state is the atomic cursor.
unsafe impl Send for Arena {}
// SAFETY: as for `Send`: `&Arena` only reads the constants and does atomic
// operations on the cursor; each block is handed to one caller only.
unsafe impl Sync for Arena {}

impl Arena {
    /// The largest capacity [`new`](Self::new) accepts: 1 TiB of address
    /// space. It keeps the cursor's overshoot far from wrapping (module docs).
    pub const MAX_CAPACITY: usize = 1 << 40;

    /// Reserves `bytes` of address space, rounded up to whole 4096-byte
    /// pages; pages are committed when first touched. `bytes == 0`, more than
    /// [`MAX_CAPACITY`](Self::MAX_CAPACITY), or an OS refusal are errors.
    pub fn new(bytes: usize) -> Result<Arena, ArenaError> {
        if bytes == 0 {
            return Err(ArenaError::ZeroCapacity);
        }
        if bytes > Self::MAX_CAPACITY {
            return Err(ArenaError::TooLarge { bytes, max: Self::MAX_CAPACITY });
        }
        let capacity = bytes.next_multiple_of(PAGE);
        let base = os::reserve(capacity).map_err(|e| ArenaError::ReserveFailed { bytes: capacity, errno: e.errno })?;
        Ok(Arena { base, capacity, cursor: CachePadded::new(AtomicUsize::new(0)) })
    }

    /// A block for `layout`, valid until [`reset`](Self::reset) or drop.
    ///
    /// Lock-free; for alignments up to 16 it is one `fetch_add` (see the
    /// module docs for larger ones). A zero-size request gets a dangling
    /// pointer aligned to `layout.align()`, which uses no space and may not
    /// be read or written (only zero-size accesses are valid through it).
    /// When the block does not fit, [`ArenaError::Exhausted`]; no block ever
    /// reaches past the end, however many threads race for the last bytes.
    #[inline]
    pub fn alloc(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        let size = layout.size();
        if size == 0 {
            return Ok(dangling(layout.align()));
        }
        // A footprint larger than the arena can never fit; checking first
        // also bounds every add to the cursor by `capacity`.
        let Some(footprint) = footprint(size).filter(|&f| f <= self.capacity) else {
            return Err(self.exhausted(size, self.load_cursor()));
        };
        let start = if layout.align() <= GRANULE {
            self.bump(size, footprint)?
        } else {
            self.bump_aligned(size, footprint, layout.align())?
        };
        // SAFETY: `bump`/`bump_aligned` return `start` with
        // `start + footprint <= capacity`, so the block lies inside the
        // reservation; the pointer is derived from `base`.
        Ok(unsafe { self.base.add(start) })
    }

    /// A page-aligned block of 4096 bytes.
    pub fn alloc_page(&self) -> Result<NonNull<u8>, ArenaError> {
        const PAGE_LAYOUT: Layout = match Layout::from_size_align(PAGE, PAGE) {
            Ok(layout) => layout,
            Err(_) => panic!("a page is a valid layout"), // evaluated at compile time
        };
        self.alloc(PAGE_LAYOUT)
    }

    /// Makes the whole arena available again. `&mut self` proves that no
    /// `&Arena` is held, so no allocator-api2 collection lives in it. Raw
    /// pointers handed out before must not be used afterwards: their memory
    /// will be handed out again, with its old contents (it is not zeroed).
    pub fn reset(&mut self) {
        // Relaxed: `&mut self` excludes every other access; whatever handed
        // us `&mut` (a join, a lock) orders the previous users' accesses
        // before the next allocation.
        self.cursor.store(0, Ordering::Relaxed);
    }

    /// Bytes handed out since the last reset, padding and 16-byte rounding
    /// included; at most [`capacity`](Self::capacity).
    pub fn used(&self) -> usize {
        self.load_cursor().min(self.capacity)
    }

    /// Bytes reserved: the requested size rounded up to whole pages.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn load_cursor(&self) -> usize {
        // Relaxed: a snapshot; the cursor orders no memory (module docs).
        self.cursor.load(Ordering::Relaxed)
    }

    fn exhausted(&self, requested: usize, cursor: usize) -> ArenaError {
        ArenaError::Exhausted { requested, remaining: self.capacity.saturating_sub(cursor) }
    }

    /// The fast path: claims `footprint` bytes at the cursor with one
    /// `fetch_add`. Requires `footprint <= capacity`.
    #[inline]
    fn bump(&self, size: usize, footprint: usize) -> Result<usize, ArenaError> {
        let last_start = self.capacity - footprint;
        // Add only when there seemed to be room, so that a drained arena's
        // cursor stops growing (this bounds the overshoot).
        let seen = self.load_cursor();
        if seen > last_start {
            return Err(self.exhausted(size, seen));
        }
        // Relaxed: only the atomicity of the RMW matters; each byte goes to
        // one caller (module docs, "Memory orderings").
        let start = self.cursor.fetch_add(footprint, Ordering::Relaxed);
        if start <= last_start {
            return Ok(start);
        }
        self.roll_back(start, footprint);
        Err(self.exhausted(size, start))
    }

    /// Undoes a failed `fetch_add` if nothing came after it (module docs,
    /// "Exhaustion"); otherwise the bytes stay claimed until reset.
    #[cold]
    fn roll_back(&self, start: usize, footprint: usize) {
        // Relaxed: the bytes given back were never written by anyone.
        let _ = self.cursor.compare_exchange(start + footprint, start, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The over-aligned path: a CAS loop that claims the padding up to
    /// `align` and the footprint together. Requires `footprint <= capacity`.
    #[cold]
    fn bump_aligned(&self, size: usize, footprint: usize, align: usize) -> Result<usize, ArenaError> {
        let base = self.base.as_ptr().addr();
        let backoff = Backoff::new();
        let mut seen = self.load_cursor();
        loop {
            let Some((start, end)) = place(base, seen, footprint, align, self.capacity) else {
                return Err(self.exhausted(size, seen));
            };
            // Relaxed (both): as for `bump`; a failure just reloads.
            match self.cursor.compare_exchange_weak(seen, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(start),
                Err(now) => {
                    seen = now;
                    backoff.spin();
                }
            }
        }
    }

    /// Extends the block `[ptr, ptr + old.size())` to `new` without moving
    /// it, if it is the last block handed out, already aligned for `new` and
    /// the arena has room; `false` otherwise (nothing changed).
    fn grow_in_place(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> bool {
        if old.size() == 0 || ptr.as_ptr().addr() % new.align() != 0 {
            return false; // a dangling zero-size pointer is not in the arena
        }
        let offset = ptr.as_ptr().addr().wrapping_sub(self.base.as_ptr().addr());
        let (Some(old_fp), Some(new_fp)) = (footprint(old.size()), footprint(new.size())) else {
            return false;
        };
        let (Some(old_end), Some(new_end)) = (offset.checked_add(old_fp), offset.checked_add(new_fp)) else {
            return false;
        };
        if offset >= self.capacity || new_end > self.capacity {
            return false;
        }
        // The cursor equals the block's end only if no block was handed out
        // after it (the cursor only moves forward, except to roll back
        // requests that got nothing). Relaxed: the bytes claimed were never
        // handed out since the last reset.
        self.cursor.compare_exchange(old_end, new_end, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `base`/`capacity` are exactly the reservation from `new`,
        // released once here; `&mut self` (and the lifetimes of `&Arena`
        // collections) mean nothing uses a block any more.
        unsafe { os::release(self.base, self.capacity) }
    }
}

impl fmt::Debug for Arena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena").field("capacity", &self.capacity).field("used", &self.used()).finish()
    }
}

/// Bytes a block of `size` occupies: `size` rounded up to [`GRANULE`];
/// `None` if that overflows.
fn footprint(size: usize) -> Option<usize> {
    size.checked_next_multiple_of(GRANULE)
}

/// Where a block of `footprint` bytes aligned to `align` (a power of two)
/// goes when the cursor is at `cursor`, in a reservation of `capacity` bytes
/// at address `base`: `(start, end)` offsets with `start` aligned as an
/// address, or `None` if it does not fit before `capacity`.
fn place(base: usize, cursor: usize, footprint: usize, align: usize, capacity: usize) -> Option<(usize, usize)> {
    if cursor > capacity {
        return None;
    }
    // Bytes from `base + cursor` up to the next multiple of `align`
    // (`base + cursor` is an address inside or one past the reservation, so
    // it does not wrap).
    let padding = base.wrapping_add(cursor).wrapping_neg() & (align - 1);
    let start = cursor.checked_add(padding)?;
    let end = start.checked_add(footprint)?;
    (end <= capacity).then_some((start, end))
}

/// A non-null pointer aligned to `align`, with no provenance: the answer to
/// a zero-size request.
fn dangling(align: usize) -> NonNull<u8> {
    // SAFETY: `align` comes from a `Layout`, so it is a power of two, hence
    // not zero.
    unsafe { NonNull::new_unchecked(ptr::without_provenance_mut(align)) }
}

/// The block at `ptr` as a slice of `len` bytes.
fn slice(ptr: NonNull<u8>, len: usize) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(ptr, len)
}

// SAFETY:
// - blocks stay valid until the arena is reset or dropped, and both need the
//   arena itself (`&mut` or by value), which no `&Arena` allows while a
//   collection holds one; blocks are distinct (module docs);
// - `deallocate` does nothing, which is valid: the memory is reclaimed by
//   reset or drop;
// - `grow` keeps the block only when it can extend it in place (it is the
//   last one and aligned for the new layout); otherwise it copies the old
//   contents into a fresh block. `shrink` keeps the block when it is aligned
//   for the new layout (it is already big enough), otherwise copies.
unsafe impl Allocator for &Arena {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Ok(slice(self.alloc(layout)?, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {}

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.grow_in_place(ptr, old, new) {
            return Ok(slice(ptr, new.size()));
        }
        let fresh = self.alloc(new)?;
        // SAFETY: the old block holds `old.size()` bytes (the caller's
        // contract), the fresh one at least `new.size() >= old.size()`, and
        // they are distinct blocks.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.as_ptr(), old.size()) };
        Ok(slice(fresh, new.size()))
    }

    unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller (the trait's contract).
        let block = unsafe { self.grow(ptr, old, new)? };
        // SAFETY: the block holds `new.size()` bytes; memory may be reused
        // after a reset, so the new tail is zeroed explicitly.
        unsafe { block.cast::<u8>().as_ptr().add(old.size()).write_bytes(0, new.size() - old.size()) };
        Ok(block)
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, _old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if ptr.as_ptr().addr() % new.align() == 0 {
            // The block already holds `_old.size() >= new.size()` bytes.
            return Ok(slice(ptr, new.size()));
        }
        let fresh = self.alloc(new)?;
        // SAFETY: the old block holds `_old.size() >= new.size()` bytes, the
        // fresh one `new.size()`; they are distinct.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.as_ptr(), new.size()) };
        Ok(slice(fresh, new.size()))
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn footprints_round_up_to_the_granule() {
        assert_eq!(footprint(1), Some(16));
        assert_eq!(footprint(16), Some(16));
        assert_eq!(footprint(17), Some(32));
        assert_eq!(footprint(4096), Some(4096));
        assert_eq!(footprint(usize::MAX), None);
        assert_eq!(footprint(usize::MAX - 14), None);
    }

    #[test]
    fn place_aligns_the_address_and_never_passes_the_end() {
        let base = 0x10_0000; // page-aligned, like every reservation
        let cap = 4 * PAGE;
        // Already aligned: no padding.
        assert_eq!(place(base, 0, 16, 64, cap), Some((0, 16)));
        assert_eq!(place(base, 128, 32, 64, cap), Some((128, 160)));
        // Padding up to the alignment.
        assert_eq!(place(base, 16, 16, 64, cap), Some((64, 80)));
        assert_eq!(place(base, 16, PAGE, PAGE, cap), Some((PAGE, 2 * PAGE)));
        // Alignment is of the address, not the offset: an unaligned base.
        assert_eq!(place(base + 16, 0, 16, 64, cap), Some((48, 64)));
        // Exactly at the end fits; one granule more does not.
        assert_eq!(place(base, cap - 64, 64, 64, cap), Some((cap - 64, cap)));
        assert_eq!(place(base, cap - 48, 64, 64, cap), None, "padding pushes it past the end");
        assert_eq!(place(base, cap, 16, 32, cap), None);
        // An overshot cursor and sums that would wrap are refusals.
        assert_eq!(place(base, cap + 16, 16, 32, cap), None);
        assert_eq!(place(base, 16, usize::MAX - 8, 32, cap), None);
        // Every answer is aligned and inside, for every power of two.
        for shift in 0..=13 {
            let align = 1 << shift;
            for cursor in (0..=cap).step_by(GRANULE) {
                if let Some((start, end)) = place(base, cursor, 48, align, cap) {
                    assert_eq!((base + start) % align, 0);
                    assert!(start >= cursor && start - cursor < align.max(1));
                    assert_eq!(end, start + 48);
                    assert!(end <= cap);
                } else {
                    assert!(cursor.next_multiple_of(align) + 48 > cap, "cursor {cursor} align {align}");
                }
            }
        }
    }

    #[test]
    fn dangling_pointers_are_aligned_and_not_null() {
        for shift in 0..=20 {
            let p = dangling(1 << shift);
            assert_eq!(p.as_ptr().addr(), 1 << shift);
        }
    }

    #[test]
    fn the_cursor_accounts_for_every_byte() {
        let arena = Arena::new(PAGE).unwrap();
        let a = arena.alloc(Layout::from_size_align(1, 1).unwrap()).unwrap();
        assert_eq!(arena.used(), 16, "a byte takes a granule");
        let b = arena.alloc(Layout::from_size_align(8, 64).unwrap()).unwrap();
        assert_eq!(b.as_ptr().addr() - a.as_ptr().addr(), 64, "padded to 64");
        assert_eq!(arena.used(), 80);
        let c = arena.alloc(Layout::from_size_align(40, 8).unwrap()).unwrap();
        assert_eq!(c.as_ptr().addr() - a.as_ptr().addr(), 80);
        assert_eq!(arena.used(), 128);
        // SAFETY: each block holds at least the bytes written, and they are
        // distinct; reading back checks they do not overlap.
        unsafe {
            a.as_ptr().write(1);
            b.as_ptr().write_bytes(2, 8);
            c.as_ptr().write_bytes(3, 40);
            assert_eq!(*a.as_ptr(), 1);
            assert_eq!(*b.as_ptr().add(7), 2);
            assert_eq!(*c.as_ptr().add(39), 3);
        }
    }

    #[test]
    fn a_failed_request_gives_its_bytes_back() {
        let arena = Arena::new(PAGE).unwrap();
        arena.alloc(Layout::from_size_align(PAGE - 32, 16).unwrap()).unwrap();
        let err = arena.alloc(Layout::from_size_align(33, 16).unwrap()).unwrap_err();
        assert_eq!(err, ArenaError::Exhausted { requested: 33, remaining: 32 });
        assert_eq!(arena.load_cursor(), PAGE - 32, "rolled back");
        let err = arena.alloc(Layout::from_size_align(1, 64).unwrap()).unwrap_err();
        assert_eq!(err, ArenaError::Exhausted { requested: 1, remaining: 32 }, "padding to 64 does not fit");
        arena.alloc(Layout::from_size_align(32, 32).unwrap()).unwrap();
        assert_eq!(arena.used(), PAGE);
        // A drained arena does not move its cursor any more.
        for _ in 0..10 {
            arena.alloc(Layout::new::<u8>()).unwrap_err();
        }
        assert_eq!(arena.load_cursor(), PAGE);
    }

    #[test]
    fn grow_in_place_only_for_the_last_block() {
        let arena = Arena::new(PAGE).unwrap();
        let small = Layout::from_size_align(16, 8).unwrap();
        let big = Layout::from_size_align(100, 8).unwrap();
        let a = arena.alloc(small).unwrap();
        assert!(arena.grow_in_place(a, small, big), "last block grows");
        assert_eq!(arena.used(), 112);
        let b = arena.alloc(small).unwrap();
        assert!(!arena.grow_in_place(a, big, Layout::from_size_align(200, 8).unwrap()), "no longer last");
        assert!(!arena.grow_in_place(b, small, Layout::from_size_align(16, 64).unwrap()), "misaligned for new");
        assert!(!arena.grow_in_place(b, small, Layout::from_size_align(PAGE, 8).unwrap()), "past the end");
        assert!(!arena.grow_in_place(dangling(8), Layout::new::<()>(), small), "zero-size is not in the arena");
        assert_eq!(arena.used(), 128, "failed attempts change nothing");
    }

    #[test]
    fn new_refuses_zero_and_too_much() {
        assert_eq!(Arena::new(0).unwrap_err(), ArenaError::ZeroCapacity);
        let too_much = Arena::MAX_CAPACITY + 1;
        assert_eq!(
            Arena::new(too_much).unwrap_err(),
            ArenaError::TooLarge { bytes: too_much, max: Arena::MAX_CAPACITY }
        );
        assert_eq!(Arena::new(1).unwrap().capacity(), PAGE);
        assert_eq!(Arena::new(PAGE + 1).unwrap().capacity(), 2 * PAGE);
    }

    #[test]
    fn every_error_says_what_to_change() {
        let cases = [
            (ArenaError::ZeroCapacity, "at least 1 byte"),
            (ArenaError::TooLarge { bytes: 1 << 41, max: 1 << 40 }, "ask for less"),
            (ArenaError::ReserveFailed { bytes: 4096, errno: 12 }, "ulimit -v"),
            (ArenaError::Exhausted { requested: 64, remaining: 16 }, "`reset`"),
        ];
        for (err, hint) in cases {
            let msg = err.to_string();
            assert!(msg.contains(hint), "{msg:?} lacks {hint:?}");
        }
    }

    #[test]
    fn two_threads_split_a_small_arena_without_overlap() {
        let arena = Arena::new(PAGE).unwrap();
        let layout = Layout::from_size_align(48, 16).unwrap();
        let blocks: Vec<Vec<usize>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while let Ok(p) = arena.alloc(layout) {
                            mine.push(p.as_ptr().addr() - arena.base.as_ptr().addr());
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut all: Vec<usize> = blocks.concat();
        all.sort_unstable();
        assert_eq!(all.len(), PAGE / 48, "every whole block was handed out once");
        for w in all.windows(2) {
            assert!(w[1] >= w[0] + 48, "overlap at {w:?}");
        }
        assert!(all.last().unwrap() + 48 <= PAGE);
    }
}
