//! The real programs' inputs, found and read before the timed part of a run:
//!
//! - **Rust sources**: the `.rs` files of the crates in this repository's
//!   `Cargo.lock`, as cargo unpacked them under
//!   `$CARGO_HOME/registry/src/*/NAME-VERSION/` (they are there after any
//!   build). Crates in name order, files in path order, taken one file per
//!   crate in turn until the byte budget is spent, so the sample spans the
//!   dependency tree instead of its first few crates. Files over
//!   [`MAX_FILE`] are skipped (generated bindings and tables would fill the
//!   budget alone). If the registry has too little, this repository's own
//!   sources are used, and the description says so.
//! - **JSON**: the crates.io index entries of the same crates, one JSON
//!   object per published version (name, version, dependencies, features,
//!   checksum), from cargo's index cache
//!   (`$CARGO_HOME/registry/index/*/.cache/`). If there is none, the JSON is
//!   the Rust sources above, one object per file (`{"path", "lines"}`), and
//!   the description says so.
//!
//! The same files are read in the same order by every run on every
//! allocator, so the digests must agree; on another machine (another
//! registry) they are other files and other digests.

use std::fs;
use std::path::{Path, PathBuf};

/// Larger files are skipped (see the module docs).
pub const MAX_FILE: u64 = 256 * 1024;

/// One Rust source file.
pub struct Source {
    /// `crate-version/path/in/crate.rs`.
    pub name: String,
    pub text: String,
}

/// The inputs of the real programs.
pub struct Inputs {
    pub sources: Vec<Source>,
    /// Index entries grouped by crate (each a JSON object, as one line of text).
    pub json: Vec<Vec<String>>,
    /// Where the inputs came from, in words, for the report.
    pub describe: String,
}

