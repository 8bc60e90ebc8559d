//! Fixed-count hot-path driver for instruction-level profiling of the
//! cache-hit alloc+free pair (the comparison tool runs for a duration, which
//! is useless under valgrind). Run the pair loop `N` times for one
//! allocator:
//!
//! ```text
//! cargo build --release --example compare_hotpath
//! valgrind --tool=callgrind target/release/examples/compare_hotpath slab 64 1000000
//! ```
//!
//! and compare the instruction counts of two runs with different `N` to get
//! instructions per pair.

use std::alloc::System;

use lockfree_slab::{Profile, SlabAllocator};
use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

#[path = "../benches/common/mod.rs"]
mod common;
use common::*;

/// A `const`-built allocator, as a `#[global_allocator]` is declared. (Not
/// `new()`: valgrind cannot reserve the general profile's 64 GiB, and the
/// allocator would then hand everything to the system.)
static LAZY_STATIC: SlabAllocator = SlabAllocator::with_profile(Profile::Balanced);

/// Calls a `static` allocator through `GlobalAlloc`, as Rust's global
/// allocator shims do.
struct Global(&'static SlabAllocator);

impl BenchAlloc for Global {
    #[inline(always)]
    fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the pair loop never asks for zero bytes.
        let p = unsafe { std::alloc::GlobalAlloc::alloc(self.0, layout) };
        assert!(!p.is_null(), "the slab refused a small block");
        p
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `alloc` above with `layout` (caller).
        unsafe { std::alloc::GlobalAlloc::dealloc(self.0, ptr, layout) }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: compare_hotpath slab|slab-global|slab-checked|system|mimalloc|jemalloc|floor SIZE N";
    let (kind, size, n) = match &args[1..] {
        [k, s, n] => (k.as_str(), s.parse().expect(usage), n.parse().expect(usage)),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    };
    let l = layout(size);
    match kind {
        "slab" => pairs(&slab_fixed(), l, n, &mut NoProbe),
        // The `#[global_allocator]` path: a lazily built `static` through
        // `GlobalAlloc` (its first call builds it, outside the pair count
        // once N is large).
        "slab-global" => pairs(&Global(&LAZY_STATIC), l, n, &mut NoProbe),
        "slab-checked" => pairs(&slab_fixed_with_checks(true), l, n, &mut NoProbe),
        "system" => pairs(&Peer(System), l, n, &mut NoProbe),
        "mimalloc" => pairs(&Peer(MiMalloc), l, n, &mut NoProbe),
        #[cfg(not(target_env = "msvc"))]
        "jemalloc" => pairs(&Peer(Jemalloc), l, n, &mut NoProbe),
        "floor" => pairs(&FreeList::new(size), l, n, &mut NoProbe),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    }
}
