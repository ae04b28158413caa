//! Freeing: by layout ([`dealloc`]) or from the metadata alone ([`free`],
//! C's `free`, and [`free_if_owned`]); the checks that refuse a pointer
//! before a thread cache would hand it out again, [`usable_size`], and the
//! invalid-free report.

use super::alloc::small_class_of;
use super::chunk::*;
use super::huge::huge_free;
use super::size_class::*;
use super::tcache;
use crate::report::Report;

/// Frees `p`, allocated with `(size, align)`.
///
/// # Safety
/// `p` is a live allocation of this allocator made with that layout (or a
/// size between it and its usable size).
#[inline(always)]
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        super::checks::arena_freeing(p)
    };
    if let Some(c) = small_class_of(size, align) {
        // SAFETY: forwarded contract; the class follows from the layout.
        unsafe { tcache::free(p, c) };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { free_unchecked(p) }
}

/// Frees `p` using only its metadata (C's `free`).
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        super::checks::arena_freeing(p)
    };
    // SAFETY: forwarded contract.
    unsafe { free_unchecked(p) }
}

/// [`free`] of `p` if the arena owns it ([`super::registry::owns`]);
/// false, and nothing done, for a foreign pointer. One read of the region
/// map and one of the page map on the path of a small block (C's
/// `free`, which must refuse foreign pointers).
///
/// # Safety
/// `p` is a live allocation of this allocator, or memory it never had.
#[inline]
pub(crate) unsafe fn free_if_owned(p: *mut u8) -> bool {
    let a = p as usize;
    if !super::registry::in_chunk(a) {
        // Huge blocks, foreign pointers, and a registry that gave up (it
        // then owns everything).
        // SAFETY: forwarded contract.
        if !unsafe { super::registry::owns(p) } {
            return false;
        }
        // SAFETY: ours, per the registry.
        unsafe { free(p) };
        return true;
    }
    let base = a & !(CHUNK - 1);
    let page = (a - base) >> LG_PAGE;
    if page < HEADER_PAGES {
        return false;
    }
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        super::checks::arena_freeing(p)
    };
    let c = base as *mut ChunkHeader;
    // SAFETY: `base` is a live chunk (the registry marks it while mapped)
    // and `page` one of its pages.
    match unsafe { slab_at(c, page) } {
        Some((start, class)) => {
            check_slab_offset(p, a - (base + start * PAGE), class);
            // SAFETY: `p` starts a region of class `class`.
            unsafe { tcache::free(p, class) }
        }
        // SAFETY: ours, not in a slab.
        None => unsafe { free_run_or_huge(p, true) },
    }
    true
}

/// [`free`] without the debug checks (pool chunks, and after them).
///
/// # Safety
/// `p` is a live allocation of this allocator.
#[inline]
pub(crate) unsafe fn free_unchecked(p: *mut u8) {
    // SAFETY: forwarded contract.
    match unsafe { small_class_at(p) } {
        // SAFETY: `p` is an object of class `c`.
        Some(c) => unsafe { tcache::free(p, c) },
        // SAFETY: forwarded contract.
        None => unsafe { free_run_or_huge(p, true) },
    }
}

/// [`free`] of a large run or huge block that `realloc` moved to a new
/// place: a large run goes back to its arena, not to the thread cache. A
/// buffer that grew does not come back to its old size soon, and in the
/// arena the run merges with its free neighbours, where the next, larger
/// block of the buffer can take it (seed/trading's pending-order `Vec`
/// peaked 0.2 MiB higher when its old runs waited in the cache).
///
/// # Safety
/// `p` is a live large or huge allocation of this allocator.
pub(super) unsafe fn free_moved(p: *mut u8) {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        super::checks::arena_freeing(p)
    };
    // SAFETY: forwarded contract.
    unsafe { free_run_or_huge(p, false) }
}

