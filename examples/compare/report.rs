//! Tables, the targets, and the files in the results folder
//! (results.csv, memory.csv, real.csv, real_runs.csv, results.json,
//! summary.svg, real.svg, summary.txt).
//! The JSON is written by serde_json and the SVG plot by plotters (its SVG
//! backend); the tables and the CSV are written by hand.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cli::{Options, Workload};
use crate::common::{clock, Calibration};
use crate::programs::Program;
use crate::real::{self, Row};
use crate::rss::Memory;
use crate::{Cell, Kind};

/// Per-call latency percentiles, nanoseconds, timer overhead subtracted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub samples: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn from_ticks(mut ticks: Vec<u32>, cal: &Calibration) -> Self {
        if ticks.is_empty() {
            return Latency::default();
        }
        ticks.sort_unstable();
        let ns = |t: u32| (u64::from(t).saturating_sub(cal.overhead_ticks)) as f64 * cal.ns_per_tick;
        let q = |q: f64| ns(ticks[((q * ticks.len() as f64).ceil() as usize).clamp(1, ticks.len()) - 1]);
        Latency { samples: ticks.len(), p50: q(0.50), p99: q(0.99), p999: q(0.999), max: ns(*ticks.last().unwrap()) }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Latency in ns, compactly: 2.6, 45, 1234, 12.3k.
fn ns(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else if v < 10_000.0 {
        format!("{v:.0}")
    } else if v < 10_000_000.0 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{:.1}M", v / 1e6)
    }
}

fn title(w: Workload) -> &'static str {
    match w {
        Workload::AllocFree => "alloc_free: one alloc+free pair on the cache-hit path, 1 thread",
        Workload::Batch => "batch: allocate 1000 blocks, touch each, free them (LIFO / FIFO), 1 thread",
        Workload::Threads => {
            "threads: thread-local churn (32 x 64 B alloc, touch, free), allocator shared via Arc; row = threads"
        }
        Workload::ProducerConsumer => {
            "producer_consumer: 64 B blocks allocated on one thread, freed on another (SPSC ring)"
        }
        Workload::Mixed => "mixed (larson-style): random sizes 16-1024 B, random lifetimes, shared slots, 2 threads",
        Workload::Memory => "memory",
        Workload::Real => "real programs",
    }
}

fn find<'a>(cells: &'a [Cell], w: Workload, param: &str, k: Kind) -> Option<&'a Cell> {
    cells.iter().find(|c| c.workload == w && c.param == param && c.kind == k)
}

