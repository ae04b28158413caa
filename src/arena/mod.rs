//! A general-purpose arena allocator in the jemalloc line: [`HotAlloc`].
//!
//! Linux only (x86-64 and aarch64, glibc and musl): it counts purged pages
//! as zero, which Linux's `madvise(MADV_DONTNEED)` guarantees and macOS's
//! and the BSDs' do not, and it is tested on Linux only. Elsewhere pools
//! take their chunks from the system allocator (see the README's platform
//! table).
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: hotpool::HotAlloc = hotpool::HotAlloc;
//! ```
//!
//! # How memory flows
//!
//! ```text
//!  thread cache (per thread, per class: a stack of free objects)
//!        |  empty: fill half a stack       full: flush the older half to
//!        v  from the thread's arena bin    the owning arena's bin (its lock)
//!  arena (N = 4 per CPU or `narenas`; a new thread joins the open one with fewest threads)
//!    bins[class]: slabs of one small class (8 B ..= 14 KiB)
//!    runs: page runs of 4 MiB chunks; large objects (16 KiB ..= 1 MiB)
//!        |  freed runs are dirty; after `decay_ms` (or on trim) their pages
//!        v  go back with madvise(MADV_DONTNEED); free chunks unmap on trim
//!  OS: chunks, huge objects (> 1 MiB or alignment > 256 KiB) mapped directly;
//!      up to eight freed huge mappings (64 MiB in all) are kept for reuse
//!      until `decay_ms` passes
//! ```
//!
//! `free` finds an object's run by masking its address down to its chunk's
//! header (no lookup structure; one page map entry gives a small object's
//! class); with a layout, small frees need no metadata at all: the class
//! follows from the size. Freed pages are reused before fresh ones. A map of the
//! 4 MiB regions the allocator maps (`registry.rs`) lets [`owns`] reject
//! foreign pointers, for C's `free`.
//!
//! # Costs and limits
//!
//! * No per-object header. Small objects round up to their class (at most
//!   25% above the request, 12.5% slab waste at most); large ones to their
//!   class in pages; huge ones to pages, plus one header page.
//! * Each chunk spends its first 32 pages (128 KiB, 3.1% of its address
//!   space) on page metadata; only the entries of pages in use are touched,
//!   so the resident cost is a fraction of that.
//! * A thread cache holds at most 128 objects per class (fewer for big
//!   classes; 8 for large classes up to `tcache_max`) and at most
//!   `tcache_bytes` (4 MiB by default) in all, whether or not the thread
//!   still calls: a thread that goes quiet holds no more. A class the
//!   thread frees but has not allocated (a consumer's) holds at most 4 KiB
//!   (at least 4 objects) and goes back whole to its owner's depot when
//!   full. Classes left unused give back 3/4 of their unused
//!   objects every 256 slow-path events of the thread (incremental GC). A
//!   cache is flushed when the thread exits and by [`trim`] on the calling
//!   thread; other threads' cached objects stay theirs until then.
//! * Memory goes back to the OS: free pages are purged `decay_ms` after
//!   they were freed (checked on allocator activity, or by the background
//!   thread); [`trim`] purges everything now and unmaps wholly free chunks.
//!   A freed huge object is unmapped at once, unless the cache of freed
//!   huge mappings (eight, 64 MiB in all) keeps it for the next huge
//!   request until `decay_ms` passes (counted as `dirty`).
//! * After `fork` the child can allocate (every lock is held across the
//!   fork); the background thread does not exist in the child, which
//!   purges on its own allocator calls unless [`set_background_thread`]
//!   starts one.
//! * Threads share arenas until they contend: with the default `narenas`
//!   (4 per CPU, made at start), new threads join the first arena only,
//!   and a thread that shares its arena and whose refills find its bin
//!   lock held 4 times between two GC events moves to the open arena with
//!   the fewest threads, opening one more if none has fewer than its own
//!   (its cached objects go back to the arenas that own them). A thread
//!   alone in its arena stays (what contends there is the frees of its
//!   objects by others, which would follow it). An arena each costs a chunk and partly used slabs per
//!   class. `narenas` set, or `tcache:false`: every arena is open from the
//!   start, new threads joining the one with the fewest threads.
//! * Locks are a spin-then-yield mutex of our own (see `lock.rs`): the fork
//!   handlers must hold them without guards.
//!
//! # Statistics
//!
//! | field | meaning |
//! |---|---|
//! | `allocated` | bytes in objects users hold (class sizes) |
//! | `active` | bytes of pages in slabs and large runs, plus huge objects |
//! | `resident` | upper estimate of resident bytes: active + dirty + metadata |
//! | `mapped` | bytes mapped: chunks, huge mappings, metadata |
//! | `metadata` | bytes of metadata: base blocks, chunk headers |
//! | `dirty` | bytes of free pages not yet purged, kept huge mappings included |
//! | `tcache_bytes` | bytes of free objects in threads' caches (at most `tcache_bytes` of the config per thread) |
//! | `narenas`, `arenas_open` | arenas made; arenas open to threads (grows from 1 on contention by default) |
//! | `classes[i]` | per size class: `nmalloc`, `nfree`, `current` objects; `cached`: free objects in threads' caches |
//!
//! Objects in thread caches count as free. Options: see [`crate::config`].

