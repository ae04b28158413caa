//! Chunks: 4 MiB-aligned blocks of pages with their metadata in front, so
//! `free` finds an object's run by masking its address (like mimalloc's
//! segments); and huge mappings, which carry a one-page header found the
//! same way.
//!
//! ```text
//!  chunk (CHUNK bytes, CHUNK-aligned)
//!  +-----------------------------+---------+--------+------+-------------+
//!  | ChunkHeader: kind, arena,   | slab    | large  | free | slab ...    |
//!  | pagemap[page] -> run start, | (class) | run    | run  |             |
//!  | runs[start]: RunMeta        |         |        |      |             |
//!  +-----------------------------+---------+--------+------+-------------+
//!   HEADER_PAGES                  runs tile the rest of the chunk
//!
//!  huge, align < CHUNK:   [HugeHeader page][pad][object ...]   header at
//!                          ^ CHUNK-aligned         ptr & !(CHUNK-1)
//!  huge, align >= CHUNK:  [HugeHeader page][object ...]        header at
//!                                           ^ CHUNK-aligned    ptr - PAGE
//! ```
//!
//! Invariants: runs tile `HEADER_PAGES..CHUNK_PAGES`; `pagemap` holds the
//! run start for every page of an allocated run and for the first and last
//! page of a free run; a pointer into a chunk is never CHUNK-aligned (the
//! header is there), so a CHUNK-aligned pointer is always huge.

use core::ptr::{addr_of, addr_of_mut};

use super::heap::Arena;
use super::size_class::{LG_PAGE, MAX_SLAB_REGIONS, PAGE};
use crate::list::{Link, Linked};

/// log2 of the chunk size.
pub(crate) const LG_CHUNK: usize = 22;
/// Bytes per chunk.
pub(crate) const CHUNK: usize = 1 << LG_CHUNK;
/// Pages per chunk.
pub(crate) const CHUNK_PAGES: usize = CHUNK / PAGE;
/// Pages taken by the header at the front of each chunk.
pub(crate) const HEADER_PAGES: usize = core::mem::size_of::<ChunkHeader>().div_ceil(PAGE);
/// Pages usable for runs in one chunk.
pub(crate) const USABLE_PAGES: usize = CHUNK_PAGES - HEADER_PAGES;

/// Words of a slab's free bitmap: enough for the most regions a slab has.
pub(crate) const SLAB_WORDS: usize = 8;
static_assertions::const_assert!(MAX_SLAB_REGIONS as usize <= SLAB_WORDS * 64);

/// `kind` of a chunk header.
pub(crate) const KIND_CHUNK: u32 = 0x4850_4348;
/// `kind` of a huge header.
pub(crate) const KIND_HUGE: u32 = 0x4850_4855;

/// `RunMeta::state`: not the first page of a run.
pub(crate) const RUN_NONE: u8 = 0;
/// A free run (in the arena's size buckets, and its dirty list if dirty).
pub(crate) const RUN_FREE: u8 = 1;
/// A slab of one small class.
pub(crate) const RUN_SLAB: u8 = 2;
/// One large object.
pub(crate) const RUN_LARGE: u8 = 3;
/// A free run whose pages are being given back with the run lock released
/// (in the arena's purging list, in no bucket): allocation cannot take it
/// and a freed neighbour does not merge with it.
pub(crate) const RUN_PURGING: u8 = 4;

/// Metadata of the run starting at one page. Free runs are guarded by the
/// arena's run lock; a slab's free list and counts by its bin's lock;
/// `state`, `class` and `npages` of an allocated run only change while it
/// is owned by the allocator.
#[repr(C)]
pub(crate) struct RunMeta {
    pub(crate) state: u8,
    pub(crate) class: u8,
    /// Free run: pages may hold data (not yet purged, not known zero).
    pub(crate) dirty: bool,
    /// Large run: its pages go back to the OS when it is freed, set when
    /// it is allocated ([`Arena::alloc_large`](super::heap::Arena)).
    pub(crate) purge_on_free: bool,
    pub(crate) npages: u32,
    /// Slab: free regions (set bits of `free_bits`).
    pub(crate) nfree: u32,
    /// Slab: bit `i` set when region `i` is free. Kept here rather than in
    /// the regions, so filling and flushing a thread cache never touches
    /// object memory (which another core may hold).
    pub(crate) free_bits: [u64; SLAB_WORDS],
    /// Link in a size bucket (free) or a bin's non-full list (slab): a run
    /// is in at most one of them, so they share it (`List<RunMeta>`).
    pub(crate) link: Link<RunMeta>,
    /// Link in the arena's dirty list (free and dirty); see [`DirtyLink`].
    pub(crate) dlink: Link<RunMeta>,
    /// Free and dirty: when it became dirty, ms of [`crate::sys::now_ms`].
    pub(crate) freed_at: u64,
}

