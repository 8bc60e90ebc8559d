//! Blocks allocated on one thread and freed on another, handed over through
//! a bounded ring: every free is a remote free.
//!
//! `cargo bench --bench producer_consumer`

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
    size: usize,
    a: &Arc<A>,
) {
    g.bench_with_input(BenchmarkId::new(name, format!("{size}B/2 threads")), &size, |b, &size| {
        b.iter_custom(|iters| producer_consumer(a, layout(size), Stop::after_rounds(iters), None, None).elapsed)
    });
}

fn pc(c: &mut Criterion) {
    let slab = Arc::new(slab_fixed());
    let (system, mi) = (Arc::new(Peer(System)), Arc::new(Peer(MiMalloc)));
    #[cfg(not(target_env = "msvc"))]
    let je = Arc::new(Peer(Jemalloc));
    let mut g = c.benchmark_group("producer_consumer");
    // Elements: allocator calls (one allocation and one free per block).
    g.throughput(Throughput::Elements(2 * PC_ROUND as u64));
    for size in [64, 1024] {
        bench(&mut g, SLAB, size, &slab);
        bench(&mut g, SYSTEM, size, &system);
        bench(&mut g, MIMALLOC, size, &mi);
        #[cfg(not(target_env = "msvc"))]
        bench(&mut g, JEMALLOC, size, &je);
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = pc
}
criterion_main!(benches);
