//! The fuzz target: every input is a program for the driver
//! (`tests/fuzz/driver.rs`, shared with `tests/it/fuzz_smoke.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../driver.rs"]
mod driver;

fuzz_target!(|data: &[u8]| {
    driver::run(data);
});
