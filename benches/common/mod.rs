//! What the criterion benches (`benches/*.rs`) and the comparison tool
//! (`examples/compare.rs`) share, so both measure exactly the same code:
//!
//! - [`BenchAlloc`], a two-method adapter over `alloc`/`dealloc`, implemented
//!   for [`SlabAllocator`], for any [`GlobalAlloc`] peer through [`Peer`]
//!   (`System`, `MiMalloc`, `Jemalloc`), and for [`FreeList`], the floor;
//! - the slab configuration each workload uses ([`slab_fixed`], [`slab_general`]);
//! - the workload kernels, generic over the allocator and over a [`Probe`]
//!   that either does nothing (throughput runs: it compiles away) or times
//!   every allocator call with the cycle counter (latency runs);
//! - the thread runner: `Arc`-shared allocator, a `Barrier` for a common
//!   start, and a stop condition that is either a round count (criterion's
//!   `iter_custom`) or a flag (the tool's fixed-duration runs).
//!
//! An "op" everywhere is one allocator call: one `alloc` or one `dealloc`.
//!
//! Included with `#[path = "common/mod.rs"] mod common;`; each includer uses
//! a different part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::alloc::{handle_alloc_error, GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use lockfree_slab::{Fallback, SlabAllocator};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------
// The adapter
// ---------------------------------------------------------------------------

/// The two calls every workload makes. Implementations must be as thin as
/// the allocator's own API: the adapter is part of what is measured.
pub trait BenchAlloc {
    /// Allocates `layout` (non-zero size); aborts through
    /// [`handle_alloc_error`] if the allocator fails.
    fn alloc(&self, layout: Layout) -> *mut u8;
    /// Frees a block from [`alloc`](Self::alloc) with the same layout.
    ///
    /// # Safety
    ///
    /// `ptr` came from `self.alloc(layout)` and was not freed since.
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout);
}

impl BenchAlloc for SlabAllocator {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.allocate(layout) {
            Ok(p) => p.as_ptr(),
            Err(_) => oom(layout),
        }
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller; `alloc` never returns null.
        unsafe { self.deallocate(NonNull::new_unchecked(ptr), layout) }
    }
}

impl<A: BenchAlloc + ?Sized> BenchAlloc for Arc<A> {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> *mut u8 {
        (**self).alloc(layout)
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { (**self).dealloc(ptr, layout) }
    }
}

/// A [`GlobalAlloc`] used as a plain value (not installed as the global
/// allocator): `Peer(System)`, `Peer(MiMalloc)`, `Peer(Jemalloc)`.
#[derive(Clone, Copy, Default)]
pub struct Peer<G>(pub G);

impl<G: GlobalAlloc> BenchAlloc for Peer<G> {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: workloads never ask for zero bytes.
        let p = unsafe { self.0.alloc(layout) };
        if p.is_null() {
            oom(layout)
        }
        p
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

#[cold]
#[inline(never)]
fn oom(layout: Layout) -> ! {
    handle_alloc_error(layout)
}

/// The floor: a single-threaded intrusive free list of one block size, with
/// no atomics, no thread-local lookup and no size-class lookup. Free blocks
/// hold the link in their first word; an empty list bump-allocates from
/// 1 MiB chunks taken from `System`. Not `Sync`: it only appears in
/// single-thread groups.
pub struct FreeList {
    head: Cell<*mut u8>,
    block: usize,
    bump: Cell<*mut u8>,
    end: Cell<*mut u8>,
    chunks: RefCell<Vec<*mut u8>>,
}

const CHUNK: usize = 1 << 20;

impl FreeList {
    /// A free list serving requests of up to `block` bytes (align ≤ 16).
    pub fn new(block: usize) -> Self {
        let block = block.max(16).next_multiple_of(16);
        assert!(block <= CHUNK);
        FreeList {
            head: Cell::new(ptr::null_mut()),
            block,
            bump: Cell::new(ptr::null_mut()),
            end: Cell::new(ptr::null_mut()),
            chunks: RefCell::new(Vec::new()),
        }
    }