pub fn render(
    o: &Options,
    cal: &Calibration,
    cells: &[Cell],
    memory: &[Memory],
    real: &real::Results,
    elapsed: Duration,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "lockfree-slab comparison");
    let _ = writeln!(s, "CPU: {} ({} cores available)", cpu_model(), cores());
    let _ = writeln!(
        s,
        "clock: {}; {:.3} GHz, timer overhead {:.1} ns (subtracted), resolution {:.1} ns",
        clock::describe(),
        1.0 / cal.ns_per_tick,
        cal.overhead_ticks as f64 * cal.ns_per_tick,
        cal.resolution_ticks as f64 * cal.ns_per_tick
    );
    if cal.resolution_ticks as f64 * cal.ns_per_tick > 2.0 {
        let _ = writeln!(
            s,
            "  note: calls faster than the resolution show as 0 or one step; percentiles are quantized to it (ns/op is exact)"
        );
    }
    let _ = writeln!(
        s,
        "settings: {} ms per cell{}, {} latency samples per cell{}",
        o.duration.as_millis(),
        if o.quick { "" } else { " (median of 5 slices; 3 runs for threaded cells)" },
        o.samples,
        if o.quick { "  [--quick: timings not meaningful]" } else { "" }
    );
    let _ = writeln!(
        s,
        "op = one allocator call (an allocation or a free); Mops/s and ns/op are wall-clock over all threads;"
    );
    let _ = writeln!(s, "latency = per call, from the timed run; 'slab x' = lockfree-slab's throughput / this row's.");
    for w in Workload::ALL {
        let rows: Vec<&Cell> = cells.iter().filter(|c| c.workload == w).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{}", title(w));
        let _ = writeln!(
            s,
            "{:<18} {:<40} {:>9} {:>8} {:>7} {:>7} {:>7} {:>8} {:>7}",
            "", "allocator", "Mops/s", "ns/op", "P50", "P99", "P99.9", "max", "slab x"
        );
        let mut last = "";
        for c in &rows {
            let param = if c.param == last { "" } else { c.param.as_str() };
            last = &c.param;
            let rel = find(cells, w, &c.param, Kind::Slab)
                .map_or("-".to_string(), |slab| format!("{:.2}", slab.mops() / c.mops()));
            let _ = writeln!(
                s,
                "{:<18} {:<40} {:>9.1} {:>8.2} {:>7} {:>7} {:>7} {:>8} {:>7}",
                param,
                c.kind.name(),
                c.mops(),
                c.ns_per_op(),
                ns(c.lat.p50),
                ns(c.lat.p99),
                ns(c.lat.p999),
                ns(c.lat.max),
                rel
            );
        }
    }
    if !memory.is_empty() {
        let blocks = memory[0].blocks;
        let _ = writeln!(s, "\nmemory: peak RSS for {blocks} live 64-byte blocks, each allocator in its own process");
        let _ = writeln!(s, "(VmHWM after allocating minus VmRSS before; the allocator's own set-up counts)");
        let _ = writeln!(s, "{:<40} {:>12} {:>12} {:>14}", "allocator", "RSS MiB", "B / block", "RSS / live B");
        for m in memory {
            let _ = writeln!(
                s,
                "{:<40} {:>12.1} {:>12.1} {:>14.3}",
                m.kind.name(),
                (m.hwm_kib.saturating_sub(m.baseline_kib)) as f64 / 1024.0,
                m.bytes_per_block(),
                m.per_live_byte()
            );
        }
    }
    s.push_str(&render_real(o, real));
    s.push_str(&targets(cells, memory, real));
    let _ = writeln!(s, "\ntotal time: {:.1} s", elapsed.as_secs_f64());
    s
}

/// The faster of mimalloc's and jemalloc's rows for `p` (by median wall time).
fn best_peer(real: &real::Results, p: Program) -> Option<&Row> {
    [Kind::Mimalloc, Kind::Jemalloc]
        .iter()
        .filter_map(|&k| real.row(p, k))
        .min_by(|a, b| a.median_ms().total_cmp(&b.median_ms()))
}

/// `median / the faster peer's median` and `median / glibc's median`, where measured.
fn real_ratios(real: &real::Results, r: &Row) -> (Option<f64>, Option<f64>) {
    let peer = best_peer(real, r.program).map(|b| r.median_ms() / b.median_ms());
    let glibc = real.row(r.program, Kind::System).map(|g| r.median_ms() / g.median_ms());
    (peer, glibc)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// The real programs: one table per program, with its digest check.
fn render_real(o: &Options, real: &real::Results) -> String {
    let mut s = String::new();
    let programs = real.programs();
    if programs.is_empty() && real.errors.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "\nreal programs: each allocator the #[global_allocator] of its own processes; {} run{} per allocator, \
         alternated{}",
        real.runs_per_allocator,
        if real.runs_per_allocator == 1 { "" } else { "s" },
        if o.quick { "  [--quick: small inputs, timings not meaningful]" } else { "" }
    );
    let _ = writeln!(
        s,
        "wall = the program alone (inputs read before it), median and min-max of the runs; \
         'x peer' = / the faster of mimalloc and jemalloc;"
    );
    let _ =
        writeln!(s, "'x glibc' = / the system allocator; peak RSS = VmHWM of the whole process (median of the runs).");
    for p in programs {
        let _ = writeln!(s, "\n{}", p.title());
        if let Some((_, inputs)) = real.inputs.iter().find(|(q, _)| *q == p) {
            let _ = writeln!(s, "  inputs: {inputs}");
        }
        let _ = writeln!(
            s,
            "{:<40} {:>10} {:>19} {:>7} {:>8} {:>13}",
            "allocator", "median ms", "min-max ms", "x peer", "x glibc", "peak RSS MiB"
        );
        for r in real.rows.iter().filter(|r| r.program == p && !r.runs.is_empty()) {
            let (peer, glibc) = real_ratios(real, r);
            let _ = writeln!(
                s,
                "{:<40} {:>10.1} {:>19} {:>7} {:>8} {:>13.1}",
                r.kind.name(),
                r.median_ms(),
                format!("{:.1} - {:.1}", r.min_ms(), r.max_ms()),
                ratio(peer),
                ratio(glibc),
                r.rss_mib()
            );
        }
        let runs: Vec<&real::Run> = real.rows.iter().filter(|r| r.program == p).flat_map(|r| &r.runs).collect();
        let mut digests: Vec<u64> = runs.iter().map(|r| r.digest).collect();
        digests.sort_unstable();
        digests.dedup();
        match digests[..] {
            [d] => {
                let _ = writeln!(s, "  digest {d:016x}, the same in all {} runs", runs.len());
            }
            _ => {
                let _ = writeln!(s, "  DIGEST MISMATCH: {} different digests over {} runs", digests.len(), runs.len());
            }
        }
        if let Some(slab) = real.row(p, Kind::Slab) {
            let run = &slab.runs[0];
            let _ = writeln!(
                s,
                "  lockfree-slab served {} allocations from its classes, {} went to its fallback (system allocator)",
                run.slab_served, run.slab_fallbacks
            );
        }
    }
    for e in &real.errors {
        let _ = writeln!(s, "\nERROR: {e}");
    }
    s
}

