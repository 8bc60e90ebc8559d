//! The carver's frontier racing with pops of the same class near
//! exhaustion: every block is handed out at most once, the frontier never
//! hands out a block past the capacity, and a dry class answers `None`.

use loom::sync::Arc;
use loom::thread;

use super::{assert_all_blocks, check, PoolFixture};
use crate::class::carver::Carver;

/// Two threads carve batches of two from three blocks: the ranges are
/// disjoint, cover the capacity, and the overshoot of the frontier is
/// clamped.
#[test]
fn carve_batches_near_exhaustion() {
    check("carver::carve_batches_near_exhaustion", || {
        let carver = Arc::new(Carver::new(3));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let carver = Arc::clone(&carver);
                thread::spawn(move || {
                    let mut got: Vec<u32> = carver.carve(2).collect();
                    got.extend(carver.carve(2));
                    got
                })
            })
            .collect();
        let got: Vec<u32> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        assert_all_blocks(got, 3);
        assert_eq!(carver.carved(), 3);
        assert!(carver.carve(1).is_empty());
    });
}

/// The uncached path (`take_one`: pop, else carve) on a class of three
/// blocks: one thread takes two and gives one back while the other takes
/// two. Whatever the order, no block is held twice, the class is never over
/// capacity, and `carved = held + on the stack` at the end.
#[test]
fn take_one_races_give_back_near_exhaustion() {
    check("carver::take_one_races_give_back", || {
        const CAP: u32 = 3;
        let f = Arc::new(PoolFixture::new(CAP));
        let giver = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                let a = f.pool.take_one().expect("at most 3 held of 3: never dry here");
                let b = f.pool.take_one();
                // SAFETY: `a` came from this pool and we are done with it.
                unsafe { f.pool.give_back(a) };
                b.map(|b| f.pool.index_of(b))
            })
        };
        let taker = {
            let f = Arc::clone(&f);
            thread::spawn(move || {
                [f.pool.take_one(), f.pool.take_one()]
                    .into_iter()
                    .flatten()
                    .map(|p| f.pool.index_of(p))
                    .collect::<Vec<_>>()
            })
        };
        let mut held: Vec<u32> = giver.join().unwrap().into_iter().collect();
        held.extend(taker.join().unwrap());
        let carved = f.pool.carved();
        assert!(carved <= CAP);
        assert_eq!(carved as u64, held.len() as u64 + f.pool.free_blocks(), "carved = held + free");
        // A request is refused only when all three blocks are carved and
        // none is on the stack, so the two threads end up holding at least
        // two blocks between them.
        assert!(held.len() >= 2);
        while let Some(p) = f.pool.take_one() {
            held.push(f.pool.index_of(p));
        }
        assert_all_blocks(held, CAP);
    });
}
