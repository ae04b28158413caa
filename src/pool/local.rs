//! Thread-local free lists: the hot path.
//!
//! Each thread has one [`ThreadCache`] with an [`Entry`] per pool it used,
//! indexed by the pool's id (the first [`INLINE`] ids live inside the
//! thread-local block itself, later ones in a side vector). An entry is a
//! stack of free object pointers, kept as its top pointer (one past the
//! last object), with its low-water mark and bound as pointers too;
//! allocation pops, free pushes, and only an empty or full stack goes to
//! the pool's central lock to move a batch.
//!
//! A full stack of at least a batch goes to the depot whole: its storage
//! is handed over by pointer and the entry takes an empty stack of the
//! same capacity back ([`ThreadCache::hand_over`], `Inner::hand_over`), so
//! a thread that only frees (objects other threads allocated) pays one
//! short critical section per full list and copies nothing. (Moving a
//! batch of 256 pointers instead, a copy into lines the allocating thread
//! had read, under the lock, made one free in 256 cost 120 to 300 ns.) A
//! stack the depot has no room for, or one shorter than a batch (the
//! budget is short), moves a batch by copying, as before.
//!
//! The fast paths index the inline table with no bounds check: a pool's
//! [`entry_index`] (kept in its hot line, in each chunk's header and in
//! the `Pool` handle) is its id, or for ids beyond the table the [`MISS`]
//! entry at the table's end, which is never bound (no object, a bound of
//! 0: its top, mark and bound are all null), so both fast paths fall
//! through to their slow path, where the side vector is. A `Pool` handle
//! not yet initialised holds [`MISS`] too, so its first allocation
//! initialises it on the slow path, with no test on the fast one. The free
//! path's guess (`last_free`) starts at a static entry that is never bound
//! either ([`NO_ENTRY`]), so it needs no null test.
//!
//! (Measured on the pair loop, callgrind and wall time: the entry is
//! reached by a scaled index from a linear thread-local address, or by a
//! pointer. Variants that save the scaling, a byte offset added to the
//! thread-local block, compile to `%fs`-relative indexed accesses, or an
//! index guess, ran a pair about 2 ns slower though 2 to 5 instructions
//! shorter.)
//!
//! An entry is valid for a pool while its `stamp` equals the pool's stamp
//! (`serial << 32 | trim epoch`): a trim bumps the epoch, so every thread
//! flushes its entry at its next free into that pool (or when its list runs
//! dry); a pool id reused by a new pool has a new serial, so a stale entry
//! is flushed to its old pool. Allocation skips the stamp: an entry that
//! holds objects keeps their pool, and so its id, alive.
//!
//! A thread's lists hold at most `pool_thread_bytes` (8 MiB by default,
//! [`set_thread_bytes`]) of free objects, all pools together, by
//! construction: an entry's bound (`end`, what the free fast path compares
//! the top with, as it compared with the stack's capacity before) is a *grant* of
//! `bound * slot` bytes from that budget, and the grants never add up to
//! more. Grants are made on the slow paths only: a list that runs dry or
//! overflows grows from what is left of the budget, up to a batch (dry) or
//! `local_max` (full; else it goes to the depot, above); a list
//! without a grant that finds the budget spent halves the largest other
//! grant (the objects above the new bound go to their depot). A list whose
//! bound is below a batch refills that many objects at a time. A thread
//! that stops calling holds at most its budget, whatever it did before,
//! until the purger reclaims its lists (below).
//!
//! Lists left unused shrink gradually (the arena's incremental GC): every
//! [`GC_EVENTS`] slow-path events of a thread, each of its lists gives 3/4
//! of its low-water mark (the objects at the bottom of its stack that no
//! allocation reached since the last event) back to its pool, and its grant
//! shrinks by as much. The allocation fast path pops only above the mark
//! (the compare it made with 0 is now made with the mark); reaching the
//! mark takes the slow path, which lowers it.
//!
//! Other threads read an entry's `stamp`, `top`, `slots` and `end`
//! (atomics) for statistics; the rest is the owning thread's, but for the
//! reclaimer (below). The owner moves a stack (`slots` and `top` together)
//! only on slow paths, inside the cache's `seq` count (a seqlock), so a
//! reader never takes a top of one stack against the base of another.
//!
//! # Reclaim: a thread that goes quiet
//!
//! The GC above runs on the owner's own slow paths, so a thread that
//! stops calling (blocked on a channel after a burst, say) would keep its
//! lists, up to the budget, for ever. The background purger reclaims them
//! from outside ([`reclaim_quiet`], from the pool layer's idle hook): the
//! lists of a thread that ran no slow path for `decay_ms` go back to their
//! pools but for the top object of each. (Quiet means no slow path: a
//! thread that runs only fast paths that long is reclaimed too, at most
//! once per `decay_ms`, and refills at its next slow path. The purger's
//! rounds are a quarter of `decay_ms`, between 10 ms and 1 s, so a quiet
//! thread's lists go back within `decay_ms` and a round or two.) The fast
//! paths pay one compiler fence each ([`crate::sync::light_fence`], no
//! instruction) and load their bound (`low`, `end`) from an atomic: on
//! x86-64 a plain load, which LLVM no longer folds into the compare, so
//! one instruction more per call (callgrind, an alloc and free pair: 39
//! instructions instead of 37). Everything else happens on slow paths
//! and in the reclaimer.
//!
//! Each cache has a `state` word: [`IDLE`], [`OWNER`] (the owner is in a
//! slow path), [`RECLAIMING`], [`RECLAIMED`]. Every slow path of the owner
//! that touches the lists (refill, overflow, hand-over, GC, grants, trim,
//! thread exit) runs inside [`ThreadCache::enter`]: a CAS from `IDLE` to
//! `OWNER` (Acquire), `IDLE` again at the end (Release). Finding
//! `RECLAIMING`, it serves that one call from or to the pool's central
//! state and leaves the lists alone (the thread-exit hook and a trim wait
//! for the reclaimer instead: it holds nothing they hold); finding
//! `RECLAIMED`, it first settles the lists ([`ThreadCache::settle`]: the
//! objects the reclaimer took at the bottom of each stack are gone, the rest move
//! down, and bounds and grants shrink to what is left).
//!
//! The reclaimer, for a quiet thread whose lists hold something to take:
//!
//! 1. under [`THREADS`] (so the thread cannot exit meanwhile), CAS `IDLE`
//!    to `RECLAIMING` (Acquire: it sees every slow path's writes; and the
//!    exit hook now waits for it, so the cache stays valid);
//! 2. sets each entry's `low` to the end of its storage and `end` to its
//!    base, so that no pop (`top > low`) and no push (`top < end`) passes;
//! 3. [`crate::sys::membarrier`]: every running thread of the process
//!    executes a full barrier (a thread not running passed one when it
//!    was switched out). If there is no such barrier, nothing is taken,
//!    and no reclaim is tried again;
//! 4. reads each entry's `top` and gives the objects in `[slots, top - 1)`
//!    back to their pool, recording how many, `k`, before they go, as
//!    `end = slots - k` (still below the base: no push passes; an entry
//!    keeps its 64 bytes, one cache line);
//! 5. stores `RECLAIMED` (Release), after which it touches nothing.
//!
//! Why no object is handed out twice. A fast-path call starts with the
//! compiler fence, so the compiler never moves one call's loads of the
//! bounds above the previous call's store of `top`; the CPU executes the
//! barrier of step 3 between two instructions of the owner. Every call
//! that starts after that point loads the bounds of step 2, fails, and goes
//! to a slow path, which sees `RECLAIMING` or `RECLAIMED` and leaves the
//! stacks alone (or settles them once the reclaimer is done). Every call
//! that ended before it has its `top` visible to step 4. So at most one
//! call straddles the barrier, having loaded the old bounds: a pop of the
//! object at `top - 1` or a push at `top`, for the `top` it loaded. Step 4
//! reads that `top` or the one the call stores (one less or one more), and
//! takes only below its reading minus one: never the popped object, never
//! the slot pushed to. The straddling call's effect is then in `top` when
//! the owner settles (length minus `k` is what is left). An entry's
//! pool stays alive through the reclaim: the entry held at least two of
//! its objects at step 4, and the taken ones count until `put` returns;
//! an entry whose stamp is stale (the pool was trimmed or dropped since)
//! sends them to the chunks, as `bind` would.

