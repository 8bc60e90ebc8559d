//! The real-program workload (`examples/workload/mod.rs`) with mimalloc as
//! the global allocator. Prints the digest and the wall time.
//!
//! ```sh
//! cargo run --release --example workload_mimalloc
//! ```

#[path = "workload/mod.rs"]
mod workload;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    workload::main_for("mimalloc");
}
