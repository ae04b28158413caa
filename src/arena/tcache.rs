//! Thread caches: per thread, per cached class, a stack of free objects in
//! front of the arenas (jemalloc's tcache).
//!
//! * alloc pops the stack; when empty, half a stack is filled from the
//!   thread's arena bin under the bin's lock (small) or one run is taken
//!   (large classes up to `tcache_max`).
//! * free pushes onto the *freeing* thread's stack, whichever thread
//!   allocated; when full, the newer half goes back, parked whole in the
//!   depot of the arena that owns it (a copy under the bin's lock, see
//!   [`super::bin`]; the next refill there takes it back), or, when the
//!   objects have several owners or the depot is full, to the owning
//!   arenas' bins, each under that bin's lock. A refill takes from the
//!   thread's arena's depot first. No global lock anywhere.
//! * a thread's cache holds at most `tcache_bytes` (4 MiB by default) of
//!   free objects, all classes together, by construction: each class's
//!   bound (`max`, what the free fast path compares with) is a *grant* of
//!   `max * size` bytes from that budget, and the grants never add up to
//!   more. A class starts with no grant; each miss or overflow (slow paths)
//!   grows it toward its cap from what is left of the budget; a class whose
//!   first grant finds the budget spent halves the largest other grant
//!   (flushing what no longer fits). The fast paths compare with the bound as before:
//!   the budget costs them nothing, and a thread that stops calling holds
//!   at most its budget.
//! * a class the thread frees but has not allocated (a consumer freeing
//!   what a producer allocated) is *free-only*: its grant stays within
//!   [`FREE_ONLY_BYTES`] (4 KiB, at least four objects) and a full stack
//!   goes back whole, to the owner's depot, where the producer's next
//!   refill takes it. Objects a thread keeps but never pops would only
//!   make the producer carve new ones (8 such consumers held 2.6 MiB of
//!   the seed market-data fan-out's 64-512 B messages). The class's first
//!   allocation slow path lifts the limit for good.
//! * incremental GC (jemalloc's): every 256 slow-path events, each class
//!   gives back 3/4 of its *low-water mark*, the objects at the bottom of
//!   its stack that no allocation reached since the last event, and its
//!   grant shrinks by as much. The allocation fast path pops only above the
//!   mark (one compare, as against zero before); reaching it takes the slow
//!   path, which lowers it.
//! * a thread that runs no slow path for `decay_ms` (blocked after a
//!   burst, say, so running none of our code) has its cache reclaimed from
//!   outside by the background purger ([`reclaim`]): the purger blocks the
//!   cache's bounds, issues `membarrier`, and takes all but the top object
//!   of each stack back to the arenas; the owner's next slow path moves
//!   what is left down. The fast paths pay a compiler fence (no
//!   instruction) and read the bounds as atomics (the same loads, no longer
//!   folded into the compare: one instruction more per call); each slow path
//!   pays an uncontended compare-exchange on its own cache's state word.
//!   Without `membarrier` (old kernels, sandboxes, Miri, ThreadSanitizer
//!   builds) or without the purger there is no reclaim.
//! * counters are per thread, written with relaxed load+store (no shared
//!   read-modify-write) and summed by [`super::stats()`] on read; so are
//!   the stack heights (`tcache_bytes` of the statistics).
//! * one thread-local word ([`super::tls`]: initial-exec, two instructions,
//!   no destructor registration that could allocate) points to the cache; a
//!   `pthread_key`
//!   destructor flushes the cache at thread exit and marks the thread
//!   dead ([`dead`]): later allocations from that thread (other TLS destructors)
//!   go straight to its arena. The cache's memory is reused by later threads.

use core::cell::Cell;
use core::ptr::{addr_of_mut, null_mut, NonNull};
use core::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use super::bin::Park;
use super::chunk::{lookup, Owner};
use super::heap::Arena;
use super::lock::SpinLock;
use super::size_class::*;
use super::{alloc, chunk, huge, init};
use crate::sync::{light_fence, RawU16, RawU32};

/// Objects a stack can hold.
const SLOTS: usize = 128;
/// Under loom: every cached class's bound.
const LOOM_SLOTS: u16 = 2;
/// Bytes a small class's stack may hold at least (within [`SLOTS`]).
const SMALL_CACHE_BYTES: usize = 64 << 10;
/// Bytes a class the thread frees but has not allocated may hold (at
/// least [`FREE_ONLY_MIN`] objects, at most the class's cap): its stack is
/// only a batch on the way to the owning arena's depot.
const FREE_ONLY_BYTES: usize = 4 << 10;
/// Objects a class the thread only frees may hold at least.
const FREE_ONLY_MIN: usize = 4;

/// Slow-path events between two GC events (and decay ticks).
const GC_EVENTS: u32 = 256;

/// The weight, within one GC period, of refills from bins that another
/// thread refilled from in between, at which a thread sharing its arena
/// moves to another ([`interleaved`]): 32 such refills, or 4 that also
/// found the bin lock held.
const MOVE_AT: u32 = 32;

/// The weight of an interleaved refill that found the bin lock held.
const BUSY_WEIGHT: u32 = 8;

/// One class's stack height, bound and low-water mark. The counts of all
/// classes sit together, apart from the stacks, so that a program using many
/// classes touches few cache lines for them. Only the owning thread writes
/// `n`; statistics read it from other threads; the purger's reclaim writes
/// the bounds ([`reclaim`]). All three are atomics read and written with
/// relaxed loads and stores (plain moves).
#[repr(C)]
struct Count {
    /// Objects on the stack. At most [`SLOTS`], so the fast paths compare
    /// its low 16 bits with the bounds (one compare with a memory operand
    /// each, as before).
    n: RawU32,
    /// The free fast path's bound: the class's grant from the thread's byte
    /// budget, in objects (0: nothing granted, or the class is not cached,
    /// or the cache is being reclaimed).
    max: RawU16,
    /// Low-water mark of `n` since the last GC event: the bottom `low`
    /// objects were not reached since. The allocation fast path pops only
    /// above it. `low <= n <= max`, except while the cache is reclaimed,
    /// when `low` is [`BLOCKED`] and `max` 0.
    low: RawU16,
}

/// The low-water mark that stops every pop ([`reclaim`]).
const BLOCKED: u16 = u16::MAX;

/// [`Tcache::state`]: no one works on the stacks but the fast paths.
const IDLE: u32 = 0;
/// The owning thread is in a slow path (or the cache is retired or being
/// made): the reclaim leaves it alone.
const OWNER: u32 = 1;
/// The purger is taking the cache's objects: the owner's slow paths leave
/// the stacks alone and go to the arena.
const RECLAIMING: u32 = 2;
/// The purger took the bottom `taken[c]` objects of each stack: the
/// owner's next slow path moves the rest down and sets the bounds anew.
const RECLAIMED: u32 = 3;

