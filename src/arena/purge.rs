//! Giving memory back: decay purging of an arena's dirty runs
//! (`MADV_DONTNEED` once `decay_ms` has passed), [`trim`], and the
//! background purge thread.

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::*};

use super::chunk::*;
use super::heap::{add, sub, Arena};
use super::huge::huge_purge;
use super::init::{arena, decay_ms, ensure_init, narenas, CONF};
use super::runs::Runs;
use super::size_class::PAGE;
use super::tcache;
use crate::list::List;
use crate::sys;

pub(super) static BG_WANTED: AtomicBool = AtomicBool::new(false);

pub(super) static BG_RUNNING: AtomicBool = AtomicBool::new(false);

/// Set (and the purger woken) when a thread cache found a depot full
/// ([`nudge`]); the purger's futex word.
static NUDGED: AtomicU32 = AtomicU32::new(0);

/// The earliest time (ms) of the next [`nudge`].
static NEXT_NUDGE: AtomicU64 = AtomicU64::new(0);

/// Least time between two nudges (ms).
const NUDGE_MS: u64 = 10;

/// Asks the background purger, if it runs, to drain the depots now
/// rather than at its next round: called by a thread cache whose flush
/// found its arena's depot full, so that the next flushes find room (a
/// flush to the slabs takes a few hundred nanoseconds; a depot left full
/// by another workload made every 64th free of a thread pay it until the
/// round came). At most once per [`NUDGE_MS`]: a coarse clock read and a
/// compare, then one `FUTEX_WAKE`.
pub(crate) fn nudge() {
    if !BG_RUNNING.load(Relaxed) {
        return;
    }
    let now = sys::now_ms();
    if now < NEXT_NUDGE.load(Relaxed) || NUDGED.swap(1, Release) != 0 {
        return;
    }
    NEXT_NUDGE.store(now + NUDGE_MS, Relaxed);
    sys::wake_one(&NUDGED);
}

/// What a layer above gives back when the program is idle (the pool layer
/// registers its idle-pool trim, [`set_idle_hook`]); the purger calls it
/// with the time (ms) and `decay_ms` on each round.
static IDLE_HOOK: AtomicPtr<()> = AtomicPtr::new(null_mut());

/// Registers `hook` with the background purger (the arena cannot name the
/// layers above it).
pub(crate) fn set_idle_hook(hook: fn(u64, i64)) {
    IDLE_HOOK.store(hook as *mut (), Release);
}

/// Dirty runs taken per batch: the run lock is released while their pages
/// are given back, so an allocating thread never waits on `madvise`.
const PURGE_BATCH: usize = 32;

/// Who purges, which decides how [`Arena::purge_expired`] behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purger {
    /// An allocating thread on its own events: gives up when the run lock
    /// is busy, and keeps wholly free chunks mapped for reuse.
    Inline,
    /// The background purger or `trim`: waits for the lock, and unmaps a
    /// chunk whose pages all become clean and free (its header's pages
    /// would stay resident otherwise).
    Patient,
}

impl Arena {
    /// Purges dirty runs freed at least `decay_ms` ago (all of them when
    /// `decay_ms` is 0; none when negative). Expired runs are taken off the
    /// free lists in batches under the run lock (marked [`RUN_PURGING`], so
    /// that neither allocation nor a freed neighbour's merge touches them),
    /// purged with the lock released, then filed as clean free runs.
    pub(crate) fn purge_expired(&self, now: u64, decay_ms: i64, who: Purger) {
        if decay_ms < 0 {
            return;
        }
        let mut wait = who == Purger::Patient;
        loop {
            let mut batch = [(null_mut(), 0); PURGE_BATCH];
            let n = {
                let mut r = if wait {
                    self.runs.lock()
                } else {
                    match self.runs.try_lock() {
                        Some(r) => r,
                        None => return,
                    }
                };
                self.take_expired(&mut r, now, decay_ms, &mut batch)
            };
            if n == 0 {
                return;
            }
            self.give_back(&batch[..n], who);
            if n < PURGE_BATCH {
                return;
            }
            wait = true;
        }
    }

    /// When (ms) this arena's oldest dirty run is `decay_ms` (not
    /// negative) old; `u64::MAX` if it has none.
    fn next_expiry(&self, decay_ms: i64) -> u64 {
        let r = self.runs.lock();
        if r.dirty_runs.is_empty() {
            return u64::MAX;
        }
        // SAFETY: dirty list members are free runs guarded by the run
        // lock, which we hold.
        let freed_at = unsafe { (*r.dirty_runs.head()).freed_at };
        freed_at.saturating_add(decay_ms as u64)
    }

