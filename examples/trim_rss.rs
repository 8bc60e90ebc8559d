//! How much memory each allocator gives back after a wave: allocate 1 GiB in
//! 64-byte blocks (16 Mi blocks), free 90 % of them, then ask the allocator
//! to return free memory to the OS — `SlabAllocator::trim()` for the slab,
//! `malloc_trim(0)` for glibc, `mi_collect(true)` for mimalloc.
//!
//! Two free patterns:
//! - **oldest 90 %**: the first 90 % allocated are freed, so the survivors
//!   sit together at the end and almost every page of the freed part is
//!   free as a whole;
//! - **random 90 %**: a pseudo-random 90 % is freed, so the survivors are
//!   scattered: a 4 KiB page holds 64 blocks and keeps one of them alive
//!   with probability 1 − 0.9⁶⁴ ≈ 99.9 %, so almost nothing can come back,
//!   for any allocator that does not move live data.
//!
//! RSS is per process, so each (allocator, pattern) runs in a child process
//! of its own (this program re-executes itself with `--child`). The child
//! commits its pointer array first, then reads RSS from `/proc/self/statm`
//! before allocating, after allocating (one word written per block), after
//! freeing and after the trim call. The table shows RSS above that
//! baseline.
//!
//! ```sh
//! cargo run --release --example trim_rss            # 1 GiB, as in docs/PERFORMANCE.md
//! cargo run --release --example trim_rss -- --mib 64 # a quick run
//! ```

use std::process::Command;
use std::time::Instant;

use lockfree_slab::SlabAllocator;

const BLOCK: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Slab,
    Glibc,
    Mimalloc,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Slab, Kind::Glibc, Kind::Mimalloc];

    fn name(self) -> &'static str {
        match self {
            Kind::Slab => "lockfree-slab",
            Kind::Glibc => "glibc",
            Kind::Mimalloc => "mimalloc",
        }
    }

    fn trim_call(self) -> &'static str {
        match self {
            Kind::Slab => "trim()",
            Kind::Glibc => "malloc_trim(0)",
            Kind::Mimalloc => "mi_collect(true)",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    Oldest,
    Random,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Oldest => "oldest",
            Pattern::Random => "random",
        }
    }

    /// Whether block `i` of `n` (in allocation order) is freed.
    fn frees(self, i: usize, n: usize) -> bool {
        match self {
            Pattern::Oldest => i < n / 10 * 9,
            Pattern::Random => {
                // splitmix64 of the index: a fixed, well-spread 90 %.
                let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
                x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (x ^ (x >> 31)) % 10 != 0
            }
        }
    }
}

/// One allocator as the workload sees it.
trait Wave {
    fn alloc(&self) -> *mut u8;
    /// # Safety
    /// `p` came from `alloc` and is freed once.
    unsafe fn free(&self, p: *mut u8);
    /// Gives free memory back; returns what the allocator says it released,
    /// if it says.
    fn trim(&self) -> Option<usize>;
}

struct Slab(SlabAllocator);

const LAYOUT: std::alloc::Layout = match std::alloc::Layout::from_size_align(BLOCK, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

impl Wave for Slab {
    fn alloc(&self) -> *mut u8 {
        self.0.allocate(LAYOUT).expect("the pool holds the whole wave").as_ptr()
    }
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's contract; allocated with LAYOUT.
        unsafe { self.0.deallocate(std::ptr::NonNull::new_unchecked(p), LAYOUT) }
    }
    fn trim(&self) -> Option<usize> {
        Some(self.0.trim().released_bytes)
    }
}

struct Glibc;

impl Wave for Glibc {
    fn alloc(&self) -> *mut u8 {
        // SAFETY: malloc has no preconditions.
        let p = unsafe { libc::malloc(BLOCK) }.cast::<u8>();
        assert!(!p.is_null(), "malloc failed");
        p
    }
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's contract: from malloc, freed once.
        unsafe { libc::free(p.cast()) }
    }
    fn trim(&self) -> Option<usize> {
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        None
    }
}

struct Mimalloc;