/// The real-program targets of one program: wall time at most 0.9x the
/// faster of mimalloc and jemalloc and below glibc's, peak RSS no more than
/// mimalloc's.
fn real_targets(real: &real::Results, line: &mut impl FnMut(bool, String)) {
    for p in real.programs() {
        let Some(slab) = real.row(p, Kind::Slab) else { continue };
        let name = p.name();
        let by = |r: f64, target: f64| {
            if r <= target {
                String::new()
            } else {
                format!(", missed by {:.1} %", (r / target - 1.0) * 100.0)
            }
        };
        if let Some(best) = best_peer(real, p) {
            let r = slab.median_ms() / best.median_ms();
            line(
                r <= 0.9,
                format!(
                    "real {name}: slab {:.1} ms = {r:.2}x of {} ({:.1} ms); target <= 0.90x{}",
                    slab.median_ms(),
                    best.kind.name(),
                    best.median_ms(),
                    by(r, 0.9)
                ),
            );
        }
        if let Some(g) = real.row(p, Kind::System) {
            let r = slab.median_ms() / g.median_ms();
            line(
                r < 1.0,
                format!(
                    "real {name}: slab {:.1} ms = {r:.2}x of glibc ({:.1} ms); target < 1x{}",
                    slab.median_ms(),
                    g.median_ms(),
                    by(r, 1.0)
                ),
            );
        }
        if let Some(mi) = real.row(p, Kind::Mimalloc) {
            let r = slab.rss_mib() / mi.rss_mib();
            line(
                r <= 1.0,
                format!(
                    "real {name}: slab peak RSS {:.1} MiB = {r:.2}x of mimalloc ({:.1} MiB); target <= 1x{}",
                    slab.rss_mib(),
                    mi.rss_mib(),
                    by(r, 1.0)
                ),
            );
        }
    }
}

