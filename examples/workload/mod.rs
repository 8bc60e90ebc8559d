//! A real-program workload, shared by `examples/workload_{system,mimalloc,slab}.rs`
//! and `tests/workload_identical.rs` (each includes this file with `#[path]`, so
//! it runs under whatever `#[global_allocator]` the including binary names).
//!
//! Per worker thread, from a seed that depends only on the worker's index:
//!
//! 1. **JSON.** Build a large `serde_json::Value` (an array of records with
//!    nested objects, arrays, strings, integers and floats), serialise it,
//!    parse the text back, check the parsed value equals the original, and
//!    serialise it again (pretty-printed), checking the compact forms match.
//! 2. **Regex.** Generate log-like text lines and run a set of regexes over
//!    them (matches, captures, replacements), hashing every result.
//!
//! Everything is deterministic: no randomness from the OS, no `HashMap`
//! iteration order (serde_json's map is a `BTreeMap` without
//! `preserve_order`), no timing. The digest is an FNV-1a hash of every
//! result, combined in worker order, so two runs on two allocators print the
//! same digest exactly when they computed the same results.

#![allow(dead_code)] // each including binary uses a different subset

use std::thread;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use regex::Regex;
use serde_json::{json, Map, Value};

// Shared with examples/real/ (the real-program section of the comparison tool).
#[path = "fnv.rs"]
mod fnv;
pub use fnv::Fnv;

/// How much work one run does.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    /// Worker threads.
    pub threads: usize,
    /// JSON records per worker.
    pub records: usize,
    /// Text lines per worker for the regexes.
    pub lines: usize,
    /// Rounds of the whole job per worker (fresh data each round).
    pub rounds: usize,
}

impl Size {
    /// The size the examples time: a few seconds on a 2-core machine.
    pub const FULL: Size = Size { threads: 4, records: 40_000, lines: 60_000, rounds: 3 };
    /// A size for the test: well under a second in an optimised build.
    pub const SMALL: Size = Size { threads: 4, records: 2_000, lines: 3_000, rounds: 2 };

    /// `FULL`, or `SMALL` when the first argument is `--small`.
    pub fn from_args() -> Size {
        match std::env::args().nth(1).as_deref() {
            Some("--small") => Size::SMALL,
            Some(other) => panic!("unknown argument {other:?} (expected nothing or --small)"),
            None => Size::FULL,
        }
    }
}

/// A word of one to four syllables.
fn word(rng: &mut SmallRng) -> String {
    const SYLLABLES: [&str; 16] =
        ["ka", "lo", "mi", "re", "tan", "vo", "shi", "qu", "ne", "zor", "pel", "ix", "um", "bra", "dy", "ost"];
    let n = 1 + rng.random_range(0..4);
    (0..n).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect()
}

fn record(rng: &mut SmallRng, i: usize) -> Value {
    let tags: Vec<Value> = (0..rng.random_range(0..6)).map(|_| Value::String(word(rng))).collect();
    let mut attrs = Map::new();
    for _ in 0..rng.random_range(0..5) {
        attrs.insert(word(rng), json!(rng.random_range(0..1_000_000)));
    }
    let history: Vec<Value> = (0..rng.random_range(0..4))
        .map(|k| json!({ "step": k, "ok": rng.random_bool(0.5), "note": format!("{} {}", word(rng), word(rng)) }))
        .collect();
    json!({
        "id": i,
        "name": format!("{}-{}", word(rng), i),
        "email": format!("{}.{}@{}.example", word(rng), word(rng), word(rng)),
        "score": (rng.random_range(0..1_000_000) as f64) / 1000.0,
        "active": rng.random_range(0..3) != 0,
        "tags": tags,
        "attrs": attrs,
        "history": history,
        "text": (0..rng.random_range(0..12)).map(|_| word(rng)).collect::<Vec<_>>().join(" "),
    })
}

/// Builds, serialises, parses and re-serialises a JSON document; hashes the
/// results and checks the round trip.
fn json_job(seed: u64, records: usize, h: &mut Fnv) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let doc = Value::Array((0..records).map(|i| record(&mut rng, i)).collect());
    let text = serde_json::to_string(&doc).expect("serialise");
    let parsed: Value = serde_json::from_str(&text).expect("parse");
    assert_eq!(parsed, doc, "JSON round trip changed the document");
    let pretty = serde_json::to_string_pretty(&parsed).expect("serialise pretty");
    let reparsed: Value = serde_json::from_str(&pretty).expect("parse pretty");
    let again = serde_json::to_string(&reparsed).expect("serialise again");
    assert_eq!(again, text, "compact text differs after a pretty round trip");
    h.str(&text);
    h.u64(pretty.len() as u64);
    // Some queries over the parsed document.
    let items = parsed.as_array().expect("array");
    let active = items.iter().filter(|r| r["active"] == Value::Bool(true)).count();
    let tag_total: usize = items.iter().map(|r| r["tags"].as_array().map_or(0, Vec::len)).sum();
    let score_sum: f64 = items.iter().filter_map(|r| r["score"].as_f64()).sum();
    h.u64(active as u64);
    h.u64(tag_total as u64);
    h.u64(score_sum.to_bits());
}

