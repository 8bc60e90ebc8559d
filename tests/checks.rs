// Own test binary: its process-wide panic hook silences `lockfree-slab checks:` panics, also other tests' false alarms.
//! The safety net (`Builder::checks`): one test per kind of misuse, each
//! checking the message; racing double frees; a write after free caught by
//! the poison; no false alarm under concurrent valid use; and `GlobalAlloc`
//! aborting (in a child process) instead of unwinding.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::thread;

use common::{check, fill};
use lockfree_slab::{Fallback, SlabAllocator};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const L64: Layout = match Layout::from_size_align(64, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

fn checked(fallback: Fallback, depth: usize) -> SlabAllocator {
    SlabAllocator::builder()
        .size_classes(&[16, 64, 4096])
        .capacity(1 << 20)
        .cache_depth(depth)
        .fallback(fallback)
        .checks(true)
        .build()
        .unwrap()
}

/// Keeps expected misuse panics out of the test output; any other panic
/// is printed as usual.
fn quiet_misuse_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
            if !message.starts_with("lockfree-slab checks:") {
                default(info);
            }
        }));
    });
}

/// The message of the panic `f` raises; fails the test if it returns.
fn panic_message(f: impl FnOnce()) -> String {
    quiet_misuse_panics();
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("the misuse was not detected");
    payload.downcast_ref::<String>().cloned().expect("a formatted message")
}

fn assert_names(message: &str, kind: &str, class: &str, block: u64, address: usize) {
    assert!(message.starts_with(&format!("lockfree-slab checks: {kind} at {address:#x}")), "{message}");
    assert!(message.contains(class), "{message}");
    assert!(message.contains(&format!("block {block}")), "{message}");
}

#[test]
fn a_double_free_is_reported_at_the_second_free() {
    for depth in [0, 8] {
        let slab = checked(Fallback::Error, depth);
        // The first block of a fresh class is its block 0.
        let p = slab.allocate(L64).unwrap();
        // SAFETY: allocated above with L64, freed once here.
        unsafe { slab.deallocate(p, L64) };
        // SAFETY: (not: the second free is the misuse under test; the checks
        // stop it before it touches anything.)
        let message = panic_message(|| unsafe { slab.deallocate(p, L64) });
        assert_names(&message, "double free", "class 1 (64 B blocks)", 0, p.as_ptr() as usize);
        // The allocator is still usable and consistent afterwards.
        let q = slab.allocate(L64).unwrap();
        // SAFETY: allocated just above.
        unsafe { slab.deallocate(q, L64) };
        slab.flush_thread_cache();
        assert!(slab.stats().is_consistent(), "{}", slab.stats());
        assert_eq!(slab.stats().totals.in_use, 0);
    }
}

