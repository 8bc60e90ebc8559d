//! The real programs of the comparison tool (`examples/compare/real.rs` runs
//! them, each allocator as the `#[global_allocator]` of its own process),
//! shared with `tests/real_programs.rs` (each includes this folder with
//! `#[path]`, so it runs under whatever global allocator the including
//! binary has).
//!
//! Four programs built from real crates, on real inputs (`inputs.rs`: the
//! sources and crates.io index entries of this repository's dependency
//! tree, never data generated to suit an allocator):
//!
//! | program | what it does | file |
//! | --- | --- | --- |
//! | `parse` | syn parses Rust sources into trees, walks, prints, drops; 2 threads | `parse.rs` |
//! | `reqresp` | JSON requests and answers between client and server threads (mpsc) | `reqresp.rs` |
//! | `threads` | rounds of 16 short-lived threads counting words | `threads.rs` |
//! | `churn` | a long-running cache of JSON and text documents of every size | `churn.rs` |
//!
//! Each returns a digest of everything it computed (FNV-1a, combined in a
//! fixed order), which must be the same on every allocator.

#![allow(dead_code)] // each including binary uses a different subset

#[path = "churn.rs"]
mod churn;
#[path = "inputs.rs"]
pub mod inputs;
#[path = "parse.rs"]
mod parse;
#[path = "reqresp.rs"]
mod reqresp;
#[path = "threads.rs"]
mod threads;

#[path = "../workload/fnv.rs"]
mod fnv;
pub use fnv::Fnv;

use inputs::Inputs;

/// One real program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    Parse,
    ReqResp,
    Threads,
    Churn,
}

impl Program {
    pub const ALL: [Program; 4] = [Program::Parse, Program::ReqResp, Program::Threads, Program::Churn];

    pub fn name(self) -> &'static str {
        match self {
            Program::Parse => "parse",
            Program::ReqResp => "reqresp",
            Program::Threads => "threads",
            Program::Churn => "churn",
        }
    }

    pub fn from_name(s: &str) -> Option<Program> {
        Program::ALL.into_iter().find(|p| p.name() == s)
    }

    /// One line for the report: what runs, on how many threads.
    pub fn title(self) -> &'static str {
        match self {
            Program::Parse => {
                "parse: syn parses Rust sources into syntax trees, a Visit walks them, quote prints them back; 2 threads"
            }
            Program::ReqResp => {
                "reqresp: 2 client threads send index entries as JSON requests over mpsc to 2 server threads, \
                 which parse them and answer in JSON (frees cross threads both ways)"
            }
            Program::Threads => {
                "threads: rounds of 16 short-lived threads, each counting the words of 2 source files in a HashMap"
            }
            Program::Churn => {
                "churn: 2 threads keep a cache of 24 documents each (JSON trees and text listings of every size), \
                 each new one evicting a random old one"
            }
        }
    }
}

/// How much work a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Well under a second for all four together (CI, tests, `--quick`).
    Quick,
    /// The measured size: a fraction of a second to a second or so per run
    /// on a 2-core machine.
    Full,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Quick => "quick",
            Scale::Full => "full",
        }
    }
    pub fn from_name(s: &str) -> Option<Scale> {
        [Scale::Quick, Scale::Full].into_iter().find(|x| x.name() == s)
    }
}

const MB: usize = 1_000_000;

/// A program with its inputs read, ready to run.
pub struct Prepared {
    pub program: Program,
    pub scale: Scale,
    pub inputs: Inputs,
}

/// Reads the inputs `program` needs at `scale` (not part of the timed work).
pub fn prepare(program: Program, scale: Scale) -> Prepared {
    let full = scale == Scale::Full;
    let (source_bytes, json_bytes) = match program {
        Program::Parse => (if full { 6 * MB } else { MB / 5 }, 0),
        Program::ReqResp => (0, if full { 8 * MB } else { MB / 5 }),
        Program::Threads => (if full { 2 * MB } else { MB / 5 }, 0),
        Program::Churn => (if full { 4 * MB } else { MB / 5 }, if full { 8 * MB } else { MB / 2 }),
    };
    Prepared { program, scale, inputs: Inputs::load(source_bytes, json_bytes) }
}

impl Prepared {
    /// Runs the program once; its digest.
    pub fn run(&self) -> u64 {
        let full = self.scale == Scale::Full;
        let i = &self.inputs;
        match self.program {
            Program::Parse => parse::run(&i.sources, 2),
            Program::ReqResp => reqresp::run(&i.json, 2, 2, if full { 3 } else { 1 }),
            Program::Threads => threads::run(&i.sources, if full { 120 } else { 3 }, 16, 2),
            Program::Churn => churn::run(i, 2, if full { 1000 } else { 40 }, 24),
        }
    }
}
