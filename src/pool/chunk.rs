//! Chunks: the blocks of memory a pool carves its objects from.
//!
//! ```text
//!  chunk base (aligned to CHUNK, a power of two >= 1 MiB)
//!  +--------------------+---------------------+------------+-----------------+
//!  | line 0: owner ptr  | mutable state        | free bitmap| slot 0 | slot 1 .|
//!  | (written once)     | (central lock)       | 1 bit/slot | ...             |
//!  +--------------------+---------------------+------------+-----------------+
//!  <------------------- header (rounded up to the slot alignment) ---------->
//! ```
//!
//! Because a chunk is aligned to its own size, and that size depends only on
//! the object's size and alignment, any object address masked with
//! `!(CHUNK - 1)` gives its chunk's header, and the header's first word gives
//! the pool. That is how a one-pointer `Pooled<T>` finds its pool.
//!
//! A set bit in the bitmap means "this slot is free inside the chunk"; slots
//! handed to thread caches, the depot or users have their bit clear. All
//! fields but the owner pointer change only under the pool's central lock.

use core::ptr::{self, NonNull};

use super::central::Inner;
use crate::error::AllocError;
use crate::list::{Link, Linked};

/// Smallest chunk, and so the granularity of memory going back to the OS.
pub(crate) const MIN_CHUNK: usize = 1 << 20;
/// Bytes per cache line, the unit of slot staggering and header rounding.
const CACHE_LINE: usize = 64;
/// A chunk aims to hold at least this many objects.
const MIN_OBJECTS: usize = 64;

/// The shape of the chunks of one object layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Bytes per object slot: the size rounded up to the alignment.
    pub slot: usize,
    /// Bytes per chunk; also its alignment.
    pub chunk: usize,
    /// Offset of slot 0 from the chunk base.
    pub header: usize,
    /// Object slots per chunk.
    pub capacity: usize,
}

const fn round_up(v: usize, to: usize) -> usize {
    (v + to - 1) & !(to - 1)
}

impl Geometry {
    /// The geometry for objects of `size` bytes aligned to `align`, or `None`
    /// for zero-sized objects (which need no memory) and layouts too large.
    pub(crate) const fn of(size: usize, align: usize) -> Option<Geometry> {
        if size == 0 || align == 0 || !align.is_power_of_two() || size > (1 << 40) {
            return None;
        }
        let (slot, align, chunk) = Self::shape(size, align);
        let fixed = core::mem::size_of::<ChunkHeader>();
        // Capacity c must satisfy header(c) + c * slot <= chunk, where
        // header(c) = round_up(fixed + 8 * ceil(c / 64), align).
        let mut capacity = (chunk - fixed) * 8 / (slot * 8 + 1);
        loop {
            let header = round_up(fixed + 8 * capacity.div_ceil(64), align);
            if header + capacity * slot <= chunk {
                return Some(Geometry {
                    slot,
                    chunk,
                    header,
                    capacity,
                });
            }
            capacity -= 1;
        }
    }

    /// The chunk size for objects of `size` bytes aligned to `align`, as
    /// in [`Geometry::of`] (0 for zero-sized objects), without the capacity
    /// search: straight-line arithmetic that folds to a constant for
    /// constant arguments. Dropping an unsized `Pooled` finds its chunk
    /// with it from the value's dynamic size and alignment.
    #[inline(always)]
    pub(crate) const fn chunk_of(size: usize, align: usize) -> usize {
        if size == 0 {
            return 0;
        }
        Self::shape(size, align).2
    }

