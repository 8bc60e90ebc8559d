//! The fuzz driver: interprets any byte string as a program for one or two
//! allocators and checks every answer against a model. One copy, shared by
//! the `cargo fuzz` target (`tests/fuzz/fuzz_targets/slab.rs`) and by the
//! bounded run in every `cargo test` (`tests/it/fuzz_smoke.rs`), both of which
//! include this file with `#[path]`.
//!
//! # The program
//!
//! Byte 0 picks the first allocator's configuration from [`CONFIGS`]; byte 1,
//! if odd, adds a second allocator (configuration `byte1 / 2`). Then each
//! byte is an operation (low four bits) on one of the allocators (bit 4),
//! followed by the bytes that operation reads (sizes, alignments, which
//! block); reading past the end yields zeros, so every byte string is a valid
//! program. Operations: allocate, allocate zeroed, a burst of allocations
//! (to run a class dry), free, rewrite, read back, `GlobalAlloc::realloc`,
//! `Allocator::grow` / `grow_zeroed` / `shrink`, `flush_thread_cache`, a
//! statistics checkpoint, and two that involve a second thread: a *handoff*
//! (blocks go to a worker thread, which frees them — cross-thread frees —
//! and allocates new ones that come back) and a *storm* (main thread and
//! worker run their own programs at the same time on disjoint blocks).
//!
//! # The model and what is checked
//!
//! - Every live block, with its allocator, layout, where it came from (a
//!   class of the pool, the system fallback, or a dangling zero-size
//!   pointer) and the pattern it was filled with. Contents are checked on
//!   every read, free and resize (the preserved prefix), zeroed memory on
//!   every zeroed allocation and `grow_zeroed`.
//! - No two live blocks overlap (a pool block occupies its whole class
//!   size; the fill covers it too), a pool block is owned by its allocator
//!   only, reports its class size, and is aligned.
//! - Where the answer is determined, the exact answer: on one thread (and
//!   on the worker during a handoff, which is told what the main thread's
//!   cache holds) a request of class `c` is served from the pool iff fewer
//!   than `capacity(c)` blocks are unavailable; otherwise the fallback
//!   answers (system block or `AllocError`), and a zero-size request gets a
//!   dangling pointer. Resizing stays in place exactly when the new layout
//!   maps to the block's class. During a storm the answers are only checked
//!   to be *possible* ones.
//! - At checkpoints (and after every handoff and storm), `stats()` against
//!   the model, exactly: per class in use, allocations, frees, requested
//!   bytes, handed-out bytes, fallbacks; oversize served and refused;
//!   `is_consistent()`; carved ≤ capacity; in use = the live pool blocks of
//!   the model.
//! - At the end, everything is freed and the caches flushed: in use 0,
//!   nothing cached, every carved block on the stack; for small pools every
//!   class then hands out exactly its capacity, distinct blocks, and not one
//!   more.
//!
//! Any violation panics with a message that says what differed.

#![allow(dead_code)] // the fuzz target and the smoke test use different parts

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::fmt;
use std::ptr::NonNull;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::thread;

use allocator_api2::alloc::Allocator;
use lockfree_slab::{natural_alignment, Builder, Fallback, Profile, SlabAllocator, MAX_ALIGN};

/// A configuration the fuzzer may pick: a name (for messages) and a
/// builder. Every model fact (classes, capacities, fallback) is read from the
/// built allocator, so adding a configuration is one line here.
pub type Config = (&'static str, fn() -> Builder);

/// Three small classes in 2 KiB: 25, 12 and 8 blocks, so they run dry fast.
fn tiny() -> Builder {
    SlabAllocator::builder().size_classes(&[16, 48, 128]).split(&[20, 30, 50]).capacity(2048)
}

/// The configurations, each built fresh for every program. A variant is one
/// more line: e.g. for the `Builder::checks(true)` option (double-free and
/// invalid-pointer detection, in progress elsewhere),
/// `("tiny, error fallback, checks", || tiny().cache_depth(4).checks(true).fallback(Fallback::Error)),`.
/// (Programs pick one as `byte % CONFIGS.len()`, so a new line sends saved
/// inputs to other configurations: they stay valid programs, but a saved
/// regression may then test something else.)
pub const CONFIGS: &[Config] = &[
    ("tiny, error fallback, magazines of 4, 2 cached threads", || {
        tiny().cache_depth(4).max_cached_threads(2).fallback(Fallback::Error)
    }),
    ("tiny, error fallback, no thread caches", || tiny().cache_depth(0).fallback(Fallback::Error)),
    ("tiny, system fallback, magazines of 2, one cached thread", || {
        tiny().cache_depth(2).max_cached_threads(1).fallback(Fallback::System)
    }),
    ("aligned classes 8..8192 (natural alignment 8..4096), system fallback", || {
        SlabAllocator::builder()
            .size_classes(&[8, 24, 96, 4096, 8192])
            .split(&[10, 10, 10, 30, 40])
            .capacity(40 << 10)
            .cache_depth(8)
            .fallback(Fallback::System)
    }),
    ("page classes 4096 and 16384 (zeroing by carving), error fallback", || {
        SlabAllocator::builder()
            .size_classes(&[4096, 16384])
            .capacity(64 << 10)
            .cache_depth(2)
            .fallback(Fallback::Error)
    }),
    ("byte-scaled magazines (depths 32, 8, 2), error fallback", || {
        SlabAllocator::builder()
            .size_classes(&[16, 64, 256])
            .capacity(8 << 10)
            .cache_depth(2)
            .cache_bytes(512)
            .fallback(Fallback::Error)
    }),
    ("Profile::Embedded (1 MiB, populated, error fallback)", || SlabAllocator::builder().profile(Profile::Embedded)),
    ("Profile::Balanced in 64 KiB (system fallback)", || {
        SlabAllocator::builder().profile(Profile::Balanced).capacity(64 << 10)
    }),
    ("Profile::General in 16 MiB (56 classes, deep magazines)", || {
        SlabAllocator::builder().profile(Profile::General).capacity(16 << 20)
    }),
    // Not `huge_pages(true)`: the advice changes no answer, and faulting in
    // (and compacting for) a 2 MiB page per program costs ten programs.
    ("Profile::LatencyOptimised in 16 KiB (populated)", || {
        SlabAllocator::builder().profile(Profile::LatencyOptimised).capacity(16 << 10)
    }),
    ("tiny, checks on, magazines of 4, system fallback", || {
        tiny().cache_depth(4).fallback(Fallback::System).checks(true)
    }),
    ("tiny, growth by 2 reservations, magazines of 2, error fallback", || {
        tiny().cache_depth(2).growth(2).fallback(Fallback::Error)
    }),
];

/// Most operations in one program (libFuzzer's inputs are 4 KiB by default).
const MAX_STEPS: usize = 4096;
/// Most live blocks one thread holds; allocations beyond it become frees.
const MAX_LIVE: usize = 256;
/// Pools with at most this many blocks in all are drained at the end.
const DRAIN_LIMIT: u64 = 4096;

/// What one or more programs exercised: the smoke test prints it and checks
/// that every kind of answer was reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub programs: u64,
    pub steps: u64,
    pub from_pool: u64,
    pub from_system: u64,
    pub dangling: u64,
    pub failed: u64,
    pub frees: u64,
    /// Frees by the worker thread (of blocks the main thread allocated, or
    /// its own).
    pub worker_frees: u64,
    pub resized_in_place: u64,
    pub resized_by_moving: u64,
    pub handoffs: u64,
    pub storms: u64,
    pub checkpoints: u64,
    pub drained_classes: u64,
}

