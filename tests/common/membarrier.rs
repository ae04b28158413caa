//! Whether the background purger can reclaim quiet threads' caches here
//! (shared through `#[path]` by the reclaim tests).

/// True when the kernel offers `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
/// (the reclaim needs it) and this is not a ThreadSanitizer build (where
/// hotpool leaves the reclaim off).
pub fn reclaim_available() -> bool {
    if cfg!(hotpool_tsan) {
        return false;
    }
    const QUERY: libc::c_long = 0;
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    // SAFETY: MEMBARRIER_CMD_QUERY takes no memory of ours.
    let commands = unsafe { libc::syscall(libc::SYS_membarrier, QUERY, 0) };
    commands > 0 && commands & PRIVATE_EXPEDITED != 0
}
