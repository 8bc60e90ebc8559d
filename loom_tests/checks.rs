//! The checks' block states (`checks.rs`) under concurrency: two racing
//! frees of one block are told apart (exactly one wins, the other is a
//! double free), and a block passed between owners through the stack is
//! never misreported (no false double free, no false write after free, no
//! "handed out twice").

use core::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;

use super::{check, PoolFixture};
use crate::checks::{check_allocate, check_free, MisuseKind};

#[test]
fn racing_frees_of_one_block_report_exactly_one_double_free() {
    check("checks::racing_frees_report_one_double_free", || {
        let f = Arc::new(PoolFixture::with_checks(1, true));
        let block = f.pool.take_one().expect("a fresh pool of one block");
        check_allocate(&f.pool, 0, block).expect("a fresh block is intact");
        let addr = block.as_ptr() as usize;
        let free = |f: Arc<PoolFixture>| {
            thread::spawn(move || check_free(&f.pool, 0, NonNull::new(addr as *mut u8).unwrap()).map_err(|m| m.kind))
        };
        let (a, b) = (free(Arc::clone(&f)), free(Arc::clone(&f)));
        let mut results = [a.join().unwrap(), b.join().unwrap()];
        results.sort_by_key(Result::is_err);
        assert_eq!(results, [Ok(()), Err(MisuseKind::DoubleFree)], "exactly one of two racing frees must win");
    });
}

#[test]
fn blocks_passed_between_owners_raise_no_false_alarm() {
    check("checks::blocks_passed_between_owners", || {
        let f = Arc::new(PoolFixture::with_checks(2, true));
        let owner = |f: Arc<PoolFixture>| {
            thread::spawn(move || {
                for _ in 0..2 {
                    let Some(block) = f.pool.take_one() else { continue };
                    check_allocate(&f.pool, 0, block).expect("an intact block");
                    check_free(&f.pool, 0, block).expect("a valid free");
                    // SAFETY: a block of the pool, freed (and poisoned) above.
                    unsafe { f.pool.give_back(block) };
                }
            })
        };
        let (a, b) = (owner(Arc::clone(&f)), owner(Arc::clone(&f)));
        a.join().unwrap();
        b.join().unwrap();
        // Every carved block is free again, and a double free of any is seen.
        while let Some(block) = f.pool.take_one() {
            check_allocate(&f.pool, 0, block).expect("an intact block");
            check_free(&f.pool, 0, block).expect("a valid free");
            assert_eq!(check_free(&f.pool, 0, block).map_err(|m| m.kind), Err(MisuseKind::DoubleFree));
        }
    });
}
