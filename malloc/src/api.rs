//! The C allocation family, with glibc's semantics: `malloc`, `free`,
//! `calloc`, `realloc`, `reallocarray`, `posix_memalign`, `aligned_alloc`,
//! `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`.
//!
//! With the `override` feature (the default) each is exported under its C
//! name; without it they are ordinary Rust functions of this crate.
//!
//! Every request goes to the slab first; whatever it does not serve goes to
//! glibc's own allocator (`sys.rs`), never to the exported names:
//!
//! ```text
//! malloc(n) ──> slab ready, n ≤ largest class ──> slab.allocate(n, align 16)
//!            └─ not ready (first use, being built, failed), too large,
//!               or AllocError (class dry) ──> __libc_malloc(n)
//! free(p)   ──> p inside the slab's region ──> slab.deallocate
//!            └─ anything else (NULL aside) ──> __libc_free(p)
//! ```
//!
//! - Every block is aligned to at least 16 bytes (`max_align_t`): the slab
//!   is asked for alignment 16, which picks the smallest class whose natural
//!   alignment is 16 or more.
//! - Failure is NULL with `errno = ENOMEM` (glibc sets it for the requests
//!   it serves); `posix_memalign` returns the error instead.
//! - `malloc(0)` returns a unique pointer (a block of the smallest class);
//!   `free(NULL)` does nothing; `realloc(NULL, n)` is `malloc(n)`;
//!   `realloc(p, 0)` frees `p` and returns NULL, as glibc does.
//! - `realloc` keeps a slab block where it is while the new size maps to
//!   the same class; otherwise it allocates, copies and frees. A block of
//!   glibc's is resized by glibc's `realloc` (which may grow in place or
//!   `mremap` a huge block): it stays glibc's.
//! - `aligned_alloc` wants a power of two (`EINVAL` otherwise, as glibc
//!   2.38 and C17 do; older glibc rounded up like `memalign`); `memalign`
//!   rounds a non-power of two up; `posix_memalign` wants a power of two
//!   that is a multiple of `sizeof(void *)` (`EINVAL`).
//! - `malloc_usable_size` is the block size of the class — all of it may
//!   be written — or glibc's answer for glibc's blocks, or 0 for NULL.
//! - C++: libstdc++'s `operator new`/`new[]` call `malloc`, its aligned
//!   forms call `aligned_alloc`, and every `operator delete` (sized and
//!   aligned included) calls `free`, so they all reach these functions
//!   (`tests/c/cxx_new.cpp` checks it).
//!
//! Nothing here panics: sizes are checked before a `Layout` is made, and the
//! slab answers failure with `AllocError`. (Only the main crate's `checks`
//! feature, a debugging aid, reports misuse with a panic, which aborts at
//! this `extern "C"` boundary.)

use core::alloc::Layout;
use core::ffi::{c_int, c_void};
use core::ptr::{self, NonNull};

use crate::global::{largest, slab, slab_if_ready};
use crate::sys;

/// The alignment of every block (`alignof(max_align_t)` on x86_64 and
/// aarch64 Linux, and glibc's `MALLOC_ALIGNMENT`).
pub const MIN_ALIGN: usize = 16;

/// The largest alignment the slab serves from a class (a page); larger
/// ones go to glibc.
const MAX_SLAB_ALIGN: usize = lockfree_slab::MAX_ALIGN;

/// The layout handed to `SlabAllocator::deallocate` for a block of the
/// slab: it finds the class from the address and reads the layout only for
/// blocks outside its region, which never reach it from here.
const ANY_LAYOUT: Layout = Layout::new::<u8>();

/// A layout the slab may serve. Size 0 is asked as 1: the slab answers a
/// zero-size request whose class is dry with a dangling pointer (valid for
/// Rust, which never frees it to anyone else), but a C caller must get a
/// real block or NULL, so a dry class must mean glibc.
///
/// # Safety
///
/// `size <= largest()` (at most `MAX_CLASS_SIZE`, far below `isize::MAX`)
/// and `align` is a power of two.
#[inline(always)]
unsafe fn layout(size: usize, align: usize) -> Layout {
    debug_assert!(size <= lockfree_slab::MAX_CLASS_SIZE && align.is_power_of_two());
    // SAFETY: the caller's bounds: `align` is a power of two and `size`
    // rounded up to it cannot overflow `isize`.
    unsafe { Layout::from_size_align_unchecked(size.max(1), align) }
}

