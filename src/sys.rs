//! The only module that talks to the operating system.
//!
//! Everything above asks this layer for page-aligned anonymous memory and
//! gives it back; nothing else in hotpool calls `mmap`, `munmap` or
//! `sysconf` directly.

use core::ptr::NonNull;

/// The size of a virtual memory page, read once from the OS.
pub(crate) fn page_size() -> usize {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; it only reads a system value.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if raw > 0 { raw as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// Maps `size` bytes of fresh, zeroed, read-write memory whose address is a
/// multiple of `align`.
///
/// `size` and `align` must be powers of two, `align` at least a page;
/// returns `None` when the OS refuses or the arithmetic would overflow.
pub(crate) fn map_aligned(size: usize, align: usize) -> Option<NonNull<u8>> {
    debug_assert!(size.is_power_of_two() && align.is_power_of_two());
    let align = align.max(page_size());
    let size = size.max(page_size());
    // Over-map by `align` so an aligned block of `size` fits, then cut the
    // misaligned head and the unused tail away.
    let len = size.checked_add(align)?;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choice touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = len - head - size;
    // SAFETY: both ranges lie inside the mapping made above and outside the
    // aligned block returned to the caller.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + size) as *mut libc::c_void, tail);
        }
    }
    NonNull::new(aligned as *mut u8)
}

/// Returns a block from [`map_aligned`] to the OS.
///
/// # Safety
///
/// `ptr` and `size` must be exactly a block returned by `map_aligned(size, _)`
/// that was not unmapped yet, and nothing may use the memory afterwards.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, size: usize) {
    let size = size.max(page_size());
    // SAFETY: the caller guarantees the range is one live mapping of ours.
    let rc = unsafe { libc::munmap(ptr.as_ptr().cast(), size) };
    debug_assert_eq!(rc, 0, "munmap of a hotpool chunk failed");
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
///
/// Used by statistics and tests; returns 0 where the file cannot be read.
///
/// ```
/// assert!(hotpool::stats::resident_bytes() > 0);
/// ```
pub fn resident_bytes() -> usize {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: usize = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}
