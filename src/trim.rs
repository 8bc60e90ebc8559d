//! Giving free memory back to the OS: [`SlabAllocator::trim`] releases the
//! physical pages that hold only free blocks (`madvise(MADV_DONTNEED)`),
//! keeps their addresses, and reports how much RSS that gave back.
//!
//! **Why a page can go without unlinking anything.** A free block is a bit
//! in its run's word in the class's metadata, not a link in the block
//! (DESIGN.md, invariant 2). So once nobody may touch a free block's bytes,
//! its page can be released while the block stays free: the free layer
//! never reads block memory, and the next owner finds zeros, as in a
//! never-used block.
//!
//! **How fully-free pages are found.** Per class, with one pass over the
//! free blocks and one over the pages:
//!
//! 1. Read the carver's frontier `F` (blocks `0..F` have been handed out at
//!    least once) and map a scratch bitmap of `F` bits (from `os.rs`, never
//!    from a Rust allocator: the slab may be the global allocator).
//! 2. Mark the class as being trimmed, then detach its whole stack of free
//!    runs with one CAS ([`Runs::take_all`]) and empty each run's word:
//!    every free block is now the trim's, exactly as if taken by a refill.
//!    Set the bit of each detached block below `F`; those at or above `F`
//!    (carved and freed between step 1 and the detach) go straight back.
//! 3. Walk the carved span in chunks of whole pages *and* whole blocks (a
//!    multiple of `lcm(block size, page)`, about 2 MiB), highest chunk
//!    first. In each chunk, a page is released iff every block overlapping
//!    it has its bit set — every byte of it belongs to a detached free block.
//!    That covers blocks larger than a page too: their interior pages go,
//!    and a page they share with a neighbour goes when both are free. Runs
//!    of such pages are counted with `mincore` (only resident pages count,
//!    so the figure is what RSS drops by) and released with one `madvise`.
//! 4. Give the chunk's free blocks back (one `fetch_or` per run, one push
//!    for the runs), and go on with the next lower chunk. Lower chunks' runs
//!    end up on top, so later allocations reuse low addresses first and
//!    leave high pages free for the next trim. Finally mark the trim as done.
//!
//! Blocks in thread caches are not free in the runs, so their pages are not
//! released; `trim` flushes the calling thread's cache first, but other
//! threads' magazines keep theirs. Never-carved blocks (at or above `F`) are
//! never released: without `populate` their pages were never touched; with
//! `populate` they stay committed, as `populate` promised (only memory that
//! was used and then freed is given back). The run words and links (12
//! bytes per 64 blocks), the magazines and the rest of the metadata stay too.
//!
//! **Why it is correct while other threads allocate and free.**
//! - *Nothing in use is released.* A page is released only if every byte of
//!   it lies in a block the trim detached, and detached blocks are the
//!   trim's alone until given back (their bits are in no run's word, so no
//!   take can return them; a thread cache never had them). Blocks carved
//!   meanwhile are never detached, so their pages can only share a page
//!   with detached blocks, which then is not fully covered and stays.
//! - *Contents and order.* Emptying a run's word is an Acquire (pairs with
//!   the frees' Release): the previous owners' writes happen before the
//!   release. The give-back is a Release, and the next owner's swap an
//!   Acquire: the `madvise` happens before the next owner's first access,
//!   which faults in a zero page. A chunk's pages are released *before* its blocks go back;
//!   the loom model `trim::trim_races_give_back_and_take` fails if that
//!   order is reversed (`--cfg lockfree_slab_trim_push_first`, checked by
//!   `.ci/loom.sh`).
//! - *Nothing is lost.* Every detached block is given back exactly once:
//!   the late ones at once, the rest chunk by chunk, and if anything between
//!   unwound, a guard gives back what is left and ends the trim.
//! - *No spurious "class dry".* While the trim holds a class's free blocks
//!   another thread may find no free run. If the carver is also used up
//!   it would take the fallback (or fail) although blocks are free. The dry
//!   path — and only it — therefore checks the class's trim word and retries
//!   until the trim has given its blocks back
//!   ([`ClassPool::retry_while_trimmed`], which argues why that catches
//!   every such case). The hot path and refills that find blocks are
//!   untouched and stay lock-free; a thread waits only where it would
//!   otherwise have failed. The trimming thread allocates nothing while it
//!   holds blocks (scratch and `mincore` buffers are its own), so it never
//!   waits for itself; and `fork` waits for trims in flight (`fork.rs`), so
//!   a child never inherits a trim that nobody will finish.
//! - *Concurrent trims* of one class each detach a disjoint set of blocks
//!   (a later detach gets what the earlier one already gave back) and
//!   release only pages covered entirely by their own set: correct, merely
//!   less thorough.
//!
//! **What it costs.** Nothing on the allocation and free paths: the only
//! change there is on the dry path. A trim of a class is O(free blocks +
//! carved pages) with a bitmap of one bit per carved block (mapped for the
//! trim and unmapped after it), plus, per run of releasable pages, one
//! `mincore` call per 512 pages and one `madvise` (measured figures:
//! docs/PERFORMANCE.md, `examples/trim_rss.rs`). Meanwhile the
//! class's free blocks are unavailable from the detach until their chunk is
//! given back (the highest chunk first, once the pass over the detached
//! runs is done): allocations of that class carve fresh blocks if the
//! class has any left, or wait on the dry path for the next chunk.
//!
//! **`MADV_DONTNEED`, not `MADV_FREE`.** With `MADV_FREE` the kernel takes
//! the pages only under memory pressure: RSS would not drop when `trim`
//! returns, and the reported figure could not be checked. `MADV_DONTNEED`
//! drops them at once; the cost is a page fault (and a zeroed page) on each
//! released page's next use. With transparent huge pages, releasing part of
//! a huge page splits it.
//!
//! [`SlabAllocator::trim`]: crate::SlabAllocator::trim
//! [`Runs::take_all`]: crate::class::runs::Runs::take_all
//! [`ClassPool::retry_while_trimmed`]: crate::class::ClassPool::retry_while_trimmed