    /// Purges the runs [`Arena::take_expired`] took, with the run lock
    /// released, then files them as clean free runs; a chunk that becomes
    /// one clean free run is unmapped when `who` is [`Purger::Patient`].
    fn give_back(&self, batch: &[(*mut RunMeta, usize)], who: Purger) {
        for &(m, npages) in batch {
            // SAFETY: a run marked purging is free (no live data) and
            // reserved to us: nothing else reads or writes its pages.
            unsafe { sys::purge(run_addr(m), npages * PAGE) };
        }
        let mut free_chunks = [null_mut::<ChunkHeader>(); PURGE_BATCH];
        let mut nfree = 0;
        // The samples' chunks stay mapped, in their reserved range.
        let keep_chunks = super::samples::is_arena(self);
        let mut r = self.runs.lock();
        let mut pages = 0;
        for &(m, npages) in batch {
            // SAFETY: `m` was marked purging by us under the run lock
            // and is held again; once purged it merges with clean
            // free neighbours. A chunk that is one clean free run holds
            // nothing: it leaves the arena's lists under the lock.
            unsafe {
                r.purging.remove(m);
                let (run, total, _) = r.coalesce(m, npages, false);
                r.make_free(run, total, false, 0);
                if who == Purger::Patient && total == USABLE_PAGES && !keep_chunks {
                    let c = chunk_of(run);
                    r.bucket_remove(run);
                    r.chunks.remove(c);
                    super::registry::remove_chunk(c.cast());
                    sub(&self.nchunks, 1);
                    free_chunks[nfree] = c;
                    nfree += 1;
                }
            }
            pages += npages as u64;
        }
        self.purged_pages
            .store(self.purged_pages.load(Relaxed) + pages, Relaxed);
        drop(r);
        for &c in &free_chunks[..nfree] {
            // SAFETY: the chunk left every list of the arena above; no
            // run of it is allocated, so nothing refers to its memory.
            unsafe { sys::unmap(ptr::NonNull::new_unchecked(c.cast()), CHUNK) };
        }
    }

    /// Takes up to a batch of expired dirty runs off the free lists and
    /// marks them purging; returns how many.
    fn take_expired(
        &self,
        r: &mut Runs,
        now: u64,
        decay_ms: i64,
        batch: &mut [(*mut RunMeta, usize); PURGE_BATCH],
    ) -> usize {
        let mut n = 0;
        while n < PURGE_BATCH && !r.dirty_runs.is_empty() {
            let m = r.dirty_runs.head();
            // SAFETY: dirty list members are free runs guarded by the lock.
            unsafe {
                if (*m).freed_at + decay_ms as u64 > now {
                    break;
                }
                let npages = (*m).npages as usize;
                r.dirty_runs.remove(m);
                r.bucket_remove(m);
                (*m).state = RUN_PURGING;
                r.purging.push_back(m);
                sub(&self.dirty_pages, npages);
                batch[n] = (m, npages);
            }
            n += 1;
        }
        n
    }

    /// Fork child: runs the parent was purging when it forked go back on
    /// the dirty list (the child has no purging thread to finish them).
    pub(crate) fn fork_child(&self) {
        let mut r = self.runs.lock();
        while !r.purging.is_empty() {
            let m = r.purging.head();
            // SAFETY: purging runs are free runs of this arena, reserved by
            // a thread that does not exist in the child; lock held.
            unsafe {
                let npages = (*m).npages as usize;
                r.purging.remove(m);
                r.file_dirty(m, npages, sys::now_ms());
                add(&self.dirty_pages, npages);
            }
        }
    }

