//! `realloc`: the block stays when its class does not change or a large
//! run or huge mapping can be resized in place; else a new block is
//! allocated, the bytes copied and the old block freed.

use core::ptr;

use super::alloc::{alloc_with, small_class_of, MAX_RUN_ALIGN};
use super::chunk::*;
#[cfg(any(feature = "checks", debug_assertions))]
use super::free::usable_size;
use super::free::{free_moved, size_and_class};
use super::huge::{huge_move, huge_resize};
use super::size_class::*;
use super::tcache;

/// Resizes `p` from `old` to `new` bytes, in place when possible.
///
/// # Safety
/// As `GlobalAlloc::realloc`: `p` live with layout `(old, align)`.
pub(crate) unsafe fn realloc(p: *mut u8, old: usize, align: usize, new: usize) -> *mut u8 {
    // SAFETY: forwarded contract; the class follows from the layout.
    unsafe { resize(p, small_class_of(old, align), old, align, new) }
}

/// Resizes `p` to `new` bytes knowing only its metadata (C's `realloc`);
/// a moved block is aligned to `align`.
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn realloc_unsized(p: *mut u8, align: usize, new: usize) -> *mut u8 {
    // The class comes from the metadata, not from the size: an over-aligned
    // large run or huge block can have the size of a small class.
    // SAFETY: forwarded contract.
    let (old, class) = unsafe { size_and_class(p) };
    // SAFETY: forwarded contract; `class` is `p`'s own.
    unsafe { resize(p, class, old, align, new) }
}

/// Shared by both reallocs: `p` holds `old` bytes and is of small class
/// `old_class` (`None`: large or huge); a moved block is aligned to `align`.
///
/// # Safety
/// `p` is a live allocation of this allocator matching `old_class`.
unsafe fn resize(
    p: *mut u8,
    old_class: Option<usize>,
    old: usize,
    align: usize,
    new: usize,
) -> *mut u8 {
    match (old_class, small_class_of(new, align)) {
        (Some(a), Some(b)) if a == b => return p,
        // SAFETY: forwarded contract.
        (None, None) if unsafe { resize_checked(p, align, new) } => return p,
        (None, None) if new > old => {
            // SAFETY: forwarded contract: `p` is a live large or huge block.
            if let Some(q) = unsafe { move_huge(p, old, new) } {
                return q;
            }
        }
        _ => {}
    }
    let q = alloc_with(new, align, false, new > old);
    if !q.is_null() {
        // SAFETY: both blocks are live, distinct, and hold at least the
        // copied bytes; `p` is freed once, by class when it is small, else
        // to its arena ([`free_moved`]).
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.min(new));
            match old_class {
                Some(c) => tcache::free(p, c),
                None => free_moved(p),
            }
        }
    }
    q
}

/// Grows huge block `p` (of `old` bytes) by moving its pages to a longer
/// mapping ([`huge_move`]); `None` when `p` is not huge or cannot move.
///
/// # Safety
/// `p` is a live large or huge allocation.
unsafe fn move_huge(p: *mut u8, old: usize, new: usize) -> Option<*mut u8> {
    // SAFETY: forwarded contract.
    let Owner::Huge(h) = (unsafe { lookup(p) }) else {
        return None;
    };
    // SAFETY: the header of `p`'s live mapping, owned by the caller.
    let q = unsafe { huge_move(h, new) }?.as_ptr();
    #[cfg(any(feature = "checks", debug_assertions))]
    // SAFETY: `q` is live with its usable size.
    super::checks::arena_moved(p, q, old, unsafe { usable_size(q) });
    #[cfg(not(any(feature = "checks", debug_assertions)))]
    let _ = old;
    Some(q)
}

/// [`resize_in_place`], telling the debug checks about the new size.
///
/// # Safety
/// As [`resize_in_place`].
unsafe fn resize_checked(p: *mut u8, align: usize, new: usize) -> bool {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    let before = unsafe { usable_size(p) };
    // SAFETY: forwarded contract.
    let done = unsafe { resize_in_place(p, align, new) };
    #[cfg(any(feature = "checks", debug_assertions))]
    if done {
        // SAFETY: `p` is still live, with its new size.
        super::checks::arena_resized(p, before, unsafe { usable_size(p) });
    }
    done
}

/// # Safety
/// `p` is a live large or huge allocation aligned to `align`.
unsafe fn resize_in_place(p: *mut u8, align: usize, new: usize) -> bool {
    // SAFETY: forwarded contract.
    match unsafe { lookup(p) } {
        // SAFETY: the header of `p`'s live mapping.
        Owner::Huge(h) => unsafe { huge_resize(h, new) },
        Owner::Run(m) => {
            if new > LARGE_MAX || align > MAX_RUN_ALIGN {
                return false;
            }
            let c = class_of(new.max(SMALL_MAX + 1));
            let pages = CLASS_SIZE[c] / PAGE;
            // SAFETY: `m` is `p`'s live large run.
            unsafe {
                let old_c = (*m).class as usize;
                let have = (*m).npages as usize;
                let a = owner_arena(p);
                if pages == have {
                    return true;
                }
                if pages < have {
                    a.shrink_large(m, pages);
                } else if !a.grow_large(m, pages) {
                    return false;
                }
                (*m).class = c as u8;
                tcache::count_stats(old_c, false, a);
                tcache::count_stats(c, true, a);
                if super::init::prof_enabled() {
                    super::prof::on_realloc(p, p, CLASS_SIZE[old_c], CLASS_SIZE[c]);
                }
            }
            true
        }
    }
}