/// The project's performance targets, each with the measured ratio and PASS / MISS.
fn targets(cells: &[Cell], memory: &[Memory], real: &real::Results) -> String {
    let mut s = String::from("\nperformance targets:\n");
    let mut line = |ok: bool, text: String| {
        let _ = writeln!(s, "  [{}] {text}", if ok { "PASS" } else { "MISS" });
    };
    let af = Workload::AllocFree;
    for size in [16, 64, 256, 1024, 4096] {
        let p = format!("{size} B");
        let Some(slab) = find(cells, af, &p, Kind::Slab) else { continue };
        let peers: Vec<&Cell> =
            [Kind::Mimalloc, Kind::Jemalloc].iter().filter_map(|&k| find(cells, af, &p, k)).collect();
        if let Some(best) = peers.iter().min_by(|a, b| a.ns_per_op().total_cmp(&b.ns_per_op())) {
            let r = slab.ns_per_op() / best.ns_per_op();
            if size <= 256 {
                line(
                    r <= 0.8,
                    format!(
                        "alloc_free {p}: slab {:.2} ns/op = {r:.2}x of {} ({:.2}); target <= 0.80x",
                        slab.ns_per_op(),
                        best.kind.name(),
                        best.ns_per_op()
                    ),
                );
            } else {
                line(
                    r < 1.0,
                    format!(
                        "alloc_free {p}: slab {:.2} ns/op = {r:.2}x of {} ({:.2}); target < 1.00x (faster than both)",
                        slab.ns_per_op(),
                        best.kind.name(),
                        best.ns_per_op()
                    ),
                );
            }
        }
        if size <= 256 {
            if let Some(floor) = find(cells, af, &p, Kind::Floor) {
                let r = slab.ns_per_op() / floor.ns_per_op();
                line(
                    r <= 4.0,
                    format!(
                        "alloc_free {p}: slab = {r:.2}x the free-list floor ({:.2} ns/op); target <= 4x",
                        floor.ns_per_op()
                    ),
                );
            }
        }
        if let Some(je) = find(cells, af, &p, Kind::Jemalloc) {
            line(
                slab.lat.p999 <= je.lat.p999,
                format!(
                    "alloc_free {p}: P99.9 slab {} ns vs jemalloc {} ns; target <=",
                    ns(slab.lat.p999),
                    ns(je.lat.p999)
                ),
            );
        }
    }
    for c in cells.iter().filter(|c| c.workload == Workload::Batch && c.kind == Kind::Slab) {
        if let Some(mi) = find(cells, Workload::Batch, &c.param, Kind::Mimalloc) {
            let r = c.mops() / mi.mops();
            line(
                r >= 1.0,
                format!(
                    "batch {}: slab {:.1} Mops/s = {r:.2}x mimalloc ({:.1}); target >= 1x",
                    c.param,
                    c.mops(),
                    mi.mops()
                ),
            );
        }
    }
    if let (Some(t1), Some(t2)) =
        (find(cells, Workload::Threads, "1", Kind::Slab), find(cells, Workload::Threads, "2", Kind::Slab))
    {
        let r = t2.mops() / t1.mops();
        line(
            r >= 1.8,
            format!(
                "threads: slab 2 threads {:.1} Mops/s = {r:.2}x of 1 thread ({:.1}); target >= 1.8x",
                t2.mops(),
                t1.mops()
            ),
        );
    }
    for (w, peers, what) in [
        (Workload::ProducerConsumer, &[Kind::System, Kind::Mimalloc, Kind::Jemalloc][..], "best peer"),
        (Workload::Mixed, &[Kind::Jemalloc][..], "jemalloc"),
    ] {
        for c in cells.iter().filter(|c| c.workload == w && c.kind == Kind::Slab) {
            let best =
                peers.iter().filter_map(|&k| find(cells, w, &c.param, k)).max_by(|a, b| a.mops().total_cmp(&b.mops()));
            if let Some(best) = best {
                let r = c.mops() / best.mops();
                line(
                    r >= 1.0,
                    format!(
                        "{} {}: slab {:.1} Mops/s = {r:.2}x {} ({}: {:.1}); target >= 1x",
                        w.name(),
                        c.param,
                        c.mops(),
                        what,
                        best.kind.name(),
                        best.mops()
                    ),
                );
            }
        }
    }
    if let Some(slab) = memory.iter().find(|m| m.kind == Kind::Slab) {
        let b = slab.bytes_per_block();
        line(b <= 68.5, format!("memory: slab {b:.1} B RSS per live 64-B block; target <= 68.5"));
        if let Some(sys) = memory.iter().find(|m| m.kind == Kind::System) {
            line(
                b <= sys.bytes_per_block(),
                format!("memory: slab {b:.1} vs glibc {:.1} B per block; target <=", sys.bytes_per_block()),
            );
        }
    }
    real_targets(real, &mut line);
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes every file; returns the folder.
pub fn write_all(
    o: &Options,
    cal: &Calibration,
    cells: &[Cell],
    memory: &[Memory],
    real: &real::Results,
    text: &str,
) -> std::io::Result<PathBuf> {
    // The default folder is named by Unix seconds: a new name each run (a second
    // apart), in time order when sorted, and no calendar arithmetic to keep.
    let dir = o.out.clone().unwrap_or_else(|| {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results").join(secs.to_string())
    });
    std::fs::create_dir_all(&dir)?;

    let mut csv = String::from(
        "workload,param,allocator,threads,ops,seconds,mops,ns_per_op,p50_ns,p99_ns,p999_ns,max_ns,samples\n",
    );
    for c in cells {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.6},{:.3},{:.3},{:.2},{:.2},{:.2},{:.2},{}",
            c.workload.name(),
            csv_field(&c.param),
            csv_field(c.kind.name()),
            c.threads,
            c.ops,
            c.secs,
            c.mops(),
            c.ns_per_op(),
            c.lat.p50,
            c.lat.p99,
            c.lat.p999,
            c.lat.max,
            c.lat.samples
        );
    }
    std::fs::write(dir.join("results.csv"), csv)?;

    let mut mcsv = String::from("allocator,blocks,block_bytes,baseline_kib,hwm_kib,rss_kib,bytes_per_block\n");
    for m in memory {
        let _ = writeln!(
            mcsv,
            "{},{},{},{},{},{},{:.2}",
            csv_field(m.kind.name()),
            m.blocks,
            crate::rss::BLOCK,
            m.baseline_kib,
            m.hwm_kib,
            m.rss_kib,
            m.bytes_per_block()
        );
    }
    std::fs::write(dir.join("memory.csv"), mcsv)?;

    if !real.rows.is_empty() {
        let mut rcsv = String::from(
            "program,allocator,runs,median_ms,min_ms,max_ms,x_best_peer,x_glibc,peak_rss_mib,max_peak_rss_mib,digest\n",
        );
        for r in real.rows.iter().filter(|r| !r.runs.is_empty()) {
            let (peer, glibc) = real_ratios(real, r);
            let _ = writeln!(
                rcsv,
                "{},{},{},{:.3},{:.3},{:.3},{},{},{:.2},{:.2},{:016x}",
                r.program.name(),
                csv_field(r.kind.name()),
                r.runs.len(),
                r.median_ms(),
                r.min_ms(),
                r.max_ms(),
                peer.map_or(String::new(), |v| format!("{v:.4}")),
                glibc.map_or(String::new(), |v| format!("{v:.4}")),
                r.rss_mib(),
                r.max_rss_mib(),
                r.runs[0].digest
            );
        }
        std::fs::write(dir.join("real.csv"), rcsv)?;
        let mut runs: Vec<&real::Run> = real.rows.iter().flat_map(|r| &r.runs).collect();
        runs.sort_by_key(|r| r.order);
        let mut rrcsv =
            String::from("order,program,allocator,wall_ms,base_kib,hwm_kib,digest,slab_served,slab_fallbacks\n");
        for r in runs {
            let _ = writeln!(
                rrcsv,
                "{},{},{},{:.3},{},{},{:016x},{},{}",
                r.order,
                r.program.name(),
                csv_field(r.kind.name()),
                r.wall_s * 1e3,
                r.base_kib,
                r.hwm_kib,
                r.digest,
                r.slab_served,
                r.slab_fallbacks
            );
        }
        std::fs::write(dir.join("real_runs.csv"), rrcsv)?;
        std::fs::write(dir.join("real.svg"), real_svg(real)?)?;
    }

    // serde_json (already a dev-dependency) writes and escapes the JSON.
    let json = serde_json::json!({
        "cpu": cpu_model(),
        "cores": cores(),
        "clock": clock::describe(),
        "ns_per_tick": cal.ns_per_tick,
        "timer_overhead_ticks": cal.overhead_ticks,
        "timer_resolution_ticks": cal.resolution_ticks,
        "quick": o.quick,
        "duration_ms": o.duration.as_millis() as u64,
        "samples": o.samples,
        "cells": cells.iter().map(|c| serde_json::json!({
            "workload": c.workload.name(),
            "param": c.param,
            "allocator": c.kind.name(),
            "threads": c.threads,
            "ops": c.ops,
            "seconds": c.secs,
            "mops": c.mops(),
            "ns_per_op": c.ns_per_op(),
            "p50_ns": c.lat.p50,
            "p99_ns": c.lat.p99,
            "p999_ns": c.lat.p999,
            "max_ns": c.lat.max,
            "samples": c.lat.samples,
        })).collect::<Vec<_>>(),
        "memory": memory.iter().map(|m| serde_json::json!({
            "allocator": m.kind.name(),
            "blocks": m.blocks,
            "block_bytes": crate::rss::BLOCK,
            "baseline_kib": m.baseline_kib,
            "hwm_kib": m.hwm_kib,
            "rss_kib": m.rss_kib,
            "bytes_per_block": m.bytes_per_block(),
        })).collect::<Vec<_>>(),
        "real": {
            "runs_per_allocator": real.runs_per_allocator,
            "scale": real.scale.map(|s| s.name()),
            "inputs": real.inputs.iter().map(|(p, d)| (p.name().to_string(), serde_json::Value::from(d.as_str())))
                .collect::<serde_json::Map<_, _>>(),
            "rows": real.rows.iter().filter(|r| !r.runs.is_empty()).map(|r| {
                let (peer, glibc) = real_ratios(real, r);
                serde_json::json!({
                    "program": r.program.name(),
                    "allocator": r.kind.name(),
                    "median_ms": r.median_ms(),
                    "min_ms": r.min_ms(),
                    "max_ms": r.max_ms(),
                    "x_best_peer": peer,
                    "x_glibc": glibc,
                    "peak_rss_mib": r.rss_mib(),
                    "runs": r.runs.iter().map(|x| serde_json::json!({
                        "order": x.order,
                        "wall_ms": x.wall_s * 1e3,
                        "base_kib": x.base_kib,
                        "hwm_kib": x.hwm_kib,
                        "digest": format!("{:016x}", x.digest),
                        "slab_served": x.slab_served,
                        "slab_fallbacks": x.slab_fallbacks,
                    })).collect::<Vec<_>>(),
                })
            }).collect::<Vec<_>>(),
            "errors": real.errors,
        },
    });
    let j = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)? + "\n";
    std::fs::write(dir.join("results.json"), j)?;

    std::fs::write(dir.join("summary.svg"), svg(cells)?)?;
    std::fs::write(dir.join("summary.txt"), text)?;
    Ok(dir)
}

