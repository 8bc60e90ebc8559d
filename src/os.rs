//! The one door to the operating system: reserve, pre-commit and release
//! address space, and give the physical memory of a range back while
//! keeping its addresses ([`discard`], for `trim`), and register fork
//! handlers ([`at_fork`]), and write the checks' abort message to stderr
//! ([`write_stderr`]). No other module calls `mmap`, `madvise`, `mincore`,
//! `munmap`, `pthread_atfork` or `write` (`.clippy.toml` enforces it).
//!
//! Under Miri and loom, which cannot run `mmap`, a stand-in takes a zeroed,
//! page-aligned allocation from the system allocator with the same contract
//! (zero-filled, page-aligned); populate is then a no-op, and [`discard`]
//! writes zeros over the range (what the next reader of a released page
//! sees), so a release of memory still in use shows up as a corrupted
//! payload in the models and the Miri tests. What that leaves unchecked
//! there is the real system calls themselves, which the native test suite
//! covers.
//!
//! Nothing here allocates through the Rust global allocator, so the crate can
//! itself be the `#[global_allocator]` without recursing.

// This module is the door that `.clippy.toml` keeps every other one from.
#![allow(clippy::disallowed_methods)]

/// The page size this crate assumes for alignment and populate (x86_64 and
/// aarch64 Linux base pages).
pub(crate) const PAGE: usize = 4096;

/// The OS said no; `errno` says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OsError {
    pub(crate) errno: i32,
}

