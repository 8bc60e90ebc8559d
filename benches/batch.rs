//! Allocate 1,000 blocks, touch each, free them LIFO or FIFO.
//!
//! `cargo bench --bench batch`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::alloc::System;
use std::ptr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

#[path = "common/mod.rs"]
mod common;
use common::*;

const N: usize = 1000;
const SIZE: usize = 64;

fn bench<A: BenchAlloc + ?Sized>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    order: Order,
    a: &A,
) {
    let l = layout(SIZE);
    let mut slots = vec![ptr::null_mut::<u8>(); N];
    g.bench_function(BenchmarkId::new(name, format!("{}x{SIZE}B/{}", N, order.name())), |b| {
        b.iter(|| batch(a, l, &mut slots, order, &mut NoProbe))
    });
}

fn batches(c: &mut Criterion) {
    let slab = slab_fixed();
    let mut g = c.benchmark_group("batch");
    // Elements: allocator calls (N allocations + N frees).
    g.throughput(Throughput::Elements(2 * N as u64));
    for order in [Order::Lifo, Order::Fifo] {
        bench(&mut g, SLAB, order, &slab);
        bench(&mut g, SYSTEM, order, &Peer(System));
        bench(&mut g, MIMALLOC, order, &Peer(MiMalloc));
        #[cfg(not(target_env = "msvc"))]
        bench(&mut g, JEMALLOC, order, &Peer(Jemalloc));
        bench(&mut g, FLOOR, order, &FreeList::new(SIZE));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = batches
}
criterion_main!(benches);