    /// Slot size, slot-0 alignment and chunk size for a valid layout.
    #[inline(always)]
    const fn shape(size: usize, align: usize) -> (usize, usize, usize) {
        let mut slot = round_up(size, align);
        // Slots a whole number of pages apart put every object's first
        // words in the same few cache sets; one extra line staggers them
        // (1.6% at 4 KiB; measured 18.7 -> 3.6 ns per object on a batch of
        // 1024 4 KiB objects). Not possible for page-aligned types.
        if slot % 4096 == 0 && align <= CACHE_LINE {
            slot += CACHE_LINE;
        }
        // Slot 0 starts on a cache line, so an object of a line or less never
        // straddles two.
        let align = if align < CACHE_LINE {
            CACHE_LINE
        } else {
            align
        };
        let fixed = core::mem::size_of::<ChunkHeader>();
        // A first guess of the header, generous enough that the bitmap for
        // any capacity below fits: one bit per byte of the objects' area.
        let want = fixed + align + MIN_OBJECTS * slot + (MIN_OBJECTS * slot) / (8 * slot);
        let chunk = if want <= MIN_CHUNK {
            MIN_CHUNK
        } else {
            want.next_power_of_two()
        };
        (slot, align, chunk)
    }

    /// Words in the free bitmap.
    pub(crate) const fn words(&self) -> usize {
        self.capacity.div_ceil(64)
    }
}

/// The fixed part of a chunk's header; the bitmap follows it.
///
/// Never borrowed as a whole (no `&ChunkHeader` or `&mut ChunkHeader`):
/// lock-free frees read `owner` and `id` while a thread holding the central
/// lock changes the other fields, so every access goes through the raw
/// pointer to the one field it needs.
#[repr(C)]
pub(crate) struct ChunkHeader {
    /// The pool this chunk belongs to; written once when the chunk is made,
    /// with the provenance of the pool's `Box` (so the last chunk to go may
    /// free the pool through it).
    pub owner: *const Inner,
    /// That pool's thread-cache entry index (a copy of `hot.entry`, so the
    /// free path need not wait for a load through `owner` to find it).
    pub entry: usize,
    _line: [usize; 6],
    /// Links in the pool's list of chunks with free slots (central lock).
    link: Link<ChunkHeader>,
    /// Free slots (set bits); central lock.
    free: usize,
    /// First bitmap word that may hold a set bit; central lock.
    cursor: usize,
}

// SAFETY: `link` returns the `link` field, projected from the raw pointer.
unsafe impl Linked for ChunkHeader {
    unsafe fn link(this: *mut ChunkHeader) -> *mut Link<ChunkHeader> {
        // SAFETY: forwarded: `this` is a live chunk header.
        unsafe { ptr::addr_of_mut!((*this).link) }
    }
}

/// Creation, destruction and slot bookkeeping of chunks.
impl ChunkHeader {
    /// The header of the chunk holding `obj`, for chunks of `chunk` bytes
    /// (derived from `obj`, so it keeps the chunk's provenance).
    #[inline(always)]
    pub(crate) fn of(obj: *const u8, chunk: usize) -> *mut ChunkHeader {
        obj.wrapping_sub((obj as usize) & (chunk - 1))
            .cast_mut()
            .cast::<ChunkHeader>()
    }

    /// Free slots in the chunk.
    ///
    /// # Safety
    ///
    /// `this` is a live chunk; the caller holds its owner's central lock.
    pub(crate) unsafe fn free(this: *mut ChunkHeader) -> usize {
        // SAFETY: per the contract; a raw read of one field.
        unsafe { (*this).free }
    }

    fn bitmap(this: *mut ChunkHeader) -> *mut u64 {
        // SAFETY-free pointer arithmetic: the bitmap starts right after the
        // fixed header, inside the chunk (see `Geometry::of`).
        this.cast::<u8>()
            .wrapping_add(core::mem::size_of::<ChunkHeader>())
            .cast::<u64>()
    }

