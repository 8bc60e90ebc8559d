//! Loom models of the lock-free protocols, one file per protocol.
//!
//! Compiled into the crate (so they reach `pub(crate)` internals) only under
//! `--cfg lockfree_slab_loom`; run them with `.ci/loom.sh`, which sets the
//! preemption bound and also checks that the ABA and payload models *fail*
//! when the tag or the push's `Release` is switched off.
//!
//! Every model prints one line, `loom model NAME: N interleavings in T`, so
//! the cost of each model is visible in CI logs.

use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};
use std::sync::Arc as StdArc;
use std::time::Instant;

use crate::class::runs::Runs;
use crate::class::stack::{TaggedStack, NIL};
use crate::class::states::BlockStates;
use crate::class::ClassPool;
use crate::sync::{AtomicU32, AtomicU64, AtomicU8};

mod arena; //     the bump arena's cursor: fetch_add, rollback and CAS paths near exhaustion
mod cache; //     magazine refill / flush racing with another thread's frees
mod carver; //    carving racing with pops near exhaustion
mod checks; //    racing double frees; the block states across owners
mod exit; //      thread exit returns cached blocks; allocator drop
mod growth; //    racing to publish the first extension region
mod lazy; //      first use of a const-constructed allocator from two threads
mod payload; //   previous owner's writes happen-before the next owner's reads
mod runs; //      batches by address: ABA on the run stack, a free racing a take, payload across a flush, trim
mod stack; //     push / pop / push_chain, and the ABA interleaving
mod trim; //      trim racing with take / give-back, carving, the dry path and refills

/// Runs `model` under loom's exhaustive scheduler (bounded by
/// `LOOM_MAX_PREEMPTIONS` and the other `LOOM_*` variables, read by
/// [`loom::model::Builder::new`]) and prints how many interleavings it
/// explored and how long that took.
///
/// The counter is std's atomic on purpose: it counts executions of the model
/// from outside, and must not itself become part of the model.
pub(crate) fn check<F>(name: &str, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    check_with(name, loom::model::Builder::new(), model);
}

/// [`check`] with a builder the model has adjusted (e.g. `max_branches`).
pub(crate) fn check_with<F>(name: &str, builder: loom::model::Builder, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = StdArc::new(AtomicUsize::new(0));
    let counted = StdArc::clone(&runs);
    let start = Instant::now();
    builder.check(move || {
        counted.fetch_add(1, StdOrdering::Relaxed);
        model();
    });
    println!("loom model {name}: {} interleavings in {:.2?}", runs.load(StdOrdering::Relaxed), start.elapsed());
}

/// A stack over `capacity` blocks with its own link array.
pub(crate) struct StackFixture {
    _links: Vec<AtomicU32>,
    pub(crate) stack: TaggedStack,
}

impl StackFixture {
    /// An empty stack; then `on_stack` is pushed in order (the last on top).
    pub(crate) fn new(capacity: u32, on_stack: &[u32]) -> Self {
        let links: Vec<AtomicU32> = (0..capacity).map(|_| AtomicU32::new(NIL)).collect();
        // SAFETY: `links` holds `capacity` atomics and lives next to the
        // stack, in the same fixture, for as long as the stack.
        let stack = unsafe { TaggedStack::new(links.as_ptr(), capacity) };
        for &i in on_stack {
            assert!(i < capacity);
            // SAFETY: in range; the caller lists each block once.
            unsafe { stack.push(i) };
        }
        StackFixture { _links: links, stack }
    }

    /// Pops everything left, with a bound so that a corrupted (cyclic) stack
    /// fails the model instead of hanging it.
    pub(crate) fn drain(&self, capacity: u32) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(i) = self.stack.pop() {
            out.push(i);
            assert!(out.len() <= capacity as usize, "the stack holds more blocks than exist: {out:?}");
        }
        out
    }
}

/// 64 bytes aligned to 64: the unit of a fixture's span, so that the trim
/// models' "pages" (32 bytes) start on a page boundary.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line([u8; 64]);

/// One class's pool (runs, carver, geometry) over a private span.
pub(crate) struct PoolFixture {
    _span: Vec<Line>,
    _words: Vec<AtomicU64>,
    _links: Vec<AtomicU32>,
    _states: Vec<AtomicU8>,
    pub(crate) pool: ClassPool,
}

impl PoolFixture {
    /// A fresh pool of `capacity` blocks of 16 bytes: nothing carved yet.
    pub(crate) fn new(capacity: u32) -> Self {
        Self::with_checks(capacity, false)
    }

    /// As [`new`](Self::new), with the checks' block states if `checks`.
    pub(crate) fn with_checks(capacity: u32, checks: bool) -> Self {
        // Lines keep every 16-byte block 16-aligned and the span 64-aligned.
        let mut span: Vec<Line> = vec![Line([0; 64]); (capacity as usize * 16).div_ceil(64)];
        let runs = Runs::count_for(capacity);
        let words: Vec<AtomicU64> = (0..runs).map(|_| AtomicU64::new(0)).collect();
        let links: Vec<AtomicU32> = (0..runs).map(|_| AtomicU32::new(NIL)).collect();
        let states: Vec<AtomicU8> = (0..if checks { capacity } else { 0 }).map(|_| AtomicU8::new(0)).collect();
        // SAFETY: the states, if any, are one per block and live in the
        // fixture next to the pool.
        let block_states = if checks { unsafe { BlockStates::new(states.as_ptr()) } } else { BlockStates::NONE };
        // SAFETY: the span holds `capacity` 16-byte blocks, and the run
        // arrays a zero word and a link per run; all live in the fixture next
        // to the pool.
        let pool = unsafe {
            let runs = Runs::new(words.as_ptr(), links.as_ptr(), capacity);
            ClassPool::new(16, capacity, span.as_mut_ptr().cast::<u8>(), runs, block_states)
        };
        PoolFixture { _span: span, _words: words, _links: links, _states: states, pool }
    }

    /// Takes every block the pool can still hand out (free ones, then
    /// fresh ones), with a bound so that a corrupted (cyclic) run stack
    /// fails the model instead of hanging it.
    pub(crate) fn drain(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for _ in 0..=self.pool.capacity() {
            match self.pool.take_one() {
                Some(block) => out.push(self.pool.index_of(block)),
                None => return out,
            }
        }
        panic!("the pool holds more blocks than exist: {out:?}");
    }
}

/// A pool whose blocks' contents are loom cells (one per block), so loom
/// tracks who wrote them and who may read them.
pub(crate) struct Payloads {
    pub(crate) f: PoolFixture,
    pub(crate) cells: Vec<loom::cell::UnsafeCell<u64>>,
}

// SAFETY: a cell is accessed only by the thread that holds its block, which
// is exactly what the models check; loom flags any access that is not
// ordered after the previous owner's.
unsafe impl Sync for Payloads {}

impl Payloads {
    /// `f` with one zeroed cell per block.
    pub(crate) fn new(f: PoolFixture) -> Self {
        let cells = (0..f.pool.capacity()).map(|_| loom::cell::UnsafeCell::new(0)).collect();
        Payloads { f, cells }
    }
}

/// Asserts that `got` is exactly the blocks `0..capacity`, each once.
#[track_caller]
pub(crate) fn assert_all_blocks(mut got: Vec<u32>, capacity: u32) {
    got.sort_unstable();
    assert_eq!(got, (0..capacity).collect::<Vec<_>>(), "blocks lost or handed out twice");
}