    #[cold]
    #[inline(never)]
    fn carve(&self) -> *mut u8 {
        if self.bump.get() == self.end.get() {
            let layout = Layout::from_size_align(CHUNK, 4096).unwrap();
            // SAFETY: non-zero size.
            let chunk = unsafe { System.alloc(layout) };
            if chunk.is_null() {
                oom(layout)
            }
            self.chunks.borrow_mut().push(chunk);
            self.bump.set(chunk);
            // SAFETY: one past the end of the chunk, rounded down to whole blocks.
            self.end.set(unsafe { chunk.add(CHUNK / self.block * self.block) });
        }
        let p = self.bump.get();
        // SAFETY: `p < end`, and `end - p` is a multiple of the block size.
        self.bump.set(unsafe { p.add(self.block) });
        p
    }
}

impl BenchAlloc for FreeList {
    #[inline(always)]
    fn alloc(&self, layout: Layout) -> *mut u8 {
        debug_assert!(layout.size() <= self.block && layout.align() <= 16);
        let head = self.head.get();
        if head.is_null() {
            return self.carve();
        }
        // SAFETY: a free block's first word is the link written by `dealloc`.
        self.head.set(unsafe { head.cast::<*mut u8>().read() });
        head
    }
    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the block is free now and at least a word long and aligned.
        unsafe { ptr.cast::<*mut u8>().write(self.head.get()) };
        self.head.set(ptr);
    }
}

impl Drop for FreeList {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(CHUNK, 4096).unwrap();
        for &chunk in self.chunks.borrow().iter() {
            // SAFETY: allocated in `carve` with this layout.
            unsafe { System.dealloc(chunk, layout) };
        }
    }
}

// ---------------------------------------------------------------------------
// Names and slab configurations
// ---------------------------------------------------------------------------

/// Display names, the same in criterion ids, tables, CSV and plots.
pub const SLAB: &str = "lockfree-slab";
pub const SYSTEM: &str = "system (glibc)";
pub const MIMALLOC: &str = "mimalloc";
pub const JEMALLOC: &str = "jemalloc";
pub const FLOOR: &str = "freelist (floor, 1 thread, no atomics)";

/// Block sizes the fixed-size workloads use.
pub const BENCH_SIZES: [usize; 5] = [16, 64, 256, 1024, 4096];

/// The slab for fixed-size work: power-of-two classes 16 B..4 KiB, 1 GiB of
/// address space committed on first touch, system fallback, no checks.
pub fn slab_fixed() -> SlabAllocator {
    slab_fixed_with_checks(false)
}

/// [`slab_fixed`] with the misuse checks on or off (explicitly, whatever the
/// `checks` feature's default).
pub fn slab_fixed_with_checks(checks: bool) -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
        .capacity(1 << 30)
        .populate(false)
        .fallback(Fallback::System)
        .checks(checks)
        .build()
        .expect("bench slab configuration")
}

/// The slab for random sizes: the general-purpose profile (classes stepping
/// by at most 25 %), 1 GiB, system fallback.
pub fn slab_general() -> SlabAllocator {
    SlabAllocator::builder().capacity(1 << 30).fallback(Fallback::System).build().expect("general slab configuration")
}

/// The slab for the memory measurement: one 64-byte class, 128 MiB of
/// address space (room for 2 M blocks), committed on first touch.
pub fn slab_memory() -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[64])
        .capacity(128 << 20)
        .populate(false)
        .fallback(Fallback::System)
        .build()
        .expect("memory slab configuration")
}

/// `size` bytes at 8-byte alignment, as a typical Rust object.
#[inline(always)]
pub fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("layout")
}

// ---------------------------------------------------------------------------
// The clock: rdtsc on x86_64, Instant elsewhere
// ---------------------------------------------------------------------------

