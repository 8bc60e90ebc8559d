//! The real-program section: the programs of `examples/real/` run with each
//! allocator as the `#[global_allocator]` of a process of its own (the tool
//! re-executes itself with `--real-child` and [`chosen::ENV`] set; see
//! `chosen.rs`), runs alternated, and the results gathered per program and
//! allocator: wall time, peak RSS and the digest, which must agree.
//!
//! Order: run 1 of every program on every allocator, then run 2, and so on;
//! within a run and program the allocators go round-robin, starting one
//! further each time, so no allocator always runs first or after the same
//! neighbour, and a slow minute of a noisy machine spreads over all of them.
//!
//! The child reads its inputs first, then times the program alone with
//! `Instant` (process start and input reading are not timed), and reads
//! `VmHWM` (peak RSS, the whole process: inputs, allocator and program)
//! from `/proc/self/status`.

use std::process::Command;
use std::time::Instant;

use indicatif::ProgressBar;

use crate::chosen::{self, Global};
use crate::programs::{self, Program, Scale};
use crate::rss::status;
use crate::Kind;

/// What one child reported.
#[derive(Clone, Debug)]
pub struct Run {
    pub program: Program,
    pub kind: Kind,
    /// Position in the whole sequence of runs (0 first).
    pub order: usize,
    pub wall_s: f64,
    /// `VmRSS` after reading the inputs, before the program.
    pub base_kib: u64,
    /// `VmHWM` after the program.
    pub hwm_kib: u64,
    pub digest: u64,
    /// The slab's own counts (zero on the other allocators): allocations it
    /// served from its classes, and requests it sent to its fallback
    /// (larger than its largest class, or a class ran dry).
    pub slab_served: u64,
    pub slab_fallbacks: u64,
}

/// One program on one allocator, over all its runs.
#[derive(Clone, Debug)]
pub struct Row {
    pub program: Program,
    pub kind: Kind,
    pub runs: Vec<Run>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Row {
    fn walls_ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.runs.iter().map(|r| r.wall_s * 1e3)
    }
    pub fn median_ms(&self) -> f64 {
        median(self.walls_ms().collect())
    }
    pub fn min_ms(&self) -> f64 {
        self.walls_ms().fold(f64::INFINITY, f64::min)
    }
    pub fn max_ms(&self) -> f64 {
        self.walls_ms().fold(0.0, f64::max)
    }
    /// Median peak RSS, MiB.
    pub fn rss_mib(&self) -> f64 {
        median(self.runs.iter().map(|r| r.hwm_kib as f64 / 1024.0).collect())
    }
    pub fn max_rss_mib(&self) -> f64 {
        self.runs.iter().map(|r| r.hwm_kib as f64 / 1024.0).fold(0.0, f64::max)
    }
}

/// The section's results.
#[derive(Default)]
pub struct Results {
    pub runs_per_allocator: usize,
    pub scale: Option<Scale>,
    /// Each program's inputs, in words (from its first child).
    pub inputs: Vec<(Program, String)>,
    pub rows: Vec<Row>,
    /// Children that failed, and digests that differ: any of these makes
    /// the tool exit non-zero.
    pub errors: Vec<String>,
}

impl Results {
    pub fn row(&self, p: Program, k: Kind) -> Option<&Row> {
        self.rows.iter().find(|r| r.program == p && r.kind == k && !r.runs.is_empty())
    }
    pub fn programs(&self) -> Vec<Program> {
        Program::ALL.into_iter().filter(|&p| self.rows.iter().any(|r| r.program == p)).collect()
    }
}

/// The child's side: runs `program` once on this process's global allocator,
/// prints `key value` lines and exits.
pub fn child(program: Program, scale: Scale) -> ! {
    let prepared = programs::prepare(program, scale);
    let base = status("VmRSS:").unwrap_or(0);
    let start = Instant::now();
    let digest = prepared.run();
    let wall = start.elapsed();
    let hwm = status("VmHWM:").unwrap_or(0);
    let slab = chosen::SLAB.stats();
    assert!(slab.is_consistent(), "the slab's accounting does not add up after the run:\n{slab}");
    println!("allocator {}", Global::current().flag());
    println!("digest {digest:016x}");
    println!("wall_ns {}", wall.as_nanos());
    println!("base_kib {base}");
    println!("hwm_kib {hwm}");
    println!("slab_served {}", slab.totals.allocations);
    println!("slab_fallbacks {}", slab.totals.fallbacks + slab.oversize_fallbacks);
    println!("inputs {}", prepared.inputs.describe);
    std::process::exit(0)
}