impl Summary {
    pub fn add(&mut self, o: &Summary) {
        self.programs += o.programs;
        self.steps += o.steps;
        self.from_pool += o.from_pool;
        self.from_system += o.from_system;
        self.dangling += o.dangling;
        self.failed += o.failed;
        self.frees += o.frees;
        self.worker_frees += o.worker_frees;
        self.resized_in_place += o.resized_in_place;
        self.resized_by_moving += o.resized_by_moving;
        self.handoffs += o.handoffs;
        self.storms += o.storms;
        self.checkpoints += o.checkpoints;
        self.drained_classes += o.drained_classes;
    }
}

/// Runs the program `data`; panics if the allocator and the model disagree.
pub fn run(data: &[u8]) -> Summary {
    let mut input = Bytes::new(data);
    let first = input.byte();
    let second = input.byte();
    let mut chosen = vec![CONFIGS[first as usize % CONFIGS.len()]];
    if second & 1 == 1 {
        chosen.push(CONFIGS[(second >> 1) as usize % CONFIGS.len()]);
    }
    let slabs: Vec<SlabAllocator> = chosen
        .iter()
        .map(|(name, builder)| builder().build().unwrap_or_else(|e| panic!("configuration {name:?}: {e}")))
        .collect();
    let infos: Vec<Info> = slabs.iter().zip(&chosen).map(|(slab, (name, _))| Info::of(slab, name)).collect();
    let shared = Arc::new(Shared { slabs, infos });

    let mut main = Actor::new(&shared.slabs, &shared.infos, MAIN_TAGS);
    main.occupied = Some(main.in_use());
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        main.summary.steps += 1;
        let op = input.byte();
        match op & 0x0F {
            12 => main.checkpoint("checkpoint"),
            13 | 14 => main.job(&shared, op & 0x0F == 14, &mut input),
            _ => main.step(op, &mut input),
        }
    }
    // Everything back: the worker holds nothing between jobs (it flushes
    // its caches after each), the main thread frees all and flushes.
    main.free_all();
    for slab in &shared.slabs {
        slab.flush_thread_cache();
    }
    main.checkpoint("end");
    main.check_empty();
    main.drain();
    main.summary.programs = 1;
    main.summary
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

/// The program's bytes; zeros once they run out.
struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next `len` bytes (fewer at the end), as a sub-program.
    fn take(&mut self, len: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        head
    }
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// What the model knows of one allocator; read from the allocator itself
/// after `build`, so a configuration is one line in [`CONFIGS`].
struct Info {
    name: &'static str,
    classes: Vec<usize>,
    /// Blocks per class in all, growth reservations included.
    capacity: Vec<u64>,
    /// Blocks per class in one reservation.
    per_reservation: Vec<u64>,
    fallback: Fallback,
    /// Whether checks are on: only then are requested bytes counted.
    checks: bool,
}

impl Info {
    fn of(slab: &SlabAllocator, name: &'static str) -> Info {
        let stats = slab.stats();
        let reservations = 1 + u64::from(stats.growth_limit);
        Info {
            name,
            classes: stats.classes.iter().map(|c| c.block_size).collect(),
            capacity: stats.classes.iter().map(|c| c.capacity * reservations).collect(),
            per_reservation: stats.classes.iter().map(|c| c.capacity).collect(),
            fallback: slab.fallback().expect("a built allocator has a fallback"),
            checks: slab.has_checks(),
        }
    }

