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
//! Every report goes to stderr through a stack buffer (the arena's paths
//! must not allocate) and the process aborts.

use core::fmt::Write as _;
use std::collections::BTreeSet;

use parking_lot::Mutex;

use crate::debug::{mode, CHECKS, JUNK};
use crate::pool::PoolInner;
use crate::valgrind;

/// Byte that fills freed memory.
pub(crate) const FREE_JUNK: u8 = 0x5a;
/// Byte that fills arena blocks when handed out.
pub(crate) const ALLOC_JUNK: u8 = 0xa5;

/// Base addresses of live pool chunks, kept while the checks are on.
static CHUNKS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// A line of at most 512 bytes built without allocating.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes one report line and aborts.
#[cold]
fn report(args: core::fmt::Arguments<'_>) -> ! {
    let mut line = Line {
        buf: [0; 512],
        len: 0,
    };
    let _ = line.write_fmt(args);
    let _ = line.write_str("; aborting\n");
    crate::sys::write_stderr(&line.buf[..line.len]);
    std::process::abort()
}

/// The first byte of `len` bytes at `p` that is not `byte`.
///
/// # Safety
/// The range is readable.
unsafe fn first_not(p: *const u8, len: usize, byte: u8) -> Option<usize> {
    // SAFETY: per the contract.
    let bytes = unsafe { core::slice::from_raw_parts(p, len) };
    bytes.iter().position(|&b| b != byte)
}

/// A pool chunk was made at `base`: registers it and poisons its slots.
pub(crate) fn pool_chunk_made(base: *mut u8, geo: &crate::pool::Geometry) {
    let m = mode();
    if m & JUNK == 0 {
        return;
    }
    CHUNKS.lock().insert(base as usize);
    // SAFETY: a fresh chunk of ours; the slots span header..header+capacity*slot.
    unsafe {
        base.add(geo.header)
            .write_bytes(FREE_JUNK, geo.capacity * geo.slot)
    };
}

/// The pool chunk at `base` is about to be given back.
pub(crate) fn pool_chunk_gone(base: *mut u8) {
    if mode() & JUNK != 0 {
        CHUNKS.lock().remove(&(base as usize));
    }
}

/// A slot of `inner` is handed out: it must still hold the poison.
///
/// # Safety
/// `obj` is a slot of `inner` just taken from its chunk.
pub(crate) unsafe fn pool_reused(inner: &PoolInner, obj: *mut u8) {
    let m = mode();
    if m & JUNK == 0 {
        return;
    }
    let hot = &inner.hot.0;
    let slot = hot.geo.slot;
    valgrind::make_defined(obj, slot);
    // SAFETY: the slot is ours, `slot` bytes long.
    if let Some(i) = unsafe { first_not(obj, slot, FREE_JUNK) } {
        report(format_args!(
            "hotpool: write after free: the `{}` at {:p} was modified after it was freed \
             (byte {i} is {:#04x})",
            hot.type_name,
            obj,
            // SAFETY: i < slot, inside the slot.
            unsafe { *obj.add(i) }
        ));
    }
    if m & CHECKS != 0 {
        valgrind::malloclike(obj, hot.object_size, false);
    }
}

/// An object of `inner` is freed: checks it was handed out (a double free
/// is reported before its memory is touched), then poisons it.
///
/// # Safety
/// `obj` lies in a live chunk of `inner` and nothing uses it any more.
pub(crate) unsafe fn pool_freed(inner: &PoolInner, obj: *mut u8) {
    let m = mode();
    if m & JUNK == 0 {
        return;
    }
    if m & CHECKS != 0 {
        // SAFETY: per the contract.
        unsafe { inner.check_handed_out(obj) };
    }
    // SAFETY: the slot is ours and unused.
    unsafe { obj.write_bytes(FREE_JUNK, inner.hot.0.geo.slot) };
    if m & CHECKS != 0 {
        // Inaccessible until handed out again: memcheck reports any use.
        valgrind::freelike(obj);
    }
}

/// `Pooled::<T>::from_raw(raw)`: `raw` must be a live object of a pool
/// chunk of `T`'s geometry.
pub(crate) fn pool_from_raw(raw: *const u8, geo: Option<crate::pool::Geometry>, type_name: &str) {
    if mode() & CHECKS == 0 {
        return;
    }
    let Some(geo) = geo else { return };
    let base = raw as usize & !(geo.chunk - 1);
    let chunks = CHUNKS.lock();
    if raw.is_null() || !chunks.contains(&base) {
        crate::pool::report_bad_free(raw, type_name, "is not an object of any pool");
    }
    // SAFETY: a registered chunk is live while CHUNKS is held (it is
    // unregistered before it is given back), and so is its pool.
    let inner = unsafe { &*crate::pool::chunk_owner(base as *const u8) };
    if inner.hot.0.geo != geo {
        crate::pool::report_bad_free(raw, type_name, "is an object of a pool of another layout");
    }
    // SAFETY: `raw` is in a live chunk of `inner`.
    unsafe { inner.check_handed_out(raw as *mut u8) };
}

/// An arena block of `usable` bytes at `p` was handed out.
pub(crate) fn arena_alloced(p: *mut u8, usable: usize, zeroed: bool) {
    let m = mode();
    if m & JUNK == 0 {
        return;
    }
    if m & CHECKS != 0 {
        valgrind::malloclike(p, usable, zeroed);
    }
    if !zeroed {
        // SAFETY: a fresh block of `usable` bytes.
        unsafe { p.write_bytes(ALLOC_JUNK, usable) };
    }
}

/// An arena block at `p` is being freed: validates it with `check` (which
/// returns its usable size and whether it is a huge mapping, or why it is
/// not a live block), then poisons it.
///
/// # Safety
/// If `check` accepts `p`, `p` is a block the caller owns.
pub(crate) unsafe fn arena_freeing(
    p: *mut u8,
    check: impl FnOnce(*const u8) -> Result<(usize, bool), &'static str>,
) {
    let m = mode();
    if m & JUNK == 0 {
        return;
    }
    let (usable, huge) = match check(p) {
        Ok(found) => found,
        Err(why) => report(format_args!(
            "hotpool: invalid free: the arena block at {p:p} {why}"
        )),
    };
    if huge {
        // Unmapped at once: nothing to poison.
        if m & CHECKS != 0 {
            valgrind::freelike(p);
        }
        return;
    }
    // SAFETY: a live block of `usable` bytes (checked above).
    if usable > 8 && unsafe { first_not(p.add(8), usable - 8, FREE_JUNK) }.is_none() {
        report(format_args!(
            "hotpool: invalid free: the arena block of {usable} bytes at {p:p} was freed twice \
             (it still holds the free poison)"
        ));
    }
    // SAFETY: as above; the block is ours until the free completes.
    unsafe { p.write_bytes(FREE_JUNK, usable) };
    if m & CHECKS != 0 {
        // Slabs keep their free regions in a bitmap in the run metadata,
        // so the whole freed block can be off limits to memcheck.
        valgrind::freelike(p);
    }
}

/// An arena block at `p` was resized in place from `old` to `new` usable bytes.
pub(crate) fn arena_resized(p: *mut u8, old: usize, new: usize) {
    if mode() & CHECKS != 0 && old != new {
        valgrind::resized(p, old, new);
    }
}
