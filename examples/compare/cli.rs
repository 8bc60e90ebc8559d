//! Flags (hand-parsed with `lexopt`; `--help` lists them).

use std::path::PathBuf;
use std::time::Duration;

use crate::programs::{Program, Scale};
use crate::Kind;

pub const HELP: &str = "\
compare — lockfree-slab against the system allocator, mimalloc, jemalloc and
a single-threaded free list (the floor), workload by workload.

USAGE:
    cargo run --release --example compare -- [FLAGS]

Each cell (workload x parameter x allocator) is measured twice: a throughput
run of --duration (split into repetitions, median reported), then a latency
run that times every allocator call with the cycle counter (rdtsc/rdtscp +
lfence on x86_64, calibrated against Instant, timer overhead subtracted).
An op is one allocator call: one allocation or one free.

Memory is measured in a child process per allocator (the tool re-executes
itself): RSS growth (VmHWM after minus VmRSS before) for --blocks live
64-byte blocks, divided by the block count.

Real programs (the `real` workload) are four programs built from real crates
on real inputs (the dependency tree's Rust sources and crates.io index
entries, from the cargo registry): parse (syn), reqresp (serde_json over
mpsc between threads), threads (short-lived threads counting words) and
churn (a long-running cache of documents of every size). Each allocator is
the #[global_allocator] of its own process (the tool re-executes itself),
runs alternated; reported: median wall time of the program and its spread
(min-max), peak RSS (VmHWM), and the digest of the results, which must be
the same on every allocator (the tool exits with status 1 if not).

FLAGS:
    --quick               CI smoke mode: tiny durations, few samples, 100k
                          blocks, real programs once each on small inputs;
                          finishes in seconds. Timings are not meaningful
                          in this mode.
    --workloads LIST      comma-separated, from: alloc_free, batch, threads,
                          producer_consumer, mixed, memory, real
                          [default: all]
    --real-only           only the real programs (= --workloads real)
    --programs LIST       real programs, comma-separated, from: parse,
                          reqresp, threads, churn   [default: all]
    --runs N              runs of each real program per allocator
                          [default: 5; --quick: 1]
    --allocators LIST     comma-separated, from: slab, system, mimalloc,
                          jemalloc, floor   [default: all available]
                          (the floor only runs in single-thread workloads)
    --sizes LIST          block sizes in bytes for alloc_free
                          [default: 16,64,256,1024,4096]
    --threads LIST        thread counts for the threads workload
                          [default: 1 to 2x the available cores]
    --duration MS         throughput measurement per cell, milliseconds
                          [default: 500; --quick: 20]
    --samples N           latency samples per cell (all threads together)
                          [default: 200000; --quick: 10000]
    --blocks N            live blocks for the memory workload
                          [default: 1000000; --quick: 100000]
    --out DIR             results folder [default: results/<Unix seconds>
                          under the crate root]
    -h, --help            this text

OUTPUT:
    One table per workload on stdout (also written to summary.txt), the
    project's performance targets with PASS/MISS, and in the results folder: results.csv,
    memory.csv, results.json, summary.svg (throughput vs threads; latency
    percentiles of the cache-hit pair at 64 B side by side); for the real
    programs real.csv (per program and allocator), real_runs.csv (every
    run), their section of results.json, and real.svg (wall time and peak
    RSS relative to the faster of mimalloc and jemalloc).
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    AllocFree,
    Batch,
    Threads,
    ProducerConsumer,
    Mixed,
    Memory,
    Real,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Workload::AllocFree,
        Workload::Batch,
        Workload::Threads,
        Workload::ProducerConsumer,
        Workload::Mixed,
        Workload::Memory,
        Workload::Real,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::AllocFree => "alloc_free",
            Workload::Batch => "batch",
            Workload::Threads => "threads",
            Workload::ProducerConsumer => "producer_consumer",
            Workload::Mixed => "mixed",
            Workload::Memory => "memory",
            Workload::Real => "real",
        }
    }
}

pub struct Options {
    pub quick: bool,
    pub workloads: Vec<Workload>,
    pub allocators: Vec<Kind>,
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    pub duration: Duration,
    pub samples: usize,
    pub blocks: usize,
    pub programs: Vec<Program>,
    pub runs: usize,
    pub out: Option<PathBuf>,
}

impl Options {
    /// The size of the real programs' inputs and work.
    pub fn scale(&self) -> Scale {
        if self.quick {
            Scale::Quick
        } else {
            Scale::Full
        }
    }
}

