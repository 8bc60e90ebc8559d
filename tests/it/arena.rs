//! [`Arena`] from the user's side: exhaustion exactly at the capacity, every
//! alignment, reuse after `reset`, threads racing for the last bytes (every
//! block distinct, inside, and holding only its owner's pattern), an
//! `allocator_api2` `Vec` living in it, and zero-size requests.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Barrier;

use allocator_api2::vec::Vec as AVec;
use lockfree_slab::{Arena, ArenaError};

const PAGE: usize = 4096;

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// The arena's range, found from its first block (the base is page-aligned
/// and blocks start there).
fn base_of(arena: &mut Arena) -> usize {
    arena.reset();
    let base = arena.alloc(layout(1, 1)).unwrap().as_ptr() as usize;
    arena.reset();
    base
}

#[test]
fn exhaustion_is_exactly_at_the_capacity() {
    let arena = Arena::new(3 * PAGE - 100).unwrap();
    assert_eq!(arena.capacity(), 3 * PAGE, "rounded up to pages");
    let block = layout(64, 16);
    let first = arena.alloc(block).unwrap().as_ptr() as usize;
    let mut last = first;
    for _ in 1..(3 * PAGE / 64) {
        last = arena.alloc(block).unwrap().as_ptr() as usize;
    }
    assert_eq!(last + 64 - first, arena.capacity(), "the last block ends exactly at the end");
    assert_eq!(arena.used(), arena.capacity());
    assert_eq!(arena.alloc(layout(1, 1)), Err(ArenaError::Exhausted { requested: 1, remaining: 0 }));
    assert_eq!(arena.alloc_page(), Err(ArenaError::Exhausted { requested: PAGE, remaining: 0 }));
    assert_eq!(arena.used(), arena.capacity(), "failed requests do not count");

    // Partly full: the error reports what is left, and what is left still
    // serves a request that fits it exactly.
    let arena = Arena::new(PAGE).unwrap();
    arena.alloc(layout(4000, 8)).unwrap();
    let err = arena.alloc(layout(97, 8)).unwrap_err();
    assert_eq!(err, ArenaError::Exhausted { requested: 97, remaining: 96 });
    assert!(err.to_string().contains("96 B left"), "{err}");
    arena.alloc(layout(96, 8)).expect("the tail was not lost to the failed request");
    assert_eq!(arena.used(), PAGE);

    // Larger than the whole arena: refused without touching the cursor.
    let arena = Arena::new(PAGE).unwrap();
    assert_eq!(arena.alloc(layout(PAGE + 1, 1)), Err(ArenaError::Exhausted { requested: PAGE + 1, remaining: PAGE }));
    assert_eq!(
        arena.alloc(layout(usize::MAX / 2, 1)).unwrap_err(),
        ArenaError::Exhausted { requested: usize::MAX / 2, remaining: PAGE }
    );
    assert_eq!(arena.used(), 0);
}

#[test]
fn every_alignment_up_to_a_page_is_honoured() {
    let mut arena = Arena::new(64 * PAGE).unwrap();
    let base = base_of(&mut arena);
    let end = base + arena.capacity();
    // Odd sizes in between push the cursor off every alignment.
    for shift in 0..=12 {
        let align = 1usize << shift;
        for size in [1, align, 3 * align / 2 + 1] {
            let p = arena.alloc(layout(size, align)).unwrap().as_ptr() as usize;
            assert_eq!(p % align, 0, "align {align}, size {size}");
            assert!(p >= base && p + size <= end);
            arena.alloc(layout(17, 1)).unwrap();
        }
    }
    let page = arena.alloc_page().unwrap().as_ptr() as usize;
    assert_eq!(page % PAGE, 0);
    assert!(page + PAGE <= end);
    // SAFETY: the page is ours, 4096 bytes long.
    unsafe { (page as *mut u8).write_bytes(0x5A, PAGE) };
}

#[test]
fn reset_makes_the_same_addresses_come_back() {
    let mut arena = Arena::new(PAGE).unwrap();
    let layouts = [layout(24, 8), layout(100, 32), layout(1, 1), layout(512, 256), layout(16, 16)];
    let first: Vec<NonNull<u8>> = layouts.iter().map(|&l| arena.alloc(l).unwrap()).collect();
    for (p, l) in first.iter().zip(&layouts) {
        // SAFETY: each block holds `l.size()` bytes.
        unsafe { p.as_ptr().write_bytes(0xEE, l.size()) };
    }
    let used = arena.used();
    // Fill the rest, so that reuse can only come from the reset.
    while arena.alloc(layout(16, 16)).is_ok() {}
    assert_eq!(arena.used(), arena.capacity());
    arena.reset();
    assert_eq!(arena.used(), 0);
    let again: Vec<NonNull<u8>> = layouts.iter().map(|&l| arena.alloc(l).unwrap()).collect();
    assert_eq!(first, again, "the same sequence gets the same addresses");
    assert_eq!(arena.used(), used);
    // Reused memory keeps its old contents (documented: not zeroed).
    // SAFETY: the block holds 24 bytes.
    assert_eq!(unsafe { *again[0].as_ptr().add(23) }, 0xEE);
}