impl Wave for Mimalloc {
    fn alloc(&self) -> *mut u8 {
        // SAFETY: mi_malloc has no preconditions.
        let p = unsafe { libmimalloc_sys::mi_malloc(BLOCK) }.cast::<u8>();
        assert!(!p.is_null(), "mi_malloc failed");
        p
    }
    unsafe fn free(&self, p: *mut u8) {
        // SAFETY: the caller's contract: from mi_malloc, freed once.
        unsafe { libmimalloc_sys::mi_free(p.cast()) }
    }
    fn trim(&self) -> Option<usize> {
        // SAFETY: mi_collect has no preconditions.
        unsafe { libmimalloc_sys::mi_collect(true) };
        None
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|f| f.parse().ok()).expect("statm's second field");
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// The child: runs the wave and prints one `RESULT` line.
fn child(kind: Kind, pattern: Pattern, bytes: usize) {
    let n = bytes / BLOCK;
    let mut ptrs = vec![0usize; n];
    for (i, p) in ptrs.iter_mut().enumerate() {
        *p = i; // commit the pointer array before the baseline
    }
    let wave: Box<dyn Wave> = match kind {
        // Room for the wave and a quarter more; pages committed on touch.
        Kind::Slab => Box::new(Slab(
            SlabAllocator::builder().size_classes(&[BLOCK]).capacity(bytes + bytes / 4).build().expect("a 64 B pool"),
        )),
        Kind::Glibc => Box::new(Glibc),
        Kind::Mimalloc => Box::new(Mimalloc),
    };
    let base = rss_bytes();
    for (i, slot) in ptrs.iter_mut().enumerate() {
        let p = wave.alloc();
        // SAFETY: a fresh block of 64 bytes, 8-aligned.
        unsafe { p.cast::<usize>().write(i) };
        *slot = p as usize;
    }
    let allocated = rss_bytes();
    for (i, &p) in ptrs.iter().enumerate() {
        if pattern.frees(i, n) {
            // SAFETY: allocated above, freed once.
            unsafe { wave.free(p as *mut u8) };
        }
    }
    let freed = rss_bytes();
    let start = Instant::now();
    let reported = wave.trim();
    let trim_time = start.elapsed();
    let trimmed = rss_bytes();
    // The survivors are still there.
    for (i, &p) in ptrs.iter().enumerate() {
        if !pattern.frees(i, n) {
            // SAFETY: a live block, written with its index above.
            assert_eq!(unsafe { (p as *const usize).read() }, i, "a live block lost its contents");
        }
    }
    println!(
        "RESULT {} {} {} {} {} {} {} {}",
        kind.name(),
        pattern.name(),
        base,
        allocated,
        freed,
        trimmed,
        trim_time.as_nanos(),
        reported.map_or(-1, |r| r as i64)
    );
}

fn mib(bytes: i64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut bytes = 1usize << 30;
    if let Some(i) = args.iter().position(|a| a == "--mib") {
        bytes = args.get(i + 1).and_then(|v| v.parse::<usize>().ok()).expect("--mib N") << 20;
    }
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let kind = args.get(i + 1).and_then(|k| Kind::parse(k)).expect("--child KIND PATTERN");
        let pattern = match args.get(i + 2).map(String::as_str) {
            Some("oldest") => Pattern::Oldest,
            Some("random") => Pattern::Random,
            _ => panic!("--child KIND oldest|random"),
        };
        child(kind, pattern, bytes);
        return;
    }

    let exe = std::env::current_exe().expect("own path");
    println!(
        "wave: allocate {} MiB in {BLOCK}-byte blocks ({} blocks), free 90 %, trim; each in its own process",
        bytes >> 20,
        bytes / BLOCK
    );
    println!("RSS in MiB above the baseline taken before the first allocation\n");
    println!(
        "| freed | allocator | trim call | after alloc | after free | after trim | given back by trim | trim time | reported |"
    );
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for pattern in [Pattern::Oldest, Pattern::Random] {
        for kind in Kind::ALL {
            let out = Command::new(&exe)
                .args(["--mib", &(bytes >> 20).to_string(), "--child", kind.name(), pattern.name()])
                .output()
                .expect("run the child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().find(|l| l.starts_with("RESULT ")) else {
                eprintln!("{} {}: no result\n{}", kind.name(), pattern.name(), String::from_utf8_lossy(&out.stderr));
                continue;
            };
            let f: Vec<i64> = line.split_whitespace().skip(3).map(|v| v.parse().unwrap()).collect();
            let (base, allocated, freed, trimmed, nanos, reported) = (f[0], f[1], f[2], f[3], f[4], f[5]);
            println!(
                "| {} 90 % | {} | `{}` | {} | {} | {} | {} | {:.1} ms | {} |",
                pattern.name(),
                kind.name(),
                kind.trim_call(),
                mib(allocated - base),
                mib(freed - base),
                mib(trimmed - base),
                mib(freed - trimmed),
                nanos as f64 / 1e6,
                if reported < 0 { "—".to_string() } else { format!("{} MiB", mib(reported)) },
            );
        }
    }
}
