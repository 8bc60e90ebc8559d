//! A lock-free Treiber stack of indices with a tagged head and links kept
//! outside user memory. A class keeps its runs of free blocks on one
//! (`runs.rs`); the models and tests below call the entries blocks.
//!
//! The head is `(index: u32, tag: u32)` packed into one `AtomicU64` inside a
//! cache-line-padded cell. An entry's "next" link lives in an `[AtomicU32]`
//! array in the class's metadata (one slot per entry), not in user memory: a
//! pop may read the link of an entry another thread has just popped, and
//! with the link outside the blocks that read is an atomic load of
//! metadata, not a data race on user memory.
//!
//! **ABA.** Every successful push or pop adds one to the tag, so a CAS that
//! carries a stale `(index, tag)` fails even if `index` is back on top.
//!
//! *The window that is left.* The tag is 32 bits and wraps. A `pop_batch`
//! (or `push_chain`) that loads the head and is then paused before its CAS
//! wins wrongly only if, when it resumes, the head word is bit-for-bit the
//! one it loaded: the same block on top *and* a tag that has moved by exactly
//! k·2³² successful operations on this one stack. Its CAS would then install
//! a `next` link read before the pause, which may name a block that is in
//! use (handed out twice) or lose the rest of the stack. The arithmetic:
//!
//! - 2³² ≈ 4.3·10⁹ operations. One thread doing nothing but uncontended
//!   push/pop pairs on one stack (its line in L1, ~5 ns per CAS) needs about
//!   20–40 s per wrap; two threads contending on the line (~50 ns per
//!   operation) about 4 minutes; thread caches move 32–64 blocks per stack
//!   operation, so a cached workload wraps the tag once every ~10¹¹ block
//!   operations.
//! - The paused thread must also resume inside the one-operation window in
//!   which the tag has its old value (nanoseconds out of every wrap), with
//!   the same block on top. So the thread has to be stopped for tens of
//!   seconds at the least (a debugger, `SIGSTOP`, `SCHED_FIFO` starvation),
//!   and even then it wins wrongly with odds of about 10 ns / 40 s ≈ 2·10⁻¹⁰ per
//!   stall.
//!
//! *Is a wider tag worth it?* Two ways exist. (1) Fewer index bits: a class
//! may hold up to 2³² − 1 blocks (a 1 TiB pool of one 8-byte class is
//! refused only past that), so a fixed split would lower that limit; a
//! per-class split (the tag takes the bits the class's block count does not
//! need, e.g. 36 tag bits for the 2²⁸ blocks of a large general-purpose
//! class) costs a shift and a mask on the cold path only and buys 16× or
//! more. (2) A 128-bit head (`cmpxchg16b`): no stable `AtomicU128` in std,
//! a slower CAS on every batch, and no loom model (loom has no 128-bit
//! atomics), which would cost the stack its model checking. Neither is
//! taken today: the remaining window needs a thread stopped from outside for
//! tens of seconds and then a nanosecond-wide coincidence; (1) is the cheap
//! step if a user ever needs the bound tighter.
//!
//! **Orderings.** A push publishes the block (its link, and everything the
//! previous owner wrote into it) with a `Release` CAS; a pop reads the head
//! with `Acquire`, which pairs with that CAS or — because every later change
//! of the head is a read-modify-write and so continues the release sequence —
//! with every earlier push. Links are `Relaxed`: they are ordered by the head.

use crate::sync::{AtomicU32, AtomicU64, Backoff, CachePadded, Ordering};

/// The "no block" index: the empty stack's head, the last block's link.
pub(crate) const NIL: u32 = u32::MAX;

/// What a successful push or pop adds to the tag. The test-only cfg
/// `lockfree_slab_no_aba_tag` sets it to 0 so the loom ABA model can show
/// that it then fails.
#[cfg(not(lockfree_slab_no_aba_tag))]
const TAG_STEP: u32 = 1;
#[cfg(lockfree_slab_no_aba_tag)]
const TAG_STEP: u32 = 0;

