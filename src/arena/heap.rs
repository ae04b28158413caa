//! One arena: bins of slabs per small class, and the page runs of its
//! chunks (free runs by size, a dirty list for decay purging).
//!
//! Lock order: a bin's lock, then the arena's run lock. Nothing here
//! allocates; chunks come from [`crate::sys::map_aligned`].

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::chunk::*;
use super::lock::SpinLock;
use super::size_class::*;
use crate::sys;

/// The slabs of one small class in one arena.
pub(crate) struct Bin {
    /// Slabs with at least one free and one used region (doubly linked).
    nonfull: *mut RunMeta,
    /// One wholly free slab kept back to avoid map/unmap ping-pong.
    spare: *mut RunMeta,
}

/// A bin on its own cache line.
#[repr(C, align(64))]
pub(crate) struct PaddedBin(pub(crate) SpinLock<Bin>);

const NBUCKETS: usize = CHUNK_PAGES + 1;

/// The page runs of an arena's chunks.
pub(crate) struct Runs {
    /// Free runs of exactly `i` pages: `buckets[1]` the dirty ones,
    /// `buckets[0]` the clean (purged or never used) ones. Allocation takes
    /// a dirty run first, as jemalloc does, so freed pages are reused before
    /// fresh ones are touched.
    buckets: [[*mut RunMeta; NBUCKETS]; 2],
    /// Bit `i` of `nonempty[d]` set when `buckets[d][i]` is non-empty.
    nonempty: [[u64; NBUCKETS.div_ceil(64)]; 2],
    /// Dirty free runs, oldest first.
    dirty_head: *mut RunMeta,
    dirty_tail: *mut RunMeta,
    chunks: *mut ChunkHeader,
}

/// An arena. All-zero bytes are a valid empty arena: arenas are carved
/// from zeroed metadata memory.
#[repr(C)]
pub(crate) struct Arena {
    pub(crate) bins: [PaddedBin; NSMALL],
    pub(crate) runs: SpinLock<Runs>,
    /// Allocations and frees not counted in a thread cache, per class.
    pub(crate) nmalloc: [AtomicU64; NCLASSES],
    pub(crate) nfree: [AtomicU64; NCLASSES],
    /// Pages of slab and large runs. This and the three counters below
    /// are written only under the run lock, with [`add`]/[`sub`] (a load
    /// and a store: no locked instruction); statistics read them relaxed.
    pub(crate) active_pages: AtomicUsize,
    /// Pages of dirty free runs.
    pub(crate) dirty_pages: AtomicUsize,
    pub(crate) nchunks: AtomicUsize,
    /// Pages given back with madvise, cumulative.
    pub(crate) purged_pages: AtomicU64,
    /// Threads attached ([`super::global::attach_thread`]).
    pub(crate) nthreads: AtomicUsize,
}

impl Runs {
    /// # Safety
    /// `m` is a free run not in any bucket; run lock held.
    unsafe fn bucket_push(&mut self, m: *mut RunMeta) {
        // SAFETY: per the contract `m` and the bucket heads are ours.
        unsafe {
            let (n, d) = ((*m).npages as usize, (*m).dirty as usize);
            let head = self.buckets[d][n];
            (*m).prev = null_mut();
            (*m).next = head;
            if !head.is_null() {
                (*head).prev = m;
            }
            self.buckets[d][n] = m;
            self.nonempty[d][n / 64] |= 1 << (n % 64);
        }
    }

    /// # Safety
    /// `m` is in its bucket; run lock held.
    unsafe fn bucket_remove(&mut self, m: *mut RunMeta) {
        // SAFETY: per the contract.
        unsafe {
            let (n, d) = ((*m).npages as usize, (*m).dirty as usize);
            let (p, q) = ((*m).prev, (*m).next);
            if p.is_null() {
                self.buckets[d][n] = q;
                if q.is_null() {
                    self.nonempty[d][n / 64] &= !(1 << (n % 64));
                }
            } else {
                (*p).next = q;
            }
            if !q.is_null() {
                (*q).prev = p;
            }
        }
    }

    /// # Safety
    /// `m` is a dirty free run not on the dirty list; run lock held.
    unsafe fn dirty_push(&mut self, m: *mut RunMeta) {
        // SAFETY: per the contract.
        unsafe {
            (*m).dnext = null_mut();
            (*m).dprev = self.dirty_tail;
            if self.dirty_tail.is_null() {
                self.dirty_head = m;
            } else {
                (*self.dirty_tail).dnext = m;
            }
            self.dirty_tail = m;
        }
    }