/// Start and stop stamps for timing one call. On x86_64: `lfence; rdtsc;
/// lfence` before and `rdtscp; lfence` after, so the timed call can neither
/// start before the first stamp nor still be running at the second. The unit
/// is TSC cycles; [`Calibration`] converts to nanoseconds. Elsewhere: ns
/// since a process-wide origin.
pub mod clock {
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn start() -> u64 {
        use core::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: lfence and rdtsc exist on every x86_64 CPU.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn stop() -> u64 {
        use core::arch::x86_64::{__rdtscp, _mm_lfence};
        let mut aux = 0u32;
        // SAFETY: rdtscp exists on every x86_64 CPU of the last 15 years (AMD K8+,
        // Intel Nehalem+); the tool and benches assume it.
        unsafe {
            let t = __rdtscp(&mut aux);
            _mm_lfence();
            t
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn origin() -> std::time::Instant {
        use std::sync::OnceLock;
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        *ORIGIN.get_or_init(std::time::Instant::now)
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub fn start() -> u64 {
        origin().elapsed().as_nanos() as u64
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub fn stop() -> u64 {
        start()
    }

    /// What the clock's units are, for the report.
    pub fn describe() -> &'static str {
        if cfg!(target_arch = "x86_64") {
            "rdtsc/rdtscp with lfence, calibrated against Instant"
        } else {
            "Instant (no cycle counter on this architecture)"
        }
    }
}

/// Cycles-to-ns factor and the cost of an empty start/stop pair.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Nanoseconds per clock unit.
    pub ns_per_tick: f64,
    /// Median ticks between `start()` and `stop()` with nothing in between;
    /// subtracted from every sample.
    pub overhead_ticks: u64,
    /// Smallest non-zero step between two clock readings: the resolution.
    /// (AMD Zen's TSC, for one, advances in steps of about 10 ns.)
    pub resolution_ticks: u64,
}

impl Calibration {
    /// Measures the tick rate over `window` against `Instant`, and the timer
    /// overhead as the median of 100 000 empty measurements.
    pub fn measure(window: Duration) -> Self {
        let ns_per_tick = if cfg!(target_arch = "x86_64") {
            let (i0, t0) = (Instant::now(), clock::start());
            while i0.elapsed() < window {
                std::hint::spin_loop();
            }
            let (t1, i1) = (clock::stop(), Instant::now());
            (i1 - i0).as_nanos() as f64 / (t1 - t0) as f64
        } else {
            1.0
        };
        let mut empty: Vec<u64> = (0..100_000)
            .map(|_| {
                let t = clock::start();
                clock::stop().wrapping_sub(t)
            })
            .collect();
        empty.sort_unstable();
        // The clock's step: the most common gap between neighbouring distinct
        // values of the empty measurement (AMD Zen: ~10 ns; the 1-tick gaps
        // there are rounding of a fractional increment, hence mode, not min).
        let mut distinct = empty.clone();
        distinct.dedup();
        let mut gaps: Vec<u64> = distinct.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let resolution_ticks = gaps.chunk_by(|a, b| a == b).max_by_key(|run| run.len()).map_or(1, |run| run[0]).max(1);
        Calibration { ns_per_tick, overhead_ticks: empty[empty.len() / 2], resolution_ticks }
    }
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

/// Times allocator calls, or not. `NoProbe` compiles to nothing.
pub trait Probe {
    /// A stamp taken just before a call.
    fn start(&self) -> u64;
    /// Records the call that began at `t0`.
    fn record(&mut self, t0: u64);
}

/// Times nothing: the throughput runs.
pub struct NoProbe;

impl Probe for NoProbe {
    #[inline(always)]
    fn start(&self) -> u64 {
        0
    }
    #[inline(always)]
    fn record(&mut self, _t0: u64) {}
}

/// Times every call with the [`clock`] into a buffer allocated up front
/// (through the process's global allocator, before the timed run); calls
/// beyond its capacity are not recorded.
pub struct Samples {
    pub ticks: Vec<u32>,
}

impl Samples {
    #[allow(clippy::slow_vector_initialization)] // the touch is the point, see below
    pub fn with_capacity(n: usize) -> Self {
        let mut ticks = Vec::with_capacity(n);
        // Touch the buffer so that recording takes no page faults (`vec![0;
        // n]` would come from calloc's untouched zero pages).
        ticks.resize(n, 0);
        ticks.clear();
        Samples { ticks }
    }
    pub fn is_full(&self) -> bool {
        self.ticks.len() == self.ticks.capacity()
    }
}

impl Probe for Samples {
    #[inline(always)]
    fn start(&self) -> u64 {
        clock::start()
    }
    #[inline(always)]
    fn record(&mut self, t0: u64) {
        let t1 = clock::stop();
        if self.ticks.len() < self.ticks.capacity() {
            self.ticks.push(t1.wrapping_sub(t0).min(u64::from(u32::MAX)) as u32);
        }
    }
}

// ---------------------------------------------------------------------------
// Single-thread kernels
// ---------------------------------------------------------------------------

#[inline(always)]
fn alloc_p<A: BenchAlloc + ?Sized, P: Probe>(a: &A, l: Layout, probe: &mut P) -> *mut u8 {
    let t = probe.start();
    let p = a.alloc(l);
    probe.record(t);
    p
}

#[inline(always)]
unsafe fn dealloc_p<A: BenchAlloc + ?Sized, P: Probe>(a: &A, p: *mut u8, l: Layout, probe: &mut P) {
    let t = probe.start();
    // SAFETY: forwarded from the caller.
    unsafe { a.dealloc(p, l) };
    probe.record(t);
}

/// `n` alloc+free pairs of one layout: after the first, each is a cache hit
/// (the block just freed comes straight back). 2n ops.
#[inline(never)]
pub fn pairs<A: BenchAlloc + ?Sized, P: Probe>(a: &A, l: Layout, n: u64, probe: &mut P) {
    for _ in 0..n {
        let p = black_box(alloc_p(a, l, probe));
        // SAFETY: just allocated with `l`.
        unsafe { dealloc_p(a, p, l, probe) };
    }
}

/// Which end of a batch is freed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Last allocated, first freed.
    Lifo,
    /// First allocated, first freed.
    Fifo,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Lifo => "LIFO",
            Order::Fifo => "FIFO",
        }
    }
}

/// Fills `slots` with blocks of `l` (writing one word into each), then frees
/// them in `order`. `2 * slots.len()` ops.
#[inline(never)]
pub fn batch<A: BenchAlloc + ?Sized, P: Probe>(a: &A, l: Layout, slots: &mut [*mut u8], order: Order, probe: &mut P) {
    for (i, s) in slots.iter_mut().enumerate() {
        let p = alloc_p(a, l, probe);
        // SAFETY: a fresh block of at least 8 bytes, 8-aligned.
        unsafe { p.cast::<usize>().write(i) };
        *s = p;
    }
    black_box(&mut *slots);
    match order {
        Order::Lifo => slots.iter().rev().for_each(|&p| {
            // SAFETY: each slot holds a live block of `l`, freed once.
            unsafe { dealloc_p(a, p, l, probe) }
        }),
        Order::Fifo => slots.iter().for_each(|&p| {
            // SAFETY: as above.
            unsafe { dealloc_p(a, p, l, probe) }
        }),
    }
}

/// Blocks in one thread-local churn round.
pub const CHURN: usize = 32;

/// Thread-local churn: `CHURN` blocks of `l` allocated, touched, freed LIFO.
/// `2 * CHURN` ops.
#[inline(never)]
pub fn churn<A: BenchAlloc + ?Sized, P: Probe>(a: &A, l: Layout, probe: &mut P) {
    let mut slots = [ptr::null_mut::<u8>(); CHURN];
    for (i, s) in slots.iter_mut().enumerate() {
        let p = alloc_p(a, l, probe);
        // SAFETY: a fresh block of at least 8 bytes, 8-aligned.
        unsafe { p.cast::<usize>().write(i) };
        *s = p;
    }
    black_box(&mut slots);
    for &p in slots.iter().rev() {
        // SAFETY: each slot holds a live block of `l`, freed once.
        unsafe { dealloc_p(a, p, l, probe) };
    }
}

// ---------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------

/// When worker threads stop: after `rounds` rounds each (criterion), or when
/// `flag` is raised (the tool), whichever comes first.
#[derive(Clone)]
pub struct Stop {
    pub rounds: u64,
    pub flag: Arc<AtomicBool>,
}

impl Stop {
    pub fn after_rounds(rounds: u64) -> Self {
        Stop { rounds, flag: Arc::new(AtomicBool::new(false)) }
    }
    pub fn on_flag() -> Self {
        Stop { rounds: u64::MAX, flag: Arc::new(AtomicBool::new(false)) }
    }
    #[inline(always)]
    fn done(&self, round: u64) -> bool {
        // Relaxed: a plain "please stop" signal; nothing is published with it.
        round >= self.rounds || self.flag.load(Ordering::Relaxed)
    }
}

/// What one worker reports.
pub struct Worker {
    /// Allocator calls made.
    pub ops: u64,
    /// Per-call timings, when the run was timed.
    pub ticks: Vec<u32>,
    start: Instant,
    end: Instant,
}

/// The outcome of a multi-threaded run.
pub struct Run {
    /// Allocator calls, all threads.
    pub ops: u64,
    /// From the first thread's start (after the barrier) to the last one's end.
    pub elapsed: Duration,
    /// Per-call timings of all threads (empty unless timed).
    pub ticks: Vec<u32>,
}

impl Run {
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Runs `body(thread_index)` on `threads` threads released together by a
/// barrier. With `duration`, the calling thread raises `stop.flag` that long
/// after the release.
fn run_threads<F>(threads: usize, stop: &Stop, duration: Option<Duration>, body: F) -> Run
where
    F: Fn(usize, &Barrier) -> Worker + Send + Sync + 'static,
{
    let barrier = Arc::new(Barrier::new(threads + 1));
    let body = Arc::new(body);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (barrier, body) = (Arc::clone(&barrier), Arc::clone(&body));
            thread::Builder::new()
                .name(format!("bench-{i}"))
                .spawn(move || body(i, &barrier))
                .expect("spawn bench thread")
        })
        .collect();
    barrier.wait();
    if let Some(d) = duration {
        // Sleep until the deadline, or until every worker is done on its
        // own (a timed run whose sample buffers are full).
        let t = Instant::now();
        while t.elapsed() < d && !handles.iter().all(|h| h.is_finished()) {
            thread::sleep((d / 50).clamp(Duration::from_micros(100), Duration::from_millis(5)));
        }
        stop.flag.store(true, Ordering::Relaxed);
    }
    let workers: Vec<Worker> = handles.into_iter().map(|h| h.join().expect("bench thread panicked")).collect();
    let start = workers.iter().map(|w| w.start).min().unwrap();
    let end = workers.iter().map(|w| w.end).max().unwrap();
    let mut ticks = Vec::new();
    for w in &workers {
        ticks.extend_from_slice(&w.ticks);
    }
    Run { ops: workers.iter().map(|w| w.ops).sum(), elapsed: end - start, ticks }
}