fn color(k: Kind) -> RGBColor {
    match k {
        Kind::Slab => RGBColor(0xd6, 0x27, 0x28),
        Kind::System => RGBColor(0x7f, 0x7f, 0x7f),
        Kind::Mimalloc => RGBColor(0x1f, 0x77, 0xb4),
        Kind::Jemalloc => RGBColor(0x2c, 0xa0, 0x2c),
        Kind::Floor => RGBColor(0x94, 0x67, 0xbd),
    }
}

/// A sans-serif font `px` pixels high: plotters' SVG backend writes
/// `font-size` as the requested size / 1.24.
fn font(px: f64) -> FontDesc<'static> {
    ("sans-serif", px * 1.24).into_font()
}

type Panel<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// Both panels have categories along x (thread counts, percentiles), each
/// `UNIT` wide on an integer axis: plotters 0.3 draws the mesh of an axis
/// with fixed ticks (`with_key_points`) over integers, but has no label
/// formatter for one over `f64`.
const UNIT: i32 = 1000;

/// Two panels: throughput vs threads (threads workload), and P50 / P99 /
/// P99.9 of the cache-hit pair at 64 B (or the first size measured) per
/// allocator, side by side on a log scale; below them, a legend of every
/// allocator measured.
fn svg(cells: &[Cell]) -> std::io::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, 460)).into_drawing_area();
        picture(&root, cells).and_then(|()| root.present()).map_err(std::io::Error::other)?;
    }
    Ok(out)
}

