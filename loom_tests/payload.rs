//! Handing a block from one owner to the next through the stack: the
//! previous owner's writes to the block must happen-before the next owner's
//! reads. The payload is a `loom::cell::UnsafeCell`, so loom reports a
//! causality violation if a pop can hand out a block whose last writes it
//! does not see.
//!
//! With `--cfg lockfree_slab_weak_push` (the push CAS weakened to `Relaxed`)
//! this model fails, which `.ci/loom.sh` checks: the `Release` on the push
//! is what publishes the block.

use loom::sync::Arc;
use loom::thread;

use super::{check, Payloads, PoolFixture};

#[test]
fn previous_owners_writes_happen_before_next_owners_reads() {
    check("payload::previous_owners_writes_happen_before", || {
        let p = Arc::new(Payloads::new(PoolFixture::new(1)));
        let block = p.f.pool.take_one().expect("a fresh pool of one block");
        let addr = block.as_ptr() as usize;
        let writer = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                let block = core::ptr::NonNull::new(addr as *mut u8).unwrap();
                let i = p.f.pool.index_of(block) as usize;
                // SAFETY: this thread holds the block, so it owns its cell.
                p.cells[i].with_mut(|v| unsafe { *v = 42 });
                // SAFETY: a block of the pool, freed now.
                unsafe { p.f.pool.give_back(block) };
            })
        };
        let reader = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                // The only block is either still the writer's (then the pool
                // is dry) or freed, written to 42.
                if let Some(block) = p.f.pool.take_one() {
                    let i = p.f.pool.index_of(block) as usize;
                    // SAFETY: we hold the block now, so we own its cell.
                    let seen = p.cells[i].with(|v| unsafe { *v });
                    assert_eq!(seen, 42, "the next owner read the block before the previous owner's write");
                    // SAFETY: as above; the new owner writes its own data.
                    p.cells[i].with_mut(|v| unsafe { *v = 7 });
                    // SAFETY: ours, freed now.
                    unsafe { p.f.pool.give_back(block) };
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        let last = p.f.pool.take_one().expect("the block is back on the stack");
        // SAFETY: the main thread holds the block after both joins.
        let v = p.cells[p.f.pool.index_of(last) as usize].with(|v| unsafe { *v });
        assert!(v == 42 || v == 7);
    });
}