impl Inputs {
    /// Reads up to `source_bytes` of Rust sources and up to `json_bytes` of
    /// JSON entries (whole crates' entry lists, until the budget is spent).
    pub fn load(source_bytes: usize, json_bytes: usize) -> Inputs {
        let lock = locked_crates();
        let rust = |budget: usize| match registry_sources(&lock, budget) {
            Some(s) => (s, "the dependency tree's crates in the cargo registry"),
            None => (own_sources(budget), "this repository (no cargo registry found: a fallback)"),
        };
        let mut parts = Vec::new();
        let sources = if source_bytes > 0 {
            let (sources, from) = rust(source_bytes);
            let crates = {
                let mut c: Vec<&str> = sources.iter().map(|s| s.name.split('/').next().unwrap_or("")).collect();
                c.sort_unstable();
                c.dedup();
                c.len()
            };
            let bytes: usize = sources.iter().map(|s| s.text.len()).sum();
            parts.push(format!(
                "{:.1} MB of Rust in {} files of {crates} crates from {from}",
                bytes as f64 / 1e6,
                sources.len()
            ));
            sources
        } else {
            Vec::new()
        };
        let json = if json_bytes > 0 {
            let (json, from) = match index_entries(&lock, json_bytes) {
                Some(j) => (j, "crates.io index entries of the dependency tree, from cargo's index cache".to_string()),
                None => {
                    let (sources, from) = rust(json_bytes);
                    (
                        sources_as_json(&sources),
                        format!("Rust sources from {from} wrapped as JSON (no index cache found: a fallback)"),
                    )
                }
            };
            let bytes: usize = json.iter().flatten().map(String::len).sum();
            let objects: usize = json.iter().map(Vec::len).sum();
            parts.push(format!("{:.1} MB of JSON in {objects} objects: {from}", bytes as f64 / 1e6));
            json
        } else {
            Vec::new()
        };
        Inputs { sources, json, describe: parts.join("; ") }
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

/// `(name, version)` of every package in this repository's `Cargo.lock`, sorted.
fn locked_crates() -> Vec<(String, String)> {
    let lock = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap_or_default();
    let mut out = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        let value = |l: &str, key: &str| l.strip_prefix(key).map(|v| v.trim().trim_matches('"').to_string());
        if line == "[[package]]" {
            name = None;
        } else if let Some(n) = value(line, "name = ") {
            name = Some(n);
        } else if let Some(v) = value(line, "version = ") {
            if let Some(n) = name.take() {
                out.push((n, v));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Subfolders of `dir`, sorted.
fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

/// Every `.rs` file under `dir` of at most [`MAX_FILE`] bytes, sorted by path.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let (p, Ok(t)) = (e.path(), e.file_type()) else { continue };
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file()
                && p.extension().is_some_and(|x| x == "rs")
                && e.metadata().is_ok_and(|m| m.len() <= MAX_FILE)
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A crate's name (folder name), its folder and its `.rs` files.
type Crate = (String, PathBuf, Vec<PathBuf>);

/// One file from each crate in turn until `budget` bytes (or every file).
fn round_robin(crates: &[Crate], budget: usize) -> Vec<Source> {
    let mut out = Vec::new();
    let mut total = 0;
    let longest = crates.iter().map(|c| c.2.len()).max().unwrap_or(0);
    'outer: for i in 0..longest {
        for (krate, root, files) in crates {
            let Some(path) = files.get(i) else { continue };
            let Ok(text) = fs::read_to_string(path) else { continue }; // not UTF-8: not Rust
            let rel = path.strip_prefix(root).unwrap_or(path);
            total += text.len();
            out.push(Source { name: format!("{krate}/{}", rel.display()), text });
            if total >= budget {
                break 'outer;
            }
        }
    }
    out
}

fn registry_sources(lock: &[(String, String)], budget: usize) -> Option<Vec<Source>> {
    let src = cargo_home()?.join("registry").join("src");
    let registries = sorted_dirs(&src);
    let mut crates = Vec::new();
    for (name, version) in lock {
        let krate = format!("{name}-{version}");
        if let Some(dir) = registries.iter().map(|r| r.join(&krate)).find(|d| d.is_dir()) {
            let files = rust_files(&dir);
            crates.push((krate, dir, files));
        }
    }
    let sources = round_robin(&crates, budget);
    let total: usize = sources.iter().map(|s| s.text.len()).sum();
    (total >= budget / 2).then_some(sources)
}

/// This repository's `src/`, `tests/`, `benches/` and `examples/`, as one
/// "crate" per folder, repeated until the budget is spent.
fn own_sources(budget: usize) -> Vec<Source> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let crates: Vec<Crate> = ["benches", "examples", "src", "tests"]
        .iter()
        .map(|d| (d.to_string(), root.join(d), rust_files(&root.join(d))))
        .collect();
    let one = round_robin(&crates, budget);
    let bytes: usize = one.iter().map(|s| s.text.len()).sum::<usize>().max(1);
    let copies = budget.div_ceil(bytes).max(1);
    (0..copies)
        .flat_map(|c| one.iter().map(move |s| Source { name: format!("{}#{c}", s.name), text: s.text.clone() }))
        .collect()
}

/// cargo's index cache path of a crate, relative to `.cache/`: `1/a`,
/// `2/ab`, `3/a/abc`, `ab/cd/abcd…`, all lower case.
fn index_path(name: &str) -> PathBuf {
    let n = name.to_lowercase();
    match n.len() {
        1 => PathBuf::from("1").join(&n),
        2 => PathBuf::from("2").join(&n),
        3 => PathBuf::from("3").join(&n[..1]).join(&n),
        _ => PathBuf::from(&n[..2]).join(&n[2..4]).join(&n),
    }
}

/// The index entries of the locked crates, whole crates in name order until
/// `budget` bytes; `None` if there are less than half the budget.
fn index_entries(lock: &[(String, String)], budget: usize) -> Option<Vec<Vec<String>>> {
    let caches: Vec<PathBuf> =
        sorted_dirs(&cargo_home()?.join("registry").join("index")).into_iter().map(|d| d.join(".cache")).collect();
    let mut names: Vec<&str> = lock.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    let mut out = Vec::new();
    let mut total = 0;
    for name in names {
        let Some(raw) = caches.iter().find_map(|c| fs::read(c.join(index_path(name))).ok()) else { continue };
        // A cache file is a small header, then `version \0 json \0` pairs.
        let entries: Vec<String> = raw
            .split(|&b| b == 0)
            .filter(|s| s.first() == Some(&b'{'))
            .filter_map(|s| String::from_utf8(s.to_vec()).ok())
            .collect();
        total += entries.iter().map(String::len).sum::<usize>();
        out.push(entries);
        if total >= budget {
            break;
        }
    }
    (total >= budget / 2).then_some(out)
}

/// The fallback JSON: each source file as `{"path": …, "lines": […]}`, a
/// group of its own.
fn sources_as_json(sources: &[Source]) -> Vec<Vec<String>> {
    sources
        .iter()
        .map(|s| vec![serde_json::json!({ "path": s.name, "lines": s.text.lines().collect::<Vec<_>>() }).to_string()])
        .collect()
}