/// [`free_unchecked`] of a block that is not in a slab: a large run or a
/// huge mapping (out of line, so the small-object path stays short). A
/// large run of a cached class goes to the thread cache when `cache`, else
/// to its arena.
///
/// # Safety
/// `p` is a live allocation of this allocator.
#[inline(never)]
pub(super) unsafe fn free_run_or_huge(p: *mut u8, cache: bool) {
    let a = p as usize;
    let hdr = if a % CHUNK == 0 {
        a - PAGE
    } else {
        a & !(CHUNK - 1)
    };
    // SAFETY: `p` is (or was, for a double free) a block of ours, so its
    // header is mapped: a live chunk or huge header, or a kept huge
    // mapping whose header `huge_free` cleared.
    if !matches!(unsafe { *(hdr as *const u32) }, KIND_CHUNK | KIND_HUGE) {
        report_bad_free(p, b"was freed already");
    }
    // SAFETY: forwarded contract.
    match unsafe { lookup(p) } {
        Owner::Huge(h) => {
            // SAFETY: `h` is the header of `p`'s live mapping.
            unsafe { huge_free(h, true) }
        }
        Owner::Run(m) => {
            // SAFETY: `m` describes the run holding `p`.
            let (state, c) = unsafe { ((*m).state, (*m).class as usize) };
            // A pointer that cannot be the start of an allocated block is
            // refused here, before a thread cache would hand it out again.
            let off = p as usize - run_addr(m) as usize;
            let valid = match state {
                // SAFETY: a slab's class is small; `p` lies in the run.
                RUN_SLAB => c < NSMALL && unsafe { starts_region(c, off) },
                RUN_LARGE => off == 0,
                _ => false,
            };
            if !valid {
                report_bad_free(p, b"is not the start of an allocated block");
            }
            if c < NSMALL || (cache && c < NCACHED) {
                if c >= NSMALL && super::init::prof_enabled() {
                    // The thread cache looks up only small objects.
                    super::prof::on_free(p);
                }
                // SAFETY: `p` is an object of class `c`.
                unsafe { tcache::free(p, c) };
            } else {
                // SAFETY: `p` is a large run owned by this arena.
                let a = unsafe { owner_arena(p) };
                tcache::count(c, false, a, p);
                // SAFETY: as above.
                unsafe { a.free_large(m) };
            }
        }
    }
}

/// The class of `p` if it lies in a slab, from the page map alone (one
/// entry, no run metadata): the fast path of `free` and `usable_size`.
/// A pointer into a slab that is not the start of a region is reported
/// and the process aborts.
///
/// # Safety
/// `p` points into a live allocation of this allocator.
#[inline]
pub(super) unsafe fn small_class_at(p: *const u8) -> Option<usize> {
    let a = p as usize;
    if a & (CHUNK - 1) == 0 {
        return None;
    }
    let c = (a & !(CHUNK - 1)) as *mut ChunkHeader;
    // SAFETY: `p` is ours, so the CHUNK-aligned address below it starts a
    // chunk or a huge header, both starting with `kind`; a chunk's page map
    // entry for a page of a live run is stable.
    let (start, class) = unsafe {
        if (*c).kind != KIND_CHUNK {
            return None;
        }
        slab_at(c, (a - c as usize) >> LG_PAGE)?
    };
    check_slab_offset(p, a - (c as usize + start * PAGE), class);
    Some(class)
}

/// Reports `p`, `off` bytes into a slab of class `class`, and aborts
/// unless it starts one of the slab's regions.
#[inline(always)]
fn check_slab_offset(p: *const u8, off: usize, class: usize) {
    if class >= NSMALL {
        report_bad_free(p, b"lies in a page with a corrupt page map entry");
    }
    // SAFETY: `class < NSMALL`; `off` lies in the slab (its page's entry
    // names the slab's first page).
    if !unsafe { starts_region(class, off) } {
        report_bad_free(p, b"is not the start of an allocated block");
    }
}

/// Usable bytes of `p`.
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { size_and_class(p) }.0
}

/// The usable size of `p` and, for a small block, its class (`None` for
/// large runs and huge blocks), both from the metadata.
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn size_and_class(p: *const u8) -> (usize, Option<usize>) {
    // SAFETY: forwarded contract.
    match unsafe { lookup(p) } {
        // SAFETY: the header of a live mapping.
        Owner::Huge(h) => (unsafe { (*h).usable }, None),
        // SAFETY: the metadata of a live run.
        Owner::Run(m) => unsafe {
            if (*m).state == RUN_SLAB {
                let class = (*m).class as usize;
                (CLASS_SIZE[class], Some(class))
            } else {
                ((*m).npages as usize * PAGE, None)
            }
        },
    }
}

/// Reports a free that cannot be valid and aborts before it corrupts the
/// heap. Writes with `write(2)` only: no allocation, no lock.
#[cold]
pub(crate) fn report_bad_free(p: *const u8, what: &[u8]) -> ! {
    Report::new()
        .bytes(b"hotpool: invalid free: the block at ")
        .hex(p as usize)
        .bytes(b" ")
        .bytes(what)
        .abort()
}
