//! Collections of the `allocator-api2` ecosystem (`allocator_api2`'s `Vec`
//! and `Box`, `hashbrown`'s `HashMap`) living in one slab shared by several
//! threads through a [`SlabHandle`]; the program's other allocations stay on
//! the system allocator.
//!
//! ```sh
//! cargo run --release --example collections
//! ```

use std::sync::mpsc;
use std::thread;

use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use hashbrown::{DefaultHashBuilder, HashMap};
use lockfree_slab::{Profile, SlabAllocator, SlabHandle};

type SlabVec<T> = Vec<T, SlabHandle>;
type SlabMap<K, V> = HashMap<K, V, DefaultHashBuilder, SlabHandle>;

/// An order, all of it in the slab.
struct Order {
    id: u64,
    lines: SlabVec<(u32, u32)>, // (item, quantity)
    note: Box<[u8], SlabHandle>,
}

fn main() -> Result<(), lockfree_slab::ConfigError> {
    let slab = SlabHandle::new(SlabAllocator::builder().profile(Profile::Balanced).build()?);
    let (tx, rx) = mpsc::channel::<Box<Order, SlabHandle>>();

    // Producers build orders in the slab and send them to the consumer.
    let producers: std::vec::Vec<_> = (0..3u64)
        .map(|p| {
            let (slab, tx) = (slab.clone(), tx.clone());
            thread::spawn(move || {
                for i in 0..10_000u64 {
                    let id = p * 1_000_000 + i;
                    let mut lines = Vec::new_in(slab.clone());
                    lines.extend((0..1 + id % 7).map(|k| ((id + k) as u32 % 100, 1 + k as u32)));
                    let mut note = Vec::new_in(slab.clone());
                    note.extend_from_slice(format!("order {id}").as_bytes());
                    let order = Order { id, lines, note: note.into_boxed_slice() };
                    tx.send(Box::new_in(order, slab.clone())).unwrap();
                }
            })
        })
        .collect();
    drop(tx);

    // The consumer totals quantities per item in a slab-backed map and frees
    // every order (blocks allocated by one thread, freed by another).
    let consumer = {
        let slab = slab.clone();
        thread::spawn(move || {
            let mut per_item: SlabMap<u32, u64> = HashMap::with_hasher_in(DefaultHashBuilder::default(), slab);
            let mut orders = 0u64;
            for order in rx {
                assert_eq!(order.note.as_ref(), format!("order {}", order.id).as_bytes());
                for &(item, qty) in order.lines.iter() {
                    *per_item.entry(item).or_default() += u64::from(qty);
                }
                orders += 1;
            }
            (orders, per_item.values().sum::<u64>(), per_item.len())
        })
    };
    for p in producers {
        p.join().expect("producer panicked");
    }
    let (orders, units, items) = consumer.join().expect("consumer panicked");
    println!("{orders} orders, {units} units of {items} items");

    slab.flush_thread_cache();
    let stats = slab.stats();
    assert_eq!(stats.totals.in_use, 0, "everything was dropped");
    println!("\n{stats}");
    Ok(())
}
