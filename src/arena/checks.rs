//! Debug checks of arena blocks (the `checks` cfg; see [`crate::checks`]):
//! blocks are filled with junk when handed out and poisoned when freed, and
//! a freed pointer is validated from mapped metadata only
//! ([`check_block`]) before anything is written.

use super::chunk::*;
use super::init::{narenas, ARENAS};
use super::size_class::*;
use crate::checks::{first_not, ALLOC_JUNK, FREE_JUNK};
use crate::debug::{mode, CHECKS, JUNK};
use crate::report::abort_with as report;
use crate::sys;
use crate::valgrind;
use core::sync::atomic::Ordering::Relaxed;

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

/// An arena block at `p` is being freed: validates it with [`check_block`],
/// then poisons it.
///
/// # Safety
/// If [`check_block`] accepts `p`, `p` is a block the caller owns.
pub(crate) unsafe fn arena_freeing(p: *mut u8) {
    let m = mode();
    if m & JUNK == 0 {
        return;
    }
    let (usable, huge) = match check_block(p) {
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

/// An arena block moved from `p` to `q` with its contents (a huge block
/// grown by moving its pages), from `old` to `new` usable bytes.
pub(crate) fn arena_moved(p: *mut u8, q: *mut u8, old: usize, new: usize) {
    if mode() & CHECKS != 0 {
        valgrind::freelike(p);
        valgrind::malloclike(q, new, false);
        valgrind::make_defined(q, old);
    }
}

/// An arena block at `p` was resized in place from `old` to `new` usable bytes.
pub(crate) fn arena_resized(p: *mut u8, old: usize, new: usize) {
    if mode() & CHECKS != 0 && old != new {
        valgrind::resized(p, old, new);
    }
}

/// Whether `p` is the start of a live block: its usable size and whether
/// it is a huge mapping, or why not. Reads a header only after its magic
/// was read without faulting ([`sys::peek_u32`]).
fn check_block(p: *const u8) -> Result<(usize, bool), &'static str> {
    const FOREIGN: &str = "is not a block of the arena allocator (or was freed already)";
    let a = p as usize;
    let hdr = if a & (CHUNK - 1) == 0 {
        a.wrapping_sub(PAGE)
    } else {
        a & !(CHUNK - 1)
    };
    if a == 0 {
        return Err(FOREIGN);
    }
    // Chunk and huge headers both start with `kind`; the rest of a header is
    // read only once its magic was found.
    match sys::peek_u32(hdr as *const u8).ok_or(FOREIGN)? {
        // SAFETY: a huge header (magic checked) is readable.
        KIND_HUGE => match unsafe { &*(hdr as *const HugeHeader) } {
            h if h.ptr as usize == a => Ok((h.usable, true)),
            _ => Err("is not the start of a block"),
        },
        KIND_CHUNK if a & (CHUNK - 1) != 0 => {
            let c = hdr as *mut ChunkHeader;
            // SAFETY: a chunk header (magic checked) is readable.
            let owner = unsafe { (*c).arena };
            if !(0..narenas()).any(|i| core::ptr::eq(ARENAS[i].load(Relaxed), owner)) {
                return Err(FOREIGN);
            }
            let page = (a - hdr) >> LG_PAGE;
            if page < HEADER_PAGES {
                return Err("points into a chunk header");
            }
            // SAFETY: page < CHUNK_PAGES; the page map names a run start.
            let m = unsafe { meta_at(c, pagemap(c, page)) };
            let start = run_addr(m) as usize;
            // SAFETY: `m` is run metadata inside the header.
            let (state, class, npages) = unsafe { ((*m).state, (*m).class, (*m).npages) };
            match state {
                RUN_SLAB if (a - start) % CLASS_SIZE[class as usize] == 0 => {
                    Ok((CLASS_SIZE[class as usize], false))
                }
                RUN_LARGE if a == start => Ok((npages as usize * PAGE, false)),
                RUN_SLAB | RUN_LARGE => Err("is not the start of a block"),
                _ => Err("is in free pages: it was freed already"),
            }
        }
        _ => Err(FOREIGN),
    }
}