fn picture(root: &Panel, cells: &[Cell]) -> Drawn {
    root.fill(&WHITE)?;
    let (panels, legend) = root.split_vertically(420);
    let (left, right) = panels.split_horizontally(560);
    throughput(&left, cells)?;
    latency(&right, cells)?;
    let mut lx = 70;
    for k in Kind::ALL.into_iter().filter(|&k| cells.iter().any(|c| c.kind == k)) {
        legend.draw(&Rectangle::new([(lx, 18), (lx + 12, 30)], color(k).filled()))?;
        legend.draw(&Text::new(k.name(), (lx + 16, 18), font(12.0)))?;
        lx += 24 + 7 * k.name().len() as i32;
    }
    Ok(())
}

/// Mops/s against the thread count, one line per allocator; the thread
/// counts measured are evenly spaced.
fn throughput(area: &Panel, cells: &[Cell]) -> Drawn {
    let caption = "Throughput vs threads (thread-local churn, 64 B)";
    let tcells: Vec<&Cell> = cells.iter().filter(|c| c.workload == Workload::Threads).collect();
    if tcells.is_empty() {
        return area.titled(caption, font(15.0)).map(drop);
    }
    let mut xs: Vec<usize> = tcells.iter().map(|c| c.x).collect();
    xs.sort_unstable();
    xs.dedup();
    let at = |x: usize| xs.iter().position(|&v| v == x).unwrap() as i32 * UNIT;
    let last = (xs.len() as i32 - 1) * UNIT;
    let pad = last.max(UNIT) / 20;
    let ymax = tcells.iter().map(|c| c.mops()).fold(0.0, f64::max) * 1.1;
    let ticks = (0..xs.len() as i32).map(|i| i * UNIT).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(15.0))
        .margin(10)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((-pad..last + pad).with_key_points(ticks), 0.0..ymax)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xee, 0xee, 0xee))
        .y_labels(6)
        .x_label_formatter(&|&i| xs[(i / UNIT) as usize].to_string())
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("threads")
        .y_desc("Mops/s (all threads)")
        .label_style(font(12.0))
        .axis_desc_style(font(12.0))
        .draw()?;
    for k in Kind::ALL {
        let mut pts: Vec<(i32, f64)> = tcells.iter().filter(|c| c.kind == k).map(|c| (at(c.x), c.mops())).collect();
        pts.sort_unstable_by_key(|p| p.0);
        chart.draw_series(LineSeries::new(pts.iter().copied(), color(k).stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color(k).filled())))?;
    }
    Ok(())
}