/// Per-thread sample budget of a timed run.
fn samples_for(timed: Option<usize>) -> Option<Samples> {
    timed.map(Samples::with_capacity)
}

/// `threads` threads each doing [`churn`] rounds of `l` on the shared
/// allocator: work that stays thread-local.
pub fn threads_churn<A>(
    a: &Arc<A>,
    threads: usize,
    l: Layout,
    stop: Stop,
    duration: Option<Duration>,
    timed: Option<usize>,
) -> Run
where
    A: BenchAlloc + Send + Sync + 'static,
{
    let a = Arc::clone(a);
    let st = stop.clone();
    run_threads(threads, &stop, duration, move |_, barrier| {
        let mut samples = samples_for(timed);
        // Warm the thread's cache before the common start.
        churn(&*a, l, &mut NoProbe);
        barrier.wait();
        let start = Instant::now();
        let mut round = 0;
        while !st.done(round) {
            match samples.as_mut() {
                Some(s) if !s.is_full() => churn(&*a, l, s),
                Some(_) => break,
                None => churn(&*a, l, &mut NoProbe),
            }
            round += 1;
        }
        let end = Instant::now();
        Worker { ops: round * 2 * CHURN as u64, ticks: samples.map(|s| s.ticks).unwrap_or_default(), start, end }
    })
}

