//! Thread caches: per thread, per cached class, a stack of free objects in
//! front of the arenas (jemalloc's tcache).
//!
//! * alloc pops the stack; when empty, half a stack is filled from the
//!   thread's arena bin under the bin's lock (small) or one run is taken
//!   (large classes up to `tcache_max`).
//! * free pushes onto the *freeing* thread's stack, whichever thread
//!   allocated; when full, the older half is flushed to the owning arenas'
//!   bins, each under that bin's lock. No global lock anywhere.
//! * counters are per thread, written with relaxed load+store (no shared
//!   read-modify-write) and summed by [`super::stats()`] on read.
//! * one thread-local word ([`super::tls`]: initial-exec, two instructions,
//!   no destructor registration that could allocate) points to the cache; a
//!   `pthread_key`
//!   destructor flushes the cache at thread exit and marks the thread
//!   dead ([`dead`]): later allocations from that thread (other TLS destructors)
//!   go straight to its arena. The cache's memory is reused by later threads.

use core::cell::Cell;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::chunk::{lookup, Owner};
use super::heap::Arena;
use super::lock::SpinLock;
use super::size_class::*;
use super::{alloc, chunk, huge, init};

/// Objects a stack can hold.
const SLOTS: usize = 128;
/// Under loom: every cached class's bound.
const LOOM_SLOTS: u32 = 2;
/// Bytes a small class's stack may hold at least (within [`SLOTS`]).
const SMALL_CACHE_BYTES: usize = 64 << 10;

/// One class's stack height and bound. The counts of all classes sit
/// together, apart from the stacks, so that a program using many classes
/// touches few cache lines for them.
#[repr(C)]
#[derive(Clone, Copy)]
struct Count {
    n: u32,
    /// Capacity in use (0: class not cached).
    max: u32,
}

