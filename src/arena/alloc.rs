//! Allocation: a request is routed by size and alignment to the thread
//! cache (small classes, and large ones up to `tcache_max`), a large run
//! of the thread's arena, or a huge mapping.

use core::ptr::{self, null_mut, NonNull};

use super::heap::Arena;
use super::huge::huge_alloc;
use super::size_class::*;
use super::tcache;

/// Largest alignment served from page runs; bigger ones are huge.
pub(super) const MAX_RUN_ALIGN: usize = 256 << 10;

/// Largest alignment served at all.
pub(crate) const MAX_ALIGN: usize = 1 << 30;

/// Whether `(size, align)` is served by a small class, and which.
#[inline(always)]
pub(crate) fn small_class_of(size: usize, align: usize) -> Option<usize> {
    if align > PAGE {
        return None;
    }
    let s = (size.max(1) + align - 1) & !(align - 1);
    (s <= SMALL_MAX).then(|| small_class(s))
}

/// Allocates `size` bytes aligned to `align` (a power of two); zeroed when
/// `zero`. Null when memory runs out or the layout cannot be served.
#[inline(always)]
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    alloc_with(size, align, zero, false)
}

/// [`alloc`]; with `growing` (a `realloc` that grows), a large run is
/// placed at the front of a free run of at least [`LARGE_MAX`] where one
/// exists, so that it can keep growing in place up to the largest large
/// class: a string or vector grown by doubling then moves once, not at
/// every doubling when the arena is fragmented.
#[inline(always)]
pub(super) fn alloc_with(size: usize, align: usize, zero: bool, growing: bool) -> *mut u8 {
    let p = alloc_unchecked(size, align, zero, growing);
    #[cfg(any(feature = "checks", debug_assertions))]
    if !p.is_null() {
        // SAFETY: `p` is a live block we just made.
        super::checks::arena_alloced(p, unsafe { super::free::usable_size(p) }, zero);
    }
    p
}

#[inline(always)]
fn alloc_unchecked(size: usize, align: usize, zero: bool, growing: bool) -> *mut u8 {
    if let Some(c) = small_class_of(size, align) {
        // SAFETY: small classes are cached (`c < NSMALL <= NCACHED`).
        let p = unsafe { tcache::alloc(c) };
        if zero && !p.is_null() {
            // SAFETY: `p` is a fresh region of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        return p;
    }
    alloc_big(size, align, zero, growing)
}

#[cold]
fn alloc_big(size: usize, align: usize, zero: bool, growing: bool) -> *mut u8 {
    if align > MAX_ALIGN || size > isize::MAX as usize - MAX_ALIGN {
        return null_mut();
    }
    if size > LARGE_MAX || align > MAX_RUN_ALIGN {
        return huge_alloc(size, align, zero, growing).map_or(null_mut(), NonNull::as_ptr);
    }
    let Some(arena) = tcache::arena() else {
        return null_mut();
    };
    let c = class_of(size.max(SMALL_MAX + 1));
    if align <= PAGE && c < NCACHED && !growing {
        // SAFETY: `c < NCACHED`, checked above.
        let p = unsafe { tcache::alloc(c) };
        if zero && !p.is_null() {
            // SAFETY: a fresh run of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        return p;
    }
    let room = if growing { LARGE_MAX / PAGE } else { 0 };
    let Some((p, is_zero)) = arena.alloc_large(CLASS_SIZE[c] / PAGE, align.max(PAGE), c, room)
    else {
        return null_mut();
    };
    tcache::count(c, true, arena, p);
    if zero && !is_zero {
        // SAFETY: a fresh run of at least `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Allocation of class `c` bypassing (or refilling) the thread cache.
pub(crate) fn alloc_direct(arena: &Arena, c: usize) -> *mut u8 {
    if c < NSMALL {
        let mut p = [null_mut(); 1];
        if arena.bin_fill(c, &mut p) == 1 {
            return p[0];
        }
        return null_mut();
    }
    arena
        .alloc_large(CLASS_SIZE[c] / PAGE, PAGE, c, 0)
        .map_or(null_mut(), |(p, _)| p)
}
