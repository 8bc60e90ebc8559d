//! The safety net ([`Builder::checks`](crate::Builder::checks)): detects
//! misuse at the call that causes it, instead of as corruption far away.
//!
//! **What is checked.** Every block of a checked allocator has a state byte
//! in the region's metadata (one `AtomicU8` per block, next to the runs'
//! free bits; none is reserved when checks are off):
//!
//! ```text
//! FRESH (never handed out) --allocate--> LIVE --free--> FREED --allocate--> LIVE …
//! ```
//!
//! - A free moves its block `LIVE → FREED` with one compare-exchange. Two
//!   frees of one block, even racing on two threads, cannot both win it: the
//!   loser finds `FREED` (a double free) or `FRESH` (a pointer that was never
//!   handed out) and reports it. Before that, the pointer must be the start
//!   of a block the class has carved: a pointer into the middle of a block, or
//!   past the class's carved blocks, is reported without touching any state.
//! - A freed block is filled with [`POISON`]; when it is handed out again
//!   (`FREED → LIVE`, by a swap) the poison is verified, so a write through a
//!   dangling pointer is reported with the offset it hit.
//! - A pointer outside every span is freed by the fallback. Where it cannot
//!   have come from the fallback, it is reported as foreign: a non-zero-size
//!   free when the fallback is [`Fallback::Error`](crate::Fallback::Error), a
//!   pointer into the allocator's own metadata, or a zero-size free of a
//!   pointer that is not the dangling pointer zero-size requests get. With
//!   `Fallback::System` a foreign pointer outside the region cannot be told
//!   from a system block, and goes to the system allocator as before.
//!
//! A trim (`trim.rs`) that gives a freed block's pages back to the OS marks
//! it `TRIMMED`: its bytes now read as zero in part, so its poison is not
//! verified when it is handed out again (a write after free into it is
//! simply discarded), while a free of it is still a double free.
//!
//! **What is not.** A double free after the block was handed out again looks
//! like a valid free of the new owner's block (no quarantine delays reuse); a
//! write after free into a block that is reallocated before any check is seen
//! only if it hits poison that is still there.
//!
//! **Cost, and no cost.** A checked allocator's hot-path id never matches a
//! thread's registry entry (see `region::CHECKED_ID`), so every one of its
//! operations takes the cold path, which does the checks around the same
//! thread caches and stacks. An unchecked allocator never reads the setting:
//! its hot path is the same instructions as without this module.
//!
//! **Orderings.** The state transitions are `Relaxed`: that one block's
//! transitions never race to success is a property of read-modify-writes on
//! one location (they are totally ordered), whatever their ordering. The
//! poison is ordered like any block contents: written before the block goes
//! into the freeing thread's magazine, and published to other threads by the
//! stack's Release push and Acquire pop.
//!
//! **Reporting.** [`OnMisuse`] says how: [`Panic`] for the allocator's own
//! API and the `Allocator` trait, [`Abort`] for `GlobalAlloc`, where unwinding
//! is undefined behaviour; its message is written to stderr without
//! allocating. After a report, the block concerned may be leaked; nothing
//! else is affected.

use core::fmt;
use core::ptr::NonNull;

use crate::class::states::{FREED, FRESH, LIVE, TRIMMED};
use crate::class::ClassPool;
use crate::sync::{AtomicU8, Ordering};

/// The byte freed blocks are filled with.
pub(crate) const POISON: u8 = 0xDF;
const POISON_WORD: u64 = u64::from_ne_bytes([POISON; 8]);

/// The kinds of misuse the checks detect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MisuseKind {
    /// A free of a block that is already free.
    DoubleFree,
    /// A free of a pointer inside a span that is not the start of a block.
    NotBlockStart { offset: usize },
    /// A free of a block start that this allocator never handed out.
    NeverAllocated,
    /// A free of a pointer that is not this allocator's.
    Foreign { why: &'static str },
    /// A freed block's poison was overwritten before it was handed out again.
    WriteAfterFree { offset: usize, found: u8 },
    /// A block about to be handed out is still live (the allocator's own
    /// state is corrupt: e.g. a free of the block through another path).
    HandedOutTwice,
}

