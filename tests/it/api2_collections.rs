//! Collections from the `allocator-api2` ecosystem — `allocator_api2::vec::Vec`,
//! `allocator_api2::boxed::Box` and `hashbrown::HashMap` — living in one
//! slab, shared by several threads through [`SlabHandle`] (and through
//! `&SlabAllocator`). Every value is checked; when everything is dropped and
//! the threads have exited, nothing is in use and the accounting adds up.
//!
//! Each test has its own allocator, so tests may run in parallel: only that
//! allocator's statistics are compared, and only its users touch it.

use std::sync::mpsc;
use std::thread;

use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use hashbrown::HashMap;
use lockfree_slab::{Profile, SlabAllocator, SlabHandle};

fn mix(a: u64, b: u64) -> u64 {
    let x = (a ^ b.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 31)
}

/// A record whose every part is allocated in the slab.
struct Record {
    id: u64,
    values: AVec<u64, SlabHandle>,
    name: ABox<[u8], SlabHandle>,
    index: HashMap<u64, AVec<u32, SlabHandle>, hashbrown::DefaultHashBuilder, SlabHandle>,
}

impl Record {
    fn new(id: u64, slab: &SlabHandle) -> Record {
        let n = (mix(id, 0) % 400) as usize;
        let mut values = AVec::with_capacity_in(1, slab.clone());
        for k in 0..n as u64 {
            values.push(mix(id, k)); // grows: realloc within and across classes
        }
        let name_len = 1 + (mix(id, 1) % 100) as usize;
        let mut name = AVec::new_in(slab.clone());
        name.extend((0..name_len).map(|k| b'a' + (mix(id, k as u64 + 7) % 26) as u8));
        let name = name.into_boxed_slice();
        let mut index = HashMap::with_hasher_in(hashbrown::DefaultHashBuilder::default(), slab.clone());
        for k in 0..mix(id, 2) % 50 {
            let mut list = AVec::new_in(slab.clone());
            list.extend((0..(k % 13) as u32).map(|j| j ^ id as u32));
            index.insert(mix(id, k + 100), list);
        }
        Record { id, values, name, index }
    }

    fn check(&self) {
        let id = self.id;
        let n = (mix(id, 0) % 400) as usize;
        assert_eq!(self.values.len(), n, "record {id}: Vec length");
        assert!(self.values.iter().enumerate().all(|(k, &v)| v == mix(id, k as u64)), "record {id}: Vec contents");
        let name_len = 1 + (mix(id, 1) % 100) as usize;
        assert_eq!(self.name.len(), name_len, "record {id}: Box length");
        assert!(
            self.name.iter().enumerate().all(|(k, &b)| b == b'a' + (mix(id, k as u64 + 7) % 26) as u8),
            "record {id}: Box contents"
        );
        assert_eq!(self.index.len() as u64, mix(id, 2) % 50, "record {id}: HashMap length");
        for k in 0..mix(id, 2) % 50 {
            let list = &self.index[&mix(id, k + 100)];
            assert!(list.iter().copied().eq((0..(k % 13) as u32).map(|j| j ^ id as u32)), "record {id}: entry {k}");
        }
    }
}

fn assert_all_freed(slab: &SlabAllocator) {
    slab.flush_thread_cache();
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.in_use, 0, "blocks still in use after everything was dropped:\n{stats}");
    assert_eq!(stats.totals.in_caches, 0, "exited threads and this one flushed their caches:\n{stats}");
    assert!(stats.totals.allocations > 0 && stats.totals.allocations == stats.totals.frees, "{stats}");
}

