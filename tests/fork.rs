// Own test binary: it forks 240 times, and each child copies every thread of the process at that moment.
//! `fork` from a multi-threaded process: whatever the parent's other threads
//! were doing inside the allocator — trimming, growing, churning through the
//! caches and the shared stacks — the child allocates, frees and exits.
//!
//! Its own binary: it forks hundreds of times, and a child is a copy of
//! every thread's state at that moment; other tests' threads would only add
//! noise. The child sticks to the allocator and `_exit` (no panics, no
//! output: it reports through its exit status).

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lockfree_slab::{Fallback, SlabAllocator};

const ROUNDS: usize = 240;
const BLOCKS: usize = 1024;
const GROWTH: usize = 2;

fn layout() -> Layout {
    Layout::from_size_align(64, 8).unwrap()
}

/// One class of `BLOCKS` 64-byte blocks, small caches, two extensions, then
/// the system.
fn small_growing_allocator() -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[64])
        .capacity(64 * BLOCKS)
        .cache_depth(8)
        .growth(GROWTH)
        .fallback(Fallback::System)
        .build()
        .expect("valid configuration")
}

/// The child's whole job: allocate until a block comes from the system
/// fallback (every reservation's class used up, so the dry path ran),
/// writing each block, then check and free them all. Returns the exit status.
fn child(slab: &SlabAllocator) -> i32 {
    let mut blocks: Vec<NonNull<u8>> = Vec::with_capacity((GROWTH + 1) * BLOCKS + 1);
    let mut reached_fallback = false;
    while blocks.len() <= (GROWTH + 1) * BLOCKS {
        let Ok(p) = slab.allocate(layout()) else { return 2 };
        // SAFETY: a live 64-byte block of ours.
        unsafe { p.as_ptr().write_bytes(blocks.len() as u8, 64) };
        blocks.push(p);
        if !slab.owns(p.as_ptr()) {
            reached_fallback = true;
            break;
        }
    }
    for (i, &p) in blocks.iter().enumerate() {
        // SAFETY: written above, still ours.
        if unsafe { *p.as_ptr().add(63) } != i as u8 {
            return 3;
        }
        // SAFETY: allocated above with `layout()`, freed once.
        unsafe { slab.deallocate(p, layout()) };
    }
    if reached_fallback {
        0
    } else {
        4
    }
}

/// Waits for `pid` (a liveness bound: a hung child is killed and reported).
fn wait_for(pid: libc::pid_t, round: usize) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(rc >= 0, "waitpid failed");
        if rc == pid {
            assert!(libc::WIFEXITED(status), "round {round}: the child died of signal {}", libc::WTERMSIG(status));
            return libc::WEXITSTATUS(status);
        }
        if Instant::now() > deadline {
            // SAFETY: our own child, still running.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("round {round}: the child hung (killed after 10 s)");
        }
        thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_child_allocates_whatever_the_parent_was_doing() {
    let slab = Arc::new(small_growing_allocator());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    // Trims in a loop: at any moment one may hold the class's free blocks.
    {
        let (slab, stop) = (Arc::clone(&slab), Arc::clone(&stop));
        workers.push(thread::spawn(move || {
            let mut trims = 0u64;
            while !stop.load(Ordering::Relaxed) {
                slab.trim();
                trims += 1;
            }
            trims
        }));
    }
    // Two churners: fill past the first reservation (growth, then the
    // fallback), free everything (through the caches, in batches), again.
    for t in 0..2u8 {
        let (slab, stop) = (Arc::clone(&slab), Arc::clone(&stop));
        workers.push(thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let blocks: Vec<_> = (0..BLOCKS + BLOCKS / 2).map(|_| slab.allocate(layout()).unwrap()).collect();
                for &p in &blocks {
                    // SAFETY: live 64-byte blocks of ours.
                    unsafe { p.as_ptr().write_bytes(t, 64) };
                }
                for &p in &blocks {
                    // SAFETY: written above, ours; freed once.
                    unsafe {
                        assert_eq!(*p.as_ptr().add(63), t, "a churned block was corrupted");
                        slab.deallocate(p, layout());
                    }
                }
                rounds += 1;
            }
            rounds
        }));
    }
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        thread::sleep(Duration::from_micros(500 + (round as u64 * 7919) % 1500));
        // SAFETY: the child runs only `child` and `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let status = child(&slab);
            // SAFETY: leaves the child at once, running nothing of the
            // parent's (no destructors, no atexit handlers).
            unsafe { libc::_exit(status) };
        }
        let status = wait_for(pid, round);
        if status != 0 {
            failures.push((round, status));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<u64> = workers.into_iter().map(|w| w.join().expect("a worker panicked")).collect();
    assert!(
        failures.is_empty(),
        "children that failed (round, status: 2 refused, 3 corrupted, 4 no fallback): {failures:?}"
    );
    assert!(counts.iter().all(|&n| n > 0), "every worker ran while the parent forked: {counts:?}");
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.grown_reservations as usize, GROWTH, "the churners grew the pool");
    assert_eq!(stats.totals.in_use, 0);
}
