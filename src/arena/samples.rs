//! Where the page runs of sampled small objects live (heap profiling,
//! [`super::prof`]): an arena of their own, past the threads' arenas,
//! whose chunks are carved from one range of address space reserved when
//! the allocator starts with the profiler on. A free path tells a sampled
//! object from the others by one compare against that range ([`holds`]),
//! a branch that goes the same way for every object but the few samples.
//!
//! Before the range, sampled runs were aligned to 64 KiB and a free
//! tested the pointer's alignment; the first object of every slab that
//! starts on such a boundary passed that test too (2.7% of the frees of
//! hotpool-bench's churn kernel), on a branch no predictor learns: with
//! the profiler on and no sample taken, churn ran 1.23-1.25x its time
//! with the profiler off.
//!
//! The range is `PROT_NONE` until a chunk of it is needed; each chunk is
//! then mapped read-write in place ([`crate::sys::commit`]), in order, and
//! never unmapped (its free pages are purged like any arena's).

use core::ptr::{self, null_mut, NonNull};
use core::sync::atomic::{
    AtomicPtr, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};

#[cfg(not(any(miri, loom)))]
use super::chunk::CHUNK;
use super::heap::Arena;

/// Bytes of the range: 16,384 chunks, about four million page runs.
pub(crate) const SPAN: usize = 64 << 30;

/// Start of the range. Until one is reserved, an address in the upper
/// half of the address space, where no pointer of a process lies, so that
/// [`holds`] is false for every pointer.
static BASE: AtomicUsize = AtomicUsize::new(1 << 63);

/// Chunks of the range mapped so far (changed under the sample arena's
/// run lock).
#[cfg(not(any(miri, loom)))]
static USED: AtomicUsize = AtomicUsize::new(0);

/// The samples' arena (null: none, the profiler is off).
static ARENA: AtomicPtr<Arena> = AtomicPtr::new(null_mut());

/// Reserves the range; whether the OS let us. Called once, when the
/// allocator starts, before any arena is published. (Never under Miri and
/// loom, where the profiler does not run.)
#[cfg(not(any(miri, loom)))]
pub(super) fn reserve() -> bool {
    match crate::sys::reserve(SPAN, CHUNK) {
        Some(p) => {
            BASE.store(p.as_ptr() as usize, Relaxed);
            true
        }
        None => false,
    }
}

#[cfg(any(miri, loom))]
pub(super) fn reserve() -> bool {
    false
}

/// Makes `a` the samples' arena (at start-up, after [`reserve`]).
pub(super) fn set_arena(a: *mut Arena) {
    ARENA.store(a, Release);
}

/// The samples' arena, if the profiler is on.
pub(super) fn arena() -> Option<&'static Arena> {
    // SAFETY: arenas live forever once published.
    unsafe { ARENA.load(Acquire).as_ref() }
}

/// Whether `a` is the samples' arena.
pub(super) fn is_arena(a: &Arena) -> bool {
    ptr::eq(a, ARENA.load(Relaxed))
}

/// Whether `p` lies in the range: of the pointers this allocator hands
/// out, only sampled objects do.
#[inline(always)]
pub(super) fn holds(p: *const u8) -> bool {
    (p as usize).wrapping_sub(BASE.load(Relaxed)) < SPAN
}

/// Maps the next chunk of the range for the samples' arena, whose run
/// lock the caller holds; `None` when the range is used up or the OS
/// refuses.
#[cfg(not(any(miri, loom)))]
pub(super) fn map_chunk() -> Option<NonNull<u8>> {
    let k = USED.load(Relaxed);
    if (k + 1) * CHUNK > SPAN {
        return None;
    }
    let p = NonNull::new((BASE.load(Relaxed) + k * CHUNK) as *mut u8)?;
    // SAFETY: chunk `k` of our reservation, never mapped before: the count
    // only grows, under the one lock that maps.
    if !unsafe { crate::sys::commit(p, CHUNK) } {
        return None;
    }
    USED.store(k + 1, Relaxed);
    Some(p)
}

#[cfg(any(miri, loom))]
pub(super) fn map_chunk() -> Option<NonNull<u8>> {
    None
}
