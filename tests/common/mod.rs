//! Helpers shared by the integration tests: owner patterns and a concurrent
//! shadow set of live blocks that catches any block handed out twice.

#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::Layout;
use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::Mutex;

/// Fills `len` bytes at `ptr` with a pattern derived from `tag`.
///
/// # Safety
/// `ptr..ptr + len` must be writable and ours.
pub unsafe fn fill(ptr: NonNull<u8>, len: usize, tag: u64) {
    let p = ptr.as_ptr();
    for i in 0..len {
        // SAFETY: caller's contract.
        unsafe { p.add(i).write(pattern_byte(tag, i)) };
    }
}

/// Checks the pattern written by [`fill`]; returns the first bad offset.
///
/// # Safety
/// `ptr..ptr + len` must be readable and ours.
pub unsafe fn check(ptr: NonNull<u8>, len: usize, tag: u64) -> Result<(), usize> {
    let p = ptr.as_ptr();
    for i in 0..len {
        // SAFETY: caller's contract.
        if unsafe { p.add(i).read() } != pattern_byte(tag, i) {
            return Err(i);
        }
    }
    Ok(())
}

fn pattern_byte(tag: u64, i: usize) -> u8 {
    let x = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64);
    (x ^ (x >> 29)) as u8
}

/// The set of addresses currently live, sharded to keep contention low.
pub struct LiveSet {
    shards: Vec<Mutex<HashSet<usize>>>,
}

impl LiveSet {
    pub fn new() -> Self {
        LiveSet { shards: (0..64).map(|_| Mutex::new(HashSet::new())).collect() }
    }

    fn shard(&self, addr: usize) -> &Mutex<HashSet<usize>> {
        &self.shards[(addr >> 4).wrapping_mul(0x9E37_79B9) % 64]
    }

    /// Records `addr` as live; panics if it already was.
    pub fn insert(&self, addr: usize) {
        assert!(self.shard(addr).lock().unwrap().insert(addr), "address {addr:#x} handed out while live");
    }

    /// Records `addr` as freed; panics if it was not live.
    pub fn remove(&self, addr: usize) {
        assert!(self.shard(addr).lock().unwrap().remove(&addr), "address {addr:#x} freed but not live");
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

/// A small allocator (32 and 128 B classes, 64 KiB, 16-block magazines) for
/// lifecycle tests.
pub fn small_slab(fallback: lockfree_slab::Fallback) -> lockfree_slab::SlabAllocator {
    lockfree_slab::SlabAllocator::builder()
        .size_classes(&[32, 128])
        .capacity(1 << 16)
        .cache_depth(16)
        .fallback(fallback)
        .build()
        .unwrap()
}

/// 32 bytes at 8: the small allocator's first class.
pub const L32: Layout = match Layout::from_size_align(32, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// With nothing in use or cached: every class of `slab` hands out exactly its
/// capacity, distinct blocks, and then refuses (a block lost or doubled
/// anywhere shows here); everything is freed again afterwards.
pub fn assert_every_class_hands_out_its_capacity(slab: &lockfree_slab::SlabAllocator) {
    let stats = slab.stats();
    let live = LiveSet::new();
    for c in &stats.classes {
        let layout = Layout::from_size_align(c.block_size, 8).unwrap();
        let mut got = Vec::new();
        while let Ok(ptr) = slab.allocate(layout) {
            live.insert(ptr.as_ptr() as usize);
            got.push(ptr);
            assert!(got.len() as u64 <= c.capacity, "{} B class handed out more than its capacity", c.block_size);
        }
        assert_eq!(got.len() as u64, c.capacity, "{} B class: blocks lost", c.block_size);
        for ptr in got {
            live.remove(ptr.as_ptr() as usize);
            // SAFETY: allocated just above with this layout, freed once.
            unsafe { slab.deallocate(ptr, layout) };
        }
    }
}