#[cfg(not(any(miri, lockfree_slab_loom)))]
mod imp {
    use super::OsError;
    use core::ptr::NonNull;

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// Reserves `len` bytes of zero-filled, read-write, private memory. Pages
    /// are committed on first touch; `MAP_NORESERVE` keeps a large, mostly
    /// unused reservation from counting against overcommit limits.
    pub(crate) fn reserve(len: usize) -> Result<NonNull<u8>, OsError> {
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing aliases nothing; we check for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(OsError { errno: errno() });
        }
        NonNull::new(ptr.cast()).ok_or(OsError { errno: 0 })
    }

    /// Commits the pages of `ptr..ptr + len` now, so later first touches
    /// neither fault nor enter the kernel.
    ///
    /// # Safety
    ///
    /// The range must lie inside one reservation from [`reserve`] whose
    /// contents nobody else is using yet (pages may be written with zeros).
    pub(crate) unsafe fn populate(ptr: *mut u8, len: usize) {
        if len == 0 {
            return;
        }
        // MADV_POPULATE_WRITE (Linux 5.14) faults the range in, writable, in
        // one call. The libc crate may not name it on every target, so spell
        // the constant (23 on every Linux architecture).
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        let start = ptr as usize & !(super::PAGE - 1);
        let end = (ptr as usize + len).next_multiple_of(super::PAGE);
        // SAFETY: the range is inside our own mapping (caller's contract);
        // madvise only changes residency, never contents of a fresh mapping.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, MADV_POPULATE_WRITE) };
        if rc != 0 {
            // Older kernel: touch one byte per page. The memory is still
            // zero and unshared, so writing a zero changes nothing visible.
            let mut page = start;
            while page < end {
                // SAFETY: `page` is inside the caller's range, rounded to
                // whole pages of the same mapping; volatile keeps the write.
                unsafe { core::ptr::write_volatile(page as *mut u8, 0) };
                page += super::PAGE;
            }
        }
    }

    /// Asks the kernel to back `ptr..ptr + len` with transparent huge pages
    /// (`madvise(MADV_HUGEPAGE)`). Returns whether the kernel accepted the
    /// advice; a refusal (a kernel built without THP, or THP set to `never`)
    /// is not an error: the range keeps working with base pages. Even when
    /// accepted, the kernel grants huge pages only where it can.
    ///
    /// # Safety
    ///
    /// The range must lie inside one reservation from [`reserve`] (the advice
    /// then changes only how this crate's own pages are backed, never their
    /// contents).
    pub(crate) unsafe fn advise_huge_pages(ptr: *mut u8, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let start = ptr as usize & !(super::PAGE - 1);
        let end = (ptr as usize + len).next_multiple_of(super::PAGE);
        // SAFETY: the page-rounded range is inside our own mapping (the
        // caller's contract, and reservations start and end on pages);
        // MADV_HUGEPAGE only changes how the range is backed.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        rc == 0
    }

    /// Returns a whole reservation to the OS with one `munmap`.
    ///
    /// # Safety
    ///
    /// `ptr` and `len` must be exactly a reservation from [`reserve`], and no
    /// reference into it may be used afterwards.
    pub(crate) unsafe fn release(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller hands us an entire mapping nobody uses any more.
        let rc = unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        // munmap of a mapping we own can only fail on a bug of ours; the
        // mapping then leaks, which is safe.
        debug_assert_eq!(rc, 0, "munmap failed: errno {}", errno());
    }

    /// Gives the physical pages of `ptr..ptr + len` back to the OS with
    /// `madvise(MADV_DONTNEED)`, keeping the address range mapped: the next
    /// touch of a page faults in a fresh zero page. Returns the bytes that
    /// were resident just before (counted with `mincore`), which is what the
    /// process's RSS drops by; 0 if the kernel refused the advice. (One
    /// exception: a page that was only ever *read* since it was last
    /// released maps the kernel's shared zero page, which `mincore` reports
    /// and RSS does not count. Free blocks are not read, so a trim meets
    /// that only where a program read memory it did not own.) A range with
    /// nothing resident is not advised at all.
    ///
    /// `MADV_DONTNEED`, not `MADV_FREE`: with `MADV_FREE` the kernel takes
    /// the pages only under memory pressure, so RSS (and `mincore`) would not
    /// change when the caller asked, and what a trim reports could not be
    /// checked; a page written again before reclaim would also keep its old
    /// contents instead of reading as zero.
    ///
    /// # Safety
    ///
    /// The range lies inside one reservation from [`reserve`], starts and
    /// ends on [`PAGE`](super::PAGE) boundaries, and nobody reads or writes
    /// it during the call (its contents are lost: it reads as zero after).
    pub(crate) unsafe fn discard(ptr: *mut u8, len: usize) -> usize {
        debug_assert!(ptr as usize % super::PAGE == 0 && len % super::PAGE == 0, "{ptr:p}+{len} is not whole pages");
        if len == 0 {
            return 0;
        }
        // SAFETY: the same range, inside our mapping (caller's contract).
        let resident = unsafe { resident_bytes(ptr, len) };
        if resident == 0 {
            // Nothing to give back (released by an earlier trim, or never
            // touched): spare the kernel the page-table walk.
            return 0;
        }
        // SAFETY: whole pages of our own private anonymous mapping that
        // nobody uses during the call (caller's contract); DONTNEED drops
        // their contents, which is what the caller asks for.
        let rc = unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return 0;
        }
        resident
    }

    /// Bytes of the whole pages `ptr..ptr + len` that are resident
    /// (`mincore`, a chunk of pages per call into a buffer on the stack:
    /// nothing here may allocate). 0 for a chunk the kernel will not report.
    ///
    /// # Safety
    ///
    /// The range lies inside one of our mappings and is page-aligned.
    unsafe fn resident_bytes(ptr: *mut u8, len: usize) -> usize {
        const CHUNK: usize = 512;
        let mut vec = [0u8; CHUNK];
        let pages = len / super::PAGE;
        let mut resident = 0;
        let mut done = 0;
        while done < pages {
            let n = (pages - done).min(CHUNK);
            let at = ptr.wrapping_add(done * super::PAGE);
            // SAFETY: `at..at + n pages` is inside the caller's range; the
            // kernel writes one byte per page into `vec`, which has room for
            // `CHUNK >= n`.
            let rc = unsafe { libc::mincore(at.cast(), n * super::PAGE, vec.as_mut_ptr()) };
            if rc == 0 {
                resident += vec[..n].iter().filter(|&&v| v & 1 != 0).count();
            }
            done += n;
        }
        resident * super::PAGE
    }

    /// Registers `pthread_atfork` handlers for the whole process; `false`
    /// if libc refused (out of memory).
    pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) -> bool {
        // SAFETY: the handlers are plain functions that live as long as the
        // process and only touch atomics.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
    }
}