    /// The class a request maps to, by the documented rule (not by asking
    /// the allocator): the smallest class that holds the size (0 counts as
    /// 1) and whose natural alignment is enough; none above a page.
    fn class_for(&self, layout: Layout) -> Option<usize> {
        if layout.align() > MAX_ALIGN {
            return None;
        }
        self.classes.iter().position(|&b| b >= layout.size() && natural_alignment(b) >= layout.align())
    }
}

/// A program's allocators and what the model knows of them; the worker
/// thread holds a reference for the length of a job.
struct Shared {
    slabs: Vec<SlabAllocator>,
    infos: Vec<Info>,
}

/// Where a block came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Pool(usize),
    System,
    /// A zero-size request answered with an aligned dangling pointer.
    Dangling,
}

/// The answer to one allocation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Got(Src),
    Failed,
}

/// A live block.
struct Block {
    slab: usize,
    ptr: NonNull<u8>,
    layout: Layout,
    src: Src,
    /// Bytes filled with `tag`'s pattern (the whole class block for pool
    /// blocks).
    filled: usize,
    tag: u64,
}

/// Blocks handed between the main thread and the worker.
struct Handoff(Vec<Block>);

// SAFETY: a block is memory that its holder owns outright until it frees
// it; the allocators are `Sync` and free blocks from any thread (the system
// allocator too). Moving the list moves that ownership to the receiving
// thread; the sender keeps no copy.
unsafe impl Send for Handoff {}

/// Counter deltas, per allocator; the main thread's are the totals.
#[derive(Clone, Debug, Default)]
struct Counters {
    allocations: Vec<i64>,
    frees: Vec<i64>,
    requested: Vec<i64>,
    fallbacks: Vec<i64>,
    oversize_served: i64,
    oversize_refused: i64,
}

impl Counters {
    fn new(classes: usize) -> Self {
        Counters {
            allocations: vec![0; classes],
            frees: vec![0; classes],
            requested: vec![0; classes],
            fallbacks: vec![0; classes],
            ..Counters::default()
        }
    }

    fn add(&mut self, other: &Counters) {
        let sum = |a: &mut Vec<i64>, b: &Vec<i64>| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        sum(&mut self.allocations, &other.allocations);
        sum(&mut self.frees, &other.frees);
        sum(&mut self.requested, &other.requested);
        sum(&mut self.fallbacks, &other.fallbacks);
        self.oversize_served += other.oversize_served;
        self.oversize_refused += other.oversize_refused;
    }

    fn in_use(&self, class: usize) -> i64 {
        self.allocations[class] - self.frees[class]
    }
}

/// Tags (fill patterns) are unique per block: each thread and each job
/// counts in its own range.
const MAIN_TAGS: u64 = 1;
const WORKER_TAGS: u64 = 1 << 62;

/// One thread's view: its blocks and its share of the counters, and (when
/// the answers are determined) how many blocks of each class are not
/// available to it.
struct Actor<'a> {
    slabs: &'a [SlabAllocator],
    infos: &'a [Info],
    blocks: Vec<Block>,
    /// Start → end of this thread's live blocks (pool and system).
    spans: BTreeMap<usize, usize>,
    counters: Vec<Counters>,
    /// Per allocator, per class: blocks this thread cannot get (in use
    /// anywhere, or cached by the other thread). `None`: not determined
    /// (during a storm), so answers are only checked to be possible.
    occupied: Option<Vec<Vec<i64>>>,
    next_tag: u64,
    summary: Summary,
}

impl<'a> Actor<'a> {
    fn new(slabs: &'a [SlabAllocator], infos: &'a [Info], first_tag: u64) -> Self {
        Actor {
            slabs,
            infos,
            blocks: Vec::new(),
            spans: BTreeMap::new(),
            counters: infos.iter().map(|i| Counters::new(i.classes.len())).collect(),
            occupied: None,
            next_tag: first_tag,
            summary: Summary::default(),
        }
    }

    /// In use per allocator and class, from the counters (the totals, on
    /// the main thread).
    fn in_use(&self) -> Vec<Vec<i64>> {
        self.counters.iter().map(|c| (0..c.allocations.len()).map(|k| c.in_use(k)).collect()).collect()
    }