use core::fmt;

use crate::class::ClassPool;
use crate::os::{self, Scratch};
use crate::region::Region;

/// What a [`SlabAllocator::trim`](crate::SlabAllocator::trim) gave back.
///
/// `released_bytes` counts only pages that were resident just before they
/// were released, so it is what the process's RSS dropped by (other
/// activity of the process aside).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimReport {
    /// Bytes of physical memory given back to the OS.
    pub released_bytes: usize,
    /// Pages given back (`released_bytes / 4096`).
    pub pages: usize,
    /// Bytes of pages that held only free blocks, resident or not (pages
    /// already given back by an earlier trim count here, not above).
    pub free_page_bytes: usize,
    /// Free blocks that were on the shared stacks and were examined.
    pub free_blocks: u64,
    /// Bytes of those blocks.
    pub free_bytes: u64,
    /// Classes whose free blocks were examined.
    pub classes: usize,
}

impl TrimReport {
    fn add(&mut self, other: &TrimReport) {
        self.released_bytes += other.released_bytes;
        self.pages += other.pages;
        self.free_page_bytes += other.free_page_bytes;
        self.free_blocks += other.free_blocks;
        self.free_bytes += other.free_bytes;
        self.classes += other.classes;
    }
}

impl fmt::Display for TrimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "released {} ({} pages); {} of free blocks ({} blocks, {} classes), {} of them in whole free pages",
            crate::stats::human(self.released_bytes as u64),
            self.pages,
            crate::stats::human(self.free_bytes),
            self.free_blocks,
            self.classes,
            crate::stats::human(self.free_page_bytes as u64),
        )
    }
}

/// The page size a trim works in, and how many pages it handles between two
/// push-backs. Natively the OS page and 2 MiB; the loom models use pages
/// of two 16-byte blocks, so that a pool of four blocks has two pages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// A power of two; the span bases are aligned to it.
    pub(crate) page: usize,
    /// Pages per chunk (rounded up to a whole number of blocks and pages).
    pub(crate) chunk_pages: usize,
}

impl Geometry {
    /// What `SlabAllocator::trim` uses.
    pub(crate) const NATIVE: Geometry = Geometry { page: os::PAGE, chunk_pages: 512 };
}

