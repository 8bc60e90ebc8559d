//! The comparison tool: lockfree-slab against the system allocator,
//! mimalloc, jemalloc and a single-threaded free list (the floor), on the
//! same workloads as the criterion benches (the kernels are shared, in
//! `benches/common/mod.rs`), and on real programs with each allocator as
//! the global allocator.
//!
//! ```text
//! cargo run --release --example compare              # about two minutes
//! cargo run --release --example compare -- --quick   # CI smoke run, seconds
//! cargo run --release --example compare -- --real-only
//! cargo run --release --example compare -- --help
//! ```
//!
//! Prints one table per workload (throughput, ns per op, latency P50 / P99 /
//! P99.9 / max per allocator call), the memory table (RSS per live 64-byte
//! block, each allocator in its own child process), one table per real
//! program (wall time, spread, peak RSS; each allocator the global
//! allocator of its own child processes) and the project's performance
//! targets, and writes CSV, JSON, SVGs and the printed text to a results
//! folder that it names at the end.
//!
//! Files: `compare/cli.rs` flags, `compare/report.rs` tables, targets and
//! files, `compare/rss.rs` the memory children, `compare/real.rs` the real
//! programs' children, `compare/chosen.rs` the global allocator that a child
//! picks, `real/` the real programs themselves.

// A binary: its `pub` items are shared with its submodules, not an API.
#![allow(missing_docs)]

use std::alloc::System;
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

#[path = "compare/chosen.rs"]
mod chosen;
#[path = "compare/cli.rs"]
mod cli;
#[path = "../benches/common/mod.rs"]
mod common;
#[path = "real/mod.rs"]
mod programs;
#[path = "compare/real.rs"]
mod real;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/rss.rs"]
mod rss;

use cli::{Command, Options, Workload};
use common::*;

/// The system allocator in the tool itself; the real programs' children
/// pick theirs from the environment (see `compare/chosen.rs`).
#[global_allocator]
static GLOBAL: chosen::Chosen = chosen::Chosen;

/// The allocators compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Slab,
    System,
    Mimalloc,
    Jemalloc,
    Floor,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Slab, Kind::System, Kind::Mimalloc, Kind::Jemalloc, Kind::Floor];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Slab => SLAB,
            Kind::System => SYSTEM,
            Kind::Mimalloc => MIMALLOC,
            Kind::Jemalloc => JEMALLOC,
            Kind::Floor => FLOOR,
        }
    }
    pub fn flag(self) -> &'static str {
        match self {
            Kind::Slab => "slab",
            Kind::System => "system",
            Kind::Mimalloc => "mimalloc",
            Kind::Jemalloc => "jemalloc",
            Kind::Floor => "floor",
        }
    }
    pub fn from_flag(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.flag() == s)
    }
    pub fn available(self) -> bool {
        self != Kind::Jemalloc || cfg!(not(target_env = "msvc"))
    }
    /// The floor is single-threaded (no atomics, not `Sync`).
    fn multi_threaded(self) -> bool {
        self != Kind::Floor
    }
}

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub workload: Workload,
    /// Row label within the workload's table, e.g. "64 B", "LIFO", "2".
    pub param: String,
    /// Numeric x for plots (size, thread count), 0 if none.
    pub x: usize,
    pub kind: Kind,
    pub threads: usize,
    /// Throughput run: allocator calls and wall time (median repetition).
    pub ops: u64,
    pub secs: f64,
    pub lat: report::Latency,
}

impl Cell {
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.secs / 1e6
    }
    pub fn ns_per_op(&self) -> f64 {
        self.secs * 1e9 / self.ops as f64
    }
}

/// Measurement settings derived from the options.
#[derive(Clone, Copy)]
struct Plan {
    warmup: Duration,
    duration: Duration,
    reps: u32,
    samples: usize,
    cal: Calibration,
}

/// Runs `round` (which makes `ops_per_round` calls) repeatedly for `reps`
/// slices of `duration / reps` after a warm-up; returns the median slice as
/// (ops, seconds).
fn time_rounds(plan: &Plan, ops_per_round: u64, mut round: impl FnMut()) -> (u64, f64) {
    let t = Instant::now();
    while t.elapsed() < plan.warmup {
        round();
    }
    let slice = plan.duration / plan.reps;
    let mut results: Vec<(u64, f64)> = (0..plan.reps)
        .map(|_| {
            let t = Instant::now();
            let mut ops = 0;
            while t.elapsed() < slice {
                for _ in 0..8 {
                    round();
                }
                ops += 8 * ops_per_round;
            }
            (ops, t.elapsed().as_secs_f64())
        })
        .collect();
    results.sort_by(|a, b| (a.0 as f64 / a.1).total_cmp(&(b.0 as f64 / b.1)));
    results[results.len() / 2]
}

