//! Page runs of an arena's chunks: free runs filed by page count (dirty
//! apart from clean) and the dirty list in age order; taking a run
//! (splitting a free one), mapping a chunk, and freeing a run (merging
//! with its free neighbours).

use core::sync::atomic::Ordering::Relaxed;

use super::chunk::*;
use super::heap::{add, sub, Arena};
use super::size_class::*;
use crate::list::List;
use crate::sys;

const NBUCKETS: usize = CHUNK_PAGES + 1;

/// The page runs of an arena's chunks.
pub(crate) struct Runs {
    /// Free runs of exactly `i` pages: `buckets[1]` the dirty ones,
    /// `buckets[0]` the clean (purged or never used) ones. Allocation takes
    /// a dirty run first, as jemalloc does, so freed pages are reused before
    /// fresh ones are touched.
    buckets: [[List<RunMeta>; NBUCKETS]; 2],
    /// Bit `i` of `nonempty[d]` set when `buckets[d][i]` is non-empty.
    nonempty: [[u64; NBUCKETS.div_ceil(64)]; 2],
    /// Dirty free runs, oldest first (pushed at the back, purged from the
    /// front; a split keeps its remainder in the run's place).
    pub(super) dirty_runs: List<RunMeta, DirtyLink>,
    /// Runs being purged with the lock released ([`RUN_PURGING`]), so a
    /// forked child can file them again.
    pub(super) purging: List<RunMeta, DirtyLink>,
    /// The arena's chunks, newest first.
    pub(super) chunks: List<ChunkHeader>,
}

impl Runs {
    /// # Safety
    /// `m` is a free run not in any bucket; run lock held.
    unsafe fn bucket_push(&mut self, m: *mut RunMeta) {
        // SAFETY: per the contract `m` and the bucket's runs are ours.
        unsafe {
            let (n, d) = ((*m).npages as usize, (*m).dirty as usize);
            self.buckets[d][n].push_front(m);
            self.nonempty[d][n / 64] |= 1 << (n % 64);
        }
    }

