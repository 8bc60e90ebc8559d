//! A bounded run of the fuzz driver (`tests/fuzz/driver.rs`) in every
//! `cargo test`, so the programs it checks run even where cargo-fuzz is not
//! installed: pseudo-random programs from a fixed seed, then every saved
//! regression input in `tests/fuzz/regressions/`.
//!
//! - `LFS_FUZZ_CASES=N`: how many random programs (default 3000).
//! - `LFS_FUZZ_SEED=S`: another seed, for a longer search without cargo-fuzz
//!   (e.g. `LFS_FUZZ_CASES=1000000 LFS_FUZZ_SEED=$RANDOM cargo test --test it fuzz_smoke`).
//! - `LFS_FUZZ_INPUT=PATH`: run only this input file (or every file in this
//!   directory), e.g. a crash that `cargo fuzz` saved.
//!
//! A failing random program is written to the system's temporary directory
//! and its path printed, so it can be replayed with `LFS_FUZZ_INPUT` or
//! `cargo fuzz run --fuzz-dir tests/fuzz slab PATH`.

#[path = "../fuzz/driver.rs"]
mod driver;

use std::panic;
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn inputs_in(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(path).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    }
}

fn run_file(path: &Path) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("fuzz input {} ({} bytes)", path.display(), data.len());
    driver::run(&data);
}

/// A random program: mostly short ones (a few dozen operations, so each
/// configuration is reached often), some up to libFuzzer's default 4 KiB.
fn program(rng: &mut SmallRng) -> Vec<u8> {
    let len = match rng.random_range(0..8) {
        0 => rng.random_range(0..4096),
        _ => rng.random_range(0..256),
    };
    let mut data = vec![0; len];
    rng.fill_bytes(&mut data);
    data
}

#[test]
fn random_programs_match_the_model() {
    if let Ok(path) = std::env::var("LFS_FUZZ_INPUT") {
        for file in inputs_in(Path::new(&path)) {
            run_file(&file);
        }
        return;
    }
    let cases = env_u64("LFS_FUZZ_CASES", 3000);
    let seed = env_u64("LFS_FUZZ_SEED", 0x5EED_F022);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut bytes = 0;
    let mut total = driver::Summary::default();
    for case in 0..cases {
        let data = program(&mut rng);
        bytes += data.len();
        let result = panic::catch_unwind(|| driver::run(&data));
        if let Ok(summary) = result {
            total.add(&summary);
        } else {
            let path = std::env::temp_dir().join(format!("lockfree-slab-fuzz-{seed:x}-{case}"));
            std::fs::write(&path, &data).unwrap();
            panic!(
                "program {case} of seed {seed:#x} failed (message above); saved to {0}\n\
                 replay: LFS_FUZZ_INPUT={0} cargo test --test it fuzz_smoke -- --nocapture",
                path.display()
            );
        }
    }
    eprintln!("{cases} random programs ({bytes} bytes) matched the model: {total:#?}");
    if cases >= 1000 {
        // The programs reach every kind of answer; if a change to the driver
        // or the configurations stops that, the run would check less.
        let reached = [
            ("pool blocks", total.from_pool),
            ("system blocks", total.from_system),
            ("dangling zero-size pointers", total.dangling),
            ("refusals", total.failed),
            ("frees on the worker thread", total.worker_frees),
            ("resizes in place", total.resized_in_place),
            ("resizes by moving", total.resized_by_moving),
            ("handoffs", total.handoffs),
            ("storms", total.storms),
            ("drained classes", total.drained_classes),
        ];
        for (what, count) in reached {
            assert!(count > 0, "{cases} programs produced no {what}");
        }
    }
}

#[test]
fn saved_regressions_match_the_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
    let files = inputs_in(&dir);
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    for file in files {
        run_file(&file);
    }
}

/// Every configuration builds, and an empty program on it passes the end
/// checks (nothing in use, every class drains to exactly its capacity).
#[test]
fn every_configuration_builds_and_drains() {
    for first in 0..driver::CONFIGS.len() as u8 {
        driver::run(&[first]);
        // With a second allocator of every other configuration.
        driver::run(&[first, 1 + 2 * ((first + 3) % driver::CONFIGS.len() as u8)]);
    }
}