#[test]
fn racing_threads_get_distinct_blocks_inside_the_arena() {
    const THREADS: usize = 4;
    let mut arena = Arena::new(16 * PAGE).unwrap();
    let base = base_of(&mut arena);
    let end = base + arena.capacity();
    for round in 0..20 {
        arena.reset();
        let barrier = Barrier::new(THREADS);
        // (address, size) per thread; sizes and alignments vary so both
        // paths (fetch_add and the over-aligned CAS) race near the end.
        let blocks: Vec<Vec<(usize, usize)>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|owner| {
                    let (arena, barrier) = (&arena, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        let mut mine = Vec::new();
                        let mut failures = 0;
                        let mut i = owner + round;
                        while failures < 8 {
                            let size = 1 + (i * 37) % 200;
                            let align = 1 << (i % 8);
                            i += 1;
                            match arena.alloc(layout(size, align)) {
                                Ok(p) => {
                                    // SAFETY: the block holds `size` bytes and is ours.
                                    unsafe { p.as_ptr().write_bytes(owner as u8 + 1, size) };
                                    mine.push((p.as_ptr() as usize, size));
                                }
                                Err(ArenaError::Exhausted { requested, .. }) => {
                                    assert_eq!(requested, size);
                                    failures += 1;
                                }
                                Err(other) => panic!("unexpected {other:?}"),
                            }
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut all: Vec<(usize, usize, usize)> = Vec::new();
        for (owner, mine) in blocks.iter().enumerate() {
            for &(p, size) in mine {
                // Every byte still holds its owner's pattern: no other
                // thread's block overlapped it.
                // SAFETY: the block is `size` bytes in the live arena.
                let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
                assert!(bytes.iter().all(|&b| b == owner as u8 + 1), "block {p:#x} of thread {owner} was overwritten");
                all.push((p, size, owner));
            }
        }
        all.sort_unstable();
        for &(p, size, _) in &all {
            assert!(p >= base && p + size <= end, "block {p:#x}+{size} outside the arena");
        }
        for w in all.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {:?} and {:?}", w[0], w[1]);
        }
        let total: usize = all.iter().map(|&(_, size, _)| size).sum();
        assert!(total <= arena.capacity());
        assert!(arena.used() <= arena.capacity());
        assert!(all.len() > THREADS, "the arena was shared, not taken by one request");
    }
}

#[test]
fn an_allocator_api2_vec_lives_in_the_arena() {
    let mut arena = Arena::new(1 << 20).unwrap();
    let base = base_of(&mut arena);
    {
        let mut v: AVec<u64, &Arena> = AVec::new_in(&arena);
        for i in 0..10_000u64 {
            v.push(i * i); // grows in place while it is the last block
        }
        let p = v.as_ptr() as usize;
        assert!(p >= base && p + v.len() * 8 <= base + arena.capacity(), "the Vec's buffer is in the arena");
        assert!(v.iter().enumerate().all(|(i, &x)| x == (i * i) as u64));
        assert!(arena.used() <= 2 * v.capacity() * 8, "growing in place does not copy the whole history");

        // Two Vecs growing in turn: neither is last every time, so some
        // grows copy; the contents survive either way.
        let mut a: AVec<u32, &Arena> = AVec::with_capacity_in(1, &arena);
        let mut b: AVec<u32, &Arena> = AVec::with_capacity_in(1, &arena);
        for i in 0..2_000 {
            a.push(i);
            b.push(!i);
        }
        assert!(a.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert!(b.iter().enumerate().all(|(i, &x)| x == !(i as u32)));
        a.shrink_to_fit();
        b.truncate(3);
        b.shrink_to_fit();
        assert_eq!(&b[..], &[!0, !1, !2]);
        assert_eq!(a[1999], 1999);
    }
    arena.reset();
    assert_eq!(arena.used(), 0);

    // A Vec that outgrows the arena reports it (try_reserve), no panic.
    let small = Arena::new(PAGE).unwrap();
    let mut v: AVec<u8, &Arena> = AVec::new_in(&small);
    assert!(v.try_reserve_exact(PAGE).is_ok());
    assert!(v.try_reserve_exact(PAGE + 1).is_err());
}

#[test]
fn zero_size_requests_get_aligned_dangling_pointers_that_use_no_space() {
    let arena = Arena::new(PAGE).unwrap();
    for shift in 0..=16 {
        let align = 1usize << shift;
        let p = arena.alloc(layout(0, align)).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0);
    }
    assert_eq!(arena.used(), 0, "zero-size requests use no space");
    // Even a full arena answers them.
    arena.alloc(layout(PAGE, 1)).unwrap();
    assert!(arena.alloc(layout(0, 8)).is_ok());
    let mut units: AVec<(), &Arena> = AVec::new_in(&arena);
    for _ in 0..1000 {
        units.push(());
    }
    assert_eq!(units.len(), 1000);
    assert_eq!(arena.used(), PAGE, "a Vec of zero-size values takes nothing");
}

#[test]
fn creation_errors_are_typed() {
    assert_eq!(Arena::new(0).unwrap_err(), ArenaError::ZeroCapacity);
    let err = Arena::new(usize::MAX).unwrap_err();
    assert!(matches!(err, ArenaError::TooLarge { bytes: usize::MAX, .. }), "{err:?}");
    assert!(err.to_string().contains("ask for less"));
}

#[test]
fn the_arena_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Arena>();
    // Moved to another thread and dropped there.
    let arena = Arena::new(PAGE).unwrap();
    std::thread::spawn(move || {
        arena.alloc_page().unwrap();
        drop(arena);
    })
    .join()
    .unwrap();
}
