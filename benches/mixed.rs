//! Larson-style mixed work: random sizes 16–1024 B, random lifetimes,
//! objects handed between threads through a shared slot array.
//!
//! `cargo bench --bench mixed`

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

fn bench<A: BenchAlloc + Send + Sync + 'static>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    threads: usize,
    a: &Arc<A>,
) {
    // Elements: allocations per round, all threads (each is followed by a
    // free once the slots are full).
    g.throughput(Throughput::Elements((threads * MIXED_ROUND) as u64));
    g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
        b.iter_custom(|iters| mixed(a, threads, Stop::after_rounds(iters), None, None).elapsed)
    });
}

fn mixed_bench(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).max(2);
    let slab = Arc::new(slab_general());
    let (system, mi) = (Arc::new(Peer(System)), Arc::new(Peer(MiMalloc)));
    #[cfg(not(target_env = "msvc"))]
    let je = Arc::new(Peer(Jemalloc));
    let mut g = c.benchmark_group("mixed");
    for threads in [cores, 2 * cores] {
        bench(&mut g, SLAB, threads, &slab);
        bench(&mut g, SYSTEM, threads, &system);
        bench(&mut g, MIMALLOC, threads, &mi);
        #[cfg(not(target_env = "msvc"))]
        bench(&mut g, JEMALLOC, threads, &je);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = mixed_bench
}
criterion_main!(benches);
