//! The small path inside an arena: a bin of slabs per small class.
//! [`Arena::bin_fill`] fills a thread cache from the bin's slabs,
//! [`Arena::bin_flush`] returns a cache's regions to them; a slab's free
//! regions are a bitmap in its run metadata, and slabs with free regions
//! are on the bin's non-full list.
//!
//! In front of the slabs, under the same lock, each bin has a *depot*: a
//! stack of free objects of the class that thread caches park whole
//! ([`Arena::depot_park`]) when a stack runs full and take back
//! ([`Arena::depot_take`]) when one runs empty. Either is a copy of half a
//! stack (512 bytes for 64 B objects) under the lock, where going to the
//! slabs touches each object's slab bitmap: the depot takes the
//! once-per-half-stack slow event from about 0.6-1 us down to a copy, so
//! that it no longer sets the tail latency of alloc and free. A depot holds
//! at most [`depot_cap`] objects (8192, or 1 MiB of them: enough for a
//! consumer thread that frees a few thousand objects while their producer
//! waits); what it does not hold goes to the slabs as before. Its slots
//! (64 KiB at most) are made on first use, so a class no thread parks
//! costs nothing. Objects no take reached for a whole
//! purger round go back to the slabs ([`Arena::depot_drain`], called by the
//! purger or, without it, on the threads' GC events), and `trim` drains
//! every depot.

use core::ptr::{copy_nonoverlapping, null_mut};

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
    /// The depot's [`depot_cap`] slots, metadata memory made on the first
    /// [`Arena::depot_park`] (null: none yet).
    depot: *mut *mut u8,
    /// Objects in the depot (`depot[..depot_n]`), all of this arena.
    depot_n: u32,
    /// Low-water mark of `depot_n` since the last [`Arena::depot_drain`]:
    /// the bottom `depot_low` objects were not taken since.
    depot_low: u32,
    /// The thread cache that last refilled from this bin ([`Arena::refill`];
    /// its address, 0 for none).
    filler: usize,
}

/// What [`Arena::depot_park`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Park {
    /// The objects are in the depot.
    Parked,
    /// They did not fit (or the depot's slots could not be made).
    Full,
    /// They lie in more than one chunk; nothing was parked.
    Spread,
}

/// Most objects a depot holds.
const DEPOT_SLOTS: usize = 8192;
/// Most bytes of objects a depot holds.
const DEPOT_BYTES: usize = 1 << 20;

/// Per small class, the most objects its depot holds: a table, so that
/// parking divides nothing.
static DEPOT_CAP: [u32; NSMALL] = depot_caps();

const fn depot_caps() -> [u32; NSMALL] {
    let sizes = class_sizes();
    let mut out = [0; NSMALL];
    let mut c = 0;
    while c < NSMALL {
        let by_bytes = DEPOT_BYTES / sizes[c];
        out[c] = if by_bytes < DEPOT_SLOTS {
            by_bytes
        } else {
            DEPOT_SLOTS
        } as u32;
        c += 1;
    }
    out
}

/// The most objects class `c`'s depot holds (a [`DEPOT_SLOTS`] and
/// [`DEPOT_BYTES`] bound; under loom, two).
#[inline]
pub(crate) fn depot_cap(c: usize) -> usize {
    if cfg!(loom) {
        2
    } else {
        DEPOT_CAP[c] as usize
    }
}

/// Moves up to `out.len()` objects from the depot of `bin` (its lock held
/// by the caller; the newest first) into `out`; returns how many.
fn take_parked(bin: &mut Bin, out: &mut [*mut u8]) -> usize {
    let n = bin.depot_n as usize;
    let k = n.min(out.len());
    if k == 0 {
        return 0;
    }
    // SAFETY: `depot[..n]` are parked objects (a non-empty depot has its
    // slots); `k <= out.len()`; the caller holds the bin lock.
    unsafe { copy_nonoverlapping(bin.depot.add(n - k), out.as_mut_ptr(), k) };
    bin.depot_n = (n - k) as u32;
    bin.depot_low = bin.depot_low.min(bin.depot_n);
    k
}

/// A bin on its own cache line.
#[repr(C, align(64))]
pub(crate) struct PaddedBin(pub(crate) SpinLock<Bin>);

