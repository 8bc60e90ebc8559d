//! Spatial locality of reuse, for each allocator side by side in one process
//! (each an independent instance, not the global allocator): a heap is aged
//! (200,000 blocks of a small-size mix allocated, a random half freed), then
//! 1,000 consecutive allocations of the same mix are made: how many distinct
//! 4 KiB pages and 64-byte lines do they land on? Fewer means objects built
//! together sit together. The fresh-heap figure (no ageing) is the best case.
//!
//! False sharing is measured by the C ABI's `malloc/bench/cache_scratch.c`
//! (Hoard's cache-scratch, under `LD_PRELOAD`): a Rust rendition with 8-byte
//! words showed no interference for any allocator on the 2-vCPU machine,
//! where the C one, updating bytes, does.
//!
//! ```sh
//! cargo run --release --example locality
//! ```

use std::alloc::{Layout, System};
use std::collections::HashSet;
use std::sync::Arc;

use lockfree_slab::SlabAllocator;
use mimalloc::MiMalloc;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{BenchAlloc, Peer};

const AGED_BLOCKS: usize = 200_000;
const WINDOW: usize = 1_000;
const WINDOWS: usize = 20;

/// A small-size mix like a parser's: mostly 8–64 B, some up to 256 B.
fn size(rng: &mut SmallRng) -> usize {
    match rng.random_range(0..100) {
        0..=59 => rng.random_range(1..=8) * 8,
        60..=89 => rng.random_range(9..=16) * 8,
        _ => rng.random_range(17..=32) * 8,
    }
}

/// Median distinct pages and lines per [`WINDOW`] consecutive allocations,
/// on a fresh heap and on an aged one.
fn spatial(a: &(impl BenchAlloc + ?Sized)) -> [usize; 4] {
    let mut rng = SmallRng::seed_from_u64(7);
    let window = |rng: &mut SmallRng| {
        let blocks: Vec<(*mut u8, Layout)> = (0..WINDOW)
            .map(|_| {
                let l = Layout::from_size_align(size(rng), 8).unwrap();
                (a.alloc(l), l)
            })
            .collect();
        let pages: HashSet<usize> = blocks.iter().map(|&(p, _)| p as usize >> 12).collect();
        let lines: HashSet<usize> = blocks.iter().map(|&(p, _)| p as usize >> 6).collect();
        (pages.len(), lines.len(), blocks)
    };
    let free = |blocks: Vec<(*mut u8, Layout)>| {
        for (p, l) in blocks {
            // SAFETY: allocated above with `l`, freed once.
            unsafe { a.dealloc(p, l) };
        }
    };
    let (fresh_pages, fresh_lines, first) = window(&mut rng);
    free(first);
    // Age the heap: many blocks, a random half freed in random order.
    let mut aged: Vec<(*mut u8, Layout)> = (0..AGED_BLOCKS)
        .map(|_| {
            let l = Layout::from_size_align(size(&mut rng), 8).unwrap();
            (a.alloc(l), l)
        })
        .collect();
    for i in (1..aged.len()).rev() {
        aged.swap(i, rng.random_range(0..=i));
    }
    let kept = aged.split_off(AGED_BLOCKS / 2);
    free(aged);
    let mut pages = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..WINDOWS {
        let (p, l, blocks) = window(&mut rng);
        pages.push(p);
        lines.push(l);
        free(blocks);
    }
    free(kept);
    pages.sort_unstable();
    lines.sort_unstable();
    [fresh_pages, fresh_lines, pages[WINDOWS / 2], lines[WINDOWS / 2]]
}

fn main() {
    let slab = SlabAllocator::builder().build().expect("the general-purpose configuration");
    let allocators: Vec<(&str, Arc<dyn BenchAlloc + Send + Sync>)> = vec![
        ("lockfree-slab", Arc::new(slab)),
        ("mimalloc", Arc::new(Peer(MiMalloc))),
        #[cfg(not(target_env = "msvc"))]
        ("jemalloc", Arc::new(Peer(Jemalloc))),
        ("system (glibc)", Arc::new(Peer(System))),
    ];
    println!("Spatial locality: distinct 4 KiB pages / 64-B lines per {WINDOW} consecutive allocations of 8–256 B");
    println!("(fresh heap; aged heap: {AGED_BLOCKS} blocks allocated, a random half freed; median of {WINDOWS})");
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>12}",
        "allocator", "fresh pages", "fresh lines", "aged pages", "aged lines"
    );
    for (name, a) in &allocators {
        let [fp, fl, ap, al] = spatial(&**a);
        println!("{name:<16} {fp:>12} {fl:>12} {ap:>12} {al:>12}");
    }
}
