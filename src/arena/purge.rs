//! Giving memory back: decay purging of an arena's dirty runs
//! (`MADV_DONTNEED` once `decay_ms` has passed), [`trim`], and the
//! background purge thread.

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, Ordering::*};

use super::chunk::*;
use super::heap::{sub, Arena};
use super::huge::huge_purge;
use super::init::{arena, decay_ms, ensure_init, narenas, CONF};
use super::runs::Runs;
use super::size_class::PAGE;
use super::tcache;
use crate::list::List;
use crate::sys;

pub(super) static BG_WANTED: AtomicBool = AtomicBool::new(false);

pub(super) static BG_RUNNING: AtomicBool = AtomicBool::new(false);

impl Arena {
    /// Purges dirty runs freed at least `decay_ms` ago (all of them when
    /// `decay_ms` is 0; none when negative).
    pub(crate) fn purge_expired(&self, r: &mut Runs, now: u64, decay_ms: i64) {
        if decay_ms < 0 {
            return;
        }
        while !r.dirty_runs.is_empty() {
            let m = r.dirty_runs.head();
            // SAFETY: dirty list members are free runs guarded by the lock.
            if unsafe { (*m).freed_at } + decay_ms as u64 > now {
                break;
            }
            // SAFETY: as above.
            unsafe { self.purge_run(r, m) };
        }
    }

    /// # Safety
    /// `m` is on the dirty list; run lock held.
    unsafe fn purge_run(&self, r: &mut Runs, m: *mut RunMeta) {
        // SAFETY: a free run's pages hold no live data; once purged they
        // merge with clean free neighbours.
        unsafe {
            let n = (*m).npages as usize;
            sys::purge(run_addr(m), n * PAGE);
            r.dirty_runs.remove(m);
            r.bucket_remove(m);
            sub(&self.dirty_pages, n);
            self.purged_pages
                .store(self.purged_pages.load(Relaxed) + n as u64, Relaxed);
            let (run, total) = r.coalesce(m, n, false);
            r.make_free(run, total, false, 0);
        }
    }

    /// Purges every dirty run and unmaps wholly free chunks.
    pub(crate) fn purge_all(&self) {
        for b in &self.bins {
            let mut bin = b.0.lock();
            let spare = core::mem::replace(&mut bin.spare, null_mut());
            if !spare.is_null() {
                let mut r = self.runs.lock();
                // SAFETY: the spare slab is wholly free and owned by the bin.
                unsafe { self.free_run(&mut r, spare, sys::now_ms()) };
            }
        }
        let mut r = self.runs.lock();
        self.purge_expired(&mut r, u64::MAX, 0);
        let mut c = r.chunks.head();
        while !c.is_null() {
            // SAFETY: chunks on the list are mapped and guarded by the lock.
            unsafe {
                let next = List::next(c);
                let m = meta_at(c, HEADER_PAGES);
                if (*m).state == RUN_FREE && (*m).npages as usize == USABLE_PAGES {
                    r.bucket_remove(m);
                    r.chunks.remove(c);
                    super::registry::remove_chunk(c.cast());
                    sys::unmap(ptr::NonNull::new_unchecked(c.cast()), CHUNK);
                    sub(&self.nchunks, 1);
                }
                c = next;
            }
        }
    }

    /// Purges expired dirty runs if the run lock is free (activity tick).
    pub(crate) fn decay_tick(&self) {
        if let Some(mut r) = self.runs.try_lock() {
            self.purge_expired(&mut r, sys::now_ms(), decay_ms());
        }
    }
}

/// Starts or stops the background purge thread; returns whether it is
/// (or will keep) running.
pub(crate) fn set_background_thread(on: bool) -> bool {
    ensure_init();
    BG_WANTED.store(on, SeqCst);
    CONF.lock().background_thread = on;
    if !on {
        return false;
    }
    if BG_RUNNING.swap(true, SeqCst) {
        return true;
    }
    if sys::spawn_detached(background_main) {
        true
    } else {
        BG_RUNNING.store(false, SeqCst);
        BG_WANTED.store(false, SeqCst);
        CONF.lock().background_thread = false;
        false
    }
}

extern "C" fn background_main(_: *mut libc::c_void) -> *mut libc::c_void {
    loop {
        if !BG_WANTED.load(SeqCst) {
            BG_RUNNING.store(false, SeqCst);
            // A restart may have raced with our exit: keep going then.
            if !BG_WANTED.load(SeqCst) || BG_RUNNING.swap(true, SeqCst) {
                return null_mut();
            }
        }
        let d = decay_ms();
        let nap = if d < 0 {
            1000
        } else {
            (d as u64 / 4).clamp(10, 1000)
        };
        sys::sleep_ms(nap);
        for i in 0..narenas() {
            if let Some(a) = arena(i) {
                let mut r = a.runs.lock();
                a.purge_expired(&mut r, sys::now_ms(), decay_ms());
            }
        }
        huge_purge(sys::now_ms());
    }
}

/// Flushes the caller's cache, then purges every arena now.
pub(crate) fn trim() {
    if !ensure_init() {
        return;
    }
    tcache::flush_current();
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.purge_all();
        }
    }
    huge_purge(u64::MAX);
}