/// A bounded single-producer single-consumer ring of block addresses.
struct Ring {
    slots: Box<[AtomicUsize]>,
    head: Padded<AtomicUsize>, // next to read (consumer)
    tail: Padded<AtomicUsize>, // next to write (producer)
}

/// Keeps the producer's and the consumer's index on separate cache lines.
#[repr(align(128))]
struct Padded<T>(T);

impl Ring {
    fn new(cap: usize) -> Self {
        assert!(cap.is_power_of_two());
        Ring {
            slots: (0..cap).map(|_| AtomicUsize::new(0)).collect(),
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
        }
    }
    /// Producer side; false if full.
    #[inline(always)]
    fn push(&self, v: usize) -> bool {
        // Relaxed: only the producer writes `tail`.
        let t = self.tail.0.load(Ordering::Relaxed);
        // Acquire: pairs with the consumer's Release store of `head`, so the
        // slot it read is free to overwrite.
        if t - self.head.0.load(Ordering::Acquire) == self.slots.len() {
            return false;
        }
        self.slots[t & (self.slots.len() - 1)].store(v, Ordering::Relaxed);
        // Release: publishes the slot (and the block's contents) to `pop`.
        self.tail.0.store(t + 1, Ordering::Release);
        true
    }
    /// Consumer side; None if empty.
    #[inline(always)]
    fn pop(&self) -> Option<usize> {
        // Relaxed: only the consumer writes `head`.
        let h = self.head.0.load(Ordering::Relaxed);
        // Acquire: pairs with the producer's Release store of `tail`.
        if h == self.tail.0.load(Ordering::Acquire) {
            return None;
        }
        let v = self.slots[h & (self.slots.len() - 1)].load(Ordering::Relaxed);
        // Release: pairs with the producer's Acquire load of `head`.
        self.head.0.store(h + 1, Ordering::Release);
        Some(v)
    }
}