/// The success ordering of a push's CAS. The test-only cfg
/// `lockfree_slab_weak_push` weakens it to `Relaxed` so the loom payload model
/// can show that the next owner then reads the block before the previous
/// owner's writes.
#[cfg(not(lockfree_slab_weak_push))]
const PUSH_PUBLISH: Ordering = Ordering::Release;
#[cfg(lockfree_slab_weak_push)]
const PUSH_PUBLISH: Ordering = Ordering::Relaxed;

/// A chain of blocks the caller owns, linked one block at a time with
/// [`TaggedStack::set_link`] and then pushed whole with one
/// [`TaggedStack::push_chain`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain {
    /// `NIL` while the chain is empty.
    first: u32,
    last: u32,
}

impl Chain {
    pub(crate) const EMPTY: Chain = Chain { first: NIL, last: NIL };

    /// Links `index` after the chain's last block.
    ///
    /// # Safety
    ///
    /// `index < capacity` of `stack`, and the block is the caller's: on no
    /// stack and in no other chain (as for [`TaggedStack::set_link`]).
    pub(crate) unsafe fn append(&mut self, stack: &TaggedStack, index: u32) {
        if self.first == NIL {
            self.first = index;
        } else {
            // SAFETY: the chain's last block and `index` are both the
            // caller's (this function's contract, and the previous append's).
            unsafe { stack.set_link(self.last, index) };
        }
        self.last = index;
    }

    /// Pushes the chain onto `stack` with one successful CAS (nothing if it
    /// is empty).
    ///
    /// # Safety
    ///
    /// Every block appended is still the caller's, and was appended for this
    /// `stack`.
    pub(crate) unsafe fn push_onto(self, stack: &TaggedStack) {
        if self.first != NIL {
            // SAFETY: `append` linked `first → … → last`, all blocks the
            // caller's (this function's contract).
            unsafe { stack.push_chain(self.first, self.last) };
        }
    }
}

/// The stack's head: the top block and the ABA tag, packed as
/// `tag << 32 | index` in one word so both change in one CAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) index: u32,
    pub(crate) tag: u32,
}

impl Head {
    pub(crate) const EMPTY: Head = Head { index: NIL, tag: 0 };

    #[inline(always)]
    pub(crate) const fn pack(self) -> u64 {
        (self.tag as u64) << 32 | self.index as u64
    }

    #[inline(always)]
    pub(crate) const fn unpack(word: u64) -> Head {
        Head { index: word as u32, tag: (word >> 32) as u32 }
    }

    /// The head after one more successful operation that leaves `index` on
    /// top. The tag wraps around at 2³² (see the module docs).
    #[inline(always)]
    const fn successor(self, index: u32) -> Head {
        Head { index, tag: self.tag.wrapping_add(TAG_STEP) }
    }
}

/// A Treiber stack over the block indices `0..capacity` of one class.
pub(crate) struct TaggedStack {
    /// The head word, alone on its padded line: the one line every thread
    /// of the class writes.
    head: CachePadded<AtomicU64>,
    links: *const AtomicU32,
    capacity: u32,
}

// SAFETY: all shared state is atomics; `links` points to an array of atomics
// that outlives the stack (the contract of `TaggedStack::new`).
unsafe impl Send for TaggedStack {}
// SAFETY: as for `Send`: every access through `&self` is an atomic operation.
unsafe impl Sync for TaggedStack {}

impl TaggedStack {
    /// An empty stack over blocks `0..capacity`.
    ///
    /// # Safety
    ///
    /// `links` must point to `capacity` initialised `AtomicU32`s that stay
    /// valid, and are used by no one else, for as long as the stack is used.
    pub(crate) unsafe fn new(links: *const AtomicU32, capacity: u32) -> Self {
        debug_assert!(capacity < NIL);
        TaggedStack { head: CachePadded::new(AtomicU64::new(Head::EMPTY.pack())), links, capacity }
    }

    #[inline(always)]
    fn link(&self, index: u32) -> &AtomicU32 {
        debug_assert!(index < self.capacity, "block index {index} out of range {}", self.capacity);
        // SAFETY: every index that reaches here is a block of this class
        // (`< capacity`): callers of the unsafe push functions promise it for
        // what they push, and pops only follow the head and links, which
        // hold nothing but pushed indices, 0 (never-written links) or NIL
        // (checked before use). `new`'s contract keeps the array valid.
        unsafe { &*self.links.add(index as usize) }
    }