    /// # Safety
    /// `m` is in its bucket; run lock held.
    pub(super) unsafe fn bucket_remove(&mut self, m: *mut RunMeta) {
        // SAFETY: per the contract.
        unsafe {
            let (n, d) = ((*m).npages as usize, (*m).dirty as usize);
            let bucket = &mut self.buckets[d][n];
            bucket.remove(m);
            if bucket.is_empty() {
                self.nonempty[d][n / 64] &= !(1 << (n % 64));
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
                    return Some(self.buckets[d][w * 64 + bits.trailing_zeros() as usize].head());
                }
                w += 1;
                bits = *words.get(w)?;
            }
        })
    }

    /// Takes the free neighbours of the `n` pages at `m` that are as dirty
    /// as `dirty` out of their buckets and returns the start and length of
    /// the merged run, not yet filed. Dirty and clean runs never merge, so
    /// a clean page is never counted or reused as dirty, and allocation's
    /// preference for dirty runs reuses pages that are already resident.
    ///
    /// A dirty neighbour also leaves the dirty list, except the one with
    /// more pages than the new run and the other neighbour: it stays in
    /// the list (the caller puts the merged run in its place) and is
    /// returned with its age. The merged run takes the age of its largest
    /// part, which keeps the list in age order without a search, and a
    /// burst freed slab after slab into one run is about as old as its
    /// first slabs (with the newest part's age, each slab freed restarted the
    /// whole run's decay: the last chunk of a burst stayed resident for
    /// up to another `decay_ms`).
    ///
    /// # Safety
    /// `m` heads `n` pages of a chunk that no free run covers; run lock held.
    pub(super) unsafe fn coalesce(
        &mut self,
        m: *mut RunMeta,
        n: usize,
        dirty: bool,
    ) -> (*mut RunMeta, usize, Option<(*mut RunMeta, u64)>) {
        // SAFETY: neighbours are runs of the same chunk (runs tile it);
        // everything is guarded by the run lock.
        unsafe {
            let c = chunk_of(m);
            let (mut s, mut n) = (page_of(m), n);
            // The largest part so far (pages), and its dirty-list node if
            // it is a neighbour.
            let mut largest = (n, None::<(*mut RunMeta, u64)>);
            let mut absorb = |this: &mut Self, nb: *mut RunMeta| {
                this.bucket_remove(nb);
                if dirty {
                    let pages = (*nb).npages as usize;
                    if pages > largest.0 {
                        if let Some((old, _)) = largest.1 {
                            this.dirty_runs.remove(old);
                        }
                        largest = (pages, Some((nb, (*nb).freed_at)));
                    } else {
                        this.dirty_runs.remove(nb);
                    }
                }
            };
            let t = s + n;
            if t < CHUNK_PAGES {
                let nm = meta_at(c, t);
                if (*nm).state == RUN_FREE && (*nm).dirty == dirty {
                    absorb(self, nm);
                    (*nm).state = RUN_NONE;
                    n += (*nm).npages as usize;
                }
            }
            if s > HEADER_PAGES {
                let pm = meta_at(c, pagemap(c, s - 1));
                if (*pm).state == RUN_FREE && (*pm).dirty == dirty {
                    absorb(self, pm);
                    (*m).state = RUN_NONE;
                    s -= (*pm).npages as usize;
                    n += (*pm).npages as usize;
                }
            }
            (meta_at(c, s), n, largest.1)
        }
    }

    /// Files the `n` pages at `m`, freed (or found dirty) at `now`, as a
    /// dirty free run merged with its dirty neighbours, in the dirty list
    /// by the age of its largest part ([`Runs::coalesce`]).
    ///
    /// # Safety
    /// `m` heads `n` pages of a chunk that no free run covers; run lock held.
    pub(super) unsafe fn file_dirty(&mut self, m: *mut RunMeta, n: usize, now: u64) {
        // SAFETY: per the contract; a kept node is a dirty neighbour still
        // in the dirty list, now inside (or heading) the merged run.
        unsafe {
            let (run, total, kept) = self.coalesce(m, n, true);
            match kept {
                None => {
                    self.make_free(run, total, true, now);
                    self.dirty_runs.push_back(run);
                }
                Some((node, freed_at)) => {
                    self.make_free(run, total, true, freed_at);
                    if node != run {
                        self.dirty_runs.replace(node, run);
                    }
                }
            }
        }
    }

    /// Marks `m` (of `n` pages) a free run and files it.
    ///
    /// # Safety
    /// `m` heads `n` pages no other run covers; run lock held.
    pub(super) unsafe fn make_free(
        &mut self,
        m: *mut RunMeta,
        n: usize,
        dirty: bool,
        freed_at: u64,
    ) {
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
                        r.dirty_runs.push_back(t);
                    } else {
                        r.dirty_runs.replace(m, t);
                    }
                }
            }
            if lead > 0 {
                r.make_free(m, lead, dirty, freed_at);
            } else if dirty && tail == 0 {
                r.dirty_runs.remove(m);
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
        let c = if super::samples::is_arena(self) {
            super::samples::map_chunk()?
        } else {
            sys::map_aligned(CHUNK, CHUNK, 0)?
        }
        .as_ptr()
        .cast::<ChunkHeader>();
        super::registry::add_chunk(c.cast());
        // SAFETY: a fresh zeroed mapping of CHUNK bytes; zero is a valid
        // header, we fill in the rest under the run lock.
        unsafe {
            (*c).kind = KIND_CHUNK;
            (*c).arena = self;
            r.chunks.push_front(c);
            r.make_free(meta_at(c, HEADER_PAGES), USABLE_PAGES, false, 0);
        }
        add(&self.nchunks, 1);
        Some(())
    }

    /// Returns large run `m`, whose pages were just given back to the OS,
    /// to the free runs as a clean run, merged with its clean neighbours.
    ///
    /// # Safety
    /// `m` is an allocated large run of this arena no one uses, its pages
    /// purged; run lock held.
    pub(crate) unsafe fn free_run_purged(&self, r: &mut Runs, m: *mut RunMeta) {
        // SAFETY: per the contract; `m` heads its pages, which become a
        // clean free run.
        unsafe {
            let n = (*m).npages as usize;
            sub(&self.active_pages, n);
            let (run, total, _) = r.coalesce(m, n, false);
            r.make_free(run, total, false, 0);
            let purged = &self.purged_pages;
            purged.store(purged.load(Relaxed) + n as u64, Relaxed);
        }
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
            r.file_dirty(m, n, now);
        }
    }
}
