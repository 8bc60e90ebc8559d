//! The bump arena's cursor (`src/arena.rs`): threads racing for the last
//! bytes with both paths at once — the `fetch_add` of small alignments
//! (with its rollback on exhaustion) and the CAS loop of alignments above
//! 16. Every block handed out must be in bounds, aligned and disjoint from
//! every other; a failure must report a remainder that really is too small;
//! and no rollback may give back bytes that a block holds (a later
//! allocation would overlap it).

use std::alloc::Layout;

use loom::sync::Arc;
use loom::thread;

use super::check;
use crate::arena::{Arena, ArenaError};

const CAPACITY: usize = 4096;

/// The requests the threads make: (size, align). Alignment 64 takes the CAS
/// path, the others the `fetch_add` path.
const FETCH_ADD_48: (usize, usize) = (48, 8);
const CAS_16_AT_64: (usize, usize) = (16, 64);
const FETCH_ADD_16: (usize, usize) = (16, 16);
const FETCH_ADD_32: (usize, usize) = (32, 16);
const FETCH_ADD_64: (usize, usize) = (64, 16);

/// An arena of one page with all but `left` bytes handed out (to the block
/// at offset 0, so its address is the base). `left` is a multiple of 64, so
/// the cursor starts 64-aligned.
fn nearly_full(left: usize) -> (Arc<Arena>, usize) {
    let arena = Arena::new(CAPACITY).expect("a page");
    assert_eq!(arena.capacity(), CAPACITY);
    let first = arena.alloc(Layout::from_size_align(CAPACITY - left, 16).unwrap()).expect("fits");
    assert_eq!(arena.used(), CAPACITY - left);
    (Arc::new(arena), first.as_ptr().addr())
}

/// One request on its own thread; the answer as an offset from `base`.
fn request(
    arena: &Arc<Arena>,
    base: usize,
    (size, align): (usize, usize),
) -> thread::JoinHandle<Result<usize, ArenaError>> {
    let arena = Arc::clone(arena);
    thread::spawn(move || {
        let layout = Layout::from_size_align(size, align).unwrap();
        arena.alloc(layout).map(|p| p.as_ptr().addr() - base)
    })
}

