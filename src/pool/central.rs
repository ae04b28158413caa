//! The shared half of a pool: [`Inner`], its depot and its chunks.
//!
//! One `Inner` exists per pool, on the heap, so that chunks can point at it
//! and a non-static pool can be dropped while objects are still alive. It is
//! freed when the pool handle is gone and its last chunk was given back
//! (`refs` counts the handle and the chunks).
//!
//! Everything mutable sits behind one short lock, [`Central`]: the depot (a
//! bounded store of free object pointers that threads exchange batches with)
//! and the list of chunks that have free slots. Threads take it only to move
//! a batch, never per object.
//!
//! The depot holds free objects two ways. A thread whose list runs full
//! hands the list's storage over whole ([`Inner::hand_over`]): the stack
//! goes into the depot as a [`Block`] by pointer and the thread takes back
//! an emptied stack kept for that ([`SPARE_STACKS`]), so the work under
//! the lock is a few words whatever the list's length, and the freeing
//! thread copies nothing. Everything else
//! (thread exit, the lists' GC, a stale or short list) copies its objects
//! into a plain vector (`loose`). A refill copies a batch out of the loose
//! vector, else off the top of the newest block; a block emptied by refills
//! becomes a spare stack.

use core::ptr;

use super::chunk::{ChunkHeader, Geometry};
use super::config::ResolvedConfig;
use crate::error::AllocError;
use crate::list::List;
use crate::sync::stat;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, Tracked};

/// Fully free chunks a pool keeps instead of returning them at once.
const SPARE_CHUNKS: usize = 1;

/// Emptied stacks the depot keeps for threads that hand a full list over
/// (more are freed).
const SPARE_STACKS: usize = 2;

/// Storage for a stack of free object pointers: `cap` slots from the
/// global allocator. A thread's list lives in one; a full list's goes to
/// the depot whole ([`Inner::hand_over`]) and comes back empty.
#[derive(Clone, Copy)]
pub(crate) struct Slots {
    /// The first slot.
    pub base: *mut *mut u8,
    /// Slots in the allocation.
    pub cap: usize,
}

impl Slots {
    /// Allocates `cap` (> 0) uninitialised slots.
    pub(crate) fn new(cap: usize) -> Slots {
        debug_assert!(cap > 0);
        let raw = Box::<[core::mem::MaybeUninit<*mut u8>]>::new_uninit_slice(cap);
        Slots {
            base: Box::into_raw(raw).cast::<*mut u8>(),
            cap,
        }
    }

    /// Frees the storage (not the objects it may point at).
    ///
    /// # Safety
    ///
    /// `self` was made by [`Slots::new`] (or has `cap` 0), and nothing uses
    /// its slots any more.
    pub(crate) unsafe fn free(self) {
        if self.cap > 0 {
            let raw = ptr::slice_from_raw_parts_mut(
                self.base.cast::<core::mem::MaybeUninit<*mut u8>>(),
                self.cap,
            );
            // SAFETY: made by `Slots::new` from a boxed slice of exactly `cap`.
            drop(unsafe { Box::from_raw(raw) });
        }
    }
}

/// A thread's list handed to the depot whole: its first `len` slots are
/// free objects (`len > 0`; a block emptied by refills leaves the depot).
struct Block {
    slots: Slots,
    len: usize,
}

/// Aligns its content to a cache line so writers of one field do not slow
/// readers of a neighbour.
#[repr(align(128))]
pub(crate) struct CacheAligned<T>(pub T);

/// The shared, heap-allocated state of one pool.
pub(crate) struct Inner {
    /// Read on every operation; changes only on trim.
    pub hot: CacheAligned<Hot>,
    /// Depot and chunk list.
    central: CacheAligned<Mutex<Central>>,
    /// Counters for statistics, written on batch moves.
    pub counters: CacheAligned<Counters>,
    /// Uses and destruction of this state, for loom (nothing otherwise).
    pub alive: Tracked,
}