use core::cell::Cell;
use core::mem;
use core::ptr::{self, NonNull};
use core::sync::atomic::{fence, AtomicUsize as PlainUsize, Ordering::Relaxed};

use super::central::{Inner, Slots};
use super::chunk::ChunkHeader;
use super::registry::{ThreadRef, THREADS};
use crate::error::AllocError;
use crate::sync::stat::{AtomicPtr as StatPtr, AtomicU64, AtomicUsize};
use crate::sync::{const_fn, const_thread_local, AtomicPtr, AtomicU32, Ordering, Wait};

/// Slow-path events of a thread between two GC events.
const GC_EVENTS: u32 = 256;

/// Pool ids served from the thread-local block without indirection.
/// (Fewer under loom, where every entry is state the model carries.)
pub(crate) const INLINE: usize = if cfg!(loom) { 4 } else { 32 };

/// Index of the never-bound entry that ends the inline table.
pub(crate) const MISS: usize = INLINE;

/// The index, in a thread's inline table, of the entry the fast paths use
/// for the pool with `id`: its own entry for an inline id, the [`MISS`]
/// entry for the rest (their entries are reached on the slow paths).
pub(crate) const fn entry_index(id: usize) -> usize {
    if id < INLINE {
        id
    } else {
        MISS
    }
}

/// A stack of free objects: a pointer to its slots.
type Stack = *mut *mut u8;

/// One thread's free list for one pool.
pub(crate) struct Entry {
    /// Stamp of the pool this entry serves; 0 when unbound.
    stamp: AtomicU64,
    /// One past the top object of the stack: `slots + len`. Written by
    /// the owner only; read by the reclaimer.
    top: AtomicPtr<*mut u8>,
    /// `slots + ` the low-water mark of the length since the last GC event:
    /// the objects below it were not reached since. At most `top`, except
    /// while reclaimed: then `slots + cap`, which stops every pop.
    low: AtomicPtr<*mut u8>,
    /// `slots + ` the free path's bound (at most `cap`): the entry's grant
    /// from the thread's byte budget, in objects. While reclaimed, the base
    /// minus the objects the reclaimer took from the bottom of the stack
    /// ([`Entry::taken`]; a heap address is far above the few KiB that
    /// subtracts): below the base, so no push passes.
    end: AtomicPtr<*mut u8>,
    /// The stack of free objects (null when it has no storage).
    slots: StatPtr<*mut u8>,
    /// Capacity of `slots`.
    cap: Cell<usize>,
    /// Bytes granted (the bound times the pool's slot size).
    grant: Cell<usize>,
    /// The pool the objects belong to (valid while the stack is not empty).
    inner: Cell<*const Inner>,
}

/// The free path's guess before a thread freed into an inline entry: an
/// entry with a bound of 0 (null `end`), so no push onto it succeeds and
/// it is never written.
#[cfg(not(loom))]
static NO_ENTRY: ReadOnly = ReadOnly(Entry::new());

#[cfg(loom)]
loom::lazy_static! {
    /// As outside loom; made anew in each execution (its atomics are loom's).
    static ref NO_ENTRY: ReadOnly = ReadOnly(Entry::new());
}

/// An entry that is only read (see [`NO_ENTRY`]).
struct ReadOnly(Entry);

// SAFETY: nothing writes a `ReadOnly`'s entry: the free fast path reads it
// and fails (no room below a null bound); every write to an entry goes
// through the thread's own table.
unsafe impl Sync for ReadOnly {}

/// All free lists of one thread.
pub(crate) struct ThreadCache {
    /// Entries for ids `..INLINE`, then the [`MISS`] entry, which stays
    /// unbound and empty with a bound of 0 (see [`ThreadCache::at`]).
    table: [Entry; INLINE + 1],
    /// Entries for ids `INLINE..` (null until needed); grown and freed by
    /// the owner under [`THREADS`]. Boxed so an entry keeps its address while
    /// the vector grows; behind a raw pointer so the cache has no drop glue.
    overflow: Cell<*mut Overflow>,
    /// Registry key + 1, or 0 while unregistered.
    key: Cell<usize>,
    /// The entry freed to last (an inline one, or [`NO_ENTRY`]): the free
    /// path's guess, confirmed by comparing stamps.
    last_free: Cell<*const Entry>,
    /// Odd while the owner moves a stack (see [`ThreadCache::set_stack`]).
    seq: AtomicUsize,
    /// The thread is exiting: its lists went back and nothing is cached.
    retired: Cell<bool>,
    /// Bytes granted to the entries: the sum of their `grant`, at most the
    /// budget (unless [`set_thread_bytes`] lowered it since).
    granted: Cell<usize>,
    /// Slow-path events, for the GC.
    events: Cell<u32>,
    /// Who may touch the lists: [`IDLE`], [`OWNER`], [`RECLAIMING`] or
    /// [`RECLAIMED`] (see the module doc).
    state: AtomicU32,
    /// Slow paths the owner entered (written by the owner only): while it
    /// does not change, the thread runs no slow path, the reclaimer's sign
    /// of a quiet thread.
    #[cfg(target_os = "linux")]
    slow: AtomicUsize,
    /// The reclaimer's last reading of `slow` (under [`THREADS`]).
    #[cfg(target_os = "linux")]
    seen: Cell<usize>,
    /// When (ms) the reclaimer saw `slow` change last (under [`THREADS`]).
    #[cfg(target_os = "linux")]
    seen_at: Cell<u64>,
}

/// [`ThreadCache::state`]: no one is in the lists but the owner's fast
/// paths.
const IDLE: u32 = 0;
/// [`ThreadCache::state`]: the owner is in a slow path.
const OWNER: u32 = 1;
/// [`ThreadCache::state`]: the reclaimer is taking objects off the lists;
/// the owner's slow paths leave them alone.
const RECLAIMING: u32 = 2;
/// [`ThreadCache::state`]: the reclaimer took objects off the bottom of
/// the lists (each entry's [`Entry::taken`]) and left their bounds
/// stopping every fast path; the owner's next slow path settles them.
const RECLAIMED: u32 = 3;

