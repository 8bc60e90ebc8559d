//! The one door to the C library: glibc's own allocator entry points, which
//! serve every request the slab does not, and the few other calls this crate
//! makes (`errno`, `write(2)`, `getenv`, `sysconf`, `dlopen`/`dlsym`). No
//! other module calls into the C library (they use its constants).
//!
//! **No recursion.** This crate exports `malloc`, `free`, ... and so must
//! never call those names itself: under `LD_PRELOAD` (or the `override`
//! feature) they are *us*. glibc exports its allocator a second time under
//! names nobody interposes on — `__libc_malloc`, `__libc_calloc`,
//! `__libc_realloc`, `__libc_memalign`, `__libc_free` (GLIBC_2.2.5, part of
//! its public ABI, not `GLIBC_PRIVATE`). They are linked directly, so the
//! dynamic loader resolves each once, by name, in glibc alone: whatever else
//! is loaded, and in whatever order, these calls reach glibc's allocator.
//! The one glibc allocator function without such a twin is
//! `malloc_usable_size`; [`libc_usable_size`] looks glibc's up by handle
//! (`dlopen("libc.so.6", RTLD_NOLOAD)` + `dlsym`), once, the first time a
//! foreign pointer is asked about, and never from inside the allocator.
//!
//! glibc's blocks are glibc's: a pointer `__libc_*` returned is freed,
//! resized and measured by `__libc_*` again. Which one a pointer is is
//! decided by address (`SlabAllocator::owns`), never by bookkeeping.

// This is the one module allowed to call these (see the root .clippy.toml).
#![allow(clippy::disallowed_methods)]

use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_memalign(align: usize, size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
}

/// glibc's `malloc`.
///
/// # Safety
///
/// None beyond C's; unsafe because it is a foreign call.
#[inline]
pub(crate) unsafe fn libc_malloc(size: usize) -> *mut c_void {
    // SAFETY: glibc's malloc accepts any size (NULL + ENOMEM on failure).
    unsafe { __libc_malloc(size) }
}

/// glibc's `calloc` (it checks `count * size` for overflow itself).
///
/// # Safety
///
/// None beyond C's.
#[inline]
pub(crate) unsafe fn libc_calloc(count: usize, size: usize) -> *mut c_void {
    // SAFETY: any arguments are valid; overflow gives NULL + ENOMEM.
    unsafe { __libc_calloc(count, size) }
}

/// glibc's `realloc`.
///
/// # Safety
///
/// `ptr` is NULL or a live block of glibc's allocator.
#[inline]
pub(crate) unsafe fn libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded from the caller.
    unsafe { __libc_realloc(ptr, size) }
}

/// glibc's `memalign` (any alignment; it rounds up to a power of two).
///
/// # Safety
///
/// None beyond C's.
#[inline]
pub(crate) unsafe fn libc_memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: any arguments are valid (NULL + EINVAL/ENOMEM on failure).
    unsafe { __libc_memalign(align, size) }
}

/// glibc's `free`.
///
/// # Safety
///
/// `ptr` is NULL or a live block of glibc's allocator, freed once.
#[inline]
pub(crate) unsafe fn libc_free(ptr: *mut c_void) {
    // SAFETY: forwarded from the caller.
    unsafe { __libc_free(ptr) }
}

type UsableSize = unsafe extern "C" fn(*mut c_void) -> usize;

/// glibc's `malloc_usable_size`, found on first use: NULL until then.
static LIBC_USABLE_SIZE: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// glibc's `malloc_usable_size` of one of glibc's blocks; 0 if glibc's
/// function cannot be found (no `libc.so.6` loaded: not glibc).
///
/// # Safety
///
/// `ptr` is a live block of glibc's allocator.
pub(crate) unsafe fn libc_usable_size(ptr: *mut c_void) -> usize {
    // Acquire: pairs with the Release store below, so the pointer we call
    // was completely written (it is a plain function address; two threads
    // that both look it up store the same value).
    let mut found = LIBC_USABLE_SIZE.load(Ordering::Acquire);
    if found.is_null() {
        found = find_libc_usable_size();
        if found.is_null() {
            return 0;
        }
        // Release: pairs with the Acquire load above.
        LIBC_USABLE_SIZE.store(found, Ordering::Release);
    }
    // SAFETY: `found` is glibc's `malloc_usable_size`, whose C signature
    // is `size_t (void *)`; `ptr` is one of glibc's blocks (caller).
    unsafe { core::mem::transmute::<*mut c_void, UsableSize>(found)(ptr) }
}

/// `dlsym` of `malloc_usable_size` in glibc itself (by handle, not
/// `RTLD_NEXT`: the answer must not depend on what else is loaded, or in
/// which order). May allocate inside the loader, which is fine: this runs
/// on a caller's request, never inside one of the allocator's operations.
#[cold]
fn find_libc_usable_size() -> *mut c_void {
    // SAFETY: NUL-terminated literals; RTLD_NOLOAD only returns a handle to
    // an object already loaded (every dynamically linked glibc program has
    // libc.so.6 loaded), and we keep that reference for the process's life.
    unsafe {
        let handle = libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return core::ptr::null_mut();
        }
        libc::dlsym(handle, c"malloc_usable_size".as_ptr())
    }
}

/// Sets `errno` for the calling thread.
#[inline]
pub(crate) fn set_errno(value: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's life.
    unsafe { *libc::__errno_location() = value };
}

/// The calling thread's `errno`.
#[inline]
pub(crate) fn errno() -> c_int {
    // SAFETY: as in `set_errno`.
    unsafe { *libc::__errno_location() }
}

/// Writes all of `bytes` to stderr with `write(2)`; gives up quietly on an
/// error (stderr closed). Allocates nothing.
pub(crate) fn write_stderr(mut bytes: &[u8]) {
    let saved = errno();
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid, initialised slice for its length.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if written > 0 {
            bytes = &bytes[written as usize..];
        } else if written < 0 && errno() == libc::EINTR {
            continue;
        } else {
            break;
        }
    }
    set_errno(saved);
}

/// Whether the environment variable `name` is set to something other than
/// empty or "0". `getenv` only reads `environ`: it allocates nothing.
pub(crate) fn env_flag(name: &CStr) -> bool {
    // SAFETY: `name` is NUL-terminated; getenv returns NULL or a pointer to
    // a NUL-terminated string in the environment, which we only read here.
    unsafe {
        let value: *const c_char = libc::getenv(name.as_ptr());
        !value.is_null() && *value != 0 && CStr::from_ptr(value).to_bytes() != b"0"
    }
}

/// `getpid()`, for the stats header.
pub(crate) fn pid() -> i32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// The page size (a power of two; 4096 where sysconf cannot tell).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf only reads a value glibc keeps; it allocates nothing.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(page) {
        Ok(page) if page.is_power_of_two() => page,
        _ => 4096,
    }
}