mod alloc;
mod base;
mod bin;
#[cfg(any(feature = "checks", debug_assertions))]
mod checks;
mod chunk;
mod free;
mod heap;
mod huge;
mod huge_cache;
mod init;
mod large;
mod lock;
pub mod prof;
mod purge;
mod realloc;
mod registry;
mod runs;
mod samples;
mod size_class;
mod stats;
mod tcache;
mod tls;
mod unwind;

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;

pub(crate) use purge::set_idle_hook;
pub(crate) use stats::{set_handle_report_hook, set_report_hook, start_signal_report};
pub use stats::{ArenaStats, ClassStats};

/// Hooks for the loom models of the arena (`tests/loom_arena.rs`), built
/// only under `--cfg loom`.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_hooks {
    /// Starts the allocator afresh; call first in every model execution.
    pub fn reset() {
        super::init::loom_reset();
    }

    /// Runs the fork handlers as a `fork` in this thread would.
    pub fn fork() {
        super::init::loom_fork();
    }

    /// Reclaims every thread's cache as the background purger does a
    /// quiet thread's (whether or not the thread is quiet).
    pub fn reclaim_caches() {
        super::tcache::loom_reclaim_all();
    }

    /// How many modelled threads have run the allocator's exit hook
    /// (which runs after `join` returns under loom: wait for it).
    pub fn exited_threads() -> usize {
        crate::sync::exited_threads()
    }
}

use crate::error::AllocError;

/// The arena allocator, usable as the global allocator or through
/// [`allocator_api2::alloc::Allocator`]. Linux only, as the whole
/// [`arena`](self) module.
///
/// ```
/// use core::alloc::{GlobalAlloc, Layout};
/// let layout = Layout::from_size_align(100, 16).unwrap();
/// // SAFETY: the layout has a non-zero size; the block is freed once.
/// unsafe {
///     let p = hotpool::HotAlloc.alloc(layout);
///     assert!(!p.is_null() && p as usize % 16 == 0);
///     hotpool::HotAlloc.dealloc(p, layout);
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HotAlloc;

