//! Tables, the targets, and the files in the results folder
//! (results.csv, memory.csv, results.json, summary.svg, summary.txt).
//! The JSON is written by serde_json; the tables, the CSV and the SVG plot
//! are written by hand (no plotting crate).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{Options, Workload};
use crate::common::{clock, Calibration};
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
    }
}

fn find<'a>(cells: &'a [Cell], w: Workload, param: &str, k: Kind) -> Option<&'a Cell> {
    cells.iter().find(|c| c.workload == w && c.param == param && c.kind == k)
}

pub fn render(o: &Options, cal: &Calibration, cells: &[Cell], memory: &[Memory], elapsed: Duration) -> String {
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
    s.push_str(&targets(cells, memory));
    let _ = writeln!(s, "\ntotal time: {:.1} s", elapsed.as_secs_f64());
    s
}

/// The project's performance targets, each with the measured ratio and PASS / MISS.
fn targets(cells: &[Cell], memory: &[Memory]) -> String {
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
    s
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn timestamp() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60)
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
    text: &str,
) -> std::io::Result<PathBuf> {
    let dir =
        o.out.clone().unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results").join(timestamp()));
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
    });
    let j = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)? + "\n";
    std::fs::write(dir.join("results.json"), j)?;

    std::fs::write(dir.join("summary.svg"), svg(cells))?;
    std::fs::write(dir.join("summary.txt"), text)?;
    Ok(dir)
}

fn color(k: Kind) -> &'static str {
    match k {
        Kind::Slab => "#d62728",
        Kind::System => "#7f7f7f",
        Kind::Mimalloc => "#1f77b4",
        Kind::Jemalloc => "#2ca02c",
        Kind::Floor => "#9467bd",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Two panels: throughput vs threads (threads workload), and P50 / P99 /
/// P99.9 of the cache-hit pair at 64 B (or the first size measured) per
/// allocator, side by side on a log scale.
fn svg(cells: &[Cell]) -> String {
    let (w, h) = (1100.0, 460.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Panel geometry.
    let (top, bottom) = (50.0, h - 70.0);
    // --- Left: throughput vs threads.
    let (l0, l1) = (70.0, 520.0);
    let tcells: Vec<&Cell> = cells.iter().filter(|c| c.workload == Workload::Threads).collect();
    let _ = writeln!(s, "<text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"15\">Throughput vs threads (thread-local churn, 64 B)</text>", (l0 + l1) / 2.0);
    if !tcells.is_empty() {
        let mut xs: Vec<usize> = tcells.iter().map(|c| c.x).collect();
        xs.sort_unstable();
        xs.dedup();
        let ymax = tcells.iter().map(|c| c.mops()).fold(0.0, f64::max) * 1.1;
        let px = |x: usize| {
            let i = xs.iter().position(|&v| v == x).unwrap() as f64;
            if xs.len() == 1 {
                (l0 + l1) / 2.0
            } else {
                l0 + 20.0 + i * (l1 - l0 - 40.0) / (xs.len() - 1) as f64
            }
        };
        let py = |y: f64| bottom - y / ymax * (bottom - top);
        axes(&mut s, l0, l1, top, bottom);
        for i in 0..=5 {
            let v = ymax * i as f64 / 5.0;
            let _ = writeln!(s, "<line x1=\"{l0}\" x2=\"{l1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>", l0 - 5.0, py(v) + 4.0, y = py(v));
        }
        for &x in &xs {
            let _ = writeln!(s, "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x}</text>", px(x), bottom + 18.0);
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">threads</text>",
            (l0 + l1) / 2.0,
            bottom + 36.0
        );
        let _ = writeln!(
            s,
            "<text transform=\"translate(20 {}) rotate(-90)\" text-anchor=\"middle\">Mops/s (all threads)</text>",
            (top + bottom) / 2.0
        );
        for k in Kind::ALL {
            let mut pts: Vec<&&Cell> = tcells.iter().filter(|c| c.kind == k).collect();
            if pts.is_empty() {
                continue;
            }
            pts.sort_by_key(|c| c.x);
            let poly: Vec<String> = pts.iter().map(|c| format!("{:.1},{:.1}", px(c.x), py(c.mops()))).collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                color(k),
                poly.join(" ")
            );
            for c in &pts {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>",
                    px(c.x),
                    py(c.mops()),
                    color(k)
                );
            }
        }
    }
    // --- Right: latency percentiles, log scale.
    let (r0, r1) = (620.0, 1080.0);
    let afc: Vec<&Cell> = cells.iter().filter(|c| c.workload == Workload::AllocFree).collect();
    let size = if afc.iter().any(|c| c.x == 64) { 64 } else { afc.first().map_or(0, |c| c.x) };
    let lcells: Vec<&Cell> = afc.into_iter().filter(|c| c.x == size).collect();
    let _ = writeln!(s, "<text x=\"{}\" y=\"25\" text-anchor=\"middle\" font-size=\"15\">Latency per call, alloc+free pair at {size} B (ns, log)</text>", (r0 + r1) / 2.0);
    if !lcells.is_empty() {
        let vals = |c: &Cell| [c.lat.p50, c.lat.p99, c.lat.p999];
        let lo = lcells.iter().flat_map(|c| vals(c)).filter(|&v| v > 0.0).fold(f64::MAX, f64::min).max(0.1);
        let hi = lcells.iter().flat_map(|c| vals(c)).fold(0.0, f64::max).max(lo * 10.0);
        let (dlo, dhi) = (lo.log10().floor(), hi.log10().ceil());
        let py = |v: f64| bottom - (v.max(10f64.powf(dlo)).log10() - dlo) / (dhi - dlo) * (bottom - top);
        axes(&mut s, r0, r1, top, bottom);
        let mut d = dlo;
        while d <= dhi {
            let v = 10f64.powf(d);
            let _ = writeln!(s, "<line x1=\"{r0}\" x2=\"{r1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>", r0 - 5.0, py(v) + 4.0, y = py(v));
            d += 1.0;
        }
        let groups = ["P50", "P99", "P99.9"];
        let gw = (r1 - r0) / groups.len() as f64;
        let bw = (gw - 20.0) / lcells.len() as f64;
        for (g, name) in groups.iter().enumerate() {
            let gx = r0 + g as f64 * gw + 10.0;
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{name}</text>",
                gx + (gw - 20.0) / 2.0,
                bottom + 18.0
            );
            for (i, c) in lcells.iter().enumerate() {
                let v = vals(c)[g];
                let (x, y) = (gx + i as f64 * bw, py(v));
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.1} ns</title></rect>",
                    (bw - 2.0).max(1.0),
                    (bottom - y).max(0.0),
                    color(c.kind),
                    esc(c.kind.name())
                );
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
                    x + bw / 2.0,
                    y - 3.0,
                    ns(v)
                );
            }
        }
    }
    // Legend.
    let mut lx = 70.0;
    for k in Kind::ALL {
        if cells.iter().any(|c| c.kind == k) {
            let _ = writeln!(
                s,
                "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                h - 22.0,
                color(k),
                lx + 16.0,
                h - 12.0,
                esc(k.name())
            );
            lx += 24.0 + 7.0 * k.name().len() as f64;
        }
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, x0: f64, x1: f64, top: f64, bottom: f64) {
    let _ = writeln!(s, "<line x1=\"{x0}\" x2=\"{x0}\" y1=\"{top}\" y2=\"{bottom}\" stroke=\"black\"/><line x1=\"{x0}\" x2=\"{x1}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"black\"/>");
}