/// The per-thread byte budget of all pools' lists; `usize::MAX` until read
/// from `HOTPOOL_CONF` (`pool_thread_bytes`).
static THREAD_BYTES: PlainUsize = PlainUsize::new(usize::MAX);

/// The per-thread byte budget of all pools' lists.
fn thread_bytes() -> usize {
    let b = THREAD_BYTES.load(Relaxed);
    if b != usize::MAX {
        return b;
    }
    let conf = crate::config::from_env().pool_thread_bytes;
    // A setter that ran meanwhile wins.
    let _ = THREAD_BYTES.compare_exchange(usize::MAX, conf, Relaxed, Relaxed);
    THREAD_BYTES.load(Relaxed)
}

/// Sets the per-thread byte budget of all pools' lists (see
/// [`crate::pool::set_thread_bytes`]).
pub(crate) fn set_thread_bytes(bytes: usize) {
    THREAD_BYTES.store(bytes.min(usize::MAX - 1), Relaxed);
}

/// Entries for pool ids beyond the inline table.
#[allow(clippy::vec_box)]
type Overflow = Vec<Box<Entry>>;

// No drop glue, so access is a plain thread-local address with no
// "initialized / destroyed" check on the hot path; `EXIT` retires it.
#[cfg(not(loom))]
const_thread_local! {
    static CACHE: ThreadCache = ThreadCache::new();
    static EXIT: ExitGuard = ExitGuard;
}

const _: () = assert!(!core::mem::needs_drop::<ThreadCache>());

/// Registered at a thread's first pool operation; its destructor hands the
/// thread's lists back when the thread exits.
#[cfg(not(loom))]
struct ExitGuard;

#[cfg(not(loom))]
impl Drop for ExitGuard {
    fn drop(&mut self) {
        CACHE.with(ThreadCache::retire);
    }
}

// Under loom a thread's locals are all taken out before any is dropped,
// so the exit hook cannot reach the cache through `CACHE`: the cache's own
// destructor retires it (a model thread's locals drop when it ends).
#[cfg(loom)]
const_thread_local! {
    static CACHE: LoomCache = LoomCache(ThreadCache::new());
}

/// The thread cache under loom, retired when its model thread ends.
#[cfg(loom)]
struct LoomCache(ThreadCache);

#[cfg(loom)]
impl Drop for LoomCache {
    fn drop(&mut self) {
        // Loom cannot run loom operations from a thread-local destructor
        // (its object store is gone by then): models end each thread with
        // `loom_probe::thread_exit`, which runs the same `retire`.
        assert!(
            self.0.retired.get() || self.0.key.get() == 0 || std::thread::panicking(),
            "a loom model thread ended without loom_probe::thread_exit()"
        );
    }
}

/// Runs the thread-exit hook now (loom models, see [`LoomCache`]).
#[cfg(loom)]
pub(crate) fn retire_current() {
    with_cache(ThreadCache::retire);
}

/// Runs `f` on the calling thread's cache.
#[cfg(not(loom))]
#[inline(always)]
fn with_cache<R>(f: impl FnOnce(&ThreadCache) -> R) -> R {
    CACHE.with(f)
}

/// Runs `f` on the calling thread's cache.
#[cfg(loom)]
fn with_cache<R>(f: impl FnOnce(&ThreadCache) -> R) -> R {
    CACHE.with(|c| f(&c.0))
}

/// Whether the thread-exit hook can still be armed (false once the
/// thread's locals are being destroyed).
#[cfg(not(loom))]
fn exit_hook_available() -> bool {
    EXIT.try_with(|_| ()).is_ok()
}

/// Under loom the cache retires itself (see [`LoomCache`]).
#[cfg(loom)]
fn exit_hook_available() -> bool {
    true
}

impl Entry {
    const_fn! {
        /// An unbound entry with no storage.
        fn new() -> Entry {
            Entry {
                stamp: AtomicU64::new(0),
                top: AtomicPtr::new(ptr::null_mut()),
                low: AtomicPtr::new(ptr::null_mut()),
                end: AtomicPtr::new(ptr::null_mut()),
                slots: StatPtr::new(ptr::null_mut()),
                cap: Cell::new(0),
                grant: Cell::new(0),
                inner: Cell::new(ptr::null()),
            }
        }
    }

    /// Slots from the base of the stack to `p` (one of its pointers).
    fn index(&self, p: Stack) -> usize {
        (p as usize - self.slots.load(Ordering::Relaxed) as usize) / mem::size_of::<Stack>()
    }

    /// The pointer `n` slots above the base of the stack.
    fn at(&self, n: usize) -> Stack {
        self.slots.load(Ordering::Relaxed).wrapping_add(n)
    }

    /// Objects on the stack (owner only).
    fn len(&self) -> usize {
        self.index(self.top.load(Ordering::Relaxed))
    }

    /// Sets the number of objects on the stack (owner only).
    fn set_len(&self, n: usize) {
        self.top.store(self.at(n), Ordering::Relaxed);
    }

    /// Objects the reclaimer took from the bottom of the stack, kept in
    /// `end` below the base until the owner settles; 0 otherwise (`end` is
    /// then at or above the base).
    fn taken(&self) -> usize {
        taken(
            self.slots.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
        )
    }

    /// The low-water mark, in objects (owner only).
    fn low(&self) -> usize {
        self.index(self.low.load(Ordering::Relaxed))
    }

    /// Sets the low-water mark, in objects (owner only).
    fn set_low(&self, n: usize) {
        self.low.store(self.at(n), Ordering::Relaxed);
    }

    /// The free path's bound, in objects (owner only).
    fn bound(&self) -> usize {
        self.index(self.end.load(Ordering::Relaxed))
    }

    /// Sets the free path's bound, in objects (at most `cap`; owner only).
    fn set_bound(&self, n: usize) {
        debug_assert!(n <= self.cap.get());
        self.end.store(self.at(n), Ordering::Relaxed);
    }

    /// Hands every cached object back to the pool it belongs to.
    fn flush(&self, to_depot: bool) {
        let n = self.len();
        self.set_len(0);
        self.set_low(0);
        if n > 0 {
            // SAFETY: the entry held n free objects of `inner`, which keep it
            // alive; they are now referenced only by the stack we pass.
            unsafe { Inner::put(self.inner.get(), self.at(0), n, to_depot) };
        }
    }
}

impl ThreadCache {
    const_fn! {
        /// An empty cache, not registered.
        fn new() -> ThreadCache {
            #[cfg(not(loom))]
            let table = [const { Entry::new() }; INLINE + 1];
            #[cfg(loom)]
            let table = core::array::from_fn(|_| Entry::new());
            ThreadCache {
                table,
                overflow: Cell::new(ptr::null_mut()),
                key: Cell::new(0),
                last_free: Cell::new(&NO_ENTRY.0),
                seq: AtomicUsize::new(0),
                retired: Cell::new(false),
                granted: Cell::new(0),
                events: Cell::new(0),
                state: AtomicU32::new(IDLE),
                #[cfg(target_os = "linux")]
                slow: AtomicUsize::new(0),
                #[cfg(target_os = "linux")]
                seen: Cell::new(0),
                #[cfg(target_os = "linux")]
                seen_at: Cell::new(0),
            }
        }
    }