// SAFETY: blocks are fresh, aligned and at least `layout.size()` bytes; they
// stay valid until freed; the allocator never unwinds.
unsafe impl GlobalAlloc for HotAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        alloc::alloc(layout.size(), layout.align(), false)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        alloc::alloc(layout.size(), layout.align(), true)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is ours.
        unsafe { free::dealloc(ptr, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is ours.
        unsafe { realloc::realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}

fn dangling(align: usize) -> NonNull<[u8]> {
    // `align` is a non-zero power of two: a valid, aligned dangling pointer.
    let p = NonNull::new(align as *mut u8).unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(p, 0)
}

/// `allocate` past the thread cache's fast path (and every allocation
/// with the debug checks on): out of line, so that the fast path returns
/// the popped object as it is, without the null test and the metadata
/// lookup of [`block`].
#[cold]
#[inline(never)]
fn allocate_slow(layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
    let class = alloc::small_class_of(layout.size(), layout.align());
    block(
        alloc::alloc(layout.size(), layout.align(), false),
        layout,
        class,
    )
}

/// The block `p` made for `layout`, with its usable length: a small
/// request's class size (`class`, the layout's small class, computed by the
/// caller once for the allocation too: a region of that class, or a larger
/// run when the profiler sampled it), else read from the metadata (a lookup
/// of the chunk header and the run's entry, two cache misses where blocks
/// are spread out).
#[inline(always)]
fn block(
    p: *mut u8,
    layout: Layout,
    class: Option<usize>,
) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
    let p = NonNull::new(p).ok_or(allocator_api2::alloc::AllocError)?;
    let len = match class {
        Some(c) => size_class::CLASS_SIZE[c],
        // SAFETY: `p` is a live block of ours.
        None => unsafe { free::usable_size(p.as_ptr()) }.max(layout.size()),
    };
    Ok(NonNull::slice_from_raw_parts(p, len))
}

// SAFETY: blocks are valid until deallocated, usable for their reported
// length, and moved/copied correctly by grow/shrink; zero-size requests get
// a dangling aligned pointer that is never passed to the arenas.
unsafe impl allocator_api2::alloc::Allocator for HotAlloc {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout.align()));
        }
        if let (Some(c), false) = (
            alloc::small_class_of(layout.size(), layout.align()),
            cfg!(any(feature = "checks", debug_assertions)),
        ) {
            // SAFETY: small classes are cached (`c < NSMALL <= NCACHED`).
            if let Some(p) = unsafe { tcache::pop(c) } {
                return Ok(NonNull::slice_from_raw_parts(p, size_class::CLASS_SIZE[c]));
            }
        }
        allocate_slow(layout)
    }

    fn allocate_zeroed(
        &self,
        layout: Layout,
    ) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        if layout.size() == 0 {
            return Ok(dangling(layout.align()));
        }
        let p = alloc::alloc(layout.size(), layout.align(), true);
        // The reported extra bytes beyond `size` may not be zero; report
        // exactly the requested size.
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(allocator_api2::alloc::AllocError)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller's contract is ours.
            unsafe { free::dealloc(ptr.as_ptr(), layout.size(), layout.align()) }
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        // SAFETY: the caller's contract is ours.
        unsafe { self.resize(ptr, old, new) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        // SAFETY: the caller's contract is ours.
        let b = unsafe { self.resize(ptr, old, new)? };
        // SAFETY: the block holds at least `new.size()` bytes.
        unsafe {
            b.cast::<u8>()
                .as_ptr()
                .add(old.size())
                .write_bytes(0, new.size() - old.size());
        }
        Ok(NonNull::slice_from_raw_parts(b.cast(), new.size()))
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        // SAFETY: the caller's contract is ours.
        unsafe { self.resize(ptr, old, new) }
    }
}

impl HotAlloc {
    /// Shared by grow and shrink.
    ///
    /// # Safety
    /// As `Allocator::grow`/`shrink`.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        use allocator_api2::alloc::Allocator as _;
        if old.size() == 0 || new.size() == 0 || new.align() != old.align() {
            let b = if new.size() == 0 {
                dangling(new.align())
            } else {
                self.allocate(new)?
            };
            // SAFETY: both blocks are valid for the copied bytes; the old
            // one is freed exactly once.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    ptr.as_ptr(),
                    b.cast::<u8>().as_ptr(),
                    old.size().min(new.size()),
                );
                self.deallocate(ptr, old);
            }
            return Ok(b);
        }
        // SAFETY: the caller's contract is `realloc`'s.
        let p = unsafe { realloc::realloc(ptr.as_ptr(), old.size(), old.align(), new.size()) };
        block(p, new, alloc::small_class_of(new.size(), new.align()))
    }
}

