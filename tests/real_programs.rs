// Own test binary: its global allocator is the comparison tool's chooser, and it re-executes itself on two allocators.
//! The comparison tool's real programs (`examples/real/`: syn, serde_json
//! over mpsc, short-lived threads, a document cache) compute the same
//! results on lockfree-slab as on the system allocator, at the small size
//! that `compare --quick` runs.
//!
//! A process has one global allocator, so each allocator gets a process of
//! its own: this binary's global allocator is the tool's [`chosen::Chosen`],
//! which serves every call from the allocator named by `LFS_COMPARE_GLOBAL`,
//! decided once at the first allocation. The test re-executes itself twice,
//! on the slab and on the system allocator; each child runs every program,
//! checks which allocator served it, and prints the digests, which the
//! parent compares.

use std::collections::BTreeMap;
use std::process::Command;

#[path = "../examples/compare/chosen.rs"]
mod chosen;
#[path = "../examples/real/mod.rs"]
mod programs;

use chosen::{Chosen, Global};
use programs::{Program, Scale};

#[global_allocator]
static GLOBAL: Chosen = Chosen;

/// Set in the children: run the programs and report.
const CHILD: &str = "LFS_REAL_PROGRAMS_CHILD";
const TEST_NAME: &str = "real_programs_give_the_same_digests_on_the_slab_and_the_system_allocator";

/// What one child reported.
struct Report {
    allocator: String,
    slab_allocations: u64,
    digests: BTreeMap<String, String>,
}

fn child_run(allocator: &str) -> Report {
    let exe = std::env::current_exe().expect("path of this test binary");
    let out = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(chosen::ENV, allocator)
        .output()
        .expect("re-run this test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the run on {allocator} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut report = Report { allocator: String::new(), slab_allocations: u64::MAX, digests: BTreeMap::new() };
    // libtest may print "test <name> ... " at the start of the first line.
    for line in stdout.lines() {
        let mut words = line.split_whitespace().skip_while(|w| !w.starts_with("real-"));
        match (words.next(), words.next(), words.next()) {
            (Some("real-allocator"), Some(a), _) => report.allocator = a.to_string(),
            (Some("real-slab-allocations"), Some(n), _) => report.slab_allocations = n.parse().expect("a count"),
            (Some("real-digest"), Some(p), Some(d)) => {
                report.digests.insert(p.to_string(), d.to_string());
            }
            _ => {}
        }
    }
    report
}

#[test]
fn real_programs_give_the_same_digests_on_the_slab_and_the_system_allocator() {
    if std::env::var_os(CHILD).is_some() {
        for p in Program::ALL {
            let digest = programs::prepare(p, Scale::Quick).run();
            println!("real-digest {} {digest:016x}", p.name());
        }
        let stats = chosen::SLAB.stats();
        if Global::current() == Global::Slab {
            assert!(stats.is_consistent(), "{stats}");
        }
        println!("real-slab-allocations {}", stats.totals.allocations);
        println!("real-allocator {}", Global::current().flag());
        return;
    }
    let slab = child_run("slab");
    let system = child_run("system");
    assert_eq!(slab.allocator, "slab");
    assert_eq!(system.allocator, "system");
    assert!(slab.slab_allocations > 100_000, "the slab should have served the programs ({})", slab.slab_allocations);
    assert_eq!(system.slab_allocations, 0, "the system allocator's run must not touch the slab");
    let names: Vec<&str> = Program::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(slab.digests.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut n = names.clone();
        n.sort_unstable();
        n
    });
    assert_eq!(slab.digests, system.digests, "the programs computed different results on the two allocators");
}
