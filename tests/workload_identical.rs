// Own test binary: it has its own #[global_allocator] and re-executes itself to run the workload on System.
//! The real-program workload (`examples/workload/mod.rs`: serde_json and
//! regex on several threads) gives the same digest on lockfree-slab as on the
//! system allocator.
//!
//! A process has one global allocator, fixed at compile time, so the two
//! runs must be two processes. Rather than build the `workload_system`
//! example from inside a test (nested cargo) or hunt for its binary in the
//! target directory (absent after `cargo test --test workload_identical`),
//! this binary re-executes *itself*: its global allocator is [`Chosen`],
//! which forwards every call to the slab unless the process was started with
//! `LFS_WORKLOAD_ON_SYSTEM` set, in which case it forwards to `System`. The
//! choice is made once, at the process's first allocation (before `main`,
//! single-threaded), by `getenv` — which does not allocate — and never
//! changes, so every block is freed by the allocator that made it.
//!
//! The parent computes the digest in-process on the slab and checks that the
//! slab really served the work; the child computes it on `System`, checks that
//! the slab served nothing, and prints it; the parent compares the two.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

use lockfree_slab::SlabAllocator;

#[path = "../examples/workload/mod.rs"]
mod workload;

const ON_SYSTEM: &str = "LFS_WORKLOAD_ON_SYSTEM";
const TEST_NAME: &str = "slab_and_system_give_the_same_digest";

static SLAB: SlabAllocator = SlabAllocator::new();

const UNDECIDED: u8 = 0;
const USE_SLAB: u8 = 1;
const USE_SYSTEM: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// Slab or `System`, chosen once per process from the environment.
struct Chosen;

impl Chosen {
    #[inline]
    fn on_system() -> bool {
        // Relaxed: the value is written once, before any other thread exists
        // (the runtime's first allocation), and every later writer would write
        // the same value.
        match MODE.load(Ordering::Relaxed) {
            USE_SLAB => false,
            USE_SYSTEM => true,
            _ => {
                // SAFETY: a NUL-terminated name; `getenv` does not allocate,
                // and nothing modifies the environment while it runs (this is
                // the process's first allocation, before `main`).
                let set = !unsafe { libc::getenv(c"LFS_WORKLOAD_ON_SYSTEM".as_ptr()) }.is_null();
                MODE.store(if set { USE_SYSTEM } else { USE_SLAB }, Ordering::Relaxed);
                set
            }
        }
    }
}

// SAFETY: every call is forwarded to one allocator for the whole life of the
// process (the mode never changes once decided), so each block is freed,
// grown or shrunk by the allocator that made it; both satisfy `GlobalAlloc`.
unsafe impl GlobalAlloc for Chosen {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            if Self::on_system() {
                System.alloc(layout)
            } else {
                SLAB.alloc(layout)
            }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        unsafe {
            if Self::on_system() {
                System.alloc_zeroed(layout)
            } else {
                SLAB.alloc_zeroed(layout)
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract; same allocator as the allocation.
        unsafe {
            if Self::on_system() {
                System.dealloc(ptr, layout)
            } else {
                SLAB.dealloc(ptr, layout)
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract; same allocator as the allocation.
        unsafe {
            if Self::on_system() {
                System.realloc(ptr, layout, new_size)
            } else {
                SLAB.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[global_allocator]
static GLOBAL: Chosen = Chosen;

#[test]
fn slab_and_system_give_the_same_digest() {
    let digest = workload::run(workload::Size::SMALL);
    let slab = SLAB.stats();
    if Chosen::on_system() {
        // The child: report, for the parent to compare.
        println!("slab-allocations: {}", slab.totals.allocations + slab.oversize_fallbacks);
        println!("digest: {digest:016x}");
        return;
    }
    assert!(slab.is_consistent(), "{slab}");
    assert!(slab.totals.allocations > 100_000, "the slab should have served the workload's allocations:\n{slab}");

    let exe = std::env::current_exe().expect("path of this test binary");
    let out = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(ON_SYSTEM, "1")
        .output()
        .expect("re-run this test binary on the system allocator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the system-allocator run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // libtest prints "test <name> ... " on the same line as the first field.
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(name).map(|(_, value)| value))
            .unwrap_or_else(|| panic!("no {name:?} line in the child's output:\n{stdout}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("slab-allocations:"), "0", "the child must not have used the slab");
    assert_eq!(
        field("digest:"),
        format!("{digest:016x}"),
        "the workload computed different results on the system allocator and on the slab"
    );
}
