//! Long-running mixed-size churn: each thread keeps a cache of recent
//! documents and builds new ones for as long as it runs; each new one
//! evicts a (deterministically) random old one, so lifetimes vary, as in a
//! server's cache or an editor's open buffers. Documents come in two kinds,
//! alternately, and in every size the inputs have:
//!
//! - **JSON**: every index entry of one crate (a few hundred bytes to
//!   hundreds of kilobytes) parsed into a `serde_json::Value` tree and
//!   reorganised into a document (versions, and for each dependency the
//!   versions that use it), then serialised;
//! - **text**: one source file as a numbered listing grown line by line in a
//!   `String`, its lines as owned `String`s, and a concordance
//!   (`BTreeMap<String, Vec<u32>>`, identifier → lines) whose vectors grow
//!   as the file is read.
//!
//! Growth by `realloc` is part of it: the listing, the vectors and
//! serde_json's output buffer all start small.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::thread;

use serde_json::{Map, Value};

use super::inputs::Inputs;
use super::Fnv;

/// A live document. Its fields are kept only to be freed later.
#[allow(dead_code)]
enum Doc {
    Json { tree: Value, text: String },
    Text { lines: Vec<String>, listing: String, index: BTreeMap<String, Vec<u32>> },
}

fn json_doc(entries: &[String], h: &mut Fnv) -> Doc {
    let versions: Vec<Value> =
        entries.iter().map(|e| serde_json::from_str(e).expect("an index entry is JSON")).collect();
    let mut by_dep: Map<String, Value> = Map::new();
    for v in &versions {
        for d in v["deps"].as_array().into_iter().flatten() {
            let name = d["name"].as_str().unwrap_or("").to_string();
            let users = by_dep.entry(name).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(users) = users {
                users.push(v["vers"].clone());
            }
        }
    }
    let mut doc = Map::new();
    doc.insert("name".into(), versions.first().map_or(Value::Null, |v| v["name"].clone()));
    doc.insert("by_dependency".into(), Value::Object(by_dep));
    doc.insert("versions".into(), Value::Array(versions));
    let tree = Value::Object(doc);
    let text = serde_json::to_string(&tree).expect("serialise");
    h.str(&text);
    Doc::Json { tree, text }
}

fn text_doc(name: &str, text: &str, h: &mut Fnv) -> Doc {
    let mut lines = Vec::new();
    let mut listing = String::new();
    let mut index: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let _ = writeln!(listing, "// {name}");
    for (n, line) in text.lines().enumerate() {
        let _ = writeln!(listing, "{:5} | {line}", n + 1);
        for word in line.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| w.len() > 2) {
            match index.get_mut(word) {
                Some(at) => at.push(n as u32 + 1),
                None => {
                    index.insert(word.to_string(), vec![n as u32 + 1]);
                }
            }
        }
        lines.push(line.to_string());
    }
    h.str(&listing);
    h.u64(index.len() as u64);
    for (word, at) in &index {
        h.str(word);
        h.u64(at.len() as u64);
    }
    Doc::Text { lines, listing, index }
}

/// One thread: steps `first`, `first + threads`, … below `steps`.
fn worker(inputs: &Inputs, first: usize, threads: usize, steps: usize, live: usize) -> u64 {
    let mut h = Fnv::new();
    let mut cache: Vec<Doc> = Vec::new();
    let mut lcg = first as u64 + 1;
    for k in (first..steps).step_by(threads) {
        // Each thread alternates the kinds; step k takes the k-th crate or file.
        let doc = if (k / threads) % 2 == 0 {
            json_doc(&inputs.json[k % inputs.json.len()], &mut h)
        } else {
            let src = &inputs.sources[k % inputs.sources.len()];
            text_doc(&src.name, &src.text, &mut h)
        };
        if cache.len() == live {
            lcg = lcg.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            cache.swap_remove((lcg >> 33) as usize % live);
        }
        cache.push(doc);
    }
    h.u64(cache.len() as u64);
    h.finish()
}

/// `steps` documents over `threads` threads, `live` kept per thread.
pub fn run(inputs: &Inputs, threads: usize, steps: usize, live: usize) -> u64 {
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || worker(inputs, t, threads, steps, live))).collect();
        let mut h = Fnv::new();
        for w in handles {
            h.u64(w.join().expect("churn worker panicked"));
        }
        h.finish()
    })
}
