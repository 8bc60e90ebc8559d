//! Request `(size, align)` → size class, in O(1): one load from a table
//! indexed by the size in 8-byte granules, plus (only for alignments above 8)
//! one load from a small per-class alignment table. No search, no loop.
//!
//! The granule table holds classes already *scaled* ([`ScaledClass`]): the
//! index times [`CLASS_STRIDE`], the size of the per-class records the hot
//! path addresses (magazine headers), so the cache hit needs no multiply.
//!
//! Pure code: no memory of its own, no atomics, no unsafe. The tables are
//! computed here ([`build_tables`]) and copied by the region into its metadata
//! area; [`ClassLookup`] reads them wherever they live.
//!
//! A class's *natural alignment* is the largest power of two dividing its
//! block size, capped at [`MAX_ALIGN`]: spans start page-aligned, so block
//! `k` of a class of size `s` starts at `k * s` from a page boundary. Every
//! class is a multiple of 8, so alignments up to 8 are always met by the
//! smallest class that fits; a larger alignment takes the smallest class at or
//! above that one whose natural alignment is enough. Requests that no class can
//! hold with the alignment asked for go to the fallback.

/// Sizes are looked up in units of this many bytes; every class is a multiple.
pub const GRANULE: usize = 8;
/// Most size classes one allocator may have (a class index fits in a `u8`).
pub const MAX_CLASSES: usize = 64;
/// Largest block size (1 MiB); larger requests belong to the fallback.
pub const MAX_CLASS_SIZE: usize = 1 << 20;
/// Largest alignment served from the pool (a page).
pub const MAX_ALIGN: usize = 4096;
/// Alignments 1, 2, 4, …, 4096: one column each in the alignment table.
pub(crate) const ALIGN_COLUMNS: usize = MAX_ALIGN.trailing_zeros() as usize + 1;
/// "No class can serve this" in the alignment table.
pub(crate) const NO_CLASS: u8 = u8::MAX;
/// Bytes of each per-class record the hot path indexes by class (a
/// magazine header: `cache.rs` asserts they agree).
pub(crate) const CLASS_STRIDE: usize = 32;

/// A class index times [`CLASS_STRIDE`]: the byte offset of the class's
/// record in an array of per-class records. What the hot path computes, so
/// that finding a magazine header is an add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScaledClass(usize);

impl ScaledClass {
    /// Class `index`, scaled.
    #[inline(always)]
    pub(crate) fn of(index: usize) -> Self {
        ScaledClass(index * CLASS_STRIDE)
    }

    /// An offset already scaled (a multiple of [`CLASS_STRIDE`]).
    #[inline(always)]
    pub(crate) fn from_offset(offset: usize) -> Self {
        debug_assert_eq!(offset % CLASS_STRIDE, 0);
        ScaledClass(offset)
    }

    /// The class index.
    #[inline(always)]
    pub(crate) fn index(self) -> usize {
        self.0 / CLASS_STRIDE
    }

    /// The byte offset of the class's record.
    #[inline(always)]
    pub(crate) fn offset(self) -> usize {
        self.0
    }
}

/// The natural alignment of blocks of `size` bytes (see the module docs).
pub const fn natural_alignment(size: usize) -> usize {
    let low_bit = 1usize << size.trailing_zeros();
    if low_bit > MAX_ALIGN {
        MAX_ALIGN
    } else {
        low_bit
    }
}

