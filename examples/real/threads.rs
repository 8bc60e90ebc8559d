//! Many short-lived threads: round after round, a batch of threads is
//! spawned, each counts the words of a few source files (lower-cased, in a
//! `HashMap<String, u64>`), returns its most frequent words and exits; the
//! main thread merges them into a `BTreeMap`. Thread start and exit are
//! part of the work: each thread's cache is set up and flushed, and its
//! results are freed by the thread that merges them.

use std::collections::{BTreeMap, HashMap};
use std::thread;

use super::inputs::Source;
use super::Fnv;

/// Words a thread reports.
const TOP: usize = 64;

/// Word counts of `n` files from `first` (wrapping around), most frequent first.
fn count_words(sources: &[Source], first: usize, n: usize) -> Vec<(String, u64)> {
    let mut freq: HashMap<String, u64> = HashMap::new();
    for k in 0..n {
        let text = &sources[(first + k) % sources.len()].text;
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            match freq.get_mut(&word) {
                Some(count) => *count += 1,
                None => {
                    freq.insert(word, 1);
                }
            }
        }
    }
    let mut top: Vec<(String, u64)> = freq.into_iter().collect();
    top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);
    top
}

/// `rounds` rounds of `threads` threads, each counting `files` files.
pub fn run(sources: &[Source], rounds: usize, threads: usize, files: usize) -> u64 {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for r in 0..rounds {
        let tops: Vec<Vec<(String, u64)>> = thread::scope(|s| {
            let handles: Vec<_> =
                (0..threads).map(|t| s.spawn(move || count_words(sources, (r * threads + t) * files, files))).collect();
            handles.into_iter().map(|h| h.join().expect("word counter panicked")).collect()
        });
        for (word, count) in tops.into_iter().flatten() {
            *totals.entry(word).or_insert(0) += count;
        }
    }
    let mut h = Fnv::new();
    h.u64(totals.len() as u64);
    for (word, count) in &totals {
        h.str(word);
        h.u64(*count);
    }
    h.finish()
}
