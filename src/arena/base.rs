//! Metadata memory straight from the OS, like jemalloc's `base.c`: a bump
//! allocator over mapped blocks that never frees. Arenas and thread caches
//! live here, so the allocator never calls the global allocator for itself.
//! Memory is zeroed (fresh mappings).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::lock::SpinLock;
use super::size_class::PAGE;
use crate::sys;

const BLOCK: usize = 256 << 10;

struct Bump {
    next: usize,
    end: usize,
}

static BASE: SpinLock<Bump> = SpinLock::new(Bump { next: 0, end: 0 });

/// Bytes mapped for metadata so far.
pub(crate) static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// `size` zeroed bytes aligned to `align` (at most a page), never freed;
/// `None` when the OS refuses.
pub(crate) fn alloc(size: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && align <= PAGE);
    let mut b = BASE.lock();
    let start = (b.next + align - 1) & !(align - 1);
    if b.next == 0 || start + size > b.end {
        let len = (size.max(BLOCK) + PAGE - 1) & !(PAGE - 1);
        let block = sys::map(len)?.as_ptr() as usize;
        MAPPED.fetch_add(len, Ordering::Relaxed);
        b.next = block + size;
        b.end = block + len;
        return NonNull::new(block as *mut u8);
    }
    b.next = start + size;
    NonNull::new(start as *mut u8)
}

/// Fork `prepare`: hold the base lock across `fork`.
pub(crate) fn fork_prepare() {
    BASE.force_lock();
}

/// Fork parent/child: release it.
pub(crate) fn fork_release() {
    BASE.force_unlock();
}

/// Under loom: forgets the previous execution's blocks (each loom execution
/// starts with no metadata memory).
#[cfg(loom)]
pub(crate) fn loom_reset() {
    *BASE.lock() = Bump { next: 0, end: 0 };
    MAPPED.store(0, Ordering::Relaxed);
}
