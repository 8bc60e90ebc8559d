//! One class's free blocks, kept by address: the span is cut into *runs*
//! of [`RUN_BLOCKS`] consecutive blocks, each run has one `AtomicU64` whose
//! bits are its free blocks, and the runs that have any free block sit on a
//! [`TaggedStack`] of run indices. This is the class's whole shared free
//! layer: thread caches refill from it and flush to it, and the uncached
//! path and trim use it one block or one run at a time.
//!
//! ```text
//! give (a flush):  per run touched, fetch_or its blocks' bits; a run whose word was 0
//!                  goes on a chain, and the chain is pushed with one CAS
//! take (a refill): the run on top: if it has more free blocks than wanted, clear
//!                  the lowest of them with one CAS (it stays on the stack); else pop
//!                  it and swap its word to 0. Hand out lowest address first.
//! ```
//!
//! **Why runs.** Real programs spend more time missing the cache on their
//! own objects than in the allocator (DESIGN.md, invariant 9). A refill that
//! takes a run hands a thread up to 64 neighbours in address order,
//! whatever order other threads freed them in, so objects built together
//! sit together; a batch of free blocks that scattered over the span (a
//! per-block list, or a depot of magazines) handed out a page per object.
//!
//! **Cost per batch.** No walk of per-block links (each a dependent miss):
//! a refill is one CAS, or one pop and one swap, per run (its blocks are
//! the word's bits, decoded with a bit scan); a flush is one `fetch_or` per
//! distinct run among the blocks it gives (merged in a small table first,
//! so blocks of one run freed interleaved with another's still cost one)
//! and one CAS on the stack head for all the runs that became non-empty. The run words are
//! spread over the metadata, so the only line every thread writes is the
//! stack head, once per batch.
//!
//! **The invariant.** A run is on the stack exactly when its word went from
//! 0 to non-zero and nobody has popped it since, so
//!
//! - a run on the stack has a non-zero word (only its popper zeroes it; a
//!   take that leaves the run on the stack clears bits, never all of them);
//! - a run off the stack has a zero word, unless a thread holds it between
//!   its pop (or `take_all`) and the swap that follows;
//! - so the thread whose `fetch_or` sees 0 is the only one that may push
//!   the run, and pushes it exactly once: no run is ever on the stack twice.
//!
//! A take holds no free block it does not hand out, with one exception: a
//! run popped to be emptied whole may have gained blocks since the taker
//! looked (frees racing it), and those it has no room for are or-ed back
//! (pushing the run again if its word was 0 meanwhile). Only in that
//! window can another thread find the class dry while a block is free; it
//! then fails (or takes the fallback) a moment early, as when the blocks
//! sit in another thread's cache.
//!
//! **Orderings.** A `fetch_or` that frees blocks is a Release (the
//! previous owner's writes to them) and an Acquire; the swap or CAS that
//! takes them is an Acquire (pairs with every earlier `fetch_or`, the word's
//! modification order being a chain of read-modify-writes) and a Release
//! (a later `fetch_or` that reads its zero, and pushes the run, is ordered
//! after this taker's pop read the run's link). The stack adds its own
//! Release/Acquire pair for the runs. The loom models `runs::*` check both:
//! with the `fetch_or` (and the push) weakened to Relaxed a taker reads a
//! block before its previous owner's write (`--cfg lockfree_slab_weak_push`),
//! and with the swap split into a load and a store a racing free is lost
//! (`--cfg lockfree_slab_runs_split_swap`).

use crate::class::stack::{Chain, TaggedStack};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Blocks per run: the bits of one word.
pub(crate) const RUN_BLOCKS: u32 = 64;
const RUN_SHIFT: u32 = RUN_BLOCKS.trailing_zeros();

/// Runs one take draws on at most before it settles for what it has: a class
/// whose free blocks are scattered one per run still refills in bounded
/// time, and leaves the rest for the next refill.
const MAX_RUNS_PER_TAKE: u32 = 16;

/// Slots of the table in which [`Runs::give`] merges the bits of one run
/// before it or-s them in (direct-mapped by run index, at most one per bit
/// of a `u64` mask of filled slots): a flush of blocks from up to this many
/// neighbouring runs, in any order, costs one `fetch_or` per run. Blocks a
/// thread frees in hash-table or tree order come from the runs its refills
/// took, a few dozen at most per batch.
const MERGE_SLOTS: usize = 64;

