// Own test binary: the slab is this process's #[global_allocator], and the test measures the whole live set.
//! lockfree-slab as the `#[global_allocator]` of a whole program: this test
//! binary. Every allocation of the binary — libtest's, std's, the threads',
//! the collections' — goes through `GLOBAL`.
//!
//! Because of that, the statistics are only comparable when nothing else is
//! allocating: the binary has exactly **one** `#[test]`, which runs the
//! scenarios in sequence on one thread, and measures the allocator's live
//! set around each scenario with every thread the scenario started already
//! joined (libtest's main thread waits, idle, for that one test). It prints
//! nothing while it runs: captured output would itself be live memory.
//!
//! Scenarios (each checks every value it stored, not just survival):
//! - (a) 8 threads churning `String`, `Vec`, `HashMap` and `BTreeMap`,
//!   passing a share of them to the next thread (freed by another thread);
//! - (b) 1,000 short-lived threads, 50 at a time: exited threads give their
//!   cache slots and cached blocks back (`cached_threads` and `in_caches` do
//!   not grow with the number of threads) and leave nothing live;
//! - (c) allocation and free inside thread-local destructors, both before and
//!   after the allocator's own exit flush has run;
//! - (d) `realloc` within a class (same pointer), across classes and into
//!   and out of the system fallback (> 256 KiB, or alignment > 4096), and
//!   `alloc_zeroed` on recycled blocks;
//! - (e) drops that re-enter the allocator while a thread's registry of
//!   cache slots changes: threads (started with `pthread_create`) that use
//!   the global allocator and then an explicit one whose last reference
//!   another thread drops, so that the exit flush frees that allocator's
//!   last memory through the global one; and one thread that uses more
//!   explicit allocators than its registry holds while one of them is
//!   dropped elsewhere. Every slot and every cached block comes back.
//!
//! The whole sequence runs twice: the first pass warms up whatever std
//! initialises lazily and keeps (so it is not mistaken for a leak), the second
//! pass asserts that each scenario leaves the live set exactly as it found it.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;

use lockfree_slab::{SlabAllocator, DEFAULT_CACHE_DEPTH, MAX_CLASSES};

#[global_allocator]
static GLOBAL: SlabAllocator = SlabAllocator::new();

// ---------------------------------------------------------------------------
// Measuring the live set

/// The counters we compare, copied out of a `Stats` (which is dropped before
/// the snapshot is returned, so it is not part of the next measurement).
#[derive(Clone, Copy, Debug)]
struct Snapshot {
    in_use: u64,
    class_in_use: [u64; MAX_CLASSES],
    in_caches: u64,
    cached_threads: u32,
    allocations: u64,
    consistent: bool,
}

/// Flushes this thread's cache (so its content does not depend on the
/// scenario just run) and copies the counters out.
///
/// `stats()` allocates its own `Vec` of classes: it is live while the counters
/// are read, so every snapshot counts exactly one of them, and it is freed
/// before this function returns.
fn snapshot() -> Snapshot {
    GLOBAL.flush_thread_cache();
    let stats = GLOBAL.stats();
    let mut class_in_use = [0; MAX_CLASSES];
    for (i, c) in stats.classes.iter().enumerate() {
        class_in_use[i] = c.in_use;
    }
    let snap = Snapshot {
        in_use: stats.totals.in_use,
        class_in_use,
        in_caches: stats.totals.in_caches,
        cached_threads: stats.cached_threads,
        allocations: stats.totals.allocations,
        consistent: stats.is_consistent(),
    };
    drop(stats);
    snap
}

/// Runs `scenario`; on the checked pass, asserts that it left exactly the
/// live set it found and that the accounting adds up.
fn live_set_unchanged(name: &str, checked: bool, scenario: impl FnOnce()) {
    let before = snapshot();
    scenario();
    let after = snapshot();
    if !checked {
        return;
    }
    assert!(before.consistent && after.consistent, "{name}: carved != in use + stack + caches\n{}", GLOBAL.stats());
    assert!(after.allocations > before.allocations, "{name}: the scenario's allocations did not reach the slab");
    if after.in_use != before.in_use {
        let diff: Vec<_> = (0..MAX_CLASSES)
            .filter(|&i| after.class_in_use[i] != before.class_in_use[i])
            .map(|i| (i, before.class_in_use[i], after.class_in_use[i]))
            .collect();
        panic!(
            "{name}: live blocks {} before, {} after; (class, before, after): {diff:?}\n{}",
            before.in_use,
            after.in_use,
            GLOBAL.stats()
        );
    }
    assert_eq!(after.cached_threads, before.cached_threads, "{name}: exited threads still hold cache slots");
}