    /// Makes a new chunk for `owner` with every slot free.
    ///
    /// # Safety
    ///
    /// `owner` is a live pool, with the provenance of its allocation (it
    /// is stored in the chunk and may free the pool later).
    pub(crate) unsafe fn create(
        owner: *const Inner,
        geo: &Geometry,
        backing: super::Backing,
    ) -> Result<NonNull<ChunkHeader>, AllocError> {
        let backing = loom_backing(backing);
        let oom = AllocError::OutOfMemory {
            size: geo.chunk,
            align: geo.chunk,
        };
        let base = match backing {
            #[cfg(unix)]
            super::Backing::Os => crate::sys::map_aligned(geo.chunk, geo.chunk, 0).ok_or(oom)?,
            #[cfg(target_os = "linux")]
            super::Backing::Arena => crate::arena::alloc_chunk(geo.chunk, geo.chunk).ok_or(oom)?,
            super::Backing::System => {
                #[cfg(feature = "fault-injection")]
                if crate::testing::inject() {
                    return Err(oom);
                }
                let layout =
                    core::alloc::Layout::from_size_align(geo.chunk, geo.chunk).map_err(|_| {
                        AllocError::UnsupportedLayout {
                            size: geo.chunk,
                            align: geo.chunk,
                        }
                    })?;
                // SAFETY: the layout has a non-zero size.
                NonNull::new(unsafe { std::alloc::GlobalAlloc::alloc(&std::alloc::System, layout) })
                    .ok_or(oom)?
            }
        };
        let header = base.cast::<ChunkHeader>();
        // SAFETY: `base` is a fresh block of `geo.chunk` bytes aligned to
        // `geo.chunk`, larger than the header and bitmap (Geometry::of), and
        // nobody else knows it yet.
        unsafe {
            header.as_ptr().write(ChunkHeader {
                owner,
                entry: (*owner).hot.0.entry,
                _line: [0; 6],
                link: Link::new(),
                free: geo.capacity,
                cursor: 0,
            });
            let bits = Self::bitmap(header.as_ptr());
            let words = geo.words();
            for w in 0..words {
                bits.add(w).write(u64::MAX);
            }
            let tail = geo.capacity % 64;
            if tail != 0 {
                bits.add(words - 1).write((1u64 << tail) - 1);
            }
        }
        #[cfg(any(feature = "checks", debug_assertions))]
        super::checks::pool_chunk_made(base.as_ptr(), geo);
        Ok(header)
    }

    /// Gives a wholly free chunk back to where it came from. With `keep:
    /// false`, an arena-backed chunk goes back to the OS at once rather than
    /// being kept for reuse (see [`crate::arena`]'s huge blocks).
    ///
    /// # Safety
    ///
    /// `this` was made by [`ChunkHeader::create`] with the same geometry and
    /// backing, is in no list, and no object of it is referenced anywhere.
    pub(crate) unsafe fn destroy(
        this: *mut ChunkHeader,
        geo: &Geometry,
        backing: super::Backing,
        keep: bool,
    ) {
        let backing = loom_backing(backing);
        let base = this.cast::<u8>();
        // Only arena-backed chunks can be kept (the arena is Linux-only).
        #[cfg(not(target_os = "linux"))]
        let _ = keep;
        #[cfg(any(feature = "checks", debug_assertions))]
        super::checks::pool_chunk_gone(base);
        match backing {
            // SAFETY: the caller guarantees this is a whole mapping of ours
            // that nothing uses any more.
            #[cfg(unix)]
            super::Backing::Os => unsafe {
                crate::sys::unmap(NonNull::new_unchecked(base), geo.chunk)
            },
            // SAFETY: as above; the chunk came from arena::alloc_chunk.
            #[cfg(target_os = "linux")]
            super::Backing::Arena => unsafe {
                crate::arena::dealloc_chunk(NonNull::new_unchecked(base), keep)
            },
            super::Backing::System => {
                // SAFETY: allocated by System with exactly this layout, which
                // was valid then (create checked it).
                unsafe {
                    let layout =
                        core::alloc::Layout::from_size_align_unchecked(geo.chunk, geo.chunk);
                    std::alloc::GlobalAlloc::dealloc(&std::alloc::System, base, layout)
                }
            }
        }
    }

