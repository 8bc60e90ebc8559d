//! `Builder::huge_pages` on a large working set: the same allocator with and
//! without `MADV_HUGEPAGE` on its spans.
//!
//! The working set (512 MiB by default) is blocks of 64 B to 4 KiB, as many
//! of each class (so most bytes are in 4 KiB blocks). Three measurements:
//!
//! - `fill`: build the allocator, allocate the whole working set and write
//!   every block once: the first-touch cost (4 KiB or 2 MiB page faults).
//! - `touch`: read-modify-write one word at a random offset of a random
//!   live block, 4096 times: TLB reach, the thing huge pages are for.
//! - `churn`: free a random live block and allocate a block of the same
//!   class (the thread cache hands the same block back), then write it:
//!   allocator work spread over the whole working set.
//!
//! Before the timed runs it prints, for each setting, the kernel's THP mode
//! (`/sys/kernel/mm/transparent_hugepage/enabled`) and the process's `Rss`
//! and `AnonHugePages` (`/proc/self/smaps_rollup`) with the working set
//! live, so one can see whether the kernel granted huge pages at all.
//!
//! `cargo bench --bench huge_pages` (about two minutes);
//! `LFS_HUGE_MIB=1024 cargo bench --bench huge_pages` for another size.
//! With `--test` (the CI smoke run) the working set is 8 MiB.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use lockfree_slab::{Fallback, SlabAllocator};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

#[path = "common/mod.rs"]
mod common;

/// Block sizes; the working set holds as many blocks of each.
const CLASSES: [usize; 4] = [64, 256, 1024, 4096];
/// Percent of the pool per class: about each class's share of the bytes
/// (64 : 256 : 1024 : 4096 by count), with room to spare.
const SPLIT: [u8; 4] = [2, 6, 22, 70];
/// Random accesses per timed iteration of `touch` and `churn`.
const STEPS: usize = 4096;

fn working_set_bytes() -> usize {
    let test_mode = std::env::args().any(|a| a == "--test");
    let mib = std::env::var("LFS_HUGE_MIB").ok().and_then(|v| v.parse().ok());
    mib.unwrap_or(if test_mode { 8 } else { 512 }) << 20
}

/// An allocator and a working set of live blocks in it.
struct WorkingSet {
    slab: SlabAllocator,
    blocks: Vec<(NonNull<u8>, usize)>,
    rng: SmallRng,
}

impl WorkingSet {
    /// Builds the allocator (pool: twice the working set) and fills it.
    fn fill(huge_pages: bool, bytes: usize) -> WorkingSet {
        let slab = SlabAllocator::builder()
            .size_classes(&CLASSES)
            .split(&SPLIT)
            .capacity(2 * bytes)
            .huge_pages(huge_pages)
            .fallback(Fallback::Error)
            .build()
            .expect("a valid configuration");
        let per_round: usize = CLASSES.iter().sum();
        let mut blocks = Vec::with_capacity(bytes / per_round * CLASSES.len());
        for round in 0..bytes / per_round {
            for size in CLASSES {
                let p = slab.allocate(layout(size)).expect("the pool holds the working set");
                // SAFETY: a fresh block of `size` bytes.
                unsafe { p.as_ptr().write_bytes(round as u8, size) };
                blocks.push((p, size));
            }
        }
        WorkingSet { slab, blocks, rng: SmallRng::seed_from_u64(7) }
    }

    fn pick(&mut self) -> usize {
        self.rng.random_range(0..self.blocks.len())
    }

    /// One word at a random offset of `STEPS` random blocks.
    fn touch(&mut self) {
        for _ in 0..STEPS {
            let i = self.pick();
            let (p, size) = self.blocks[i];
            let offset = self.rng.random_range(0..size) & !7;
            // SAFETY: `offset + 8 <= size` (sizes are multiples of 8) and the
            // block is live; blocks are at least 8-aligned.
            unsafe {
                let word = p.as_ptr().add(offset).cast::<u64>();
                word.write(black_box(word.read()).wrapping_add(1));
            }
        }
    }

    /// `STEPS` times: free a random block, allocate one of its class, write
    /// its first and last word.
    fn churn(&mut self) {
        for _ in 0..STEPS {
            let i = self.pick();
            let (p, size) = self.blocks[i];
            // SAFETY: a live block of `slab`, allocated with this layout.
            unsafe { self.slab.deallocate(p, layout(size)) };
            let q = self.slab.allocate(layout(size)).expect("a block of this class was just freed");
            // SAFETY: a fresh block of `size >= 16` bytes, 8-aligned.
            unsafe {
                q.as_ptr().cast::<u64>().write(i as u64);
                q.as_ptr().add(size - 8).cast::<u64>().write(i as u64);
            }
            self.blocks[i] = (q, size);
        }
    }
}

impl Drop for WorkingSet {
    fn drop(&mut self) {
        for &(p, size) in &self.blocks {
            // SAFETY: every block is live and was allocated with this layout.
            unsafe { self.slab.deallocate(p, layout(size)) };
        }
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("small sizes")
}

fn mode(huge_pages: bool) -> &'static str {
    if huge_pages {
        "huge_pages on"
    } else {
        "huge_pages off"
    }
}

/// `Rss` and `AnonHugePages` of this process, in KiB (Linux only).
fn smaps_rollup() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("Rss:")?, field("AnonHugePages:")?))
}

fn report(huge_pages: bool, bytes: usize) {
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .map_or_else(|_| "unknown (no /sys/kernel/mm/transparent_hugepage)".to_string(), |s| s.trim().to_string());
    let start = Instant::now();
    let ws = WorkingSet::fill(huge_pages, bytes);
    let filled = start.elapsed();
    let memory = match smaps_rollup() {
        Some((rss, huge)) => format!("Rss {} MiB, AnonHugePages {} MiB", rss >> 10, huge >> 10),
        None => "no /proc/self/smaps_rollup".to_string(),
    };
    println!(
        "huge_pages: {:>14}: {} MiB in {} blocks, filled in {filled:.2?}; {memory}; THP enabled: {thp}",
        mode(huge_pages),
        bytes >> 20,
        ws.blocks.len()
    );
    drop(ws);
}

fn huge_pages(c: &mut Criterion) {
    let bytes = working_set_bytes();
    for huge in [false, true] {
        report(huge, bytes);
    }

    let mut g = c.benchmark_group("huge_pages_fill");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(bytes as u64));
    for huge in [false, true] {
        g.bench_function(BenchmarkId::new("fill", mode(huge)), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let ws = WorkingSet::fill(huge, bytes);
                    total += start.elapsed();
                    drop(ws);
                }
                total
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("huge_pages");
    g.throughput(Throughput::Elements(STEPS as u64));
    for huge in [false, true] {
        let mut ws = WorkingSet::fill(huge, bytes);
        g.bench_function(BenchmarkId::new("touch", mode(huge)), |b| b.iter(|| ws.touch()));
        g.bench_function(BenchmarkId::new("churn", mode(huge)), |b| b.iter(|| ws.churn()));
        drop(ws);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = huge_pages
}
criterion_main!(benches);