#[test]
fn racing_double_frees_are_caught_exactly_once() {
    let slab = Arc::new(checked(Fallback::Error, 8));
    let rounds = 2_000;
    // A spinning rendezvous (a blocking barrier wakes its waiters tens of
    // microseconds apart, and the frees would rarely overlap).
    let arrived = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::sync_channel::<usize>(0);
    let (tx2, rx2) = std::sync::mpsc::sync_channel::<usize>(0);
    let racer = |rx: std::sync::mpsc::Receiver<usize>| {
        let slab = Arc::clone(&slab);
        let arrived = Arc::clone(&arrived);
        thread::spawn(move || {
            quiet_misuse_panics();
            let mut caught = Vec::new();
            for (round, addr) in rx.into_iter().enumerate() {
                let p = NonNull::new(addr as *mut u8).unwrap();
                arrived.fetch_add(1, Ordering::AcqRel);
                // Spin (tight rendezvous), yielding now and then so that a
                // descheduled partner on a busy machine gets to run.
                let mut spins = 0u32;
                while arrived.load(Ordering::Acquire) < 2 * (round + 1) {
                    spins += 1;
                    if spins % 1024 == 0 {
                        thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                // SAFETY: (not: both threads free `p`; the checks must let
                // exactly one of them through.)
                let result = catch_unwind(AssertUnwindSafe(|| unsafe { slab.deallocate(p, L64) }));
                caught.push(result.err().map(|e| e.downcast_ref::<String>().cloned().unwrap()));
            }
            caught
        })
    };
    let a = racer(rx);
    let b = racer(rx2);
    for _ in 0..rounds {
        let p = slab.allocate(L64).unwrap().as_ptr() as usize;
        tx.send(p).unwrap();
        tx2.send(p).unwrap();
    }
    drop((tx, tx2));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    for (round, (a, b)) in a.iter().zip(&b).enumerate() {
        let reports: Vec<&String> = a.iter().chain(b).collect();
        assert_eq!(reports.len(), 1, "round {round}: exactly one of two racing frees must be reported: {reports:?}");
        assert!(reports[0].contains("double free"), "{}", reports[0]);
    }
    // Each block was freed exactly once: nothing lost, nothing doubled.
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.in_use, 0, "{stats}");
}

#[test]
fn a_pointer_into_the_middle_of_a_block_is_reported() {
    let slab = checked(Fallback::System, 8);
    let p = slab.allocate(L64).unwrap();
    let inner = NonNull::new(p.as_ptr().wrapping_add(24)).unwrap();
    // SAFETY: (not: the misuse under test; reported before any state changes.)
    let message = panic_message(|| unsafe { slab.deallocate(inner, L64) });
    assert!(
        message.starts_with(&format!(
            "lockfree-slab checks: free of a pointer that is not the start of a block at {inner:p}"
        )),
        "{message}"
    );
    assert!(message.contains("class 1 (64 B blocks)") && message.ends_with("24 B into the block"), "{message}");
    // The real block is still live and can be freed normally.
    // SAFETY: allocated above, freed once.
    unsafe { slab.deallocate(p, L64) };
    assert_eq!(slab.stats().totals.in_use, 0);
}

#[test]
fn blocks_never_handed_out_are_reported() {
    let slab = checked(Fallback::Error, 8);
    let p = slab.allocate(L64).unwrap();
    // Past the carved blocks of the class.
    let far = NonNull::new(p.as_ptr().wrapping_add(64 * 1000)).unwrap();
    // SAFETY: (not: the misuse under test.)
    let message = panic_message(|| unsafe { slab.deallocate(far, L64) });
    assert!(message.starts_with("lockfree-slab checks: free of a block that was never allocated"), "{message}");
    assert!(message.contains("class 1 (64 B blocks)"), "{message}");
    // Carved into this thread's magazine by the refill, but never handed out.
    let cached = NonNull::new(p.as_ptr().wrapping_add(64)).unwrap();
    // SAFETY: (not: the misuse under test.)
    let message = panic_message(|| unsafe { slab.deallocate(cached, L64) });
    assert!(message.contains("never allocated") && message.contains(&format!("{cached:p}")), "{message}");
    // SAFETY: allocated above.
    unsafe { slab.deallocate(p, L64) };
}

#[test]
fn foreign_pointers_are_reported_where_they_can_be_known() {
    // With Fallback::Error no block lives outside the pool.
    let slab = checked(Fallback::Error, 8);
    let system = Box::into_raw(Box::new([0u8; 64])).cast::<u8>();
    let foreign = NonNull::new(system).unwrap();
    // SAFETY: (not: the misuse under test; reported before anything is freed.)
    let message = panic_message(|| unsafe { slab.deallocate(foreign, L64) });
    assert_eq!(
        message,
        format!(
            "lockfree-slab checks: free of a pointer this allocator did not hand out at {foreign:p}: it is outside the pool, and with Fallback::Error no block lives elsewhere"
        )
    );
    // SAFETY: the Box's allocation, given back to its owner.
    drop(unsafe { Box::from_raw(system.cast::<[u8; 64]>()) });

    // A pointer into the allocator's metadata, just before the first span.
    let slab = checked(Fallback::System, 8);
    let first = slab.allocate(Layout::from_size_align(16, 8).unwrap()).unwrap();
    let meta = NonNull::new(first.as_ptr().wrapping_sub(64)).unwrap();
    assert!(!slab.owns(meta.as_ptr()));
    // SAFETY: (not: the misuse under test.)
    let message = panic_message(|| unsafe { slab.deallocate(meta, L64) });
    assert!(message.contains("it points into the allocator's own metadata"), "{message}");

    // A zero-size free of something other than the dangling pointer.
    let zero = Layout::from_size_align(0, 8192).unwrap(); // no class is that aligned: dangling
    let dangling = slab.allocate(zero).unwrap();
    // SAFETY: a zero-size allocation freed with its layout: valid.
    unsafe { slab.deallocate(dangling, zero) };
    let bogus = NonNull::new(0x1234_0000 as *mut u8).unwrap();
    // SAFETY: (not: the misuse under test.)
    let message = panic_message(|| unsafe { slab.deallocate(bogus, zero) });
    assert!(message.contains("zero-size free"), "{message}");
}

#[test]
fn a_write_after_free_is_caught_by_the_poison() {
    for (layout, offset) in [(L64, 40usize), (Layout::from_size_align(3000, 8).unwrap(), 2999)] {
        let slab = checked(Fallback::Error, 8);
        let p = slab.allocate(layout).unwrap();
        // SAFETY: ours until the free below.
        unsafe { fill(p, layout.size(), 7) };
        // SAFETY: allocated above.
        unsafe { slab.deallocate(p, layout) };
        // The bug: a write through the dangling pointer. The block sits in
        // this thread's magazine, mapped; only the poison notices.
        // SAFETY: (not in the Rust sense: this is the misuse under test; the
        // memory is mapped and nobody else uses it.)
        unsafe { p.as_ptr().add(offset).write(0x41) };
        let message = panic_message(|| {
            let _ = slab.allocate(layout);
        });
        assert!(message.starts_with(&format!("lockfree-slab checks: write after free at {p:p}")), "{message}");
        assert!(
            message.ends_with(&format!("byte {offset} of the freed block was overwritten with 0x41 (poison 0xdf)")),
            "{message}"
        );
    }
}

#[test]
fn freed_blocks_are_poisoned_and_intact_ones_pass() {
    let slab = checked(Fallback::Error, 8);
    let p = slab.allocate(L64).unwrap();
    // SAFETY: ours.
    unsafe { fill(p, 64, 1) };
    // SAFETY: allocated above.
    unsafe { slab.deallocate(p, L64) };
    let q = slab.allocate(L64).unwrap();
    assert_eq!(p, q, "the magazine hands back the newest block");
    // SAFETY: ours again; 64 bytes.
    let bytes = unsafe { std::slice::from_raw_parts(q.as_ptr(), 64) };
    assert!(bytes.iter().all(|&b| b == 0xDF), "{bytes:x?}");
    // SAFETY: allocated above.
    unsafe { slab.deallocate(q, L64) };
}

#[test]
fn concurrent_valid_use_raises_no_false_alarm() {
    // Blocks cross threads through the shared stacks (small magazines, many
    // frees by the other thread), and every one is pattern-checked.
    let slab = Arc::new(checked(Fallback::Error, 4));
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, u64)>(64);
    let consumer = {
        let slab = Arc::clone(&slab);
        thread::spawn(move || {
            for (addr, tag) in rx {
                let p = NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: handed over by the producer, which no longer uses it.
                unsafe {
                    assert_eq!(check(p, 64, tag), Ok(()));
                    slab.deallocate(p, L64);
                }
            }
        })
    };
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let slab = Arc::clone(&slab);
            let tx = tx.clone();
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t + 1);
                let mut mine = Vec::new();
                for i in 0..20_000u64 {
                    let tag = t << 32 | i;
                    let Ok(p) = slab.allocate(L64) else { continue };
                    // SAFETY: ours.
                    unsafe { fill(p, 64, tag) };
                    match rng.random_range(0..3) {
                        0 => tx.send((p.as_ptr() as usize, tag)).unwrap(),
                        _ => mine.push((p, tag)),
                    }
                    if mine.len() > 32 {
                        let (q, tag) = mine.swap_remove(rng.random_range(0..mine.len()));
                        // SAFETY: ours, allocated with L64.
                        unsafe {
                            assert_eq!(check(q, 64, tag), Ok(()));
                            slab.deallocate(q, L64);
                        }
                    }
                }
                for (q, tag) in mine {
                    // SAFETY: as above.
                    unsafe {
                        assert_eq!(check(q, 64, tag), Ok(()));
                        slab.deallocate(q, L64);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    drop(tx);
    consumer.join().unwrap();
    let stats = slab.stats();
    assert!(stats.is_consistent(), "{stats}");
    assert_eq!(stats.totals.in_use, 0, "{stats}");
}

#[test]
fn unchecked_allocators_do_not_pay_for_state_bytes() {
    let build =
        |checks| SlabAllocator::builder().size_classes(&[16]).capacity(1 << 24).checks(checks).build().unwrap().stats();
    let (off, on) = (build(false), build(true));
    // One state byte per block (1 M blocks of 16 B), rounded to pages.
    assert_eq!(on.reserved_bytes - off.reserved_bytes, 1 << 20, "off: {off}\non: {on}");
}

/// Run by `global_alloc_aborts_with_the_message` in a child process.
#[test]
#[ignore = "run in a child process by global_alloc_aborts_with_the_message"]
fn global_alloc_double_free_child() {
    let slab = checked(Fallback::System, 8);
    // SAFETY: a valid allocation, then a double free: the misuse under test,
    // which must abort the process before it returns.
    unsafe {
        let p = GlobalAlloc::alloc(&slab, L64);
        GlobalAlloc::dealloc(&slab, p, L64);
        GlobalAlloc::dealloc(&slab, p, L64);
    }
    unreachable!("the double free was not detected");
}

#[test]
fn global_alloc_aborts_with_the_message() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "global_alloc_double_free_child", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(libc_sigabrt()), "{stderr}");
    }
    assert!(stderr.contains("lockfree-slab checks: double free at 0x"), "{stderr}");
    assert!(stderr.contains("class 1 (64 B blocks), block 0"), "{stderr}");
}