#[cfg(any(miri, lockfree_slab_loom))]
mod imp {
    use super::{OsError, PAGE};
    use core::ptr::NonNull;
    use std::alloc::Layout;
    // Under loom the stand-in goes through loom's tracked allocation calls,
    // so every model also checks that each region is released exactly once
    // (a leak or a double release fails the model).
    #[cfg(lockfree_slab_loom)]
    use loom::alloc::{alloc_zeroed, dealloc};
    #[cfg(not(lockfree_slab_loom))]
    use std::alloc::{alloc_zeroed, dealloc};

    pub(crate) fn reserve(len: usize) -> Result<NonNull<u8>, OsError> {
        let layout = Layout::from_size_align(len, PAGE).map_err(|_| OsError { errno: libc::ENOMEM })?;
        // SAFETY: `len > 0`: a region always holds its control block, and
        // `Arena::new` refuses zero bytes before reserving.
        NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(OsError { errno: libc::ENOMEM })
    }

    /// # Safety
    ///
    /// As for the native version; here a no-op.
    pub(crate) unsafe fn populate(_ptr: *mut u8, _len: usize) {}

    /// # Safety
    ///
    /// As for the native version; here a no-op that reports a refusal (a
    /// heap stand-in has no huge pages to give).
    pub(crate) unsafe fn advise_huge_pages(_ptr: *mut u8, _len: usize) -> bool {
        false
    }

    /// # Safety
    ///
    /// `ptr` and `len` must be exactly a reservation from [`reserve`], and no
    /// reference into it may be used afterwards.
    pub(crate) unsafe fn release(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller hands back exactly what `reserve` allocated, with
        // the same length and alignment.
        unsafe { dealloc(ptr.as_ptr(), Layout::from_size_align_unchecked(len, PAGE)) }
    }

    /// The stand-in for `MADV_DONTNEED`: writes zeros over the range (what
    /// a released page reads as) and reports all of it as released. So a
    /// release of a block still in use corrupts its payload, which the loom
    /// models and the Miri tests check for. Any granularity is accepted, so
    /// the models can use pages of a few blocks.
    ///
    /// # Safety
    ///
    /// The range is valid for writes and nobody reads or writes it during
    /// the call.
    pub(crate) unsafe fn discard(ptr: *mut u8, len: usize) -> usize {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::write_bytes(ptr, 0, len) };
        len
    }
    /// Miri and loom cannot fork: nothing to register, and that is success.
    /// (The loom build has no fork gate at all.)
    #[cfg_attr(lockfree_slab_loom, allow(dead_code))]
    pub(crate) fn at_fork(_prepare: extern "C" fn(), _parent: extern "C" fn(), _child: extern "C" fn()) -> bool {
        true
    }
}

#[cfg_attr(lockfree_slab_loom, allow(unused_imports))]
pub(crate) use imp::at_fork;
pub(crate) use imp::{advise_huge_pages, discard, populate, release, reserve};

/// Writes `bytes` to stderr without allocating (the misuse checks' abort
/// message: the global allocator may be the one that found the misuse). A
/// closed or failing stderr ends the write; nothing is reported.
pub(crate) fn write_stderr(bytes: &[u8]) {
    let mut written = 0;
    while written < bytes.len() {
        // SAFETY: the pointer and length describe initialised bytes of
        // `bytes`; fd 2 is stderr (a closed fd makes write fail, which ends
        // the loop).
        let n = unsafe { libc::write(2, bytes[written..].as_ptr().cast(), bytes.len() - written) };
        if n <= 0 {
            return;
        }
        written += n as usize;
    }
}