    /// Purges every dirty run and unmaps wholly free chunks, after
    /// draining every depot to the slabs.
    pub(crate) fn purge_all(&self) {
        self.depot_drain(true);
        for b in &self.bins {
            let mut bin = b.0.lock();
            let spare = core::mem::replace(&mut bin.spare, null_mut());
            if !spare.is_null() {
                let mut r = self.runs.lock();
                // SAFETY: the spare slab is wholly free and owned by the bin.
                unsafe { self.free_run(&mut r, spare, sys::now_ms()) };
            }
        }
        self.purge_expired(u64::MAX, 0, Purger::Patient);
        let mut r = self.runs.lock();
        let mut c = r.chunks.head();
        while !c.is_null() {
            // SAFETY: chunks on the list are mapped and guarded by the lock.
            unsafe {
                let next = List::next(c);
                let m = meta_at(c, HEADER_PAGES);
                if (*m).state == RUN_FREE
                    && (*m).npages as usize == USABLE_PAGES
                    && !super::samples::is_arena(self)
                {
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

    /// Purges expired dirty runs on an allocating thread's own events if
    /// the run lock is free, unless the background purger does it (then an
    /// allocating thread purges only with `decay_ms:0`, which asks for
    /// pages to go back at once). Without a purger, the depots are drained
    /// at most once per purger-round interval: a walk over every small
    /// class's lock on every large allocation and free was half the time
    /// of a `realloc` loop.
    pub(crate) fn decay_inline(&self, now: u64) {
        let d = decay_ms();
        if d != 0 && BG_RUNNING.load(Relaxed) {
            return;
        }
        self.drain_inline(now, d);
        self.purge_expired(now, d, Purger::Inline);
    }

    /// [`Arena::decay_inline`]'s drain of the depots at `now` with decay
    /// time `d`: all at once with `d == 0`, else what no take reached, if a
    /// purger round's interval has passed since the last one.
    fn drain_inline(&self, now: u64, d: i64) {
        if d == 0 {
            self.depot_drain(true);
        } else if now >= self.next_drain.load(Relaxed) {
            // Several threads may pass together: each drains, harmlessly.
            self.next_drain.store(now + round_ms(d), Relaxed);
            self.depot_drain(false);
        }
    }
}

/// Starts or stops the background purge thread; returns whether it is
/// (or will keep) running.
pub(crate) fn set_background_thread(on: bool) -> bool {
    ensure_init();
    BG_WANTED.store(on, SeqCst);
    CONF.lock().background_thread = on;
    on && start()
}

/// The purger is wanted (`background_thread:true`, the default) but not
/// started until a thread's cache ticks: the first frees that can leave
/// dirty pages come through there, and no lock is held at that point.
/// Returns whether the purger runs (then the caller does not purge).
pub(crate) fn start_lazily() -> bool {
    if BG_RUNNING.load(Relaxed) {
        return true;
    }
    BG_WANTED.load(Relaxed) && start()
}

fn start() -> bool {
    if BG_RUNNING.swap(true, SeqCst) {
        return true;
    }
    if sys::spawn_detached(background_main) {
        true
    } else {
        // No thread (out of threads, or a sandbox that forbids them):
        // allocating threads keep purging on their own events.
        BG_RUNNING.store(false, SeqCst);
        BG_WANTED.store(false, SeqCst);
        CONF.lock().background_thread = false;
        false
    }
}

/// The purger's nap between rounds for decay time `d` (ms, negative for
/// never): a quarter of it, between 10 ms and 1 s.
fn round_ms(d: i64) -> u64 {
    if d < 0 {
        1000
    } else {
        (d as u64 / 4).clamp(10, 1000)
    }
}

extern "C" fn background_main(_: *mut libc::c_void) -> *mut libc::c_void {
    let mut next_round = sys::now_ms() + round_ms(decay_ms());
    let mut next_expiry = u64::MAX;
    loop {
        if !BG_WANTED.load(SeqCst) {
            BG_RUNNING.store(false, SeqCst);
            // A restart may have raced with our exit: keep going then.
            if !BG_WANTED.load(SeqCst) || BG_RUNNING.swap(true, SeqCst) {
                return null_mut();
            }
        }
        let now = sys::now_ms();
        let wake = next_round.min(next_expiry);
        if now < wake {
            sys::wait_ms(&NUDGED, 0, wake - now);
            if NUDGED.swap(0, Acquire) != 0 {
                // A depot ran full: its older half goes back to the slabs
                // now, off the thread that found it full.
                for i in 0..narenas() {
                    if let Some(a) = arena(i) {
                        a.depot_halve_full();
                    }
                }
            }
            continue;
        }
        if now >= next_round {
            next_round = now + round_ms(decay_ms());
            round();
        } else {
            // Between rounds, only what expires now: each run goes back
            // `decay_ms` after it was freed, not up to a round later.
            for i in 0..narenas() {
                if let Some(a) = arena(i) {
                    a.purge_expired(sys::now_ms(), decay_ms(), Purger::Patient);
                }
            }
            huge_purge(sys::now_ms());
        }
        // No sooner than an eighth of a round from now: a program that
        // frees all the time has a run expiring every millisecond, and
        // the purger would wake (and take the run locks) as often.
        let d = decay_ms();
        next_expiry = next_expiry_ms(d).max(sys::now_ms() + (round_ms(d) / 8).max(1));
    }
}

/// A round of the background purger: depots drained, expired runs and
/// huge mappings given back, quiet threads' caches reclaimed, then the
/// layers above ([`set_idle_hook`]).
fn round() {
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.depot_drain(decay_ms() == 0);
            a.purge_expired(sys::now_ms(), decay_ms(), Purger::Patient);
        }
    }
    // Quiet threads' caches after the purge: the slab runs they free
    // start their decay now (or take the age of the larger dirty run
    // they join, [`super::runs::Runs::coalesce`]).
    tcache::reclaim_quiet(sys::now_ms(), decay_ms());
    huge_purge(sys::now_ms());
    let hook = IDLE_HOOK.load(Acquire);
    if !hook.is_null() {
        // SAFETY: only `set_idle_hook` stores here, always a
        // `fn(u64, i64)`.
        let hook: fn(u64, i64) = unsafe { core::mem::transmute(hook) };
        hook(sys::now_ms(), decay_ms());
    }
}

/// When (ms) the oldest dirty run of any arena, or the oldest kept huge
/// mapping, is `decay_ms` old; `u64::MAX` if nothing is waiting, or if
/// `decay_ms` is 0 (allocating threads purge at once then, and the rounds,
/// every 10 ms, take what they left) or negative (never).
fn next_expiry_ms(decay_ms: i64) -> u64 {
    if decay_ms <= 0 {
        return u64::MAX;
    }
    let mut at = super::huge_cache::next_free_at().saturating_add(decay_ms as u64);
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            at = at.min(a.next_expiry(decay_ms));
        }
    }
    at
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

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use core::alloc::{GlobalAlloc, Layout};