    /// Names allocator `a` in messages (formatted only when one is shown).
    fn context(&self, a: usize) -> Ctx<'a> {
        Ctx { index: a, info: &self.infos[a] }
    }

    /// One operation of the program (every opcode but the main thread's
    /// checkpoint and thread jobs, which `run` intercepts).
    fn step(&mut self, op: u8, input: &mut Bytes) {
        let a = usize::from(op >> 4) % self.slabs.len();
        match op & 0x0F {
            0..=2 | 13 | 14 => {
                let layout = self.pick_layout(a, input);
                self.allocate(a, layout, false);
            }
            3 => {
                let layout = self.pick_layout(a, input);
                self.allocate(a, layout, true);
            }
            4 | 5 => {
                if let Some(i) = self.pick(input) {
                    self.free(i);
                }
            }
            6 => {
                if let Some(i) = self.pick(input) {
                    self.verify(i, "rewrite");
                    self.refill(i);
                }
            }
            7 | 12 => {
                if let Some(i) = self.pick(input) {
                    self.verify(i, "read back");
                }
            }
            8 => self.resize(Resize::Realloc, input),
            9 => {
                let kind = if input.byte() & 1 == 0 { Resize::Grow } else { Resize::GrowZeroed };
                self.resize(kind, input);
            }
            10 => self.resize(Resize::Shrink, input),
            11 => self.slabs[a].flush_thread_cache(),
            _ => {
                // A burst: the same layout up to 64 times, to run a class dry.
                let layout = self.pick_layout(a, input);
                for _ in 0..input.byte() % 64 + 1 {
                    self.allocate(a, layout, false);
                }
            }
        }
    }

    /// Sizes around the class boundaries, small and medium sizes, zero, and
    /// requests larger than any class; alignments 1 to 16384.
    fn pick_layout(&self, a: usize, input: &mut Bytes) -> Layout {
        let classes = &self.infos[a].classes;
        let largest = *classes.last().expect("at least one class");
        let s = input.byte();
        let size = match s {
            0..=95 => usize::from(s),
            96..=175 => {
                let class = classes[usize::from(input.byte()) % classes.len()];
                (class + usize::from(s % 3)).saturating_sub(1)
            }
            176..=231 => usize::from(input.u16()) % 10_000,
            232..=247 => largest + 1 + usize::from(input.byte()) * 16,
            _ => (64 << 10) + usize::from(input.u16()),
        };
        let t = input.byte();
        let align = match t {
            0..=127 => 1 << (t % 4),
            128..=199 => 16,
            200..=247 => 1 << (5 + t % 8),
            _ => 8192 << (t % 2),
        };
        Layout::from_size_align(size, align).expect("sizes stay far below isize::MAX")
    }

    fn pick(&self, input: &mut Bytes) -> Option<usize> {
        let b = input.byte();
        (!self.blocks.is_empty()).then(|| usize::from(b) % self.blocks.len())
    }

    /// The answer the model expects, or `None` when it is not determined.
    fn predict(&self, a: usize, class: Option<usize>, layout: Layout) -> Option<Outcome> {
        let occupied = self.occupied.as_ref()?;
        let info = &self.infos[a];
        let room = class.is_some_and(|c| occupied[a][c] < info.capacity[c] as i64);
        Some(match class {
            Some(c) if room => Outcome::Got(Src::Pool(c)),
            _ if layout.size() == 0 => Outcome::Got(Src::Dangling),
            _ if info.fallback == Fallback::System => Outcome::Got(Src::System),
            _ => Outcome::Failed,
        })
    }

    /// Checks an allocation's answer (possible, and the predicted one when
    /// determined) and counts it as the allocator should.
    fn judge(&mut self, a: usize, class: Option<usize>, layout: Layout, got: Outcome, what: &dyn fmt::Display) {
        let info = &self.infos[a];
        let possible = match got {
            Outcome::Got(Src::Pool(c)) => class == Some(c),
            Outcome::Got(Src::Dangling) => layout.size() == 0,
            Outcome::Got(Src::System) => layout.size() > 0 && info.fallback == Fallback::System,
            Outcome::Failed => layout.size() > 0 && info.fallback == Fallback::Error,
        };
        assert!(
            possible,
            "{}: {what} {layout:?} (class {class:?}) answered {got:?}, which is impossible",
            self.context(a)
        );
        if let Some(expected) = self.predict(a, class, layout) {
            assert_eq!(
                got,
                expected,
                "{}: {what} {layout:?} (class {class:?}, {:?} of {:?} unavailable) answered {got:?}, the model says {expected:?}",
                self.context(a),
                class.map(|c| self.occupied.as_ref().unwrap()[a][c]),
                class.map(|c| info.capacity[c]),
            );
        }
        match got {
            Outcome::Got(Src::Pool(_)) => self.summary.from_pool += 1,
            Outcome::Got(Src::System) => self.summary.from_system += 1,
            Outcome::Got(Src::Dangling) => self.summary.dangling += 1,
            Outcome::Failed => self.summary.failed += 1,
        }
        let counters = &mut self.counters[a];
        match (got, class) {
            (Outcome::Got(Src::Pool(c)), _) => {
                counters.allocations[c] += 1;
                counters.requested[c] += layout.size() as i64;
                if let Some(occupied) = &mut self.occupied {
                    occupied[a][c] += 1;
                }
            }
            (Outcome::Got(Src::Dangling), _) => {}
            (_, Some(c)) => counters.fallbacks[c] += 1,
            (Outcome::Got(Src::System), None) => counters.oversize_served += 1,
            (Outcome::Failed, None) => counters.oversize_refused += 1,
        }
    }

    /// Where a block that the allocator just handed out comes from.
    fn classify(&self, a: usize, ptr: NonNull<u8>, layout: Layout) -> Src {
        let slab = &self.slabs[a];
        if slab.owns(ptr.as_ptr()) {
            let size = slab.usable_size(ptr).expect("an owned block has a usable size");
            let class = self.infos[a].classes.iter().position(|&b| b == size);
            Src::Pool(class.unwrap_or_else(|| panic!("{}: usable size {size} is no class", self.context(a))))
        } else if layout.size() == 0 {
            Src::Dangling
        } else {
            Src::System
        }
    }

    fn allocate(&mut self, a: usize, layout: Layout, zeroed: bool) {
        if self.blocks.len() >= MAX_LIVE {
            let i = layout.size() % self.blocks.len();
            return self.free(i);
        }
        let class = self.infos[a].class_for(layout);
        let slab = &self.slabs[a];
        let result = if zeroed { slab.allocate_zeroed(layout) } else { slab.allocate(layout) };
        let got = match result {
            Ok(ptr) => Outcome::Got(self.classify(a, ptr, layout)),
            Err(_) => Outcome::Failed,
        };
        self.judge(a, class, layout, got, if zeroed { &"allocate_zeroed" } else { &"allocate" });
        if let (Ok(ptr), Outcome::Got(src)) = (result, got) {
            if zeroed {
                self.check_zero(a, ptr, 0..layout.size(), "allocate_zeroed");
            }
            self.adopt(a, ptr, layout, src);
        }
    }

    /// Checks a new block's placement and takes it into the model, filled.
    fn adopt(&mut self, a: usize, ptr: NonNull<u8>, layout: Layout, src: Src) {
        let ctx = self.context(a);
        let addr = ptr.as_ptr() as usize;
        assert_eq!(addr % layout.align(), 0, "{ctx}: {layout:?} at {addr:#x} is misaligned ({src:?})");
        let slab = &self.slabs[a];
        let filled = match src {
            Src::Pool(c) => {
                let size = self.infos[a].classes[c];
                assert_eq!(slab.usable_size(ptr), Some(size), "{ctx}: usable size of a block of class {size}");
                assert_eq!(slab.class_size_for(layout), Some(size), "{ctx}: class_size_for({layout:?})");
                size
            }
            Src::System => {
                assert_eq!(slab.usable_size(ptr), None, "{ctx}: a system block at {addr:#x} has a usable size");
                layout.size()
            }
            Src::Dangling => {
                assert_eq!(
                    addr,
                    layout.align(),
                    "{ctx}: a zero-size answer outside the pool is not the dangling pointer"
                );
                0
            }
        };
        for (b, other) in self.slabs.iter().enumerate() {
            if b != a {
                assert!(!other.owns(ptr.as_ptr()), "{ctx}: allocator {b} claims a block of allocator {a}");
            }
        }
        let tag = self.tag();
        let block = Block { slab: a, ptr, layout, src, filled, tag };
        self.insert_span(&block);
        // SAFETY: a fresh block that holds at least `filled` bytes (its
        // class size, or its layout's size), ours alone.
        unsafe { fill(ptr, filled, tag) };
        self.blocks.push(block);
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn insert_span(&mut self, block: &Block) {
        if block.src == Src::Dangling {
            return; // a dangling zero-size pointer occupies nothing
        }
        let start = block.ptr.as_ptr() as usize;
        let end = start + block.filled;
        if let Some((&s, &e)) = self.spans.range(..end).next_back() {
            assert!(
                e <= start,
                "{}: [{start:#x}, {end:#x}) ({:?}) overlaps the live block [{s:#x}, {e:#x})",
                self.context(block.slab),
                block.src
            );
        }
        self.spans.insert(start, end);
    }

    fn remove_span(&mut self, block: &Block) {
        if block.src != Src::Dangling {
            self.spans.remove(&(block.ptr.as_ptr() as usize));
        }
    }

    fn verify(&self, i: usize, what: &str) {
        let b = &self.blocks[i];
        // SAFETY: a live block of ours, filled over `filled` bytes.
        if let Err(at) = unsafe { check(b.ptr, b.filled, b.tag) } {
            panic!(
                "{}: {what}: the {:?} block {:?} at {:p} ({} bytes filled) was changed at offset {at}",
                self.context(b.slab),
                b.src,
                b.layout,
                b.ptr,
                b.filled
            );
        }
    }

    fn check_zero(&self, a: usize, ptr: NonNull<u8>, range: std::ops::Range<usize>, what: &str) {
        // SAFETY: the caller passes a range inside a block of ours.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr().add(range.start), range.len()) };
        // Compared a page at a time (memcmp), not byte by byte: the fuzzer
        // instruments every comparison the driver makes.
        if let Some(page) = bytes.chunks(ZEROS.len()).position(|c| c != &ZEROS[..c.len()]) {
            let at =
                range.start + page * ZEROS.len() + bytes[page * ZEROS.len()..].iter().position(|&b| b != 0).unwrap();
            panic!("{}: {what}: byte {at} of the block at {ptr:p} is not zero", self.context(a));
        }
    }

    fn refill(&mut self, i: usize) {
        let tag = self.tag();
        let b = &mut self.blocks[i];
        b.tag = tag;
        // SAFETY: a live block of ours that holds `filled` bytes.
        unsafe { fill(b.ptr, b.filled, tag) };
    }

    fn free(&mut self, i: usize) {
        self.verify(i, "free");
        let b = self.blocks.swap_remove(i);
        self.remove_span(&b);
        self.release(&b);
    }

    /// Deallocates a block (already out of the model's live set).
    fn release(&mut self, b: &Block) {
        self.summary.frees += 1;
        // SAFETY: allocated from this allocator with this layout (or
        // resized to it), freed once.
        unsafe { self.slabs[b.slab].deallocate(b.ptr, b.layout) };
        if let Src::Pool(c) = b.src {
            self.counters[b.slab].frees[c] += 1;
            if let Some(occupied) = &mut self.occupied {
                occupied[b.slab][c] -= 1;
            }
        }
    }

    fn free_all(&mut self) {
        while !self.blocks.is_empty() {
            self.free(self.blocks.len() - 1);
        }
    }

    /// `GlobalAlloc::realloc`, or the `Allocator` trait's `grow`,
    /// `grow_zeroed` and `shrink`, on a block picked by the program.
    fn resize(&mut self, kind: Resize, input: &mut Bytes) {
        let Some(i) = self.pick(input) else { return };
        let old = self.blocks[i].layout;
        let a = self.blocks[i].slab;
        let delta = match input.byte() {
            d @ 0..=191 => usize::from(d),
            d => usize::from(d) * 64,
        };
        let align = match kind {
            Resize::Realloc => old.align(),
            _ => match input.byte() {
                t @ 0..=191 => (old.align().max(1 << (t % 5)) >> (t % 2)).max(1),
                t => 1 << (t % 14),
            },
        };
        let size = match kind {
            Resize::Shrink => old.size().saturating_sub(delta),
            Resize::Realloc if input.byte() & 1 == 0 => old.size().saturating_sub(delta).max(1),
            _ => old.size() + delta,
        };
        let new = Layout::from_size_align(size, align).expect("small sizes");
        if kind == Resize::Realloc && old.size() == 0 {
            return; // GlobalAlloc never hands out zero-size blocks
        }
        self.verify(i, "before resize");
        let b = self.blocks.swap_remove(i);
        self.remove_span(&b);
        let class = self.infos[a].class_for(new);
        let in_place = matches!(b.src, Src::Pool(c) if class == Some(c));
        let by_system = kind == Resize::Realloc && b.src == Src::System && class.is_none();
        let slab = &self.slabs[a];
        // SAFETY: `b` is a live block of `slab` with layout `old`; the new
        // size is at least the old one for grow, at most for shrink, and
        // non-zero for realloc (as each method requires).
        let result: Result<NonNull<u8>, ()> = unsafe {
            match kind {
                Resize::Realloc => NonNull::new(GlobalAlloc::realloc(slab, b.ptr.as_ptr(), old, new.size())).ok_or(()),
                Resize::Grow => Allocator::grow(&slab, b.ptr, old, new).map(NonNull::cast).map_err(drop),
                Resize::GrowZeroed => Allocator::grow_zeroed(&slab, b.ptr, old, new).map(NonNull::cast).map_err(drop),
                Resize::Shrink => Allocator::shrink(&slab, b.ptr, old, new).map(NonNull::cast).map_err(drop),
            }
        };
        let what = ResizeOp { kind, old, new };
        let ctx = self.context(a);
        let ptr = match result {
            Err(()) => {
                assert!(!in_place && !by_system, "{ctx}: {what} failed, but it stays in place");
                self.judge(a, class, new, Outcome::Failed, &what);
                // The old block is untouched and still ours.
                self.insert_span(&b);
                self.blocks.push(b);
                let last = self.blocks.len() - 1;
                self.verify(last, "after a failed resize");
                return;
            }
            Ok(ptr) => ptr,
        };
        if in_place || by_system {
            self.summary.resized_in_place += 1;
        } else {
            self.summary.resized_by_moving += 1;
        }
        let src = if in_place {
            assert_eq!(ptr, b.ptr, "{ctx}: {what} within class {class:?} moved the block");
            b.src
        } else if by_system {
            assert!(!slab.owns(ptr.as_ptr()), "{ctx}: {what}: the system's realloc returned a pool block");
            Src::System
        } else {
            let src = self.classify(a, ptr, new);
            self.judge(a, class, new, Outcome::Got(src), &what);
            // The old block was freed by the move.
            let src_old = b.src;
            if let Src::Pool(c) = src_old {
                self.counters[a].frees[c] += 1;
                if let Some(occupied) = &mut self.occupied {
                    occupied[a][c] -= 1;
                }
            }
            src
        };
        // The preserved prefix, and the zeroed tail.
        let kept = old.size().min(new.size()).min(b.filled);
        // SAFETY: the new block holds at least `new.size()` bytes.
        if let Err(at) = unsafe { check(ptr, kept, b.tag) } {
            panic!("{ctx}: {what} ({:?} -> {src:?}) lost the contents at offset {at}", b.src);
        }
        if kind == Resize::GrowZeroed {
            self.check_zero(a, ptr, old.size()..new.size(), "grow_zeroed");
        }
        if in_place || by_system {
            // Not counted as an allocation: re-adopt without the checks of a
            // fresh answer, but with the new layout.
            let filled = if in_place { b.filled } else { new.size() };
            let tag = self.tag();
            let block = Block { slab: a, ptr, layout: new, src, filled, tag };
            self.insert_span(&block);
            // SAFETY: the block holds `filled` bytes and is ours.
            unsafe { fill(ptr, filled, tag) };
            self.blocks.push(block);
        } else {
            self.adopt(a, ptr, new, src);
        }
    }

    /// The statistics against the model. Only on the main thread while the
    /// worker is idle, when every counter is exact.
    fn checkpoint(&mut self, when: &str) {
        self.summary.checkpoints += 1;
        for (a, slab) in self.slabs.iter().enumerate() {
            let stats = slab.stats();
            let info = &self.infos[a];
            let model = &self.counters[a];
            let ctx = format!("{} at {when}", self.context(a));
            let ctx = ctx.as_str();
            assert!(stats.is_consistent(), "{ctx}: carved != in use + stack + caches\n{stats}");
            assert_eq!(stats.classes.len(), info.classes.len());
            for (c, s) in stats.classes.iter().enumerate() {
                let live = self.blocks.iter().filter(|b| b.slab == a && b.src == Src::Pool(c)).count() as u64;
                let class = ClassCtx { ctx, size: info.classes[c] };
                let reservations = 1 + u64::from(stats.grown_reservations);
                assert_eq!(s.capacity, info.per_reservation[c] * reservations, "{class}: capacity");
                assert!(s.carved <= s.capacity, "{class}: carved {} of {}", s.carved, s.capacity);
                assert_eq!(s.in_use, live, "{class}: in use, against the live pool blocks\n{stats}");
                assert_eq!(s.in_use as i64, model.in_use(c), "{class}: in use\n{stats}");
                assert_eq!(s.allocations as i64, model.allocations[c], "{class}: allocations\n{stats}");
                assert_eq!(s.frees as i64, model.frees[c], "{class}: frees\n{stats}");
                let requested = if info.checks { model.requested[c] } else { 0 };
                assert_eq!(
                    s.requested_bytes as i64, requested,
                    "{class}: requested bytes (checks: {})\n{stats}",
                    info.checks
                );
                assert_eq!(s.handed_out_bytes, s.allocations * info.classes[c] as u64, "{class}: handed out");
                assert_eq!(s.fallbacks as i64, model.fallbacks[c], "{class}: fallbacks\n{stats}");
            }
            assert_eq!(stats.oversize_fallbacks as i64, model.oversize_served, "{ctx}: oversize served\n{stats}");
            assert_eq!(stats.oversize_refused as i64, model.oversize_refused, "{ctx}: oversize refused\n{stats}");
            let bytes: u64 = stats.classes.iter().map(|c| c.in_use * c.block_size as u64).sum();
            assert_eq!(stats.bytes_in_use(), bytes);
        }
    }

    /// After everything was freed and flushed: nothing in use, nothing
    /// cached, every carved block back on its stack.
    fn check_empty(&self) {
        for (a, slab) in self.slabs.iter().enumerate() {
            let stats = slab.stats();
            for s in &stats.classes {
                let ctx = self.context(a);
                let size = s.block_size;
                let end = "after freeing everything";
                assert_eq!(s.in_use, 0, "{ctx}, class {size} B, {end}: in use\n{stats}");
                assert_eq!(s.in_caches, 0, "{ctx}, class {size} B, {end}: cached after every thread flushed\n{stats}");
                assert_eq!(
                    s.free_in_stack, s.carved,
                    "{ctx}, class {size} B, {end}: carved blocks not on the stack\n{stats}"
                );
            }
        }
    }

    /// For small pools: every class hands out exactly its capacity,
    /// distinct blocks, then the fallback answers.
    fn drain(&mut self) {
        for a in 0..self.slabs.len() {
            let info = &self.infos[a];
            if info.capacity.iter().sum::<u64>() > DRAIN_LIMIT {
                continue;
            }
            self.occupied = Some(self.in_use());
            for c in 0..info.classes.len() {
                let layout = Layout::from_size_align(info.classes[c], 1).expect("a class size is a valid size");
                for _ in 0..=info.capacity[c] {
                    // Fill and overlap checks included: the blocks are
                    // distinct and whole.
                    self.allocate_unbounded(a, layout);
                }
                self.summary.drained_classes += 1;
                let pooled = self.blocks.iter().filter(|b| b.slab == a && b.src == Src::Pool(c)).count() as u64;
                assert_eq!(pooled, info.capacity[c], "{}: class {} B drained", self.context(a), info.classes[c]);
            }
            self.free_all();
            self.slabs[a].flush_thread_cache();
            self.checkpoint("drain");
        }
    }

    /// `allocate` without the live-block bound.
    fn allocate_unbounded(&mut self, a: usize, layout: Layout) {
        let class = self.infos[a].class_for(layout);
        let result = self.slabs[a].allocate(layout);
        let got = match result {
            Ok(ptr) => Outcome::Got(self.classify(a, ptr, layout)),
            Err(_) => Outcome::Failed,
        };
        self.judge(a, class, layout, got, &"drain");
        if let (Ok(ptr), Outcome::Got(src)) = (result, got) {
            self.adopt(a, ptr, layout, src);
        }
    }

    /// A job for the worker thread: a handoff (the worker's answers are
    /// determined) or a storm (both threads work at once).
    fn job(&mut self, shared: &Arc<Shared>, storm: bool, input: &mut Bytes) {
        // Blocks to hand over: up to all of ours.
        let count = usize::from(input.byte()) % (self.blocks.len() + 1);
        let mut handed = Vec::with_capacity(count);
        for _ in 0..count {
            let i = usize::from(input.byte()) % self.blocks.len();
            self.verify(i, "handoff");
            let b = self.blocks.swap_remove(i);
            self.remove_span(&b);
            handed.push(b);
        }
        let free_first = input.byte() & 1 == 1;
        let len = usize::from(input.byte() % 64);
        let worker_program = input.take(len).to_vec();
        let occupied = (!storm).then(|| {
            // The worker can get every block but those in use and those in
            // the main thread's caches (it flushes its own after each job).
            let mut occupied = self.in_use();
            for (a, slab) in self.slabs.iter().enumerate() {
                for (c, s) in slab.stats().classes.iter().enumerate() {
                    occupied[a][c] += s.in_caches as i64;
                }
            }
            occupied
        });
        let job =
            Job { shared: Arc::clone(shared), blocks: Handoff(handed), program: worker_program, occupied, free_first };
        let mut worker = worker();
        let worker = worker.get_or_insert_with(Worker::spawn);
        worker.jobs.send(job).expect("the worker thread is alive");
        if storm {
            self.occupied = None;
            let len = usize::from(input.byte() % 64);
            let mut own = Bytes::new(input.take(len));
            while !own.is_empty() {
                let op = own.byte();
                self.step(op, &mut own);
            }
        }
        let reply = worker.replies.recv().expect("the worker panicked");
        for (mine, theirs) in self.counters.iter_mut().zip(&reply.counters) {
            mine.add(theirs);
        }
        self.summary.worker_frees += reply.summary.frees;
        self.summary.add(&reply.summary);
        if storm {
            self.summary.storms += 1;
        } else {
            self.summary.handoffs += 1;
        }
        for b in reply.blocks.0 {
            self.insert_span(&b);
            self.blocks.push(b);
        }
        self.occupied = Some(self.in_use());
        self.checkpoint(if storm { "after a storm" } else { "after a handoff" });
    }
}

