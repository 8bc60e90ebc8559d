//! The per-block states the misuse checks keep (`checks.rs` reads and
//! moves them; this file only says what they are and where they live): one
//! `AtomicU8` per block, in the region's metadata, none when checks are off.
//!
//! ```text
//! FRESH --allocate--> LIVE --free--> FREED --allocate--> LIVE ...
//!                                      \--trim--> TRIMMED --allocate--> LIVE
//! ```

use crate::sync::AtomicU8;

/// The state of a block that was never handed out; zero, so a fresh
/// reservation starts with every block in it.
pub(crate) const FRESH: u8 = 0;
/// Handed out and not freed since.
pub(crate) const LIVE: u8 = 1;
/// Freed: on a stack or in a magazine, filled with poison.
pub(crate) const FREED: u8 = 2;
/// Freed, and some of its pages given back to the OS by a trim: its bytes
/// are poison or zero, so handing it out again verifies nothing.
pub(crate) const TRIMMED: u8 = 3;

/// The per-block states of one class: `capacity` bytes in the region.
#[derive(Clone, Copy)]
pub(crate) struct BlockStates {
    first: *const AtomicU8,
}

impl BlockStates {
    /// No states: checks are off.
    pub(crate) const NONE: BlockStates = BlockStates { first: core::ptr::null() };

    /// # Safety
    ///
    /// `first` points to one initialised `AtomicU8` per block of the class,
    /// which live as long as every user of this value.
    pub(crate) unsafe fn new(first: *const AtomicU8) -> Self {
        BlockStates { first }
    }

    pub(crate) fn is_enabled(self) -> bool {
        !self.first.is_null()
    }

    /// The state of block `index`.
    ///
    /// # Safety
    ///
    /// The states are enabled, `index` is below the class's capacity, and
    /// the states (the region holding them) outlive `'a`.
    pub(crate) unsafe fn get<'a>(self, index: usize) -> &'a AtomicU8 {
        debug_assert!(self.is_enabled());
        // SAFETY: the caller's contract: one initialised state per block
        // (`new`'s contract), alive for `'a`.
        unsafe { &*self.first.add(index) }
    }
}