    /// Counts a slow-path event; every [`GC_EVENTS`], runs the GC.
    fn tick(&self) {
        let events = self.events.get().wrapping_add(1);
        self.events.set(events);
        if events % GC_EVENTS == 0 {
            self.gc();
        }
    }

    /// The GC event: every list hands 3/4 of its low-water mark (rounded
    /// up), its oldest objects, back to its pool, and its grant shrinks by
    /// as much; then the marks restart at the lengths.
    fn gc(&self) {
        for e in self.entries() {
            let low = e.low();
            if low > 0 {
                let k = low - low / 4;
                let n = e.len();
                let inner = e.inner.get();
                // SAFETY: the entry holds n >= low > 0 objects of `inner`,
                // which keep it alive.
                let current = unsafe { (*inner).hot.0.stamp.load(Ordering::Relaxed) };
                let to_depot = current == e.stamp.load(Ordering::Relaxed);
                let slots = e.at(0);
                e.set_len(n - k);
                // SAFETY: the bottom k entries are free objects of `inner`,
                // now off the stack (the rest, if any, keep `inner` alive;
                // it is not used after the call otherwise); then the n - k
                // above them move down, inside the stack.
                unsafe {
                    Inner::put(inner, slots, k, to_depot);
                    ptr::copy(slots.add(k), slots, n - k);
                }
                // `k <= n <= bound`: the grant shrinks by k objects.
                let (bound, grant) = (e.bound(), e.grant.get());
                let freed = grant / bound * k;
                e.set_bound(bound - k);
                e.grant.set(grant - freed);
                self.granted.set(self.granted.get() - freed);
            }
            e.set_low(e.len());
        }
    }

    /// The entries for ids `..INLINE` (without the [`MISS`] entry).
    fn inline(&self) -> &[Entry] {
        &self.table[..INLINE]
    }

    /// The entry at `index` of the inline table, for the fast paths: no
    /// bounds check.
    ///
    /// # Safety
    ///
    /// `index` is an [`entry_index`] (a pool's, a handle's or a chunk
    /// header's copy).
    #[inline(always)]
    unsafe fn at(&self, index: usize) -> &Entry {
        debug_assert!(index <= MISS);
        // SAFETY: per the contract, index <= MISS, inside the table.
        unsafe { self.table.get_unchecked(index) }
    }

    /// Points `e` at the stack `slots` of `cap` objects, holding `len` with
    /// a low-water mark of `low` and a bound of `bound`. Readers on other
    /// threads ([`Entry::shared_len`]) see the old or the new stack whole.
    fn set_stack(&self, e: &Entry, slots: Stack, cap: usize, len: usize, low: usize, bound: usize) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        e.slots.store(slots, Ordering::Relaxed);
        e.top.store(slots.wrapping_add(len), Ordering::Relaxed);
        // Inside the count: a reader takes the objects taken from `end`.
        e.end.store(slots.wrapping_add(bound), Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
        e.cap.set(cap);
        e.low.store(slots.wrapping_add(low), Ordering::Relaxed);
    }

    /// Objects on `e`'s stack, read from another thread (for statistics):
    /// a length of one stack, though maybe not the latest, without those
    /// the reclaimer took; 0 if the owner kept moving stacks meanwhile.
    fn shared_len(&self, e: &Entry) -> usize {
        for _ in 0..64 {
            let seq = self.seq.load(Ordering::Acquire);
            let slots = e.slots.load(Ordering::Relaxed);
            let top = e.top.load(Ordering::Relaxed);
            let end = e.end.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if seq % 2 == 0 && self.seq.load(Ordering::Relaxed) == seq {
                let len = (top as usize).wrapping_sub(slots as usize) / mem::size_of::<Stack>();
                return len.saturating_sub(taken(slots, end));
            }
            core::hint::spin_loop();
        }
        0
    }

    /// Replaces `e`'s stack by one of `new_cap` (>= len) entries.
    fn grow(&self, e: &Entry, new_cap: usize) {
        let (len, low, bound) = (e.len(), e.low(), e.bound());
        debug_assert!(new_cap >= bound);
        let fresh = Slots::new(new_cap).base;
        let old = (e.at(0), e.cap.get());
        if len > 0 {
            // SAFETY: the old stack holds `len` initialized entries, the new
            // one has room for new_cap >= len; distinct allocations.
            unsafe { ptr::copy_nonoverlapping(old.0, fresh, len) };
        }
        self.set_stack(e, fresh, new_cap, len, low, bound);
        // SAFETY: the old stack, replaced above.
        unsafe { free_stack(old.0, old.1) };
    }

    /// Hands `e`'s full list of `n` objects of `inner` to the depot whole
    /// (its stack, by pointer) and gives `e` an empty stack of the same
    /// capacity, keeping its bound; returns the new length, 0, or `n` when
    /// the depot did not take it (then nothing changed). Only a list of at
    /// least a `batch` goes whole: a shorter one (the budget is short) is
    /// copied a batch at a time.
    fn hand_over(&self, e: &Entry, inner: *const Inner, n: usize, batch: usize) -> usize {
        if n < batch {
            return n;
        }
        let (full, bound) = (
            Slots {
                base: e.at(0),
                cap: e.cap.get(),
            },
            e.bound(),
        );
        // Off the stack first, for readers of its length.
        e.set_len(0);
        // SAFETY: the stack holds n free objects of `inner`, which they keep
        // alive, made by `Slots::new`; if taken, `e` is repointed below and
        // the old stack not used again.
        match unsafe { Inner::hand_over(inner, full, n, full.cap) } {
            Some(empty) => {
                self.set_stack(e, empty.base, empty.cap, 0, 0, bound);
                0
            }
            None => {
                e.set_len(n);
                n
            }
        }
    }

