//! Huge blocks (over 1 MiB, or alignment over 256 KiB): a mapping of
//! their own with a one-page header. Allocation (reusing a mapping kept
//! by `huge_cache.rs` when one is long enough), free, in-place resize,
//! purging of kept mappings, and their counters.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::*};

use super::alloc::MAX_ALIGN;
use super::chunk::*;
use super::init::{decay_ms, prof_enabled, stats_enabled};
use super::size_class::*;
use crate::sys;

/// Huge allocations: count, frees, object bytes, mapped bytes.
pub(crate) static HUGE_NMALLOC: AtomicUsize = AtomicUsize::new(0);

pub(crate) static HUGE_NFREE: AtomicUsize = AtomicUsize::new(0);

pub(crate) static HUGE_BYTES: AtomicUsize = AtomicUsize::new(0);

pub(crate) static HUGE_MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Maps a huge block: `size` bytes aligned to `align`, with its header;
/// zeroed when `zero`. A mapping kept by [`super::huge_cache`] is reused
/// when one is long enough; `growing` (a `realloc` that grows) keeps all of
/// it, up to four times the size, as room to grow in place.
pub(crate) fn huge_alloc(
    size: usize,
    align: usize,
    zero: bool,
    growing: bool,
) -> Option<NonNull<u8>> {
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return None;
    }
    // A program's first allocation may be huge: the configuration (the
    // profiler) applies to it too.
    super::init::ensure_init();
    let usable = size.max(1).checked_add(PAGE - 1)? & !(PAGE - 1);
    if align < CHUNK {
        if let Some(p) = huge_reuse(usable, align.max(PAGE), zero, growing) {
            return Some(p);
        }
    }
    // The header is CHUNK-aligned with the object a page multiple after it,
    // or (alignments of CHUNK and more) the page right before the object.
    let (hdr, obj) = if align < CHUNK {
        let lead = align.max(PAGE);
        let hdr = sys::map_aligned(lead.checked_add(usable)?, CHUNK, 0)?.as_ptr() as usize;
        (hdr, hdr + lead)
    } else {
        let hdr = sys::map_aligned(PAGE.checked_add(usable)?, align, PAGE)?.as_ptr() as usize;
        (hdr, hdr + PAGE)
    };
    HUGE_MAPPED.fetch_add(obj + usable - hdr, Relaxed);
    if align < CHUNK && !zero {
        adopt_kept(hdr, obj + usable - hdr);
    }
    huge_publish(hdr, obj, usable)
}

/// The unused tail `tail..tail + len` of a kept mapping that served a
/// shorter request: moved to a CHUNK-aligned place of its own and kept
/// (its pages stay resident for the next request), or unmapped when that
/// fails or the cache does not take it.
fn keep_tail(tail: usize, len: usize) {
    if len >= CHUNK {
        if let Some(dest) = sys::map_aligned(len, CHUNK, 0) {
            let dest = dest.as_ptr();
            // SAFETY: the tail is the unused end of a mapping of ours;
            // `dest` is a fresh mapping of `len` bytes.
            if unsafe { sys::remap_onto(tail as *mut u8, len, dest) } {
                match super::huge_cache::put(dest as usize, len, sys::now_ms(), decay_ms()) {
                    Some(evicted) => {
                        HUGE_MAPPED.fetch_sub(evicted, Relaxed);
                    }
                    None => {
                        // SAFETY: the moved tail is ours and unused.
                        unsafe { sys::unmap_range(dest, len) };
                        HUGE_MAPPED.fetch_sub(len, Relaxed);
                    }
                }
                return;
            }
            // SAFETY: the fresh mapping is ours and unused.
            unsafe { sys::unmap_range(dest, len) };
        }
    }
    // SAFETY: the tail of a mapping we own and nobody uses.
    unsafe { sys::unmap_range(tail as *mut u8, len) };
    HUGE_MAPPED.fetch_sub(len, Relaxed);
}

/// Moves the resident pages of the longest kept mapping (shorter than
/// `len`, or it would have been reused whole) to the head of the new
/// mapping `hdr..hdr + len`, so that only the rest faults in: what glibc
/// gets by merging freed neighbours in its heap. A new block of 24 MiB
/// after frees of 16 MiB ones touches 8 MiB of fresh pages, not 24.
fn adopt_kept(hdr: usize, len: usize) {
    let Some((base, kept)) = super::huge_cache::take_longest() else {
        return;
    };
    // SAFETY: the kept mapping is ours and unused (taken from the cache
    // under its lock); `hdr..hdr + kept` lies in the new mapping (kept <
    // len), which nobody uses yet.
    let moved = kept < len && unsafe { sys::remap_onto(base as *mut u8, kept, hdr as *mut u8) };
    if !moved {
        // SAFETY: as above; the kept mapping is given up.
        unsafe { sys::unmap_range(base as *mut u8, kept) };
    }
    HUGE_MAPPED.fetch_sub(kept, Relaxed);
}