    /// Takes up to `want` free slots out of the chunk into `out`, lowest
    /// addresses first; returns how many it took.
    ///
    /// # Safety
    ///
    /// The caller holds the owner's central lock, `this` is a live chunk of
    /// geometry `geo`, and `out` is valid for `want` writes.
    pub(crate) unsafe fn take(
        this: *mut ChunkHeader,
        geo: &Geometry,
        out: *mut *mut u8,
        want: usize,
    ) -> usize {
        // Raw field places: no reference to the header is made (see the
        // type's docs).
        // SAFETY: `this` is a live chunk (contract).
        let (free, cursor) = unsafe {
            (
                ptr::addr_of_mut!((*this).free),
                ptr::addr_of_mut!((*this).cursor),
            )
        };
        let bits = Self::bitmap(this);
        let base = this.cast::<u8>().wrapping_add(geo.header);
        let mut taken = 0;
        let words = geo.words();
        // SAFETY: the central lock gives us the mutable header fields.
        let mut at = unsafe { *cursor };
        while taken < want && at < words {
            // SAFETY: at < words, inside the bitmap.
            let word_ptr = unsafe { bits.add(at) };
            // SAFETY: as above.
            let mut word = unsafe { *word_ptr };
            while word != 0 && taken < want {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                let index = at * 64 + bit;
                // SAFETY: `out` has room for `want` entries and taken < want.
                unsafe { out.add(taken).write(base.wrapping_add(index * geo.slot)) };
                taken += 1;
            }
            // SAFETY: as above.
            unsafe { *word_ptr = word };
            if word == 0 {
                at += 1;
            }
        }
        // SAFETY: as above.
        unsafe {
            *cursor = at;
            *free -= taken;
        }
        taken
    }

    /// The chunk of `obj`, its slot index, and the bitmap word and mask of
    /// that slot; reports (and aborts) if `obj` is not a slot's start or the
    /// slot is free in the chunk already.
    ///
    /// # Safety
    ///
    /// The caller holds the owner's central lock and `obj` lies in a live
    /// chunk of geometry `geo` of the pool of `type_name`.
    unsafe fn live_slot(
        obj: *mut u8,
        geo: &Geometry,
        type_name: &str,
    ) -> (*mut ChunkHeader, usize, *mut u64, u64) {
        let this = Self::of(obj, geo.chunk);
        let offset = (obj as usize).wrapping_sub(this as usize + geo.header);
        let index = offset / geo.slot;
        if offset % geo.slot != 0 || index >= geo.capacity {
            crate::pool::report_bad_free(obj, type_name, "is not the start of an object slot");
        }
        // SAFETY: index < capacity, so the word is inside the bitmap.
        let word = unsafe { Self::bitmap(this).add(index / 64) };
        let mask = 1u64 << (index % 64);
        // SAFETY: as above; the central lock is held.
        if unsafe { *word } & mask != 0 {
            crate::pool::report_bad_free(obj, type_name, "was freed twice");
        }
        (this, index, word, mask)
    }

    /// Reports (and aborts) unless `obj` is an object slot handed out by
    /// its chunk, i.e. not free in it.
    ///
    /// # Safety
    ///
    /// As [`ChunkHeader::give_back`], except that `obj` may be referenced.
    #[cfg(any(feature = "checks", debug_assertions))]
    pub(crate) unsafe fn check_handed_out(obj: *mut u8, geo: &Geometry, type_name: &str) {
        // SAFETY: forwarded contract.
        let _ = unsafe { Self::live_slot(obj, geo, type_name) };
    }

    /// Marks the slot at `obj` free in its chunk; returns the chunk.
    ///
    /// # Safety
    ///
    /// The caller holds the owner's central lock and `obj` is a slot of a
    /// live chunk of geometry `geo` of the pool of `type_name` that is not
    /// referenced any more.
    pub(crate) unsafe fn give_back(
        obj: *mut u8,
        geo: &Geometry,
        type_name: &str,
    ) -> *mut ChunkHeader {
        // SAFETY: forwarded contract.
        let (this, index, word, mask) = unsafe { Self::live_slot(obj, geo, type_name) };
        // SAFETY: the central lock gives us the mutable header fields and
        // the bitmap word; raw field places, no reference to the header.
        unsafe {
            *word |= mask;
            (*this).free += 1;
            (*this).cursor = (*this).cursor.min(index / 64);
        }
        this
    }
}

/// Where chunks really come from: under loom, whose models must not start
/// the arena, every backing is the system allocator; the pool's logic is
/// unchanged. (Miri runs the real backings: `sys` maps through the system
/// allocator under `cfg(miri)`.)
#[inline(always)]
fn loom_backing(backing: super::Backing) -> super::Backing {
    if cfg!(loom) {
        super::Backing::System
    } else {
        backing
    }
}