/// The ordering of a `fetch_or` that frees blocks. The test-only cfg
/// `lockfree_slab_weak_push` weakens it (as it does the stack's push) so the
/// loom payload model can show that the next owner then reads a block
/// before the previous owner's writes.
#[cfg(not(lockfree_slab_weak_push))]
const FREE_PUBLISH: Ordering = Ordering::AcqRel;
#[cfg(lockfree_slab_weak_push)]
const FREE_PUBLISH: Ordering = Ordering::Relaxed;

/// The run of a block, and the block's bit in it.
#[inline(always)]
fn run_and_bit(index: u32) -> (u32, u64) {
    (index >> RUN_SHIFT, 1 << (index & (RUN_BLOCKS - 1)))
}

/// The free-block bitmaps of one class and the stack of its non-empty runs
/// (see the module docs).
pub(crate) struct Runs {
    /// One word per run, bit `i` for block `run * RUN_BLOCKS + i`.
    words: *const AtomicU64,
    runs: u32,
    stack: TaggedStack,
}

// SAFETY: every access through `&self` is an atomic operation on the words
// or the stack, and the words outlive the `Runs` (the contract of `new`).
unsafe impl Send for Runs {}
// SAFETY: as for `Send`.
unsafe impl Sync for Runs {}

impl Runs {
    /// Runs of a class of `capacity` blocks (the last may be partial).
    pub(crate) const fn count_for(capacity: u32) -> u32 {
        capacity.div_ceil(RUN_BLOCKS)
    }

    /// No free block yet.
    ///
    /// # Safety
    ///
    /// `words` and `links` point to [`count_for(capacity)`](Self::count_for)
    /// initialised atomics each, zero for `words`, that stay valid and are
    /// used by no one else for as long as the `Runs` is used.
    pub(crate) unsafe fn new(words: *const AtomicU64, links: *const AtomicU32, capacity: u32) -> Self {
        let runs = Self::count_for(capacity);
        // SAFETY: `links` holds one atomic per run (this function's contract).
        Runs { words, runs, stack: unsafe { TaggedStack::new(links, runs) } }
    }

    #[inline(always)]
    fn word(&self, run: u32) -> &AtomicU64 {
        debug_assert!(run < self.runs, "run {run} out of range {}", self.runs);
        // SAFETY: `run < runs`: callers pass runs of blocks of this class,
        // or runs popped off the stack, which holds only pushed runs. The
        // array is valid (the contract of `new`).
        unsafe { &*self.words.add(run as usize) }
    }

    /// Frees the blocks `indices` (in any order, several of one run
    /// allowed). One `fetch_or` per run in the merge table's turn, one CAS
    /// for all the runs that were empty.
    ///
    /// # Safety
    ///
    /// Each index is a block of this class, the caller's, and not free;
    /// none is yielded twice.
    pub(crate) unsafe fn give(&self, indices: impl Iterator<Item = u32>) {
        // Slot `s` holds the bits of run `runs[s]` when bit `s` of `filled`
        // is set; only filled slots are read, so the arrays need no
        // clearing beyond their (vectorised) zeroing.
        let mut runs = [0u32; MERGE_SLOTS];
        let mut bits = [0u64; MERGE_SLOTS];
        let mut filled = 0u64;
        let mut emptied = Chain::EMPTY;
        for index in indices {
            let (run, bit) = run_and_bit(index);
            let slot = run as usize % MERGE_SLOTS;
            let mask = 1u64 << slot;
            if filled & mask == 0 {
                filled |= mask;
                (runs[slot], bits[slot]) = (run, 0);
            } else if runs[slot] != run {
                // SAFETY: the bits are of blocks the caller gives.
                unsafe { self.or_in(runs[slot], bits[slot], &mut emptied) };
                (runs[slot], bits[slot]) = (run, 0);
            }
            debug_assert_eq!(bits[slot] & bit, 0, "block {index} given twice in one batch");
            bits[slot] |= bit;
        }
        while filled != 0 {
            let slot = filled.trailing_zeros() as usize;
            filled &= filled - 1;
            // SAFETY: as above.
            unsafe { self.or_in(runs[slot], bits[slot], &mut emptied) };
        }
        // SAFETY: every run on the chain had a zero word before our
        // `fetch_or`, so it is on no stack and ours to push (module docs).
        unsafe { emptied.push_onto(&self.stack) };
    }