/// Builds the two lookup tables for `classes` (strictly ascending multiples of
/// [`GRANULE`], at most [`MAX_CLASSES`]):
///
/// - by granule: entry `g` is the smallest class of at least `g * 8` bytes,
///   for `g` in `0..=largest / 8`, scaled ([`ScaledClass`]);
/// - by alignment: entry `c * ALIGN_COLUMNS + log2(align)` is the smallest
///   class index `>= c` whose natural alignment is at least `align`, or
///   [`NO_CLASS`].
pub(crate) fn build_tables(classes: &[usize]) -> (Vec<u16>, Vec<u8>) {
    debug_assert!(!classes.is_empty() && classes.len() <= MAX_CLASSES);
    let largest = *classes.last().expect("validated: at least one class");
    let mut by_granule = Vec::with_capacity(largest / GRANULE + 1);
    let mut class = 0;
    for granule in 0..=largest / GRANULE {
        while classes[class] < granule * GRANULE {
            class += 1;
        }
        by_granule.push(ScaledClass::of(class).offset() as u16);
    }
    let mut by_align = vec![NO_CLASS; classes.len() * ALIGN_COLUMNS];
    for c in 0..classes.len() {
        for column in 0..ALIGN_COLUMNS {
            let align = 1usize << column;
            if let Some(found) = (c..classes.len()).find(|&k| natural_alignment(classes[k]) >= align) {
                by_align[c * ALIGN_COLUMNS + column] = found as u8;
            }
        }
    }
    (by_granule, by_align)
}

/// A view of the two tables built by [`build_tables`].
#[derive(Clone, Copy)]
pub(crate) struct ClassLookup<'a> {
    pub(crate) by_granule: &'a [u16],
    pub(crate) by_align: &'a [u8],
}

impl ClassLookup<'_> {
    /// The class that serves `size` bytes at `align` (a power of two), or
    /// `None` when no class can (too large, or no class aligned enough).
    #[inline(always)]
    pub(crate) fn class_for(&self, size: usize, align: usize) -> Option<ScaledClass> {
        let class = ScaledClass::from_offset(usize::from(*self.by_granule.get(size.div_ceil(GRANULE))?));
        if align <= GRANULE {
            return Some(class);
        }
        self.class_for_aligned(class, align)
    }

    #[inline]
    fn class_for_aligned(&self, class: ScaledClass, align: usize) -> Option<ScaledClass> {
        if align > MAX_ALIGN {
            return None;
        }
        let column = align.trailing_zeros() as usize;
        match self.by_align[class.index() * ALIGN_COLUMNS + column] {
            NO_CLASS => None,
            found => Some(ScaledClass::of(usize::from(found))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;

    /// The specification: the smallest class that is large enough and whose
    /// natural alignment is enough, by linear search.
    fn reference(classes: &[usize], size: usize, align: usize) -> Option<usize> {
        if align > MAX_ALIGN {
            return None;
        }
        classes.iter().position(|&c| c >= size && natural_alignment(c) >= align)
    }

    fn check_exhaustively(classes: &[usize]) {
        let (by_granule, by_align) = build_tables(classes);
        let lookup = ClassLookup { by_granule: &by_granule, by_align: &by_align };
        let largest = *classes.last().unwrap();
        for column in 0..=ALIGN_COLUMNS {
            let align = 1usize << column; // includes 8192, one past the limit
            for size in 0..=largest + GRANULE {
                assert_eq!(
                    lookup.class_for(size, align).map(ScaledClass::index),
                    reference(classes, size, align),
                    "classes {classes:?}, size {size}, align {align}"
                );
            }
        }
        assert_eq!(lookup.class_for(usize::MAX, 8), None);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "exhaustive over every size and alignment: millions of lookups; the native run covers it"
    )]
    fn every_profile_matches_the_reference_for_every_size_and_alignment() {
        for profile in Profile::ALL {
            check_exhaustively(&profile.size_classes());
        }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "exhaustive over every size and alignment: millions of lookups; the native run covers it"
    )]
    fn awkward_classes_match_the_reference() {
        // 24 and 40 are only 8-aligned: a 16-aligned request must skip them.
        check_exhaustively(&[8, 24, 40, 96, 4104]);
        check_exhaustively(&[4096, 12288, 1 << 20]);
    }

    #[test]
    fn natural_alignment_is_capped_at_a_page() {
        assert_eq!(natural_alignment(24), 8);
        assert_eq!(natural_alignment(1536), 512);
        assert_eq!(natural_alignment(1 << 20), MAX_ALIGN);
    }
}
