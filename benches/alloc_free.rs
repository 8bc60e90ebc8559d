//! One alloc+free pair on the cache-hit path, per block size, against the
//! peers and the single-threaded free-list floor.
//!
//! `cargo bench --bench alloc_free`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::alloc::System;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

#[path = "common/mod.rs"]
mod common;
use common::*;

fn bench<A: BenchAlloc + ?Sized>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    size: usize,
    a: &A,
) {
    let l = layout(size);
    c.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
        b.iter(|| {
            let p = black_box(a.alloc(l));
            // SAFETY: just allocated with `l`.
            unsafe { a.dealloc(p, l) };
        })
    });
}

fn alloc_free(c: &mut Criterion) {
    let slab = slab_fixed();
    let mut g = c.benchmark_group("alloc_free");
    g.throughput(Throughput::Elements(1));
    for size in BENCH_SIZES {
        bench(&mut g, SLAB, size, &slab);
        bench(&mut g, SYSTEM, size, &Peer(System));
        bench(&mut g, MIMALLOC, size, &Peer(MiMalloc));
        #[cfg(not(target_env = "msvc"))]
        bench(&mut g, JEMALLOC, size, &Peer(Jemalloc));
        bench(&mut g, FLOOR, size, &FreeList::new(size));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = alloc_free
}
criterion_main!(benches);