/// Trims every class of `region` and of its growth (`growth.rs`).
pub(crate) fn trim_region(region: &Region, geometry: Geometry) -> TrimReport {
    let mut report = TrimReport::default();
    for part in core::iter::once(region).chain(region.extensions.iter()) {
        for pool in part.pools() {
            report.add(&trim_class(pool, geometry));
        }
    }
    // Relaxed: a statistic.
    region.trimmed_bytes.fetch_add(report.released_bytes as u64, crate::sync::Ordering::Relaxed);
    report
}

/// Starts the background trim thread of `Builder::background_trim`: every
/// `interval` it trims the region, until the last owner has dropped it; the
/// owner's drop wakes it, so it exits at once rather than at the end of its
/// interval. A refused thread spawn leaves the allocator without background
/// trimming (advice, like huge pages), not without an allocator.
#[cfg(not(lockfree_slab_loom))]
pub(crate) fn spawn_background(owner: &std::sync::Arc<crate::region::RegionOwner>, interval: core::time::Duration) {
    let weak = std::sync::Arc::downgrade(owner);
    let spawned = std::thread::Builder::new().name("lockfree-trim".into()).spawn(move || loop {
        if !sleep_while_alive(&weak, interval) {
            return;
        }
        // The strong reference keeps the region mapped while this trim
        // runs; if it turns out to be the last, dropping it unmaps the
        // region (and wakes this thread, which then finds it gone).
        let Some(owner) = weak.upgrade() else { return };
        trim_region(owner.region(), Geometry::NATIVE);
    });
    if let Ok(handle) = spawned {
        owner.set_trimmer(handle.thread().clone());
    }
}

/// Parks until `interval` has passed (true) or the owner is gone (false).
/// Spurious wake-ups park again; the owner's drop unparks after its strong
/// count reached zero, and an unpark that comes before the park is kept by
/// the thread's token, so the exit is never missed.
#[cfg(not(lockfree_slab_loom))]
fn sleep_while_alive(owner: &std::sync::Weak<crate::region::RegionOwner>, interval: core::time::Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        if owner.strong_count() == 0 {
            return false;
        }
        let elapsed = start.elapsed();
        if elapsed >= interval {
            return true;
        }
        std::thread::park_timeout(interval - elapsed);
    }
}

/// Releases the pages of `pool`'s span that hold only blocks on its stack
/// (see the module docs), while other threads keep using the pool.
pub(crate) fn trim_class(pool: &ClassPool, geometry: Geometry) -> TrimReport {
    let span = pool.address_of(0).as_ptr() as usize;
    debug_assert!(geometry.page.is_power_of_two() && span % geometry.page == 0);
    if pool.looks_dry() || span % geometry.page != 0 {
        return TrimReport::default();
    }
    // Held until after `held` below has pushed everything back: no fork
    // child inherits this trim half done (`fork.rs`).
    let Some(_no_fork) = crate::fork::TrimPass::enter() else {
        return TrimReport::default();
    };
    // Step 1. The frontier bounds the bitmap; blocks carved after this read
    // are handled as "late" below. Relaxed (inside `carved`) is enough: the
    // value only sizes the scan, and no block is released because of it.
    let frontier = pool.carved();
    let Some(bits) = Bitmap::new(frontier as usize) else {
        // No memory for the bitmap: nothing is released, nothing is lost.
        return TrimReport::default();
    };
    let mut held = Held::begin(pool, bits, frontier, geometry);
    held.detach();
    held.release_and_return();
    held.report
}

/// A class's free blocks while a trim holds them. Dropping it pushes back
/// whatever is still held and ends the trim, so an unwind cannot strand
/// blocks or leave other threads waiting on the dry path.
struct Held<'a> {
    pool: &'a ClassPool,
    /// One bit per block below the frontier: set while the trim holds it.
    bits: Bitmap,
    /// Blocks `0..unreturned` whose bits are set are still held; all
    /// others are free again.
    unreturned: u32,
    geometry: Geometry,
    report: TrimReport,
}

impl<'a> Held<'a> {
    fn begin(pool: &'a ClassPool, bits: Bitmap, frontier: u32, geometry: Geometry) -> Self {
        pool.begin_trim();
        Held { pool, bits, unreturned: frontier, geometry, report: TrimReport::default() }
    }

