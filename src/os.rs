//! The one door to the operating system: reserve, pre-commit and release
//! address space. No other module calls `mmap`, `madvise` or `munmap`.
//!
//! Under Miri and loom, which cannot run `mmap`, a stand-in takes a zeroed,
//! page-aligned allocation from the system allocator with the same contract
//! (zero-filled, page-aligned); populate is then a no-op. What that leaves
//! unchecked there is the real system calls themselves, which the native test
//! suite covers.
//!
//! Nothing here allocates through the Rust global allocator, so the crate can
//! itself be the `#[global_allocator]` without recursing.

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
}

pub(crate) use imp::{advise_huge_pages, populate, release, reserve};

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
    fn an_impossible_reservation_is_an_error_not_a_panic() {
        let err = reserve(usize::MAX / 2).expect_err("no machine has that much address space");
        assert_ne!(err.errno, 0);
    }
}