    /// # Safety
    /// `m` is on the dirty list; run lock held.
    unsafe fn dirty_remove(&mut self, m: *mut RunMeta) {
        // SAFETY: per the contract.
        unsafe {
            let (p, q) = ((*m).dprev, (*m).dnext);
            if p.is_null() {
                self.dirty_head = q;
            } else {
                (*p).dnext = q;
            }
            if q.is_null() {
                self.dirty_tail = p;
            } else {
                (*q).dprev = p;
            }
        }
    }

    /// Puts `new` where `old` is on the dirty list (keeps the age order).
    ///
    /// # Safety
    /// `old` is on the list, `new` is not; run lock held.
    unsafe fn dirty_replace(&mut self, old: *mut RunMeta, new: *mut RunMeta) {
        // SAFETY: per the contract.
        unsafe {
            let (p, q) = ((*old).dprev, (*old).dnext);
            (*new).dprev = p;
            (*new).dnext = q;
            if p.is_null() {
                self.dirty_head = new;
            } else {
                (*p).dnext = new;
            }
            if q.is_null() {
                self.dirty_tail = new;
            } else {
                (*q).dprev = new;
            }
        }
    }

    /// The head of the smallest non-empty bucket of at least `need` pages,
    /// dirty runs first.
    fn find(&self, need: usize) -> Option<*mut RunMeta> {
        [1, 0].into_iter().find_map(|d| {
            let words = &self.nonempty[d];
            let mut w = need / 64;
            let mut bits = words.get(w)? & (!0u64 << (need % 64));
            loop {
                if bits != 0 {
                    return Some(self.buckets[d][w * 64 + bits.trailing_zeros() as usize]);
                }
                w += 1;
                bits = *words.get(w)?;
            }
        })
    }

    /// Takes the free neighbours of the `n` pages at `m` that are as dirty
    /// as `dirty` out of their buckets (and the dirty list) and returns the
    /// start and length of the merged run, not yet filed. Dirty and clean
    /// runs never merge, so a clean page is never counted or reused as
    /// dirty, and allocation's preference for dirty runs reuses pages
    /// that are already resident.
    ///
    /// # Safety
    /// `m` heads `n` pages of a chunk that no free run covers; run lock held.
    unsafe fn coalesce(&mut self, m: *mut RunMeta, n: usize, dirty: bool) -> (*mut RunMeta, usize) {
        // SAFETY: neighbours are runs of the same chunk (runs tile it);
        // everything is guarded by the run lock.
        unsafe {
            let c = chunk_of(m);
            let (mut s, mut n) = (page_of(m), n);
            let t = s + n;
            if t < CHUNK_PAGES {
                let nm = meta_at(c, t);
                if (*nm).state == RUN_FREE && (*nm).dirty == dirty {
                    self.bucket_remove(nm);
                    if dirty {
                        self.dirty_remove(nm);
                    }
                    (*nm).state = RUN_NONE;
                    n += (*nm).npages as usize;
                }
            }
            if s > HEADER_PAGES {
                let pm = meta_at(c, pagemap(c, s - 1));
                if (*pm).state == RUN_FREE && (*pm).dirty == dirty {
                    self.bucket_remove(pm);
                    if dirty {
                        self.dirty_remove(pm);
                    }
                    (*m).state = RUN_NONE;
                    s -= (*pm).npages as usize;
                    n += (*pm).npages as usize;
                }
            }
            (meta_at(c, s), n)
        }
    }

    /// Marks `m` (of `n` pages) a free run and files it.
    ///
    /// # Safety
    /// `m` heads `n` pages no other run covers; run lock held.
    unsafe fn make_free(&mut self, m: *mut RunMeta, n: usize, dirty: bool, freed_at: u64) {
        // SAFETY: per the contract.
        unsafe {
            let c = chunk_of(m);
            let s = page_of(m);
            (*m).state = RUN_FREE;
            (*m).npages = n as u32;
            (*m).dirty = dirty;
            (*m).freed_at = freed_at;
            set_pagemap(c, s..s + 1, s);
            set_pagemap(c, s + n - 1..s + n, s);
            self.bucket_push(m);
        }
    }
}