    /// Step 2: detaches the free runs, marks their blocks below the
    /// frontier (those above it go straight back).
    fn detach(&mut self) {
        let bits = &mut self.bits;
        let taken = self.pool.detach_free(self.unreturned, |index| bits.set(index as usize));
        self.report.free_blocks = taken;
        self.report.free_bytes = taken * self.pool.block_size() as u64;
        self.report.classes = usize::from(taken > 0);
    }

    /// Steps 3 and 4, chunk by chunk, highest first.
    fn release_and_return(&mut self) {
        let block = self.pool.block_size();
        let page = self.geometry.page;
        let unit = lcm(block, page);
        let chunk_blocks = (unit * (self.geometry.chunk_pages * page / unit).max(1) / block) as u32;
        let frontier = self.unreturned;
        let chunks = frontier.div_ceil(chunk_blocks);
        for chunk in (0..chunks).rev() {
            let lo = chunk * chunk_blocks;
            let hi = lo.saturating_add(chunk_blocks).min(frontier);
            if cfg!(lockfree_slab_trim_push_first) {
                // Test-only bug for the loom model's teeth: blocks back on
                // the stack before their pages are released (deciding from
                // the same bits, as if the push came last).
                self.return_blocks(lo, hi);
                self.release_pages(lo, hi);
            } else {
                self.release_pages(lo, hi);
                self.return_blocks(lo, hi);
            }
            self.bits.clear(lo as usize, hi as usize);
            self.unreturned = lo;
        }
    }

    /// Releases the pages inside blocks `lo..hi` (`lo` a chunk start, so a
    /// page and block boundary) all of whose blocks are held.
    fn release_pages(&mut self, lo: u32, hi: u32) {
        let block = self.pool.block_size();
        let page = self.geometry.page;
        let span = self.pool.address_of(0).as_ptr();
        let first_page = lo as usize * block / page;
        // Pages wholly below block `hi`: a page reaching past it holds a
        // block that is not ours to release (another chunk's, or carved
        // after the frontier was read).
        let end_page = hi as usize * block / page;
        let mut run_start = None;
        for p in first_page..=end_page {
            let free = p < end_page && {
                let first_block = p * page / block;
                let last_block = ((p + 1) * page - 1) / block;
                self.bits.all_set(first_block, last_block + 1)
            };
            match (free, run_start) {
                (true, None) => run_start = Some(p),
                (false, Some(start)) => {
                    run_start = None;
                    let len = (p - start) * page;
                    // SAFETY: pages `start..p` of the span hold only blocks
                    // whose bits are set: blocks this trim detached and has
                    // not pushed back, so nobody else reads or writes them.
                    // The span is page-aligned (checked in `trim_class`) and
                    // part of the region's reservation.
                    let released = unsafe { os::discard(span.wrapping_add(start * page), len) };
                    // Their poison is (partly) gone: the checks must not
                    // take the zeros for a write after free.
                    crate::checks::on_trimmed(self.pool, start * page / block, (p * page).div_ceil(block));
                    self.report.released_bytes += released;
                    self.report.pages += released / page;
                    self.report.free_page_bytes += len;
                }
                _ => {}
            }
        }
    }

