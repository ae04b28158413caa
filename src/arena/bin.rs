//! The small path inside an arena: a bin of slabs per small class.
//! [`Arena::bin_fill`] fills a thread cache from the bin's slabs,
//! [`Arena::bin_flush`] returns a cache's regions to them; a slab's free
//! regions are a bitmap in its run metadata, and slabs with free regions
//! are on the bin's non-full list.

use core::ptr::null_mut;

use super::chunk::*;
use super::free::report_bad_free;
use super::heap::Arena;
use super::lock::SpinLock;
use super::size_class::*;
use crate::list::List;
use crate::sys;

/// The slabs of one small class in one arena.
pub(crate) struct Bin {
    /// Slabs with at least one free and one used region.
    nonfull: List<RunMeta>,
    /// One wholly free slab kept back to avoid map/unmap ping-pong.
    pub(super) spare: *mut RunMeta,
}

/// A bin on its own cache line.
#[repr(C, align(64))]
pub(crate) struct PaddedBin(pub(crate) SpinLock<Bin>);

impl Arena {
    /// Moves up to `out.len()` regions of class `c` into `out`; returns how
    /// many (fewer only when memory runs out).
    pub(crate) fn bin_fill(&self, c: usize, out: &mut [*mut u8]) -> usize {
        let mut bin = self.bins[c].0.lock();
        let mut got = 0;
        let size = CLASS_SIZE[c];
        while got < out.len() {
            let mut m = bin.nonfull.head();
            if m.is_null() {
                m = if bin.spare.is_null() {
                    let mut r = self.runs.lock();
                    // SAFETY: we hold the run lock.
                    let run = unsafe {
                        self.alloc_run(&mut r, SLAB_PAGES[c] as usize, PAGE, RUN_SLAB, c as u8, 0)
                    };
                    drop(r);
                    match run {
                        Some((m, _)) => {
                            // SAFETY: a fresh slab run owned by this bin.
                            unsafe { init_slab(m, c) };
                            m
                        }
                        None => break,
                    }
                } else {
                    core::mem::replace(&mut bin.spare, null_mut())
                };
                // SAFETY: `m` is a slab of this bin, not on its list.
                unsafe { bin.nonfull.push_front(m) };
            }
            // SAFETY: slabs on the non-full list belong to this bin, whose
            // lock we hold; a set bit is a free region inside the slab.
            unsafe {
                crate::sync::track_write(m.cast());
                let base = run_addr(m);
                let bits = &mut (*m).free_bits;
                let mut w = 0;
                while got < out.len() && (*m).nfree > 0 {
                    while bits[w] == 0 {
                        w += 1;
                    }
                    let b = bits[w].trailing_zeros() as usize;
                    bits[w] &= bits[w] - 1;
                    out[got] = base.add((w * 64 + b) * size);
                    (*m).nfree -= 1;
                    got += 1;
                }
                if (*m).nfree == 0 {
                    bin.nonfull.remove(m);
                }
            }
        }
        got
    }

    /// Returns regions of class `c` to their slabs in this arena.
    ///
    /// # Safety
    /// Every pointer is a region of class `c` allocated from this arena and
    /// no longer used.
    pub(crate) unsafe fn bin_flush(&self, c: usize, ptrs: &[*mut u8]) {
        // Find every region's slab and index before taking the lock, so the
        // lock is held only for the bit flips and list moves.
        const STEP: usize = 64;
        let mut found = [(null_mut::<RunMeta>(), 0usize); STEP];
        for part in ptrs.chunks(STEP) {
            for (slot, &p) in found.iter_mut().zip(part) {
                // SAFETY: per the contract `p` is an allocated region, so its
                // run's page map entry, state and class are stable.
                *slot = unsafe { locate(p, c) };
            }
            let mut bin = self.bins[c].0.lock();
            for (&(m, i), &p) in found.iter().zip(part) {
                // SAFETY: `m` is the slab of `p` in this bin, whose lock we
                // hold; `i` is a region index inside it.
                unsafe {
                    crate::sync::track_write(m.cast());
                    let bit = 1u64 << (i % 64);
                    if (*m).free_bits[i / 64] & bit != 0 {
                        report_bad_free(p, b"was freed twice");
                    }
                    (*m).free_bits[i / 64] |= bit;
                    let was_full = (*m).nfree == 0;
                    (*m).nfree += 1;
                    if (*m).nfree == SLAB_REGIONS[c] {
                        if !was_full {
                            bin.nonfull.remove(m);
                        }
                        if bin.spare.is_null() {
                            init_slab(m, c);
                            bin.spare = m;
                        } else {
                            let mut r = self.runs.lock();
                            self.free_run(&mut r, m, sys::now_ms());
                        }
                    } else if was_full {
                        bin.nonfull.push_front(m);
                    }
                }
            }
        }
    }
}

/// The slab of region `p` of class `c` and the region's index in it;
/// reports and aborts when `p` cannot be such a region.
///
/// # Safety
/// `p` points into a live slab or large run of this allocator.
unsafe fn locate(p: *mut u8, c: usize) -> (*mut RunMeta, usize) {
    // Only the chunk header's first line and one page map entry are read:
    // the run metadata, which the bin's other users write, is touched only
    // under the bin lock.
    let a = p as usize;
    let chunk = (a & !(CHUNK - 1)) as *mut ChunkHeader;
    // SAFETY: per the contract `p` is ours, so the CHUNK-aligned address
    // below it starts a chunk or a huge header, both starting with `kind`
    // (a CHUNK-aligned `p` is a huge object and is not read through).
    if a == chunk as usize || unsafe { (*chunk).kind } != KIND_CHUNK {
        report_bad_free(p, b"is a huge block, not a small object");
    }
    // SAFETY: a live chunk and one of its pages; the entry of a page of an
    // allocated slab is stable.
    let start = match unsafe { slab_at(chunk, (a - chunk as usize) >> LG_PAGE) } {
        Some((start, class)) if class == c => start,
        _ => report_bad_free(p, b"is not an allocated object of its size class"),
    };
    // SAFETY: `start` is the slab's first page.
    let m = unsafe { meta_at(chunk, start) };
    let off = (a - (chunk as usize + start * PAGE)) as u64;
    let i = ((off * CLASS_RECIP[c]) >> 32) as usize;
    if i * CLASS_SIZE[c] != off as usize {
        report_bad_free(p, b"is not the start of an object");
    }
    (m, i)
}

/// # Safety
/// `m` is a slab run of class `c` with all regions free.
unsafe fn init_slab(m: *mut RunMeta, c: usize) {
    // SAFETY: per the contract.
    unsafe {
        let n = SLAB_REGIONS[c] as usize;
        (*m).nfree = n as u32;
        for (w, word) in (*m).free_bits.iter_mut().enumerate() {
            *word = match n.saturating_sub(w * 64) {
                0 => 0,
                k if k >= 64 => !0,
                k => (1u64 << k) - 1,
            };
        }
    }
}
