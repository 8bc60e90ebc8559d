//! Thread-local churn on one allocator shared through `Arc`, 1 to 2× the
//! available cores: `Barrier` for a common start, `iter_custom` so the time
//! is from the release to the last thread's end.
//!
//! `cargo bench --bench threads`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

#[path = "common/mod.rs"]
mod common;
use common::*;

const SIZE: usize = 64;

fn bench<A: BenchAlloc + Send + Sync + 'static>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    threads: usize,
    a: A,
) {
    let a = Arc::new(a);
    g.throughput(Throughput::Elements((threads * 2 * CHURN) as u64));
    g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
        b.iter_custom(|iters| threads_churn(&a, threads, layout(SIZE), Stop::after_rounds(iters), None, None).elapsed)
    });
}

fn threads(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("threads");
    // Elements: allocator calls, all threads together, per round.
    for threads in thread_counts(cores) {
        bench(&mut g, SLAB, threads, slab_fixed());
        bench(&mut g, SYSTEM, threads, Peer(System));
        bench(&mut g, MIMALLOC, threads, Peer(MiMalloc));
        #[cfg(not(target_env = "msvc"))]
        bench(&mut g, JEMALLOC, threads, Peer(Jemalloc));
    }
    g.finish();
}

/// 1, 2, 4, … up to the core count, then 2× the core count.
fn thread_counts(cores: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1), |&t| Some(t * 2)).take_while(|&t| t < cores).collect();
    v.extend([cores, 2 * cores]);
    v.dedup();
    v
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = threads
}
criterion_main!(benches);
