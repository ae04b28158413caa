//! Freed huge mappings kept, still mapped and resident, for the next huge
//! allocation (jemalloc keeps freed extents dirty in the same way).
//!
//! Without it every huge block is a fresh `mmap` whose pages fault in one
//! by one, and every free an `munmap`: a program that builds multi-MiB
//! buffers over and over (a string builder, a message batcher) spent a
//! third of its time in the kernel's page-fault path.
//!
//! * A freed mapping of the common shape (header page at a CHUNK-aligned
//!   base, object after it, alignment below CHUNK, at most [`MAX_ENTRY`])
//!   is kept; at most [`SLOTS`] entries, and no more bytes than the caller
//!   allows (`huge.rs`: what huge blocks in use are below their peak, so
//!   that kept and used pages together stay under the program's own peak);
//!   the oldest entries go first, the last one cut to fit.
//! * A request takes the shortest aligned entry long enough, a growing
//!   `realloc` the longest ([`take`]); the unused tail of a much longer one
//!   stays where it is, kept as an entry of its own (not aligned: it can
//!   only lend its pages), and the block can grow over it again without a
//!   system call ([`take_front`]); freed, the block joins its kept tail
//!   into one entry again ([`put`]).
//! * Any entry lends its pages ([`take_piece`]): a new mapping, or the
//!   pages a block grows by, are filled with kept pages moved there
//!   (`mremap`: they stay resident), taken from the end of the shortest
//!   entry long enough, else whole entries, longest first
//!   (`huge::fill_from_kept`); for what still faults in, as many kept bytes
//!   are unmapped ([`release`]).
//! * A kept mapping is unmapped once it has been free for `decay_ms` (at the
//!   next huge operation, activity tick, background purge or `trim`); with
//!   `decay_ms` 0 nothing is kept.
//! * Kept bytes count as `dirty` in [`super::stats()`], and as mapped.
//! * The lock is a [`SpinLock`] held for a few comparisons; the system
//!   calls happen after it is released. It is held across `fork`.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::chunk::CHUNK;
use super::lock::SpinLock;
use crate::sys;