// ---------------------------------------------------------------------------
// Deterministic data

fn mix(a: u64, b: u64) -> u64 {
    let x = (a ^ b.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 31)
}

fn word(seed: u64) -> String {
    let len = 1 + (seed % 40) as usize;
    (0..len).map(|i| (b'a' + (mix(seed, i as u64) % 26) as u8) as char).collect()
}

// ---------------------------------------------------------------------------
// (a) threads churning std collections

/// A bundle of collections whose contents follow from `(origin, iter)`.
struct Payload {
    origin: u64,
    iter: u64,
    text: String,
    numbers: Vec<u64>,
    map: HashMap<u64, String>,
    tree: BTreeMap<String, Vec<u32>>,
}

impl Payload {
    fn new(origin: u64, iter: u64) -> Payload {
        let seed = mix(origin, iter);
        // Lengths spread over many classes; every 97th vector is over 256
        // KiB (the system fallback).
        let n = if iter % 97 == 0 { 40_000 } else { (seed % 300) as usize };
        let mut text = String::new();
        for k in 0..(seed % 50) {
            text.push_str(&word(mix(seed, k)));
            text.push(' ');
        }
        let numbers = (0..n as u64).map(|k| mix(seed, k)).collect();
        let map = (0..seed % 60).map(|k| (mix(seed, k), word(mix(seed, k + 1000)))).collect();
        let tree = (0..seed % 40)
            .map(|k| (word(mix(seed, k + 2000)), (0..(k % 17) as u32).map(|j| j ^ k as u32).collect()))
            .collect();
        Payload { origin, iter, text, numbers, map, tree }
    }

    /// Rebuilds the expected contents and compares every value.
    fn check(&self) {
        let fresh = Payload::new(self.origin, self.iter);
        let who = (self.origin, self.iter);
        assert_eq!(self.text, fresh.text, "{who:?}: String corrupted");
        assert_eq!(self.numbers, fresh.numbers, "{who:?}: Vec corrupted");
        assert_eq!(self.map, fresh.map, "{who:?}: HashMap corrupted");
        assert_eq!(self.tree, fresh.tree, "{who:?}: BTreeMap corrupted");
    }
}

fn churn_collections(threads: u64, iters: u64) {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads).map(|_| mpsc::channel::<Payload>()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let next = senders[(t + 1) % threads as usize].clone();
            thread::spawn(move || {
                let t = t as u64;
                let mut kept: Vec<Payload> = Vec::new();
                let mut received = 0u64;
                for i in 0..iters {
                    let p = Payload::new(t, i);
                    p.check();
                    match i % 3 {
                        // Freed by the next thread.
                        0 => next.send(p).unwrap(),
                        // Kept for a while, then freed here out of order.
                        1 => kept.push(p),
                        // Freed at once.
                        _ => drop(p),
                    }
                    if kept.len() > 20 {
                        let p = kept.swap_remove((i as usize * 7) % kept.len());
                        p.check();
                    }
                    while let Ok(p) = rx.try_recv() {
                        p.check();
                        received += 1;
                    }
                }
                drop(next);
                kept.iter().for_each(Payload::check);
                received
                    + rx.iter()
                        .map(|p| {
                            p.check();
                        })
                        .count() as u64
            })
        })
        .collect();
    drop(senders);
    let received: u64 = handles.into_iter().map(|h| h.join().expect("churn thread panicked")).sum();
    assert_eq!(received, threads * iters.div_ceil(3), "payloads lost between threads");
}

// ---------------------------------------------------------------------------
// (b) many short-lived threads

const SHORT_LIVED_THREADS: usize = 1000;
const BATCH: usize = 50;