fn log_line(rng: &mut SmallRng, i: usize) -> String {
    const LEVELS: [&str; 4] = ["INFO", "WARN", "ERROR", "DEBUG"];
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z {} [{}] user={}@{}.example ip={}.{}.{}.{} req#{} took {}ms path=/{}/{}\n",
        1 + rng.random_range(0..12),
        1 + rng.random_range(0..28),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        LEVELS[rng.random_range(0..LEVELS.len())],
        word(rng),
        word(rng),
        word(rng),
        rng.random_range(0..256),
        rng.random_range(0..256),
        rng.random_range(0..256),
        rng.random_range(0..256),
        i,
        rng.random_range(0..5000),
        word(rng),
        word(rng),
    )
}

/// The regexes, compiled once per worker (compiling allocates too).
struct Patterns {
    date: Regex,
    email: Regex,
    ip: Regex,
    slow: Regex,
    word: Regex,
    level: Regex,
}

impl Patterns {
    fn new() -> Self {
        Patterns {
            date: Regex::new(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})").unwrap(),
            email: Regex::new(r"([a-z]+)@([a-z]+)\.example").unwrap(),
            ip: Regex::new(r"\b(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\b").unwrap(),
            slow: Regex::new(r"took (\d{4,})ms").unwrap(),
            word: Regex::new(r"\b[a-z]{6,}\b").unwrap(),
            level: Regex::new(r"(?m)^.*\b(ERROR|WARN)\b.*$").unwrap(),
        }
    }
}

fn regex_job(seed: u64, lines: usize, p: &Patterns, h: &mut Fnv) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED);
    let text: String = (0..lines).map(|i| log_line(&mut rng, i)).collect();
    let mut months = [0u64; 13];
    for c in p.date.captures_iter(&text) {
        months[c[2].parse::<usize>().unwrap()] += 1;
    }
    months.iter().for_each(|&m| h.u64(m));
    let mut users: Vec<String> = p.email.captures_iter(&text).map(|c| format!("{}/{}", &c[2], &c[1])).collect();
    users.sort_unstable();
    users.dedup();
    h.u64(users.len() as u64);
    users.iter().for_each(|u| h.str(u));
    let octets: u64 = p.ip.captures_iter(&text).map(|c| c[4].parse::<u64>().unwrap()).sum();
    h.u64(octets);
    let slow: Vec<u64> = p.slow.captures_iter(&text).map(|c| c[1].parse().unwrap()).collect();
    h.u64(slow.len() as u64);
    h.u64(slow.iter().sum());
    let long_words = p.word.find_iter(&text).count();
    h.u64(long_words as u64);
    let bad_lines: Vec<&str> = p.level.find_iter(&text).map(|m| m.as_str()).collect();
    h.u64(bad_lines.len() as u64);
    let redacted = p.email.replace_all(&text, "<$2>");
    let redacted = p.ip.replace_all(&redacted, "x.x.x.$4");
    h.str(&redacted);
}

/// One worker: `rounds` rounds of both jobs on data seeded by `worker`.
fn worker(worker: usize, size: Size) -> u64 {
    let mut h = Fnv::new();
    let patterns = Patterns::new();
    for round in 0..size.rounds {
        let seed = (worker as u64) << 32 | round as u64;
        json_job(seed, size.records, &mut h);
        regex_job(seed, size.lines, &patterns, &mut h);
    }
    h.finish()
}

/// Runs the workload on `size.threads` threads and returns its digest.
pub fn run(size: Size) -> u64 {
    let handles: Vec<_> = (0..size.threads).map(|w| thread::spawn(move || worker(w, size))).collect();
    let mut digest = Fnv::new();
    for h in handles {
        digest.u64(h.join().expect("worker panicked"));
    }
    digest.finish()
}

/// The examples' `main`: runs the workload (size from the arguments), prints
/// the digest and the wall time.
pub fn main_for(allocator: &str) {
    let size = Size::from_args();
    let start = std::time::Instant::now();
    let digest = run(size);
    let elapsed = start.elapsed();
    println!("allocator: {allocator}");
    println!("digest: {digest:016x}");
    println!("wall: {:.3} s", elapsed.as_secs_f64());
}
