//! lockfree-slab as the program's global allocator: the three lines, then a
//! small demo whose every allocation (threads, strings, maps) is served by
//! the slab, and the statistics table at the end.
//!
//! ```sh
//! cargo run --release --example global
//! ```

use lockfree_slab::SlabAllocator;

#[global_allocator]
static GLOBAL: SlabAllocator = SlabAllocator::new();

fn main() {
    use std::collections::{BTreeMap, HashMap};
    use std::thread;

    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            thread::spawn(move || {
                let mut words: HashMap<String, usize> = HashMap::new();
                let mut lengths: BTreeMap<usize, Vec<String>> = BTreeMap::new();
                for i in 0..50_000u64 {
                    let w = format!("w{}", (i * 2654435761 + t) % 5000);
                    *words.entry(w.clone()).or_default() += 1;
                    if i % 10 == 0 {
                        lengths.entry(w.len()).or_default().push(w);
                    }
                }
                (words.len(), lengths.values().map(Vec::len).sum::<usize>())
            })
        })
        .collect();
    for (t, w) in workers.into_iter().enumerate() {
        let (distinct, kept) = w.join().expect("worker panicked");
        println!("thread {t}: {distinct} distinct words, {kept} kept");
    }

    let big = vec![7u8; 1 << 20]; // > 256 KiB: the system fallback serves it
    println!("1 MiB buffer in the pool: {}", GLOBAL.owns(big.as_ptr()));
    drop(big);

    // The threads have exited and flushed their caches back to the pool.
    let stats = GLOBAL.stats();
    assert!(stats.is_consistent());
    println!("\n{stats}");
}