/// C's `malloc`: `size` bytes aligned to 16 (a block of 16 for `size` 0),
/// or null when memory runs out or no block can be that large. The block
/// [`try_alloc`]`(size, 16)` gives, through a path cut to this one case: a
/// small size goes from one table load to the thread cache's pop, with no
/// alignment rounding and no test for errors on the way (hotpool-malloc's
/// `malloc`, under `LD_PRELOAD`). Free with [`free()`].
///
/// ```
/// let p = hotpool::arena::malloc(100);
/// assert!(!p.is_null() && p as usize % 16 == 0);
/// // SAFETY: `p` came from the arena allocator and is freed once.
/// unsafe { hotpool::arena::free(core::ptr::NonNull::new(p).unwrap()) };
/// assert!(hotpool::arena::malloc(usize::MAX).is_null());
/// ```
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    // With the debug checks, every block goes through them (`try_alloc`).
    if size <= size_class::SMALL_MAX && cfg!(not(any(feature = "checks", debug_assertions))) {
        let c = size_class::small_class16(size);
        // SAFETY: small classes are cached (`c < NSMALL <= NCACHED`).
        if let Some(p) = unsafe { tcache::pop(c) } {
            return p.as_ptr();
        }
        return malloc_small_slow(c);
    }
    malloc_slow(size)
}

/// [`malloc`] of class `c` when the cache's fast path did not serve it.
#[cold]
fn malloc_small_slow(c: usize) -> *mut u8 {
    // SAFETY: small classes are cached (`c < NSMALL <= NCACHED`).
    unsafe { tcache::alloc(c) }
}

/// [`malloc`] of anything but a small size on the fast path (and of every
/// size with the debug checks, which [`try_alloc`] makes).
#[cold]
fn malloc_slow(size: usize) -> *mut u8 {
    try_alloc(size, 16).map_or(core::ptr::null_mut(), NonNull::as_ptr)
}

/// Allocates `size` bytes aligned to `align` from the arenas, with a clear
/// error instead of a null pointer. Free with [`free()`] or
/// `HotAlloc.dealloc` with the same layout.
///
/// ```
/// use hotpool::AllocError;
/// let p = hotpool::arena::try_alloc(24, 8).unwrap();
/// // SAFETY: `p` came from the arena allocator and is freed once.
/// unsafe { hotpool::arena::free(p) };
/// assert!(matches!(hotpool::arena::try_alloc(8, 3), Err(AllocError::UnsupportedLayout { .. })));
/// ```
#[inline]
pub fn try_alloc(size: usize, align: usize) -> Result<NonNull<u8>, AllocError> {
    alloc_checked(size, align, false)
}

// Always inline: C's `malloc` (in hotpool-malloc) reaches the thread
// cache's fast path through here, and with a mere hint LLVM kept this out
// of line: each call pushed and popped seven registers and returned the
// `Result` through memory.
#[inline(always)]
fn alloc_checked(size: usize, align: usize, zero: bool) -> Result<NonNull<u8>, AllocError> {
    if !align.is_power_of_two()
        || align > alloc::MAX_ALIGN
        || size > isize::MAX as usize - alloc::MAX_ALIGN
    {
        return Err(AllocError::UnsupportedLayout { size, align });
    }
    NonNull::new(alloc::alloc(size.max(1), align, zero))
        .ok_or(AllocError::OutOfMemory { size, align })
}

/// Allocates an array of `n` elements of `size` bytes, aligned to 16 (like
/// `malloc`); an overflowing product is an error, never a short block.
///
/// ```
/// let p = hotpool::arena::alloc_array(10, 8).unwrap();
/// // SAFETY: freed once.
/// unsafe { hotpool::arena::free(p) };
/// assert!(hotpool::arena::alloc_array(usize::MAX, 2).is_err());
/// ```
pub fn alloc_array(n: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
    alloc_checked(array_bytes(n, size)?, 16, false)
}

/// `n * size`, or the error for a product that overflows.
fn array_bytes(n: usize, size: usize) -> Result<usize, AllocError> {
    n.checked_mul(size).ok_or(AllocError::UnsupportedLayout {
        size: usize::MAX,
        align: 16,
    })
}