// SAFETY: returns the run's own `link` field, by raw place, used only by
// the size buckets and the bins' non-full lists.
unsafe impl Linked for RunMeta {
    unsafe fn link(this: *mut RunMeta) -> *mut Link<RunMeta> {
        // SAFETY: forwarded from the caller: `this` is a live `RunMeta`.
        unsafe { addr_of_mut!((*this).link) }
    }
}

/// Marker of [`RunMeta`]'s dirty-list link (`List<RunMeta, DirtyLink>`).
pub(crate) struct DirtyLink;

// SAFETY: returns the run's own `dlink` field, by raw place, used only by
// the arena's dirty list.
unsafe impl Linked<DirtyLink> for RunMeta {
    unsafe fn link(this: *mut RunMeta) -> *mut Link<RunMeta> {
        // SAFETY: forwarded from the caller: `this` is a live `RunMeta`.
        unsafe { core::ptr::addr_of_mut!((*this).dlink) }
    }
}

/// The front of every chunk. All-zero is a valid (empty) header.
#[repr(C)]
pub(crate) struct ChunkHeader {
    pub(crate) kind: u32,
    pub(crate) arena: *const Arena,
    /// Link in the arena's chunk list.
    pub(crate) link: Link<ChunkHeader>,
    /// Per page: the run's start page (low 16 bits), and for a page of a
    /// slab its class plus one (bits 16..24; 0 elsewhere), so that `free`
    /// of a small object reads one entry and no `RunMeta`.
    pub(crate) pagemap: [u32; CHUNK_PAGES],
    pub(crate) runs: [RunMeta; CHUNK_PAGES],
}

// SAFETY: returns the chunk's own `link` field, by raw place, used only by
// the arena's chunk list.
unsafe impl Linked for ChunkHeader {
    unsafe fn link(this: *mut ChunkHeader) -> *mut Link<ChunkHeader> {
        // SAFETY: forwarded from the caller: `this` is a live chunk header.
        unsafe { addr_of_mut!((*this).link) }
    }
}

/// The header page of a huge allocation.
#[repr(C)]
pub(crate) struct HugeHeader {
    pub(crate) kind: u32,
    /// The object.
    pub(crate) ptr: *mut u8,
    /// Bytes of the object (page multiple).
    pub(crate) usable: usize,
    /// The whole mapping, header included.
    pub(crate) map_base: *mut u8,
    pub(crate) map_len: usize,
}

/// What owns a pointer handed out by the arena allocator.
pub(crate) enum Owner {
    /// A slab or large run; the `RunMeta` of its first page.
    Run(*mut RunMeta),
    /// A huge mapping.
    Huge(*mut HugeHeader),
}

/// Finds the owner of `p`.
///
/// # Safety
///
/// `p` must point into a live allocation of the arena allocator.
#[inline]
pub(crate) unsafe fn lookup(p: *const u8) -> Owner {
    let a = p as usize;
    if a & (CHUNK - 1) == 0 {
        return Owner::Huge((a - PAGE) as *mut HugeHeader);
    }
    let c = (a & !(CHUNK - 1)) as *mut ChunkHeader;
    // SAFETY: `p` is ours, so the CHUNK-aligned address below it is the
    // start of a chunk or huge header, both starting with `kind`.
    if unsafe { (*c).kind } == KIND_HUGE {
        return Owner::Huge(c.cast());
    }
    let page = (a - c as usize) >> LG_PAGE;
    // SAFETY: the page map entry of a page of an allocated run is stable
    // while the run is allocated.
    let start = unsafe { pagemap(c, page) };
    // SAFETY: `start` is a page index of this chunk.
    Owner::Run(unsafe { meta_at(c, start) })
}

