//! The Treiber stack: concurrent push/pop, the ABA interleaving, and batch
//! push (`push_chain`) / batch pop (`pop_batch`).

use loom::sync::Arc;
use loom::thread;

use super::{assert_all_blocks, check, StackFixture};
use crate::class::stack::NIL;

/// Two threads each pop a block, push it back and pop again, on a stack of
/// three: no block is lost or handed to both.
#[test]
fn push_pop_two_threads() {
    check("stack::push_pop_two_threads", || {
        const CAP: u32 = 3;
        let f = Arc::new(StackFixture::new(CAP, &[0, 1, 2]));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let f = Arc::clone(&f);
                thread::spawn(move || {
                    let first = f.stack.pop().expect("three blocks, two threads: never dry");
                    // SAFETY: we just popped `first`, so it is ours.
                    unsafe { f.stack.push(first) };
                    f.stack.pop()
                })
            })
            .collect();
        let mut held: Vec<u32> = workers.into_iter().filter_map(|w| w.join().unwrap()).collect();
        held.extend(f.drain(CAP));
        assert_all_blocks(held, CAP);
    });
}

/// Three threads pop and push back on a stack of two blocks (so at least one
/// of them sometimes finds it empty).
#[test]
fn push_pop_three_threads() {
    check("stack::push_pop_three_threads", || {
        const CAP: u32 = 2;
        let f = Arc::new(StackFixture::new(CAP, &[0, 1]));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let f = Arc::clone(&f);
                thread::spawn(move || {
                    if let Some(i) = f.stack.pop() {
                        // SAFETY: we just popped `i`, so it is ours.
                        unsafe { f.stack.push(i) };
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_all_blocks(f.drain(CAP), CAP);
        assert_eq!(f.stack.len(), 0);
    });
}

/// The ABA interleaving. The stack is A → B → C. Thread 1 starts a pop: it
/// reads the head (A) and A's link (B), then CASes the head from A to B.
/// Thread 2 meanwhile pops A, pops B (and keeps it), and pushes A back, so A
/// is on top again but its link now points to C. Thread 1's CAS must fail:
/// if it won, the head would become B — a block thread 2 owns — and B would
/// be handed out twice.
///
/// With `--cfg lockfree_slab_no_aba_tag` (tag step 0) this model fails, which
/// `.ci/loom.sh` checks: the tag is what stops the bug.
#[test]
fn aba_stale_head_cannot_win() {
    check("stack::aba_stale_head_cannot_win", || {
        const CAP: u32 = 3;
        const A: u32 = 0;
        const B: u32 = 1;
        let f = Arc::new(StackFixture::new(CAP, &[2, B, A]));
        let stale_popper = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let head = f.stack.head();
                if head.index == NIL {
                    return None;
                }
                let next = f.stack.next_of(head.index);
                f.stack.try_replace_head(head, next).ok().map(|()| head.index)
            })
        };
        let pop_pop_push = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let a = f.stack.pop();
                let b = f.stack.pop();
                if let Some(a) = a {
                    // SAFETY: we popped `a`, so it is ours.
                    unsafe { f.stack.push(a) };
                }
                b
            })
        };
        let mut held: Vec<u32> =
            [stale_popper.join().unwrap(), pop_pop_push.join().unwrap()].into_iter().flatten().collect();
        held.extend(f.drain(CAP));
        assert_all_blocks(held, CAP);
    });
}

/// A pre-linked chain goes on with one CAS while another thread pops a batch
/// and pushes it back as its own chain, then keeps one block.
#[test]
fn push_chain_races_pop_batch() {
    check("stack::push_chain_races_pop_batch", || {
        const CAP: u32 = 4;
        let f = Arc::new(StackFixture::new(CAP, &[0]));
        let chain_pusher = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                // SAFETY: blocks 1, 2, 3 are this thread's (never pushed);
                // linked 1 → 2 → 3 before the push.
                unsafe {
                    f.stack.set_link(1, 2);
                    f.stack.set_link(2, 3);
                    f.stack.push_chain(1, 3);
                }
            })
        };
        let batch_popper = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let mut got = [NIL; 2];
                let n = f.stack.pop_batch(2, |position, index| got[position as usize] = index);
                let got = &got[..n as usize];
                assert!(got.iter().all(|&i| i < CAP));
                match *got {
                    [] => {}
                    [one] => {
                        // SAFETY: popped, so ours.
                        unsafe { f.stack.push(one) }
                    }
                    [first, last] => {
                        // SAFETY: both popped, so ours; relinked before the
                        // push (the old link may already say so, or not).
                        unsafe {
                            f.stack.set_link(first, last);
                            f.stack.push_chain(first, last);
                        }
                    }
                    _ => unreachable!(),
                }
                f.stack.pop()
            })
        };
        chain_pusher.join().unwrap();
        let mut held: Vec<u32> = batch_popper.join().unwrap().into_iter().collect();
        held.extend(f.drain(CAP));
        assert_all_blocks(held, CAP);
        assert_eq!(f.stack.len(), 0);
    });
}