/// One detected misuse, with what the message names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Misuse {
    pub(crate) kind: MisuseKind,
    /// `(class index, block size)`, if the address is in a class's span.
    pub(crate) class: Option<(usize, usize)>,
    /// The block (index in its class) the address falls in.
    pub(crate) block: Option<u64>,
    pub(crate) address: usize,
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            MisuseKind::DoubleFree => "double free",
            MisuseKind::NotBlockStart { .. } => "free of a pointer that is not the start of a block",
            MisuseKind::NeverAllocated => "free of a block that was never allocated",
            MisuseKind::Foreign { .. } => "free of a pointer this allocator did not hand out",
            MisuseKind::WriteAfterFree { .. } => "write after free",
            MisuseKind::HandedOutTwice => "block handed out twice (allocator state corrupted)",
        };
        write!(f, "lockfree-slab checks: {what} at {:#x}", self.address)?;
        if let Some((class, size)) = self.class {
            write!(f, ", class {class} ({size} B blocks)")?;
        }
        if let Some(block) = self.block {
            write!(f, ", block {block}")?;
        }
        match self.kind {
            MisuseKind::NotBlockStart { offset } => write!(f, ", {offset} B into the block"),
            MisuseKind::Foreign { why } => write!(f, ": {why}"),
            MisuseKind::WriteAfterFree { offset, found } => {
                write!(f, ": byte {offset} of the freed block was overwritten with {found:#04x} (poison {POISON:#04x})")
            }
            _ => Ok(()),
        }
    }
}

/// How a detected misuse is reported.
pub(crate) trait OnMisuse {
    fn report(misuse: Misuse) -> !;
}

/// Report by panicking (the allocator's own API, the `Allocator` trait).
pub(crate) enum Panic {}

impl OnMisuse for Panic {
    #[cold]
    #[inline(never)]
    fn report(misuse: Misuse) -> ! {
        panic!("{misuse}")
    }
}

/// Report by writing the message to stderr and aborting (`GlobalAlloc`:
/// unwinding out of a global allocator is undefined behaviour, and
/// formatting a panic would allocate through it).
pub(crate) enum Abort {}

impl OnMisuse for Abort {
    #[cold]
    #[inline(never)]
    fn report(misuse: Misuse) -> ! {
        let mut message = StackMessage::default();
        // A message longer than the buffer is cut short, not lost.
        let _ = fmt::write(&mut message, format_args!("{misuse}\n"));
        message.write_to_stderr();
        std::process::abort()
    }
}

/// Test-only: reports by unwinding with a [`Marked`] payload, so a test can
/// tell that a report came from the policy it passed in, on whatever path
/// the misuse was found (`GlobalAlloc` passes [`Abort`] the same way).
#[cfg(all(test, not(lockfree_slab_loom)))]
pub(crate) enum PanicMarked {}

/// The payload of a [`PanicMarked`] report: the message.
#[cfg(all(test, not(lockfree_slab_loom)))]
#[derive(Debug)]
pub(crate) struct Marked(pub(crate) String);

#[cfg(all(test, not(lockfree_slab_loom)))]
impl OnMisuse for PanicMarked {
    fn report(misuse: Misuse) -> ! {
        std::panic::panic_any(Marked(misuse.to_string()))
    }
}

/// A fixed buffer that formats without allocating.
struct StackMessage {
    bytes: [u8; 320],
    len: usize,
}

impl Default for StackMessage {
    fn default() -> Self {
        StackMessage { bytes: [0; 320], len: 0 }
    }
}