/// `malloc(size)`: a block of at least `size` bytes aligned to 16, or NULL
/// with `errno = ENOMEM`.
///
/// # Safety
///
/// None beyond C's; the block must be freed with this crate's `free`.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    if let Some(slab) = slab() {
        if size <= largest() {
            // SAFETY: `size <= largest()`; 16 is a power of two.
            if let Ok(block) = slab.allocate(unsafe { layout(size, MIN_ALIGN) }) {
                return block.as_ptr().cast();
            }
        }
    }
    // SAFETY: a plain call into glibc's allocator.
    unsafe { sys::libc_malloc(size) }
}

/// `free(ptr)`: NULL does nothing; a block of the slab goes back to it,
/// anything else to glibc.
///
/// # Safety
///
/// `ptr` is NULL or a live block from this family, freed once.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    if let Some(slab) = slab_if_ready() {
        if slab.owns(ptr.cast()) {
            // SAFETY: a live block of the slab (caller), non-null; the slab
            // finds its class from the address (`ANY_LAYOUT`).
            unsafe { slab.deallocate(NonNull::new_unchecked(ptr.cast()), ANY_LAYOUT) };
            return;
        }
    }
    // SAFETY: not the slab's, so one of glibc's (caller: a live block of
    // this family), freed once.
    unsafe { sys::libc_free(ptr) }
}

/// `calloc(count, size)`: `count * size` zeroed bytes; NULL with
/// `errno = ENOMEM` if the product overflows or memory is short.
///
/// # Safety
///
/// None beyond C's.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        sys::set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    if let Some(slab) = slab() {
        if total <= largest() {
            // Not `allocate_zeroed`: for blocks of 4 KiB and up it takes
            // never-used blocks (zero without a memset) as long as the class
            // has any, so a program that callocs and frees in a loop would
            // fault in fresh pages forever instead of reusing its freed
            // blocks. A reused block is zeroed here instead.
            // SAFETY: `total <= largest()`; 16 is a power of two.
            if let Ok(block) = slab.allocate(unsafe { layout(total, MIN_ALIGN) }) {
                // SAFETY: the block holds at least `total` bytes and is ours.
                unsafe { block.as_ptr().write_bytes(0, total) };
                return block.as_ptr().cast();
            }
        }
    }
    // SAFETY: a plain call into glibc's allocator.
    unsafe { sys::libc_calloc(count, size) }
}

/// `realloc(ptr, size)`, as glibc: `realloc(NULL, n)` is `malloc(n)`,
/// `realloc(p, 0)` frees `p` and returns NULL; on failure NULL with
/// `errno = ENOMEM` and `ptr` untouched.
///
/// # Safety
///
/// `ptr` is NULL or a live block from this family; on success it must not
/// be used again (unless returned).
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        // SAFETY: forwarded.
        return unsafe { malloc(size) };
    }
    let Some(slab) = slab_if_ready() else {
        // SAFETY: the slab has handed nothing out yet, so `ptr` is glibc's.
        return unsafe { sys::libc_realloc(ptr, size) };
    };
    // SAFETY: `ptr` is non-null (checked above).
    let block = unsafe { NonNull::new_unchecked(ptr.cast::<u8>()) };
    let Some(old_size) = slab.usable_size(block) else {
        // SAFETY: outside the slab: a live block of glibc's (caller).
        return unsafe { sys::libc_realloc(ptr, size) };
    };
    if size == 0 {
        // SAFETY: a live block of the slab (caller), freed once.
        unsafe { slab.deallocate(block, ANY_LAYOUT) };
        return ptr::null_mut();
    }
    // SAFETY: `size <= largest()`; 16 is a power of two.
    if size <= largest() && slab.resize_in_place(block, unsafe { layout(size, MIN_ALIGN) }).is_some() {
        return ptr;
    }
    // SAFETY: forwarded.
    let new = unsafe { malloc(size) };
    if new.is_null() {
        return new; // errno is ENOMEM; the old block stays valid
    }
    // SAFETY: both blocks are live and distinct; the old one holds
    // `old_size` bytes, the new one at least `size`.
    unsafe {
        ptr::copy_nonoverlapping(ptr.cast::<u8>(), new.cast::<u8>(), old_size.min(size));
        slab.deallocate(block, ANY_LAYOUT);
    }
    new
}