#[test]
fn collections_shared_across_threads_through_a_handle() {
    const THREADS: u64 = 4;
    const RECORDS: u64 = 2000;
    let slab = SlabHandle::new(SlabAllocator::builder().build().expect("default configuration"));
    let (tx, rx) = mpsc::channel::<Record>();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let slab = slab.clone();
            let tx = tx.clone();
            thread::spawn(move || {
                let mut mine: AVec<ABox<Record, SlabHandle>, SlabHandle> = AVec::new_in(slab.clone());
                for i in 0..RECORDS {
                    let r = Record::new(t * RECORDS + i, &slab);
                    r.check();
                    if i % 2 == 0 {
                        tx.send(r).unwrap(); // freed by the main thread
                    } else {
                        mine.push(ABox::new_in(r, slab.clone()));
                    }
                    if mine.len() > 64 {
                        let r = mine.swap_remove((i as usize * 13) % mine.len());
                        r.check();
                    }
                }
                mine.iter().for_each(|r| r.check());
                mine.len()
            })
        })
        .collect();
    drop(tx);
    let mut seen = 0;
    for r in rx {
        r.check();
        assert_eq!(r.id % 2, 0);
        seen += 1;
    }
    for w in workers {
        assert!(w.join().expect("worker panicked") <= 65);
    }
    assert_eq!(seen, THREADS * RECORDS / 2);
    assert_all_freed(&slab);
    assert!(slab.stats().totals.allocations >= THREADS * RECORDS * 3, "the collections allocated in the slab");
}

#[test]
fn a_map_filled_by_one_thread_and_emptied_by_another() {
    let slab = SlabHandle::new(SlabAllocator::builder().profile(Profile::Balanced).build().unwrap());
    let mut map: HashMap<u64, AVec<u64, SlabHandle>, hashbrown::DefaultHashBuilder, SlabHandle> =
        HashMap::with_hasher_in(Default::default(), slab.clone());
    for k in 0..5000u64 {
        let mut v = AVec::new_in(slab.clone());
        v.extend((0..k % 20).map(|j| mix(k, j)));
        map.insert(k, v);
    }
    let map = thread::spawn(move || {
        for k in (0..5000u64).step_by(2) {
            let v = map.remove(&k).expect("present");
            assert!(v.iter().copied().eq((0..k % 20).map(|j| mix(k, j))));
        }
        map.shrink_to_fit(); // a shrinking reallocation of the table
        map
    })
    .join()
    .unwrap();
    assert_eq!(map.len(), 2500);
    for (k, v) in &map {
        assert_eq!(k % 2, 1);
        assert!(v.iter().copied().eq((0..k % 20).map(|j| mix(*k, j))));
    }
    drop(map);
    assert_all_freed(&slab);
}

#[test]
fn borrowed_allocator_and_in_place_growth() {
    let slab = SlabAllocator::builder().build().unwrap();
    {
        // `&SlabAllocator` is an allocator too; scoped threads borrow it.
        thread::scope(|s| {
            for t in 0..3u64 {
                let slab = &slab;
                s.spawn(move || {
                    let mut v: AVec<u64, &SlabAllocator> = AVec::with_capacity_in(3, slab);
                    for k in 0..10_000 {
                        v.push(mix(t, k)); // up to 80 KB: into the system fallback
                    }
                    assert!(v.iter().enumerate().all(|(k, &x)| x == mix(t, k as u64)));
                    let b = ABox::new_in(v.len(), slab);
                    assert_eq!(*b, 10_000);
                    v.truncate(10);
                    v.shrink_to_fit(); // back from the fallback into a class
                    assert!(slab.owns(v.as_ptr().cast()));
                    assert!(v.iter().enumerate().all(|(k, &x)| x == mix(t, k as u64)));
                    drop((v, b));
                    // `scope` returns when the closures have returned, which
                    // can be before the threads' exit flush has run.
                    slab.flush_thread_cache();
                });
            }
        });
        // Growth inside one block keeps the address: 100 B -> 112 B class.
        let mut v: AVec<u8, &SlabAllocator> = AVec::with_capacity_in(100, &slab);
        v.extend(0..100u8);
        let block = slab.usable_size(core::ptr::NonNull::new(v.as_mut_ptr()).unwrap()).unwrap();
        let before = v.as_ptr();
        v.reserve_exact(block - v.len());
        assert_eq!(v.as_ptr(), before, "growing within the block's class is in place");
        assert!(v.iter().copied().eq(0..100u8));
    }
    assert_all_freed(&slab);
}
