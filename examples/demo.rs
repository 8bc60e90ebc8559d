//! The demo (`cargo run --release --example demo`): one allocator in
//! an `Arc`, shared by a pipeline of worker threads that pass messages to each
//! other. Producers allocate variable-size messages and fill them; consumers
//! on other threads verify each message's checksum and free it, so most
//! blocks are freed by a different thread than the one that allocated them.
//! At the end it prints the throughput and the allocator's statistics table.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Instant;

use lockfree_slab::{Profile, SlabAllocator};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// A message living in the slab: a pointer, its length and a checksum.
struct Message {
    ptr: NonNull<u8>,
    len: usize,
    sum: u64,
}

// SAFETY: the producer hands the block over whole; nobody else touches it.
unsafe impl Send for Message {}

fn layout(len: usize) -> Layout {
    Layout::from_size_align(len, 8).expect("valid layout")
}

fn main() {
    let pairs = thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let per_producer = 2_000_000usize;
    let slab = Arc::new(SlabAllocator::builder().profile(Profile::General).build().expect("valid configuration"));
    println!("lockfree-slab demo: {pairs} producers -> {pairs} consumers, {per_producer} messages each");

    let start = Instant::now();
    let mut workers = Vec::new();
    for p in 0..pairs {
        let (tx, rx) = mpsc::sync_channel::<Vec<Message>>(64);
        let slab_p = Arc::clone(&slab);
        workers.push(thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(p as u64);
            let mut batch = Vec::with_capacity(256);
            for i in 0..per_producer {
                let len = rng.random_range(16..1016);
                let ptr = slab_p.allocate(layout(len)).expect("pool has room");
                let mut sum = 0u64;
                for k in 0..len {
                    let byte = (i + k) as u8;
                    // SAFETY: `k < len`, inside the block we just allocated.
                    unsafe { ptr.as_ptr().add(k).write(byte) };
                    sum = sum.wrapping_add(u64::from(byte));
                }
                batch.push(Message { ptr, len, sum });
                if batch.len() == 256 {
                    tx.send(std::mem::replace(&mut batch, Vec::with_capacity(256))).expect("consumer alive");
                }
            }
            tx.send(batch).expect("consumer alive");
        }));
        let slab_c = Arc::clone(&slab);
        workers.push(thread::spawn(move || {
            for batch in rx {
                for m in batch {
                    // SAFETY: the producer wrote `len` bytes and gave us the block.
                    let bytes = unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) };
                    let sum = bytes.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
                    assert_eq!(sum, m.sum, "message corrupted");
                    // SAFETY: allocated by `slab` with this layout, freed once.
                    unsafe { slab_c.deallocate(m.ptr, layout(m.len)) };
                }
            }
        }));
    }
    for w in workers {
        w.join().expect("worker panicked");
    }
    let elapsed = start.elapsed();
    let messages = pairs * per_producer;
    println!(
        "{messages} messages allocated, filled, sent, verified and freed in {:.2?} ({:.1} M messages/s)\n",
        elapsed,
        messages as f64 / elapsed.as_secs_f64() / 1e6
    );
    let stats = slab.stats();
    print!("{stats}");
    assert_eq!(stats.totals.in_use, 0, "every message was freed");
}
