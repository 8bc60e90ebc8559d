//! The integration tests that need no process of their own, as one test
//! binary: one link instead of one per file, and libtest runs them all in
//! parallel. Each test builds its own allocators and compares only their
//! statistics, so tests may share the process.
//!
//! A test that depends on the whole process (its global allocator, RSS, page
//! mappings, resource limits, panic hook, or `fork`) is a file of its own in
//! `tests/`, and says why on its first line. Two tests here do look at the
//! process, and only at what no other test touches: `trim`'s background-trim
//! tests count the threads named `lockfree-trim`, which only they start, one
//! test at a time (`ONE_BACKGROUND_TEST`: a new test that starts a background
//! trim takes it too); `lifecycle`'s page-fault test counts the faults of its
//! own thread (`RUSAGE_THREAD`).
//!
//! Run one module with a filter: `cargo test --test it trim::`.

#[path = "../common/mod.rs"]
mod common;

mod api2_collections;
mod arena;
mod exhaustion;
mod fuzz_smoke;
mod growth;
mod huge_pages;
mod layers;
mod lifecycle;
mod model;
mod stress;
mod trim;