/// A thread's cache. All-zero is a valid empty cache (carved from zeroed
/// metadata memory).
#[repr(C)]
pub(crate) struct Tcache {
    counts: [Count; NCACHED],
    stacks: [[*mut u8; SLOTS]; NCACHED],
    nmalloc: [AtomicU64; NCLASSES],
    nfree: [AtomicU64; NCLASSES],
    /// Per class: the most objects its stack may hold (0: not cached).
    cap: [u16; NCACHED],
    /// Per class: whether this thread took the allocation slow path of the
    /// class since its cache was made. Until then the class is *free-only*:
    /// its bound stays at [`FREE_ONLY_BYTES`] and a full stack goes back
    /// whole (a thread that frees what others allocate, a consumer, keeps
    /// no objects that only their producer could use).
    allocates: [bool; NCACHED],
    /// Bytes granted to the classes: the sum of `max * size`, at most `budget`.
    granted: usize,
    /// The thread's byte budget (`tcache_bytes`).
    budget: usize,
    arena: *const Arena,
    /// Weight of the refills since the last GC event from bins another
    /// thread refilled from in between ([`interleaved`]).
    interleaved: u32,
    /// Every cache ever made (stats walk it).
    next_all: *mut Tcache,
    /// Caches of exited threads, for reuse.
    next_free: *mut Tcache,
    /// Slow-path events (the owner's relaxed load+store; the purger reads
    /// it to tell a quiet thread).
    events: AtomicU32,
    /// [`IDLE`], [`OWNER`], [`RECLAIMING`] or [`RECLAIMED`]: who may touch
    /// the stacks besides the fast paths (see [`reclaim`]).
    state: RawU32,
    /// Per class: the objects at the bottom of the stack that the last
    /// reclaim took (0 once the owner moved the rest down).
    taken: [AtomicU16; NCACHED],
    /// The purger's own: `events` when it last looked, and the time (ms)
    /// it last saw them change.
    watch_events: AtomicU32,
    watch_since: AtomicU64,
    /// Per class, the value of `nmalloc` at which the heap profiler takes
    /// its next sample (`prof:true`; 0: not drawn yet).
    prof_next: [u64; NCACHED],
}

/// Every cache, and counts merged from retired ones.
pub(crate) struct Registry {
    all: *mut Tcache,
    free: *mut Tcache,
    pub(crate) retired_nmalloc: [u64; NCLASSES],
    pub(crate) retired_nfree: [u64; NCLASSES],
}

// SAFETY: the raw pointers are to metadata memory that lives forever.
unsafe impl Send for Registry {}

pub(crate) static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry {
    all: null_mut(),
    free: null_mut(),
    retired_nmalloc: [0; NCLASSES],
    retired_nfree: [0; NCLASSES],
});

// The thread's cache pointer lives in [`super::tls`]: null, not set up
// yet; [`dead`]: no cache (exited or disabled); otherwise this thread's
// cache.
crate::sync::thread_local! {
    /// Arena index for threads without a cache, plus one (0: unassigned).
    static ARENA: Cell<u32> = const { Cell::new(0) };
}

/// Marks a thread that has no cache.
fn dead() -> *mut Tcache {
    NonNull::<Tcache>::dangling().as_ptr()
}

#[inline(always)]
fn current() -> *mut Tcache {
    super::tls::get().cast()
}

#[inline(always)]
fn live(tc: *mut Tcache) -> bool {
    !tc.is_null() && tc != dead()
}

#[inline(always)]
fn bump(counter: &AtomicU64) {
    // Only the owning thread writes: load+store, no locked instruction.
    counter.store(counter.load(Relaxed) + 1, Relaxed);
}

/// Counts an allocation (`alloc`) or free of class `c` at `p` in the
/// thread's cache if it has one, else in `arena`; tells the profiler if on.
/// For paths outside the thread cache's own (which move sampled small
/// objects to page runs, see [`prof_due`]).
#[inline]
pub(crate) fn count(c: usize, alloc: bool, arena: &Arena, p: *mut u8) {
    if init::events() < 0 {
        if alloc {
            super::prof::on_alloc(p, CLASS_SIZE[c]);
        } else {
            super::prof::on_free(p);
        }
    }
    count_stats(c, alloc, arena);
}

/// [`count`] without the profiler.
#[inline]
pub(crate) fn count_stats(c: usize, alloc: bool, arena: &Arena) {
    if !init::stats_enabled() {
        return;
    }
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache is owned by this thread and never freed;
        // only its atomics are shared.
        bump(unsafe {
            if alloc {
                &(*tc).nmalloc[c]
            } else {
                &(*tc).nfree[c]
            }
        });
    } else if alloc {
        arena.nmalloc[c].fetch_add(1, Relaxed);
    } else {
        arena.nfree[c].fetch_add(1, Relaxed);
    }
}

/// The calling thread's arena (setting the thread up on first use).
pub(crate) fn arena() -> Option<&'static Arena> {
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache is owned by this thread; its arena lives forever.
        return Some(unsafe { &*(*tc).arena });
    }
    if tc.is_null() {
        setup();
        return arena();
    }
    let idx = ARENA.with(Cell::get);
    if idx == 0 {
        // A thread without a cache (`tcache:false`) stays attached for
        // good: it has no exit hook.
        let a = init::attach_thread();
        ARENA.with(|c| c.set(a as u32 + 1));
        return init::arena(a);
    }
    init::arena(idx as usize - 1)
}

/// First allocator call of this thread: make its cache.
#[cold]
fn setup() {
    if !init::ensure_init() {
        super::tls::set(dead().cast());
        return;
    }
    let tc = if init::tcache_enabled() {
        make()
    } else {
        null_mut()
    };
    if tc.is_null() {
        super::tls::set(dead().cast());
    } else {
        super::tls::set(tc.cast());
        init::arm_thread_exit(tc.cast());
    }
}

fn make() -> *mut Tcache {
    let a = init::attach_thread();
    let Some(arena) = init::arena(a) else {
        return null_mut();
    };
    let mut reg = REGISTRY.lock();
    let tc = if reg.free.is_null() {
        let Some(p) = super::base::alloc(core::mem::size_of::<Tcache>(), 64) else {
            drop(reg);
            init::detach_thread(arena);
            return null_mut();
        };
        let tc = p.as_ptr().cast::<Tcache>();
        // SAFETY: fresh zeroed metadata memory is a valid empty cache; it
        // is ours (the reclaim leaves an [`OWNER`]'s cache alone) until
        // set up below.
        unsafe {
            (*tc).state.store(OWNER, Relaxed);
            (*tc).next_all = reg.all;
        }
        reg.all = tc;
        tc
    } else {
        let tc = reg.free;
        // SAFETY: caches on the free list are flushed and unused.
        reg.free = unsafe { (*tc).next_free };
        tc
    };
    drop(reg);
    let max_size = init::tcache_max();
    // SAFETY: the cache is now exclusively this thread's (statistics read
    // only the `n` atomics, which are 0 in a new or retired cache; the
    // purger leaves it alone while its state is OWNER).
    unsafe {
        (*tc).arena = arena;
        (*tc).interleaved = 0;
        (*tc).granted = 0;
        (*tc).prof_next = [0; NCACHED];
        (*tc).budget = init::tcache_bytes();
        for c in 0..NCACHED {
            let bin = &(*tc).counts[c];
            bin.n.store(0, Relaxed);
            bin.max.store(0, Relaxed);
            bin.low.store(0, Relaxed);
            (*tc).allocates[c] = false;
            (*tc).cap[c] = if CLASS_SIZE[c] > max_size {
                0
            } else if cfg!(loom) {
                // Tiny stacks keep a loom model's state space small: a
                // fill takes one object, a full stack flushes one.
                LOOM_SLOTS
            } else if c < NSMALL {
                // Two slabs' worth, and at least SMALL_CACHE_BYTES: classes
                // with few regions per slab would otherwise move a handful
                // of objects per bin lock.
                let by_bytes = (SMALL_CACHE_BYTES / CLASS_SIZE[c]) as u32;
                (SLAB_REGIONS[c] * 2).max(by_bytes).clamp(8, SLOTS as u32) as u16
            } else {
                8
            };
            (*tc).taken[c].store(0, Relaxed);
        }
        (*tc).state.store(IDLE, Release);
    }
    tc
}

