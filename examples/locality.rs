//! Locality of reuse, for each allocator side by side in one process (each
//! an independent instance, not the global allocator):
//!
//! - **Spatial locality.** A heap is aged (200,000 blocks of a small-size
//!   mix allocated, a random half freed), then 1,000 consecutive
//!   allocations of the same mix are made: how many distinct 4 KiB pages and
//!   64-byte lines do they land on? Fewer means objects built together sit
//!   together. The fresh-heap figure (no ageing) is the best case.
//! - **False sharing.** The cache-scratch pattern (after Hoard's benchmark):
//!   the main thread allocates one 8-byte object per worker, side by side,
//!   and hands one to each worker, which frees it and then repeatedly
//!   allocates an 8-byte object, writes it 100 times and frees it. If an
//!   allocator hands a worker a block on a line another worker is writing,
//!   the two cores fight over that line. Reported: ns per round with two
//!   workers at once over one worker alone (1.0 is no interference).
//!
//! ```sh
//! cargo run --release --example locality
//! ```

use std::alloc::{Layout, System};
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

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
const ROUNDS: usize = 200_000;
const WRITES: usize = 100;

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

/// ns per round of the cache-scratch worker, with `workers` at once.
fn scratch(a: &Arc<dyn BenchAlloc + Send + Sync>, workers: usize) -> f64 {
    let l = Layout::from_size_align(8, 8).unwrap();
    let handed: Vec<usize> = (0..workers).map(|_| a.alloc(l) as usize).collect();
    let start = Arc::new(Barrier::new(workers + 1));
    let threads: Vec<_> = handed
        .into_iter()
        .map(|p| {
            let (a, start) = (Arc::clone(a), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let begin = Instant::now();
                // SAFETY: the main thread allocated it with `l` for us.
                unsafe { a.dealloc(p as *mut u8, l) };
                for _ in 0..ROUNDS {
                    let q = a.alloc(l);
                    for w in 0..WRITES {
                        // SAFETY: a live 8-byte block of ours.
                        unsafe { q.cast::<u64>().write_volatile(w as u64) };
                    }
                    // SAFETY: allocated just above with `l`.
                    unsafe { a.dealloc(black_box(q), l) };
                }
                begin.elapsed().as_nanos() as f64 / ROUNDS as f64
            })
        })
        .collect();
    start.wait();
    let times: Vec<f64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    times.iter().sum::<f64>() / times.len() as f64
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
    println!();
    println!("False sharing (cache-scratch, 8-B objects handed out side by side, {WRITES} writes per round):");
    println!("{:<16} {:>14} {:>14} {:>10}", "allocator", "1 worker ns", "2 workers ns", "2 / 1");
    for (name, a) in &allocators {
        // Alternate the two shapes three times each; keep the best of each.
        let (mut one, mut two) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            one = one.min(scratch(a, 1));
            two = two.min(scratch(a, 2));
        }
        println!("{name:<16} {one:>14.1} {two:>14.1} {:>10.2}", two / one);
    }
}