/// Median of `reps` multi-threaded runs of `duration / reps` each.
fn time_runs(plan: &Plan, mut run: impl FnMut(Duration) -> Run) -> (u64, f64) {
    run(plan.warmup);
    let slice = plan.duration / plan.reps.min(3);
    let mut results: Vec<Run> = (0..plan.reps.min(3)).map(|_| run(slice)).collect();
    results.sort_by(|a, b| a.mops().total_cmp(&b.mops()));
    let r = &results[results.len() / 2];
    (r.ops, r.elapsed.as_secs_f64())
}

/// Single-thread cells for one allocator.
fn single<A: BenchAlloc + ?Sized>(
    plan: &Plan,
    a: &A,
    w: Workload,
    size: usize,
    order: Order,
) -> ((u64, f64), Vec<u32>) {
    let l = layout(size);
    match w {
        Workload::AllocFree => {
            const N: u64 = 1000;
            let tp = time_rounds(plan, 2 * N, || pairs(a, l, N, &mut NoProbe));
            let mut s = Samples::with_capacity(plan.samples);
            pairs(a, l, (plan.samples / 2) as u64, &mut s);
            (tp, s.ticks)
        }
        Workload::Batch => {
            let mut slots = vec![ptr::null_mut::<u8>(); 1000];
            let tp = time_rounds(plan, 2000, || batch(a, l, &mut slots, order, &mut NoProbe));
            let mut s = Samples::with_capacity(plan.samples);
            while !s.is_full() {
                batch(a, l, &mut slots, order, &mut s);
            }
            (tp, s.ticks)
        }
        _ => unreachable!(),
    }
}

/// Multi-thread cells for one allocator.
fn multi<A: BenchAlloc + Send + Sync + 'static>(
    plan: &Plan,
    a: &Arc<A>,
    w: Workload,
    threads: usize,
) -> ((u64, f64), Vec<u32>) {
    let l = layout(64);
    let go = |d: Option<Duration>, timed: Option<usize>| match w {
        Workload::Threads => threads_churn(a, threads, l, Stop::on_flag(), d, timed),
        Workload::ProducerConsumer => producer_consumer(a, l, Stop::on_flag(), d, timed),
        Workload::Mixed => mixed(a, threads, Stop::on_flag(), d, timed),
        _ => unreachable!(),
    };
    let tp = time_runs(plan, |d| go(Some(d), None));
    // Latency: stop when every thread's sample buffer is full, or after the
    // throughput duration at the latest.
    let per_thread = (plan.samples / threads).max(1000);
    let lat = go(Some(plan.duration.max(Duration::from_millis(50))), Some(per_thread));
    (tp, lat.ticks)
}

/// Builds the allocator `kind` for workload `w` and hands it to `$body` as
/// `$a` (an `Arc`); the floor only where `$single` is true.
macro_rules! with_alloc {
    ($kind:expr, $w:expr, |$a:ident| $body:expr, floor: |$f:ident| $fbody:expr) => {
        match $kind {
            Kind::Slab => {
                let $a = Arc::new(if $w == Workload::Mixed { slab_general() } else { slab_fixed() });
                $body
            }
            Kind::System => {
                let $a = Arc::new(Peer(System));
                $body
            }
            Kind::Mimalloc => {
                let $a = Arc::new(Peer(MiMalloc));
                $body
            }
            #[cfg(not(target_env = "msvc"))]
            Kind::Jemalloc => {
                let $a = Arc::new(Peer(Jemalloc));
                $body
            }
            #[cfg(target_env = "msvc")]
            Kind::Jemalloc => unreachable!(),
            Kind::Floor => {
                let $f = ();
                $fbody
            }
        }
    };
}

/// One planned cell, before it runs.
#[derive(Clone)]
struct Job {
    w: Workload,
    param: String,
    x: usize,
    kind: Kind,
    threads: usize,
    size: usize,
    order: Order,
}