/// Allocates from cached class `c`; null when memory runs out.
///
/// # Safety
/// `c < NCACHED` (the fast path indexes the class's counters unchecked).
#[inline(always)]
pub(crate) unsafe fn alloc(c: usize) -> *mut u8 {
    // SAFETY: per the contract; the bounds checks of `counts[c]` and
    // `nmalloc[c]` go (two instructions and a branch per call).
    unsafe { core::hint::assert_unchecked(c < NCACHED) };
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache of this thread; `c < NCACHED`.
        if let Some(p) = unsafe { take(tc, c) } {
            // SAFETY: as above; `p` was just popped from class `c`.
            return unsafe { counted(tc, c, p) };
        }
    }
    alloc_slow(c)
}

/// The allocation fast path alone: an object of cached class `c` popped
/// and counted, or `None` (a miss, no cache, or the profiler on, which
/// [`alloc`] serves). For a caller that needs more than the pointer (the
/// allocator-api2 `allocate` reports the class size) and takes every other
/// case out of line: its fast path then returns the object as it is, with
/// no null test where the slow paths join.
///
/// # Safety
/// `c < NCACHED`.
#[inline(always)]
pub(crate) unsafe fn pop(c: usize) -> Option<NonNull<u8>> {
    // SAFETY: per the contract (as in [`alloc`]).
    unsafe { core::hint::assert_unchecked(c < NCACHED) };
    let e = init::events();
    let tc = current();
    if e < 0 || !live(tc) {
        return None;
    }
    // SAFETY: a live cache of this thread; `c < NCACHED`.
    let p = unsafe { take(tc, c) }?;
    if e > 0 {
        // SAFETY: as above.
        bump(unsafe { &(*tc).nmalloc[c] });
    }
    // SAFETY: the stacks hold objects, never null.
    Some(unsafe { NonNull::new_unchecked(p) })
}

/// Pops the top object of class `c` from `tc`'s stack if it lies above
/// the low-water mark; not counted.
///
/// # Safety
/// `tc` is the calling thread's live cache; `c < NCACHED`.
#[inline(always)]
unsafe fn take(tc: *mut Tcache, c: usize) -> Option<*mut u8> {
    // One call's accesses stay apart from the next's (see [`reclaim`]).
    light_fence();
    // SAFETY: per the contract, a cache owned by this thread.
    let bin = unsafe { &(*tc).counts[c] };
    let n = bin.n.load(Relaxed);
    if n as u16 <= bin.low.load(Relaxed) {
        return None;
    }
    let n = n - 1;
    bin.n.store(n, Relaxed);
    // SAFETY: as above; `n < max <= SLOTS`; the reclaim never takes the top
    // object.
    Some(unsafe { slot(tc, c, n as usize).read() })
}

/// Slot `i` of class `c`'s stack in `tc`, reached without a reference to
/// the stacks (the purger may read the slots below the owner's height while
/// the owner's fast path writes the top one, [`reclaim`]).
///
/// # Safety
/// `tc` is a live cache; `c < NCACHED`, `i < SLOTS`.
#[inline(always)]
unsafe fn slot(tc: *mut Tcache, c: usize, i: usize) -> *mut *mut u8 {
    // SAFETY: per the contract, in bounds of the stacks.
    unsafe {
        addr_of_mut!((*tc).stacks)
            .cast::<*mut u8>()
            .add(c * SLOTS + i)
    }
}

/// Counts the allocation of `p`, just popped from the live cache `tc`'s
/// stack of class `c`, as [`init::events`] says; returns the object to
/// hand out (another one when the profiler samples this one).
///
/// # Safety
/// `tc` is the calling thread's live cache; `p` was just popped from its
/// stack of class `c`.
#[inline(always)]
unsafe fn counted(tc: *mut Tcache, c: usize, p: *mut u8) -> *mut u8 {
    let e = init::events();
    if e > 0 {
        // SAFETY: per the contract.
        bump(unsafe { &(*tc).nmalloc[c] });
    } else if e < 0 {
        // SAFETY: per the contract.
        return unsafe { prof_alloc(tc, c, p) };
    }
    p
}

/// The allocation fast path's count when the profiler is on (`e < 0`):
/// the class's statistics counter (kept whenever the profiler is on)
/// doubles as the count to its next sample, [`prof_due`] when it gets
/// there. Inline, under the fast path's test of `e`, which the profiler
/// shares with the statistics: with `prof:false` the fast path runs not
/// one instruction more; with it, three more than with statistics alone.
///
/// # Safety
/// `tc` is the calling thread's live cache; `p` was just popped from its
/// stack of class `c`.
#[inline(always)]
unsafe fn prof_alloc(tc: *mut Tcache, c: usize, p: *mut u8) -> *mut u8 {
    // SAFETY: per the contract (no reference to the cache: the purger
    // may be reading its stacks).
    unsafe {
        let k = (*tc).nmalloc[c].load(Relaxed) + 1;
        (*tc).nmalloc[c].store(k, Relaxed);
        if k >= (*tc).prof_next[c] {
            return prof_due(tc, c, p);
        }
    }
    p
}

/// Class `c`'s count reached its next sample (or none was drawn yet) at
/// `p`: asks the profiler ([`super::prof::due`]) whether to sample, and
/// draws the next point: objects of one size sampled at the profiler's
/// byte rate are a geometric count apart, drawn as the bytes to the next
/// sample divided by the size. A sampled object of a small class is moved
/// to a page run of its own ([`promote`]) and `p` goes back on the stack
/// (and is counted as the run's allocation instead): so a free can tell a
/// sampled object from the others by its address, in the samples' range
/// ([`super::samples::holds`]), a filter read and the page map
/// ([`prof_free`]).
///
/// # Safety
/// `tc` is the calling thread's live cache; `p` was just popped from its
/// stack of class `c` and counted.
#[cold]
#[inline(never)]
unsafe fn prof_due(tc: *mut Tcache, c: usize, p: *mut u8) -> *mut u8 {
    let size = CLASS_SIZE[c];
    // SAFETY: per the contract; a field only the owner touches.
    let first = (unsafe { (*tc).prof_next[c] } == 0).then_some(size);
    let promoting = (c < NSMALL).then_some(promote as super::prof::Promote);
    let (bytes, q) = super::prof::due(p, size, first, promoting);
    // SAFETY: per the contract; an atomic.
    let nmalloc = unsafe { &(*tc).nmalloc[c] };
    if q != p {
        // SAFETY: `p` is an unused object of class `c`; `tc` is live.
        unsafe { give_back(tc, c, p) };
        nmalloc.store(nmalloc.load(Relaxed) - 1, Relaxed);
    }
    let k = nmalloc.load(Relaxed);
    // SAFETY: per the contract; a field only the owner touches.
    unsafe { (*tc).prof_next[c] = k + (bytes.max(1) as u64).div_ceil(size as u64) };
    q
}

/// The class of the page runs that sampled small objects are moved to:
/// the smallest large class (as jemalloc does).
const PROMOTED: usize = NSMALL;

/// A run of class [`PROMOTED`] for a sampled small object: a freed
/// sample's ([`super::prof::stashed_run`]) or a new one from the samples'
/// arena, whose runs lie in a range of their own ([`super::samples`]);
/// counted; null when there is none (the object is then not sampled).
fn promote(_size: usize) -> *mut u8 {
    let Some(arena) = super::samples::arena() else {
        return null_mut();
    };
    let p = match super::prof::stashed_run() {
        Some(p) => p,
        None => {
            let pages = CLASS_SIZE[PROMOTED] / PAGE;
            match arena.alloc_large(pages, PAGE, PROMOTED, 0) {
                Some((p, _)) => p,
                None => return null_mut(),
            }
        }
    };
    count_stats(PROMOTED, true, arena);
    p
}