fn short_lived_threads(checked: bool) {
    let start = snapshot();
    let mut max_in_caches = start.in_caches;
    for batch in 0..SHORT_LIVED_THREADS / BATCH {
        let handles: Vec<_> = (0..BATCH)
            .map(|k| {
                let id = (batch * BATCH + k) as u64;
                thread::spawn(move || {
                    // A few classes' worth of blocks, some kept until the end.
                    let boxes: Vec<Box<[u64]>> =
                        (0..40u64).map(|j| (0..(mix(id, j) % 200)).map(|x| mix(id ^ j, x)).collect()).collect();
                    let s = word(id).repeat(1 + (id % 30) as usize);
                    for (j, b) in boxes.iter().enumerate() {
                        assert!(b.iter().enumerate().all(|(x, &v)| v == mix(id ^ j as u64, x as u64)));
                    }
                    assert_eq!(s, word(id).repeat(1 + (id % 30) as usize));
                    id
                })
            })
            .collect();
        for (k, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().expect("short-lived thread panicked"), (batch * BATCH + k) as u64);
        }
        let now = snapshot();
        max_in_caches = max_in_caches.max(now.in_caches);
        if checked {
            assert!(now.consistent, "after batch {batch}:\n{}", GLOBAL.stats());
            assert_eq!(
                now.cached_threads, start.cached_threads,
                "after batch {batch}: exited threads still hold cache slots"
            );
        }
    }
    if checked {
        // Only the threads still alive (libtest's and this one) hold cached
        // blocks; this thread's cache is flushed before each snapshot and then
        // refilled by one batch for `stats()`'s own vector, hence the slack of
        // one magazine. 1,000 unflushed exits would be far above it.
        assert!(
            max_in_caches <= start.in_caches + DEFAULT_CACHE_DEPTH as u64,
            "cached blocks grew with the number of exited threads: {} at the start, up to {max_in_caches}",
            start.in_caches
        );
    }
}

// ---------------------------------------------------------------------------
// (c) allocation in thread-local destructors

/// Allocates, checks and frees in its destructor, and leaves one `String`
/// behind for the test thread to check and free.
struct AllocatesOnDrop {
    seed: Cell<u64>,
}

static DESTRUCTORS_RAN: AtomicUsize = AtomicUsize::new(0);
static LEFT_BEHIND: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());

impl Drop for AllocatesOnDrop {
    fn drop(&mut self) {
        let seed = self.seed.get();
        let v: Vec<u64> = (0..1000).map(|k| mix(seed, k)).collect();
        let s: String = (0..20).map(|k| word(mix(seed, k))).collect::<Vec<_>>().join("-");
        assert!(v.iter().enumerate().all(|(k, &x)| x == mix(seed, k as u64)), "Vec corrupted in a TLS destructor");
        assert_eq!(s.split('-').count(), 20);
        LEFT_BEHIND.lock().unwrap().push((seed, s));
        DESTRUCTORS_RAN.fetch_add(1, Ordering::Relaxed);
    }
}

thread_local! {
    // Touched before the thread's first allocation, so its destructor is
    // registered before — and runs after — the allocator's exit guard (TLS
    // destructors run in reverse order): it allocates after the flush.
    static EARLY: AllocatesOnDrop = const { AllocatesOnDrop { seed: Cell::new(0) } };
    // Touched after allocating: its destructor runs before the exit guard's.
    static LATE: AllocatesOnDrop = const { AllocatesOnDrop { seed: Cell::new(0) } };
}

fn tls_destructors(threads: u64) {
    DESTRUCTORS_RAN.store(0, Ordering::Relaxed);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                EARLY.with(|e| e.seed.set(2 * t + 1));
                let v: Vec<String> = (0..50).map(|k| word(mix(t, k))).collect();
                LATE.with(|l| l.seed.set(2 * t + 2));
                assert!(v.iter().enumerate().all(|(k, w)| *w == word(mix(t, k as u64))));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a thread with allocating TLS destructors did not exit cleanly");
    }
    assert_eq!(DESTRUCTORS_RAN.load(Ordering::Relaxed), 2 * threads as usize, "TLS destructors did not all run");
    let mut left = std::mem::take(&mut *LEFT_BEHIND.lock().unwrap());
    left.sort();
    assert_eq!(left.len(), 2 * threads as usize);
    for (i, (seed, s)) in left.iter().enumerate() {
        assert_eq!(*seed, i as u64 + 1);
        assert_eq!(*s, (0..20).map(|k| word(mix(*seed, k))).collect::<Vec<_>>().join("-"));
    }
    drop(left);
    // Give the (empty) vector's buffer back too: `take` left a fresh one.
    *LEFT_BEHIND.lock().unwrap() = Vec::new();
}

// ---------------------------------------------------------------------------
// (d) realloc and alloc_zeroed

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8) ^ (i >> 16)) as u8
}