fn jobs(o: &Options) -> Vec<Job> {
    let mut v = Vec::new();
    let kinds = |single: bool| o.allocators.iter().copied().filter(move |k| single || k.multi_threaded());
    for &w in &o.workloads {
        let base = Job { w, param: String::new(), x: 0, kind: Kind::Slab, threads: 1, size: 64, order: Order::Lifo };
        match w {
            Workload::AllocFree => {
                for &size in &o.sizes {
                    for kind in kinds(true) {
                        v.push(Job { param: format!("{size} B"), x: size, kind, size, ..base.clone() });
                    }
                }
            }
            Workload::Batch => {
                for order in [Order::Lifo, Order::Fifo] {
                    for kind in kinds(true) {
                        v.push(Job { param: format!("1000 x 64 B {}", order.name()), kind, order, ..base.clone() });
                    }
                }
            }
            Workload::Threads => {
                for &t in &o.threads {
                    for kind in kinds(false) {
                        v.push(Job { param: format!("{t}"), x: t, kind, threads: t, ..base.clone() });
                    }
                }
            }
            Workload::ProducerConsumer => {
                for kind in kinds(false) {
                    v.push(Job { param: "64 B, 1 -> 1".into(), x: 2, kind, threads: 2, ..base.clone() });
                }
            }
            Workload::Mixed => {
                for kind in kinds(false) {
                    v.push(Job { param: "16-1024 B".into(), x: 2, kind, threads: 2, ..base.clone() });
                }
            }
            Workload::Memory | Workload::Real => {}
        }
    }
    v
}

fn run_job(plan: &Plan, j: &Job) -> Cell {
    let ((ops, secs), ticks) = match j.w {
        Workload::AllocFree | Workload::Batch => with_alloc!(j.kind, j.w,
            |a| single(plan, &*a, j.w, j.size, j.order),
            floor: |_f| single(plan, &FreeList::new(j.size), j.w, j.size, j.order)),
        _ => with_alloc!(j.kind, j.w,
            |a| multi(plan, &a, j.w, j.threads),
            floor: |_f| unreachable!("the floor is single-threaded")),
    };
    Cell {
        workload: j.w,
        param: j.param.clone(),
        x: j.x,
        kind: j.kind,
        threads: j.threads,
        ops,
        secs,
        lat: report::Latency::from_ticks(ticks, &plan.cal),
    }
}

fn main() {
    let opts = match cli::parse() {
        Ok(Command::Compare(o)) => o,
        Ok(Command::Help) => {
            print!("{}", cli::HELP);
            return;
        }
        Ok(Command::RssChild { kind, blocks }) => rss::child(kind, blocks),
        Ok(Command::RealChild { program, scale }) => real::child(program, scale),
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let cal = Calibration::measure(Duration::from_millis(if opts.quick { 10 } else { 100 }));
    let plan = Plan {
        warmup: (opts.duration / 5).max(Duration::from_millis(2)),
        duration: opts.duration,
        reps: if opts.quick { 1 } else { 5 },
        samples: opts.samples,
        cal,
    };
    let jobs = jobs(&opts);
    let memory_kinds: Vec<Kind> =
        if opts.workloads.contains(&Workload::Memory) { opts.allocators.clone() } else { Vec::new() };

    let real_programs: &[programs::Program] =
        if opts.workloads.contains(&Workload::Real) { &opts.programs } else { &[] };
    let real_children = real::count(real_programs, &opts.allocators, opts.runs);

    let pb = ProgressBar::new((jobs.len() + memory_kinds.len() + real_children) as u64);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .expect("progress template")
            .progress_chars("=> "),
    );
    let mut cells = Vec::new();
    for j in &jobs {
        pb.set_message(format!("{} {} {}", j.w.name(), j.param, j.kind.name()));
        cells.push(run_job(&plan, j));
        pb.inc(1);
    }
    let mut memory = Vec::new();
    for &k in &memory_kinds {
        pb.set_message(format!("memory {} x 64 B {}", opts.blocks, k.name()));
        match rss::measure(k, opts.blocks) {
            Ok(m) => memory.push(m),
            Err(e) => pb.println(format!("warning: {e}")),
        }
        pb.inc(1);
    }
    let real = if real_programs.is_empty() {
        real::Results::default()
    } else {
        real::measure(real_programs, &opts.allocators, opts.runs, opts.scale(), &pb)
    };
    pb.finish_and_clear();

    let text = report::render(&opts, &plan.cal, &cells, &memory, &real, started.elapsed());
    print!("{text}");
    match report::write_all(&opts, &plan.cal, &cells, &memory, &real, &text) {
        Ok(dir) => println!("results written to {}", dir.display()),
        Err(e) => {
            eprintln!("compare: cannot write results: {e}");
            std::process::exit(1);
        }
    }
    if !real.errors.is_empty() {
        eprintln!("\ncompare: the real programs failed:");
        for e in &real.errors {
            eprintln!("  {e}");
        }
        std::process::exit(1);
    }
}