/// Frees `p`, a sampled small object in a page run of its own: the
/// profiler forgets it, and the run is kept for the next sample
/// ([`super::prof::stash_run`]) or freed.
///
/// # Safety
/// `p` is such a live sample, freed by the caller.
unsafe fn free_sample(p: *mut u8) {
    super::prof::on_free(p);
    if super::prof::stash_run(p) {
        // SAFETY: the run's arena lives forever.
        count_stats(PROMOTED, false, unsafe { chunk::owner_arena(p) });
    } else {
        // SAFETY: per the contract, a large run of ours.
        unsafe { super::free::free_run_or_huge(p, true) };
    }
}

/// Puts `p`, an object of class `c` popped but not handed out, back: on
/// the stack of the live cache `tc` if it has room, else to its arena.
/// Not counted (it was not).
///
/// # Safety
/// `tc` is the calling thread's live cache; `p` an unused object of class `c`.
unsafe fn give_back(tc: *mut Tcache, c: usize, p: *mut u8) {
    // SAFETY: per the contract.
    let bin = unsafe { &(*tc).counts[c] };
    let n = bin.n.load(Relaxed);
    if (n as u16) < bin.max.load(Relaxed) {
        // SAFETY: per the contract; `n < max <= SLOTS`, the top slot (see
        // [`reclaim`]).
        unsafe { slot(tc, c, n as usize).write(p) };
        bin.n.store(n + 1, Relaxed);
    } else {
        // SAFETY: per the contract.
        unsafe { flush(c, &[p]) };
    }
}

/// The rest of the free fast path when the profiler is on, for `p` in the
/// samples' range ([`super::samples`]) just pushed on the live cache `tc`'s
/// stack of class `c` at height `n`: a sampled small object, which lives
/// in a page run of its own ([`prof_due`]), is taken off the stack again
/// and freed as what it is; anything else is counted. (Large-class blocks
/// are reported to the profiler on their own path,
/// [`super::free::free_run_or_huge`].)
///
/// # Safety
/// `tc` is the calling thread's live cache; `p` an object of this
/// allocator freed as class `c`, now at `stacks[c][n]`.
#[cold]
#[inline(never)]
unsafe fn prof_free(tc: *mut Tcache, c: usize, p: *mut u8, n: u32) {
    // SAFETY: forwarded contract.
    if unsafe { freed_sample(c, p) } {
        // SAFETY: per the contract; nothing above touched the stack.
        unsafe { (*tc).counts[c].n.store(n, Relaxed) };
        // SAFETY: a sample, freed here.
        unsafe { free_sample(p) };
    } else {
        // SAFETY: per the contract.
        bump(unsafe { &(*tc).nfree[c] });
    }
}

/// Whether `p`, freed as class `c` with the profiler on, is a sampled
/// small object in a page run of its own, which the caller must free as
/// such ([`free_sample`]).
///
/// # Safety
/// `p` is a live object of this allocator freed as class `c`.
#[inline(always)]
unsafe fn freed_sample(c: usize, p: *mut u8) -> bool {
    // Every sample is in the range and the filter.
    c < NSMALL
        && super::samples::holds(p)
        && super::prof::maybe_sampled(p)
        // SAFETY: forwarded contract.
        && unsafe { super::free::small_class_at(p) }.is_none()
}

#[cold]
fn alloc_slow(c: usize) -> *mut u8 {
    let Some(arena) = arena() else {
        return null_mut();
    };
    // `arena()` set the thread up if it was not.
    if let Some(tc) = own_current() {
        // SAFETY: the stacks are ours until `disown`.
        let p = unsafe { alloc_cached(tc, arena, c) };
        // SAFETY: as above.
        unsafe { disown(tc) };
        if let Some(p) = p {
            return p;
        }
    }
    let p = alloc::alloc_direct(arena, c);
    if p.is_null() {
        return p;
    }
    if init::events() < 0 {
        // No cache to count in: the thread's own counter, as other paths.
        let promoting = (c < NSMALL).then_some(promote as super::prof::Promote);
        let q = super::prof::on_alloc_with(p, CLASS_SIZE[c], promoting);
        if q != p {
            // SAFETY: `p` is an unused object of class `c`.
            unsafe { flush(c, &[p]) };
            return q;
        }
    }
    count_stats(c, true, arena);
    p
}

/// The allocation slow path through the cache: a pop below the low-water
/// mark (which it lowers), else a GC tick and a refill of the class from
/// `arena`, the thread's (its depot first, then its bin). `None` when the
/// class has no room in the cache (not cached, or no budget left): the
/// caller allocates from the arena directly. `Some(null)` when memory runs
/// out.
///
/// # Safety
/// `tc` is the calling thread's live cache, owned ([`own`]).
unsafe fn alloc_cached(tc: *mut Tcache, arena: &'static Arena, c: usize) -> Option<*mut u8> {
    // SAFETY: per the contract, the stacks and bounds are ours alone.
    unsafe {
        let bin = &(*tc).counts[c];
        (*tc).allocates[c] = true;
        let n = bin.n.load(Relaxed);
        if n > 0 {
            // The fast path stopped at the low-water mark: lower it.
            let n = n - 1;
            bin.low.store(n as u16, Relaxed);
            bin.n.store(n, Relaxed);
            let p = slot(tc, c, n as usize).read();
            return Some(counted(tc, c, p));
        }
        tick(tc);
        if c >= NSMALL || grow(tc, c) == 0 {
            return None;
        }
        let items = &mut *addr_of_mut!((*tc).stacks[c]);
        let want = (bin.max.load(Relaxed) / 2).max(1) as usize;
        let busy = arena.bin_busy(c);
        // The depot first (a copy of what another stack parked), then the
        // slabs.
        let (got, shared) = arena.refill(c, tc as usize, &mut items[..want]);
        if shared {
            interleaved(tc, arena, busy);
        }
        if got == 0 {
            return Some(null_mut());
        }
        // The stack was empty, so `low` is 0 and stays so.
        let n = got - 1;
        bin.n.store(n as u32, Relaxed);
        let p = items[n];
        if init::events() < 0 {
            return Some(prof_alloc(tc, c, p));
        }
        count_stats(c, true, arena);
        Some(p)
    }
}