/// Waiting for the other side of the ring: spin briefly, then yield, so an
/// oversubscribed machine (more runnable threads than cores) does not burn
/// whole time slices spinning while the thread it waits for is descheduled.
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 128 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

/// Blocks the producer allocates between checks of the stop condition.
pub const PC_ROUND: usize = 64;

/// Producer/consumer: thread 0 allocates blocks of `l`, writes them and
/// hands them over a 1024-slot ring to thread 1, which reads and frees them.
/// Every free is a free of another thread's block.
pub fn producer_consumer<A>(a: &Arc<A>, l: Layout, stop: Stop, duration: Option<Duration>, timed: Option<usize>) -> Run
where
    A: BenchAlloc + Send + Sync + 'static,
{
    let a = Arc::clone(a);
    let ring = Arc::new(Ring::new(1024));
    let st = stop.clone();
    run_threads(2, &stop, duration, move |i, barrier| {
        let mut samples = samples_for(timed);
        barrier.wait();
        let start = Instant::now();
        let mut ops = 0u64;
        if i == 0 {
            let mut round = 0;
            'run: while !st.done(round) {
                if samples.as_ref().is_some_and(Samples::is_full) {
                    break;
                }
                for k in 0..PC_ROUND {
                    let p = match samples.as_mut() {
                        Some(s) => alloc_p(&*a, l, s),
                        None => a.alloc(l),
                    };
                    // SAFETY: a fresh block of at least 8 bytes, 8-aligned.
                    unsafe { p.cast::<usize>().write(k) };
                    ops += 1;
                    let mut spins = 0u32;
                    while !ring.push(p as usize) {
                        if st.flag.load(Ordering::Relaxed) {
                            // SAFETY: our own block, never published.
                            unsafe { a.dealloc(p, l) };
                            break 'run;
                        }
                        backoff(&mut spins);
                    }
                }
                round += 1;
            }
            let mut spins = 0u32;
            while !ring.push(0) {
                backoff(&mut spins);
            }
        } else {
            let mut spins = 0u32;
            loop {
                let Some(v) = ring.pop() else {
                    backoff(&mut spins);
                    continue;
                };
                spins = 0;
                if v == 0 {
                    break;
                }
                let p = v as *mut u8;
                // SAFETY: a live block of `l` handed over by the producer
                // (published by the ring's Release/Acquire).
                unsafe {
                    black_box(p.cast::<usize>().read());
                    match samples.as_mut() {
                        Some(s) => dealloc_p(&*a, p, l, s),
                        None => a.dealloc(p, l),
                    }
                }
                ops += 1;
            }
        }
        let end = Instant::now();
        Worker { ops, ticks: samples.map(|s| s.ticks).unwrap_or_default(), start, end }
    })
}

