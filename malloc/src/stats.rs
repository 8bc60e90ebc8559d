//! What the slab tells the world: the prefixed C entry points of
//! `include/lockfree_slab.h` (always exported, whatever the features), and
//! `LOCKFREE_SLAB_STATS=1`, which prints the stats table to stderr when the
//! process exits.
//!
//! The exit report runs from `.fini_array`, which the dynamic loader runs
//! after `main` returned (or `exit` was called), after the `atexit`
//! handlers and the main thread's thread-local destructors (so its cache
//! has been flushed). Whether to print is read with `getenv` in an
//! `.init_array` constructor, before `main` can change the environment.
//! The table is written with `write(2)` through a stack buffer; making the
//! snapshot allocates its vector (and the table's cells their strings)
//! through `malloc`, that is through the slab itself, outside any of its
//! operations — the report counts that one vector.

use core::ffi::{c_int, c_void};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::global::{slab, slab_if_ready, state_name};
use crate::sys;

/// The counters a C program can read (`struct lockfree_slab_stats` in
/// `include/lockfree_slab.h`; keep the two in the same order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockfreeSlabStats {
    /// Blocks the slab handed out, since the start.
    pub allocations: u64,
    /// Blocks given back to it, since the start.
    pub frees: u64,
    /// Blocks handed out and not freed yet.
    pub in_use: u64,
    /// Their bytes (whole blocks).
    pub bytes_in_use: u64,
    /// Free blocks held in threads' caches.
    pub in_caches: u64,
    /// Free blocks on the shared stacks.
    pub free_in_stacks: u64,
    /// Blocks carved from the region so far (`in_use + in_caches +
    /// free_in_stacks` when nothing is in flight).
    pub carved: u64,
    /// Bytes the allocations asked for: counted only with checks on, so 0
    /// here (the C ABI's allocator runs without them).
    pub requested_bytes: u64,
    /// Allocations served from a thread's cache without refilling it.
    pub cache_hits: u64,
    /// Threads holding a cache slot now.
    pub cached_threads: u64,
    /// The pool's capacity in bytes.
    pub capacity_bytes: u64,
    /// Address space reserved (metadata and spans), in bytes.
    pub reserved_bytes: u64,
}

/// Fills `*out` with a snapshot of the slab's counters. Returns 1 if the
/// slab is serving requests (building it if this is its first use), 0 if
/// not (it could not reserve its region; `*out` is then all zeros).
///
/// # Safety
///
/// `out` is NULL (nothing is written) or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn lockfree_slab_stats(out: *mut LockfreeSlabStats) -> c_int {
    let (ready, stats) = snapshot();
    if !out.is_null() {
        // SAFETY: writable (caller).
        unsafe { out.write(stats) };
    }
    c_int::from(ready)
}

fn snapshot() -> (bool, LockfreeSlabStats) {
    let Some(slab) = slab() else {
        return (false, LockfreeSlabStats::default());
    };
    let s = slab.stats();
    let t = &s.totals;
    let stats = LockfreeSlabStats {
        allocations: t.allocations,
        frees: t.frees,
        in_use: t.in_use,
        bytes_in_use: s.bytes_in_use(),
        in_caches: t.in_caches,
        free_in_stacks: t.free_in_stack,
        carved: t.carved,
        requested_bytes: t.requested_bytes,
        cache_hits: t.cache_hits,
        cached_threads: u64::from(s.cached_threads),
        capacity_bytes: s.capacity_bytes as u64,
        reserved_bytes: s.reserved_bytes as u64,
    };
    (true, stats)
}

/// Prints the stats table to stderr (what `LOCKFREE_SLAB_STATS=1` prints
/// at exit).
#[no_mangle]
pub extern "C" fn lockfree_slab_stats_print() {
    let mut out = StderrBuf::new();
    // The writer never fails: errors of write(2) are dropped.
    let _ = report(&mut out);
    out.flush();
}

fn report(out: &mut StderrBuf) -> fmt::Result {
    writeln!(out, "lockfree-slab (pid {}): {}", sys::pid(), state_name())?;
    let Some(slab) = slab_if_ready() else {
        return Ok(());
    };
    let stats = slab.stats();
    write!(out, "{stats}")?;
    let t = &stats.totals;
    writeln!(
        out,
        "lockfree-slab: {} allocations, {} frees, {} blocks in use, {} in caches, {} threads cached",
        t.allocations, t.frees, t.in_use, t.in_caches, stats.cached_threads
    )
}

/// Returns the calling thread's cached blocks to the shared stacks (threads
/// do this by themselves when they exit).
#[no_mangle]
pub extern "C" fn lockfree_slab_flush_thread_cache() {
    if let Some(slab) = slab_if_ready() {
        slab.flush_thread_cache();
    }
}

/// Gives the physical memory of the slab's free pages back to the OS
/// (`SlabAllocator::trim`); returns the bytes of RSS released.
#[no_mangle]
pub extern "C" fn lockfree_slab_trim() -> usize {
    slab_if_ready().map_or(0, |slab| slab.trim().released_bytes)
}

/// 1 if `ptr` points into the slab's region (a block it handed out), 0 if
/// not (NULL, glibc's blocks, anything else).
#[no_mangle]
pub extern "C" fn lockfree_slab_owns(ptr: *const c_void) -> c_int {
    c_int::from(slab_if_ready().is_some_and(|slab| slab.owns(ptr.cast())))
}

/// `LOCKFREE_SLAB_STATS` as it was at startup.
static SHOW_AT_EXIT: AtomicBool = AtomicBool::new(false);

extern "C" fn at_load() {
    // Relaxed: read at exit by the same process, after `main` (which
    // started after every constructor ran); no data hangs on it.
    SHOW_AT_EXIT.store(sys::env_flag(c"LOCKFREE_SLAB_STATS"), Ordering::Relaxed);
}

extern "C" fn at_exit() {
    // Relaxed: see `at_load`.
    if SHOW_AT_EXIT.load(Ordering::Relaxed) {
        lockfree_slab_stats_print();
    }
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;

/// Keeps the two hooks in the link: a static Rust binary (the `override`
/// feature) takes an object file of this crate from its archive only if
/// something refers to it, and nothing else refers to the hooks.
#[inline(never)]
pub(crate) fn keep_exit_hook() {
    core::hint::black_box((&AT_LOAD, &AT_EXIT));
}

/// A `fmt::Write` to stderr through a stack buffer: no allocation, one
/// `write(2)` per 4 KiB.
struct StderrBuf {
    buf: [u8; 4096],
    len: usize,
}

impl StderrBuf {
    fn new() -> Self {
        StderrBuf { buf: [0; 4096], len: 0 }
    }

    fn flush(&mut self) {
        sys::write_stderr(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for StderrBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}