    /// Or-s `bits` into `run`'s word; if the word was 0 the run goes on
    /// `emptied`, for the caller to push.
    ///
    /// # Safety
    ///
    /// `bits` are blocks of `run` that the caller holds and frees.
    #[inline]
    unsafe fn or_in(&self, run: u32, bits: u64, emptied: &mut Chain) {
        // AcqRel (see the module docs): Release publishes the freed blocks'
        // contents to the swap that takes them; Acquire orders us after the
        // swap whose zero we may read, so pushing the run follows that
        // taker's pop.
        let before = self.word(run).fetch_or(bits, FREE_PUBLISH);
        debug_assert_eq!(before & bits, 0, "a block of run {run} freed twice");
        if before == 0 {
            // SAFETY: the word was 0, so the run is on no stack and in no
            // other chain, and no one else pushes it (module docs).
            unsafe { emptied.append(&self.stack, run) };
        }
    }

    /// Frees one block (the uncached path): one `fetch_or`, and a push if
    /// its run was empty, without [`give`](Self::give)'s merge table.
    ///
    /// # Safety
    ///
    /// As for [`give`](Self::give), for one block.
    pub(crate) unsafe fn give_one(&self, index: u32) {
        let (run, bit) = run_and_bit(index);
        // SAFETY: the caller's block (this function's contract).
        unsafe { self.or_back(run, bit) }
    }

    /// Gives back `bits` of one run that the caller holds — a freed block,
    /// or what a take or a trim holds (none: a no-op) — pushing the run if
    /// its word was 0.
    ///
    /// # Safety
    ///
    /// As for [`or_in`](Self::or_in).
    unsafe fn or_back(&self, run: u32, bits: u64) {
        if bits != 0 {
            let mut emptied = Chain::EMPTY;
            // SAFETY: forwarded; the run, if on the chain, is ours to push
            // (`or_in`).
            unsafe {
                self.or_in(run, bits, &mut emptied);
                emptied.push_onto(&self.stack);
            }
        }
    }

    /// Takes up to `max` free blocks, from at most [`MAX_RUNS_PER_TAKE`]
    /// runs, as `sink(index)`: each run's blocks highest address first (so
    /// that a magazine, which hands out its newest entry first, hands them
    /// out lowest first). Returns how many; 0 when no run has a free block.
    ///
    /// A run on top with more free blocks than are still wanted stays on
    /// the stack: the take clears the bits it keeps with one CAS, never
    /// down to 0, so the rest stay free and visible to other threads. A run
    /// with no more than that is popped and emptied whole.
    pub(crate) fn take(&self, max: u32, mut sink: impl FnMut(u32)) -> u32 {
        let mut got = 0;
        let mut runs = 0;
        while got < max && runs < MAX_RUNS_PER_TAKE {
            let need = max - got;
            let Some(top) = self.stack.peek() else { break };
            // Acquire: pairs with the `fetch_or`s that freed these blocks.
            let bits = self.word(top).load(Ordering::Acquire);
            let (mine, run) = if bits.count_ones() > need {
                let (mine, rest) = lowest_bits(bits, need);
                // Success: AcqRel, as for a swap (`swap_out`). `rest` is not
                // 0, so a run on the stack keeps a non-zero word. The peek
                // may be stale (the run popped since): the CAS then fails,
                // or succeeds on bits that are free at that moment, which is
                // all it needs. Failure: look again.
                if self.word(top).compare_exchange(bits, rest, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                    continue;
                }
                (mine, top)
            } else {
                let Some(run) = self.stack.pop() else { break };
                let bits = self.swap_out(run);
                debug_assert_ne!(bits, 0, "run {run} was on the stack with no free block");
                // Frees that landed since the peek may have added blocks:
                // those we have no room for go back (see the module docs).
                let (mine, rest) = lowest_bits(bits, need);
                // SAFETY: `rest` are free blocks this take holds: swapped out
                // above and not handed to the sink.
                unsafe { self.or_back(run, rest) };
                (mine, run)
            };
            runs += 1;
            let base = run << RUN_SHIFT;
            let mut left = mine;
            while left != 0 {
                let high = 63 - left.leading_zeros();
                sink(base + high);
                left &= !(1 << high);
            }
            got += mine.count_ones();
        }
        got
    }