/// A thread's cache. All-zero is a valid empty cache (carved from zeroed
/// metadata memory).
#[repr(C)]
pub(crate) struct Tcache {
    counts: [Count; NCACHED],
    stacks: [[*mut u8; SLOTS]; NCACHED],
    nmalloc: [AtomicU64; NCLASSES],
    nfree: [AtomicU64; NCLASSES],
    arena: *const Arena,
    /// Every cache ever made (stats walk it).
    next_all: *mut Tcache,
    /// Caches of exited threads, for reuse.
    next_free: *mut Tcache,
    events: u32,
    /// Bytes this cache hands out before the heap profiler's next sample
    /// (`prof:true`; 0: not drawn yet).
    prof_left: i64,
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
#[inline]
pub(crate) fn count(c: usize, alloc: bool, arena: &Arena, p: *mut u8) {
    let e = init::events();
    if e <= 0 {
        if e == 0 {
            return;
        }
        prof_event(c, alloc, p);
        if !init::stats_enabled() {
            return;
        }
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
        // SAFETY: fresh zeroed metadata memory is a valid empty cache.
        unsafe { (*tc).next_all = reg.all };
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
    // SAFETY: the cache is now exclusively this thread's.
    unsafe {
        (*tc).arena = arena;
        for (c, bin) in (*tc).counts.iter_mut().enumerate() {
            bin.n = 0;
            bin.max = if CLASS_SIZE[c] > max_size {
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
                (SLAB_REGIONS[c] * 2).max(by_bytes).clamp(8, SLOTS as u32)
            } else {
                8
            };
        }
    }
    tc
}

/// Allocates from cached class `c < NCACHED`; null when memory runs out.
#[inline(always)]
pub(crate) fn alloc(c: usize) -> *mut u8 {
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache is owned by this thread.
        let bin = unsafe { &mut (*tc).counts[c] };
        if bin.n > 0 {
            bin.n -= 1;
            // SAFETY: as above; `n < SLOTS`.
            let p = unsafe { *(*tc).stacks[c].get_unchecked(bin.n as usize) };
            let e = init::events();
            if e > 0 {
                // SAFETY: as above.
                bump(unsafe { &(*tc).nmalloc[c] });
            } else if e < 0 {
                // SAFETY: as above.
                unsafe { prof_alloc(tc, c, p) };
            }
            return p;
        }
    }
    alloc_slow(c)
}

/// The allocation fast path's count when the profiler is on: the bytes
/// to the next sample are counted in the cache itself. Out of line, as
/// [`prof_free`]: the fast paths then compile as they did before the
/// profiler existed (no added instruction with `prof:false`).
///
/// # Safety
/// `tc` is the calling thread's live cache.
#[cold]
#[inline(never)]
unsafe fn prof_alloc(tc: *mut Tcache, c: usize, p: *mut u8) {
    // SAFETY: per the contract.
    let tc = unsafe { &mut *tc };
    let left = tc.prof_left - CLASS_SIZE[c] as i64;
    tc.prof_left = left;
    if left <= 0 {
        tc.prof_left = super::prof::due(p, CLASS_SIZE[c], left);
    }
    if init::stats_enabled() {
        bump(&tc.nmalloc[c]);
    }
}

/// The free fast path's count when the profiler is on. It finds the
/// class again from the metadata rather than take it from the fast path,
/// which would then keep it in a register of its own (one instruction
/// more with the profiler off).
///
/// # Safety
/// `tc` is the calling thread's live cache; `p` an object of this
/// allocator, just cached.
#[cold]
#[inline(never)]
unsafe fn prof_free(p: *mut u8, tc: *mut Tcache) {
    if super::prof::maybe_sampled(p) {
        super::prof::on_free(p);
    }
    if init::stats_enabled() {
        // SAFETY: per the contract `p` is ours; a cached object's run is live.
        let c = match unsafe { super::free::size_and_class(p) } {
            (_, Some(c)) => c,
            (size, None) => class_of(size),
        };
        // SAFETY: per the contract.
        bump(unsafe { &(*tc).nfree[c] });
    }
}

fn prof_event(c: usize, alloc: bool, p: *mut u8) {
    if alloc {
        super::prof::on_alloc(p, CLASS_SIZE[c]);
    } else {
        super::prof::on_free(p);
    }
}

#[cold]
fn alloc_slow(c: usize) -> *mut u8 {
    let Some(arena) = arena() else {
        return null_mut();
    };
    let tc = current();
    if live(tc) {
        tick(tc);
        // SAFETY: a live cache is owned by this thread; only its bins are
        // borrowed mutably (other threads read just the counters).
        let (bin, items) = unsafe { (&mut (*tc).counts[c], &mut (*tc).stacks[c]) };
        if bin.max > 0 && c < NSMALL {
            let want = (bin.max / 2).max(1) as usize;
            let got = arena.bin_fill(c, &mut items[..want]);
            if got == 0 {
                return null_mut();
            }
            bin.n = got as u32 - 1;
            let p = items[bin.n as usize];
            count(c, true, arena, p);
            return p;
        }
    }
    let p = alloc::alloc_direct(arena, c);
    if !p.is_null() {
        count(c, true, arena, p);
    }
    p
}

/// Frees `p` of cached class `c < NCACHED`.
///
/// # Safety
/// `p` is a live object of class `c` from this allocator.
#[inline(always)]
pub(crate) unsafe fn free(p: *mut u8, c: usize) {
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache is owned by this thread.
        let bin = unsafe { &mut (*tc).counts[c] };
        if bin.n < bin.max {
            // SAFETY: as above; `n < max <= SLOTS`.
            unsafe { *(*tc).stacks[c].get_unchecked_mut(bin.n as usize) = p };
            bin.n += 1;
            let e = init::events();
            if e > 0 {
                // SAFETY: as above.
                bump(unsafe { &(*tc).nfree[c] });
            } else if e < 0 {
                // SAFETY: as above; `p` is ours.
                unsafe { prof_free(p, tc) };
            }
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { free_slow(p, c) }
}

#[cold]
unsafe fn free_slow(p: *mut u8, c: usize) {
    let mut tc = current();
    if tc.is_null() {
        // A thread whose first call is a free (a consumer that only frees
        // what others allocated) gets its cache here, or every one of its
        // frees would take a bin lock.
        setup();
        if live(current()) {
            // SAFETY: forwarded contract; the new cache has room (or does
            // not cache class `c`, which lands below with a live cache).
            return unsafe { free(p, c) };
        }
        tc = current();
    }
    if live(tc) {
        tick(tc);
        // SAFETY: a live cache is owned by this thread; only its bins are
        // borrowed mutably.
        let (bin, items) = unsafe { (&mut (*tc).counts[c], &mut (*tc).stacks[c]) };
        if bin.max > 0 {
            let half = (bin.max / 2).max(1) as usize;
            // SAFETY: the flushed objects are cached, hence unused.
            unsafe { flush(c, &items[..half]) };
            items.copy_within(half..bin.n as usize, 0);
            bin.n -= half as u32;
            items[bin.n as usize] = p;
            bin.n += 1;
            // SAFETY: the cache's arena lives forever.
            count(c, false, unsafe { &*(*tc).arena }, p);
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe {
        let owner = chunk::owner_arena(p);
        count(c, false, owner, p);
        flush(c, &[p]);
    }
}

/// Every 256 slow-path events, purge expired dirty pages of our arena.
fn tick(tc: *mut Tcache) {
    // SAFETY: `tc` is the calling thread's live cache; `events` and `arena`
    // are only touched by it.
    unsafe {
        (*tc).events = (*tc).events.wrapping_add(1);
        if (*tc).events % 256 == 0 {
            (*(*tc).arena).decay_tick();
            huge::huge_purge(crate::sys::now_ms());
        }
    }
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
pub(crate) fn flush_current() {
    let tc = current();
    if live(tc) {
        // SAFETY: a live cache is owned by this thread.
        unsafe { flush_all(tc) };
    }
}

/// # Safety
/// `tc` is owned by the calling thread.
unsafe fn flush_all(tc: *mut Tcache) {
    // SAFETY: per the contract; only the bins are borrowed mutably.
    let (counts, stacks) = unsafe { (&mut (*tc).counts, &(*tc).stacks) };
    for (c, (bin, items)) in counts.iter_mut().zip(stacks).enumerate() {
        let n = bin.n as usize;
        bin.n = 0;
        // SAFETY: cached objects are unused.
        unsafe { flush(c, &items[..n]) };
    }
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