/// The read-mostly part of [`Inner`].
pub(crate) struct Hot {
    /// Index of the pool in the registry; picks the thread-cache entry.
    pub id: usize,
    /// `local::entry_index(id)`: where the fast paths find that entry.
    pub entry: usize,
    /// `serial << 32 | trim epoch`; a thread-cache entry is valid for this
    /// pool only while its stamp equals this value.
    pub stamp: AtomicU64,
    /// The object layout's chunk geometry.
    pub geo: Geometry,
    /// Effective configuration.
    pub config: ResolvedConfig,
    /// `core::any::type_name` of the object type.
    pub type_name: &'static str,
    /// `size_of` of the object type.
    pub object_size: usize,
    /// The pool handle was dropped: threads stop caching its objects.
    pub closed: AtomicBool,
}

/// Statistics counters of one pool, all updated under the central lock or
/// on cold paths, read without it.
#[derive(Default)]
pub(crate) struct Counters {
    pub chunks: stat::AtomicUsize,
    pub chunk_free: stat::AtomicUsize,
    pub depot: stat::AtomicUsize,
    pub batches_to_depot: stat::AtomicU64,
    pub batches_from_depot: stat::AtomicU64,
    pub contention: stat::AtomicU64,
    pub chunks_made: stat::AtomicU64,
    pub chunks_released: stat::AtomicU64,
    /// One for the pool handle plus one per chunk held.
    pub refs: AtomicUsize,
    /// Batch moves through the central lock (written under it with a load
    /// and a store), so the background purger can tell an idle pool.
    pub activity: AtomicU64,
    /// The purger's own record (only it writes): the `activity` it last
    /// saw, since when (ms), and whether it trimmed the pool since. (No
    /// purger where there is no arena.)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub idle_seen: AtomicU64,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub idle_since: AtomicU64,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub idle_trimmed: AtomicBool,
}

struct Central {
    /// Objects copied into the depot one by one.
    loose: Vec<*mut u8>,
    /// Full lists handed over whole, newest last.
    blocks: Vec<Block>,
    /// Emptied stacks for the next hand-over, at most [`SPARE_STACKS`].
    spare: Vec<Slots>,
    /// Objects in the depot: `loose` and the blocks together.
    held: usize,
    /// Chunks with at least one free slot; partly used ones first, wholly
    /// free ones at the tail.
    chunks: List<ChunkHeader>,
    /// Wholly free chunks in the list.
    empty: usize,
    /// The pool handle is gone: keep no spare chunks.
    closed: bool,
    /// Objects out of the chunks: in use, in threads' lists, in the depot
    /// (`chunks * capacity - free slots in chunks`). What a cap counts.
    out: usize,
}

// SAFETY: the raw pointers in Central point into chunks owned by this pool
// or at stacks it owns (blocks, spares); they are only followed under the
// lock that wraps Central, or by the one thread a stack was handed to.
unsafe impl Send for Central {}

impl Drop for Central {
    /// Frees any stack left in the depot (closing the pool drains it and
    /// no block enters a closed pool's depot, so normally none).
    fn drop(&mut self) {
        for stack in self
            .blocks
            .drain(..)
            .map(|b| b.slots)
            .chain(self.spare.drain(..))
        {
            // SAFETY: the depot's own stacks, made by `Slots::new`; the
            // pool is going away, nothing uses them.
            unsafe { stack.free() };
        }
    }
}

/// Chunks unlinked under the lock, to be unmapped after it is released.
#[must_use]
pub(crate) struct Released(List<ChunkHeader>);

impl Inner {
    /// Makes the shared state of a new pool.
    pub(crate) fn new(
        id: usize,
        serial: u32,
        geo: Geometry,
        config: ResolvedConfig,
        type_name: &'static str,
        object_size: usize,
    ) -> Inner {
        let counters = Counters::default();
        counters.refs.store(1, Ordering::Relaxed);
        Inner {
            hot: CacheAligned(Hot {
                id,
                entry: super::local::entry_index(id),
                stamp: AtomicU64::new(u64::from(serial) << 32),
                geo,
                config,
                type_name,
                object_size,
                closed: AtomicBool::new(false),
            }),
            central: CacheAligned(Mutex::new(Central {
                loose: Vec::new(),
                blocks: Vec::new(),
                spare: Vec::new(),
                held: 0,
                chunks: List::new(),
                empty: 0,
                closed: false,
                out: 0,
            })),
            counters: CacheAligned(counters),
            alive: Tracked::default(),
        }
    }