/// Writes the header of the huge block `hdr..obj + usable` (a mapping of
/// ours, counted in `HUGE_MAPPED`), registers it and counts it.
fn huge_publish(hdr: usize, obj: usize, usable: usize) -> Option<NonNull<u8>> {
    let h = hdr as *mut HugeHeader;
    // SAFETY: the header page is ours and writable.
    unsafe {
        h.write(HugeHeader {
            kind: KIND_HUGE,
            ptr: obj as *mut u8,
            usable,
            map_base: hdr as *mut u8,
            map_len: obj + usable - hdr,
        });
    }
    super::registry::add_huge(hdr, obj);
    if stats_enabled() {
        HUGE_NMALLOC.fetch_add(1, Relaxed);
    }
    HUGE_BYTES.fetch_add(usable, Relaxed);
    if prof_enabled() {
        super::prof::on_alloc(obj as *mut u8, usable);
    }
    NonNull::new(obj as *mut u8)
}

/// A huge block of `usable` bytes (page multiple), its object `off` bytes
/// (a page multiple below CHUNK) after a CHUNK-aligned header, carved from
/// a kept mapping; `None` when no kept mapping is long enough.
fn huge_reuse(usable: usize, off: usize, zero: bool, growing: bool) -> Option<NonNull<u8>> {
    let need = off.checked_add(usable)?;
    let (base, len) = super::huge_cache::take(need)?;
    // Keep the whole mapping when the excess is within the quarter steps
    // of `huge_resize`, or is room for a growing buffer; else the excess
    // is kept apart (`keep_tail`) for the next request.
    let keep = if len - need <= need || growing && len / 4 <= need {
        len
    } else {
        keep_tail(base + need, len - need);
        need
    };
    let obj = base + off;
    if zero {
        // SAFETY: the object's pages are ours, mapped and unused.
        unsafe { ptr::write_bytes(obj as *mut u8, 0, usable) };
    }
    huge_publish(base, obj, keep - off)
}

/// Frees a huge block: with `keep`, a chunk-aligned mapping is kept for
/// reuse until `decay_ms` passes; otherwise it is unmapped at once.
///
/// # Safety
/// `h` is the header of a live huge block no one uses any more.
pub(crate) unsafe fn huge_free(h: *mut HugeHeader, keep: bool) {
    if prof_enabled() {
        // SAFETY: per the contract, `h` is a live header.
        super::prof::on_free(unsafe { (*h).ptr });
    }
    // SAFETY: per the contract.
    let (base, len, usable) = unsafe {
        super::registry::remove_huge(h);
        // A kept mapping must not look like a live block to a second free.
        (*h).kind = 0;
        ((*h).map_base, (*h).map_len, (*h).usable)
    };
    if stats_enabled() {
        HUGE_NFREE.fetch_add(1, Relaxed);
    }
    HUGE_BYTES.fetch_sub(usable, Relaxed);
    let now = sys::now_ms();
    let kept = if keep && base as usize % CHUNK == 0 {
        super::huge_cache::put(base as usize, len, now, decay_ms())
    } else {
        None
    };
    match kept {
        Some(evicted) => {
            HUGE_MAPPED.fetch_sub(evicted, Relaxed);
            huge_purge(now);
        }
        None => {
            HUGE_MAPPED.fetch_sub(len, Relaxed);
            // SAFETY: the whole mapping is ours and no longer used.
            unsafe { sys::unmap_range(base, len) };
        }
    }
}