/// Live-object slots per thread in the mixed workload.
pub const MIXED_SLOTS_PER_THREAD: usize = 1024;
/// Steps between checks of the stop condition.
pub const MIXED_ROUND: usize = 64;

/// Larson-style mixed work. All threads share one array of object slots.
/// Each step allocates a block of a random size in 16..=1024 B, writes its
/// size into it, swaps it into a random slot, and frees what the slot held
/// (reading the size back from the block): lifetimes are random, and about
/// half of the frees are of blocks another thread allocated. Blocks still in
/// the slots at the end are freed, untimed, by the calling thread.
pub fn mixed<A>(a: &Arc<A>, threads: usize, stop: Stop, duration: Option<Duration>, timed: Option<usize>) -> Run
where
    A: BenchAlloc + Send + Sync + 'static,
{
    let shared: Arc<[AtomicUsize]> = (0..threads * MIXED_SLOTS_PER_THREAD).map(|_| AtomicUsize::new(0)).collect();
    let a2 = Arc::clone(a);
    let slots = Arc::clone(&shared);
    let st = stop.clone();
    let run = run_threads(threads, &stop, duration, move |i, barrier| {
        let mut samples = samples_for(timed);
        let mut rng = SmallRng::seed_from_u64(0x5EED + i as u64);
        let n = slots.len() as u64;
        barrier.wait();
        let start = Instant::now();
        let (mut ops, mut round) = (0u64, 0u64);
        while !st.done(round) {
            if samples.as_ref().is_some_and(Samples::is_full) {
                break;
            }
            for _ in 0..MIXED_ROUND {
                // One draw for both the size (high bits) and the slot.
                let r = rng.next_u64();
                let size = 16 + (r >> 40) as usize % 1009;
                let l = layout(size);
                let p = match samples.as_mut() {
                    Some(s) => alloc_p(&*a2, l, s),
                    None => a2.alloc(l),
                };
                // SAFETY: a fresh block of at least 16 bytes, 8-aligned.
                unsafe { p.cast::<usize>().write(size) };
                // AcqRel: the Release half publishes our block's size word to
                // whichever thread swaps it out; the Acquire half sees the
                // size word of the block we take out.
                let old = slots[(r % n) as usize].swap(p as usize, Ordering::AcqRel);
                ops += 1;
                if old != 0 {
                    let q = old as *mut u8;
                    // SAFETY: a live block whose first word is its size,
                    // now owned by this thread alone.
                    unsafe {
                        let lq = layout(q.cast::<usize>().read());
                        match samples.as_mut() {
                            Some(s) => dealloc_p(&*a2, q, lq, s),
                            None => a2.dealloc(q, lq),
                        }
                    }
                    ops += 1;
                }
            }
            round += 1;
        }
        let end = Instant::now();
        Worker { ops, ticks: samples.map(|s| s.ticks).unwrap_or_default(), start, end }
    });
    for slot in shared.iter() {
        let old = slot.swap(0, Ordering::Acquire);
        if old != 0 {
            let q = old as *mut u8;
            // SAFETY: as in the workers.
            unsafe { a.dealloc(q, layout(q.cast::<usize>().read())) };
        }
    }
    run
}