/// A private, zero-filled scratch mapping, returned to the OS when dropped:
/// the trim's bitmap. It comes from [`reserve`], never from a Rust
/// allocator, because the slab may be the `#[global_allocator]` and the
/// trim must not call into it while it holds a class's free blocks (the
/// call could find that class dry and wait for the trim: for itself).
pub(crate) struct Scratch {
    ptr: core::ptr::NonNull<u8>,
    len: usize,
}

impl Scratch {
    /// At least `len` zero bytes, page-aligned; `None` if the OS refuses.
    pub(crate) fn new(len: usize) -> Option<Scratch> {
        let len = len.max(1).next_multiple_of(PAGE);
        reserve(len).ok().map(|ptr| Scratch { ptr, len })
    }

    /// The first byte; `len` bytes (rounded up to whole pages) are ours.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: exactly the reservation made in `new`, and the scratch is
        // not used after its drop.
        unsafe { release(self.ptr, self.len) }
    }
}

#[cfg(all(test, not(any(miri, lockfree_slab_loom))))]
mod tests {
    use super::*;

    #[test]
    fn reserve_populate_release() {
        let len = 64 * PAGE;
        let base = reserve(len).expect("a small reservation");
        assert_eq!(base.as_ptr() as usize % PAGE, 0);
        // SAFETY: inside the fresh reservation.
        unsafe {
            populate(base.as_ptr(), len);
            assert_eq!(*base.as_ptr().add(len - 1), 0, "fresh memory reads as zero");
            base.as_ptr().add(10 * PAGE).write(7);
            release(base, len);
        }
    }

    #[test]
    fn huge_page_advice_keeps_contents_and_the_mapping_usable() {
        let len = 1024 * PAGE; // 4 MiB: room for at least one 2 MiB huge page
        let base = reserve(len).expect("a small reservation");
        // SAFETY: inside the fresh reservation; released once at the end.
        unsafe {
            base.as_ptr().add(5).write(42);
            // Accepted or not (THP may be off on this machine), the advice
            // must leave the contents and the mapping as they were.
            let _accepted = advise_huge_pages(base.as_ptr(), len);
            assert_eq!(*base.as_ptr().add(5), 42);
            assert_eq!(*base.as_ptr().add(len - 1), 0);
            base.as_ptr().add(len - 1).write(9);
            assert_eq!(*base.as_ptr().add(len - 1), 9);
            release(base, len);
        }
    }

    #[test]
    fn discard_reports_resident_pages_and_leaves_zeros() {
        let len = 16 * PAGE;
        let base = reserve(len).expect("a small reservation");
        // SAFETY: inside the fresh reservation; released once at the end.
        unsafe {
            // Touch pages 2..6 only.
            for page in 2..6 {
                base.as_ptr().add(page * PAGE + 5).write(0xAB);
            }
            assert_eq!(discard(base.as_ptr(), 8 * PAGE), 4 * PAGE, "only touched pages count");
            assert_eq!(discard(base.as_ptr(), 8 * PAGE), 0, "nothing left to give back");
            assert_eq!(*base.as_ptr().add(3 * PAGE + 5), 0, "a discarded page reads as zero");
            base.as_ptr().add(3 * PAGE).write(1);
            assert_eq!(*base.as_ptr().add(3 * PAGE), 1, "the range stays mapped and usable");
            release(base, len);
        }
    }

    #[test]
    fn scratch_is_zeroed_and_page_aligned() {
        let s = Scratch::new(10).expect("a tiny mapping");
        assert_eq!(s.as_ptr() as usize % PAGE, 0);
        // SAFETY: at least one page of the scratch is ours.
        unsafe {
            assert_eq!(*s.as_ptr().add(PAGE - 1), 0);
            s.as_ptr().write(3);
        }
    }

    #[test]
    fn an_impossible_reservation_is_an_error_not_a_panic() {
        let err = reserve(usize::MAX / 2).expect_err("no machine has that much address space");
        assert_ne!(err.errno, 0);
    }
}
