//! Tables, the targets, and the files in the results folder
//! (results.csv, memory.csv, results.json, summary.svg, summary.txt).
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