impl Arena {
    /// Takes a run of `npages` pages aligned to `align` (a power of two, at
    /// least a page); returns it with whether its pages are known zero.
    /// Maps a new chunk when no free run fits.
    ///
    /// # Safety
    /// `r` is this arena's run lock, held.
    pub(crate) unsafe fn alloc_run(
        &self,
        r: &mut Runs,
        npages: usize,
        align: usize,
        state: u8,
        class: u8,
        room: usize,
    ) -> Option<(*mut RunMeta, bool)> {
        let need = npages + align / PAGE - 1;
        if need > USABLE_PAGES {
            return None;
        }
        // With `room`, the run is cut from the front of a free run of at
        // least that many pages, so it can later grow in place.
        let want = room.clamp(need, USABLE_PAGES);
        let m = match r.find(want).or_else(|| r.find(need)) {
            Some(m) => m,
            None => {
                self.map_chunk(r)?;
                r.find(want)?
            }
        };
        // SAFETY: bucket heads are free runs of this arena's chunks, guarded
        // by the run lock we hold.
        unsafe {
            r.bucket_remove(m);
            let (dirty, freed_at, total) = ((*m).dirty, (*m).freed_at, (*m).npages as usize);
            let c = chunk_of(m);
            let s = page_of(m);
            let addr = c as usize + s * PAGE;
            let lead = (((addr + align - 1) & !(align - 1)) - addr) / PAGE;
            let tail = total - lead - npages;
            if tail > 0 {
                let t = meta_at(c, s + lead + npages);
                r.make_free(t, tail, dirty, freed_at);
                if dirty {
                    if lead > 0 {
                        r.dirty_push(t);
                    } else {
                        r.dirty_replace(m, t);
                    }
                }
            }
            if lead > 0 {
                r.make_free(m, lead, dirty, freed_at);
            } else if dirty && tail == 0 {
                r.dirty_remove(m);
            }
            if dirty {
                sub(&self.dirty_pages, npages);
            }
            let run = meta_at(c, s + lead);
            (*run).state = state;
            (*run).class = class;
            (*run).npages = npages as u32;
            (*run).dirty = false;
            if state == RUN_SLAB {
                set_pagemap_slab(c, s + lead..s + lead + npages, s + lead, class as usize);
            } else {
                set_pagemap(c, s + lead..s + lead + npages, s + lead);
            }
            add(&self.active_pages, npages);
            Some((run, !dirty))
        }
    }

    /// Maps a chunk and files its pages as one clean free run.
    fn map_chunk(&self, r: &mut Runs) -> Option<()> {
        let c = sys::map_aligned(CHUNK, CHUNK)?
            .as_ptr()
            .cast::<ChunkHeader>();
        super::registry::add_chunk(c.cast());
        // SAFETY: a fresh zeroed mapping of CHUNK bytes; zero is a valid
        // header, we fill in the rest under the run lock.
        unsafe {
            (*c).kind = KIND_CHUNK;
            (*c).arena = self;
            (*c).next = r.chunks;
            if !r.chunks.is_null() {
                (*r.chunks).prev = c;
            }
            r.chunks = c;
            r.make_free(meta_at(c, HEADER_PAGES), USABLE_PAGES, false, 0);
        }
        add(&self.nchunks, 1);
        Some(())
    }

    /// Returns run `m` (slab or large) to the free runs, merging with free
    /// neighbours; its pages become dirty.
    ///
    /// # Safety
    /// `m` is an allocated run of this arena no one uses; run lock held.
    pub(crate) unsafe fn free_run(&self, r: &mut Runs, m: *mut RunMeta, now: u64) {
        // SAFETY: per the contract; `m` heads its pages, which become a
        // dirty free run.
        unsafe {
            let n = (*m).npages as usize;
            if (*m).state == RUN_SLAB {
                // Its pages no longer name a class: a stale pointer into
                // them must not pass for a small object.
                let s = page_of(m);
                set_pagemap(chunk_of(m), s..s + n, s);
            }
            sub(&self.active_pages, n);
            add(&self.dirty_pages, n);
            let (run, total) = r.coalesce(m, n, true);
            r.make_free(run, total, true, now);
            r.dirty_push(run);
        }
    }

    /// Purges dirty runs freed at least `decay_ms` ago (all of them when
    /// `decay_ms` is 0; none when negative).
    pub(crate) fn purge_expired(&self, r: &mut Runs, now: u64, decay_ms: i64) {
        if decay_ms < 0 {
            return;
        }
        while !r.dirty_head.is_null() {
            let m = r.dirty_head;
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
            r.dirty_remove(m);
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
        let mut c = r.chunks;
        while !c.is_null() {
            // SAFETY: chunks on the list are mapped and guarded by the lock.
            unsafe {
                let next = (*c).next;
                let m = meta_at(c, HEADER_PAGES);
                if (*m).state == RUN_FREE && (*m).npages as usize == USABLE_PAGES {
                    r.bucket_remove(m);
                    let (p, q) = ((*c).prev, (*c).next);
                    if p.is_null() {
                        r.chunks = q;
                    } else {
                        (*p).next = q;
                    }
                    if !q.is_null() {
                        (*q).prev = p;
                    }
                    super::registry::remove_chunk(c.cast());
                    sys::unmap(ptr::NonNull::new_unchecked(c.cast()), CHUNK);
                    sub(&self.nchunks, 1);
                }
                c = next;
            }
        }
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
                    r.dirty_replace(nm, rest);
                }
            } else if dirty {
                r.dirty_remove(nm);
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
        self.purge_expired(&mut r, sys::now_ms(), super::global::decay_ms());
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
        self.purge_expired(&mut r, now, super::global::decay_ms());
    }