    /// `n` adjacent runs of the given page counts, taken from a fresh
    /// chunk of `a`, then one guard page after them.
    #[cfg(not(loom))]
    fn adjacent_runs(a: &Arena, pages: &[usize]) -> Vec<*mut RunMeta> {
        let mut r = a.runs.lock();
        let mut out: Vec<*mut RunMeta> = Vec::new();
        for &n in pages.iter().chain([1].iter()) {
            // SAFETY: we hold the run lock.
            let (m, _) = unsafe { a.alloc_run(&mut r, n, PAGE, RUN_LARGE, 0, 0) }.expect("run");
            if let Some(&prev) = out.last() {
                // SAFETY: `prev` is a live run of ours.
                let end = unsafe { run_addr(prev).add((*prev).npages as usize * PAGE) };
                assert_eq!(run_addr(m), end, "runs from a fresh chunk are adjacent");
            }
            out.push(m);
        }
        out.pop();
        out
    }

    /// Frees run `m` of `a` at time `t` (ms).
    #[cfg(not(loom))]
    fn free_at(a: &Arena, m: *mut RunMeta, t: u64) {
        let mut r = a.runs.lock();
        // SAFETY: `m` is an allocated run of `a` that no one uses.
        unsafe { a.free_run(&mut r, m, t) };
    }

    /// A burst freed slab after slab into one dirty run goes back
    /// `decay_ms` after its first slabs, not after its last (each free
    /// used to restart the whole run's decay); a large run freed next to a
    /// small old one keeps its own, younger, age.
    #[test]
    #[cfg(not(loom))]
    fn a_merged_dirty_run_takes_the_age_of_its_largest_part() {
        let a = super::super::heap::private_arena();
        let burst = adjacent_runs(a, &[2; 8]);
        for (i, &m) in burst.iter().enumerate() {
            free_at(a, m, 1000 + i as u64);
        }
        assert_eq!(a.dirty_pages.load(Relaxed), 16);
        // The first two tie (the newer wins), then the merged run is the
        // largest part of each merge: it is as old as the second slab.
        a.purge_expired(1100, 100, Purger::Patient);
        assert_eq!(a.dirty_pages.load(Relaxed), 16, "nothing expired yet");
        a.purge_expired(1101, 100, Purger::Patient);
        assert_eq!(a.dirty_pages.load(Relaxed), 0, "the whole burst went back");

        let old_and_big = adjacent_runs(a, &[1, 8]);
        free_at(a, old_and_big[0], 2000);
        free_at(a, old_and_big[1], 3000);
        a.purge_expired(3099, 100, Purger::Patient);
        assert_eq!(
            a.dirty_pages.load(Relaxed),
            9,
            "the larger, younger part decides"
        );
        a.purge_expired(3100, 100, Purger::Patient);
        assert_eq!(a.dirty_pages.load(Relaxed), 0);
    }