/// Grows huge block `h` to at least `new` bytes by moving its pages to a
/// longer mapping (`mremap`: the kernel moves them, nothing is copied or
/// faulted in again), when it cannot grow where it is. Returns the block's
/// new address; `None` (the block unchanged) when it is not of the common
/// shape (header at a CHUNK-aligned base) or the system refuses.
///
/// # Safety
/// `h` is the header of a live huge block owned by the caller.
pub(super) unsafe fn huge_move(h: *mut HugeHeader, new: usize) -> Option<NonNull<u8>> {
    // SAFETY: per the contract the block and its header are ours.
    let (base, len, obj, have) = unsafe {
        (
            (*h).map_base as usize,
            (*h).map_len,
            (*h).ptr as usize,
            (*h).usable,
        )
    };
    let off = obj - base;
    let need = new.checked_add(PAGE - 1)? & !(PAGE - 1);
    if base % CHUNK != 0 || off >= CHUNK || need <= have {
        return None;
    }
    // Grow by at least a quarter, as `huge_resize` does in place.
    let want = need.max((have + have / 4 + PAGE - 1) & !(PAGE - 1));
    let mut total = off.checked_add(want)?;
    // A kept mapping long enough is the best destination: its pages past
    // the moved ones are resident already.
    let dest = match super::huge_cache::take(total) {
        Some((kept, len)) => {
            if len - total <= total {
                total = len;
            } else {
                keep_tail(kept + total, len - total);
            }
            HUGE_MAPPED.fetch_sub(total, Relaxed);
            kept as *mut u8
        }
        None => sys::map_aligned(total, CHUNK, 0)?.as_ptr(),
    };
    let want = total - off;
    // SAFETY: the registry entry is the live block's; it is added again
    // below at whichever address the block ends up.
    unsafe { super::registry::remove_huge(h) };
    // SAFETY: the old mapping is ours and only its owner (the caller) uses
    // it; `dest` is a fresh mapping of `total >= len` bytes.
    if !unsafe { sys::remap_onto(base as *mut u8, len, dest) } {
        super::registry::add_huge(base, obj);
        // SAFETY: the fresh mapping is ours and unused.
        unsafe { sys::unmap_range(dest, total) };
        return None;
    }
    HUGE_MAPPED.fetch_add(total - len, Relaxed);
    HUGE_BYTES.fetch_add(want - have, Relaxed);
    let h = dest.cast::<HugeHeader>();
    // SAFETY: the header page moved with the block to `dest`.
    unsafe {
        (*h).ptr = dest.add(off);
        (*h).usable = want;
        (*h).map_base = dest;
        (*h).map_len = total;
    }
    super::registry::add_huge(dest as usize, dest as usize + off);
    if prof_enabled() {
        super::prof::on_realloc(obj as *mut u8, dest.wrapping_add(off), have, want);
    }
    NonNull::new(dest.wrapping_add(off))
}

/// Unmaps kept huge mappings free for `decay_ms` (all with `u64::MAX`).
pub(crate) fn huge_purge(now: u64) {
    let gone = super::huge_cache::purge(now, decay_ms());
    if gone > 0 {
        HUGE_MAPPED.fetch_sub(gone, Relaxed);
    }
}

/// Resizes a huge block in place: shrinks by unmapping its tail, grows with
/// `mremap` when the address space after it is free. Like the size
/// classes, sizes move in steps of a quarter: a block keeps its pages for
/// any size down to three quarters of them, and grows by at least a
/// quarter (exactly as asked if that much room is not there), so a buffer
/// grown by small appends costs one system call per quarter, not per page.
///
/// # Safety
/// `h` is the header of a live huge block owned by the caller.
pub(super) unsafe fn huge_resize(h: *mut HugeHeader, new: usize) -> bool {
    let need = (new.max(1) + PAGE - 1) & !(PAGE - 1);
    // SAFETY: per the contract the block and its header are ours.
    unsafe {
        let have = (*h).usable;
        let (base, len) = ((*h).map_base, (*h).map_len);
        if need <= have && need >= have - have / 4 {
            return true;
        }
        let want = if need < have {
            sys::unmap_range((*h).ptr.add(need), have - need);
            need
        } else {
            let step = (have + have / 4 + PAGE - 1) & !(PAGE - 1);
            let grow = |to: usize| sys::remap_in_place(base, len, len + (to - have));
            if need < step && grow(step) {
                step
            } else if grow(need) {
                need
            } else {
                return false;
            }
        };
        (*h).usable = want;
        (*h).map_len = len - have + want;
        HUGE_BYTES.fetch_add(want, Relaxed);
        HUGE_BYTES.fetch_sub(have, Relaxed);
        HUGE_MAPPED.fetch_add(want, Relaxed);
        HUGE_MAPPED.fetch_sub(have, Relaxed);
        if prof_enabled() {
            super::prof::on_realloc((*h).ptr, (*h).ptr, have, want);
        }
    }
    true
}
