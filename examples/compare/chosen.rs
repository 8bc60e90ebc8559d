//! The global allocator of the comparison tool (and of `tests/real_programs.rs`):
//! one of lockfree-slab, the system allocator, mimalloc or jemalloc, chosen
//! once per process from the environment variable [`ENV`].
//!
//! A process has one `#[global_allocator]`, fixed at compile time, so to run
//! the real programs on four allocators the tool re-executes itself four
//! times with `ENV` set to `slab`, `system`, `mimalloc` or `jemalloc`. Unset
//! (the tool itself, the microbenchmark sections), the system allocator
//! serves every call, as it would with no `#[global_allocator]` at all.
//!
//! The choice is made at the process's first allocation (before `main`,
//! single-threaded) by `getenv`, which does not allocate, and never changes,
//! so every block is freed, grown or shrunk by the allocator that made it.
//!
//! **Dispatch cost.** Every call, for every allocator, is one relaxed load
//! of the mode and one jump on it; rustc compiles the `match` to a jump
//! table (load, bounds check, indexed indirect jump, always to the same
//! target, so always predicted), the same instructions whichever allocator
//! the table leads to. Each arm is a direct, inlinable call of that
//! allocator's own `GlobalAlloc` method, exactly what
//! `#[global_allocator] static A: Allocator` would compile to: the slab's
//! hot path is inlined as it is for its users; mimalloc's, jemalloc's and
//! glibc's entry points are C functions, called as their Rust wrappers call
//! them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use lockfree_slab::SlabAllocator;
use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

/// The variable that names the allocator: `slab`, `system`, `mimalloc` or
/// `jemalloc` (the allocator flags of `--allocators`).
pub const ENV: &str = "LFS_COMPARE_GLOBAL";

/// The lockfree-slab instance, `const`-built as its users' global allocators are.
pub static SLAB: SlabAllocator = SlabAllocator::new();

/// Which allocator serves this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Global {
    System = 1,
    Slab = 2,
    Mimalloc = 3,
    Jemalloc = 4,
}

const UNDECIDED: u8 = 0;

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);

impl Global {
    /// The allocator serving this process (decides it if nothing has allocated yet).
    pub fn current() -> Global {
        match mode() {
            2 => Global::Slab,
            3 => Global::Mimalloc,
            4 => Global::Jemalloc,
            _ => Global::System,
        }
    }

    /// The value of [`ENV`] that selects this allocator.
    pub fn flag(self) -> &'static str {
        match self {
            Global::System => "system",
            Global::Slab => "slab",
            Global::Mimalloc => "mimalloc",
            Global::Jemalloc => "jemalloc",
        }
    }
}

/// The mode, deciding it if nothing has allocated yet.
fn mode() -> u8 {
    // Relaxed: see `dispatch!`.
    match MODE.load(Ordering::Relaxed) {
        UNDECIDED => decide(),
        m => m,
    }
}

#[cold]
fn decide() -> u8 {
    // SAFETY: a NUL-terminated name; `getenv` does not allocate, and nothing
    // modifies the environment while it runs (this is the process's first
    // allocation, before `main`).
    let value = unsafe { libc::getenv(c"LFS_COMPARE_GLOBAL".as_ptr()) };
    let chosen = if value.is_null() {
        Global::System
    } else {
        // SAFETY: `getenv` returned a NUL-terminated string that stays valid
        // while the environment is not modified (see above).
        let bytes = unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes();
        match bytes {
            b"slab" => Global::Slab,
            b"mimalloc" => Global::Mimalloc,
            #[cfg(not(target_env = "msvc"))]
            b"jemalloc" => Global::Jemalloc,
            // Anything else is the system allocator; the tool checks the
            // child's report of `Global::current()` against what it asked for.
            _ => Global::System,
        }
    };
    MODE.store(chosen as u8, Ordering::Relaxed);
    chosen as u8
}

/// The tool's `#[global_allocator]` (see the module docs).
pub struct Chosen;

/// Forwards one `GlobalAlloc` call to the allocator of this process: one
/// load, then one jump over the four arms (and a fifth, taken once, that
/// decides and calls again).
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        // Relaxed: the mode is written before any second thread exists (at
        // the process's first allocation), and any later writer would write
        // the same value.
        match MODE.load(Ordering::Relaxed) {
            1 => System.$method($($arg),*),
            2 => SLAB.$method($($arg),*),
            3 => MiMalloc.$method($($arg),*),
            #[cfg(not(target_env = "msvc"))]
            4 => Jemalloc.$method($($arg),*),
            _ => {
                decide();
                $self.$method($($arg),*)
            }
        }
    };
}

// SAFETY: every call is forwarded to one allocator for the whole life of the
// process (the mode never changes once decided), so each block is freed,
// grown or shrunk by the allocator that made it; all four satisfy `GlobalAlloc`.
unsafe impl GlobalAlloc for Chosen {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { dispatch!(self.alloc(layout)) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe { dispatch!(self.alloc_zeroed(layout)) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract; the same allocator made `ptr`.
        unsafe { dispatch!(self.dealloc(ptr, layout)) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract; the same allocator made `ptr`.
        unsafe { dispatch!(self.realloc(ptr, layout, new_size)) }
    }
}