/// Like [`alloc_array`], zeroed (C's `calloc`); large and huge blocks that
/// are known zero (fresh or purged pages) skip the memset.
///
/// ```
/// let p = hotpool::arena::calloc(4, 1000).unwrap();
/// // SAFETY: the block has 4000 zeroed bytes; freed once.
/// unsafe {
///     assert!(core::slice::from_raw_parts(p.as_ptr(), 4000).iter().all(|&b| b == 0));
///     hotpool::arena::free(p);
/// }
/// ```
#[inline]
pub fn calloc(n: usize, size: usize) -> Result<NonNull<u8>, AllocError> {
    alloc_checked(array_bytes(n, size)?, 16, true)
}

/// Frees a block of the arena allocator without its layout (C's `free`).
///
/// # Safety
///
/// `ptr` must be a live block from [`HotAlloc`], [`try_alloc`],
/// [`alloc_array`] or [`calloc`] (not a zero-size dangling pointer), and
/// must not be used afterwards.
///
/// ```
/// let p = hotpool::arena::try_alloc(5000, 64).unwrap();
/// // SAFETY: freed once.
/// unsafe { hotpool::arena::free(p) };
/// ```
#[inline]
pub unsafe fn free(ptr: NonNull<u8>) {
    // SAFETY: the caller's contract.
    unsafe { free::free(ptr.as_ptr()) }
}

