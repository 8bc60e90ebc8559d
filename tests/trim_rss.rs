// Own test binary: it compares the process's RSS to the page, so nothing may allocate or free beside it.
//! RSS drops by what `trim` reports. RSS is per process, so this binary holds
//! exactly one test (nothing else allocates or frees beside it).
//!
//! RSS comes from `/proc/self/statm` (resident pages). Between the two
//! reads around `trim()` the process does nothing but the trim, whose own
//! scratch bitmap is unmapped before it returns, so the drop should match
//! the report to the page. The tolerance (64 KiB) covers what the runtime
//! may touch meanwhile (a stack page, an allocator's bookkeeping); a
//! transparent-huge-page collapse by khugepaged in that window could add
//! more, which is why the slab's pool is not advised for huge pages here.

mod common;

use std::alloc::Layout;

use lockfree_slab::SlabAllocator;

const TOLERANCE: i64 = 64 << 10;

fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let resident: i64 = statm.split_whitespace().nth(1).and_then(|f| f.parse().ok()).expect("statm's second field");
    // SAFETY: sysconf has no preconditions.
    resident * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64
}

#[test]
fn rss_drops_by_the_amount_reported() {
    const BLOCKS: usize = 1 << 20; // 64 MiB of 64-byte blocks
    let layout = Layout::from_size_align(64, 8).unwrap();
    let slab = SlabAllocator::builder().size_classes(&[64]).capacity(80 << 20).build().unwrap();
    // The pointer array is committed before anything is measured.
    let mut blocks = vec![0usize; BLOCKS];
    for (i, b) in blocks.iter_mut().enumerate() {
        let p = slab.allocate(layout).expect("capacity for all of them");
        // SAFETY: a fresh 64-byte block.
        unsafe { common::fill(p, 64, i as u64) };
        *b = p.as_ptr() as usize;
    }
    // Free the oldest 90 %: whole pages come free below the survivors.
    let survivors = BLOCKS / 10;
    for &b in &blocks[..BLOCKS - survivors] {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { slab.deallocate(std::ptr::NonNull::new(b as *mut u8).unwrap(), layout) };
    }

    let before = rss_bytes();
    let report = slab.trim();
    let after = rss_bytes();
    let dropped = before - after;
    println!("RSS {} -> {} KiB: dropped {} KiB; {report}", before >> 10, after >> 10, dropped >> 10);

    let freed = ((BLOCKS - survivors) * 64) as i64;
    assert!(report.released_bytes as i64 > freed - (1 << 20), "most freed pages come back: {report}");
    assert!(report.released_bytes as i64 <= freed, "more released than was freed: {report}");
    assert!(
        (dropped - report.released_bytes as i64).abs() <= TOLERANCE,
        "RSS dropped by {dropped} bytes, trim reported {} (tolerance {TOLERANCE})",
        report.released_bytes
    );
    assert_eq!(report.pages * 4096, report.released_bytes);

    // Survivors are intact.
    for (i, &b) in blocks.iter().enumerate().skip(BLOCKS - survivors) {
        // SAFETY: live blocks, filled with their index.
        assert_eq!(unsafe { common::check(std::ptr::NonNull::new(b as *mut u8).unwrap(), 64, i as u64) }, Ok(()));
    }
    // Nothing resident is left to give back, and RSS stays where it is.
    let before = rss_bytes();
    let again = slab.trim();
    let after = rss_bytes();
    assert_eq!(again.released_bytes, 0, "{again}");
    assert!((before - after).abs() <= TOLERANCE, "RSS moved by {} on an empty trim", before - after);
    for &b in &blocks[BLOCKS - survivors..] {
        // SAFETY: live, freed once.
        unsafe { slab.deallocate(std::ptr::NonNull::new(b as *mut u8).unwrap(), layout) };
    }
}
