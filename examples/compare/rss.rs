//! Memory: RSS for many live 64-byte blocks, each allocator in a child
//! process of its own (the tool re-executes itself with `--rss-child`), so
//! no allocator's pages or metadata count against another.
//!
//! The child first commits the array that will hold the pointers, reads its
//! baseline, then builds the allocator (the slab's reservation and metadata
//! count against it), allocates the blocks, writes a word into each, and
//! reads `VmHWM` and `VmRSS` from `/proc/self/status`.

use std::alloc::System;
use std::hint::black_box;
use std::process::Command;

use mimalloc::MiMalloc;
#[cfg(not(target_env = "msvc"))]
use tikv_jemallocator::Jemalloc;

use crate::common::*;
use crate::Kind;

pub const BLOCK: usize = 64;

/// What one child reported, in KiB as /proc gives it.
#[derive(Clone, Debug)]
pub struct Memory {
    pub kind: Kind,
    pub blocks: usize,
    pub baseline_kib: u64,
    pub hwm_kib: u64,
    pub rss_kib: u64,
}

impl Memory {
    /// Peak RSS growth per live block, bytes.
    pub fn bytes_per_block(&self) -> f64 {
        (self.hwm_kib.saturating_sub(self.baseline_kib) * 1024) as f64 / self.blocks as f64
    }
    /// Bytes of RSS growth per live byte requested.
    pub fn per_live_byte(&self) -> f64 {
        self.bytes_per_block() / BLOCK as f64
    }
}

pub fn status(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

fn hold<A: BenchAlloc>(a: &A, ptrs: &mut [usize]) {
    let l = layout(BLOCK);
    for (i, slot) in ptrs.iter_mut().enumerate() {
        let p = a.alloc(l);
        // SAFETY: a fresh 64-byte block, 8-aligned.
        unsafe { p.cast::<usize>().write(i) };
        *slot = p as usize;
    }
    black_box(&*ptrs);
}

/// The child's side: prints `baseline_kib hwm_kib rss_kib` and exits
/// without freeing anything.
pub fn child(kind: Kind, blocks: usize) -> ! {
    let mut ptrs = vec![0usize; blocks];
    for (i, p) in ptrs.iter_mut().enumerate() {
        *p = i; // commit the pointer array before the baseline
    }
    let baseline = status("VmRSS:").unwrap_or(0);
    match kind {
        Kind::Slab => hold(&slab_memory(), &mut ptrs),
        Kind::System => hold(&Peer(System), &mut ptrs),
        Kind::Mimalloc => hold(&Peer(MiMalloc), &mut ptrs),
        #[cfg(not(target_env = "msvc"))]
        Kind::Jemalloc => hold(&Peer(Jemalloc), &mut ptrs),
        #[cfg(target_env = "msvc")]
        Kind::Jemalloc => unreachable!(),
        Kind::Floor => {
            let f = FreeList::new(BLOCK);
            hold(&f, &mut ptrs);
            std::mem::forget(f);
        }
    }
    let (hwm, rss) = (status("VmHWM:").unwrap_or(0), status("VmRSS:").unwrap_or(0));
    println!("{baseline} {hwm} {rss}");
    std::process::exit(0)
}

/// The parent's side: runs the child for `kind`.
pub fn measure(kind: Kind, blocks: usize) -> Result<Memory, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--rss-child", kind.flag(), &blocks.to_string()])
        .output()
        .map_err(|e| format!("cannot run the RSS child: {e}"))?;
    if !out.status.success() {
        return Err(format!("RSS child for {} failed: {}", kind.name(), String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    match v[..] {
        [baseline_kib, hwm_kib, rss_kib] if hwm_kib > 0 => Ok(Memory { kind, blocks, baseline_kib, hwm_kib, rss_kib }),
        _ => Err(format!("RSS child for {} printed {text:?} (no /proc/self/status?)", kind.name())),
    }
}