/// A `Vec<u8>` pushed from 1 byte to 1 MiB (each growth a `realloc`: within
/// the pool, across classes, into the fallback, within the fallback), then
/// halved and shrunk to fit down to 1 byte (back out of the fallback and down
/// through the classes). Every byte is checked after every reallocation.
fn vec_grow_and_shrink() {
    const TOP: usize = 1 << 20;
    let mut v: Vec<u8> = Vec::with_capacity(1);
    let mut capacity = v.capacity();
    let mut moves = 0;
    for i in 0..TOP {
        v.push(byte(i));
        if v.capacity() != capacity {
            capacity = v.capacity();
            moves += 1;
            assert!(v.iter().enumerate().all(|(k, &b)| b == byte(k)), "contents lost growing to capacity {capacity}");
        }
    }
    // std starts a `Vec<u8>` at 8 bytes: 8 B to 1 MiB is 17 doublings.
    assert!(moves >= 17, "8 B to 1 MiB should take at least 17 doublings, took {moves}");
    assert!(!GLOBAL.owns(v.as_ptr()), "a 1 MiB buffer comes from the system fallback");
    while v.len() > 1 {
        let len = v.len() / 2;
        v.truncate(len);
        v.shrink_to_fit();
        assert!(v.iter().enumerate().all(|(k, &b)| b == byte(k)), "contents lost shrinking to {len}");
        assert_eq!(GLOBAL.owns(v.as_ptr()), len <= 256 * 1024, "length {len}: pool or fallback");
    }
    assert_eq!(v, [byte(0)]);
}

/// Writes the pattern of `tag` into `len` bytes at `p`.
///
/// # Safety
///
/// `p..p + len` is writable and ours.
unsafe fn fill(p: *mut u8, len: usize, tag: usize) {
    for i in 0..len {
        // SAFETY: the caller owns `len` bytes at `p`.
        unsafe { p.add(i).write(byte(i ^ tag)) };
    }
}

/// Whether `len` bytes at `p` hold the pattern of `tag`.
///
/// # Safety
///
/// `p..p + len` is readable, initialised and ours.
unsafe fn check(p: *const u8, len: usize, tag: usize) -> bool {
    // SAFETY: the caller owns `len` initialised bytes at `p`.
    (0..len).all(|i| unsafe { p.add(i).read() } == byte(i ^ tag))
}

/// Raw `GLOBAL.realloc` between every pair of sizes in a list that crosses
/// class boundaries and the 256 KiB fallback boundary, at several alignments.
fn raw_realloc() {
    const SIZES: [usize; 17] =
        [1, 8, 9, 24, 100, 112, 113, 500, 1000, 4096, 4097, 20_000, 32_769, 65_536, 262_144, 262_145, 1 << 20];
    for align in [8, 64, 4096, 8192] {
        for (n, &from) in SIZES.iter().enumerate() {
            for &to in &SIZES {
                let tag = n * 1000 + to;
                let old = Layout::from_size_align(from, align).unwrap();
                let new = Layout::from_size_align(to, align).unwrap();
                // SAFETY: non-zero size; freed below with the layout it has then.
                let p = unsafe { GLOBAL.alloc(old) };
                assert!(!p.is_null() && p as usize % align == 0, "alloc {old:?}");
                // SAFETY: `from` bytes at `p` are ours.
                unsafe { fill(p, from, tag) };
                // SAFETY: `p` is live with layout `old`; `to` is non-zero and,
                // rounded up to `align`, does not overflow.
                let q = unsafe { GLOBAL.realloc(p, old, to) };
                assert!(!q.is_null() && q as usize % align == 0, "realloc {from} -> {to} at align {align}");
                // SAFETY: `q` holds the old block's first `min(from, to)` bytes.
                let intact = unsafe { check(q, from.min(to), tag) };
                assert!(intact, "realloc {from} -> {to} at align {align} lost the contents");
                let (class_old, class_new) = (GLOBAL.class_size_for(old), GLOBAL.class_size_for(new));
                match class_new {
                    None => assert!(!GLOBAL.owns(q), "{to} B at align {align} belongs in the fallback"),
                    Some(block) => {
                        assert_eq!(
                            GLOBAL.usable_size(NonNull::new(q).unwrap()),
                            Some(block),
                            "realloc {from} -> {to}: block size"
                        );
                        if class_old == class_new {
                            assert_eq!(q, p, "realloc {from} -> {to} at align {align} stays in its class: in place");
                        }
                    }
                }
                // In place up to the whole block.
                let (q, size) = match GLOBAL.usable_size(NonNull::new(q).unwrap()) {
                    Some(block) if block > to => {
                        // SAFETY: `q` is live with layout `new`.
                        let r = unsafe { GLOBAL.realloc(q, new, block) };
                        assert_eq!(r, q, "growing {to} -> {block} fills its own block: in place");
                        // SAFETY: as above, at the same address.
                        let intact = unsafe { check(r, from.min(to), tag) };
                        assert!(intact, "in-place growth {to} -> {block} lost the contents");
                        (r, block)
                    }
                    _ => (q, to),
                };
                // SAFETY: `q` is live with size `size` at `align`.
                unsafe { GLOBAL.dealloc(q, Layout::from_size_align(size, align).unwrap()) };
            }
        }
    }
}