/// Messages name the allocator by index and configuration.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    index: usize,
    info: &'a Info,
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "allocator {} ({})", self.index, self.info.name)
    }
}

struct ClassCtx<'a> {
    ctx: &'a str,
    size: usize,
}

impl fmt::Display for ClassCtx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, class {} B", self.ctx, self.size)
    }
}

struct ResizeOp {
    kind: Resize,
    old: Layout,
    new: Layout,
}

impl fmt::Display for ResizeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {:?} -> {:?}", self.kind, self.old, self.new)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resize {
    Realloc,
    Grow,
    GrowZeroed,
    Shrink,
}

// ---------------------------------------------------------------------------
// The worker thread
// ---------------------------------------------------------------------------

struct Job {
    /// The program's allocators, kept alive by the worker until it replies.
    shared: Arc<Shared>,
    blocks: Handoff,
    program: Vec<u8>,
    /// `Some` for a handoff (answers determined), `None` for a storm.
    occupied: Option<Vec<Vec<i64>>>,
    /// Free every handed block first (all cross-thread frees).
    free_first: bool,
}

struct Reply {
    blocks: Handoff,
    counters: Vec<Counters>,
    summary: Summary,
}

/// The worker thread: one for the whole process, started by the first job
/// and reused by every program after it (starting a thread per program
/// would cost more than most programs). It never exits, so thread-exit
/// flushes are left to the lifecycle tests and the loom models; instead it
/// flushes its caches after every job, which runs the same code.
struct Worker {
    jobs: mpsc::Sender<Job>,
    replies: mpsc::Receiver<Reply>,
}