/// Frees `p` of cached class `c`.
///
/// # Safety
/// `c < NCACHED`; `p` is a live object of class `c` from this allocator.
#[inline(always)]
pub(crate) unsafe fn free(p: *mut u8, c: usize) {
    // SAFETY: per the contract; the bounds checks of `counts[c]` and
    // `nfree[c]` go.
    unsafe { core::hint::assert_unchecked(c < NCACHED) };
    let tc = current();
    if live(tc) {
        // One call's accesses stay apart from the next's (see [`reclaim`]).
        light_fence();
        // SAFETY: a live cache is owned by this thread.
        let bin = unsafe { &(*tc).counts[c] };
        let n = bin.n.load(Relaxed);
        if (n as u16) < bin.max.load(Relaxed) {
            // SAFETY: as above; `n < max <= SLOTS`; the reclaim reads only
            // slots below the height it read, less one.
            unsafe { slot(tc, c, n as usize).write(p) };
            bin.n.store(n + 1, Relaxed);
            let e = init::events();
            if e > 0 {
                // SAFETY: as above.
                bump(unsafe { &(*tc).nfree[c] });
            } else if e < 0 {
                // Only an object in the samples' range can be a sampled
                // one: no lookup for the others.
                if super::samples::holds(p) {
                    // SAFETY: as above; `p` is ours, now at `stacks[c][n]`.
                    return unsafe { prof_free(tc, c, p, n) };
                }
                // SAFETY: as above.
                bump(unsafe { &(*tc).nfree[c] });
            }
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { free_slow(p, c) }
}

#[cold]
unsafe fn free_slow(p: *mut u8, c: usize) {
    if current().is_null() {
        // A thread whose first call is a free (a consumer that only frees
        // what others allocated) gets its cache here, or every one of its
        // frees would take a bin lock.
        setup();
        if live(current()) {
            // SAFETY: forwarded contract; the new cache has room (or does
            // not cache class `c`, which lands below with a live cache).
            return unsafe { free(p, c) };
        }
    }
    // SAFETY: forwarded contract.
    if init::events() < 0 && unsafe { freed_sample(c, p) } {
        // SAFETY: a sample, freed here.
        unsafe { free_sample(p) };
        return;
    }
    if let Some(tc) = own_current() {
        // SAFETY: the stacks are ours until `disown`; forwarded contract.
        let kept = unsafe { free_cached(tc, c, p) };
        // SAFETY: as above.
        unsafe { disown(tc) };
        if kept {
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe {
        let owner = chunk::owner_arena(p);
        count_stats(c, false, owner);
        flush(c, &[p]);
    }
}

/// The free slow path through the cache: a GC tick, then `p` goes on the
/// stack of class `c`, after the class's bound grew (if it can) or, when
/// the stack is full at its bound, half of it (all of it for a class the
/// thread does not allocate) went back. False when the class has no room
/// in the cache (not cached, or no budget left): the caller frees to the
/// arena.
///
/// # Safety
/// `tc` is the calling thread's live cache, owned ([`own`]); `p` is a live
/// object of class `c` from this allocator.
unsafe fn free_cached(tc: *mut Tcache, c: usize, p: *mut u8) -> bool {
    tick(tc);
    // SAFETY: per the contract, the stacks and bounds are ours alone.
    unsafe {
        let max = grow(tc, c);
        if max == 0 {
            return false;
        }
        let bin = &(*tc).counts[c];
        if bin.n.load(Relaxed) == u32::from(max) {
            // Full at its bound: half goes back, or all of it when the
            // thread does not allocate the class (no pop would reach the
            // rest).
            let k = if (*tc).allocates[c] {
                (max / 2).max(1)
            } else {
                max
            };
            // `k <= max == n`.
            drop_newest(tc, c, k);
        }
        let n = bin.n.load(Relaxed);
        // `n < max <= SLOTS`.
        slot(tc, c, n as usize).write(p);
        bin.n.store(n + 1, Relaxed);
        count_stats(c, false, &*(*tc).arena);
    }
    true
}

/// Raises class `c`'s bound toward its cap from what is left of the
/// thread's byte budget. A class without a grant that finds the budget
/// spent halves the largest grant of another class until one object fits
/// (or no other class holds a grant). Returns the bound. A class grows only
/// when its stack ran empty or full; the GC shrinks the grants of classes
/// that hold objects no allocation reaches. A class the thread has not
/// allocated (`allocates`) grows no further than [`FREE_ONLY_BYTES`].
///
/// # Safety
/// `tc` is the calling thread's live cache.
#[inline(always)]
unsafe fn grow(tc: *mut Tcache, c: usize) -> u16 {
    // SAFETY: per the contract; the owner alone touches these fields.
    unsafe {
        let max = (*tc).counts[c].max.load(Relaxed);
        // At its cap (the common case, inline: the full-stack event of the
        // free path takes it every time).
        if max >= (*tc).cap[c] {
            return max;
        }
        grow_below_cap(tc, c)
    }
}

/// [`grow`] for a class below its cap.
///
/// # Safety
/// As for [`grow`].
#[inline(never)]
unsafe fn grow_below_cap(tc: *mut Tcache, c: usize) -> u16 {
    let size = CLASS_SIZE[c];
    // SAFETY: per the contract; the owner alone touches these fields.
    unsafe {
        let bin = &(*tc).counts[c];
        let max = usize::from(bin.max.load(Relaxed));
        let mut cap = usize::from((*tc).cap[c]);
        if !(*tc).allocates[c] {
            cap = cap.min((FREE_ONLY_BYTES / size).max(FREE_ONLY_MIN));
        }
        let cap = cap.min((*tc).budget / size);
        if max >= cap {
            return max as u16;
        }
        // Only a first grant takes from other classes: growing by stealing
        // when the budget is spent made classes of a mixed workload take
        // from each other at every miss (4.5x the instructions of
        // hotpool-bench's churn kernel against 1.5x without).
        if max == 0 {
            while (*tc).budget - (*tc).granted < size && steal(tc, c) {}
        }
        let new = cap.min(max + ((*tc).budget - (*tc).granted) / size);
        if new > max {
            (*tc).granted += (new - max) * size;
            bin.max.store(new as u16, Relaxed);
        }
        new.max(max) as u16
    }
}

/// Halves the largest grant of a class other than `c`, flushing the objects
/// above its new bound; false if no other class holds a grant.
///
/// # Safety
/// `tc` is the calling thread's live cache.
unsafe fn steal(tc: *mut Tcache, c: usize) -> bool {
    // SAFETY: per the contract.
    let counts = unsafe { &(*tc).counts };
    let mut victim = None;
    let mut most = 0;
    for (v, bin) in counts.iter().enumerate() {
        let bytes = usize::from(bin.max.load(Relaxed)) * CLASS_SIZE[v];
        if v != c && bytes > most {
            (victim, most) = (Some(v), bytes);
        }
    }
    let Some(v) = victim else {
        return false;
    };
    let bin = &counts[v];
    let max = bin.max.load(Relaxed);
    let new = max / 2;
    let n = bin.n.load(Relaxed);
    if n > u32::from(new) {
        // SAFETY: per the contract; `n - new <= n`.
        unsafe { drop_oldest(tc, v, n as u16 - new) };
    }
    bin.max.store(new, Relaxed);
    // SAFETY: per the contract.
    unsafe { (*tc).granted -= usize::from(max - new) * CLASS_SIZE[v] };
    true
}

/// Flushes the `k <= n` oldest objects (the bottom of the stack) of class
/// `c`; the low-water mark follows the height down.
///
/// # Safety
/// `tc` is the calling thread's live cache.
unsafe fn drop_oldest(tc: *mut Tcache, c: usize, k: u16) {
    // SAFETY: per the contract; other threads read just the counters.
    let (bin, items) = unsafe { (&(*tc).counts[c], &mut (*tc).stacks[c]) };
    let n = bin.n.load(Relaxed) as usize;
    let k = k as usize;
    debug_assert!(k <= n);
    // SAFETY: cached objects are unused.
    unsafe { flush(c, &items[..k]) };
    items.copy_within(k..n, 0);
    bin.n.store((n - k) as u32, Relaxed);
    bin.low
        .store(bin.low.load(Relaxed).min((n - k) as u16), Relaxed);
}

/// Every [`GC_EVENTS`] slow-path events: the GC event; then start the
/// background purger if it is wanted and not running yet (here, where no
/// lock is held), else purge expired dirty pages of our arena. The count
/// is inline, the event out of line.
#[inline(always)]
fn tick(tc: *mut Tcache) {
    // SAFETY: `tc` is the calling thread's live cache; `events` is only
    // touched by it (the purger reads it).
    unsafe {
        let events = (*tc).events.load(Relaxed).wrapping_add(1);
        (*tc).events.store(events, Relaxed);
        if events % GC_EVENTS == 0 {
            gc_event(tc);
        }
    }
}

/// The event of [`tick`].
#[inline(never)]
fn gc_event(tc: *mut Tcache) {
    // SAFETY: `tc` is the calling thread's live cache; `arena` is only
    // touched by it.
    unsafe {
        gc(tc);
        if !super::purge::start_lazily() {
            let now = crate::sys::now_ms();
            (*(*tc).arena).decay_inline(now);
            huge::huge_purge(now);
        }
    }
}

/// A refill from `arena`, the thread's, came from a bin that another
/// thread refilled from since this one last did ([`Arena::refill`]): two
/// threads allocate from the same slabs. Their objects interleave, and
/// every write to one thread's object may take a cache line from the
/// other's core (glibc's malloc-thread shape with two threads took
/// 1.10-1.20 s of CPU in one arena, 0.56-0.58 s in two); and when the
/// refill found the bin lock held (`busy`), they wait for each other. When
/// the weight of such refills within a GC period reaches [`MOVE_AT`] (a
/// busy one weighs [`BUSY_WEIGHT`]), the thread moves to another arena
/// ([`init::move_thread`]), opening one if any is closed (past one arena
/// per CPU only when this refill was busy).
///
/// Only refills count, not a lock held by threads that only free into the
/// bin: they free this thread's objects, and would follow it to the next
/// arena. Until this rule the seed market-data fan-out's publisher, which
/// shares its arena with subscribers that allocate a few objects of their
/// own, moved at the subscribers' frees, and each move left the
/// subscribers' frees of its earlier objects in the depots of the arena it
/// left: with 4 subscribers, 2.4-3.9 MiB of active pages after 600 000
/// messages, against 1.4 MiB now. The objects a moving thread holds stay
/// where they are: each goes back to the arena that owns it.
///
/// # Safety
/// `tc` is the calling thread's live cache, attached to `arena`.
#[cold]
unsafe fn interleaved(tc: *mut Tcache, arena: &'static Arena, busy: bool) {
    // SAFETY: per the contract; the owner alone touches these fields.
    unsafe {
        (*tc).interleaved += if busy { BUSY_WEIGHT } else { 1 };
        if (*tc).interleaved >= MOVE_AT {
            (*tc).interleaved = 0;
            if let Some(to) = init::move_thread(arena, busy) {
                (*tc).arena = to;
            }
        }
    }
}

/// The incremental GC event: every class gives back 3/4 of the objects that
/// stayed below its low-water mark since the last event (rounded up), and
/// its grant shrinks by as much; then the marks restart at the heights;
/// the weight of interleaved refills restarts at 0.
///
/// # Safety
/// `tc` is the calling thread's live cache.
unsafe fn gc(tc: *mut Tcache) {
    // SAFETY: per the contract.
    unsafe { (*tc).interleaved = 0 };
    for (c, &size) in CLASS_SIZE.iter().enumerate().take(NCACHED) {
        // SAFETY: per the contract.
        let bin = unsafe { &(*tc).counts[c] };
        let low = bin.low.load(Relaxed);
        if low > 0 {
            let k = low - low / 4;
            // SAFETY: per the contract; `k <= low <= n`.
            unsafe { drop_oldest(tc, c, k) };
            // `k <= n <= max`.
            bin.max.store(bin.max.load(Relaxed) - k, Relaxed);
            // SAFETY: per the contract.
            unsafe { (*tc).granted -= usize::from(k) * size };
        }
        bin.low.store(bin.n.load(Relaxed) as u16, Relaxed);
    }
}

/// The free path's event when a stack is full: the `k <= n` newest objects
/// of class `c` (the top of the stack: no move of the rest) go back,
/// parked whole in the depot of the arena that owns them all
/// ([`Arena::depot_park`]) if there is one and they fit, else to their
/// slabs. The thread's next refill of the class takes them back first.
///
/// # Safety
/// `tc` is the calling thread's live cache.
unsafe fn drop_newest(tc: *mut Tcache, c: usize, k: u16) {
    // SAFETY: per the contract; other threads read just the counters.
    let (bin, items) = unsafe { (&(*tc).counts[c], &(*tc).stacks[c]) };
    let n = bin.n.load(Relaxed) as usize;
    let k = k as usize;
    debug_assert!(k <= n);
    let batch = &items[n - k..n];
    // SAFETY: cached objects are unused objects of class `c` of ours.
    unsafe {
        if !(c < NSMALL && park(c, batch)) {
            flush(c, batch);
        }
    }
    bin.n.store((n - k) as u32, Relaxed);
    bin.low
        .store(bin.low.load(Relaxed).min((n - k) as u16), Relaxed);
}

/// Parks `batch`, objects of small class `c`, whole in the depot of the
/// arena that owns them all, if one does and they fit; nudges the purger
/// when the depot was full. The common batch lies in one chunk: the depot
/// of the first object's arena takes it, checking the spread as it copies
/// ([`Arena::depot_park`]); a batch over several chunks is checked chunk
/// by chunk first ([`single_owner`]).
///
/// # Safety
/// Every pointer is an unused object of class `c` from this allocator.
unsafe fn park(c: usize, batch: &[*mut u8]) -> bool {
    let Some(&first) = batch.first() else {
        return true;
    };
    // SAFETY: per the contract.
    let a = unsafe { chunk::owner_arena(first) };
    // SAFETY: per the contract; `a` owns `first`, and owns every object
    // within its chunk.
    let mut done = unsafe { a.depot_park(c, batch, chunk::CHUNK - 1) };
    if done == Park::Spread {
        // SAFETY: per the contract.
        done = match unsafe { single_owner(batch) } {
            // SAFETY: `a` owns every object of the batch.
            Some(a) => unsafe { a.depot_park(c, batch, usize::MAX) },
            None => return false,
        };
    }
    if done == Park::Full {
        super::purge::nudge();
    }
    done == Park::Parked
}

/// The arena that owns every object of `ptrs`, if one does (and `ptrs` is
/// not empty). Reads a chunk header only where the chunk changes.
///
/// # Safety
/// Every pointer is an object in a chunk of this allocator.
unsafe fn single_owner(ptrs: &[*mut u8]) -> Option<&'static Arena> {
    let &first = ptrs.first()?;
    // SAFETY: per the contract.
    let a = unsafe { chunk::owner_arena(first) };
    let mut last = first as usize & !(chunk::CHUNK - 1);
    for &p in &ptrs[1..] {
        let base = p as usize & !(chunk::CHUNK - 1);
        if base != last {
            // SAFETY: per the contract.
            if !core::ptr::eq(unsafe { chunk::owner_arena(p) }, a) {
                return None;
            }
            last = base;
        }
    }
    Some(a)
}

/// Returns objects of class `c` to their owning arenas.
///
/// # Safety
/// Every pointer is an unused object of class `c` from this allocator.
unsafe fn flush(c: usize, ptrs: &[*mut u8]) {
    if c >= NSMALL {
        for &p in ptrs {
            // SAFETY: per the contract, `p` is a large run no one uses.
            unsafe {
                if let Owner::Run(m) = lookup(p) {
                    chunk::owner_arena(p).free_large(m);
                }
            }
        }
        return;
    }
    let mut start = 0;
    while start < ptrs.len() {
        // SAFETY: per the contract the pointers are ours.
        let a: *const Arena = unsafe { chunk::owner_arena(ptrs[start]) };
        let mut end = start + 1;
        // SAFETY: as above.
        while end < ptrs.len() && core::ptr::eq(unsafe { chunk::owner_arena(ptrs[end]) }, a) {
            end += 1;
        }
        // SAFETY: objects of class `c` owned by arena `a`.
        unsafe { (*a).bin_flush(c, &ptrs[start..end]) };
        start = end;
    }
}

/// Empties the calling thread's cache into the arenas (for `trim`).
/// (A cache the purger is reclaiming is left to it.)
pub(crate) fn flush_current() {
    if let Some(tc) = own_current() {
        // SAFETY: owned.
        unsafe {
            flush_all(tc);
            disown(tc);
        }
    }
}

/// # Safety
/// `tc` is the calling thread's cache, owned ([`own`]).
unsafe fn flush_all(tc: *mut Tcache) {
    // SAFETY: per the contract; other threads read just the counters.
    let (counts, stacks) = unsafe { (&(*tc).counts, &(*tc).stacks) };
    for (c, (bin, items)) in counts.iter().zip(stacks).enumerate() {
        let n = bin.n.load(Relaxed) as usize;
        bin.n.store(0, Relaxed);
        bin.low.store(0, Relaxed);
        // SAFETY: cached objects are unused.
        unsafe { flush(c, &items[..n]) };
    }
}

/// Takes the cache's stacks for a slow path of its owning thread: true
/// when they are the caller's until [`disown`]; false while the purger is
/// reclaiming them (the caller then goes to the arena and leaves the
/// stacks alone; it never waits for the purger). After a reclaim, moves
/// what is left of each stack down first ([`compact`]).
///
/// # Safety
/// `tc` is the calling thread's live cache.
#[inline]
unsafe fn own(tc: *mut Tcache) -> bool {
    // SAFETY: per the contract, `tc` is live.
    let state = unsafe { &(*tc).state };
    match state.compare_exchange(IDLE, OWNER, Acquire, Relaxed) {
        Ok(_) => true,
        Err(RECLAIMED) => {
            // Only the owner leaves RECLAIMED: this exchange succeeds.
            if state
                .compare_exchange(RECLAIMED, OWNER, Acquire, Relaxed)
                .is_err()
            {
                return false;
            }
            // SAFETY: per the contract, and owned now.
            unsafe { compact(tc) };
            true
        }
        Err(_) => false,
    }
}

/// The calling thread's cache, owned ([`own`]) for a slow path, if it has
/// one and the purger is not reclaiming it.
#[inline]
fn own_current() -> Option<*mut Tcache> {
    let tc = current();
    // SAFETY: a live cache is owned by this thread.
    (live(tc) && unsafe { own(tc) }).then_some(tc)
}

/// Ends what [`own`] began: the purger may reclaim the cache again.
///
/// # Safety
/// `tc` is the calling thread's live cache, owned.
#[inline]
unsafe fn disown(tc: *mut Tcache) {
    // SAFETY: per the contract, `tc` is live.
    unsafe { (*tc).state.store(IDLE, Release) };
}

/// After a reclaim: each stack's objects above the `taken` ones move down
/// to the bottom, every bound becomes the height (the grants shrink to
/// what is held; the slow paths grow them again as the thread works), and
/// the low-water marks restart at 0.
///
/// # Safety
/// `tc` is the calling thread's live cache, owned, after a reclaim.
#[cold]
unsafe fn compact(tc: *mut Tcache) {
    let mut granted = 0;
    for (c, &size) in CLASS_SIZE.iter().enumerate().take(NCACHED) {
        // SAFETY: per the contract, the stacks and bounds are ours alone;
        // the reclaim wrote `taken` before its release of the state, which
        // `own` acquired.
        unsafe {
            let bin = &(*tc).counts[c];
            let taken = (*tc).taken[c].load(Relaxed) as usize;
            let n = bin.n.load(Relaxed) as usize;
            if taken > 0 {
                (*tc).stacks[c].copy_within(taken..n, 0);
                (*tc).taken[c].store(0, Relaxed);
            }
            let left = n - taken;
            bin.n.store(left as u32, Relaxed);
            bin.max.store(left as u16, Relaxed);
            bin.low.store(0, Relaxed);
            granted += left * size;
        }
    }
    // SAFETY: as above.
    unsafe { (*tc).granted = granted };
}

/// Whether the purger can reclaim caches (`membarrier`; learnt on the
/// first round).
static NO_BARRIER: AtomicBool = AtomicBool::new(false);

/// Bytes of objects reclaimed from quiet threads' caches, cumulative.
static RECLAIMED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes of objects the purger reclaimed from quiet threads' caches so far.
pub(crate) fn reclaimed_bytes() -> u64 {
    RECLAIMED_BYTES.load(Relaxed)
}

/// The background purger's round: reclaims the cache of every thread that
/// took no slow path for `decay_ms` (since the previous round when 0;
/// never when negative) and holds objects ([`reclaim`]). A thread blocked
/// after a burst, which runs none of our code, so holds nothing for long.
pub(crate) fn reclaim_quiet(now: u64, decay_ms: i64) {
    if decay_ms < 0 || NO_BARRIER.load(Relaxed) {
        return;
    }
    if !crate::sys::membarrier() {
        NO_BARRIER.store(true, Relaxed);
        return;
    }
    // Caches are never unlinked and a cache's link never changes once it
    // is in the list: the walk needs the lock only to read the head.
    let mut tc = REGISTRY.lock().all;
    while !tc.is_null() {
        // SAFETY: caches live forever; `quiet` reads atomics (the
        // `watch_` ones are the purger's alone); the purger is in none of
        // its own cache's paths here (if it has a cache at all).
        unsafe {
            if quiet(tc, now, decay_ms) {
                reclaim(tc);
            }
            tc = (*tc).next_all;
        }
    }
}

/// Whether `tc`'s thread took no slow path for `decay_ms` (the first look
/// at a cache starts its watch) and it holds more than it would keep.
///
/// # Safety
/// `tc` is a cache of the registry; called by the purger alone.
unsafe fn quiet(tc: *mut Tcache, now: u64, decay_ms: i64) -> bool {
    // SAFETY: per the contract (atomics).
    let t = unsafe { &*tc };
    let events = t.events.load(Relaxed);
    if events != t.watch_events.load(Relaxed) || t.watch_since.load(Relaxed) == 0 {
        t.watch_events.store(events, Relaxed);
        t.watch_since.store(now.max(1), Relaxed);
        return false;
    }
    now.saturating_sub(t.watch_since.load(Relaxed)) >= decay_ms as u64
        && t.state.load(Relaxed) == IDLE
        && t.counts.iter().any(|bin| bin.n.load(Relaxed) > 1)
}

/// Takes the objects of `tc`, another thread's cache, back to their arenas,
/// all but the top one of each stack, with no cost on the owner's fast
/// paths. The protocol:
///
/// 1. The state goes from [`IDLE`] to [`RECLAIMING`] (else the owner is in
///    a slow path, or the cache is retired: nothing to do). From here the
///    owner's slow paths leave the stacks alone ([`own`]).
/// 2. Every bound is set so that no fast path succeeds: the low-water mark
///    to [`BLOCKED`] (no pop), the free bound to 0 (no push).
/// 3. `membarrier` ([`crate::sys::membarrier`]): the owner, if running,
///    passes a full barrier. Every fast-path call it starts after that
///    barrier reads the new bounds and takes the slow path; the one call
///    that may have read the old ones before it (and may stay preempted
///    there for any time) pops the top object or pushes above it, and
///    nothing else: the fast paths' compiler fence
///    ([`crate::sync::light_fence`]) keeps one call's loads from moving
///    above the previous call's store of the height.
/// 4. With `n` the height read now, the bottom `n - 1` objects are taken
///    (the top one is left for that call) and returned to their arenas;
///    their count goes to `taken`, and the state to [`RECLAIMED`]
///    (release). The owner's next slow path moves the rest down and sets
///    the bounds anew ([`compact`]).
///
/// The owner pays nothing for this on its fast paths (a compiler fence,
/// and the same loads and stores as before, now of atomics); a slow path
/// pays an uncontended compare-exchange on its own cache's line.
///
/// # Safety
/// `tc` is a cache of the registry; if it is the caller's own, the caller
/// is in none of its paths.
unsafe fn reclaim(tc: *mut Tcache) {
    // SAFETY: per the contract, a cache that lives forever.
    let t = unsafe { &*tc };
    if t.state
        .compare_exchange(IDLE, RECLAIMING, Acquire, Relaxed)
        .is_err()
    {
        return;
    }
    let mut bounds = [(0, 0); NCACHED];
    for (bin, saved) in t.counts.iter().zip(&mut bounds) {
        *saved = (bin.low.load(Relaxed), bin.max.load(Relaxed));
        bin.low.store(BLOCKED, Relaxed);
        bin.max.store(0, Relaxed);
    }
    if !crate::sys::membarrier() {
        // No barrier after all: nothing was taken, the bounds go back.
        for (bin, &(low, max)) in t.counts.iter().zip(&bounds) {
            bin.low.store(low, Relaxed);
            bin.max.store(max, Relaxed);
        }
        NO_BARRIER.store(true, Relaxed);
        t.state.store(IDLE, Release);
        return;
    }
    for (c, bin) in t.counts.iter().enumerate() {
        let k = bin.n.load(Relaxed).saturating_sub(1) as usize;
        if k == 0 {
            continue;
        }
        let mut objs = [null_mut(); SLOTS];
        for (i, o) in objs[..k].iter_mut().enumerate() {
            // SAFETY: slots below the height less one are neither read nor
            // written by the owner until it sees RECLAIMED (step 3); the
            // barrier made its writes to them visible.
            *o = unsafe { slot(tc, c, i).read() };
        }
        // Recorded first: a `fork` in between leaves the child (whose
        // thread settles the cache, [`fork_child`]) without these objects,
        // never with them both in its stack and in a bin.
        t.taken[c].store(k as u16, Relaxed);
        // SAFETY: cached objects are unused objects of class `c`, now ours.
        unsafe { flush(c, &objs[..k]) };
        RECLAIMED_BYTES.fetch_add((k * CLASS_SIZE[c]) as u64, Relaxed);
    }
    t.state.store(RECLAIMED, Release);
}

/// The `pthread_key` destructor: flush, retire the cache, mark the thread.
///
/// # Safety
/// `arg` is the calling thread's cache, set by `setup`.
pub(crate) unsafe extern "C" fn thread_exit(arg: *mut libc::c_void) {
    let tc = arg.cast::<Tcache>();
    if !live(tc) {
        return;
    }
    super::tls::set(dead().cast());
    // SAFETY: per the contract the cache is ours; no one else writes it.
    unsafe {
        let arena = (*tc).arena;
        // `try_with`: loom's thread-locals are gone when the exit hook runs
        // (std's, const and without `Drop`, never are).
        let _ = ARENA.try_with(|c| c.set(init::arena_index(arena) as u32 + 1));
        init::detach_thread(&*arena);
        // The purger may be taking objects: wait for it (a retired cache
        // stays OWNER, so it never comes back; `make` gives a reused one
        // to its new thread).
        while !own(tc) {
            crate::sys::yield_now();
        }
        flush_all(tc);
        let mut reg = REGISTRY.lock();
        for c in 0..NCLASSES {
            reg.retired_nmalloc[c] += (*tc).nmalloc[c].swap(0, Relaxed);
            reg.retired_nfree[c] += (*tc).nfree[c].swap(0, Relaxed);
        }
        (*tc).next_free = reg.free;
        reg.free = tc;
    }
}

/// Adds every cache's counters (and retired ones) into the given arrays.
pub(crate) fn sum_counts(nmalloc: &mut [u64; NCLASSES], nfree: &mut [u64; NCLASSES]) {
    let reg = REGISTRY.lock();
    for c in 0..NCLASSES {
        nmalloc[c] += reg.retired_nmalloc[c];
        nfree[c] += reg.retired_nfree[c];
    }
    let mut tc = reg.all;
    while !tc.is_null() {
        // SAFETY: caches live forever; counters are atomics.
        unsafe {
            for c in 0..NCLASSES {
                nmalloc[c] += (*tc).nmalloc[c].load(Relaxed);
                nfree[c] += (*tc).nfree[c].load(Relaxed);
            }
            tc = (*tc).next_all;
        }
    }
}

/// Adds the free objects in every thread's cache, per class, into `out`.
pub(crate) fn sum_cached(out: &mut [u64; NCLASSES]) {
    let reg = REGISTRY.lock();
    let mut tc = reg.all;
    while !tc.is_null() {
        // SAFETY: caches live forever; the heights are atomics.
        unsafe {
            for (c, bin) in (*tc).counts.iter().enumerate() {
                // Less what a reclaim took that the owner has not seen yet.
                let taken = (*tc).taken[c].load(Relaxed);
                out[c] += u64::from(bin.n.load(Relaxed).saturating_sub(taken.into()));
            }
            tc = (*tc).next_all;
        }
    }
}

/// In the child of a `fork`: the purger is gone, so a reclaim of the
/// forking thread's cache that it had begun ends here, as taken so far
/// (the next slow path settles the cache); else the thread would go to
/// the arena for good.
pub(crate) fn fork_child() {
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache is this thread's; the child has no other.
        let state = unsafe { &(*tc).state };
        let _ = state.compare_exchange(RECLAIMING, RECLAIMED, Acquire, Relaxed);
    }
}

/// Under loom: reclaims every cache the purger could ([`reclaim`]), quiet
/// or not, as a purger round would.
#[cfg(loom)]
pub(crate) fn loom_reclaim_all() {
    let mut tc = REGISTRY.lock().all;
    while !tc.is_null() {
        // SAFETY: caches live forever; the calling modelled thread is in
        // none of their paths.
        unsafe {
            reclaim(tc);
            tc = (*tc).next_all;
        }
    }
}

/// Under loom: forgets the previous execution's caches.
#[cfg(loom)]
pub(crate) fn loom_reset() {
    *REGISTRY.lock() = Registry {
        all: null_mut(),
        free: null_mut(),
        retired_nmalloc: [0; NCLASSES],
        retired_nfree: [0; NCLASSES],
    };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A `fork` that lands in the middle of the purger's reclaim of the
    /// forking thread's cache: the child's handler ends the reclaim as
    /// taken so far, and the thread's next slow path settles the cache and
    /// caches again (without the handler, the child's thread would go to
    /// the arena for good).
    #[test]
    fn fork_child_ends_a_reclaim_of_this_thread_s_cache() {
        std::thread::spawn(|| {
            let c = CLASS_SIZE.iter().position(|&s| s == 48).unwrap();
            // SAFETY: the 48-byte class is small, so cached.
            let objs: Vec<_> = (0..8).map(|_| unsafe { alloc(c) }).collect();
            for &p in &objs {
                // SAFETY: allocated above as class `c`, freed once.
                unsafe { free(p, c) };
            }
            let tc = current();
            assert!(live(tc));
            // SAFETY: this thread's live cache; what the purger does in
            // its steps 1 and 2 (no objects taken yet), done by the owner
            // itself outside any of its paths.
            let t = unsafe { &*tc };
            let held = t.counts[c].n.load(Relaxed);
            assert!(held >= 2);
            t.state.store(RECLAIMING, Relaxed);
            for bin in &t.counts {
                bin.low.store(BLOCKED, Relaxed);
                bin.max.store(0, Relaxed);
            }
            fork_child();
            assert_eq!(t.state.load(Relaxed), RECLAIMED);
            // The next call settles the cache and pops from it.
            // SAFETY: as above.
            let p = unsafe { alloc(c) };
            assert!(objs.contains(&p), "served from the cache");
            assert_eq!(t.state.load(Relaxed), IDLE);
            assert_eq!(t.counts[c].n.load(Relaxed), held - 1);
            // SAFETY: allocated above, freed once.
            unsafe { free(p, c) };
        })
        .join()
        .unwrap();
    }
}