/// P50, P99 and P99.9 of the alloc+free pair at 64 B (or the first size
/// measured): one group per percentile, one bar per allocator, log scale.
fn latency(area: &Panel, cells: &[Cell]) -> Drawn {
    let afc: Vec<&Cell> = cells.iter().filter(|c| c.workload == Workload::AllocFree).collect();
    let size = if afc.iter().any(|c| c.x == 64) { 64 } else { afc.first().map_or(0, |c| c.x) };
    let lcells: Vec<&Cell> = afc.into_iter().filter(|c| c.x == size).collect();
    let caption = format!("Latency per call, alloc+free pair at {size} B (ns, log)");
    if lcells.is_empty() {
        return area.titled(&caption, font(15.0)).map(drop);
    }
    let vals = |c: &Cell| [c.lat.p50, c.lat.p99, c.lat.p999];
    let lo = lcells.iter().flat_map(|c| vals(c)).filter(|&v| v > 0.0).fold(f64::MAX, f64::min).max(0.1);
    let hi = lcells.iter().flat_map(|c| vals(c)).fold(0.0, f64::max).max(lo * 10.0);
    let (dlo, dhi) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let floor = 10f64.powi(dlo);
    let decades = (dlo..=dhi).map(|d| 10f64.powi(d)).collect();
    let groups = ["P50", "P99", "P99.9"];
    let mut chart = ChartBuilder::on(area)
        .caption(&caption, font(15.0))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(
            (0..groups.len() as i32 * UNIT).with_key_points(vec![UNIT / 2, UNIT * 3 / 2, UNIT * 5 / 2]),
            (floor..10f64.powi(dhi)).log_scale().with_key_points(decades),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xee, 0xee, 0xee))
        .x_label_formatter(&|&g| groups[(g / UNIT) as usize].to_string())
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(font(12.0))
        .draw()?;
    // Each group keeps a 6 % gap on either side; bars are 90 % of their slot.
    let slot = UNIT * 88 / 100 / lcells.len() as i32;
    let label = TextStyle::from(font(9.0)).pos(Pos::new(HPos::Center, VPos::Bottom));
    for g in 0..groups.len() {
        for (i, c) in lcells.iter().enumerate() {
            let (v, x) = (vals(c)[g], g as i32 * UNIT + UNIT * 6 / 100 + i as i32 * slot);
            let top = v.max(floor);
            chart.draw_series([Rectangle::new([(x, floor), (x + slot * 9 / 10, top)], color(c.kind).filled())])?;
            chart
                .draw_series([EmptyElement::at((x + slot * 9 / 20, top)) + Text::new(ns(v), (0, -3), label.clone())])?;
        }
    }
    Ok(())
}

/// The real programs, two panels: wall time and peak RSS of each allocator
/// relative to the faster of mimalloc and jemalloc (wall; whiskers: the
/// runs' min-max) and to mimalloc (RSS), one group of bars per program. The
/// targets are drawn as dashed lines (0.9 and 1.0).
fn real_svg(real: &real::Results) -> std::io::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, 460)).into_drawing_area();
        real_picture(&root, real).and_then(|()| root.present()).map_err(std::io::Error::other)?;
    }
    Ok(out)
}