    /// Every entry of this thread (inline ones first).
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.inline()
            .iter()
            .chain(self.overflow().iter().map(|b| &**b))
    }

    /// Frees `e`'s storage (the stack is empty) and returns its grant to
    /// the budget; the bound goes to 0 with it.
    fn release(&self, e: &Entry) {
        debug_assert_eq!(e.len(), 0);
        let old = (e.at(0), e.cap.get());
        self.set_stack(e, ptr::null_mut(), 0, 0, 0, 0);
        // SAFETY: the old stack, replaced above.
        unsafe { free_stack(old.0, old.1) };
        self.granted.set(self.granted.get() - e.grant.replace(0));
    }

    /// Raises `e`'s bound toward `want` objects of `slot` bytes from what is
    /// left of the thread's budget (growing its storage to match). While an
    /// entry without a grant finds no room for one object, or the grants
    /// exceed a budget lowered since they were made, the largest grant of
    /// another entry is halved, until none is left. Returns the bound.
    ///
    /// Only a first grant takes from other entries: growing by taking, when
    /// the budget is spent, makes caches of a mixed workload take from each
    /// other at every miss (measured on the arena's caches, which follow the
    /// same rule).
    fn grow_bound(&self, e: &Entry, slot: usize, want: usize) -> usize {
        let slot = slot.max(1);
        let budget = thread_bytes();
        let bound = e.bound();
        if bound >= want {
            return bound;
        }
        let free = |tc: &ThreadCache| budget.saturating_sub(tc.granted.get()) / slot;
        let need = usize::from(bound == 0);
        while (self.granted.get() > budget || bound + free(self) < need) && self.steal(e) {}
        let new = want.min(bound + free(self));
        if new <= bound {
            return bound;
        }
        if e.cap.get() < new {
            self.grow(e, new);
        }
        let add = (new - bound) * slot;
        e.grant.set(e.grant.get() + add);
        self.granted.set(self.granted.get() + add);
        e.set_bound(new);
        new
    }

    /// Halves the largest grant of an entry other than `keep`, moving its
    /// objects above the new bound to their pool; false if no other entry
    /// holds a grant.
    fn steal(&self, keep: &Entry) -> bool {
        let Some(v) = self
            .entries()
            .filter(|e| !ptr::eq(*e, keep) && e.grant.get() > 0)
            .max_by_key(|e| e.grant.get())
        else {
            return false;
        };
        let (bound, grant) = (v.bound(), v.grant.get());
        let slot = grant / bound;
        let new = bound / 2;
        let n = v.len();
        if n > new {
            v.set_len(new);
            v.set_low(v.low().min(new));
            let inner = v.inner.get();
            // SAFETY: the entry held n > 0 objects of `inner`, which keep it
            // alive until they are handed over here.
            let current = unsafe { (*inner).hot.0.stamp.load(Ordering::Relaxed) };
            // A stale entry (trimmed pool) sends its objects to the chunks,
            // as `bind` would.
            let to_depot = current == v.stamp.load(Ordering::Relaxed);
            // SAFETY: the top n - new entries are free objects of `inner`,
            // now off the stack.
            unsafe { Inner::put(inner, v.at(new), n - new, to_depot) };
        }
        v.set_bound(new);
        v.grant.set(new * slot);
        self.granted.set(self.granted.get() - (grant - new * slot));
        true
    }

    /// Registers the thread (once); false if it is exiting and must not
    /// cache anything.
    fn register(&self) -> bool {
        if self.retired.get() {
            return false;
        }
        if self.key.get() == 0 {
            if !exit_hook_available() {
                // Thread-local destruction has begun: no exit hook possible.
                self.retired.set(true);
                return false;
            }
            let key = THREADS.lock().insert(ThreadRef(self));
            self.key.set(key + 1);
        }
        true
    }

    /// Starts a slow path of the owner that may touch the lists (the
    /// `state` goes from [`IDLE`] to [`OWNER`] until the guard drops); first
    /// settles the lists if the reclaimer took objects off them. None while
    /// the reclaimer is at them: the caller serves its one call from or to
    /// the pool itself, without waiting. (Also None for [`OWNER`], which
    /// only a slow path entered from inside another would find; none is.)
    fn enter(&self) -> Option<Owned<'_>> {
        // Only the owner writes the count: a load and a store.
        #[cfg(target_os = "linux")]
        self.slow.store(
            self.slow.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        match self
            .state
            .compare_exchange(IDLE, OWNER, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {}
            Err(RECLAIMED) => {
                // Only the owner leaves RECLAIMED, so this succeeds; its
                // Acquire pairs with the reclaimer's Release.
                let won = self.state.compare_exchange(
                    RECLAIMED,
                    OWNER,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                );
                debug_assert!(won.is_ok());
                self.settle();
            }
            Err(_) => return None,
        }
        Some(Owned(self))
    }

    /// [`ThreadCache::enter`], yielding while the reclaimer is at the lists:
    /// for the paths that must have them (thread exit, a trim). The
    /// reclaimer waits for nothing this thread holds.
    fn enter_waiting(&self) -> Option<Owned<'_>> {
        loop {
            if let Some(owned) = self.enter() {
                return Some(owned);
            }
            if self.state.load(Ordering::Relaxed) == OWNER {
                return None;
            }
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }

    /// After a reclaim (owner, in [`ThreadCache::enter`]): each stack loses
    /// the [`Entry::taken`] objects at its bottom, which the reclaimer gave
    /// back, and the rest move down; the bounds, left stopping every fast
    /// path, become what is left: the bound and the grant shrink to the
    /// objects kept, and the low-water mark restarts there.
    fn settle(&self) {
        for e in self.entries() {
            let slots = e.at(0);
            if slots.is_null() {
                continue;
            }
            let (n, k) = (e.len(), e.taken());
            debug_assert!(k <= n);
            let m = n - k;
            if k > 0 {
                // SAFETY: the stack holds n objects; the m above the k
                // taken ones move down, inside it.
                unsafe { ptr::copy(slots.add(k), slots, m) };
            }
            let grant = if m == 0 {
                0
            } else {
                // SAFETY: the entry holds m > 0 objects of `inner`, which
                // keep it alive.
                m * unsafe { (*e.inner.get()).hot.0.geo.slot }.max(1)
            };
            self.granted
                .set(self.granted.get() - e.grant.replace(grant) + grant);
            self.set_stack(e, slots, e.cap.get(), m, m, m);
        }
    }

    /// Whether some entry holds objects a reclaim would take (more than
    /// one). Any thread holding [`THREADS`].
    #[cfg(target_os = "linux")]
    fn holds_spare(&self) -> bool {
        self.entries().any(|e| {
            let slots = e.slots.load(Ordering::Relaxed) as usize;
            let top = e.top.load(Ordering::Relaxed) as usize;
            top.wrapping_sub(slots) / mem::size_of::<Stack>() > 1
        })
    }

    /// How long (ms) the owner has run no slow path as of `now`, per the
    /// reclaimer's readings of `slow`; None if it ran one since the last
    /// reading (which this one replaces). Under [`THREADS`].
    #[cfg(target_os = "linux")]
    fn quiet_for(&self, now: u64) -> Option<u64> {
        let slow = self.slow.load(Ordering::Relaxed);
        if slow != self.seen.replace(slow) {
            self.seen_at.set(now);
            return None;
        }
        Some(now.saturating_sub(self.seen_at.get()))
    }

    /// Sets every entry's bounds so that no fast path pops (`low` at the
    /// end of the storage, which no `top` passes) or pushes (`end` at its
    /// base, which no `top` is below). The reclaimer, holding the cache
    /// [`RECLAIMING`] (so no slow path of the owner changes the entries).
    #[cfg(target_os = "linux")]
    fn block(&self) {
        for e in self.entries() {
            let slots = e.slots.load(Ordering::Relaxed);
            if !slots.is_null() {
                e.low
                    .store(slots.wrapping_add(e.cap.get()), Ordering::Relaxed);
                e.end.store(slots, Ordering::Relaxed);
            }
        }
    }

    /// Gives every entry's objects but its top one back to their pool,
    /// recording how many in `end` ([`Entry::taken`]). The reclaimer,
    /// holding the cache [`RECLAIMING`], after [`ThreadCache::block`] and
    /// the barrier: the owner is in at most one fast-path call that read
    /// the old bounds, which pops the top object or pushes above it. The count is written
    /// before the objects go, so a fork meanwhile leaves the child's copy
    /// of them lost (the cache settles without them), never cached twice.
    #[cfg(target_os = "linux")]
    fn take(&self) {
        for e in self.entries() {
            let slots = e.slots.load(Ordering::Relaxed);
            if slots.is_null() {
                continue;
            }
            let k = e.len().saturating_sub(1);
            if k == 0 {
                continue;
            }
            e.end.store(slots.wrapping_sub(k), Ordering::Relaxed);
            let inner = e.inner.get();
            // SAFETY: the entry holds k + 1 > 1 free objects of `inner`
            // (the owner may pop the top one), which keep it alive.
            let current = unsafe { (*inner).hot.0.stamp.load(Ordering::Relaxed) };
            // A stale entry (trimmed pool) sends its objects to the chunks,
            // as `bind` would.
            let to_depot = current == e.stamp.load(Ordering::Relaxed);
            // SAFETY: the bottom k slots hold free objects of `inner` that
            // no fast path reaches any more (above); the owner will drop
            // them from its stack when it settles.
            unsafe { Inner::put(inner, slots, k, to_depot) };
        }
    }

    /// The overflow entries (empty if none were made).
    fn overflow(&self) -> &[Box<Entry>] {
        let v = self.overflow.get();
        if v.is_null() {
            &[]
        } else {
            // SAFETY: made by `entry` and freed only by `retire` after the
            // cache is unregistered; only this thread, readers holding
            // THREADS (which every change holds) or the reclaimer holding
            // the cache RECLAIMING (no slow path runs) get here.
            unsafe { &*v }
        }
    }

    /// Hands every list back to its pool and stops caching (thread exit).
    /// Waits for a reclaimer at the lists to finish, then stays [`OWNER`]
    /// for good: a later slow path of the thread (another thread-local's
    /// destructor) is served by the pool itself, and once unregistered no
    /// reclaimer can reach the cache.
    fn retire(&self) {
        let Some(owned) = self.enter_waiting() else {
            return;
        };
        mem::forget(owned);
        self.retired.set(true);
        self.last_free.set(&NO_ENTRY.0);
        for e in self.entries() {
            if e.stamp.load(Ordering::Relaxed) != 0 {
                e.flush(true);
                self.release(e);
                e.stamp.store(0, Ordering::Relaxed);
            }
        }
        let key = self.key.replace(0);
        let mut threads = THREADS.lock();
        if key != 0 {
            threads.remove(key - 1);
        }
        let v = self.overflow.replace(ptr::null_mut());
        drop(threads);
        if !v.is_null() {
            // SAFETY: made by Box::into_raw in `entry`; unregistered, so no
            // reader can reach it any more.
            drop(unsafe { Box::from_raw(v) });
        }
    }

    /// The entry for pool `id`, created if needed.
    fn entry(&self, id: usize) -> &Entry {
        if let Some(e) = self.inline().get(id) {
            return e;
        }
        let index = id - INLINE;
        if index >= self.overflow().len() {
            let _guard = THREADS.lock();
            if self.overflow.get().is_null() {
                self.overflow.set(Box::into_raw(Box::default()));
            }
            // SAFETY: non-null from above; this thread is the only writer,
            // and readers on other threads hold THREADS, which we hold.
            let v = unsafe { &mut *self.overflow.get() };
            v.resize_with(index + 1, || Box::new(Entry::new()));
        }
        let e: *const Entry = &*self.overflow()[index];
        // SAFETY: `e` points into a box owned by self that is only freed by
        // `retire`, on this thread, after which no entry is handed out.
        unsafe { &*e }
    }

    /// The entry for `inner`, bound to its current stamp: a stale entry is
    /// flushed first (to its old pool's chunks). None once the thread exits.
    fn bind(&self, inner: *const Inner) -> Option<&Entry> {
        if !self.register() {
            return None;
        }
        // SAFETY: callers hold a reference to `inner` (its handle or an object).
        let hot = unsafe { &(*inner).hot.0 };
        let e = self.entry(hot.id);
        let current = hot.stamp.load(Ordering::Acquire);
        let old = e.stamp.load(Ordering::Relaxed);
        if old != current {
            e.flush(false);
            if old >> 32 != current >> 32 {
                // Another pool (maybe of another slot size): a new grant.
                self.release(e);
            }
            e.inner.set(inner);
            e.stamp.store(current, Ordering::Relaxed);
        }
        Some(e)
    }
}

