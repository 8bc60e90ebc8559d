//! Glue to the two allocator interfaces of the ecosystem: `GlobalAlloc` (so a
//! `static` [`SlabAllocator`] can be the `#[global_allocator]`) and
//! `allocator_api2::alloc::Allocator` (so `allocator_api2`'s `Vec` and `Box`
//! and `hashbrown`'s `HashMap` can live in an allocator shared between
//! threads), for `&SlabAllocator` and for the cheap, clonable [`SlabHandle`].
//!
//! `GlobalAlloc` reports failure with a null pointer and must not unwind;
//! nothing here panics: misuse found by the [checks](crate::Builder::checks)
//! aborts with its message under `GlobalAlloc`, and panics under `Allocator`. `realloc`, `grow` and `shrink` stay in place when the
//! new layout maps to the same class (a class is a block size, so "the block
//! is big enough" and "no smaller class fits" together); otherwise they
//! allocate, copy and free, also across to and from the system fallback.

use core::alloc::{GlobalAlloc, Layout};
use core::ops::Deref;
use core::ptr::{self, NonNull};
use std::alloc::System;
use std::sync::Arc;

use allocator_api2::alloc::{AllocError, Allocator};

use crate::checks::Abort;
use crate::SlabAllocator;

// SAFETY: `alloc` returns null or a block valid for `layout` until it is
// freed (SlabAllocator::allocate's contract); `dealloc` takes such blocks
// back; `realloc` keeps the contents up to the smaller size. Nothing unwinds.
unsafe impl GlobalAlloc for SlabAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.allocate_with::<Abort>(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a non-null block from `alloc` with
        // `layout`, freed once (GlobalAlloc's contract).
        unsafe { self.deallocate_with::<Abort>(NonNull::new_unchecked(ptr), layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.allocate_zeroed_with::<Abort>(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `ptr` is a live block of `layout`,
        // `new_size` is non-zero and, rounded to `layout.align()`, does not
        // overflow, so the new layout is valid.
        unsafe {
            let block = NonNull::new_unchecked(ptr);
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            if self.resize_in_place_with::<Abort>(block, new_layout).is_some() {
                return ptr;
            }
            if self.both_with_the_system(block, layout, new_layout) {
                // The system's own realloc may grow in place or remap huge
                // blocks instead of copying them.
                return System.realloc(ptr, layout, new_size);
            }
            let Ok(new) = self.allocate_with::<Abort>(new_layout) else {
                return ptr::null_mut();
            };
            ptr::copy_nonoverlapping(ptr, new.as_ptr(), layout.size().min(new_size));
            self.deallocate_with::<Abort>(block, layout);
            new.as_ptr()
        }
    }
}

/// The block at `ptr` as a slice of `len` bytes.
fn slice(ptr: NonNull<u8>, len: usize) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(ptr, len)
}

/// Moves a block to a new layout: allocate, copy the smaller size, free.
///
/// # Safety
///
/// `ptr` is a live block of `slab` allocated with `old`.
unsafe fn relocate(
    slab: &SlabAllocator,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
    zeroed: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    let fresh = if zeroed { slab.allocate_zeroed(new)? } else { slab.allocate(new)? };
    // SAFETY: both blocks are live and distinct; we copy what both hold.
    unsafe {
        ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.as_ptr(), old.size().min(new.size()));
        slab.deallocate(ptr, old);
    }
    Ok(slice(fresh, new.size()))
}

// SAFETY: blocks stay valid until deallocated (or the allocator, which the
// reference borrows, is dropped); `grow`/`shrink` either keep the block (same
// class, alignment checked) or relocate it with its contents; zero-size
// requests get valid, aligned pointers that `deallocate` accepts.
unsafe impl Allocator for &SlabAllocator {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        SlabAllocator::allocate(self, layout).map(|p| slice(p, layout.size()))
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        SlabAllocator::allocate_zeroed(self, layout).map(|p| slice(p, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded from the caller (the trait's contract).
        unsafe { SlabAllocator::deallocate(self, ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.resize_in_place(ptr, new).is_some() {
            return Ok(slice(ptr, new.size()));
        }
        // SAFETY: forwarded from the caller.
        unsafe { relocate(self, ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.resize_in_place(ptr, new).is_some() {
            // SAFETY: the block holds `new.size()` bytes; zero the new tail.
            unsafe { ptr.as_ptr().add(old.size()).write_bytes(0, new.size() - old.size()) };
            return Ok(slice(ptr, new.size()));
        }
        // SAFETY: forwarded from the caller.
        unsafe { relocate(self, ptr, old, new, true) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.resize_in_place(ptr, new).is_some() {
            return Ok(slice(ptr, new.size()));
        }
        // SAFETY: forwarded from the caller.
        unsafe { relocate(self, ptr, old, new, false) }
    }
}

/// A cheap, clonable handle to a shared [`SlabAllocator`] (an `Arc`), for
/// collections that own their allocator:
///
/// ```rust
/// use allocator_api2::vec::Vec;
/// use lockfree_slab::{SlabAllocator, SlabHandle};
///
/// # fn main() -> Result<(), lockfree_slab::ConfigError> {
/// let slab = SlabHandle::new(SlabAllocator::builder().build()?);
/// let mut v: Vec<u64, SlabHandle> = Vec::new_in(slab.clone());
/// v.extend(0..1000);
/// assert_eq!(v.iter().sum::<u64>(), 499_500);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SlabHandle(Arc<SlabAllocator>);

impl SlabHandle {
    /// Shares `slab`.
    pub fn new(slab: SlabAllocator) -> Self {
        SlabHandle(Arc::new(slab))
    }

    /// A handle to an allocator already in an `Arc`.
    pub fn from_arc(slab: Arc<SlabAllocator>) -> Self {
        SlabHandle(slab)
    }
}

impl Deref for SlabHandle {
    type Target = SlabAllocator;

    fn deref(&self) -> &SlabAllocator {
        &self.0
    }
}

// SAFETY: every clone refers to the same allocator, which lives as long as
// any handle; each method forwards to `&SlabAllocator`'s implementation.
unsafe impl Allocator for SlabHandle {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Allocator::allocate(&&*self.0, layout)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        Allocator::allocate_zeroed(&&*self.0, layout)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { Allocator::deallocate(&&*self.0, ptr, layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { Allocator::grow(&&*self.0, ptr, old, new) }
    }

    unsafe fn grow_zeroed(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { Allocator::grow_zeroed(&&*self.0, ptr, old, new) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { Allocator::shrink(&&*self.0, ptr, old, new) }
    }
}
