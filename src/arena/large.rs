//! Large objects (16 KiB-1 MiB): one page run each. Allocation, free, and
//! the in-place growing and shrinking that `realloc` uses.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::chunk::*;
use super::heap::{add, sub, Arena};
use super::size_class::PAGE;
use crate::sys;

/// Pages from which a new large run is given back to the OS as soon as it
/// is freed (`purge_on_free`): at first 32 (128 KiB, glibc's first mmap
/// threshold), then one more than the largest run given back at its free
/// so far, so that it only rises.
///
/// glibc's dynamic mmap threshold is the model. A block larger than any
/// freed before is seldom followed by a block of its size soon: a hash
/// table or vector that doubles frees each old buffer for good. Kept
/// dirty, those buffers wait `decay_ms` (eight threads' order books of
/// hashbrown maps peaked at 1.33x glibc's RSS, at 1.09x when they are
/// given back at once). A size that comes back, such as a buffer built and
/// dropped per request, is purged only on its first free: the threshold
/// then passes it, and its later runs stay dirty for reuse.
static PURGE_ON_FREE: AtomicUsize = AtomicUsize::new(32);

impl Arena {
    /// A large run of `npages` aligned to `align`; with whether it is zero.
    /// `room` (pages, 0 for none) asks for a place where the run can grow
    /// in place to that size, for blocks that are being grown by `realloc`.
    pub(crate) fn alloc_large(
        &self,
        npages: usize,
        align: usize,
        class: usize,
        room: usize,
    ) -> Option<(*mut u8, bool)> {
        let mut r = self.runs.lock();
        // SAFETY: we hold the run lock.
        let (m, zero) =
            unsafe { self.alloc_run(&mut r, npages, align, RUN_LARGE, class as u8, room) }?;
        // SAFETY: `m` is the run just allocated, ours.
        unsafe { (*m).purge_on_free = npages >= PURGE_ON_FREE.load(Relaxed) };
        drop(r);
        self.decay_inline(sys::now_ms());
        Some((run_addr(m), zero))
    }

    /// Frees a large run: given back to the OS first (with no lock held)
    /// if it was bigger than every such run freed before it was allocated
    /// ([`PURGE_ON_FREE`]) and purging is on, else left dirty.
    ///
    /// # Safety
    /// `m` is a large run of this arena no one uses any more.
    pub(crate) unsafe fn free_large(&self, m: *mut RunMeta) {
        // SAFETY: per the contract, `m` is ours until it is freed below.
        if unsafe { (*m).purge_on_free } && unsafe { self.free_purged(m) } {
            return;
        }
        let mut r = self.runs.lock();
        let now = sys::now_ms();
        // SAFETY: per the contract; we hold the run lock.
        unsafe { self.free_run(&mut r, m, now) };
        drop(r);
        // A program that frees only large blocks leaves dirty pages too:
        // the purger starts here as on a thread cache's tick.
        super::purge::start_lazily();
        self.decay_inline(now);
    }

    /// [`Arena::free_large`] of a run marked `purge_on_free`: gives its
    /// pages back, then files it clean, and raises [`PURGE_ON_FREE`] past
    /// it. False, and nothing done, if purging is off (`decay_ms` < 0) or
    /// the kernel refused (the caller then frees it as a dirty run).
    ///
    /// # Safety
    /// As [`Arena::free_large`].
    #[cold]
    #[inline(never)]
    unsafe fn free_purged(&self, m: *mut RunMeta) -> bool {
        if super::init::decay_ms() < 0 {
            return false;
        }
        // SAFETY: per the contract, `m` is ours and nobody uses its pages.
        let n = unsafe { (*m).npages as usize };
        // SAFETY: as above.
        if !unsafe { sys::purge(run_addr(m), n * PAGE) } {
            return false;
        }
        PURGE_ON_FREE.fetch_max(n + 1, Relaxed);
        let mut r = self.runs.lock();
        // SAFETY: per the contract; its pages read as zeros now; we hold
        // the run lock.
        unsafe { self.free_run_purged(&mut r, m) };
        true
    }

    /// Grows large run `m` to `new` pages in place if the run after it is
    /// free and big enough.
    ///
    /// # Safety
    /// `m` is a large run of this arena owned by the caller.
    pub(crate) unsafe fn grow_large(&self, m: *mut RunMeta, new: usize) -> bool {
        let mut r = self.runs.lock();
        // SAFETY: the neighbour is a run of the same chunk, guarded by the
        // run lock we hold.
        unsafe {
            let c = chunk_of(m);
            let s = page_of(m);
            let n = (*m).npages as usize;
            let t = s + n;
            let extra = new - n;
            if t >= CHUNK_PAGES {
                return false;
            }
            let nm = meta_at(c, t);
            if (*nm).state != RUN_FREE || ((*nm).npages as usize) < extra {
                return false;
            }
            let (dirty, freed_at, tn) = ((*nm).dirty, (*nm).freed_at, (*nm).npages as usize);
            r.bucket_remove(nm);
            (*nm).state = RUN_NONE;
            if tn > extra {
                let rest = meta_at(c, t + extra);
                r.make_free(rest, tn - extra, dirty, freed_at);
                if dirty {
                    r.dirty_runs.replace(nm, rest);
                }
            } else if dirty {
                r.dirty_runs.remove(nm);
            }
            if dirty {
                sub(&self.dirty_pages, extra);
            }
            (*m).npages = new as u32;
            set_pagemap(c, t..t + extra, s);
            add(&self.active_pages, extra);
        }
        true
    }

    /// Shrinks large run `m` to `new` pages (less than now), freeing the tail.
    ///
    /// # Safety
    /// `m` is a large run of this arena owned by the caller.
    pub(crate) unsafe fn shrink_large(&self, m: *mut RunMeta, new: usize) {
        let mut r = self.runs.lock();
        // SAFETY: the tail pages belong to `m`; guarded by the run lock.
        unsafe {
            let c = chunk_of(m);
            let s = page_of(m);
            let n = (*m).npages as usize;
            let t = meta_at(c, s + new);
            (*t).state = RUN_LARGE;
            (*t).npages = (n - new) as u32;
            (*m).npages = new as u32;
            self.free_run(&mut r, t, sys::now_ms());
        }
    }
}