/// The parent's side of one run: `(run, inputs description)`.
fn spawn(program: Program, kind: Kind, scale: Scale, order: usize) -> Result<(Run, String), String> {
    let what = format!("{} on {}", program.name(), kind.name());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--real-child", program.name(), scale.name()])
        .env(chosen::ENV, kind.flag())
        .output()
        .map_err(|e| format!("{what}: cannot start the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{what}: the child failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .ok_or_else(|| format!("{what}: no {key:?} in the child's output:\n{stdout}"))
    };
    let num = |key: &str| field(key)?.trim().parse::<u64>().map_err(|e| format!("{what}: {key}: {e}"));
    if field("allocator")? != kind.flag() {
        return Err(format!("{what}: the child ran on {:?} (is {} set?)", field("allocator")?, chosen::ENV));
    }
    let run = Run {
        program,
        kind,
        order,
        wall_s: num("wall_ns")? as f64 / 1e9,
        base_kib: num("base_kib")?,
        hwm_kib: num("hwm_kib")?,
        digest: u64::from_str_radix(field("digest")?, 16).map_err(|e| format!("{what}: digest: {e}"))?,
        slab_served: num("slab_served")?,
        slab_fallbacks: num("slab_fallbacks")?,
    };
    if (kind == Kind::Slab) != (run.slab_served > 0) {
        return Err(format!("{what}: the slab served {} allocations in this child", run.slab_served));
    }
    Ok((run, field("inputs")?.to_string()))
}

/// The number of children [`measure`] starts.
pub fn count(programs: &[Program], kinds: &[Kind], runs: usize) -> usize {
    programs.len() * real_kinds(kinds).len() * runs
}

/// The allocators that can be a global allocator (not the floor).
fn real_kinds(kinds: &[Kind]) -> Vec<Kind> {
    kinds.iter().copied().filter(|&k| k != Kind::Floor).collect()
}

/// Runs every program on every allocator `runs` times, alternated (see the
/// module docs); advances `pb` once per child.
pub fn measure(programs: &[Program], kinds: &[Kind], runs: usize, scale: Scale, pb: &ProgressBar) -> Results {
    let kinds = real_kinds(kinds);
    let mut res = Results { runs_per_allocator: runs, scale: Some(scale), ..Results::default() };
    for &p in programs {
        for &k in &kinds {
            res.rows.push(Row { program: p, kind: k, runs: Vec::new() });
        }
    }
    let mut order = 0;
    for r in 0..runs {
        for (pi, &p) in programs.iter().enumerate() {
            for i in 0..kinds.len() {
                let k = kinds[(i + r + pi) % kinds.len()];
                pb.set_message(format!("real {} run {}/{runs} {}", p.name(), r + 1, k.name()));
                match spawn(p, k, scale, order) {
                    Ok((run, inputs)) => {
                        if !res.inputs.iter().any(|(q, _)| *q == p) {
                            res.inputs.push((p, inputs));
                        }
                        let row = res.rows.iter_mut().find(|row| row.program == p && row.kind == k);
                        row.expect("a row per program and allocator").runs.push(run);
                    }
                    Err(e) => {
                        pb.println(format!("error: {e}"));
                        res.errors.push(e);
                    }
                }
                order += 1;
                pb.inc(1);
            }
        }
    }
    for &p in programs {
        let mut digests: Vec<(Kind, u64)> = res
            .rows
            .iter()
            .filter(|row| row.program == p)
            .flat_map(|row| row.runs.iter().map(|r| (r.kind, r.digest)))
            .collect();
        digests.sort_by_key(|d| d.1);
        digests.dedup_by_key(|d| d.1);
        if digests.len() > 1 {
            let list: Vec<String> = digests.iter().map(|(k, d)| format!("{d:016x} ({})", k.name())).collect();
            res.errors.push(format!(
                "DIGEST MISMATCH in {}: the allocators computed different results: {}",
                p.name(),
                list.join(", ")
            ));
        }
    }
    res
}
