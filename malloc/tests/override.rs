//! The `override` feature (on by default) from a Rust binary: this test
//! binary links the crate statically, so C code in it (here: glibc's
//! `strdup`, `getline`-style allocations inside libc) and Rust's default
//! global allocator (`System`, which calls `malloc`) both allocate from the
//! slab. Also the family's semantics that a Rust caller sees.

use core::ffi::c_void;
// The failure checks hide their sizes and results from the optimiser: LLVM
// knows `malloc` by name and may fold "an unused allocation is null" to false.
use std::hint::black_box;
use std::ptr;

use lockfree_slab_malloc as slab;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn owns(p: *const c_void) -> bool {
    slab::lockfree_slab_owns(p) == 1
}

#[test]
fn c_code_in_a_rust_binary_allocates_from_the_slab() {
    // SAFETY: strdup of a NUL-terminated literal; freed with libc's free,
    // which in this binary is the slab's.
    unsafe {
        let s = libc::strdup(c"allocated inside glibc".as_ptr());
        assert!(!s.is_null());
        assert!(owns(s.cast()), "glibc's strdup did not reach the slab's malloc");
        libc::free(s.cast());
    }
}

#[test]
fn rust_allocations_reach_the_slab_through_system() {
    let v: Vec<u64> = (0..100).collect();
    assert!(owns(v.as_ptr().cast()), "Vec's buffer (System -> malloc) is not the slab's");
    let big = vec![0u8; 1 << 20];
    assert!(!owns(big.as_ptr().cast()), "1 MiB is beyond the slab: glibc's");
}

#[test]
fn malloc_free_and_sizes() {
    // SAFETY: every block is used within its size and freed once.
    unsafe {
        for size in (0..70_000).step_by(13) {
            let p = slab::malloc(size);
            assert!(!p.is_null());
            assert_eq!(p as usize % 16, 0, "malloc({size}) not aligned to 16");
            let usable = slab::malloc_usable_size(p);
            assert!(usable >= size);
            ptr::write_bytes(p.cast::<u8>(), 0xA5, usable);
            slab::free(p);
        }
        slab::free(ptr::null_mut());
        assert_eq!(slab::malloc_usable_size(ptr::null_mut()), 0);
        assert!(black_box(slab::malloc(black_box(usize::MAX))).is_null());
        assert_eq!(errno(), libc::ENOMEM);
    }
}

#[test]
fn calloc_zeroes_and_checks_overflow() {
    // SAFETY: blocks used within their sizes and freed once.
    unsafe {
        for size in [1usize, 15, 100, 4096, 5000, 40_000] {
            let dirty = slab::malloc(size);
            ptr::write_bytes(dirty.cast::<u8>(), 0xFF, size);
            slab::free(dirty);
            let p = slab::calloc(size, 1).cast::<u8>();
            assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0), "calloc({size}) not zeroed");
            slab::free(p.cast());
        }
        assert!(black_box(slab::calloc(black_box(usize::MAX / 2), 3)).is_null());
        assert_eq!(errno(), libc::ENOMEM);
    }
}

#[test]
fn realloc_as_glibc() {
    // SAFETY: blocks used within their sizes and freed once; a NULL return
    // of realloc(p, 0) means p was freed.
    unsafe {
        let mut p = slab::realloc(ptr::null_mut(), 10).cast::<u8>();
        assert!(owns(p.cast()));
        for i in 0..10 {
            *p.add(i) = i as u8;
        }
        let mut size = 10;
        while size < 400_000 {
            size = size * 3 / 2;
            p = slab::realloc(p.cast(), size).cast();
            assert!(!p.is_null());
            assert!((0..10).all(|i| *p.add(i) == i as u8), "lost bytes growing to {size}");
        }
        assert!(!owns(p.cast()), "a 400 KiB block is glibc's");
        p = slab::realloc(p.cast(), 20).cast();
        assert!((0..10).all(|i| *p.add(i) == i as u8));
        assert!(slab::realloc(p.cast(), 0).is_null(), "realloc(p, 0) frees and returns NULL");
        let q = slab::malloc(64);
        assert!(black_box(slab::reallocarray(q, black_box(usize::MAX), 2)).is_null());
        assert_eq!(errno(), libc::ENOMEM);
        slab::free(q);
    }
}

#[test]
fn aligned_entry_points() {
    // SAFETY: blocks freed once; `out` is a valid pointer.
    unsafe {
        let mut out = ptr::null_mut();
        assert_eq!(slab::posix_memalign(&mut out, 3, 8), libc::EINVAL);
        assert_eq!(slab::posix_memalign(&mut out, 4, 8), libc::EINVAL);
        for shift in 3..=16 {
            let align = 1usize << shift;
            assert_eq!(slab::posix_memalign(&mut out, align, 100), 0);
            assert_eq!(out as usize % align, 0);
            assert_eq!(owns(out), align <= 4096, "align {align}: slab up to a page, glibc above");
            slab::free(out);
            let p = slab::aligned_alloc(align, 3000);
            assert_eq!(p as usize % align, 0);
            slab::free(p);
            let p = slab::memalign(align, 3000);
            assert_eq!(p as usize % align, 0);
            slab::free(p);
        }
        assert!(slab::aligned_alloc(24, 8).is_null());
        assert_eq!(errno(), libc::EINVAL);
        let p = slab::memalign(24, 8);
        assert_eq!(p as usize % 32, 0, "memalign rounds 24 up to 32");
        slab::free(p);
        let p = slab::pvalloc(1);
        assert_eq!(p as usize % 4096, 0);
        assert!(slab::malloc_usable_size(p) >= 4096);
        slab::free(p);
        let p = slab::valloc(1);
        assert_eq!(p as usize % 4096, 0);
        slab::free(p);
    }
}

#[test]
fn stats_count_what_the_slab_served() {
    let mut before = slab::LockfreeSlabStats::default();
    // SAFETY: a valid pointer to write to.
    assert_eq!(unsafe { slab::lockfree_slab_stats(&mut before) }, 1);
    let blocks: Vec<Box<[u8; 48]>> = (0..1000).map(|_| Box::new([7; 48])).collect();
    let mut after = slab::LockfreeSlabStats::default();
    // SAFETY: as above.
    unsafe { slab::lockfree_slab_stats(&mut after) };
    // Other tests run in parallel threads: at least ours were counted.
    assert!(after.allocations >= before.allocations + 1000);
    drop(blocks);
}