/// Checks the answers to `requests` (in the same order): each block in
/// bounds, aligned (the base is page-aligned, so offsets align like
/// addresses), disjoint from the first block and from each other; each
/// failure an exhaustion whose reported remainder cannot hold the request.
/// Returns the blocks as `(start, end)` offsets, ends rounded up to 16.
#[track_caller]
fn check_answers(
    prefilled: usize,
    requests: &[(usize, usize)],
    answers: &[Result<usize, ArenaError>],
) -> Vec<(usize, usize)> {
    let mut blocks = vec![(0, prefilled)];
    for (&(size, align), answer) in requests.iter().zip(answers) {
        match *answer {
            Ok(start) => {
                let end = start + size.next_multiple_of(16);
                assert_eq!(start % align, 0, "a block of align {align} at offset {start}");
                assert!(end <= CAPACITY, "a block [{start}, {end}) past the end");
                for &(s, e) in &blocks {
                    assert!(end <= s || e <= start, "[{start}, {end}) overlaps [{s}, {e}): {answers:?}");
                }
                blocks.push((start, end));
            }
            Err(ArenaError::Exhausted { requested, remaining }) => {
                assert_eq!(requested, size);
                // The most a request needs: its footprint plus padding up to
                // its alignment (the cursor is always 16-aligned).
                let needed = size.next_multiple_of(16) + align.saturating_sub(16);
                assert!(remaining < needed, "refused {size} B at {align} with {remaining} B reported left");
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    blocks
}

/// After the threads: the cursor is at or past every block's end (no
/// rollback gave back held bytes), and the main thread fills whatever is
/// left with 16-byte blocks, which must overlap nothing, until the arena
/// reports exactly 0 bytes left.
#[track_caller]
fn fill_the_tail(arena: &Arena, base: usize, mut blocks: Vec<(usize, usize)>, answers: &[Result<usize, ArenaError>]) {
    let end = blocks.iter().map(|&(_, e)| e).max().unwrap();
    assert!(arena.used() >= end, "the cursor {} is below a block's end {end}: {answers:?}", arena.used());
    let small = Layout::from_size_align(16, 16).unwrap();
    let last = loop {
        match arena.alloc(small) {
            Ok(p) => {
                let start = p.as_ptr().addr() - base;
                let new = (start, start + 16);
                assert!(start % 16 == 0 && new.1 <= CAPACITY, "the tail block {new:?}");
                for &(s, e) in &blocks {
                    assert!(new.1 <= s || e <= new.0, "the tail block {new:?} overlaps {:?}: {answers:?}", (s, e));
                }
                blocks.push(new);
            }
            Err(e) => break e,
        }
    };
    assert_eq!(last, ArenaError::Exhausted { requested: 16, remaining: 0 });
    assert_eq!(arena.used(), CAPACITY);
}

/// Three threads whose requests fit together in every order (the worst
/// order pads the CAS path's block by 48 bytes): all succeed, disjoint and
/// aligned, and the cursor ends exactly at the last block's end.
#[test]
fn racing_requests_that_fit_all_succeed() {
    check("arena::racing_requests_that_fit_all_succeed", || {
        const LEFT: usize = 128;
        let requests = [FETCH_ADD_48, CAS_16_AT_64, FETCH_ADD_16];
        let (arena, base) = nearly_full(LEFT);
        let threads: Vec<_> = requests.iter().map(|&r| request(&arena, base, r)).collect();
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(answers.iter().all(Result::is_ok), "a request that fits was refused: {answers:?}");
        let blocks = check_answers(CAPACITY - LEFT, &requests, &answers);
        let end = blocks.iter().map(|&(_, e)| e).max().unwrap();
        assert_eq!(arena.used(), end, "the cursor is the end of the last block: {answers:?}");
    });
}

/// Three threads race for the last 64 bytes with 96 bytes of requests:
/// some fail. The blocks handed out never overlap or pass the end, each
/// refusal is honest about the space it saw, the first request to reach the
/// cursor always wins, and no rollback gives back bytes that a block holds:
/// afterwards, the main thread fills whatever is left with 16-byte blocks,
/// which must overlap nothing, until the arena reports 0 bytes left.
#[test]
fn racing_requests_near_exhaustion_never_overlap() {
    check("arena::racing_requests_near_exhaustion_never_overlap", || {
        const LEFT: usize = 64;
        let requests = [FETCH_ADD_48, CAS_16_AT_64, FETCH_ADD_32];
        let (arena, base) = nearly_full(LEFT);
        let threads: Vec<_> = requests.iter().map(|&r| request(&arena, base, r)).collect();
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let blocks = check_answers(CAPACITY - LEFT, &requests, &answers);
        assert!(blocks.len() > 1, "every request alone fits, so the first one wins: {answers:?}");
        fill_the_tail(&arena, base, blocks, &answers);
    });
}

/// Two `fetch_add`s of all 64 remaining bytes and a CAS-path request: when
/// both adds saw room and the CAS wins in between, both overshoot at once
/// and roll back in either order (one rollback fails and leaves its bytes
/// claimed; neither may move the cursor below the CAS's block). Same checks
/// as above.
#[test]
fn two_overshoots_roll_back_in_either_order() {
    check("arena::two_overshoots_roll_back_in_either_order", || {
        const LEFT: usize = 64;
        let requests = [FETCH_ADD_64, CAS_16_AT_64, FETCH_ADD_64];
        let (arena, base) = nearly_full(LEFT);
        let threads: Vec<_> = requests.iter().map(|&r| request(&arena, base, r)).collect();
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let blocks = check_answers(CAPACITY - LEFT, &requests, &answers);
        assert_eq!(blocks.len(), 2, "exactly one request fits: {answers:?}");
        fill_the_tail(&arena, base, blocks, &answers);
    });
}

/// Two threads with two requests each, both paths on each thread, for the
/// last 64 bytes: a thread's second request comes after its own first one
/// failed and rolled back (a single thread never loses the tail to its own
/// failed request). Same checks as above.
#[test]
fn two_requests_each_roll_back_in_any_order() {
    check("arena::two_requests_each_roll_back_in_any_order", || {
        const LEFT: usize = 64;
        let plans = [[FETCH_ADD_48, FETCH_ADD_32], [CAS_16_AT_64, FETCH_ADD_16]];
        let (arena, base) = nearly_full(LEFT);
        let threads: Vec<_> = plans
            .iter()
            .map(|&plan| {
                let arena = Arc::clone(&arena);
                thread::spawn(move || {
                    plan.map(|(size, align)| {
                        let layout = Layout::from_size_align(size, align).unwrap();
                        arena.alloc(layout).map(|p| p.as_ptr().addr() - base)
                    })
                })
            })
            .collect();
        let answers: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        let requests: Vec<_> = plans.concat();
        let blocks = check_answers(CAPACITY - LEFT, &requests, &answers);
        assert!(blocks.len() > 1, "every request alone fits, so the first one wins: {answers:?}");
        fill_the_tail(&arena, base, blocks, &answers);
    });
}

/// Three threads, one of which asks twice, for the last 64 bytes: two
/// `fetch_add`s can overshoot while a third request succeeds, and a request
/// can succeed between the two rollbacks. A rollback that gave back bytes
/// unconditionally (a `fetch_sub`) would then move the cursor below that
/// block, and the tail fill would overlap it; the CAS-guarded rollback
/// cannot.
#[test]
fn a_request_between_two_rollbacks_keeps_its_block() {
    check("arena::a_request_between_two_rollbacks_keeps_its_block", || {
        const LEFT: usize = 64;
        let (arena, base) = nearly_full(LEFT);
        let twice = {
            let arena = Arc::clone(&arena);
            thread::spawn(move || {
                [FETCH_ADD_16, FETCH_ADD_16].map(|(size, align)| {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    arena.alloc(layout).map(|p| p.as_ptr().addr() - base)
                })
            })
        };
        let big = request(&arena, base, FETCH_ADD_64);
        let small = request(&arena, base, FETCH_ADD_16);
        let mut answers: Vec<_> = twice.join().unwrap().into();
        answers.push(big.join().unwrap());
        answers.push(small.join().unwrap());
        let requests = [FETCH_ADD_16, FETCH_ADD_16, FETCH_ADD_64, FETCH_ADD_16];
        let blocks = check_answers(CAPACITY - LEFT, &requests, &answers);
        fill_the_tail(&arena, base, blocks, &answers);
    });
}
