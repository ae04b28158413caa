//! Freed huge mappings kept, still mapped and resident, for the next huge
//! allocation (jemalloc keeps freed extents dirty in the same way).
//!
//! Without it every huge block is a fresh `mmap` whose pages fault in one
//! by one, and every free an `munmap`: a program that builds multi-MiB
//! buffers over and over (a string builder, a message batcher) spent a
//! third of its time in the kernel's page-fault path.
//!
//! * Only mappings of the common shape are kept: header page at a
//!   CHUNK-aligned base, object after it (alignment below CHUNK); at most
//!   [`SLOTS`] of them and [`MAX_BYTES`] in all, the oldest evicted first.
//! * A request takes the shortest kept mapping long enough; when that is
//!   over twice the request, the tail is moved (`mremap`, pages stay
//!   resident) to an aligned place of its own and kept. When none is long
//!   enough, the longest one's pages are moved to the head of the new
//!   mapping, so only the rest faults in (`huge::adopt_kept`).
//! * A kept mapping is unmapped once it has been free for `decay_ms` (at the
//!   next huge operation, activity tick, background purge or `trim`); with
//!   `decay_ms` 0 nothing is kept.
//! * Kept bytes count as `dirty` in [`super::stats()`], and as mapped.
//! * The lock is a [`SpinLock`] held for a few comparisons; the system
//!   calls happen after it is released. It is held across `fork`.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::lock::SpinLock;
use crate::sys;

/// Most mappings kept. Eight: a program cycling a few dozen buffers of
/// 1-32 MiB (`hotpool-malloc/bench/large.c`) finds one to reuse most of the
/// time; a freed tail of one is kept as its own entry.
const SLOTS: usize = 8;
/// Most bytes kept in all, and the longest mapping kept: 64 MiB, the most
/// free memory glibc keeps at the top of its heap (twice its largest mmap
/// threshold). On `large.c`, 128 MiB ran no faster and raised peak RSS
/// above glibc's; 16 MiB (two slots) faulted in every page again.
const MAX_BYTES: usize = 64 << 20;

#[derive(Clone, Copy)]
struct Entry {
    base: usize,
    len: usize,
    freed_at: u64,
}

const EMPTY: Entry = Entry {
    base: 0,
    len: 0,
    freed_at: 0,
};

/// Kept mappings, oldest first.
struct Cache {
    e: [Entry; SLOTS],
    n: usize,
    bytes: usize,
}

impl Cache {
    /// Removes entry `i`, keeping the others in age order.
    fn remove(&mut self, i: usize) -> Entry {
        let out = self.e[i];
        self.e.copy_within(i + 1..self.n, i);
        self.n -= 1;
        self.bytes -= out.len;
        out
    }
}

static CACHE: SpinLock<Cache> = SpinLock::new(Cache {
    e: [EMPTY; SLOTS],
    n: 0,
    bytes: 0,
});

/// Bytes kept now (read without the lock, for statistics and to skip an
/// empty cache).
pub(crate) static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Unmaps up to `SLOTS + 1` evicted entries, outside the lock; returns the
/// bytes unmapped.
fn unmap_all(out: &[Entry]) -> usize {
    let mut bytes = 0;
    for e in out {
        // SAFETY: an entry is a whole mapping of ours, removed from the
        // cache under its lock: no one else can hand it out.
        unsafe { sys::unmap_range(e.base as *mut u8, e.len) };
        bytes += e.len;
    }
    bytes
}

/// Keeps the freed mapping `base..base + len` (CHUNK-aligned base) and
/// returns the bytes of older mappings it unmapped to make room; `None`
/// (the caller unmaps it) when it is not kept.
pub(crate) fn put(base: usize, len: usize, now: u64, decay_ms: i64) -> Option<usize> {
    if decay_ms == 0 || len > MAX_BYTES {
        return None;
    }
    let mut out = [EMPTY; SLOTS];
    let mut nout = 0;
    {
        let mut c = CACHE.lock();
        while c.n == SLOTS || c.bytes + len > MAX_BYTES {
            out[nout] = c.remove(0);
            nout += 1;
        }
        let n = c.n;
        c.e[n] = Entry {
            base,
            len,
            freed_at: now,
        };
        c.n += 1;
        c.bytes += len;
        KEPT.store(c.bytes, Relaxed);
    }
    Some(unmap_all(&out[..nout]))
}

/// Takes the smallest kept mapping of at least `min_len` bytes, as
/// `(base, len)`.
pub(crate) fn take(min_len: usize) -> Option<(usize, usize)> {
    if KEPT.load(Relaxed) < min_len {
        return None;
    }
    let mut c = CACHE.lock();
    let best = (0..c.n)
        .filter(|&i| c.e[i].len >= min_len)
        .min_by_key(|&i| c.e[i].len)?;
    let e = c.remove(best);
    KEPT.store(c.bytes, Relaxed);
    Some((e.base, e.len))
}

/// Takes the longest kept mapping, as `(base, len)` (when none is long
/// enough for a request, its resident pages can still serve the head of a
/// new mapping: see `huge::adopt_kept`).
pub(crate) fn take_longest() -> Option<(usize, usize)> {
    if KEPT.load(Relaxed) == 0 {
        return None;
    }
    let mut c = CACHE.lock();
    let best = (0..c.n).max_by_key(|&i| c.e[i].len)?;
    let e = c.remove(best);
    KEPT.store(c.bytes, Relaxed);
    Some((e.base, e.len))
}

/// Unmaps the mappings free for at least `decay_ms` (all of them with
/// `now == u64::MAX`); returns the bytes unmapped.
pub(crate) fn purge(now: u64, decay_ms: i64) -> usize {
    if KEPT.load(Relaxed) == 0 || decay_ms < 0 && now != u64::MAX {
        return 0;
    }
    let mut out = [EMPTY; SLOTS];
    let mut nout = 0;
    {
        let mut c = CACHE.lock();
        while c.n > 0 && c.e[0].freed_at.saturating_add(decay_ms.max(0) as u64) <= now {
            out[nout] = c.remove(0);
            nout += 1;
        }
        KEPT.store(c.bytes, Relaxed);
    }
    unmap_all(&out[..nout])
}

/// Fork `prepare`: hold the lock across `fork`.
pub(crate) fn fork_prepare() {
    CACHE.force_lock();
}

/// Fork parent/child: release it.
pub(crate) fn fork_release() {
    CACHE.force_unlock();
}