/// What `main` should do.
pub enum Command {
    Compare(Options),
    /// Hidden: measure RSS for one allocator and print it (see rss.rs).
    RssChild {
        kind: Kind,
        blocks: usize,
    },
    /// Hidden: run one real program on this process's global allocator (see real.rs).
    RealChild {
        program: Program,
        scale: Scale,
    },
    Help,
}

fn list<T>(value: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse(s.trim()).ok_or_else(|| format!("unknown {what} {s:?} (see --help)")))
        .collect()
}

pub fn default_threads() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if 2 * cores <= 8 {
        (1..=2 * cores).collect()
    } else {
        let mut v: Vec<usize> = std::iter::successors(Some(1), |&t| Some(t * 2)).take_while(|&t| t < cores).collect();
        v.extend([cores, 2 * cores]);
        v.dedup();
        v
    }
}

pub fn parse() -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut quick = false;
    let (mut workloads, mut allocators, mut sizes, mut threads) = (None, None, None, None);
    let (mut duration, mut samples, mut blocks, mut out) = (None, None, None, None);
    let (mut programs, mut runs) = (None, None);
    let mut p = lexopt::Parser::from_env();
    let e = |e: lexopt::Error| e.to_string();
    while let Some(arg) = p.next().map_err(e)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("quick") => quick = true,
            Long("workloads") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                workloads = Some(list(&v, "workload", |s| Workload::ALL.into_iter().find(|w| w.name() == s))?);
            }
            Long("allocators") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                allocators = Some(list(&v, "allocator", Kind::from_flag)?);
            }
            Long("sizes") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                sizes = Some(list(&v, "size", |s| s.parse().ok().filter(|&n: &usize| (8..=1 << 20).contains(&n)))?);
            }
            Long("threads") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                threads =
                    Some(list(&v, "thread count", |s| s.parse().ok().filter(|&n: &usize| (1..=256).contains(&n)))?);
            }
            Long("duration") => duration = Some(Duration::from_millis(p.value().map_err(e)?.parse().map_err(e)?)),
            Long("samples") => samples = Some(p.value().map_err(e)?.parse::<usize>().map_err(e)?.max(100)),
            Long("blocks") => blocks = Some(p.value().map_err(e)?.parse::<usize>().map_err(e)?.max(1)),
            Long("out") => out = Some(PathBuf::from(p.value().map_err(e)?)),
            Long("real-only") => workloads = Some(vec![Workload::Real]),
            Long("programs") => {
                let v = p.value().map_err(e)?.string().map_err(e)?;
                programs = Some(list(&v, "program", Program::from_name)?);
            }
            Long("runs") => runs = Some(p.value().map_err(e)?.parse::<usize>().map_err(e)?.max(1)),
            Long("real-child") => {
                let program = p.value().map_err(e)?.string().map_err(e)?;
                let program = Program::from_name(&program).ok_or("bad --real-child program")?;
                let scale = p.value().map_err(e)?.string().map_err(e)?;
                let scale = Scale::from_name(&scale).ok_or("bad --real-child scale")?;
                return Ok(Command::RealChild { program, scale });
            }
            Long("rss-child") => {
                let kind = p.value().map_err(e)?.string().map_err(e)?;
                let kind = Kind::from_flag(&kind).ok_or("bad --rss-child allocator")?;
                let blocks = p.value().map_err(e)?.parse().map_err(e)?;
                return Ok(Command::RssChild { kind, blocks });
            }
            _ => return Err(format!("{} (see --help)", arg.unexpected())),
        }
    }
    Ok(Command::Compare(Options {
        quick,
        workloads: workloads.unwrap_or_else(|| Workload::ALL.to_vec()),
        allocators: allocators.unwrap_or_else(|| Kind::ALL.iter().copied().filter(|k| k.available()).collect()),
        sizes: sizes.unwrap_or_else(|| vec![16, 64, 256, 1024, 4096]),
        threads: threads.unwrap_or_else(default_threads),
        duration: duration.unwrap_or(Duration::from_millis(if quick { 20 } else { 500 })),
        samples: samples.unwrap_or(if quick { 10_000 } else { 200_000 }),
        blocks: blocks.unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        programs: programs.unwrap_or_else(|| Program::ALL.to_vec()),
        runs: runs.unwrap_or(if quick { 1 } else { 5 }),
        out,
    }))
}