/// The chunk holding `m`.
#[inline]
pub(crate) fn chunk_of(m: *const RunMeta) -> *mut ChunkHeader {
    (m as usize & !(CHUNK - 1)) as *mut ChunkHeader
}

/// The page index `m` describes.
#[inline]
pub(crate) fn page_of(m: *const RunMeta) -> usize {
    let c = chunk_of(m);
    // SAFETY: only the address is computed, inside the header.
    let first = unsafe { addr_of!((*c).runs) } as usize;
    (m as usize - first) / core::mem::size_of::<RunMeta>()
}

/// First byte of the run `m` describes.
#[inline]
pub(crate) fn run_addr(m: *const RunMeta) -> *mut u8 {
    (chunk_of(m) as usize + page_of(m) * PAGE) as *mut u8
}

/// The `RunMeta` of page `page` of chunk `c`.
///
/// # Safety
///
/// `c` must be a mapped chunk and `page < CHUNK_PAGES`.
#[inline]
pub(crate) unsafe fn meta_at(c: *mut ChunkHeader, page: usize) -> *mut RunMeta {
    debug_assert!(page < CHUNK_PAGES);
    // SAFETY: in bounds of the header per the contract.
    unsafe { addr_of_mut!((*c).runs).cast::<RunMeta>().add(page) }
}

/// Reads the page map entry of `page`.
///
/// # Safety
///
/// `c` must be a mapped chunk and `page < CHUNK_PAGES`.
#[inline]
pub(crate) unsafe fn pagemap(c: *mut ChunkHeader, page: usize) -> usize {
    // SAFETY: in bounds of the header per the contract.
    unsafe { page_entry(c, page) as usize & 0xffff }
}

/// The whole page map entry of `page` (see [`ChunkHeader::pagemap`]).
///
/// # Safety
///
/// `c` must be a mapped chunk and `page < CHUNK_PAGES`.
#[inline]
pub(crate) unsafe fn page_entry(c: *mut ChunkHeader, page: usize) -> u32 {
    // SAFETY: in bounds of the header per the contract.
    unsafe { addr_of!((*c).pagemap).cast::<u32>().add(page).read() }
}

/// If `page` belongs to a slab: its start page and class.
///
/// # Safety
///
/// `c` must be a mapped chunk and `page < CHUNK_PAGES`.
#[inline]
pub(crate) unsafe fn slab_at(c: *mut ChunkHeader, page: usize) -> Option<(usize, usize)> {
    // SAFETY: per the contract.
    let e = unsafe { page_entry(c, page) };
    match e >> 16 {
        0 => None,
        k => Some((e as usize & 0xffff, k as usize - 1)),
    }
}

/// Writes the page map entries of `pages` to `start`.
///
/// # Safety
///
/// `c` must be a mapped chunk, the pages in range, and the caller must hold
/// the arena's run lock.
pub(crate) unsafe fn set_pagemap(
    c: *mut ChunkHeader,
    pages: core::ops::Range<usize>,
    start: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { write_pagemap(c, pages, start as u32) }
}

/// Writes the page map entries of the slab of class `class` covering
/// `pages` and starting at `start`.
///
/// # Safety
///
/// As [`set_pagemap`].
pub(crate) unsafe fn set_pagemap_slab(
    c: *mut ChunkHeader,
    pages: core::ops::Range<usize>,
    start: usize,
    class: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { write_pagemap(c, pages, start as u32 | (class as u32 + 1) << 16) }
}

/// # Safety
///
/// As [`set_pagemap`].
unsafe fn write_pagemap(c: *mut ChunkHeader, pages: core::ops::Range<usize>, entry: u32) {
    // SAFETY: in bounds per the contract; no other thread writes these
    // entries while the run lock is held.
    let map = unsafe { addr_of_mut!((*c).pagemap).cast::<u32>() };
    for p in pages {
        // SAFETY: as above.
        unsafe { map.add(p).write(entry) };
    }
}

/// The arena owning `p`'s run.
///
/// # Safety
/// `p` is a live small or large object of this allocator.
pub(crate) unsafe fn owner_arena(p: *const u8) -> &'static Arena {
    let c = (p as usize & !(CHUNK - 1)) as *const ChunkHeader;
    // SAFETY: `p` is in a chunk whose header names its arena forever.
    unsafe { &*(*c).arena }
}