/// SIGABRT's number on Linux and the BSDs (libc is not a dependency of the
/// tests for one constant).
fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn checks_follow_the_cargo_feature_by_default() {
    let slab =
        SlabAllocator::builder().size_classes(&[16]).capacity(1 << 16).fallback(Fallback::Error).build().unwrap();
    let p = slab.allocate(Layout::from_size_align(16, 8).unwrap()).unwrap();
    // SAFETY: allocated above.
    unsafe { slab.deallocate(p, Layout::from_size_align(16, 8).unwrap()) };
    if cfg!(feature = "checks") {
        // SAFETY: (not: a double free, which the checks the feature turned on
        // report before anything is touched.)
        let message = panic_message(|| unsafe { slab.deallocate(p, Layout::from_size_align(16, 8).unwrap()) });
        assert!(message.contains("double free"), "{message}");
    } else {
        // Without the feature the default is off: no state bytes reserved.
        let on = SlabAllocator::builder().size_classes(&[16]).capacity(1 << 16).checks(true).build().unwrap();
        assert!(on.stats().reserved_bytes > slab.stats().reserved_bytes);
    }
}

#[test]
fn blocks_a_trim_gave_back_are_not_taken_for_writes_after_free() {
    let slab = checked(Fallback::Error, 0);
    let blocks: Vec<_> = (0..4096).map(|_| slab.allocate(L64).unwrap()).collect();
    for &p in &blocks {
        // SAFETY: ours, 64 bytes.
        unsafe { fill(p, 64, 5) };
    }
    for &p in &blocks {
        // SAFETY: allocated above with L64, freed once.
        unsafe { slab.deallocate(p, L64) };
    }
    let report = slab.trim();
    assert!(report.free_page_bytes >= 4096 * 64 / 2, "{report}");
    // Every block comes back (zeros where the pages went, poison elsewhere)
    // without a false report…
    let again: Vec<_> = (0..4096).map(|_| slab.allocate(L64).unwrap()).collect();
    let last = again[0];
    for &p in &again[1..] {
        // SAFETY: allocated just above with L64, freed once.
        unsafe { slab.deallocate(p, L64) };
    }
    // …and a trimmed block is still free in the checks' eyes once freed.
    // SAFETY: allocated above, freed once.
    unsafe { slab.deallocate(last, L64) };
    slab.trim();
    // SAFETY: (not: the double free of a trimmed block under test.)
    let message = panic_message(|| unsafe { slab.deallocate(last, L64) });
    assert!(message.contains("double free"), "{message}");
}