/// `alloc_zeroed` returns zeros even when it recycles a block just freed dirty.
fn alloc_zeroed_recycled() {
    for size in [1, 16, 24, 100, 1000, 4096, 20_000, 40_000] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        for _ in 0..3 {
            // SAFETY: non-zero size; freed right away.
            let p = unsafe { GLOBAL.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `size` bytes at `p` are ours.
            unsafe {
                p.write_bytes(0xA5, size);
                GLOBAL.dealloc(p, layout);
            }
            // SAFETY: non-zero size; freed below.
            let z = unsafe { GLOBAL.alloc_zeroed(layout) };
            assert!(!z.is_null());
            // SAFETY: `size` bytes at `z` are ours and initialised (zeroed).
            assert!((0..size).all(|i| unsafe { z.add(i).read() } == 0), "alloc_zeroed({size}) not zero");
            // SAFETY: allocated above with `layout`.
            unsafe { GLOBAL.dealloc(z, layout) };
        }
    }
}

// ---------------------------------------------------------------------------
// (e) drops that re-enter the allocator during a registry update

/// A small explicit allocator (its cache slots are what the scenario counts).
fn explicit() -> Arc<SlabAllocator> {
    Arc::new(SlabAllocator::builder().size_classes(&[64]).capacity(1 << 20).build().expect("valid configuration"))
}

/// Allocates, writes, checks and frees one 64-byte block of `slab`: the
/// calling thread claims (or uses) its cache slot there.
fn use_once(slab: &SlabAllocator, tag: u8) {
    let layout = Layout::new::<[u8; 64]>();
    let p = slab.allocate(layout).expect("the pool has room");
    // SAFETY: a live 64-byte block of ours, freed once below.
    unsafe {
        p.as_ptr().write_bytes(tag, 64);
        assert_eq!(*p.as_ptr().add(63), tag);
        slab.deallocate(p, layout);
    }
}

/// What a thread started by [`exit_after_the_last_reference_dropped`] gets.
struct ExitJob {
    /// The spawner takes the allocator out and drops it while the thread
    /// still runs.
    explicit: Mutex<Option<Arc<SlabAllocator>>>,
    used: Barrier,
    dropped: Barrier,
}

extern "C" fn exit_job(arg: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `arg` is the `Arc::into_raw` of the job made by the spawner,
    // which keeps its own reference until `pthread_join` returns.
    let job = unsafe { Arc::from_raw(arg.cast_const().cast::<ExitJob>()) };
    // The global allocator first (this thread's first slot is GLOBAL's)...
    let v: Vec<u64> = (0..100).collect();
    assert_eq!(v.iter().sum::<u64>(), 4950);
    drop(v);
    // ...then the explicit one, which becomes the registry's front entry.
    let explicit = job.explicit.lock().unwrap().clone().expect("the spawner's allocator");
    use_once(&explicit, 0x5A);
    drop(explicit);
    job.used.wait();
    // The spawner drops the explicit allocator now; this thread's registry
    // entry holds the last (weak) reference to its owner. Nothing below
    // allocates or frees (the spawner still holds the job): on exit, the
    // registry's flush frees that owner through GLOBAL.
    job.dropped.wait();
    drop(job);
    core::ptr::null_mut()
}

