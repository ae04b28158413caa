//! Debug checks: poison fill and check, validation of raw frees, valgrind
//! client requests. Compiled with the `checks` feature or in debug builds
//! (`cfg(any(feature = "checks", debug_assertions))`), switched on at run
//! time by `HOTPOOL_CONF=junk:true` / `checks:true` (see [`crate::debug`]).
//!
//! * Pools: every slot of a new chunk and every freed object is filled with
//!   [`FREE_JUNK`]; an object handed out again is checked to still hold it
//!   (write-after-free, reported with type and address). Frees go straight
//!   to the chunk bitmap, so a double free is exact; `Pooled::from_raw`
//!   checks that its pointer is a live object of a pool chunk of `T`'s
//!   layout (chunks are registered here while the checks are on).
//! * Arena: blocks are filled with [`ALLOC_JUNK`] when handed out (unless
//!   zeroed) and with [`FREE_JUNK`] when freed; `free`/`dealloc` check that
//!   the pointer is the start of a live block (chunk magic, run state) and,
//!   for blocks over 8 bytes, that it does not still hold the free poison
//!   of an earlier free. Freed arena memory is not checked on reuse: pages
//!   of freed blocks are reused for blocks of other sizes, and a shrunk
//!   large block gives back its tail unpoisoned.
//! * Valgrind: with `checks:true`, pool objects and arena blocks are
//!   announced to memcheck as heap blocks ([`crate::valgrind`]).
//!
//! Each layer keeps its own hooks: `pool/checks.rs` for pool chunks and
//! objects, `arena/checks.rs` for arena blocks. This module holds what
//! they share: the junk bytes and the poison scan. Every report goes to
//! stderr through [`crate::report`] (a stack buffer: the arena's paths must
//! not allocate) and the process aborts.

/// Byte that fills freed memory.
pub(crate) const FREE_JUNK: u8 = 0x5a;
/// Byte that fills arena blocks when handed out.
#[cfg(target_os = "linux")]
pub(crate) const ALLOC_JUNK: u8 = 0xa5;

/// The first byte of `len` bytes at `p` that is not `byte`.
///
/// # Safety
/// The range is readable.
pub(crate) unsafe fn first_not(p: *const u8, len: usize, byte: u8) -> Option<usize> {
    // SAFETY: per the contract.
    let bytes = unsafe { core::slice::from_raw_parts(p, len) };
    bytes.iter().position(|&b| b != byte)
}