/// The owner's hold on its lists during a slow path
/// ([`ThreadCache::enter`]); dropping it lets the reclaimer in again.
struct Owned<'a>(&'a ThreadCache);

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        self.0.state.store(IDLE, Ordering::Release);
    }
}

/// Set once [`crate::sys::membarrier`] failed: without the barrier there
/// is no reclaim.
#[cfg(target_os = "linux")]
static NO_BARRIER: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Thread caches reclaimed per round (the rest wait for the next).
#[cfg(target_os = "linux")]
const RECLAIM_BATCH: usize = 64;

/// Reclaims the lists of threads that ran no pool slow path for `decay_ms`
/// (never if negative; with 0, none since the previous call): every list
/// keeps its top object, the rest go back to their pools (see the module
/// doc). Called with the time (ms) by the pool layer's idle hook
/// (`registry::trim_idle`) on each round of the background purger.
/// Allocates nothing.
#[cfg(target_os = "linux")]
pub(crate) fn reclaim_quiet(now: u64, decay_ms: i64) {
    if decay_ms < 0 {
        return;
    }
    reclaim(|tc| tc.quiet_for(now).is_some_and(|q| q >= decay_ms as u64));
}

/// Reclaims the lists of every registered thread for which `quiet` holds
/// (called under [`THREADS`] on each of them) and that holds objects to
/// take, up to [`RECLAIM_BATCH`]: blocks their fast paths, then one
/// barrier, then takes all but the top object of each list.
#[cfg(target_os = "linux")]
fn reclaim(mut quiet: impl FnMut(&ThreadCache) -> bool) {
    if NO_BARRIER.load(Relaxed) {
        return;
    }
    let mut picked = [ptr::null::<ThreadCache>(); RECLAIM_BATCH];
    let mut n = 0;
    for (_, t) in THREADS.lock().iter() {
        // SAFETY: registered caches are alive while THREADS is held.
        let tc = unsafe { &*t.0 };
        // Taken under THREADS, so the thread cannot be gone meanwhile;
        // once RECLAIMING, its exit hook waits for us.
        if quiet(tc)
            && n < RECLAIM_BATCH
            && tc.holds_spare()
            && tc
                .state
                .compare_exchange(IDLE, RECLAIMING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            picked[n] = tc;
            n += 1;
        }
    }
    if n == 0 {
        return;
    }
    let picked = &picked[..n];
    for &tc in picked {
        // SAFETY: we hold it RECLAIMING (above).
        unsafe { &*tc }.block();
    }
    let fenced = crate::sys::membarrier();
    if !fenced {
        NO_BARRIER.store(true, Relaxed);
    }
    for &tc in picked {
        // SAFETY: we hold it RECLAIMING (above) until the store below,
        // after which it is not touched.
        let tc = unsafe { &*tc };
        // Without the barrier nothing is taken: the owner's next slow path
        // settles the blocked bounds to the lists' lengths.
        if fenced {
            tc.take();
        }
        tc.state.store(RECLAIMED, Ordering::Release);
    }
}