    /// Sets the link of a block the caller owns, to build a chain for
    /// [`push_chain`](Self::push_chain).
    ///
    /// # Safety
    ///
    /// `index < capacity`, and the block is the caller's: on no stack and in
    /// no other chain.
    #[inline]
    pub(crate) unsafe fn set_link(&self, index: u32, next: u32) {
        // Relaxed: published by the Release CAS of the push that follows.
        self.link(index).store(next, Ordering::Relaxed);
    }

    /// Reads the link of a block the caller owns (after a pop).
    #[inline]
    pub(crate) fn next_of(&self, index: u32) -> u32 {
        // Relaxed: the caller acquired this block through the head, which
        // ordered the link's last store before this load.
        self.link(index).load(Ordering::Relaxed)
    }

    /// Pushes one block.
    ///
    /// # Safety
    ///
    /// `index < capacity`, and the block is the caller's (not on the stack).
    #[cfg(test)]
    pub(crate) unsafe fn push(&self, index: u32) {
        // SAFETY: a single block is a chain from itself to itself; the
        // caller's contract is the chain's contract.
        unsafe { self.push_chain(index, index) }
    }

    /// Pushes a chain `first → … → last`, pre-linked with
    /// [`set_link`](Self::set_link), with one successful CAS.
    ///
    /// # Safety
    ///
    /// Every block of the chain is `< capacity` and the caller's, the chain
    /// runs from `first` to `last`.
    pub(crate) unsafe fn push_chain(&self, first: u32, last: u32) {
        let backoff = Backoff::new();
        // Relaxed: we only need a value to link to; the CAS validates it and
        // the CAS's Release does the publishing.
        let mut head = Head::unpack(self.head.load(Ordering::Relaxed));
        loop {
            // Relaxed: ordered before the CAS below by its Release.
            self.link(last).store(head.index, Ordering::Relaxed);
            // Success: Release, pairs with the Acquire load / CAS in
            // `pop_batch`: the next owner sees our link and every write the
            // previous owners made to these blocks.
            // Failure: Relaxed, the value is only used to retry.
            match self.head.compare_exchange_weak(
                head.pack(),
                head.successor(first).pack(),
                PUSH_PUBLISH,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    head = Head::unpack(actual);
                    backoff.spin();
                }
            }
        }
    }

    /// Pops one block.
    #[inline]
    pub(crate) fn pop(&self) -> Option<u32> {
        let mut popped = NIL;
        // Trust the count, not `popped`: a walk whose CAS failed has already
        // called the sink, and if the retry then finds the stack empty,
        // `popped` still names a block we never took (found by the loom
        // model `stack::push_pop_three_threads`).
        let taken = self.pop_batch(1, |_, index| popped = index);
        (taken == 1).then_some(popped)
    }

    /// Pops up to `max` blocks with one successful CAS. `sink(position,
    /// index)` is called for positions `0, 1, …` in stack order; after a
    /// failed CAS the walk restarts and the same positions are overwritten, so
    /// only the first `returned` calls of the final walk count.
    pub(crate) fn pop_batch(&self, max: u32, mut sink: impl FnMut(u32, u32)) -> u32 {
        let backoff = Backoff::new();
        // Acquire: pairs with the Release CAS of the push that put this head
        // there (and, through the head's release sequence, of all earlier
        // pushes), so the links we walk are at least as new as those pushes.
        let mut head = Head::unpack(self.head.load(Ordering::Acquire));
        loop {
            if head.index == NIL {
                return 0;
            }
            // Walk the chain. If another thread changes the stack meanwhile
            // we may read links of blocks that are no longer free — atomic
            // loads of metadata, harmless — and the CAS below fails.
            let mut taken = 0;
            let mut cursor = head.index;
            while taken < max && cursor != NIL {
                sink(taken, cursor);
                taken += 1;
                cursor = self.next_of(cursor);
            }
            // Success: Acquire, pairs with the Release CAS of the pushes
            // that published these blocks (the new owner reads their
            // contents). Failure: Acquire, because the value becomes the head
            // whose links we walk next.
            match self.head.compare_exchange_weak(
                head.pack(),
                head.successor(cursor).pack(),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return taken,
                Err(actual) => {
                    head = Head::unpack(actual);
                    backoff.spin();
                }
            }
        }
    }

    /// Detaches the whole stack with one successful CAS — the head becomes
    /// empty, with the tag bumped like any other operation's — and hands
    /// every detached block to `sink`, top first; returns how many there
    /// were. The blocks are then the caller's, exactly as after a pop.
    ///
    /// The walk reads a block's link *before* calling `sink` with it, so
    /// `sink` may relink the blocks it has already been given (to build
    /// chains of its own for [`push_chain`](Self::push_chain)).
    pub(crate) fn take_all(&self, mut sink: impl FnMut(u32)) -> u32 {
        let backoff = Backoff::new();
        // Relaxed: only a value for the CAS to validate; nothing is read
        // through it before the CAS succeeds (unlike `pop_batch`, which
        // walks before its CAS).
        let mut head = Head::unpack(self.head.load(Ordering::Relaxed));
        loop {
            if head.index == NIL {
                return 0;
            }
            // Success: AcqRel.
            // - Acquire pairs with the Release CAS of the pushes that put
            //   these blocks here (and, through the head's release sequence,
            //   of all earlier pushes), as in `pop_batch`: the walk below
            //   sees their links, and the caller owns their contents.
            // - Release: a thread whose pop (Acquire) reads the empty head
            //   written here, or any later head in its release sequence,
            //   sees everything sequenced before this CAS. `trim.rs` relies
            //   on it: the trim's "in progress" mark, made just before, is
            //   then visible to a dry path that found this stack empty.
            // Failure: Relaxed, the value is only used to retry.
            match self.head.compare_exchange_weak(
                head.pack(),
                head.successor(NIL).pack(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => {
                    head = Head::unpack(actual);
                    backoff.spin();
                }
            }
        }
        // The blocks are ours now: nobody else reads or writes their links
        // until we push them again, so the walk cannot race. It is bounded by
        // the capacity all the same, so a corrupted (cyclic) chain cannot
        // hang the caller.
        let mut taken = 0;
        let mut cursor = head.index;
        while cursor != NIL && taken < self.capacity {
            let next = self.next_of(cursor);
            sink(cursor);
            taken += 1;
            cursor = next;
        }
        debug_assert_eq!(cursor, NIL, "the stack held more blocks than the class has");
        taken
    }

    /// Whether the stack looked empty a moment ago: a hint (no ordering), for
    /// skipping work that would find nothing.
    pub(crate) fn looks_empty(&self) -> bool {
        // Relaxed: a hint; whoever acts on a non-empty stack validates with a
        // CAS of its own.
        Head::unpack(self.head.load(Ordering::Relaxed)).index == NIL
    }

    /// Entries on the stack, counted by walking it: for tests and models,
    /// on a quiescent stack (bounded by the capacity, so a cyclic chain
    /// reads as more than the stack can hold rather than hanging).
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        let mut len = 0;
        let mut cursor = self.head().index;
        while cursor != NIL && len <= u64::from(self.capacity) {
            len += 1;
            cursor = self.next_of(cursor);
        }
        len
    }

    /// The entry on top a moment ago, without taking it (`None`: empty).
    /// Whoever acts on it validates with an operation of its own.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u32> {
        // Acquire: pairs with the Release CAS that put this entry on top, as
        // a pop's load does; and an empty head read from a `take_all`
        // synchronises with it (which `ClassPool::retry_while_trimmed`
        // relies on, as for a pop).
        let index = Head::unpack(self.head.load(Ordering::Acquire)).index;
        (index != NIL).then_some(index)
    }

    /// The current head (for tests and models).
    #[cfg(test)]
    pub(crate) fn head(&self) -> Head {
        Head::unpack(self.head.load(Ordering::Acquire))
    }

    /// A compare-and-swap on the head exactly as a pop does it, for the ABA
    /// model: `Ok` if `expected` was still the head.
    #[cfg(test)]
    pub(crate) fn try_replace_head(&self, expected: Head, next: u32) -> Result<(), Head> {
        self.head
            .compare_exchange(expected.pack(), expected.successor(next).pack(), Ordering::Acquire, Ordering::Acquire)
            .map(|_| ())
            .map_err(Head::unpack)
    }
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    struct Fixture {
        // A Vec, not a Box: moving a Box into the fixture would retag it as
        // unique and (under Stacked Borrows) invalidate the stack's pointer.
        _links: Vec<AtomicU32>,
        stack: TaggedStack,
    }

    fn fixture(capacity: u32) -> Fixture {
        let links: Vec<AtomicU32> = (0..capacity).map(|_| AtomicU32::new(0)).collect();
        // SAFETY: `links` holds `capacity` atomics and lives in the fixture
        // next to the stack.
        let stack = unsafe { TaggedStack::new(links.as_ptr(), capacity) };
        Fixture { _links: links, stack }
    }

    #[test]
    fn head_packs_and_unpacks() {
        for (index, tag) in [(0, 0), (NIL, 0), (7, u32::MAX), (u32::MAX - 1, 12345)] {
            let h = Head { index, tag };
            assert_eq!(Head::unpack(h.pack()), h);
        }
        // The tag wraps instead of overflowing into the index.
        let h = Head { index: 3, tag: u32::MAX }.successor(4);
        assert_eq!(h, Head { index: 4, tag: 0 });
    }

    #[test]
    fn push_pop_is_lifo_and_bumps_the_tag() {
        let f = fixture(8);
        assert_eq!(f.stack.pop(), None);
        // SAFETY: indices < 8, each pushed once.
        unsafe {
            f.stack.push(1);
            f.stack.push(5);
        }
        assert_eq!(f.stack.len(), 2);
        assert_eq!(f.stack.head(), Head { index: 5, tag: 2 });
        assert_eq!(f.stack.pop(), Some(5));
        assert_eq!(f.stack.pop(), Some(1));
        assert_eq!(f.stack.pop(), None);
        assert_eq!(f.stack.head().tag, 4);
        assert_eq!(f.stack.len(), 0);
    }

    #[test]
    fn chains_go_on_and_come_off_in_one_piece() {
        let f = fixture(16);
        // SAFETY: indices < 16, owned by the test, chain 2 → 3 → 4.
        unsafe {
            f.stack.push(9);
            f.stack.set_link(2, 3);
            f.stack.set_link(3, 4);
            f.stack.push_chain(2, 4);
        }
        assert_eq!(f.stack.len(), 4);
        let mut got = [NIL; 3];
        assert_eq!(f.stack.pop_batch(3, |pos, idx| got[pos as usize] = idx), 3);
        assert_eq!(got, [2, 3, 4]);
        // The sink writes by position: a retried walk (a failed, possibly
        // spurious, weak CAS) overwrites the same positions.
        let mut rest = [NIL; 10];
        assert_eq!(f.stack.pop_batch(10, |pos, idx| rest[pos as usize] = idx), 1);
        assert_eq!(rest[0], 9);
        assert_eq!(f.stack.pop_batch(10, |_, _| unreachable!()), 0);
    }

    #[test]
    fn a_stale_head_cannot_win() {
        // The ABA interleaving, sequentially: read head A (link B); pop A,
        // pop B, push A back; the stale CAS must fail although A is on top.
        let f = fixture(4);
        // SAFETY: indices < 4, pushed once each.
        unsafe {
            f.stack.push(1); // B
            f.stack.push(0); // A
        }
        let stale = f.stack.head();
        let stale_next = f.stack.next_of(stale.index);
        assert_eq!((stale.index, stale_next), (0, 1));
        assert_eq!(f.stack.pop(), Some(0));
        assert_eq!(f.stack.pop(), Some(1));
        // SAFETY: 0 was just popped, so it is ours.
        unsafe { f.stack.push(0) };
        assert_eq!(f.stack.head().index, 0);
        let result = f.stack.try_replace_head(stale, stale_next);
        #[cfg(not(lockfree_slab_no_aba_tag))]
        assert!(result.is_err(), "a stale head won the CAS");
        let _ = result;
    }

    #[test]
    fn take_all_detaches_everything_in_stack_order_and_bumps_the_tag() {
        let f = fixture(8);
        assert_eq!(f.stack.take_all(|_| unreachable!("empty")), 0);
        // SAFETY: indices < 8, each pushed once.
        unsafe {
            f.stack.push(3);
            f.stack.push(6);
            f.stack.push(1);
        }
        let tag = f.stack.head().tag;
        let mut got = Vec::new();
        assert_eq!(f.stack.take_all(|i| got.push(i)), 3);
        assert_eq!(got, [1, 6, 3], "top first");
        assert_eq!(f.stack.head(), Head { index: NIL, tag: tag + 1 });
        assert_eq!(f.stack.len(), 0);
        assert!(f.stack.looks_empty());
        // The links still chain the blocks in stack order: the whole set goes
        // back with one push_chain, without relinking.
        // SAFETY: 1 → 6 → 3 were detached above, so they are ours.
        unsafe { f.stack.push_chain(1, 3) };
        assert_eq!(f.stack.len(), 3);
        assert_eq!([f.stack.pop(), f.stack.pop(), f.stack.pop(), f.stack.pop()], [Some(1), Some(6), Some(3), None]);
    }

    #[test]
    fn take_all_lets_the_sink_relink_what_it_was_given() {
        let f = fixture(8);
        // SAFETY: indices < 8, each pushed once.
        unsafe {
            for i in [0, 5, 2, 7] {
                f.stack.push(i);
            }
        }
        // Keep the even blocks, chain the odd ones in a chain of our own.
        let (mut odd, mut even) = (Chain::EMPTY, Vec::new());
        let taken = f.stack.take_all(|i| {
            if i % 2 == 0 {
                even.push(i);
            } else {
                // SAFETY: the block was detached, so it is ours.
                unsafe { odd.append(&f.stack, i) };
            }
        });
        assert_eq!((taken, even.as_slice()), (4, &[2, 0][..]));
        // SAFETY: the odd blocks, detached and linked 7 → 5 above.
        unsafe { odd.push_onto(&f.stack) };
        assert_eq!([f.stack.pop(), f.stack.pop(), f.stack.pop()], [Some(7), Some(5), None]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "too many iterations for Miri; loom covers the interleavings")]
    fn threads_neither_lose_nor_duplicate_blocks() {
        const CAP: u32 = 256;
        const THREADS: usize = 4;
        let f = Arc::new(fixture(CAP));
        for i in 0..CAP {
            // SAFETY: each index < CAP pushed once.
            unsafe { f.stack.push(i) };
        }
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for round in 0..20_000 {
                        if (round + t) % 3 != 0 {
                            let mut batch = [NIL; 8];
                            let n = f.stack.pop_batch(8, |p, i| batch[p as usize] = i);
                            held.extend_from_slice(&batch[..n as usize]);
                        } else if let Some(i) = f.stack.pop() {
                            held.push(i);
                        }
                        while held.len() > 16 {
                            let chain: Vec<u32> = held.drain(..4).collect();
                            // SAFETY: we popped these, so they are ours;
                            // linked in order before the push.
                            unsafe {
                                for w in chain.windows(2) {
                                    f.stack.set_link(w[0], w[1]);
                                }
                                f.stack.push_chain(chain[0], chain[3]);
                            }
                        }
                    }
                    held
                })
            })
            .collect();
        let mut all: Vec<u32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let mut rest = Vec::new();
        while let Some(i) = f.stack.pop() {
            rest.push(i);
        }
        all.extend(rest);
        let unique: HashSet<u32> = all.iter().copied().collect();
        assert_eq!(all.len(), CAP as usize, "blocks lost or duplicated");
        assert_eq!(unique.len(), CAP as usize, "a block was handed out twice");
    }
}