fn real_picture(root: &Panel, real: &real::Results) -> Drawn {
    root.fill(&WHITE)?;
    let (panels, legend) = root.split_vertically(420);
    let (left, right) = panels.split_horizontally(560);
    let wall = |p: Program, r: &Row| {
        let base = best_peer(real, p)?.median_ms();
        Some((r.median_ms() / base, r.min_ms() / base, r.max_ms() / base))
    };
    let rss = |p: Program, r: &Row| {
        let base = real.row(p, Kind::Mimalloc)?.rss_mib();
        Some((r.rss_mib() / base, r.rss_mib() / base, r.max_rss_mib() / base))
    };
    ratio_bars(&left, real, "Real programs: wall time / faster of mimalloc, jemalloc (target 0.9)", 0.9, &wall)?;
    ratio_bars(&right, real, "Peak RSS / mimalloc's (target 1.0)", 1.0, &rss)?;
    let mut lx = 70;
    for k in Kind::ALL.into_iter().filter(|&k| real.rows.iter().any(|r| r.kind == k && !r.runs.is_empty())) {
        legend.draw(&Rectangle::new([(lx, 18), (lx + 12, 30)], color(k).filled()))?;
        legend.draw(&Text::new(k.name(), (lx + 16, 18), font(12.0)))?;
        lx += 24 + 7 * k.name().len() as i32;
    }
    Ok(())
}

/// A bar's height, and its whisker's low and high end.
type Bar = (f64, f64, f64);

/// One bar per allocator per program: `value(p, row)`, or `None` where the
/// baseline was not measured. A dashed line at 1.0 and one at `target`.
fn ratio_bars(
    area: &Panel,
    real: &real::Results,
    caption: &str,
    target: f64,
    value: &dyn Fn(Program, &Row) -> Option<Bar>,
) -> Drawn {
    let programs = real.programs();
    let bars: Vec<(usize, &Row, Bar)> = programs
        .iter()
        .enumerate()
        .flat_map(|(i, &p)| {
            real.rows
                .iter()
                .filter(move |r| r.program == p && !r.runs.is_empty())
                .filter_map(move |r| Some((i, r, value(p, r)?)))
        })
        .collect();
    if bars.is_empty() {
        return area.titled(caption, font(15.0)).map(drop);
    }
    let ymax = bars.iter().map(|b| b.2 .2).fold(1.2f64, f64::max) * 1.1;
    let groups = programs.len() as i32;
    let ticks = (0..groups).map(|g| g * UNIT + UNIT / 2).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(15.0))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0..groups * UNIT).with_key_points(ticks), 0.0..ymax)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(0xee, 0xee, 0xee))
        .y_labels(8)
        .x_label_formatter(&|&g| programs[(g / UNIT) as usize].name().to_string())
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(font(12.0))
        .draw()?;
    for (y, c) in [(1.0, RGBColor(0x55, 0x55, 0x55)), (target, RGBColor(0xd6, 0x27, 0x28))] {
        chart.draw_series(DashedLineSeries::new([(0, y), (groups * UNIT, y)], 6, 4, c.stroke_width(1)))?;
    }
    let label = TextStyle::from(font(9.0)).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (g, p) in programs.iter().enumerate() {
        let group: Vec<&(usize, &Row, Bar)> = bars.iter().filter(|b| b.0 == g).collect();
        let Some(n) = (!group.is_empty()).then_some(group.len() as i32) else { continue };
        let slot = UNIT * 88 / 100 / n;
        for (i, (_, r, (v, lo, hi))) in group.into_iter().enumerate() {
            debug_assert_eq!(r.program, *p);
            let x = g as i32 * UNIT + UNIT * 6 / 100 + i as i32 * slot;
            let mid = x + slot * 9 / 20;
            chart.draw_series([Rectangle::new([(x, 0.0), (x + slot * 9 / 10, *v)], color(r.kind).filled())])?;
            if hi > lo {
                chart.draw_series([PathElement::new([(mid, *lo), (mid, *hi)], BLACK.stroke_width(1))])?;
            }
            chart.draw_series([
                EmptyElement::at((mid, hi.max(*v))) + Text::new(format!("{v:.2}"), (0, -3), label.clone())
            ])?;
        }
    }
    Ok(())
}