/// In the child of a fork (the caller is its only thread): a reclaimer
/// that was at the caller's lists is gone. What it took is in the
/// entries' [`Entry::taken`] (written before the objects went back) and
/// the bounds it blocked are settled at the next slow path: the lists
/// become the owner's again, as after a reclaim.
#[cfg(not(loom))]
pub(crate) fn after_fork_in_child() {
    with_cache(|tc| {
        let _ =
            tc.state
                .compare_exchange(RECLAIMING, RECLAIMED, Ordering::Relaxed, Ordering::Relaxed);
    });
}

/// Frees a stack's storage (not the objects on it).
///
/// # Safety
///
/// `slots` is null with `cap` 0, or a stack made by [`Slots::new`] (in
/// [`ThreadCache::grow`], or handed back by the depot) with `cap` entries
/// that no entry points at any more.
unsafe fn free_stack(slots: Stack, cap: usize) {
    // SAFETY: forwarded contract.
    unsafe { Slots { base: slots, cap }.free() };
}

/// Takes one free object of a pool: from this thread's entry at `index`
/// when it has one above its low-water mark, else on the slow path from
/// the pool `inner` returns (which may initialise it).
///
/// # Safety
///
/// `index` is an [`entry_index`]: [`MISS`], or that of the pool `inner`
/// returns, which the caller keeps alive.
#[inline(always)]
pub(crate) unsafe fn alloc(
    index: usize,
    inner: impl FnOnce() -> Result<*const Inner, AllocError>,
) -> Result<NonNull<u8>, AllocError> {
    // The fast path yields an `Option<NonNull>` (a bare pointer, null: go
    // slow), so that no `Result` travels through memory on the hot path.
    let fast = with_cache(|tc| {
        fast_path_fence();
        // SAFETY: per the contract.
        let e = unsafe { tc.at(index) };
        let top = e.top.load(Ordering::Relaxed);
        // No stamp check: an entry holding objects serves the live pool
        // with this id (its objects keep that pool alive, so the id cannot
        // have passed to another pool), which is the caller's. A trim
        // epoch is noticed at the next free or when the list runs dry. The
        // pop stops at the low-water mark (`low <= top`); the MISS entry
        // always stops (null <= null), and so does a reclaimed entry
        // (`low` at the end of its storage).
        if top > e.low.load(Ordering::Relaxed) {
            // SAFETY: above the mark, so inside the stack, on an object.
            let top = unsafe { top.sub(1) };
            e.top.store(top, Ordering::Relaxed);
            // SAFETY: an initialized entry, a free object of the pool with
            // this id, which is ours. Read as `NonNull` (objects are never
            // null), so the caller's test of the `Option` folds into this
            // branch.
            Some(unsafe { top.cast::<NonNull<u8>>().read() })
        } else {
            None
        }
    });
    match fast {
        Some(p) => Ok(p),
        None => alloc_slow(inner),
    }
}

/// Gives an object back to `inner`'s pool through this thread's list.
///
/// # Safety
///
/// `obj` is an object slot that nothing references, in the live chunk
/// whose header is `chunk`.
#[inline(always)]
pub(crate) unsafe fn free(chunk: *const ChunkHeader, obj: NonNull<u8>) {
    // SAFETY: per the contract, the chunk is live; its owner was written
    // once at creation.
    let inner = unsafe { (*chunk).owner };
    with_cache(|tc| {
        fast_path_fence();
        // The entry is the one this thread freed to last (at first
        // `NO_ENTRY`, which never takes an object), confirmed by its stamp
        // (stamps are unique per pool). Its address does not depend on the
        // object's, so the load of the chunk header stays off the chain of
        // dependent loads the next operation waits for.
        // SAFETY: `last_free` points into this cache's inline table, or
        // at `NO_ENTRY`.
        let e = unsafe { &*tc.last_free.get() };
        // SAFETY: `obj` keeps its chunk, and so `inner`, alive.
        if unsafe { push(e, inner, obj) } {
            return;
        }
        // Read only on a miss: the hit path above needs no second word of
        // the header.
        // SAFETY: live per the contract; written once at creation.
        let entry = unsafe { (*chunk).entry };
        // SAFETY: the pool's entry index.
        let e = unsafe { tc.at(entry) };
        // SAFETY: as above.
        if unsafe { push(e, inner, obj) } {
            tc.last_free.set(e);
            return;
        }
        free_slow(tc, inner, obj)
    })
}

/// [`Entry::taken`] of an entry whose base is `slots` and bound `end`.
fn taken(slots: Stack, end: Stack) -> usize {
    (slots as usize).saturating_sub(end as usize) / mem::size_of::<Stack>()
}

/// The fast paths' side of the reclaim protocol (see the module doc): no
/// instruction, but the compiler keeps each fast-path call's accesses to
/// an entry after those of the call before.
#[inline(always)]
fn fast_path_fence() {
    #[cfg(target_os = "linux")]
    crate::sync::light_fence();
}

/// Pushes `obj` on `e` if the entry serves `inner` and has room (a
/// reclaimed entry has none: its bound is the base of its storage).
///
/// # Safety
///
/// `inner` is alive and `obj` is a free object of it.
#[inline(always)]
unsafe fn push(e: &Entry, inner: *const Inner, obj: NonNull<u8>) -> bool {
    let top = e.top.load(Ordering::Relaxed);
    // SAFETY: alive per the contract.
    let stamp = unsafe { (*inner).hot.0.stamp.load(Ordering::Relaxed) };
    if top < e.end.load(Ordering::Relaxed) && e.stamp.load(Ordering::Relaxed) == stamp {
        // SAFETY: below the bound, so inside the stack.
        unsafe {
            top.write(obj.as_ptr());
            e.top.store(top.add(1), Ordering::Relaxed);
        }
        true
    } else {
        false
    }
}

#[cold]
#[inline(never)]
fn alloc_slow(
    inner: impl FnOnce() -> Result<*const Inner, AllocError>,
) -> Result<NonNull<u8>, AllocError> {
    let inner = inner()?;
    with_cache(|tc| alloc_cached(tc, inner))
}

fn alloc_cached(tc: &ThreadCache, inner: *const Inner) -> Result<NonNull<u8>, AllocError> {
    if crate::debug::bypass() {
        return alloc_debug(inner);
    }
    let Some(_owned) = tc.enter() else {
        // The reclaimer is at the lists: take the object straight from the
        // pool.
        return alloc_uncached(inner);
    };
    let Some(e) = tc.bind(inner) else {
        // The thread is exiting: take the object straight from the pool.
        return alloc_uncached(inner);
    };
    // SAFETY: alive per the caller's contract.
    if unsafe { (*inner).hot.0.closed.load(Ordering::Acquire) } {
        // The pool handle is gone: cache nothing more of it.
        return alloc_uncached(inner);
    }
    // SAFETY: alive per the caller's contract.
    let (config, slot) = unsafe { (&(*inner).hot.0.config, (*inner).hot.0.geo.slot) };
    let mut n = e.len();
    if n == 0 {
        tc.tick();
        let bound = tc.grow_bound(e, slot, config.batch);
        if bound == 0 {
            // The budget cannot hold one object of this pool.
            return alloc_uncached(inner);
        }
        // SAFETY: alive per the contract; the stack has room for `bound`.
        n = unsafe { Inner::refill(inner, e.at(0), config.batch.min(bound)) }?;
    }
    // SAFETY: n > 0 objects on the stack.
    let p = unsafe { *e.at(n - 1) };
    e.set_len(n - 1);
    // A pop at the mark (the fast path stopped there) lowers it.
    e.set_low(e.low().min(n - 1));
    // SAFETY: objects are never null.
    Ok(unsafe { NonNull::new_unchecked(p) })
}