    /// The serial number of this pool (never reused in a process).
    pub(crate) fn serial(&self) -> u32 {
        (self.hot.0.stamp.load(Ordering::Relaxed) >> 32) as u32
    }

    /// Starts a new trim epoch: every thread's list for this pool becomes
    /// stale and is flushed at that thread's next operation on the pool.
    pub(crate) fn new_epoch(&self) {
        let _ = self
            .hot
            .0
            .stamp
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
                Some((s & !0xFFFF_FFFF) | (s.wrapping_add(1) & 0xFFFF_FFFF))
            });
    }

    /// Reports (and aborts) unless `obj` is an object this pool handed out
    /// and has not had back (exact only while threads cache nothing, as in
    /// the debug modes).
    ///
    /// # Safety
    ///
    /// `obj` lies in a live chunk of this pool.
    #[cfg(any(feature = "checks", debug_assertions))]
    pub(crate) unsafe fn check_handed_out(&self, obj: *mut u8) {
        let _c = self.lock();
        // SAFETY: lock held; `obj` is in a live chunk of ours.
        unsafe { ChunkHeader::check_handed_out(obj, &self.hot.0.geo, self.hot.0.type_name) };
    }

    /// Runs `f` holding the central lock (test hook, see
    /// `Pool::with_depot_locked`).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn with_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _c = self.lock();
        f()
    }

    /// Takes the central lock without a guard (fork's prepare handler).
    #[cfg(not(loom))]
    pub(crate) fn lock_for_fork(&self) {
        self.central.0.lock_for_fork();
    }

    /// Releases the lock [`Inner::lock_for_fork`] took; with `child`,
    /// replaces it by a fresh one.
    ///
    /// # Safety
    ///
    /// As [`crate::sync::Mutex::unlock_after_fork`], and with `child` as
    /// [`crate::sync::Mutex::reset_after_fork`].
    #[cfg(not(loom))]
    pub(crate) unsafe fn unlock_after_fork(&self, child: bool) {
        // SAFETY: forwarded contract.
        unsafe {
            if child {
                self.central.0.reset_after_fork();
            } else {
                self.central.0.unlock_after_fork();
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Central> {
        if let Some(guard) = self.central.0.try_lock() {
            return guard;
        }
        self.counters.0.contention.fetch_add(1, Ordering::Relaxed);
        self.central.0.lock()
    }

    /// Fills `out[..want]` with free objects: from the depot if it has any,
    /// else from the chunks, mapping a new chunk if needed. Returns how many
    /// were written (at least one on success).
    ///
    /// # Safety
    ///
    /// `this` is a live pool with the provenance of its allocation (made by
    /// [`super::registry::create`]; new chunks store it), the caller holds
    /// one of its references for the call, `out` is valid for `want` writes
    /// and `want > 0`.
    pub(crate) unsafe fn refill(
        this: *const Inner,
        out: *mut *mut u8,
        want: usize,
    ) -> Result<usize, AllocError> {
        // SAFETY: alive per the contract; only used for field access, `this`
        // itself goes into new chunks.
        let inner = unsafe { &*this };
        inner.refill_from(this, out, want)
    }

    /// [`Inner::refill`] on `self`, which is `*this`.
    fn refill_from(
        &self,
        this: *const Inner,
        out: *mut *mut u8,
        want: usize,
    ) -> Result<usize, AllocError> {
        let geo = self.hot.0.geo;
        let mut c = self.lock();
        self.alive.used();
        self.active();
        if c.held > 0 {
            let (n, emptied) = c.take(out, want);
            self.counters.0.depot.store(c.held, Ordering::Relaxed);
            self.counters
                .0
                .batches_from_depot
                .fetch_add(1, Ordering::Relaxed);
            drop(c);
            if let Some(stack) = emptied {
                // SAFETY: an emptied block's stack, no longer in the depot.
                unsafe { stack.free() };
            }
            return Ok(n);
        }
        // The cap, checked under the lock: only here do objects leave the
        // chunks (depot objects above are already counted).
        let cap = self.hot.0.config.max_objects.unwrap_or(usize::MAX);
        loop {
            let room = cap.saturating_sub(c.out);
            if room == 0 {
                return Err(AllocError::PoolFull {
                    pool: self.hot.0.config.name.unwrap_or(self.hot.0.type_name),
                    max_objects: cap,
                });
            }
            // SAFETY: we hold the lock; `out` has room for `want`, more
            // than `want.min(room)`.
            let got = unsafe { c.carve(&geo, out, want.min(room)) };
            if got > 0 {
                c.out += got;
                self.counters.0.chunk_free.fetch_sub(got, Ordering::Relaxed);
                return Ok(got);
            }
            // Map outside the lock: it is a system call.
            drop(c);
            // SAFETY: `this` is this live pool, with its allocation's
            // provenance (contract of `refill`).
            let chunk = unsafe { ChunkHeader::create(this, &geo, self.hot.0.config.backing) }?;
            self.counters.0.refs.fetch_add(1, Ordering::Relaxed);
            self.counters.0.chunks.fetch_add(1, Ordering::Relaxed);
            self.counters.0.chunks_made.fetch_add(1, Ordering::Relaxed);
            self.counters
                .0
                .chunk_free
                .fetch_add(geo.capacity, Ordering::Relaxed);
            c = self.lock();
            // SAFETY: a fresh chunk of ours, in no list yet; lock held.
            unsafe { c.chunks.push_front(chunk.as_ptr()) };
            c.empty += 1;
        }
    }

    /// Hands `n` free objects at `objs` to the pool: to the depot while it
    /// has room (if `to_depot`), the rest back into their chunks.
    ///
    /// # Safety
    ///
    /// `this` is a live pool whose reference the caller holds through these
    /// objects or its handle; the `n` pointers are free objects of it,
    /// referenced nowhere else. `this` may be freed by the call.
    pub(crate) unsafe fn put(this: *const Inner, objs: *const *mut u8, n: usize, to_depot: bool) {
        // SAFETY: alive per the contract until `release` below.
        let inner = unsafe { &*this };
        let dropped = inner.put_locked(objs, n, to_depot);
        // SAFETY: `inner` is not used past this point.
        unsafe { Inner::release(this, dropped) };
    }

    fn put_locked(&self, objs: *const *mut u8, n: usize, to_depot: bool) -> usize {
        let mut c = self.lock();
        self.alive.used();
        self.active();
        let mut done = 0;
        if to_depot && !c.closed {
            let room = self.hot.0.config.depot_max.saturating_sub(c.held);
            let moved = room.min(n);
            if moved > 0 {
                // SAFETY: the caller gives n readable pointers; moved <= n.
                c.loose
                    .extend_from_slice(unsafe { core::slice::from_raw_parts(objs, moved) });
                c.held += moved;
                self.counters.0.depot.store(c.held, Ordering::Relaxed);
                self.counters
                    .0
                    .batches_to_depot
                    .fetch_add(1, Ordering::Relaxed);
                done = moved;
            }
        }
        let mut released = Released::none();
        if done < n {
            // SAFETY: the remaining pointers are free objects of this pool.
            unsafe { self.reclaim_locked(&mut c, objs.add(done), n - done, &mut released) };
        }
        drop(c);
        self.unmap(released, true)
    }

    /// Takes a thread's full list whole: the stack `full`, whose first `n`
    /// slots are free objects, goes into the depot as it is, and an empty
    /// stack of at least `cap` slots comes back (a spare the depot kept, or
    /// a new one). None, with nothing taken, while the pool is closing or
    /// the depot has no room for `n` more objects.
    ///
    /// # Safety
    ///
    /// `this` is a live pool whose reference the caller holds through
    /// these objects; `full` was made by [`Slots::new`] and holds `n > 0`
    /// free objects of it, and on success the caller no longer uses it.
    pub(crate) unsafe fn hand_over(
        this: *const Inner,
        full: Slots,
        n: usize,
        cap: usize,
    ) -> Option<Slots> {
        // SAFETY: alive per the contract; no chunk is released here, so
        // the objects keep it alive for the whole call.
        let inner = unsafe { &*this };
        let mut c = inner.lock();
        inner.alive.used();
        if c.closed || c.held + n > inner.hot.0.config.depot_max {
            return None;
        }
        inner.active();
        c.blocks.push(Block {
            slots: full,
            len: n,
        });
        c.held += n;
        let spare = match c.spare.last() {
            Some(s) if s.cap >= cap => c.spare.pop(),
            _ => None,
        };
        inner.counters.0.depot.store(c.held, Ordering::Relaxed);
        inner
            .counters
            .0
            .batches_to_depot
            .fetch_add(1, Ordering::Relaxed);
        drop(c);
        Some(spare.unwrap_or_else(|| Slots::new(cap)))
    }

    /// Counts a batch move (central lock held).
    #[inline]
    fn active(&self) {
        let a = &self.counters.0.activity;
        a.store(a.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Returns objects to their chunks and unlinks chunks that become wholly
    /// free beyond the spare allowance, into `released`.
    ///
    /// # Safety
    ///
    /// Lock held through `c`; the objects are free objects of this pool.
    unsafe fn reclaim_locked(
        &self,
        c: &mut Central,
        objs: *const *mut u8,
        n: usize,
        released: &mut Released,
    ) {
        let geo = &self.hot.0.geo;
        for i in 0..n {
            // SAFETY: i < n, within the caller's array; the object belongs to
            // a live chunk of ours and the lock is held.
            let chunk = unsafe { ChunkHeader::give_back(*objs.add(i), geo, self.hot.0.type_name) };
            // SAFETY: a live chunk of ours, in our list or (full) in none;
            // lock held.
            if !unsafe { c.chunks.contains(chunk) } {
                // SAFETY: as above; it was full, so in no list.
                unsafe { c.chunks.push_front(chunk) };
            }
            // SAFETY: as above.
            if unsafe { ChunkHeader::free(chunk) } == geo.capacity {
                c.empty += 1;
                // SAFETY: listed chunk of ours.
                unsafe { c.chunks.remove(chunk) };
                if c.empty > self.spare(c) {
                    c.empty -= 1;
                    // SAFETY: just unlinked.
                    unsafe { released.0.push_front(chunk) };
                } else {
                    // SAFETY: just unlinked.
                    unsafe { c.chunks.push_back(chunk) };
                }
            }
        }
        c.out -= n;
        self.counters.0.chunk_free.fetch_add(n, Ordering::Relaxed);
    }

    fn spare(&self, c: &Central) -> usize {
        if c.closed {
            0
        } else {
            SPARE_CHUNKS
        }
    }

    /// Empties the depot into the chunks and gives every wholly free chunk
    /// back; with `close`, the pool handle is going away and its reference
    /// is dropped too.
    ///
    /// # Safety
    ///
    /// `this` is a live pool; with `close`, the caller owns the handle's
    /// reference and does not use `this` afterwards.
    /// With `keep: false` the freed chunks go back to the OS at once (see
    /// [`ChunkHeader::destroy`]).
    pub(crate) unsafe fn trim_central(this: *const Inner, close: bool, keep: bool) {
        // SAFETY: alive per the contract until `release` below.
        let inner = unsafe { &*this };
        let dropped = inner.trim_locked(close, keep) + usize::from(close);
        // SAFETY: `inner` is not used past this point.
        unsafe { Inner::release(this, dropped) };
    }

    fn trim_locked(&self, close: bool, keep: bool) -> usize {
        let mut c = self.lock();
        self.alive.used();
        c.closed |= close;
        let loose = core::mem::take(&mut c.loose);
        let blocks = core::mem::take(&mut c.blocks);
        let spare = core::mem::take(&mut c.spare);
        c.held = 0;
        self.counters.0.depot.store(0, Ordering::Relaxed);
        let mut released = Released::none();
        // SAFETY: depot entries are free objects of this pool; so are a
        // block's first `len` slots.
        unsafe {
            self.reclaim_locked(&mut c, loose.as_ptr(), loose.len(), &mut released);
            for b in &blocks {
                self.reclaim_locked(&mut c, b.slots.base, b.len, &mut released);
            }
        }
        // Release the spares too.
        let mut chunk = c.chunks.head();
        while !chunk.is_null() {
            // SAFETY: listed chunks are live chunks of ours; lock held.
            let next = unsafe { List::next(chunk) };
            // SAFETY: as above.
            if unsafe { ChunkHeader::free(chunk) } == self.hot.0.geo.capacity {
                // SAFETY: listed chunk of ours, then in no list.
                unsafe {
                    c.chunks.remove(chunk);
                    released.0.push_front(chunk);
                }
                c.empty -= 1;
            }
            chunk = next;
        }
        drop(c);
        drop(loose);
        for stack in blocks.iter().map(|b| b.slots).chain(spare) {
            // SAFETY: out of the depot, objects given back: nothing uses it.
            unsafe { stack.free() };
        }
        self.unmap(released, keep)
    }

    /// Unmaps released chunks; returns how many references they held, which
    /// the caller must drop with [`Inner::release`].
    fn unmap(&self, mut released: Released, keep: bool) -> usize {
        let n = released.0.len();
        if n == 0 {
            return 0;
        }
        let geo = self.hot.0.geo;
        loop {
            let chunk = released.0.pop_front();
            if chunk.is_null() {
                break;
            }
            // SAFETY: released chunks are wholly free, ours, and now in no
            // list; nothing references their objects.
            unsafe { ChunkHeader::destroy(chunk, &geo, self.hot.0.config.backing, keep) };
        }
        self.counters.0.chunks.fetch_sub(n, Ordering::AcqRel);
        self.counters
            .0
            .chunks_released
            .fetch_add(n as u64, Ordering::Relaxed);
        self.counters
            .0
            .chunk_free
            .fetch_sub(n * geo.capacity, Ordering::Relaxed);
        n
    }

    /// How long (ms) the purger has seen no batch move, or 0 when there was
    /// one since its last look or it trimmed the pool in this idle spell
    /// ([`Inner::mark_trimmed`]). Only the purger thread calls this.
    #[cfg(target_os = "linux")]
    pub(crate) fn idle_for(&self, now: u64) -> u64 {
        let k = &self.counters.0;
        let seen = k.activity.load(Ordering::Relaxed);
        if seen != k.idle_seen.load(Ordering::Relaxed) || k.idle_since.load(Ordering::Relaxed) == 0
        {
            k.idle_seen.store(seen, Ordering::Relaxed);
            k.idle_since.store(now.max(1), Ordering::Relaxed);
            k.idle_trimmed.store(false, Ordering::Relaxed);
            return 0;
        }
        if k.idle_trimmed.load(Ordering::Relaxed) {
            return 0;
        }
        now.saturating_sub(k.idle_since.load(Ordering::Relaxed))
    }

    /// Records that the purger trimmed this pool in its current idle spell.
    #[cfg(target_os = "linux")]
    pub(crate) fn mark_trimmed(&self) {
        self.counters.0.idle_trimmed.store(true, Ordering::Relaxed);
    }

    /// Takes one more reference unless the last one is gone (a pool that
    /// is being destroyed can still be registered for a moment).
    #[cfg(target_os = "linux")]
    pub(crate) fn take_ref(&self) -> bool {
        let refs = &self.counters.0.refs;
        let mut n = refs.load(Ordering::Relaxed);
        while n > 0 {
            match refs.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Drops `n` references; frees the pool's shared state on the last.
    ///
    /// # Safety
    ///
    /// `this` came from [`super::registry::create`], the caller owns `n` of
    /// its references, and does not use `this` after the call.
    pub(crate) unsafe fn release(this: *const Inner, n: usize) {
        if n == 0 {
            return;
        }
        // SAFETY: the caller's references keep it alive until here.
        let prev = unsafe { &*this }
            .counters
            .0
            .refs
            .fetch_sub(n, Ordering::AcqRel);
        if prev == n {
            // SAFETY: that was the last reference: no chunk, no handle, no
            // cached object refers to it any more.
            unsafe { super::registry::destroy(this) };
        }
    }
}

impl Released {
    fn none() -> Released {
        Released(List::new())
    }
}

impl Central {
    /// Copies up to `want` objects out of the depot (which holds some) to
    /// `out`: from the loose vector, else off the newest block. Returns
    /// how many, and an emptied block's stack when the depot keeps no more
    /// spares (the caller frees it after the lock).
    fn take(&mut self, out: *mut *mut u8, want: usize) -> (usize, Option<Slots>) {
        let have = self.loose.len();
        if have > 0 {
            let n = have.min(want);
            // SAFETY: the source is the loose vector's last n entries, the
            // destination has room for want >= n entries; they don't overlap.
            unsafe { ptr::copy_nonoverlapping(self.loose.as_ptr().add(have - n), out, n) };
            self.loose.truncate(have - n);
            self.held -= n;
            return (n, None);
        }
        let b = self
            .blocks
            .last_mut()
            .expect("a depot with objects and no loose ones has a block");
        let n = b.len.min(want);
        b.len -= n;
        // SAFETY: the block's slots `len - n..len` hold objects; the
        // destination has room for want >= n entries; distinct allocations.
        unsafe { ptr::copy_nonoverlapping(b.slots.base.add(b.len), out, n) };
        self.held -= n;
        if b.len > 0 {
            return (n, None);
        }
        let stack = self.blocks.pop().expect("the block above").slots;
        if self.spare.len() < SPARE_STACKS {
            self.spare.push(stack);
            (n, None)
        } else {
            (n, Some(stack))
        }
    }

    /// # Safety
    /// Lock held; `out` valid for `want` writes.
    unsafe fn carve(&mut self, geo: &Geometry, out: *mut *mut u8, want: usize) -> usize {
        let mut got = 0;
        while got < want && !self.chunks.is_empty() {
            let chunk = self.chunks.head();
            // SAFETY: listed chunks are live chunks of ours; lock held.
            let was_empty = unsafe { ChunkHeader::free(chunk) } == geo.capacity;
            // SAFETY: lock held; out has room for want - got more.
            got += unsafe { ChunkHeader::take(chunk, geo, out.add(got), want - got) };
            if was_empty {
                self.empty -= 1;
            }
            // SAFETY: as above.
            if unsafe { ChunkHeader::free(chunk) } == 0 {
                // SAFETY: listed chunk.
                unsafe { self.chunks.remove(chunk) };
            }
        }
        got
    }
}

/// A snapshot of the central counters.
pub(crate) struct CentralSnapshot {
    pub chunks: usize,
    pub chunk_free: usize,
    pub depot: usize,
    pub batches_to_depot: u64,
    pub batches_from_depot: u64,
    pub contention: u64,
    pub chunks_made: u64,
    pub chunks_released: u64,
}

impl Inner {
    /// Reads the counters without taking the lock.
    pub(crate) fn snapshot(&self) -> CentralSnapshot {
        let c = &self.counters.0;
        CentralSnapshot {
            chunks: c.chunks.load(Ordering::Relaxed),
            chunk_free: c.chunk_free.load(Ordering::Relaxed),
            depot: c.depot.load(Ordering::Relaxed),
            batches_to_depot: c.batches_to_depot.load(Ordering::Relaxed),
            batches_from_depot: c.batches_from_depot.load(Ordering::Relaxed),
            contention: c.contention.load(Ordering::Relaxed),
            chunks_made: c.chunks_made.load(Ordering::Relaxed),
            chunks_released: c.chunks_released.load(Ordering::Relaxed),
        }
    }
}
