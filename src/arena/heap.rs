//! One arena: the [`Arena`] struct (its bins, its page runs, its
//! counters) and its fork handlers. What an arena does lives by concern:
//! `bin.rs` (slabs of the small classes), `runs.rs` (page runs: split and
//! merge), `large.rs` (large objects), `purge.rs` (decay purging).
//!
//! Lock order: a bin's lock, then the arena's run lock. Nothing here
//! allocates; chunks come from [`crate::sys::map_aligned`].

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use super::bin::PaddedBin;
use super::lock::SpinLock;
use super::runs::Runs;
use super::size_class::*;

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
    /// Threads attached ([`super::init::attach_thread`]).
    pub(crate) nthreads: AtomicUsize,
    /// When (ms) a thread without a background purger may drain this
    /// arena's depots next ([`Arena::decay_inline`]).
    pub(crate) next_drain: AtomicU64,
}

impl Arena {
    /// Fork `prepare`: take every lock of this arena.
    pub(crate) fn fork_prepare(&self) {
        for b in &self.bins {
            b.0.force_lock();
        }
        self.runs.force_lock();
    }

    /// Under loom: what `fork` reads of this arena while its locks are
    /// held (see [`SpinLock::loom_snapshot`]).
    #[cfg(loom)]
    pub(crate) fn loom_snapshot(&self) {
        for b in &self.bins {
            b.0.loom_snapshot();
        }
        self.runs.loom_snapshot();
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
pub(super) fn add(counter: &AtomicUsize, n: usize) {
    counter.store(counter.load(Relaxed) + n, Relaxed);
}

/// Subtracts from a counter only written under the run lock.
#[inline]
pub(super) fn sub(counter: &AtomicUsize, n: usize) {
    counter.store(counter.load(Relaxed) - n, Relaxed);
}

/// For tests: an arena of its own (all-zero is a valid empty arena), so
/// that no other test's thread touches it.
#[cfg(all(test, not(miri), not(loom)))]
pub(super) fn private_arena() -> &'static Arena {
    let p = super::base::alloc(core::mem::size_of::<Arena>(), 64).expect("metadata");
    // SAFETY: zeroed metadata memory that lives forever is a valid empty
    // arena.
    unsafe { &*p.as_ptr().cast::<Arena>() }
}
