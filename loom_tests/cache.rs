//! A thread cache (one magazine of a slot) refilling from and flushing to the
//! class's stack while another thread frees and takes blocks of the same
//! class on the uncached path.

use std::alloc::{alloc_zeroed, dealloc, Layout};

use loom::sync::Arc;
use loom::thread;

use super::{assert_all_blocks, check, PoolFixture};
use crate::cache::{CacheArea, CacheGeometry, Magazine, SlotPtr};
use crate::size_class::ScaledClass;

/// One class, one cache slot (claimed), over a pool of `capacity` blocks.
struct CacheFixture {
    area_mem: *mut u8,
    area_layout: Layout,
    area: CacheArea,
    slot: SlotPtr,
    f: PoolFixture,
}

// SAFETY: the slot area is only touched through the magazine of the one
// thread that the model lets own it (plus atomic header reads); the pool is
// Sync on its own.
unsafe impl Send for CacheFixture {}
// SAFETY: as for `Send`.
unsafe impl Sync for CacheFixture {}

impl CacheFixture {
    fn new(capacity: u32, depth: usize) -> Self {
        let geometry = CacheGeometry::new(1, depth, 1);
        let area_layout = Layout::from_size_align(geometry.area_len(), 128).unwrap();
        // SAFETY: the area is non-empty (one slot of at least one line).
        let area_mem = unsafe { alloc_zeroed(area_layout) };
        assert!(!area_mem.is_null());
        // SAFETY: `area_mem` is `area_len` zeroed bytes aligned to 128, owned
        // by this fixture until `drop`.
        let area = unsafe { CacheArea::new(geometry, area_mem, 1) };
        let slot = area.claim().expect("one free slot");
        CacheFixture { area_mem, area_layout, area, slot, f: PoolFixture::new(capacity) }
    }

    /// The magazine of the slot. Only the model's owner thread calls it
    /// (and the main thread before spawning / after joining it).
    fn magazine(&self) -> Magazine<'_> {
        // SAFETY: the slot was claimed in `new` and is never released; class
        // 0 is the only class. Which thread uses it is the model's contract.
        unsafe { self.area.magazine(self.slot, ScaledClass::of(0)) }
    }

    fn batch(&self) -> u32 {
        self.area.geometry.batch_of(0)
    }

    fn cached(&self) -> u32 {
        self.area.stats_of(0, 0).len as u32
    }
}

impl Drop for CacheFixture {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; nothing uses it now.
        unsafe { dealloc(self.area_mem, self.area_layout) }
    }
}

/// A magazine of depth 4 (batches of 2) starts empty, while blocks 0 and 1
/// are on the stack and another thread holds 2 and 3. The owner misses,
/// refills a batch with one pop (racing the other thread's frees), frees its
/// block back into the magazine and flushes the magazine as one chain. The
/// other thread frees its two blocks and takes one back.
#[test]
fn refill_and_flush_race_remote_frees() {
    check("cache::refill_and_flush_race_remote_frees", || {
        const CAP: u32 = 4;
        let c = Arc::new(CacheFixture::new(CAP, 4));
        let pool = &c.f.pool;
        let all: Vec<_> = (0..CAP).map(|_| pool.take_one().unwrap()).collect();
        // SAFETY: blocks 0 and 1 were just taken and are not in use.
        unsafe {
            pool.give_back(all[0]);
            pool.give_back(all[1]);
        }
        let (b2, b3) = (all[2].as_ptr() as usize, all[3].as_ptr() as usize);
        let owner = {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let m = c.magazine();
                let pool = &c.f.pool;
                let block = m
                    .pop()
                    .or_else(|| m.refill_and_pop(pool, c.batch()))
                    .expect("two blocks on the stack, two more coming: never dry");
                assert!(m.push(block), "depth 4 holds a batch of 2");
                m.flush_all(pool);
            })
        };
        let remote = {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let pool = &c.f.pool;
                let as_block = |addr: usize| core::ptr::NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: 2 and 3 are this thread's blocks of the pool.
                unsafe {
                    pool.give_back(as_block(b2));
                    pool.give_back(as_block(b3));
                }
                pool.take_one().map(|p| pool.index_of(p))
            })
        };
        owner.join().unwrap();
        let mut held: Vec<u32> = remote.join().unwrap().into_iter().collect();
        assert_eq!(c.cached(), 0, "flush_all empties the magazine");
        held.extend(c.f.drain());
        assert_all_blocks(held, CAP);
    });
}

/// A full magazine of depth 2 (batches of 1) takes one more free: it flushes
/// its oldest block and keeps the new one, then flushes everything on exit,
/// while another thread takes blocks off the stack and gives them back.
#[test]
fn flush_and_push_races_remote_pops() {
    check("cache::flush_and_push_races_remote_pops", || {
        const CAP: u32 = 3;
        let c = Arc::new(CacheFixture::new(CAP, 2));
        let pool = &c.f.pool;
        let all: Vec<_> = (0..CAP).map(|_| pool.take_one().unwrap()).collect();
        {
            let m = c.magazine();
            assert!(m.push(all[0]) && m.push(all[1]), "depth 2");
        }
        let extra = all[2].as_ptr() as usize;
        let owner = {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let m = c.magazine();
                let block = core::ptr::NonNull::new(extra as *mut u8).unwrap();
                assert!(!m.push(block), "the magazine is full");
                // SAFETY: `block` is a block of the pool that we are freeing.
                unsafe { m.flush_and_push(&c.f.pool, c.batch(), block) };
                m.flush_all(&c.f.pool);
            })
        };
        let remote = {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                let pool = &c.f.pool;
                let first = pool.take_one();
                let second = pool.take_one();
                if let Some(p) = first {
                    // SAFETY: taken from the pool just now, not in use.
                    unsafe { pool.give_back(p) };
                }
                second.map(|p| pool.index_of(p))
            })
        };
        owner.join().unwrap();
        let mut held: Vec<u32> = remote.join().unwrap().into_iter().collect();
        assert_eq!(c.cached(), 0);
        held.extend(c.f.drain());
        assert_all_blocks(held, CAP);
    });
}