    /// Takes every free block of the runs on the stack (a trim): detaches
    /// the stack with one CAS (a Release, which `ClassPool::retry_while_trimmed`
    /// relies on), then empties each run's word. Blocks at or above `keep`
    /// are or-ed straight back (blocks carved after the trim read its
    /// frontier); the others go to `sink(index)` and are the caller's until
    /// it [`give`](Self::give)s them back. Returns how many went to `sink`.
    pub(crate) fn take_all(&self, keep: u32, mut sink: impl FnMut(u32)) -> u64 {
        let mut taken = 0u64;
        self.stack.take_all(|run| {
            let bits = self.swap_out(run);
            let base = run << RUN_SHIFT;
            let late = match keep.checked_sub(base) {
                Some(below) if below >= RUN_BLOCKS => 0,
                Some(below) => bits & (u64::MAX << below),
                None => bits,
            };
            // SAFETY: blocks swapped out above, ours. `take_all` read this
            // run's link before calling us, so pushing it again cannot break
            // its walk of the detached runs.
            unsafe { self.or_back(run, late) };
            let mut held = bits & !late;
            taken += u64::from(held.count_ones());
            while held != 0 {
                sink(base + held.trailing_zeros());
                held &= held - 1;
            }
        });
        taken
    }

    /// Empties a run's word and returns the blocks it held, which are then
    /// the caller's.
    #[inline]
    pub(crate) fn swap_out(&self, run: u32) -> u64 {
        // AcqRel (see the module docs): Acquire pairs with the `fetch_or`s
        // that freed these blocks; Release orders our pop of the run before
        // the `fetch_or` that reads this zero and pushes the run again.
        #[cfg(not(lockfree_slab_runs_split_swap))]
        return self.word(run).swap(0, Ordering::AcqRel);
        // Test-only bug for the loom model's teeth: a free or-ed in between
        // the load and the store is lost.
        #[cfg(lockfree_slab_runs_split_swap)]
        {
            let bits = self.word(run).load(Ordering::Acquire);
            self.word(run).store(0, Ordering::Release);
            bits
        }
    }

    /// Whether no run looked to have a free block a moment ago (a hint).
    pub(crate) fn looks_empty(&self) -> bool {
        self.stack.looks_empty()
    }

