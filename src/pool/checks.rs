//! Debug checks of pools (the `checks` cfg; see [`crate::checks`]): new
//! chunks and freed objects are poisoned, reused objects checked for
//! writes after free, frees validated against the chunk bitmap, and
//! `Pooled::from_raw` pointers checked against the chunks registered here.

use std::collections::BTreeSet;

use parking_lot::Mutex;

use super::{Geometry, PoolInner};
use crate::checks::{first_not, FREE_JUNK};
use crate::debug::{mode, CHECKS, JUNK};
use crate::report::abort_with as report;
use crate::valgrind;

/// Base addresses of live pool chunks, kept while the checks are on.
static CHUNKS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// A pool chunk was made at `base`: registers it and poisons its slots.
pub(crate) fn pool_chunk_made(base: *mut u8, geo: &Geometry) {
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
pub(crate) fn pool_from_raw(raw: *const u8, geo: Option<Geometry>, type_name: &str) {
    if mode() & CHECKS == 0 {
        return;
    }
    let Some(geo) = geo else { return };
    let base = raw as usize & !(geo.chunk - 1);
    let chunks = CHUNKS.lock();
    if raw.is_null() || !chunks.contains(&base) {
        super::report_bad_free(raw, type_name, "is not an object of any pool");
    }
    // SAFETY: a registered chunk is live while CHUNKS is held (it is
    // unregistered before it is given back), and so is its pool.
    let inner = unsafe { &*super::chunk_owner(base as *const u8) };
    if inner.hot.0.geo != geo {
        super::report_bad_free(raw, type_name, "is an object of a pool of another layout");
    }
    // SAFETY: `raw` is in a live chunk of `inner`.
    unsafe { inner.check_handed_out(raw as *mut u8) };
}