#[cold]
#[inline(never)]
fn free_slow(tc: &ThreadCache, inner: *const Inner, obj: NonNull<u8>) {
    if crate::debug::bypass() {
        // SAFETY: forwarded contract of `free`.
        return unsafe { free_debug(inner, obj) };
    }
    let Some(_owned) = tc.enter() else {
        // The reclaimer is at the lists: hand the object straight to the
        // pool.
        // SAFETY: a free object of `inner`; `inner` is not used afterwards.
        unsafe { Inner::put(inner, &obj.as_ptr(), 1, true) };
        return;
    };
    let Some(e) = tc.bind(inner) else {
        // The thread is exiting: hand the object straight to the pool.
        // SAFETY: a free object of `inner`; `inner` is not used afterwards.
        unsafe { Inner::put(inner, &obj.as_ptr(), 1, true) };
        return;
    };
    // SAFETY: `obj` keeps `inner` alive.
    if unsafe { (*inner).hot.0.closed.load(Ordering::Acquire) } {
        // The pool handle is gone: hand the object straight back, so the
        // pool's memory goes once its last object does.
        // SAFETY: a free object of `inner`; `inner` is not used afterwards.
        unsafe { Inner::put(inner, &obj.as_ptr(), 1, false) };
        return;
    }
    // SAFETY: `obj` keeps `inner` alive.
    let (config, slot) = unsafe { (&(*inner).hot.0.config, (*inner).hot.0.geo.slot) };
    // The GC may shorten the list: its length is read after.
    tc.tick();
    let mut n = e.len();
    if n == e.bound() {
        // Grow toward `local_max` from what is left of the budget.
        let want = (n * 2).max(config.batch).min(config.local_max);
        let bound = tc.grow_bound(e, slot, want);
        if bound == 0 {
            // The budget cannot hold one object of this pool.
            // SAFETY: a free object of `inner`; `inner` is not used afterwards.
            unsafe { Inner::put(inner, &obj.as_ptr(), 1, true) };
            return;
        }
        if n == bound {
            n = tc.hand_over(e, inner, n, config.batch);
        }
        if n == bound {
            let moved = config.batch.min(n);
            n -= moved;
            e.set_len(n);
            e.set_low(e.low().min(n));
            // SAFETY: the top `moved` entries are free objects of `inner`,
            // now off the stack; `obj` still keeps `inner` alive.
            unsafe { Inner::put(inner, e.at(n), moved, true) };
        }
    }
    // SAFETY: n < bound <= cap after the above.
    unsafe { e.at(n).write(obj.as_ptr()) };
    e.set_len(n + 1);
}

fn alloc_uncached(inner: *const Inner) -> Result<NonNull<u8>, AllocError> {
    let mut p = ptr::null_mut();
    // SAFETY: alive per the caller's contract; room for one pointer.
    unsafe { Inner::refill(inner, &mut p, 1) }?;
    // SAFETY: refill wrote one object on success.
    Ok(unsafe { NonNull::new_unchecked(p) })
}

/// Allocation in a debug mode: straight from the chunks (no thread list,
/// no depot), so every object passes the checks of both directions.
fn alloc_debug(inner: *const Inner) -> Result<NonNull<u8>, AllocError> {
    let p = alloc_uncached(inner)?;
    // SAFETY: alive per the caller's contract; `p` is a fresh slot of it.
    unsafe {
        #[cfg(any(feature = "checks", debug_assertions))]
        super::checks::pool_reused(&*inner, p.as_ptr());
        crate::debug::record_site(p.as_ptr(), (*inner).serial());
    }
    Ok(p)
}

/// Free in a debug mode: checked, poisoned, and straight into the chunk,
/// whose bitmap then tells a double free.
///
/// # Safety
///
/// As [`free`].
unsafe fn free_debug(inner: *const Inner, obj: NonNull<u8>) {
    crate::debug::forget_site(obj.as_ptr());
    // SAFETY: `obj` keeps `inner` alive and lies in one of its chunks.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        super::checks::pool_freed(&*inner, obj.as_ptr())
    };
    // SAFETY: a free object of `inner`; `inner` is not used afterwards.
    unsafe { Inner::put(inner, &obj.as_ptr(), 1, false) };
}

/// Flushes the calling thread's list for `inner` into its chunks, if it
/// has one bound to that pool.
///
/// # Safety
///
/// The caller holds a reference to `inner` that outlives the call.
pub(crate) unsafe fn flush_current(inner: *const Inner) {
    with_cache(|tc| {
        // SAFETY: per the contract.
        let hot = unsafe { &(*inner).hot.0 };
        if tc.key.get() == 0 {
            return;
        }
        // A trim promises the list is flushed: wait for a reclaimer.
        let Some(_owned) = tc.enter_waiting() else {
            return;
        };
        let e = tc.entry(hot.id);
        if e.stamp.load(Ordering::Relaxed) >> 32 == hot.stamp.load(Ordering::Relaxed) >> 32 {
            e.flush(false);
        }
    });
}

/// Objects cached by all threads for the pool with `id` and `serial`, and
/// how many threads hold a list for it; the thread registry's lock is
/// taken as `wait` says. Allocates nothing.
pub(crate) fn cached_in_threads(id: usize, serial: u32, wait: Wait) -> (usize, usize) {
    let threads = THREADS.lock_with(wait);
    let (mut objects, mut holders) = (0, 0);
    for (_, t) in threads.iter() {
        // SAFETY: registered caches are alive while THREADS is held; their
        // owners only change `overflow` while holding THREADS too.
        let tc = unsafe { &*t.0 };
        let e: Option<&Entry> = match tc.inline().get(id) {
            Some(e) => Some(e),
            None => tc.overflow().get(id - INLINE).map(|b| &**b),
        };
        if let Some(e) = e {
            if e.stamp.load(Ordering::Relaxed) >> 32 == u64::from(serial) {
                objects += tc.shared_len(e);
                holders += 1;
            }
        }
    }
    (objects, holders)
}

/// Reclaims the lists of every registered thread; for the loom models.
#[cfg(loom)]
pub(crate) fn reclaim_all() {
    reclaim(|_| true);
}

/// The calling thread's bound entries, as (stamp, objects cached); for the
/// loom models.
#[cfg(loom)]
pub(crate) fn bound_lists() -> Vec<(u64, usize)> {
    with_cache(|tc| {
        tc.entries()
            .map(|e| (e.stamp.load(Ordering::Relaxed), e.len() - e.taken()))
            .filter(|&(stamp, _)| stamp != 0)
            .collect()
    })
}