    /// Pushes the held blocks among `lo..hi` back as one chain, lowest
    /// address on top. The caller then clears their bits (or drops the
    /// bitmap): they are not ours any more.
    fn return_blocks(&mut self, lo: u32, hi: u32) {
        let held = self.bits.iter_set(lo as usize, hi as usize).map(|index| index as u32);
        // SAFETY: each block is held by this trim (its bit is set and it has
        // not been given back), and is yielded once.
        unsafe { self.pool.give_back_detached(held) };
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.unreturned > 0 {
            self.return_blocks(0, self.unreturned);
        }
        self.pool.end_trim();
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

/// One bit per block, in a [`Scratch`] mapping that only the trimming
/// thread touches.
struct Bitmap {
    words: *mut u64,
    bits: usize,
    _scratch: Option<Scratch>,
}

impl Bitmap {
    /// `bits` clear bits; `None` if the OS refuses the mapping.
    fn new(bits: usize) -> Option<Bitmap> {
        if bits == 0 {
            return Some(Bitmap { words: core::ptr::null_mut(), bits, _scratch: None });
        }
        let scratch = Scratch::new(bits.div_ceil(64) * 8)?;
        Some(Bitmap { words: scratch.as_ptr().cast(), bits, _scratch: Some(scratch) })
    }

    #[inline]
    fn word(&self, w: usize) -> u64 {
        debug_assert!(w < self.bits.div_ceil(64));
        // SAFETY: `w` is a word of the bitmap (callers pass bit indices below
        // `bits`); the scratch holds that many zero-initialised, 8-aligned
        // words and only this thread touches it.
        unsafe { *self.words.add(w) }
    }

    #[inline]
    fn set_word(&mut self, w: usize, value: u64) {
        debug_assert!(w < self.bits.div_ceil(64));
        // SAFETY: as in `word`; `&mut self` makes this the only access.
        unsafe { *self.words.add(w) = value }
    }

    fn set(&mut self, i: usize) {
        debug_assert!(i < self.bits);
        let w = self.word(i / 64);
        debug_assert_eq!(w & 1 << (i % 64), 0, "block {i} detached twice");
        self.set_word(i / 64, w | 1 << (i % 64));
    }

    /// The mask of bits `lo..hi` within the word holding bit `lo`, and where
    /// the next word starts.
    fn mask(lo: usize, hi: usize) -> (u64, usize) {
        let bit = lo % 64;
        let n = (64 - bit).min(hi - lo);
        let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << bit };
        (mask, lo + n)
    }

    /// Whether bits `lo..hi` are all set (false if any is past the end).
    fn all_set(&self, lo: usize, hi: usize) -> bool {
        if hi > self.bits {
            return false;
        }
        let mut i = lo;
        while i < hi {
            let (mask, next) = Self::mask(i, hi);
            if self.word(i / 64) & mask != mask {
                return false;
            }
            i = next;
        }
        true
    }

    /// Every set bit in `lo..hi`, ascending, a word at a time.
    fn iter_set(&self, lo: usize, hi: usize) -> impl Iterator<Item = usize> + '_ {
        let (mut i, mut base, mut w) = (lo, 0, 0u64);
        core::iter::from_fn(move || loop {
            if w != 0 {
                let bit = base + w.trailing_zeros() as usize;
                w &= w - 1;
                return Some(bit);
            }
            if i >= hi {
                return None;
            }
            let (mask, next) = Self::mask(i, hi);
            base = i / 64 * 64;
            w = self.word(i / 64) & mask;
            i = next;
        })
    }

