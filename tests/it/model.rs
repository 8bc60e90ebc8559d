//! Property test: random allocate / free sequences against a simple model.
//!
//! On one thread the model can predict every answer exactly: a request the
//! table gives class `c` succeeds from the pool iff fewer than `capacity(c)`
//! blocks of `c` are live (the thread's own cache, the stack and the carver
//! together hold all the rest); otherwise the fallback answers. Every live
//! block is checked against a shadow map for overlap and its contents are
//! verified when it is freed; the statistics must match the model.

use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ptr::NonNull;

use crate::common::{check, fill};
use lockfree_slab::{Fallback, SlabAllocator};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_log2: u32 },
    Free { pick: usize },
    FlushCache,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..1200, 0u32..8).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        4 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        1 => Just(Op::FlushCache),
    ]
}

struct Live {
    ptr: NonNull<u8>,
    layout: Layout,
    tag: u64,
    class: Option<usize>,
}

fn run(ops: Vec<Op>, fallback: Fallback, depth: usize) -> Result<(), TestCaseError> {
    let classes = [16usize, 48, 128, 512, 1024];
    let slab = SlabAllocator::builder()
        .size_classes(&classes)
        .capacity(16 * 1024)
        .cache_depth(depth)
        .fallback(fallback)
        .build()
        .unwrap();
    let capacity: Vec<u64> = slab.stats().classes.iter().map(|c| c.capacity).collect();
    let mut live: Vec<Live> = Vec::new();
    let mut spans: BTreeMap<usize, usize> = BTreeMap::new(); // start -> end of live pool blocks
    let mut in_use = vec![0u64; classes.len()];
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Alloc { size, align_log2 } => {
                let layout = Layout::from_size_align(size, 1 << align_log2).unwrap();
                let class = slab.class_size_for(layout).map(|s| classes.iter().position(|&c| c == s).unwrap());
                let pool_has_room = class.is_some_and(|c| in_use[c] < capacity[c]);
                let result = slab.allocate(layout);
                match (fallback, pool_has_room, result) {
                    (_, true, Ok(ptr)) => {
                        let c = class.unwrap();
                        prop_assert!(slab.owns(ptr.as_ptr()), "step {step}: pool had room but fallback answered");
                        prop_assert_eq!(slab.usable_size(ptr), Some(classes[c]));
                        let start = ptr.as_ptr() as usize;
                        let end = start + classes[c];
                        if let Some((&s, &e)) = spans.range(..end).next_back() {
                            prop_assert!(
                                e <= start,
                                "step {}: [{:#x},{:#x}) overlaps live [{:#x},{:#x})",
                                step,
                                start,
                                end,
                                s,
                                e
                            );
                        }
                        spans.insert(start, end);
                        in_use[c] += 1;
                        prop_assert_eq!(start % layout.align(), 0);
                        // SAFETY: a fresh block of at least `size` bytes.
                        unsafe { fill(ptr, size, step as u64) };
                        live.push(Live { ptr, layout, tag: step as u64, class: Some(c) });
                    }
                    (Fallback::System, false, Ok(ptr)) => {
                        prop_assert!(
                            !slab.owns(ptr.as_ptr()),
                            "step {step}: a dry or unclassed request came from the pool"
                        );
                        prop_assert_eq!(ptr.as_ptr() as usize % layout.align(), 0);
                        // SAFETY: a fresh block of at least `size` bytes.
                        unsafe { fill(ptr, size, step as u64) };
                        live.push(Live { ptr, layout, tag: step as u64, class: None });
                    }
                    (Fallback::Error, false, Err(_)) => {}
                    (_, room, result) => {
                        return Err(TestCaseError::fail(format!(
                            "step {step}: {layout:?} (class {class:?}, room {room}) answered {result:?}"
                        )))
                    }
                }
            }
            Op::Free { pick } => {
                if live.is_empty() {
                    continue;
                }
                let block = live.swap_remove(pick % live.len());
                // SAFETY: live and ours, filled with `tag`.
                prop_assert_eq!(unsafe { check(block.ptr, block.layout.size(), block.tag) }, Ok(()));
                if let Some(c) = block.class {
                    spans.remove(&(block.ptr.as_ptr() as usize));
                    in_use[c] -= 1;
                }
                // SAFETY: allocated from `slab` with this layout, freed once.
                unsafe { slab.deallocate(block.ptr, block.layout) };
            }
            Op::FlushCache => slab.flush_thread_cache(),
        }
        let stats = slab.stats();
        prop_assert!(stats.is_consistent(), "step {step}:\n{stats}");
        let counted: Vec<u64> = stats.classes.iter().map(|c| c.in_use).collect();
        prop_assert_eq!(&counted, &in_use, "step {}", step);
    }
    for block in live {
        // SAFETY: as above.
        unsafe { slab.deallocate(block.ptr, block.layout) };
    }
    prop_assert_eq!(slab.stats().totals.in_use, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_model_with_error_fallback(ops in proptest::collection::vec(op(), 1..400), depth in prop_oneof![Just(0usize), Just(2), Just(8), Just(64)]) {
        run(ops, Fallback::Error, depth)?;
    }

    #[test]
    fn matches_the_model_with_system_fallback(ops in proptest::collection::vec(op(), 1..400), depth in prop_oneof![Just(0usize), Just(4), Just(64)]) {
        run(ops, Fallback::System, depth)?;
    }
}