/// Most entries kept: freed mappings and the unused tails of longer ones.
/// Sixteen: a program cycling a few dozen buffers of 1-32 MiB
/// (`hotpool-malloc/bench/large.c`) finds pages to reuse for nearly every
/// new one.
const SLOTS: usize = 16;
/// The longest mapping kept: 64 MiB, the most free memory glibc keeps at
/// the top of its heap (twice its largest mmap threshold).
const MAX_ENTRY: usize = 64 << 20;

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

    /// Evicts the oldest entries (the last one cut to fit) until at most
    /// `bytes` are kept, into `out`; returns how many ranges it put there:
    /// at most the entries whole and a cut of one more.
    fn cut(&mut self, bytes: usize, out: &mut [Entry]) -> usize {
        let mut nout = 0;
        while self.bytes > bytes {
            let excess = self.bytes - bytes;
            out[nout] = if self.e[0].len <= excess {
                self.remove(0)
            } else {
                self.e[0].len -= excess;
                self.bytes -= excess;
                Entry {
                    base: self.e[0].base + self.e[0].len,
                    len: excess,
                    freed_at: 0,
                }
            };
            nout += 1;
        }
        nout
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

/// Unmaps up to `SLOTS + 1` evicted ranges, outside the lock; returns the
/// bytes unmapped.
fn unmap_all(out: &[Entry]) -> usize {
    let mut bytes = 0;
    for e in out {
        // SAFETY: an entry (or the cut end of one) is pages of ours,
        // removed from the cache under its lock: no one else can hand them
        // out.
        unsafe { sys::unmap_range(e.base as *mut u8, e.len) };
        bytes += e.len;
    }
    bytes
}

/// Keeps the freed range `base..base + len` (pages of a mapping of ours),
/// joined with a kept neighbour, with the cache holding at most `room`
/// bytes in all (or the joined entry alone, if longer), and returns the
/// bytes of older entries it unmapped to make room; `None` (the caller
/// unmaps it) when it is not kept. Only an entry with a CHUNK-aligned base
/// can become a block again ([`take`]); any lends its pages
/// ([`take_piece`]).
pub(crate) fn put(base: usize, len: usize, now: u64, decay_ms: i64, room: usize) -> Option<usize> {
    if decay_ms == 0 || len > MAX_ENTRY || len > room {
        return None;
    }
    let mut out = [EMPTY; SLOTS + 1];
    let mut nout = 0;
    let (mut base, mut len) = (base, len);
    {
        let mut c = CACHE.lock();
        // A kept neighbour joins it (a block's own kept tail after it, or
        // before it the block a kept tail was cut from, when that starts
        // a chunk and so can be a block again): one entry again, which a
        // longer request takes whole, with no system call.
        if let Some(i) = (0..c.n).find(|&i| c.e[i].base == base + len) {
            len += c.remove(i).len;
        }
        let before = |e: &Entry| e.base + e.len == base && e.base % CHUNK == 0;
        if let Some(i) = (0..c.n).find(|&i| before(&c.e[i])) {
            let e = c.remove(i);
            (base, len) = (e.base, e.len + len);
        }
        if c.n == SLOTS {
            out[nout] = c.remove(0);
            nout += 1;
        }
        nout += c.cut(room.saturating_sub(len), &mut out[nout..]);
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

/// Takes a kept entry of at least `min_len` bytes with a CHUNK-aligned
/// base (a huge block's header goes there), as `(base, len)`: the
/// shortest, or with `longest` (a buffer growing by `realloc`, which is
/// likely to grow on over the entry's tail) the longest.
pub(crate) fn take(min_len: usize, longest: bool) -> Option<(usize, usize)> {
    if KEPT.load(Relaxed) < min_len {
        return None;
    }
    let mut c = CACHE.lock();
    let fits = (0..c.n).filter(|&i| c.e[i].len >= min_len && c.e[i].base % CHUNK == 0);
    let best = if longest {
        fits.max_by_key(|&i| c.e[i].len)
    } else {
        fits.min_by_key(|&i| c.e[i].len)
    }?;
    let e = c.remove(best);
    KEPT.store(c.bytes, Relaxed);
    Some((e.base, e.len))
}

/// Takes at most `max` bytes of kept pages, as `(addr, len)`: the last
/// `max` bytes of the shortest entry at least that long (its head stays
/// kept), else the longest entry whole; `None` when nothing is kept.
pub(crate) fn take_piece(max: usize) -> Option<(usize, usize)> {
    if KEPT.load(Relaxed) == 0 || max == 0 {
        return None;
    }
    let mut c = CACHE.lock();
    let fit = (0..c.n)
        .filter(|&i| c.e[i].len >= max)
        .min_by_key(|&i| c.e[i].len);
    let piece = match fit {
        Some(i) if c.e[i].len > max => {
            c.e[i].len -= max;
            c.bytes -= max;
            (c.e[i].base + c.e[i].len, max)
        }
        Some(i) => {
            let e = c.remove(i);
            (e.base, e.len)
        }
        None => {
            let i = (0..c.n).max_by_key(|&i| c.e[i].len)?;
            let e = c.remove(i);
            (e.base, e.len)
        }
    };
    KEPT.store(c.bytes, Relaxed);
    Some(piece)
}

/// Unmaps the oldest `bytes` kept (fewer when fewer are kept); returns
/// the bytes unmapped. For a new block that faulted pages in while pages
/// were still kept: kept and used pages together stay where they were.
pub(crate) fn release(bytes: usize) -> usize {
    if KEPT.load(Relaxed) == 0 {
        return 0;
    }
    let mut out = [EMPTY; SLOTS + 1];
    let nout = {
        let mut c = CACHE.lock();
        let keep = c.bytes.saturating_sub(bytes);
        let nout = c.cut(keep, &mut out);
        KEPT.store(c.bytes, Relaxed);
        nout
    };
    unmap_all(&out[..nout])
}

/// Takes the first `len` bytes of the entry that starts at `addr` (the
/// kept tail of the block that ends there, which can then grow over them
/// without a system call: they are the same mapping); whether there was
/// one that long.
pub(crate) fn take_front(addr: usize, len: usize) -> bool {
    if KEPT.load(Relaxed) < len {
        return false;
    }
    let mut c = CACHE.lock();
    let Some(i) = (0..c.n).find(|&i| c.e[i].base == addr && c.e[i].len >= len) else {
        return false;
    };
    if c.e[i].len == len {
        c.remove(i);
    } else {
        c.e[i].base += len;
        c.e[i].len -= len;
        c.bytes -= len;
    }
    KEPT.store(c.bytes, Relaxed);
    true
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

/// When (ms) the oldest kept mapping was freed; `u64::MAX` if none is
/// kept.
pub(crate) fn next_free_at() -> u64 {
    if KEPT.load(Relaxed) == 0 {
        return u64::MAX;
    }
    let c = CACHE.lock();
    if c.n > 0 {
        c.e[0].freed_at
    } else {
        u64::MAX
    }
}

/// Fork `prepare`: hold the lock across `fork`.
pub(crate) fn fork_prepare() {
    CACHE.force_lock();
}

/// Fork parent/child: release it.
pub(crate) fn fork_release() {
    CACHE.force_unlock();
}