    /// Free blocks among blocks `0..carved` (exact when quiescent): one
    /// load per run, for statistics.
    pub(crate) fn free_blocks(&self, carved: u32) -> u64 {
        (0..Self::count_for(carved))
            // Relaxed: statistics.
            .map(|run| u64::from(self.word(run).load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// The stack of runs, for the models and unit tests that look at it.
    #[cfg(test)]
    pub(crate) fn stack(&self) -> &TaggedStack {
        &self.stack
    }
}

/// Splits `bits` into its lowest `n` set bits and the rest.
#[inline]
fn lowest_bits(bits: u64, n: u32) -> (u64, u64) {
    if bits.count_ones() <= n {
        return (bits, 0);
    }
    let mut mine = 0;
    let mut left = bits;
    for _ in 0..n {
        let lowest = left & left.wrapping_neg();
        mine |= lowest;
        left ^= lowest;
    }
    (mine, left)
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    struct Fixture {
        _words: Vec<AtomicU64>,
        _links: Vec<AtomicU32>,
        runs: Runs,
    }

    fn fixture(capacity: u32) -> Fixture {
        let count = Runs::count_for(capacity) as usize;
        let words: Vec<AtomicU64> = (0..count).map(|_| AtomicU64::new(0)).collect();
        let links: Vec<AtomicU32> = (0..count).map(|_| AtomicU32::new(0)).collect();
        // SAFETY: one zeroed word and one link per run, kept next to it.
        let runs = unsafe { Runs::new(words.as_ptr(), links.as_ptr(), capacity) };
        Fixture { _words: words, _links: links, runs }
    }

    fn take(runs: &Runs, max: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let got = runs.take(max, |i| out.push(i));
        assert_eq!(got as usize, out.len());
        out
    }

    #[test]
    fn lowest_bits_splits_at_the_nth_set_bit() {
        assert_eq!(lowest_bits(0b1011_0110, 2), (0b0000_0110, 0b1011_0000));
        assert_eq!(lowest_bits(0b1011_0110, 5), (0b1011_0110, 0));
        assert_eq!(lowest_bits(u64::MAX, 64), (u64::MAX, 0));
        assert_eq!(lowest_bits(u64::MAX, 0), (0, u64::MAX));
    }

    #[test]
    fn a_take_hands_out_a_runs_blocks_lowest_last_whatever_order_they_were_freed_in() {
        let f = fixture(256);
        // SAFETY: distinct blocks of the class, none free.
        unsafe { f.runs.give([70u32, 3, 65, 9, 64, 1].into_iter()) };
        // The run given last is on top; each run comes out highest first.
        let got = take(&f.runs, 100);
        assert_eq!(got, vec![9, 3, 1, 70, 65, 64]);
        assert!(f.runs.looks_empty());
        assert_eq!(f.runs.free_blocks(256), 0);
    }

    #[test]
    fn a_take_of_fewer_than_a_run_holds_keeps_the_rest_free_and_on_the_stack() {
        let f = fixture(128);
        // SAFETY: distinct blocks, none free.
        unsafe { f.runs.give(0..64) };
        assert_eq!(take(&f.runs, 3), vec![2, 1, 0]);
        assert_eq!(f.runs.free_blocks(128), 61);
        assert_eq!(f.runs.stack().len(), 1, "the run went back once");
        assert_eq!(take(&f.runs, 100), (3..64).rev().collect::<Vec<_>>());
        assert!(f.runs.looks_empty());
    }

    #[test]
    fn a_run_goes_on_the_stack_only_when_its_first_block_is_freed() {
        let f = fixture(64 * 20);
        for round in 0..3u32 {
            for run in 0..20u32 {
                // SAFETY: each block once per round, taken back below.
                unsafe {
                    f.runs.give(core::iter::once(run * 64 + round));
                    f.runs.give(core::iter::once(run * 64 + 10 + round));
                }
            }
            assert_eq!(f.runs.stack().len(), 20, "one entry per run, however many frees");
            let mut got = Vec::new();
            while f.runs.take(64, |i| got.push(i)) > 0 {}
            got.sort_unstable();
            let want: Vec<u32> = (0..20).flat_map(|r| [r * 64 + round, r * 64 + 10 + round]).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_take_pops_a_bounded_number_of_runs() {
        let f = fixture(64 * 40);
        // SAFETY: one block of each of 40 runs.
        unsafe { f.runs.give((0..40).map(|r| r * 64)) };
        assert_eq!(take(&f.runs, 1000).len(), MAX_RUNS_PER_TAKE as usize);
        assert_eq!(f.runs.free_blocks(64 * 40), 40 - u64::from(MAX_RUNS_PER_TAKE));
    }

    #[test]
    fn take_all_gives_back_blocks_at_or_above_the_frontier() {
        let f = fixture(256);
        // SAFETY: distinct blocks, none free.
        unsafe { f.runs.give([5u32, 66, 70, 130, 200].into_iter()) };
        let mut held = Vec::new();
        let taken = f.runs.take_all(68, |i| held.push(i));
        held.sort_unstable();
        assert_eq!(held, vec![5, 66]);
        assert_eq!(taken, 2);
        let mut rest = take(&f.runs, 100);
        rest.sort_unstable();
        assert_eq!(rest, vec![70, 130, 200], "the late blocks are free again");
        // SAFETY: the held blocks go back.
        unsafe { f.runs.give(held.into_iter()) };
        assert_eq!(f.runs.free_blocks(256), 2);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too many iterations for Miri; loom covers the interleavings")]
    fn threads_neither_lose_nor_duplicate_blocks() {
        use std::sync::Arc;
        const THREADS: u32 = 4;
        const PER_THREAD: u32 = 640;
        let f = Arc::new(fixture(THREADS * PER_THREAD));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    let mut mine: Vec<u32> = (t * PER_THREAD..(t + 1) * PER_THREAD).collect();
                    for round in 0..200 {
                        // SAFETY: the thread holds `mine`, each block once.
                        unsafe { f.runs.give(mine.drain(..).rev()) };
                        let want = PER_THREAD - round % 7;
                        while (mine.len() as u32) < want {
                            let need = want - mine.len() as u32;
                            if f.runs.take(need, |i| mine.push(i)) == 0 {
                                break;
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<u32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        while f.runs.take(64, |i| all.push(i)) > 0 {}
        all.sort_unstable();
        assert_eq!(all, (0..THREADS * PER_THREAD).collect::<Vec<_>>(), "blocks lost or handed out twice");
    }
}
