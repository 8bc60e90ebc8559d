//! What the misuse checks (`Builder::checks`) cost: the same allocator
//! configuration with checks off and on, on the cache-hit pair (per block
//! size) and on thread-local churn with 2 threads. Off, the checks must not
//! show at all: that is the alloc_free bench's `lockfree-slab` line, which
//! runs the same code.
//!
//! `cargo bench --bench checks`

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "common/mod.rs"]
mod common;
use common::*;

const OFF: &str = "checks off";
const ON: &str = "checks on";

fn pair(c: &mut Criterion) {
    let mut g = c.benchmark_group("checks_pair");
    g.throughput(Throughput::Elements(1));
    for size in [16, 64, 256, 4096] {
        for (name, slab) in [(OFF, slab_fixed_with_checks(false)), (ON, slab_fixed_with_checks(true))] {
            let l = layout(size);
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    let p = black_box(slab.alloc(l));
                    // SAFETY: just allocated with `l`.
                    unsafe { slab.dealloc(p, l) };
                })
            });
        }
    }
    g.finish();
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("checks_threads");
    let threads = 2;
    g.throughput(Throughput::Elements((threads * 2 * CHURN) as u64));
    for (name, slab) in [(OFF, slab_fixed_with_checks(false)), (ON, slab_fixed_with_checks(true))] {
        let slab = Arc::new(slab);
        g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &threads| {
            b.iter_custom(|iters| {
                threads_churn(&slab, threads, layout(64), Stop::after_rounds(iters), None, None).elapsed
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = pair, threads
}
criterion_main!(benches);