/// Threads created with `pthread_create` (so nothing of std's runs between
/// the thread's last use of an allocator and its TLS destructors) use GLOBAL,
/// then an explicit allocator whose last `Arc` the spawner drops before the
/// thread exits. The exit flush's drop of that allocator's last weak
/// reference frees memory through GLOBAL while the registry is being
/// emptied; GLOBAL's slot and cached blocks must still be released.
fn exit_after_the_last_reference_dropped(threads: usize) {
    let start = snapshot();
    for _ in 0..threads {
        let job = Arc::new(ExitJob {
            explicit: Mutex::new(Some(explicit())),
            used: Barrier::new(2),
            dropped: Barrier::new(2),
        });
        let arg = Arc::into_raw(Arc::clone(&job)).cast_mut().cast::<libc::c_void>();
        let mut thread: libc::pthread_t = 0;
        // SAFETY: `exit_job` takes over the reference passed in `arg`; the
        // default attributes suffice.
        let rc = unsafe { libc::pthread_create(&mut thread, core::ptr::null(), exit_job, arg) };
        assert_eq!(rc, 0, "pthread_create");
        job.used.wait();
        let last = job.explicit.lock().unwrap().take();
        drop(last);
        job.dropped.wait();
        // SAFETY: created above, joined once.
        assert_eq!(unsafe { libc::pthread_join(thread, core::ptr::null_mut()) }, 0, "pthread_join");
    }
    let end = snapshot();
    assert_eq!(end.cached_threads, start.cached_threads, "exited threads still hold GLOBAL's cache slots");
    // This thread's cache is flushed before each snapshot and refilled by
    // one batch for `stats()`'s own vector: the slack of one magazine.
    assert!(
        end.in_caches <= start.in_caches + DEFAULT_CACHE_DEPTH as u64,
        "blocks stranded in exited threads' caches: {} before, {} after",
        start.in_caches,
        end.in_caches
    );
}

/// One thread uses more explicit allocators than its registry holds
/// (eight), with GLOBAL out of the registry, and registers one more after
/// the least recently used one was dropped elsewhere: evicting that entry
/// frees its owner through GLOBAL, which registers GLOBAL in the middle of
/// the eviction. No entry may be lost: after the thread exits, no surviving
/// allocator has a claimed slot or a cached block.
fn evict_while_the_evicted_allocator_is_freed() {
    let mut all: Vec<Arc<SlabAllocator>> = (0..9).map(|_| explicit()).collect();
    let (used, dropped) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let mut first_eight: Vec<Arc<SlabAllocator>> = all[..8].to_vec();
    let ninth = Arc::clone(&all[8]);
    let (u, d) = (Arc::clone(&used), Arc::clone(&dropped));
    let worker = thread::spawn(move || {
        for (i, slab) in first_eight.iter().enumerate() {
            use_once(slab, i as u8);
        }
        // Only the spawner keeps the first allocator now. Nothing below
        // allocates or frees through GLOBAL before the ninth allocator's
        // first use (`remove` keeps the vector's buffer).
        drop(first_eight.remove(0));
        u.wait();
        d.wait();
        use_once(&ninth, 9);
    });
    used.wait();
    drop(all.remove(0));
    dropped.wait();
    worker.join().expect("the worker panicked");
    for (i, slab) in all.iter().enumerate() {
        let stats = slab.stats();
        assert_eq!(stats.cached_threads, 0, "allocator {}: the exited thread's slot is still claimed", i + 2);
        assert_eq!(stats.totals.in_caches, 0, "allocator {}: blocks stranded in a dead cache", i + 2);
        assert_eq!(stats.totals.in_use, 0, "allocator {}", i + 2);
    }
}

// ---------------------------------------------------------------------------

fn all_scenarios(checked: bool) {
    live_set_unchanged("(a) 8 threads churning collections", checked, || churn_collections(8, 3000));
    live_set_unchanged("(b) 1,000 short-lived threads", checked, || short_lived_threads(checked));
    live_set_unchanged("(c) allocation in TLS destructors", checked, || tls_destructors(16));
    live_set_unchanged("(d) Vec<u8> 1 B -> 1 MiB -> 1 B", checked, vec_grow_and_shrink);
    live_set_unchanged("(d) raw realloc", checked, raw_realloc);
    live_set_unchanged("(d) alloc_zeroed", checked, alloc_zeroed_recycled);
    live_set_unchanged("(e) exit flush frees through GLOBAL", checked, || exit_after_the_last_reference_dropped(300));
    live_set_unchanged("(e) eviction frees through GLOBAL", checked, evict_while_the_evicted_allocator_is_freed);
}

/// The one test of this binary (see the module docs for why only one).
#[test]
fn whole_program_on_the_slab() {
    // Pass 1: warm-up (std's lazily created, never freed state), contents
    // checked but not the live set.
    all_scenarios(false);
    // Pass 2: everything, the live set included.
    all_scenarios(true);
    let stats = GLOBAL.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert!(stats.totals.in_use > 0, "libtest's own allocations live in the slab too");
}