static WORKER: Mutex<Option<Worker>> = Mutex::new(None);

/// The worker, locked for one job (programs on several test threads take
/// turns). If a program panicked during a job, its worker may still be busy
/// with it (holding that program's allocators through its `Arc`): it is
/// left to finish on its own, and a fresh one takes its place.
fn worker() -> MutexGuard<'static, Option<Worker>> {
    WORKER.lock().unwrap_or_else(|poisoned| {
        WORKER.clear_poison();
        let mut guard = poisoned.into_inner();
        *guard = None;
        guard
    })
}

impl Worker {
    fn spawn() -> Worker {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (reply_tx, replies) = mpsc::channel::<Reply>();
        thread::Builder::new()
            .name("fuzz-worker".into())
            .spawn(move || {
                for (n, job) in job_rx.into_iter().enumerate() {
                    if reply_tx.send(serve(job, n as u64)).is_err() {
                        return;
                    }
                }
            })
            .expect("a thread for the worker");
        Worker { jobs, replies }
    }
}

/// Runs one job on the worker thread. Its `Arc` of the allocators is
/// dropped before the reply is sent, so the main thread may drop them as
/// soon as it has the reply.
fn serve(job: Job, n: u64) -> Reply {
    let Job { shared, blocks, program, occupied, free_first } = job;
    let mut actor = Actor::new(&shared.slabs, &shared.infos, WORKER_TAGS + (n << 32));
    actor.occupied = occupied;
    for b in blocks.0 {
        actor.insert_span(&b);
        actor.blocks.push(b);
    }
    if free_first {
        actor.free_all();
    }
    let mut program = Bytes::new(&program);
    while !program.is_empty() {
        let op = program.byte();
        actor.step(op, &mut program);
    }
    // Leave nothing cached, so the main thread's answers are determined
    // again.
    for slab in &shared.slabs {
        slab.flush_thread_cache();
    }
    Reply {
        blocks: Handoff(std::mem::take(&mut actor.blocks)),
        counters: std::mem::take(&mut actor.counters),
        summary: actor.summary,
    }
}

