//! The real-program workload (`examples/workload/mod.rs`) on the system
//! allocator: no `#[global_allocator]`. Prints the digest and the wall time.
//!
//! ```sh
//! cargo run --release --example workload_system            # full size
//! cargo run --release --example workload_system -- --small # the test's size
//! ```

#[path = "workload/mod.rs"]
mod workload;

fn main() {
    workload::main_for("system");
}