    /// The purger wakes when the oldest dirty run expires, not at its next
    /// round: the arena names that time, and the next one once it purged.
    #[test]
    #[cfg(not(loom))]
    fn the_next_expiry_is_the_oldest_dirty_run_s() {
        let a = super::super::heap::private_arena();
        assert_eq!(a.next_expiry(100), u64::MAX, "nothing dirty");
        // A page between each, kept, so that the freed runs do not merge.
        let runs = adjacent_runs(a, &[1, 1, 1]);
        free_at(a, runs[0], 1000);
        free_at(a, runs[2], 1500);
        assert_eq!(a.next_expiry(100), 1100);
        a.purge_expired(1100, 100, Purger::Patient);
        assert_eq!(a.next_expiry(100), 1600);
        a.purge_expired(1600, 100, Purger::Patient);
        assert_eq!(a.next_expiry(100), u64::MAX);
    }

    /// Without a purger, an allocating thread drains the depots at most
    /// once per purger-round interval: a large block's allocation or free
    /// in between finds them as they are.
    #[test]
    #[cfg(not(loom))]
    fn inline_drains_wait_a_round() {
        use super::super::size_class::CLASS_SIZE;
        let a = super::super::heap::private_arena();
        let c = CLASS_SIZE.iter().position(|&s| s == 64).unwrap();
        let mut objs = [null_mut(); 64];
        assert_eq!(a.bin_fill(c, &mut objs), 64);
        // SAFETY: unused regions of class `c` from `a`, parked once.
        assert!(unsafe { a.depot_put(c, &objs) });
        // The first drain only sets the low-water mark (64 untouched).
        a.drain_inline(1000, 1000);
        assert_eq!(a.depot_len(c), 64);
        // A round is 250 ms at a decay of 1 s: nothing happens before.
        a.drain_inline(1100, 1000);
        a.drain_inline(1249, 1000);
        assert_eq!(a.depot_len(c), 64);
        a.drain_inline(1250, 1000);
        assert_eq!(a.depot_len(c), 0, "what no take reached went back");
        // With `decay_ms:0`, every call drains all.
        assert_eq!(a.bin_fill(c, &mut objs), 64);
        // SAFETY: as above; the regions were back in their slabs.
        assert!(unsafe { a.depot_put(c, &objs) });
        a.drain_inline(1251, 0);
        assert_eq!(a.depot_len(c), 0);
    }

    /// A fork while a thread purges outside the run lock: the child (which
    /// has no such thread) files the runs again as dirty, and the parent's
    /// purge completes.
    #[test]
    fn fork_child_files_again_what_the_parent_was_purging() {
        let layout = Layout::from_size_align(100 << 10, 8).unwrap();
        // SAFETY: non-zero layout; the block is written in bounds and
        // freed once, leaving a dirty large run.
        unsafe {
            let p = crate::HotAlloc.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(1, layout.size());
            crate::HotAlloc.dealloc(p, layout);
        }
        let a = tcache::arena().expect("an arena");
        let mut batch = [(null_mut(), 0); PURGE_BATCH];
        let n = {
            let mut r = a.runs.lock();
            a.take_expired(&mut r, u64::MAX, 0, &mut batch)
        };
        assert!(n >= 1, "the freed run is dirty");
        let pages: usize = batch[..n].iter().map(|b| b.1).sum();
        let dirty = a.dirty_pages.load(Relaxed);
        // SAFETY: fork has no preconditions; the child only reads the arena
        // (after the allocator's fork handlers ran) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let ok =
                a.runs.lock().purging.is_empty() && a.dirty_pages.load(Relaxed) >= dirty + pages;
            // SAFETY: leaves the child without running the parent's
            // destructors or exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child found the runs filed again (status {status:#x})"
        );
        let purged = a.purged_pages.load(Relaxed);
        a.give_back(&batch[..n], Purger::Inline);
        assert!(a.purged_pages.load(Relaxed) >= purged + pages as u64);
    }
}
