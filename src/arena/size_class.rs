//! Size classes: jemalloc's spacing, four classes per doubling.
//!
//! ```text
//!   index  0..=1   8, 16
//!   index  2..=8   32 ..= 128 step 16
//!   index  9..=35  160 ..= 14336, 4 per doubling     small: slab regions
//!   index 36..=60  16 KiB ..= 1 MiB, 4 per doubling  large: page runs
//!   above 1 MiB                                      huge: own mapping
//! ```
//!
//! Invariant used by aligned allocation: the class of `align_up(size, a)`
//! for a power of two `a` is a multiple of `a`, so every region of a slab
//! (which starts on a page) is `a`-aligned for any `a` up to a page.

/// log2 of the page size the allocator works in.
pub(crate) const LG_PAGE: usize = 12;
/// Bytes per page.
pub(crate) const PAGE: usize = 1 << LG_PAGE;
/// Largest small class (served from slabs).
pub(crate) const SMALL_MAX: usize = 14336;
/// Number of small classes.
pub(crate) const NSMALL: usize = 36;
/// Largest large class (served from page runs); bigger requests are huge.
pub(crate) const LARGE_MAX: usize = 1 << 20;
/// Number of classes, small and large.
pub(crate) const NCLASSES: usize = 61;
/// Number of thread-cache bins: classes up to 64 KiB, the largest
/// `tcache_max` accepted.
pub(crate) const NCACHED: usize = 45;

/// Byte size of every class.
pub(crate) static CLASS_SIZE: [usize; NCLASSES] = class_sizes();
/// Pages per slab of each small class.
pub(crate) static SLAB_PAGES: [u32; NSMALL] = slab_geometry().0;
/// Regions per slab of each small class.
pub(crate) static SLAB_REGIONS: [u32; NSMALL] = slab_geometry().1;
/// The most regions any slab has.
pub(crate) const MAX_SLAB_REGIONS: u32 = max_regions();
/// `ceil(2^32 / size)` of each small class: `(offset * RECIP) >> 32` is
/// `offset / size` for every offset that is a multiple of the size and
/// smaller than 2^32 / size (slabs are at most 128 KiB).
pub(crate) static CLASS_RECIP: [u64; NSMALL] = recips();
/// `(size + 7) / 8` -> small class index, for sizes up to [`SMALL_MAX`].
static SMALL_LUT: [u8; SMALL_MAX / 8 + 1] = small_lut();