impl fmt::Write for StackMessage {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let take = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

impl StackMessage {
    fn write_to_stderr(&self) {
        crate::os::write_stderr(&self.bytes[..self.len]);
    }
}

/// Where `ptr` falls in `pool`'s span, for messages.
fn misuse(kind: MisuseKind, class: usize, pool: &ClassPool, ptr: *const u8) -> Misuse {
    let offset = pool.offset_of(ptr);
    Misuse {
        kind,
        class: Some((class, pool.block_size())),
        block: Some((offset / pool.block_size()) as u64),
        address: ptr as usize,
    }
}

/// Checks the free of `ptr`, a pointer into `pool`'s span, and on success
/// poisons the block; returns only if the free is valid.
pub(crate) fn on_free<R: OnMisuse>(pool: &ClassPool, class: usize, ptr: NonNull<u8>) {
    if let Err(misuse) = check_free(pool, class, ptr) {
        R::report(misuse)
    }
}

/// Marks a block of `pool` as handed out, verifying its poison if it was
/// freed before; returns only if the block is intact.
pub(crate) fn on_allocate<R: OnMisuse>(pool: &ClassPool, class: usize, block: NonNull<u8>) {
    if let Err(misuse) = check_allocate(pool, class, block) {
        R::report(misuse)
    }
}

/// Reports unless `ptr` is a live block of `pool` (for resizing in place).
pub(crate) fn assert_live<R: OnMisuse>(pool: &ClassPool, class: usize, ptr: NonNull<u8>) {
    let state = match block_state(pool, class, ptr) {
        Ok(state) => state,
        Err(misuse) => R::report(misuse),
    };
    // Relaxed: the caller owns the block if its use is valid; a racing free
    // would be misuse that the free itself reports.
    match state.load(Ordering::Relaxed) {
        LIVE => {}
        FREED | TRIMMED => R::report(misuse(MisuseKind::DoubleFree, class, pool, ptr.as_ptr())),
        _ => R::report(misuse(MisuseKind::NeverAllocated, class, pool, ptr.as_ptr())),
    }
}

/// The state of the block starting at `ptr`, if `ptr` is the start of a
/// block `pool` has carved.
fn block_state(pool: &ClassPool, class: usize, ptr: NonNull<u8>) -> Result<&AtomicU8, Misuse> {
    let states = pool.states();
    debug_assert!(states.is_enabled());
    let offset = pool.offset_of(ptr.as_ptr());
    let size = pool.block_size();
    if offset % size != 0 {
        return Err(misuse(MisuseKind::NotBlockStart { offset: offset % size }, class, pool, ptr.as_ptr()));
    }
    let index = offset / size;
    if index >= pool.carved() as usize {
        return Err(misuse(MisuseKind::NeverAllocated, class, pool, ptr.as_ptr()));
    }
    // SAFETY: checks are on (the caller's region has states); index <
    // carved <= capacity; the states live in the region that holds `pool`.
    Ok(unsafe { states.get(index) })
}

/// [`on_free`]'s check: the `LIVE → FREED` transition, then the poison.
pub(crate) fn check_free(pool: &ClassPool, class: usize, ptr: NonNull<u8>) -> Result<(), Misuse> {
    let state = block_state(pool, class, ptr)?;
    // Relaxed: see the module docs; only one free of a live block can win.
    match state.compare_exchange(LIVE, FREED, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => {}
        Err(FREED | TRIMMED) => return Err(misuse(MisuseKind::DoubleFree, class, pool, ptr.as_ptr())),
        Err(_) => return Err(misuse(MisuseKind::NeverAllocated, class, pool, ptr.as_ptr())),
    }
    // SAFETY: the block was live and is now ours alone (we won its
    // LIVE → FREED transition); it is `block_size` bytes, 8-aligned.
    unsafe { ptr.as_ptr().write_bytes(POISON, pool.block_size()) };
    Ok(())
}

/// [`on_allocate`]'s check: the swap to `LIVE`, and the poison of a block
/// that was freed before.
pub(crate) fn check_allocate(pool: &ClassPool, class: usize, block: NonNull<u8>) -> Result<(), Misuse> {
    let state = block_state(pool, class, block)?;
    // Relaxed: the block came from our magazine or the runs, whose Acquire
    // take ordered the previous owner's free (state and poison) before this.
    match state.swap(LIVE, Ordering::Relaxed) {
        FRESH | TRIMMED => Ok(()),
        FREED => {
            // SAFETY: the block is ours (just taken from a magazine or the
            // stack), `block_size` bytes long.
            let bytes = unsafe { core::slice::from_raw_parts(block.as_ptr(), pool.block_size()) };
            match first_overwritten(bytes) {
                None => Ok(()),
                Some(offset) => Err(misuse(
                    MisuseKind::WriteAfterFree { offset, found: bytes[offset] },
                    class,
                    pool,
                    block.as_ptr(),
                )),
            }
        }
        _ => Err(misuse(MisuseKind::HandedOutTwice, class, pool, block.as_ptr())),
    }
}

/// Marks blocks `first..end` of `pool`, whose pages a trim has just
/// released, as [`TRIMMED`] (nothing to do without checks).
pub(crate) fn on_trimmed(pool: &ClassPool, first: usize, end: usize) {
    let states = pool.states();
    if !states.is_enabled() {
        return;
    }
    for index in first..end {
        // SAFETY: checks are on; the trim holds these blocks, all below the
        // frontier it read, so below the capacity; the states live in the
        // region that holds `pool`.
        let state = unsafe { states.get(index) };
        // Relaxed: the trim holds the block (it is on no stack and in no
        // magazine); the Release push that gives it back publishes this.
        state.store(TRIMMED, Ordering::Relaxed);
    }
}

/// Reports a foreign pointer outside every span.
pub(crate) fn foreign<R: OnMisuse>(ptr: NonNull<u8>, why: &'static str) -> ! {
    R::report(Misuse { kind: MisuseKind::Foreign { why }, class: None, block: None, address: ptr.as_ptr() as usize })
}

/// The offset of the first byte of `bytes` that is not poison.
fn first_overwritten(bytes: &[u8]) -> Option<usize> {
    // Blocks are multiples of 8 bytes and 8-aligned: compare words, then
    // find the byte within the first bad word.
    let (head, words, tail) = {
        // SAFETY: every bit pattern is a valid u64.
        unsafe { bytes.align_to::<u64>() }
    };
    if let Some(i) = head.iter().position(|&b| b != POISON) {
        return Some(i);
    }
    if let Some(w) = words.iter().position(|&w| w != POISON_WORD) {
        let at = head.len() + w * 8;
        return bytes[at..at + 8].iter().position(|&b| b != POISON).map(|i| at + i);
    }
    let at = head.len() + words.len() * 8;
    tail.iter().position(|&b| b != POISON).map(|i| at + i)
}

#[cfg(all(test, not(lockfree_slab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_first_overwritten_byte_is_found_anywhere() {
        let mut block = vec![POISON; 64];
        assert_eq!(first_overwritten(&block), None);
        for at in [0, 7, 8, 33, 63] {
            block[at] = 0;
            assert_eq!(first_overwritten(&block), Some(at));
            block[at] = POISON;
        }
        assert_eq!(first_overwritten(&block[3..]), None);
        block[5] = 1;
        assert_eq!(first_overwritten(&block[3..]), Some(2));
    }

    #[test]
    fn messages_name_kind_class_block_and_address() {
        let m = Misuse { kind: MisuseKind::DoubleFree, class: Some((3, 64)), block: Some(17), address: 0x1000 };
        assert_eq!(m.to_string(), "lockfree-slab checks: double free at 0x1000, class 3 (64 B blocks), block 17");
        let m = Misuse { kind: MisuseKind::WriteAfterFree { offset: 9, found: 0x41 }, ..m };
        assert!(m.to_string().ends_with("byte 9 of the freed block was overwritten with 0x41 (poison 0xdf)"));
    }

    #[test]
    fn an_overlong_message_is_cut_not_overflowed() {
        let mut message = StackMessage::default();
        let long = "x".repeat(1000);
        fmt::Write::write_str(&mut message, &long).unwrap();
        assert_eq!(message.len, 320);
    }
}