/// Resizes a block of the arena allocator knowing only its address (C's
/// `realloc`): the old size comes from the metadata, the block stays in
/// place while the new size fits its class (or its pages can grow or shrink
/// where they are), else it moves to a new 16-aligned block and the old one
/// is freed. A `new_size` of 0 keeps a minimal block (C's `realloc(p, 0)`
/// freeing is the caller's choice). On error the old block is untouched
/// and still owned by the caller.
///
/// # Safety
///
/// `ptr` must be a live block of the arena allocator (not zero-size); on
/// success it must not be used afterwards (use the returned block).
///
/// ```
/// let p = hotpool::arena::try_alloc(100, 16).unwrap();
/// // SAFETY: `p` is live; the result replaces it and is freed once.
/// unsafe {
///     p.as_ptr().write_bytes(7, 100);
///     let q = hotpool::arena::realloc(p, 50_000).unwrap();
///     assert!(hotpool::arena::usable_size(q) >= 50_000);
///     assert_eq!(*q.as_ptr().add(99), 7);
///     let r = hotpool::arena::realloc(q, 40_000).unwrap();
///     assert_eq!(r, q, "a large block shrinks in place");
///     hotpool::arena::free(r);
/// }
/// ```
#[inline]
pub unsafe fn realloc(ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, AllocError> {
    if new_size > isize::MAX as usize - alloc::MAX_ALIGN {
        return Err(AllocError::UnsupportedLayout {
            size: new_size,
            align: 16,
        });
    }
    // SAFETY: the caller's contract.
    let p = unsafe { realloc::realloc_unsized(ptr.as_ptr(), 16, new_size.max(1)) };
    NonNull::new(p).ok_or(AllocError::OutOfMemory {
        size: new_size,
        align: 16,
    })
}

/// Whether `ptr` could be a block of the arena allocator: an address past
/// the metadata pages of one of its chunks, or exactly the object of one
/// of its huge blocks. A cheap check (one byte load from a map of the
/// allocator's 4 MiB regions, one header read for huge blocks) for
/// telling foreign pointers (another allocator's) apart before [`free()`];
/// it does not detect double frees or interior pointers into chunks.
/// If the region map could not be mapped, it answers `true`.
///
/// # Safety
///
/// No other thread may free an arena block that lies in the same
/// 4 MiB-aligned region as `ptr` while this runs (always true when `ptr`
/// is a block the caller owns, or memory the arena allocator never had).
///
/// ```
/// let p = hotpool::arena::try_alloc(64, 8).unwrap();
/// let big = hotpool::arena::try_alloc(3 << 20, 16).unwrap();
/// let on_stack = 0u64;
/// // SAFETY: the blocks are ours and live until freed below.
/// unsafe {
///     assert!(hotpool::arena::owns(p.as_ptr()));
///     assert!(hotpool::arena::owns(big.as_ptr()));
///     assert!(!hotpool::arena::owns(big.as_ptr().add(4096)));
///     assert!(!hotpool::arena::owns(&on_stack as *const u64 as *const u8));
///     hotpool::arena::free(p);
///     hotpool::arena::free(big);
/// }
/// ```
#[inline]
pub unsafe fn owns(ptr: *const u8) -> bool {
    // SAFETY: the caller's contract.
    unsafe { registry::owns(ptr) }
}

/// Frees `ptr` if it is a block of the arena allocator and returns true;
/// for a pointer the allocator never handed out ([`owns`] false) does
/// nothing and returns false. The check and the free share their lookups:
/// on the path of a small block, one read of the region map and one of
/// the chunk's page map. This is C's `free` in `hotpool-malloc`.
///
/// # Safety
///
/// `ptr` must be a live block of the arena allocator (not zero-size, not
/// used afterwards) or memory the allocator never had; as for [`owns`], no
/// other thread may free a block in the same 4 MiB-aligned region while
/// this runs.
///
/// ```
/// let p = hotpool::arena::try_alloc(64, 8).unwrap();
/// let on_stack = 0u64;
/// // SAFETY: `p` is live and freed once; the stack word was never arena
/// // memory.
/// unsafe {
///     assert!(hotpool::arena::free_if_owned(p.as_ptr()));
///     assert!(!hotpool::arena::free_if_owned(&on_stack as *const u64 as *mut u8));
/// }
/// ```
#[inline]
pub unsafe fn free_if_owned(ptr: *mut u8) -> bool {
    // SAFETY: the caller's contract.
    unsafe { free::free_if_owned(ptr) }
}

/// Bytes usable at `ptr`: at least the size requested, the size class (or
/// page-rounded size) in fact.
///
/// # Safety
///
/// `ptr` must be a live block of the arena allocator (not zero-size).
///
/// ```
/// let p = hotpool::arena::try_alloc(100, 8).unwrap();
/// // SAFETY: `p` is live, then freed once.
/// unsafe {
///     assert_eq!(hotpool::arena::usable_size(p), 112);
///     hotpool::arena::free(p);
/// }
/// ```
#[inline]
pub unsafe fn usable_size(ptr: NonNull<u8>) -> usize {
    // SAFETY: the caller's contract.
    unsafe { free::usable_size(ptr.as_ptr()) }
}

/// Flushes the calling thread's cache and gives every free page back to the
/// OS now; wholly free chunks are unmapped.
///
/// ```
/// hotpool::arena::trim();
/// assert_eq!(hotpool::arena::stats().dirty, 0);
/// ```
pub fn trim() {
    purge::trim()
}

/// A snapshot of the arena statistics (no thread is stopped).
///
/// ```
/// let p = hotpool::arena::try_alloc(3000, 8).unwrap();
/// assert!(hotpool::arena::stats().allocated >= 3000);
/// // SAFETY: freed once.
/// unsafe { hotpool::arena::free(p) };
/// ```
pub fn stats() -> ArenaStats {
    stats::collect()
}

/// Writes a readable report: totals, per-class counts, and, once the
/// process has created a pool, the pool table of [`crate::stats::report`]
/// (the pool layer registers it; the arena does not depend on pools), and
/// once it has made a [`Shared`](crate::Shared), a line of
/// [`crate::handle::stats`] (registered by the handle layer).
/// `HOTPOOL_CONF=stats_print:true` prints it at exit,
/// `stats_signal:SIGUSR2` each time the process gets that signal, followed
/// by a line `___ end of hotpool statistics ___` (see [`crate::config`]).
///
/// ```
/// let mut out = Vec::new();
/// hotpool::arena::stats_print(&mut out).unwrap();
/// assert!(String::from_utf8(out).unwrap().contains("allocated"));
/// ```
pub fn stats_print(out: &mut impl std::io::Write) -> std::io::Result<()> {
    stats::stats_print(out)
}

/// The statistics as one JSON object.
///
/// ```
/// assert!(hotpool::arena::stats_json().starts_with("{\"allocated\":"));
/// ```
pub fn stats_json() -> String {
    stats::stats_json()
}

/// The options in force (from `HOTPOOL_CONF` and the setters).
///
/// ```
/// assert!(hotpool::arena::config().narenas >= 1);
/// ```
pub fn config() -> crate::config::ArenaConf {
    init::conf()
}

/// Sets the purge delay of freed pages: 0 purges at once, negative never.
/// Each arena applies it at its next allocator activity (or at the
/// background thread's next pass).
///
/// ```
/// hotpool::arena::set_decay_ms(5_000);
/// assert_eq!(hotpool::arena::config().decay_ms, 5_000);
/// ```
pub fn set_decay_ms(ms: i64) {
    init::ensure_init();
    init::set_decay_ms(ms.max(-1))
}

/// Sets the byte budget of thread caches made from now on (threads that
/// call the allocator for the first time, or whose cache is set up again),
/// at most 64 MiB: what one thread's cache may hold, all size classes
/// together (`HOTPOOL_CONF=tcache_bytes`). With 192 KiB here and
/// [`crate::pool::set_thread_bytes`] at 64 KiB, a thread that goes quiet
/// holds at most 256 KiB of free objects; mixed-size churn then makes more
/// trips to the arena's bins (hotpool-bench's churn 3.9x slower than at
/// the default 4 MiB).
///
/// ```
/// hotpool::arena::set_tcache_bytes(192 << 10);
/// assert_eq!(hotpool::arena::config().tcache_bytes, 192 << 10);
/// hotpool::arena::set_tcache_bytes(4 << 20);
/// ```
pub fn set_tcache_bytes(bytes: usize) {
    init::ensure_init();
    init::set_tcache_bytes(bytes.min(64 << 20))
}

/// Starts or stops the background purge thread (a raw pthread that never
/// allocates); returns whether it runs. It wakes every `decay_ms / 4`
/// (10 ms ..= 1 s), and when the oldest dirty run or kept huge mapping
/// reaches `decay_ms`, and purges expired pages of every arena.
///
/// ```
/// assert!(hotpool::arena::set_background_thread(true));
/// assert!(!hotpool::arena::set_background_thread(false));
/// ```
pub fn set_background_thread(on: bool) -> bool {
    purge::set_background_thread(on)
}

/// Turns the per-class counters on or off (on by default). While off,
/// allocations and frees are not counted, so `allocated` and `classes`
/// only reflect counted events; page figures stay exact.
///
/// ```
/// hotpool::arena::set_stats_enabled(true);
/// ```
pub fn set_stats_enabled(on: bool) {
    init::set_stats_enabled(on)
}

/// A block of `size` bytes aligned to `align` (both at least 1 MiB in
/// practice) mapped straight from the OS, for pool chunks
/// (`Backing::Arena`); freed by [`dealloc_chunk`].
pub(crate) fn alloc_chunk(size: usize, align: usize) -> Option<NonNull<u8>> {
    huge::huge_alloc(size, align, false, false)
}

/// Unmaps the freed huge mappings the arena keeps for reuse (what
/// [`trim`] does to them), for a pool's trim.
pub(crate) fn unmap_kept() {
    huge::huge_purge(u64::MAX);
}

/// Frees a block from [`alloc_chunk`] as a huge block: with `keep`, kept
/// mapped for reuse until `decay_ms` passes (see the module docs), else
/// unmapped at once (a pool trimmed because it went idle).
///
/// # Safety
///
/// `ptr` must come from [`alloc_chunk`] and not be used afterwards.
pub(crate) unsafe fn dealloc_chunk(ptr: NonNull<u8>, keep: bool) {
    // SAFETY: the caller's contract: a live huge block of ours, never seen
    // by the debug checks.
    unsafe {
        match chunk::lookup(ptr.as_ptr()) {
            chunk::Owner::Huge(h) => huge::huge_free(h, keep),
            chunk::Owner::Run(_) => free::free_unchecked(ptr.as_ptr()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pool_chunks_round_trip() {
        let p = super::alloc_chunk(1 << 20, 1 << 20).unwrap();
        assert_eq!(p.as_ptr() as usize % (1 << 20), 0);
        // SAFETY: the chunk is ours, written in bounds, freed once.
        unsafe {
            p.as_ptr().write_bytes(7, 1 << 20);
            super::dealloc_chunk(p, true);
        }
    }
}
