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

/// The most bytes of huge blocks ever in use at once (`HUGE_BYTES`'s
/// peak): freed mappings are kept ([`super::huge_cache`]) only while kept
/// and used bytes together stay below it, so keeping pages for reuse never
/// lifts the program's peak; kept pages still go back after `decay_ms`.
static HUGE_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts `n` more bytes of huge blocks in use, and their peak.
fn count_in_use(n: usize) {
    let now = HUGE_BYTES.fetch_add(n, Relaxed) + n;
    HUGE_PEAK.fetch_max(now, Relaxed);
}

/// What the cache may keep in all now: the peak's excess over what is in
/// use, plus a chunk for the blocks' header pages (the peak counts the
/// objects' bytes, a kept mapping its header too).
fn cache_room() -> usize {
    let peak = HUGE_PEAK.load(Relaxed) + CHUNK;
    peak.saturating_sub(HUGE_BYTES.load(Relaxed))
}

/// Maps a huge block: `size` bytes aligned to `align`, with its header;
/// zeroed when `zero`. A mapping kept by [`super::huge_cache`] is reused
/// when one is long enough (with `growing`, a `realloc` that grows, the
/// longest: its tail is room to grow in place); else a new mapping is
/// filled with kept pages where there are some ([`fill_from_kept`]).
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
        fill_from_kept(hdr, obj + usable - hdr, 2);
    }
    huge_publish(hdr, obj, usable)
}

/// The unused tail `tail..tail + len` of a kept mapping that served a
/// shorter request: kept where it is, to lend its resident pages
/// ([`fill_from_kept`]), or unmapped when the cache does not take it.
fn keep_tail(tail: usize, len: usize) {
    match super::huge_cache::put(tail, len, sys::now_ms(), decay_ms(), cache_room()) {
        Some(evicted) => {
            HUGE_MAPPED.fetch_sub(evicted, Relaxed);
        }
        None => {
            // SAFETY: the tail of a mapping we own and nobody uses.
            unsafe { sys::unmap_range(tail as *mut u8, len) };
            HUGE_MAPPED.fetch_sub(len, Relaxed);
        }
    }
}

/// Fills `dst..dst + len`, untouched pages of a mapping of ours that
/// nobody uses yet, with resident pages of kept mappings moved there
/// (`mremap`), so that only the rest faults in: what glibc gets by reusing
/// its heap. A new block of 24 MiB after frees of 16 MiB ones, or a buffer
/// growing from 8 to 16 MiB, touches no fresh page while enough is kept.
/// At most `pieces` moves (each splits mappings, and a move costs about
/// what faulting in a few hundred pages does); for the part left to fault
/// in, as many kept bytes are unmapped, so that kept and used pages
/// together do not grow. A failed move gives its piece up and stops.
fn fill_from_kept(dst: usize, len: usize, pieces: usize) {
    let mut done = 0;
    for _ in 0..pieces {
        if done == len {
            return;
        }
        let Some((base, n)) = super::huge_cache::take_piece(len - done) else {
            return;
        };
        HUGE_MAPPED.fetch_sub(n, Relaxed);
        // SAFETY: the piece is kept pages of ours that nobody uses (taken
        // from the cache under its lock), at most `len - done` bytes;
        // `dst + done..dst + done + n` lies in the caller's untouched range.
        if !unsafe { sys::remap_onto(base as *mut u8, n, (dst + done) as *mut u8) } {
            // SAFETY: as above; the piece is given up.
            unsafe { sys::unmap_range(base as *mut u8, n) };
            return;
        }
        done += n;
    }
    let gone = super::huge_cache::release(len - done);
    HUGE_MAPPED.fetch_sub(gone, Relaxed);
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
    count_in_use(usable);
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
    let (base, len) = super::huge_cache::take(need, growing)?;
    // The excess stays kept where it is (`keep_tail`: no system call), for
    // the next request, or for this block to grow over (`huge_resize`),
    // unless it is small: pages a block holds beyond its request count as
    // in use, and lift the peak that bounds what is kept.
    let keep = if len - need <= need / 2 {
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
        super::huge_cache::put(base as usize, len, now, decay_ms(), cache_room())
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
    let total = off.checked_add(want)?;
    let dest = sys::map_aligned(total, CHUNK, 0)?.as_ptr();
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
    count_in_use(want - have);
    fill_from_kept(dest as usize + len, total - len, usize::MAX);
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
/// `mremap` when the address space after it is free (with kept pages moved
/// into the new part, [`fill_from_kept`]). Like the size
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
            let grow = |to: usize| {
                // The block's own kept tail, if it still follows it, is
                // the same mapping: growing over it is bookkeeping.
                let end = base as usize + len;
                if super::huge_cache::take_front(end, to - have) {
                    HUGE_MAPPED.fetch_sub(to - have, Relaxed);
                    return true;
                }
                let grown = sys::remap_in_place(base, len, len + (to - have));
                if grown {
                    fill_from_kept(end, to - have, usize::MAX);
                }
                grown
            };
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
        if want > have {
            count_in_use(want - have);
        } else {
            HUGE_BYTES.fetch_sub(have - want, Relaxed);
        }
        HUGE_MAPPED.fetch_add(want, Relaxed);
        HUGE_MAPPED.fetch_sub(have, Relaxed);
        if prof_enabled() {
            super::prof::on_realloc((*h).ptr, (*h).ptr, have, want);
        }
    }
    true
}