/// `reallocarray(ptr, count, size)`: `realloc(ptr, count * size)`, or NULL
/// with `errno = ENOMEM` (and `ptr` untouched) if the product overflows.
///
/// # Safety
///
/// As for [`realloc`].
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        // SAFETY: forwarded.
        Some(total) => unsafe { realloc(ptr, total) },
        None => {
            sys::set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// An aligned block; `align` is a power of two. NULL with `errno` set on
/// failure.
///
/// # Safety
///
/// None beyond C's.
unsafe fn aligned(align: usize, size: usize) -> *mut c_void {
    if align <= MIN_ALIGN {
        // SAFETY: forwarded.
        return unsafe { malloc(size) };
    }
    if let Some(slab) = slab() {
        if size <= largest() && align <= MAX_SLAB_ALIGN {
            // SAFETY: `size <= largest()`; `align` is a power of two.
            if let Ok(block) = slab.allocate(unsafe { layout(size, align) }) {
                return block.as_ptr().cast();
            }
        }
    }
    // SAFETY: a plain call into glibc's allocator.
    unsafe { sys::libc_memalign(align, size) }
}

/// `posix_memalign(out, align, size)`: 0 and `*out` set, `EINVAL` if
/// `align` is not a power of two multiple of `sizeof(void *)`, `ENOMEM`.
///
/// # Safety
///
/// `out` is valid for a write of a pointer.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    // SAFETY: `align` is a power of two.
    let block = unsafe { aligned(align, size) };
    if block.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: `out` is writable (caller).
    unsafe { out.write(block) };
    0
}

/// `aligned_alloc(align, size)`: NULL with `errno = EINVAL` unless `align`
/// is a power of two (glibc 2.38, C17).
///
/// # Safety
///
/// None beyond C's.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        sys::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: `align` is a power of two.
    unsafe { aligned(align, size) }
}

/// `memalign(align, size)`, as glibc: an alignment that is not a power of
/// two is rounded up to one; one above `SIZE_MAX / 2 + 1` is `EINVAL`.
///
/// # Safety
///
/// None beyond C's.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        sys::set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    // SAFETY: a power of two (at most 2^63 by the check above).
    unsafe { aligned(align.next_power_of_two(), size) }
}

/// `valloc(size)`: `memalign(page size, size)`.
///
/// # Safety
///
/// None beyond C's.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: the page size is a power of two.
    unsafe { aligned(sys::page_size(), size) }
}

/// `pvalloc(size)`: `size` rounded up to whole pages, page-aligned; NULL
/// with `errno = ENOMEM` if the rounding overflows.
///
/// # Safety
///
/// None beyond C's.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = sys::page_size();
    let Some(rounded) = size.checked_next_multiple_of(page) else {
        sys::set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // SAFETY: the page size is a power of two.
    unsafe { aligned(page, rounded) }
}

/// `malloc_usable_size(ptr)`: how many bytes of the block may be used —
/// its class's block size for the slab's blocks, glibc's answer for
/// glibc's, 0 for NULL.
///
/// # Safety
///
/// `ptr` is NULL or a live block from this family.
#[cfg_attr(feature = "override", no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return 0;
    };
    if let Some(size) = slab_if_ready().and_then(|slab| slab.usable_size(block)) {
        return size;
    }
    // SAFETY: outside the slab: a live block of glibc's (caller).
    unsafe { sys::libc_usable_size(ptr) }
}