// ---------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------

/// A page of zeros to compare zeroed memory with.
static ZEROS: [u8; 4096] = [0; 4096];

/// Length of the pattern table (a power of two).
const TABLE: usize = 1 << 16;

/// Pseudo-random bytes; a block with tag `t` holds the table read cyclically
/// from an offset derived from `t`. Filling and checking are then `memcpy`
/// and `memcmp` of whole runs (the fuzzer instruments every comparison the
/// driver makes, so a byte-by-byte check would cost most of its time).
fn table() -> &'static [u8] {
    static TABLE_BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE_BYTES.get_or_init(|| {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..TABLE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    })
}

/// `tag`'s pattern over `len` bytes, as (offset in the block, bytes) runs.
fn runs(tag: u64, len: usize) -> impl Iterator<Item = (usize, &'static [u8])> {
    let table = table();
    let mut from = (tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize % TABLE;
    let mut at = 0;
    std::iter::from_fn(move || {
        (at < len).then(|| {
            let run = &table[from..(from + len - at).min(TABLE)];
            let item = (at, run);
            at += run.len();
            from = 0;
            item
        })
    })
}

/// Fills `len` bytes at `ptr` with `tag`'s pattern.
///
/// # Safety
///
/// `ptr..ptr + len` is writable and ours.
unsafe fn fill(ptr: NonNull<u8>, len: usize, tag: u64) {
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) };
    for (at, run) in runs(tag, len) {
        bytes[at..at + run.len()].copy_from_slice(run);
    }
}

/// The first offset at which `len` bytes at `ptr` differ from `tag`'s
/// pattern.
///
/// # Safety
///
/// `ptr..ptr + len` is readable and ours.
unsafe fn check(ptr: NonNull<u8>, len: usize, tag: u64) -> Result<(), usize> {
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
    for (at, run) in runs(tag, len) {
        let got = &bytes[at..at + run.len()];
        if got != run {
            return Err(at + got.iter().zip(run).position(|(a, b)| a != b).unwrap());
        }
    }
    Ok(())
}
