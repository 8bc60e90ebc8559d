//! The real-program workload (`examples/workload/mod.rs`) with lockfree-slab
//! as the global allocator. Prints the digest, the wall time and the
//! allocator's statistics. The digest must equal `workload_system`'s
//! (`tests/workload_identical.rs` checks that).
//!
//! ```sh
//! cargo run --release --example workload_slab
//! ```

use lockfree_slab::SlabAllocator;

#[path = "workload/mod.rs"]
mod workload;

#[global_allocator]
static GLOBAL: SlabAllocator = SlabAllocator::new();

fn main() {
    workload::main_for("lockfree-slab");
    let stats = GLOBAL.stats();
    assert!(stats.is_consistent(), "{stats}");
    if std::env::var_os("LFS_WORKLOAD_STATS").is_some() {
        println!("{stats}");
    }
}