    /// Purges expired dirty runs if the run lock is free (activity tick).
    pub(crate) fn decay_tick(&self) {
        if let Some(mut r) = self.runs.try_lock() {
            self.purge_expired(&mut r, sys::now_ms(), super::global::decay_ms());
        }
    }

    /// Moves up to `out.len()` regions of class `c` into `out`; returns how
    /// many (fewer only when memory runs out).
    pub(crate) fn bin_fill(&self, c: usize, out: &mut [*mut u8]) -> usize {
        let mut bin = self.bins[c].0.lock();
        let mut got = 0;
        let size = CLASS_SIZE[c];
        while got < out.len() {
            let mut m = bin.nonfull;
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
                unsafe { list_push(&mut bin, m) };
            }
            // SAFETY: slabs on the non-full list belong to this bin, whose
            // lock we hold; a set bit is a free region inside the slab.
            unsafe {
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
                    list_remove(&mut bin, m);
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
                    let bit = 1u64 << (i % 64);
                    if (*m).free_bits[i / 64] & bit != 0 {
                        report_bad_free(p, b"was freed twice");
                    }
                    (*m).free_bits[i / 64] |= bit;
                    let was_full = (*m).nfree == 0;
                    (*m).nfree += 1;
                    if (*m).nfree == SLAB_REGIONS[c] {
                        if !was_full {
                            list_remove(&mut bin, m);
                        }
                        if bin.spare.is_null() {
                            init_slab(m, c);
                            bin.spare = m;
                        } else {
                            let mut r = self.runs.lock();
                            self.free_run(&mut r, m, sys::now_ms());
                        }
                    } else if was_full {
                        list_push(&mut bin, m);
                    }
                }
            }
        }
    }

    /// Fork `prepare`: take every lock of this arena.
    pub(crate) fn fork_prepare(&self) {
        for b in &self.bins {
            b.0.force_lock();
        }
        self.runs.force_lock();
    }

    /// Fork parent/child: release them.
    pub(crate) fn fork_release(&self) {
        self.runs.force_unlock();
        for b in &self.bins {
            b.0.force_unlock();
        }
    }
}

/// Adds to a counter only written under the run lock.
#[inline]
fn add(counter: &AtomicUsize, n: usize) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

/// Subtracts from a counter only written under the run lock.
#[inline]
fn sub(counter: &AtomicUsize, n: usize) {
    counter.store(counter.load(Relaxed) - n, Relaxed);
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

/// Reports a free that cannot be valid and aborts before it corrupts the
/// heap. Writes with `write(2)` only: no allocation, no lock.
#[cold]
pub(crate) fn report_bad_free(p: *const u8, what: &[u8]) -> ! {
    let mut hex = [0u8; 18];
    hex[..2].copy_from_slice(b"0x");
    for (i, d) in hex[2..].iter_mut().enumerate() {
        let nibble = (p as usize >> (60 - 4 * i)) & 0xf;
        *d = b"0123456789abcdef"[nibble];
    }
    for part in [
        &b"hotpool: invalid free: the block at "[..],
        &hex,
        b" ",
        what,
        b"; aborting\n",
    ] {
        sys::write_stderr(part);
    }
    std::process::abort()
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

/// # Safety
/// `m` is a slab of this bin not on its list; bin lock held.
unsafe fn list_push(bin: &mut Bin, m: *mut RunMeta) {
    // SAFETY: per the contract.
    unsafe {
        (*m).prev = null_mut();
        (*m).next = bin.nonfull;
        if !bin.nonfull.is_null() {
            (*bin.nonfull).prev = m;
        }
        bin.nonfull = m;
    }
}

/// # Safety
/// `m` is on this bin's list; bin lock held.
unsafe fn list_remove(bin: &mut Bin, m: *mut RunMeta) {
    // SAFETY: per the contract.
    unsafe {
        let (p, q) = ((*m).prev, (*m).next);
        if p.is_null() {
            bin.nonfull = q;
        } else {
            (*p).next = q;
        }
        if !q.is_null() {
            (*q).prev = p;
        }
    }
}
