//! Large objects (16 KiB-1 MiB): one page run each. Allocation, free, and
//! the in-place growing and shrinking that `realloc` uses.

use super::chunk::*;
use super::heap::{add, sub, Arena};
use crate::sys;

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
        drop(r);
        self.decay_inline(sys::now_ms());
        Some((run_addr(m), zero))
    }

    /// Frees a large run.
    ///
    /// # Safety
    /// `m` is a large run of this arena no one uses any more.
    pub(crate) unsafe fn free_large(&self, m: *mut RunMeta) {
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