pub(crate) const fn class_sizes() -> [usize; NCLASSES] {
    let mut out = [0; NCLASSES];
    out[0] = 8;
    out[1] = 16;
    let mut i = 2;
    let mut s = 32;
    while s <= 128 {
        out[i] = s;
        i += 1;
        s += 16;
    }
    let mut base = 128;
    while i < NCLASSES {
        let step = base / 4;
        let mut k = 1;
        while k <= 4 && i < NCLASSES {
            out[i] = base + k * step;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    out
}

const fn slab_geometry() -> ([u32; NSMALL], [u32; NSMALL]) {
    let sizes = class_sizes();
    let mut pages = [0u32; NSMALL];
    let mut regs = [0u32; NSMALL];
    let mut c = 0;
    while c < NSMALL {
        let s = sizes[c];
        // Smallest slab wasting at most 1/8 of itself.
        let mut p = 1;
        while p < 32 {
            let bytes = p * PAGE;
            if bytes >= s && (bytes % s) * 8 <= bytes {
                break;
            }
            p += 1;
        }
        pages[c] = p as u32;
        regs[c] = (p * PAGE / s) as u32;
        c += 1;
    }
    (pages, regs)
}

const fn max_regions() -> u32 {
    let regs = slab_geometry().1;
    let mut max = 0;
    let mut c = 0;
    while c < NSMALL {
        if regs[c] > max {
            max = regs[c];
        }
        c += 1;
    }
    max
}

const fn recips() -> [u64; NSMALL] {
    let sizes = class_sizes();
    let mut out = [0; NSMALL];
    let mut c = 0;
    while c < NSMALL {
        out[c] = (1u64 << 32).div_ceil(sizes[c] as u64);
        c += 1;
    }
    out
}

const fn small_lut() -> [u8; SMALL_MAX / 8 + 1] {
    let sizes = class_sizes();
    let mut lut = [0u8; SMALL_MAX / 8 + 1];
    let mut i = 0;
    let mut c = 0;
    while i < lut.len() {
        while sizes[c] < i * 8 {
            c += 1;
        }
        lut[i] = c as u8;
        i += 1;
    }
    lut
}

/// Whether `off`, an offset into a slab of small class `c` (below the
/// slab's size), starts one of its regions: one multiply and a compare.
///
/// With `R = CLASS_RECIP[c] = ceil(2^32 / size)`, `size * R = 2^32 + e`,
/// `e < size`. Write `off = q * size + r`, `r < size`: the low 32 bits of
/// `off * R` are those of `q * e + r * R`. For `r = 0` that is `q * e <
/// off < 2^17` (slabs are at most 128 KiB), below `R` (at least `2^32 /
/// 14336`, about 299 000). For `r > 0` it is at least `R` and at most
/// `(size - 1) * R + q * e = 2^32 - R + (q + 1) * e`, below `2^32` (as
/// `(q + 1) * e < off + size`, below `R` too): no wrap, so at least `R`.
/// Checked for every offset of every slab by a test.
///
/// # Safety
/// `c < NSMALL`.
#[inline(always)]
pub(crate) unsafe fn starts_region(c: usize, off: usize) -> bool {
    // SAFETY: per the contract.
    let recip = unsafe { *CLASS_RECIP.get_unchecked(c) };
    ((off as u64).wrapping_mul(recip) as u32 as u64) < recip
}

/// `(size + 15) / 16` -> the small class of a block of `size` bytes
/// aligned to 16, for sizes up to [`SMALL_MAX`], 0 included (the 16-byte
/// class): C's `malloc` ([`super::malloc`]).
static SMALL16_LUT: [u8; SMALL_MAX / 16 + 1] = small16_lut();

const fn small16_lut() -> [u8; SMALL_MAX / 16 + 1] {
    let by8 = small_lut();
    let mut lut = [0u8; SMALL_MAX / 16 + 1];
    let mut i = 0;
    while i < lut.len() {
        // The class of `16 * i` bytes (16 for `i` 0), which sits at index
        // `(16 * i + 7) / 8 = 2 * i` of the 8-byte table.
        lut[i] = by8[if i == 0 { 2 } else { 2 * i }];
        i += 1;
    }
    lut
}

/// Class of a block of `size` bytes (`0..=SMALL_MAX`) aligned to 16: one
/// table load, no rounding (every class from 16 bytes up is a multiple of
/// 16, so its blocks are 16-aligned).
#[inline(always)]
pub(crate) fn small_class16(size: usize) -> usize {
    debug_assert!(size <= SMALL_MAX);
    SMALL16_LUT[(size + 15) >> 4] as usize
}

/// Class of a small size (`1..=SMALL_MAX`): one table load.
#[inline(always)]
pub(crate) fn small_class(size: usize) -> usize {
    debug_assert!(size <= SMALL_MAX);
    SMALL_LUT[(size + 7) >> 3] as usize
}

/// Class of any size up to [`LARGE_MAX`].
#[inline]
pub(crate) fn class_of(size: usize) -> usize {
    if size <= SMALL_MAX {
        return small_class(size);
    }
    debug_assert!(size <= LARGE_MAX);
    if size <= 16384 {
        return NSMALL;
    }
    let x = size - 1;
    let lg = (usize::BITS - 1 - x.leading_zeros()) as usize;
    NSMALL + 1 + (lg - 14) * 4 + ((x >> (lg - 2)) & 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_16_byte_table_gives_the_class_of_a_16_aligned_request() {
        for size in (0..=SMALL_MAX).step_by(if cfg!(miri) { 97 } else { 1 }) {
            let c = small_class16(size);
            assert_eq!(
                Some(c),
                crate::arena::alloc::small_class_of(size, 16),
                "size {size}"
            );
            assert!(CLASS_SIZE[c] >= size.max(16) && CLASS_SIZE[c] % 16 == 0);
        }
    }

    #[test]
    fn classes_are_increasing_and_cover_every_size() {
        assert_eq!(CLASS_SIZE[NSMALL - 1], SMALL_MAX);
        assert_eq!(CLASS_SIZE[NSMALL], 16384);
        assert_eq!(CLASS_SIZE[NCLASSES - 1], LARGE_MAX);
        assert_eq!(CLASS_SIZE[NCACHED - 1], 64 << 10);
        for w in CLASS_SIZE.windows(2) {
            assert!(w[0] < w[1]);
        }
        // Every size; under Miri every 997th (the test is arithmetic only).
        for size in (1..=LARGE_MAX).step_by(if cfg!(miri) { 997 } else { 1 }) {
            let c = class_of(size);
            assert!(CLASS_SIZE[c] >= size, "size {size}");
            assert!(c == 0 || CLASS_SIZE[c - 1] < size, "size {size}");
        }
    }

    #[test]
    fn reciprocal_division_is_exact_on_region_offsets() {
        for c in 0..NSMALL {
            let size = CLASS_SIZE[c] as u64;
            for i in 0..SLAB_REGIONS[c] as u64 {
                assert_eq!((i * size * CLASS_RECIP[c]) >> 32, i, "class {c}");
            }
            assert!(SLAB_PAGES[c] as u64 * PAGE as u64 * CLASS_RECIP[c] < 1 << 63);
        }
    }

    #[test]
    fn region_starts_are_told_from_every_other_offset() {
        for c in 0..NSMALL {
            let size = CLASS_SIZE[c];
            let step = if cfg!(miri) { 997 } else { 1 };
            for off in (0..SLAB_PAGES[c] as usize * PAGE).step_by(step) {
                // SAFETY: `c < NSMALL`.
                let starts = unsafe { starts_region(c, off) };
                assert_eq!(starts, off % size == 0, "class {c}, offset {off}");
            }
        }
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        let mut a = 1;
        while a <= PAGE {
            for size in (1..=SMALL_MAX).step_by(if cfg!(miri) { 97 } else { 1 }) {
                let s = (size + a - 1) & !(a - 1);
                if s <= SMALL_MAX {
                    assert_eq!(CLASS_SIZE[small_class(s)] % a, 0, "size {size} align {a}");
                }
            }
            a *= 2;
        }
    }

    #[test]
    fn slabs_hold_at_least_one_region_and_waste_little() {
        for c in 0..NSMALL {
            let bytes = SLAB_PAGES[c] as usize * PAGE;
            assert!(SLAB_REGIONS[c] >= 1);
            assert!((bytes - SLAB_REGIONS[c] as usize * CLASS_SIZE[c]) * 8 <= bytes);
        }
    }
}
