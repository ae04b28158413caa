//! Which 4 MiB regions of the address space the arena allocator owns, so
//! [`owns`] can tell a pointer of ours from a foreign one (C's `free` of a
//! pointer some other allocator made) without touching memory that may not
//! be mapped.
//!
//! ```text
//!  map:  1 byte per CHUNK-aligned region of the 48-bit address space
//!        (2^26 regions, 64 MiB of address space, MAP_NORESERVE: a page
//!        of it becomes resident only when a region it covers is used; one
//!        page covers 16 GiB of address space). A byte rather than two
//!        bits: the check on C's `free` path is one load, no shifts.
//!  NONE     nothing of ours starts here
//!  CHUNK    a chunk: the whole region is ours, its header at the start
//!  HUGE_HDR a huge block with alignment < CHUNK: its header page starts
//!           the region, its one object lies inside
//!  HUGE_OBJ a huge block with alignment >= CHUNK: its object starts the
//!           region, the header is the page before
//! ```
//!
//! Marks are set after a chunk or huge block is mapped and before any
//! object in it is handed out, and cleared before it is unmapped; each
//! region has its own atomic byte. The map is mapped when the allocator
//! starts. If it cannot be mapped, or a block lies beyond 48 bits, the
//! registry gives up ([`owns`] then answers true for
//! everything: detection off, never a false alarm).

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering::*};

use super::chunk::{HugeHeader, CHUNK, HEADER_PAGES, LG_CHUNK};
use super::size_class::PAGE;
use crate::sys;

const NONE: u8 = 0;
const CHUNK_REGION: u8 = 1;
const HUGE_HDR: u8 = 2;
const HUGE_OBJ: u8 = 3;

/// Address bits covered.
const ADDR_BITS: usize = 48;
const REGIONS: usize = 1 << (ADDR_BITS - LG_CHUNK);
const BYTES: usize = REGIONS;

static MAP: AtomicPtr<AtomicU8> = AtomicPtr::new(null_mut());
static BROKEN: AtomicBool = AtomicBool::new(false);

/// Maps the map when the allocator starts, so that whether detection is on
/// is settled then and not by whichever later request the OS refuses first.
pub(crate) fn start() {
    let _ = region_map();
}

/// The map, mapped by [`start`] (or on first use after a loom reset);
/// `None` once the registry gave up.
fn region_map() -> Option<*const AtomicU8> {
    let m = MAP.load(Acquire);
    if !m.is_null() {
        return Some(m);
    }
    if BROKEN.load(Relaxed) {
        return None;
    }
    let Some(fresh) = sys::map(BYTES) else {
        BROKEN.store(true, Relaxed);
        return None;
    };
    let fresh = fresh.as_ptr().cast::<AtomicU8>();
    match MAP.compare_exchange(null_mut(), fresh, AcqRel, Acquire) {
        Ok(_) => Some(fresh),
        Err(won) => {
            // SAFETY: our mapping lost the race and was never published.
            unsafe { sys::unmap_range(fresh.cast(), BYTES) };
            Some(won)
        }
    }
}

/// The map index of `addr`'s region, if it is in range.
#[inline]
fn slot(addr: usize) -> Option<usize> {
    let r = addr >> LG_CHUNK;
    (r < REGIONS).then_some(r)
}

/// Records that the region starting at `base` (CHUNK-aligned) is `kind`
/// (or, with `NONE`, no longer ours).
fn mark(base: usize, kind: u8) {
    debug_assert_eq!(base % CHUNK, 0);
    let Some(map) = region_map() else { return };
    let Some(r) = slot(base) else {
        BROKEN.store(true, Relaxed);
        return;
    };
    // SAFETY: `r < REGIONS`, inside the live map (zeroed memory is a valid
    // AtomicU8).
    unsafe { &*map.add(r) }.store(kind, Release);
}

/// The kind of the region holding `addr`, and the region's start.
#[inline]
fn kind_of(addr: usize) -> (u8, usize) {
    let m = MAP.load(Acquire);
    let base = addr & !(CHUNK - 1);
    match slot(addr) {
        // SAFETY: `r < REGIONS`, inside the live map.
        Some(r) if !m.is_null() => (unsafe { &*m.add(r) }.load(Acquire), base),
        _ => (NONE, base),
    }
}

/// Whether `addr` lies in one of the arena's chunks (header pages
/// included): the first half of [`owns`], alone on the fast path of a
/// checked `free`.
#[inline]
pub(crate) fn in_chunk(addr: usize) -> bool {
    kind_of(addr).0 == CHUNK_REGION
}

/// A chunk was mapped at `base`.
pub(crate) fn add_chunk(base: *mut u8) {
    mark(base as usize, CHUNK_REGION);
}

/// The chunk at `base` is about to be unmapped.
pub(crate) fn remove_chunk(base: *mut u8) {
    mark(base as usize, NONE);
}

/// The region a huge block with header `hdr` and object `obj` is known by.
fn huge_region(hdr: usize, obj: usize) -> (usize, u8) {
    if hdr % CHUNK == 0 {
        (hdr, HUGE_HDR)
    } else {
        (obj, HUGE_OBJ)
    }
}

/// A huge block was mapped: header page at `hdr`, object at `obj`.
pub(crate) fn add_huge(hdr: usize, obj: usize) {
    let (base, kind) = huge_region(hdr, obj);
    mark(base, kind);
}

/// The huge block with header `h` is about to be unmapped.
///
/// # Safety
/// `h` is the header of a live huge block.
pub(crate) unsafe fn remove_huge(h: *const HugeHeader) {
    // SAFETY: the header is live per the contract.
    let obj = unsafe { (*h).ptr } as usize;
    mark(huge_region(h as usize, obj).0, NONE);
}

/// Whether `p` is an object address the arena allocator could have handed
/// out: inside one of its chunks past the header pages, or exactly the
/// object of one of its huge blocks.
///
/// # Safety
/// No other thread may free a huge block whose header lies in `p`'s 4 MiB
/// region during the call (true whenever `p` is a block the caller owns,
/// or lies outside the allocator's memory altogether).
#[inline]
pub(crate) unsafe fn owns(p: *const u8) -> bool {
    if BROKEN.load(Relaxed) {
        return true;
    }
    let a = p as usize;
    match kind_of(a) {
        (CHUNK_REGION, base) => a >= base + HEADER_PAGES * PAGE,
        // SAFETY: the region starts with the header of a live huge block
        // (its mark is cleared before it is unmapped; the contract rules
        // out a concurrent free).
        (HUGE_HDR, base) => ptr::eq(unsafe { (*(base as *const HugeHeader)).ptr }, p),
        (HUGE_OBJ, base) => a == base,
        _ => false,
    }
}

/// Under loom: forgets the previous execution's map (unmapped with the
/// rest of its memory).
#[cfg(loom)]
pub(crate) fn loom_reset() {
    MAP.store(null_mut(), Relaxed);
    BROKEN.store(false, Relaxed);
}