impl Arena {
    /// Moves up to `out.len()` regions of class `c` into `out`; returns how
    /// many (fewer only when memory runs out).
    pub(crate) fn bin_fill(&self, c: usize, out: &mut [*mut u8]) -> usize {
        let mut bin = self.bins[c].0.lock();
        self.fill_locked(&mut bin, c, out)
    }

    /// A thread cache's refill of class `c`, under one hold of the bin
    /// lock: its depot first (the newest objects), then the slabs
    /// ([`Arena::bin_fill`]). Returns how many objects it moved into
    /// `out`, and whether another cache than `me` (the caller's address)
    /// refilled from this bin since `me` last did, that is, whether the
    /// bin serves another allocating thread. Only then is contention on
    /// its lock a reason for the caller to move to another arena: threads
    /// that only free into it (the consumers of the caller's objects)
    /// would follow it there.
    pub(crate) fn refill(&self, c: usize, me: usize, out: &mut [*mut u8]) -> (usize, bool) {
        let mut bin = self.bins[c].0.lock();
        let shared = bin.filler != me && bin.filler != 0;
        bin.filler = me;
        let got = take_parked(&mut bin, out);
        (got + self.fill_locked(&mut bin, c, &mut out[got..]), shared)
    }

    /// [`Arena::bin_fill`] with the bin's lock held.
    fn fill_locked(&self, bin: &mut Bin, c: usize, out: &mut [*mut u8]) -> usize {
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

    /// Parks `ptrs` in class `c`'s depot, all of them or (when they do not
    /// fit, or its slots cannot be made) none; returns whether it did.
    ///
    /// # Safety
    /// Every pointer is a region of class `c` allocated from this arena and
    /// no longer used.
    #[cfg(test)]
    pub(crate) unsafe fn depot_put(&self, c: usize, ptrs: &[*mut u8]) -> bool {
        // SAFETY: forwarded contract; every pointer is this arena's.
        unsafe { self.depot_park(c, ptrs, usize::MAX) == Park::Parked }
    }

    /// Parks `ptrs` in class `c`'s depot if they all lie in one chunk and
    /// fit. The thread cache's flush of half a stack: the pointers are
    /// copied and their spread is checked in the same pass (a separate
    /// pass to find the owner first took about a quarter of the event's
    /// time), and the depot's height moves only if the check passes.
    /// `spread` is the largest `p ^ ptrs[0]` allowed: [`CHUNK`] `- 1` to
    /// ask for one chunk, `usize::MAX` when the caller knows the owner.
    ///
    /// # Safety
    /// Every pointer is an unused region of class `c`; `ptrs[0]` (at
    /// least, and every one when `spread` is not below [`CHUNK`]) is
    /// owned by this arena.
    pub(crate) unsafe fn depot_park(&self, c: usize, ptrs: &[*mut u8], spread: usize) -> Park {
        let Some(&first) = ptrs.first() else {
            return Park::Parked;
        };
        let cap = depot_cap(c);
        let mut bin = self.bins[c].0.lock();
        let n = bin.depot_n as usize;
        if n + ptrs.len() > cap {
            return Park::Full;
        }
        if bin.depot.is_null() {
            // The base allocator's lock nests inside a bin's (it takes no
            // other lock).
            match super::base::alloc(cap * core::mem::size_of::<*mut u8>(), 64) {
                Some(p) => bin.depot = p.as_ptr().cast(),
                None => return Park::Full,
            }
        }
        // SAFETY: the depot has `cap >= n + ptrs.len()` slots; we hold the
        // bin lock, which guards them. Slots at `depot_n` and above hold
        // nothing: writing them without moving the height parks nothing.
        let to = unsafe { bin.depot.add(n) };
        let mut diff = 0;
        for (i, &p) in ptrs.iter().enumerate() {
            // SAFETY: as above, `i < ptrs.len()`.
            unsafe { to.add(i).write(p) };
            diff |= p as usize ^ first as usize;
        }
        if diff > spread {
            return Park::Spread;
        }
        bin.depot_n = (n + ptrs.len()) as u32;
        Park::Parked
    }

    /// Moves up to `out.len()` objects of class `c` from its depot (the
    /// newest) into `out`; returns how many.
    #[cfg(test)]
    pub(crate) fn depot_take(&self, c: usize, out: &mut [*mut u8]) -> usize {
        take_parked(&mut self.bins[c].0.lock(), out)
    }

    /// Returns to the slabs the objects of every depot of this arena that
    /// no [`Arena::depot_take`] reached since the last call (`all`: every
    /// object), then restarts the low-water marks. The bin lock is held to
    /// take up to 64 objects at a time (and move the rest down), not while
    /// they go to their slabs. Once a purger round: the moves cost little.
    pub(crate) fn depot_drain(&self, all: bool) {
        if all {
            self.drain_depots(|n, _, _| n, true);
        } else {
            self.drain_depots(|_, low, _| low, true);
        }
    }

    /// Returns to the slabs the older half of every depot more than three
    /// quarters full (the purger, nudged by a thread cache that found one
    /// full: [`super::purge::nudge`]); the low-water marks stand.
    pub(crate) fn depot_halve_full(&self) {
        self.drain_depots(
            |n, _, cap| if n > cap / 4 * 3 { n - cap / 2 } else { 0 },
            false,
        );
    }

    /// Returns the `pick(n, low, cap)` least recently parked objects of
    /// each depot (`n` held, `low` its low-water mark, `cap` its capacity)
    /// to the slabs; with `restart`, the marks restart at what is left.
    fn drain_depots(&self, pick: impl Fn(usize, usize, usize) -> usize, restart: bool) {
        const STEP: usize = 64;
        let mut out = [null_mut::<u8>(); STEP];
        for c in 0..NSMALL {
            let mut left = None;
            loop {
                let k = {
                    let mut bin = self.bins[c].0.lock();
                    let n = bin.depot_n as usize;
                    let want = *left.get_or_insert_with(|| {
                        pick(n, bin.depot_low as usize, depot_cap(c)).min(n)
                    });
                    let k = want.min(n).min(STEP);
                    if k == 0 {
                        if restart {
                            bin.depot_low = n as u32;
                        }
                        break;
                    }
                    // The bottom `k` go, the rest moves down (in order:
                    // the next `k` are the next least recently parked).
                    // SAFETY: `depot[..n]` are parked objects, `k <= STEP`;
                    // we hold the bin lock.
                    unsafe {
                        copy_nonoverlapping(bin.depot, out.as_mut_ptr(), k);
                        core::ptr::copy(bin.depot.add(k), bin.depot, n - k);
                    }
                    bin.depot_n = (n - k) as u32;
                    bin.depot_low = bin.depot_low.saturating_sub(k as u32);
                    left = Some(want - k);
                    k
                };
                // SAFETY: parked objects are unused regions of class `c`
                // from this arena ([`Arena::depot_park`]).
                unsafe { self.bin_flush(c, &out[..k]) };
            }
        }
    }

    /// Whether another thread holds class `c`'s bin lock right now (the
    /// thread cache's hint of contention, read before taking it).
    #[inline]
    pub(crate) fn bin_busy(&self, c: usize) -> bool {
        self.bins[c].0.is_locked()
    }

    /// Objects in class `c`'s depot.
    pub(crate) fn depot_len(&self, c: usize) -> usize {
        self.bins[c].0.lock().depot_n as usize
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

#[cfg(all(test, not(miri), not(loom)))]
mod tests {
    use super::super::heap::private_arena;
    use super::*;

    #[test]
    fn a_refill_takes_the_depot_first_and_tells_whether_another_cache_refilled() {
        let a = private_arena();
        let c = CLASS_SIZE.iter().position(|&s| s == 64).unwrap();
        // Two caches, named by their addresses as the thread caches are.
        let (me, other) = (0x1000, 0x2000);
        let mut objs = [null_mut(); 64];
        assert_eq!(a.refill(c, me, &mut objs), (64, false), "no refill before");
        // SAFETY: unused regions of class `c` from `a`, parked once.
        unsafe { assert!(a.depot_put(c, &objs[..32])) };
        let mut again = [null_mut(); 48];
        assert_eq!(a.refill(c, me, &mut again), (48, false));
        assert_eq!(&again[..32], &objs[..32], "the depot comes first");
        assert!(
            again[32..].iter().all(|p| !objs.contains(p)),
            "then the slabs"
        );
        // Frees into the bin (a consumer's) do not make it shared.
        // SAFETY: unused regions of class `c` from `a`, returned once.
        unsafe { a.bin_flush(c, &again[32..]) };
        let mut one = [null_mut(); 1];
        assert_eq!(a.refill(c, me, &mut one), (1, false));
        // Another cache's refill does, for the next refill of each.
        assert_eq!(a.refill(c, other, &mut one), (1, true));
        assert_eq!(a.refill(c, me, &mut one), (1, true));
        assert_eq!(a.refill(c, me, &mut one), (1, false));
    }

    #[test]
    fn a_batch_over_two_chunks_is_not_parked_by_a_one_chunk_park() {
        let a = private_arena();
        let c = CLASS_SIZE.iter().position(|&s| s == 64).unwrap();
        let mut objs = [null_mut(); 4];
        assert_eq!(a.bin_fill(c, &mut objs), 4);
        // SAFETY: unused regions of class `c` from `a`; the batch refused
        // is never dereferenced (its second pointer lies in another chunk,
        // which `depot_park` sees before it parks anything).
        unsafe {
            assert_eq!(a.depot_park(c, &objs[..2], CHUNK - 1), Park::Parked);
            let spread = [objs[2], objs[2].wrapping_add(CHUNK)];
            assert_eq!(a.depot_park(c, &spread, CHUNK - 1), Park::Spread);
        }
        assert_eq!(
            a.depot_len(c),
            2,
            "a refused batch leaves the depot as it was"
        );
        let mut got = [null_mut(); 4];
        assert_eq!(a.depot_take(c, &mut got), 2);
        assert_eq!(&got[..2], &objs[..2]);
        // SAFETY: all four are unused regions of class `c` from `a`.
        unsafe { a.bin_flush(c, &objs) };
    }

    #[test]
    fn a_depot_keeps_batches_whole_and_drains_what_no_take_reached() {
        let a = private_arena();
        let c = CLASS_SIZE.iter().position(|&s| s == 64).unwrap();
        let mut objs = [null_mut(); 256];
        assert_eq!(a.bin_fill(c, &mut objs), 256);
        let cap = depot_cap(c);
        assert_eq!(cap, 8192);
        // SAFETY: unused regions of class `c` from `a`, each parked once.
        unsafe {
            assert!(a.depot_put(c, &objs[..128]));
            assert!(a.depot_put(c, &objs[128..]));
            // A batch that does not fit is refused whole.
            let big = [objs[0]; 8192];
            assert!(!a.depot_put(c, &big[..cap - 255]));
        }
        assert_eq!(a.depot_len(c), 256);
        // The mark starts at 0: the first round only sets it.
        a.depot_drain(false);
        assert_eq!(a.depot_len(c), 256);
        let mut got = [null_mut(); 64];
        assert_eq!(a.depot_take(c, &mut got), 64);
        assert_eq!(&got[..], &objs[192..], "the newest come back first");
        // SAFETY: as above; `got[..32]` are unused again.
        unsafe { assert!(a.depot_put(c, &got[..32])) };
        // 192 objects were not reached since the last round: they go back
        // to their slabs (a second free of a region would abort); the 32
        // parked since stay.
        a.depot_drain(false);
        assert_eq!(a.depot_len(c), 32);
        let mut left = [null_mut(); 32];
        assert_eq!(a.depot_take(c, &mut left), 32);
        left.sort();
        let mut want = got;
        want[..32].sort();
        assert_eq!(&left[..], &want[..32]);
        // SAFETY: as above.
        unsafe {
            assert!(a.depot_put(c, &got[..]));
        }
        a.depot_drain(true);
        assert_eq!(a.depot_len(c), 0);
        // Every region is free in its slabs again: a fill gets 256 anew,
        // the same ones.
        let mut again = [null_mut(); 256];
        assert_eq!(a.bin_fill(c, &mut again), 256);
        objs.sort();
        again.sort();
        assert_eq!(objs, again);
    }
}