    /// Clears bits `lo..hi`.
    fn clear(&mut self, lo: usize, hi: usize) {
        let mut i = lo;
        while i < hi {
            let (mask, next) = Self::mask(i, hi);
            let w = self.word(i / 64);
            self.set_word(i / 64, w & !mask);
            i = next;
        }
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    //! Small pools over a reservation from `os.rs` (a heap stand-in under
    //! Miri, where `discard` writes zeros), so Miri runs these too.

    use super::*;
    use crate::class::runs::Runs;
    use crate::os::PAGE;
    use crate::sync::{AtomicU32, AtomicU64};
    use core::ptr::NonNull;

    /// One class of `capacity` blocks of `block` bytes over its own
    /// reservation: run words and links first, then the page-aligned span.
    struct Fixture {
        base: NonNull<u8>,
        len: usize,
        pool: ClassPool,
    }

    impl Fixture {
        fn new(block: usize, capacity: u32) -> Self {
            let runs = Runs::count_for(capacity) as usize;
            let meta_len = (runs * 12).next_multiple_of(PAGE);
            let len = meta_len + (block * capacity as usize).next_multiple_of(PAGE);
            let base = os::reserve(len).expect("a small reservation");
            let words = base.as_ptr().cast::<AtomicU64>();
            // SAFETY: zero-filled memory for a word and a link per run, used
            // only by this pool; the span after it holds `capacity` blocks,
            // and both live until `drop` releases the reservation.
            let pool = unsafe {
                let links = words.add(runs).cast::<AtomicU32>();
                crate::sync::init_zeroed_atomics(words, runs);
                crate::sync::init_zeroed_atomics(links, runs);
                ClassPool::new(
                    block,
                    capacity,
                    base.as_ptr().add(meta_len),
                    Runs::new(words, links, capacity),
                    crate::class::states::BlockStates::NONE,
                )
            };
            Fixture { base, len, pool }
        }

        /// Carves every block, fills block `i` with byte `i + 1`, and gives
        /// back those for which `free(i)`; returns the rest.
        fn carve_fill_free(&self, free: impl Fn(u32) -> bool) -> Vec<u32> {
            let mut kept = Vec::new();
            while let Some(p) = self.pool.take_one() {
                let i = self.pool.index_of(p);
                // SAFETY: a block of the pool, ours until given back.
                unsafe { p.as_ptr().write_bytes((i as u8).wrapping_add(1), self.pool.block_size()) };
                kept.push(i);
            }
            kept.retain(|&i| {
                if free(i) {
                    // SAFETY: ours, not used after this.
                    unsafe { self.pool.give_back(self.pool.address_of(i)) };
                }
                !free(i)
            });
            kept
        }

        /// Whether block `i` still holds the byte `carve_fill_free` wrote.
        fn intact(&self, i: u32) -> bool {
            let p = self.pool.address_of(i).as_ptr();
            // SAFETY: a block of the span, read by the only thread.
            (0..self.pool.block_size()).all(|k| unsafe { *p.add(k) } == (i as u8).wrapping_add(1))
        }

        fn drain(&self) -> Vec<u32> {
            let mut out = Vec::new();
            while self.pool.runs().take(64, |i| out.push(i)) > 0 {}
            out.sort_unstable();
            out
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            // SAFETY: the whole reservation from `new`; nothing uses it now.
            unsafe { os::release(self.base, self.len) };
        }
    }

    #[test]
    fn only_pages_holding_nothing_but_free_blocks_are_released() {
        // 64-byte blocks, 64 per page, four pages.
        let f = Fixture::new(64, 256);
        // Pages 0 and 2 entirely free; page 1 keeps block 100; page 3 keeps
        // its last block.
        let kept = f.carve_fill_free(|i| i != 100 && i != 255);
        assert_eq!(kept, [100, 255]);
        let report = trim_class(&f.pool, Geometry::NATIVE);
        assert_eq!(report.free_blocks, 254);
        assert_eq!(report.free_page_bytes, 2 * PAGE);
        // Natively only touched (resident) pages count, and all were
        // touched; the stand-in counts every page it zeroes.
        assert_eq!((report.released_bytes, report.pages), (2 * PAGE, 2));
        assert!(f.intact(100) && f.intact(255), "blocks in use keep their contents");
        assert!(f.intact(64) && f.intact(254), "free blocks on kept pages are left alone");
        // SAFETY: block 0 is free; nobody else uses it.
        assert_eq!(unsafe { *f.pool.address_of(0).as_ptr() }, 0, "a released page reads as zero");
        // Every free block is back, lowest address first.
        assert_eq!(f.pool.free_blocks(), 254);
        assert_eq!(f.pool.take_one(), Some(f.pool.address_of(0)));
        let mut back = f.drain();
        back.push(0);
        back.sort_unstable();
        assert_eq!(back, (0..256).filter(|&i| i != 100 && i != 255).collect::<Vec<_>>());
    }

    #[test]
    fn blocks_larger_than_a_page_give_back_their_interior_pages() {
        // 9216-byte blocks: block 0 covers pages 0, 1 and a quarter of page
        // 2; block 1 the rest of page 2, page 3 and half of page 4.
        let f = Fixture::new(9216, 4);
        let kept = f.carve_fill_free(|i| i == 0);
        assert_eq!(kept, [1, 2, 3]);
        let report = trim_class(&f.pool, Geometry::NATIVE);
        assert_eq!((report.free_blocks, report.released_bytes), (1, 2 * PAGE), "pages 0 and 1");
        assert!(f.intact(1));
        // SAFETY: single-threaded test; block 0 is free. (Not
        // reading pages 0 and 1 yet: a read maps the zero page, which
        // `mincore` would count as resident below.)
        assert_eq!(unsafe { *f.pool.address_of(0).as_ptr().add(2 * PAGE) }, 1, "page 2 is shared with block 1");
        // Free block 1 too: page 2 (shared by blocks 0 and 1) and page 3 go
        // now; pages 0 and 1 are released again but are not resident
        // natively any more.
        let b1 = f.pool.address_of(1);
        // SAFETY: block 1 is ours (kept above).
        unsafe { f.pool.give_back(b1) };
        let report = trim_class(&f.pool, Geometry::NATIVE);
        assert_eq!(report.free_page_bytes, 4 * PAGE);
        #[cfg(not(miri))]
        assert_eq!(report.released_bytes, 2 * PAGE, "pages 2 and 3 were resident");
        assert!(f.intact(2), "page 4 is shared with block 2, in use");
        // SAFETY: as above; blocks 0 and 1 are free.
        unsafe {
            assert_eq!(*f.pool.address_of(0).as_ptr().add(2 * PAGE - 1), 0);
            assert_eq!(*f.pool.address_of(1).as_ptr().add(PAGE), 0);
        }
        assert_eq!(f.drain(), [0, 1]);
    }

    #[test]
    fn small_chunks_release_the_same_pages_as_one_chunk() {
        // 48-byte blocks: lcm(48, 4096) = 3 pages = 256 blocks per chunk.
        let f = Fixture::new(48, 1024);
        let kept = f.carve_fill_free(|i| !(300..310).contains(&i) && i != 900);
        let report = trim_class(&f.pool, Geometry { page: PAGE, chunk_pages: 1 });
        // 12 pages; blocks 300..310 lie in page 3 (bytes 14400..14880), and
        // block 900 (bytes 43200..43248) in page 10.
        assert_eq!(report.free_page_bytes, 10 * PAGE);
        for i in kept {
            assert!(f.intact(i), "block {i}");
        }
        assert_eq!(f.drain().len(), 1024 - 11);
    }

    #[test]
    fn an_empty_stack_is_left_alone() {
        let f = Fixture::new(64, 128);
        assert_eq!(trim_class(&f.pool, Geometry::NATIVE), TrimReport::default());
        let kept = f.carve_fill_free(|_| false);
        assert_eq!(kept.len(), 128);
        assert_eq!(trim_class(&f.pool, Geometry::NATIVE), TrimReport::default());
        assert!(kept.iter().all(|&i| f.intact(i)));
    }

    #[test]
    fn a_dry_class_retries_only_while_a_trim_holds_its_blocks() {
        let f = Fixture::new(64, 2);
        let kept = f.carve_fill_free(|i| i == 1);
        assert_eq!(kept, [0]);
        // No trim ever: dry means dry, after one load.
        assert!(f.pool.retry_while_trimmed(|| None::<()>).is_none());
        // A trim "in progress" that ends during the retries: the retry waits
        // for it and then finds the block it held.
        f.pool.begin_trim();
        let mut calls = 0;
        let got = f.pool.retry_while_trimmed(|| {
            calls += 1;
            if calls == 3 {
                f.pool.end_trim();
            }
            (calls > 3).then_some(calls)
        });
        assert_eq!(got, Some(4));
        // Trims happened, none in progress: one more attempt, then dry.
        let mut calls = 0;
        assert!(f
            .pool
            .retry_while_trimmed(|| {
                calls += 1;
                None::<()>
            })
            .is_none());
        assert_eq!(calls, 1);
    }

    #[test]
    fn bitmap_ranges() {
        let mut b = Bitmap::new(200).unwrap();
        for i in (10..140).chain([199]) {
            b.set(i);
        }
        assert!(b.all_set(10, 140) && b.all_set(64, 128) && b.all_set(199, 200));
        assert!(!b.all_set(9, 20) && !b.all_set(130, 141) && !b.all_set(199, 201));
        let mut seen = Vec::new();
        seen.extend(b.iter_set(100, 200));
        assert_eq!(seen, (100..140).chain([199]).collect::<Vec<_>>());
        b.clear(20, 139);
        let mut seen = Vec::new();
        seen.extend(b.iter_set(0, 200));
        assert_eq!(seen, (10..20).chain([139, 199]).collect::<Vec<_>>());
        assert_eq!((gcd(48, 4096), lcm(48, 4096), lcm(9216, 4096)), (16, 12288, 36864));
    }
}
