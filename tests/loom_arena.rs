//! Loom models of the arena's cross-thread free protocol: regions of one
//! small class moving between thread caches and their owner's bin, frees
//! of objects another thread allocated, slabs going to the spare or back
//! to the runs, and the fork handlers' forced locks.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_arena`
//!
//! # What is modelled, and from where
//!
//! The real arena cannot run under loom: its thread caches are std
//! `thread_local!`s (loom runs its threads on one OS thread), its chunks
//! are `mmap`ed and its metadata is reached through raw pointers. So this
//! file is a faithful copy of the protocol: the same functions, the same
//! steps in the same order, the same atomic orderings, on loom's atomics
//! and `UnsafeCell`. Each function names the code it mirrors; when that
//! code changes, this model must change with it.
//!
//! | model | mirrors |
//! |---|---|
//! | [`SpinLock::lock`], `lock_contended`, [`Guard`] drop | `arena/lock.rs` `SpinLock::lock`, `lock_contended`, `Guard::drop` |
//! | [`SpinLock::force_lock`] / [`SpinLock::force_unlock`] | the same (fork handlers) |
//! | [`Bin`] | `arena/bin.rs` `Bin` (`nonfull`, `spare`) |
//! | [`Slab`] | the bin-guarded fields of `RunMeta` (`free_bits`, `nfree`, `prev`, `next`) |
//! | [`Run`] | the run-lock-guarded fields of `RunMeta` (`state`, `class`) and the slab's page map entries |
//! | [`Arena::alloc_run`] / [`Arena::free_run`] | `Arena::alloc_run` / `Arena::free_run` (buckets abstracted) |
//! | [`Arena::bin_fill`] | `Arena::bin_fill` |
//! | [`Arena::bin_flush`] | `Arena::bin_flush` (+ `report_bad_free`) |
//! | [`Arena::locate`] | `bin.rs` `locate` |
//! | [`Arena::init_slab`], [`Arena::list_push`], [`Arena::list_remove`] | `init_slab`, `list_push`, `list_remove` |
//! | [`Arena::fork_prepare`] / [`Arena::fork_release`] | `Arena::fork_prepare` / `fork_release` |
//! | [`Arena::small_class_at`] | `arena/free.rs` `small_class_at` |
//! | [`Thread::alloc`] / `alloc_slow` | `arena/tcache.rs` `alloc` / `alloc_slow` (+ `alloc::alloc_direct`) |
//! | [`Thread::free`] / `free_slow` | `tcache::free` / `free_slow` (with its set-up path) |
//! | [`Thread::free_unchecked`] | `free::free_unchecked` (small objects) |
//! | `Thread::setup` | `tcache::setup` + `make` |
//! | `Thread::flush` | `tcache::flush` (small classes) |
//! | [`Thread::thread_exit`] | `tcache::thread_exit` -> `flush_all` |
//!
//! Abstracted: one arena and one small class; a "pointer" is a region
//! number (slab * [`REGIONS`] + index), so address arithmetic and the
//! `CLASS_RECIP` division are the identity; the chunk has room for
//! [`NSLABS`] slab runs and the run lock guards which of them are free (the
//! buckets, coalescing and dirty list are not modelled; mapping a chunk
//! fails); the class's stack bound is [`CACHE_MAX`] (the real one is at
//! least 8), so fills take one region and a full stack flushes one;
//! `bin_flush` gets at most `CACHE_MAX` pointers, so its `STEP` loop runs
//! once; statistics counters, decay ticks and the cache registry are left
//! out. Waiters for a held lock queue on a loom mutex so that one spins at
//! a time (see `lock_contended` for why this hides no ordering). No
//! preemption bound is needed. Each region's memory is a loom `UnsafeCell` holding its current
//! owner, written on allocation and on free, so a region handed to two
//! owners at once, or handed out again before its free is ordered before,
//! is reported by loom or by the cell's assertion. At the end every region
//! of an allocated slab is found exactly once: free in its bitmap, in a
//! thread cache, or held.
//!
//! # Checked to fail
//!
//! Each mutation below was applied by hand (never committed) and the models
//! run; each was reported:
//!
//! | mutation | reported by |
//! |---|---|
//! | `Guard::drop` stores with `Relaxed` | all three models: loom, concurrent write accesses to an `UnsafeCell` |
//! | `bin_flush` sets the bit before the double-free check | all three: "was freed twice" |
//! | `bin_flush` flips bits without taking the bin lock | all three: loom, concurrent accesses to an `UnsafeCell` |
//! | `bin_fill` does not clear the region's bit | all three: "handed out while in use" |
//! | `bin_flush` leaves a wholly free slab on the list when the spare is taken | xmalloc and remote frees: "on the list was given back" (the fork model never gives a slab back) |
//! | `free_slow` lowers the count without moving the rest down (no `copy_within`) | xmalloc: "was freed twice" (the only model whose stack overflows) |
//! | `force_unlock` stores with `Relaxed` | the fork model: loom, concurrent write accesses to an `UnsafeCell` |
//!
//! Run time: 12 to 19 s (median 16 s, three runs) for the three models in
//! release on a busy 2-core machine, nearly all of it the three-thread
//! model.
#![cfg(loom)]

use loom::cell::{MutPtr, UnsafeCell};
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// `SLAB_REGIONS[c]` of the modelled class.
const REGIONS: usize = 2;
/// Slab runs the model's chunk has room for.
const NSLABS: usize = 2;
/// Every region of every slab.
const NREGIONS: usize = REGIONS * NSLABS;
/// `Count::max` of the class (the real bound is `(2 * regions).clamp(8, 128)`).
const CACHE_MAX: usize = 2;
/// The modelled class.
const CLASS: usize = 3;

/// A region: its slab times [`REGIONS`] plus its index (a pointer).
type Region = usize;

/// `lock.rs` `SpinLock`: a spin-then-yield lock over one `AtomicU32`.
struct SpinLock<T> {
    locked: AtomicU32,
    data: UnsafeCell<T>,
    /// Model only: lets one waiter at a time spin (see `lock_contended`).
    turnstile: Mutex<()>,
}

/// `lock.rs` `Guard`: holds the lock; loom tracks the access until drop.
struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
    data: Option<MutPtr<T>>,
}

impl<T> SpinLock<T> {
    fn new(data: T) -> Self {
        SpinLock {
            locked: AtomicU32::new(0),
            data: UnsafeCell::new(data),
            turnstile: Mutex::new(()),
        }
    }

    /// `SpinLock::lock`.
    fn lock(&self) -> Guard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Guard {
            lock: self,
            data: Some(self.data.get_mut()),
        }
    }

    /// `SpinLock::lock_contended` (`spin_loop` and `yield_now` both let
    /// loom run another thread). Model only: waiters queue on a loom mutex
    /// so that one spins at a time, because loom's scheduler can alternate
    /// two spinning threads forever without running the holder
    /// (tokio-rs/loom#53). The queue hides no missing ordering: a waiter
    /// leaves it only after its acquiring CAS, and the next waiter's CAS
    /// then reads that thread's release store or a later one, so the
    /// lock's own release/acquire already orders everything the queue does.
    fn lock_contended(&self) {
        let _turn = self.turnstile.lock().unwrap();
        let mut spins = 0u32;
        loop {
            if self.locked.load(Ordering::Relaxed) == 0
                && self
                    .locked
                    .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if spins < 64 {
                spins += 1;
                loom::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
    }

    /// `SpinLock::force_lock`: the lock taken without a guard.
    fn force_lock(&self) {
        let mut g = self.lock();
        drop(g.data.take());
        core::mem::forget(g);
    }

    /// `SpinLock::force_unlock`.
    fn force_unlock(&self) {
        self.locked.store(0, Ordering::Release);
    }

    /// Reads the data while the lock is held by [`SpinLock::force_lock`].
    fn peek_forced<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: loom's cell; the caller holds the lock (loom checks it).
        self.data.with(|p| f(unsafe { &*p }))
    }
}

impl<T> core::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held; loom checks it.
        unsafe { self.data.as_ref().unwrap().deref() }
    }
}

impl<T> core::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, exclusively.
        unsafe { self.data.as_ref().unwrap().deref() }
    }
}

impl<T> Drop for Guard<'_, T> {
    /// `Guard::drop` (the access ends before the lock is released).
    fn drop(&mut self) {
        drop(self.data.take());
        self.lock.locked.store(0, Ordering::Release);
    }
}

/// `bin.rs` `Bin`: the non-full list's head and the spare slab.
#[derive(Default)]
struct Bin {
    nonfull: Option<usize>,
    spare: Option<usize>,
}

/// The fields of a slab's `RunMeta` guarded by the bin lock.
#[derive(Default)]
struct Slab {
    free_bits: u64,
    nfree: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// The fields of a run's `RunMeta` guarded by the run lock, with its page
/// map entries: written by `alloc_run` and `free_run`, read without a lock
/// by `locate` and `small_class_at`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Run {
    Free,
    Slab { class: usize },
}

/// `runs.rs` `Runs`, abstracted: which slab-sized runs are free.
struct Runs {
    free: [bool; NSLABS],
}

/// One arena with one small class's bin.
struct Arena {
    bin: SpinLock<Bin>,
    runs: SpinLock<Runs>,
    slabs: [UnsafeCell<Slab>; NSLABS],
    run: [UnsafeCell<Run>; NSLABS],
    /// `Arena::active_pages`: written under the run lock by load+store.
    active: AtomicUsize,
    /// Each region's memory: who owns it now (None while free).
    regions: [UnsafeCell<Option<usize>>; NREGIONS],
}

impl Arena {
    fn new() -> Arc<Arena> {
        Arc::new(Arena {
            bin: SpinLock::new(Bin::default()),
            runs: SpinLock::new(Runs {
                free: [true; NSLABS],
            }),
            slabs: core::array::from_fn(|_| UnsafeCell::new(Slab::default())),
            run: core::array::from_fn(|_| UnsafeCell::new(Run::Free)),
            active: AtomicUsize::new(0),
            regions: core::array::from_fn(|_| UnsafeCell::new(None)),
        })
    }

    /// Runs `f` on slab `m`'s bin-guarded metadata (bin lock held).
    fn slab<R>(&self, m: usize, f: impl FnOnce(&mut Slab) -> R) -> R {
        // SAFETY: loom's cell; loom checks the bin lock orders the accesses.
        self.slabs[m].with_mut(|s| f(unsafe { &mut *s }))
    }

    /// `add`/`sub` on a counter written only under the run lock.
    fn add_active(&self, n: isize) {
        let v = self.active.load(Ordering::Relaxed);
        self.active
            .store(v.checked_add_signed(n).unwrap(), Ordering::Relaxed);
    }

    /// `Arena::alloc_run` for a slab: the first free run, marked a slab of
    /// `class` in its metadata and page map. None when the chunk is full
    /// (`map_chunk` is not modelled).
    fn alloc_run(&self, r: &mut Runs, class: usize) -> Option<usize> {
        let m = r.free.iter().position(|&f| f)?;
        r.free[m] = false;
        // SAFETY: loom's cell; written under the run lock.
        self.run[m].with_mut(|p| unsafe { *p = Run::Slab { class } });
        self.add_active(1);
        Some(m)
    }

    /// `Arena::free_run` of a slab: its page map no longer names a class,
    /// the run becomes free.
    fn free_run(&self, r: &mut Runs, m: usize) {
        // SAFETY: loom's cell; written under the run lock, and no one may
        // still `locate` a region of a wholly free slab.
        self.run[m].with_mut(|p| unsafe { *p = Run::Free });
        self.add_active(-1);
        assert!(!r.free[m], "slab {m} given back twice");
        r.free[m] = true;
    }

    /// `init_slab`: every region free.
    fn init_slab(&self, m: usize) {
        self.slab(m, |s| {
            s.nfree = REGIONS;
            s.free_bits = (1u64 << REGIONS) - 1;
        });
    }

    /// `list_push`.
    fn list_push(&self, bin: &mut Bin, m: usize) {
        let head = bin.nonfull;
        self.slab(m, |s| {
            s.prev = None;
            s.next = head;
        });
        if let Some(h) = head {
            self.slab(h, |s| s.prev = Some(m));
        }
        bin.nonfull = Some(m);
    }

    /// `list_remove`.
    fn list_remove(&self, bin: &mut Bin, m: usize) {
        let (p, q) = self.slab(m, |s| (s.prev, s.next));
        match p {
            None => bin.nonfull = q,
            Some(p) => self.slab(p, |s| s.next = q),
        }
        if let Some(q) = q {
            self.slab(q, |s| s.prev = p);
        }
    }

    /// `Arena::bin_fill`: up to `want` regions into `out`; how many.
    fn bin_fill(&self, class: usize, want: usize, out: &mut Vec<Region>) -> usize {
        let mut bin = self.bin.lock();
        let mut got = 0;
        while got < want {
            let m = match bin.nonfull {
                Some(m) => m,
                None => {
                    let m = if bin.spare.is_none() {
                        let mut r = self.runs.lock();
                        let run = self.alloc_run(&mut r, class);
                        drop(r);
                        match run {
                            Some(m) => {
                                self.init_slab(m);
                                m
                            }
                            None => break,
                        }
                    } else {
                        bin.spare.take().unwrap()
                    };
                    self.list_push(&mut bin, m);
                    m
                }
            };
            let full = self.slab(m, |s| {
                while got < want && s.nfree > 0 {
                    let b = s.free_bits.trailing_zeros() as usize;
                    s.free_bits &= s.free_bits - 1;
                    out.push(m * REGIONS + b);
                    s.nfree -= 1;
                    got += 1;
                }
                s.nfree == 0
            });
            if full {
                self.list_remove(&mut bin, m);
            }
        }
        got
    }

    /// `locate`: the slab of region `p` and its index, from the run's
    /// metadata read without a lock; a bad pointer aborts.
    fn locate(&self, p: Region, class: usize) -> (usize, usize) {
        let m = p / REGIONS;
        // SAFETY: loom's cell; `p` is allocated, so the write that made
        // its run a slab must happen before (loom checks it).
        let run = self.run[m].with(|r| unsafe { *r });
        if run != (Run::Slab { class }) {
            panic!("invalid free: region {p} is not an allocated object of its size class");
        }
        (m, p % REGIONS)
    }

    /// `Arena::bin_flush`: locate every region outside the lock, then flip
    /// their bits under it.
    fn bin_flush(&self, class: usize, ptrs: &[Region]) {
        assert!(ptrs.len() <= CACHE_MAX, "one STEP of the real loop");
        let found: Vec<(usize, usize)> = ptrs.iter().map(|&p| self.locate(p, class)).collect();
        let mut bin = self.bin.lock();
        for (&(m, i), &p) in found.iter().zip(ptrs) {
            let bit = 1u64 << i;
            let (was_full, empty) = self.slab(m, |s| {
                if s.free_bits & bit != 0 {
                    panic!("invalid free: region {p} was freed twice");
                }
                s.free_bits |= bit;
                let was_full = s.nfree == 0;
                s.nfree += 1;
                (was_full, s.nfree == REGIONS)
            });
            if empty {
                if !was_full {
                    self.list_remove(&mut bin, m);
                }
                if bin.spare.is_none() {
                    self.init_slab(m);
                    bin.spare = Some(m);
                } else {
                    let mut r = self.runs.lock();
                    self.free_run(&mut r, m);
                }
            } else if was_full {
                self.list_push(&mut bin, m);
            }
        }
    }

    /// `Arena::fork_prepare`: every lock of the arena, bins first.
    fn fork_prepare(&self) {
        self.bin.force_lock();
        self.runs.force_lock();
    }

    /// `Arena::fork_release`.
    fn fork_release(&self) {
        self.runs.force_unlock();
        self.bin.force_unlock();
    }

    /// `free::small_class_at`: the class from the page map alone.
    fn small_class_at(&self, p: Region) -> Option<usize> {
        // SAFETY: loom's cell; as in `locate`.
        match self.run[p / REGIONS].with(|r| unsafe { *r }) {
            Run::Slab { class } => Some(class),
            Run::Free => None,
        }
    }

    /// The bin's invariants, checked with both locks held: each slab's
    /// `nfree` matches its bitmap, the non-full list holds exactly the
    /// partly used slabs, the spare is wholly free and off the list, and
    /// the active count matches the slab runs.
    fn check_bin(&self, bin: &Bin, runs: &Runs) {
        let mut listed = Vec::new();
        let mut at = bin.nonfull;
        let mut prev = None;
        while let Some(m) = at {
            assert!(!runs.free[m], "slab {m} on the list was given back");
            let (p, n, nfree) = self.slab(m, |s| (s.prev, s.next, s.nfree));
            assert_eq!(p, prev, "list links of slab {m}");
            assert!(
                nfree > 0 && nfree < REGIONS,
                "slab {m} listed with {nfree} free"
            );
            listed.push(m);
            prev = at;
            at = n;
        }
        for m in 0..NSLABS {
            // SAFETY: loom's cell; the run lock is held.
            let run = self.run[m].with(|r| unsafe { *r });
            assert_eq!(run == Run::Free, runs.free[m], "run state of slab {m}");
            if runs.free[m] {
                continue;
            }
            let (bits, nfree) = self.slab(m, |s| (s.free_bits, s.nfree));
            assert_eq!(bits.count_ones() as usize, nfree, "nfree of slab {m}");
            if bin.spare == Some(m) {
                assert_eq!(nfree, REGIONS, "the spare slab is in use");
                assert!(!listed.contains(&m), "the spare slab is listed");
            } else if nfree > 0 {
                assert!(listed.contains(&m), "slab {m} with free regions unlisted");
            }
        }
        let slabs = runs.free.iter().filter(|&&f| !f).count();
        assert_eq!(self.active.load(Ordering::Relaxed), slabs, "active count");
    }

    /// Quiescent: the bin is consistent and every region of an allocated
    /// slab is in exactly one place: free in its bitmap, in one of the
    /// `cached` stacks, or `held`; a region of a free run is nowhere.
    fn account(&self, cached: &[&[Region]], held: &[Region]) {
        let bin = self.bin.lock();
        let runs = self.runs.lock();
        self.check_bin(&bin, &runs);
        let mut seen = [0usize; NREGIONS];
        for &p in cached.iter().copied().flatten().chain(held) {
            seen[p] += 1;
        }
        for (p, &n) in seen.iter().enumerate() {
            let m = p / REGIONS;
            let free = !runs.free[m] && self.slab(m, |s| s.free_bits & (1 << (p % REGIONS)) != 0);
            let places = n + usize::from(free);
            if runs.free[m] {
                assert_eq!(places, 0, "region {p} of a given-back slab is in use");
            } else {
                assert_eq!(places, 1, "region {p} is in {places} places");
            }
        }
    }
}

/// `tcache.rs`'s `TCACHE`: not set up, a live cache, or none.
#[derive(PartialEq)]
enum Tc {
    Null,
    Live,
    Dead,
}

/// One thread: its `TCACHE` state and its stack for the class.
struct Thread {
    arena: Arc<Arena>,
    /// Who this thread is, written into the regions it owns.
    me: usize,
    /// `init::tcache_enabled()`.
    enabled: bool,
    tc: Tc,
    /// `Tcache::stacks[c][..n]`, bottom first.
    stack: Vec<Region>,
    /// `Count::max` (0: not cached).
    max: usize,
}

impl Thread {
    fn new(arena: &Arc<Arena>, me: usize, enabled: bool) -> Thread {
        Thread {
            arena: arena.clone(),
            me,
            enabled,
            tc: Tc::Null,
            stack: Vec::new(),
            max: 0,
        }
    }

    /// `tcache::setup` + `make`.
    fn setup(&mut self) {
        if self.enabled {
            self.tc = Tc::Live;
            self.max = CACHE_MAX;
        } else {
            self.tc = Tc::Dead;
        }
    }

    /// `tcache::alloc`: pop, else `alloc_slow`.
    fn alloc_raw(&mut self, c: usize) -> Option<Region> {
        if self.tc == Tc::Live {
            if let Some(p) = self.stack.pop() {
                return Some(p);
            }
        }
        self.alloc_slow(c)
    }

    /// `tcache::alloc_slow` (`arena()` sets the thread up) and
    /// `alloc::alloc_direct`.
    fn alloc_slow(&mut self, c: usize) -> Option<Region> {
        if self.tc == Tc::Null {
            self.setup();
        }
        if self.tc == Tc::Live && self.max > 0 {
            let want = (self.max / 2).max(1);
            let got = self.arena.bin_fill(c, want, &mut self.stack);
            if got == 0 {
                return None;
            }
            return self.stack.pop();
        }
        let mut p = Vec::new();
        (self.arena.bin_fill(c, 1, &mut p) == 1).then(|| p[0])
    }

    /// `tcache::free`: push if there is room, else `free_slow`.
    fn free_raw(&mut self, p: Region, c: usize) {
        if self.tc == Tc::Live && self.stack.len() < self.max {
            self.stack.push(p);
            return;
        }
        self.free_slow(p, c);
    }

    /// `tcache::free_slow`: a thread whose first call is a free sets up
    /// its cache; a full stack flushes its older half.
    fn free_slow(&mut self, p: Region, c: usize) {
        if self.tc == Tc::Null {
            self.setup();
            if self.tc == Tc::Live {
                return self.free_raw(p, c);
            }
        }
        if self.tc == Tc::Live && self.max > 0 {
            let half = (self.max / 2).max(1);
            self.flush(c, &self.stack[..half]);
            self.stack.drain(..half);
            self.stack.push(p);
            return;
        }
        self.flush(c, &[p]);
    }

    /// `tcache::flush` for a small class (one arena: one group).
    fn flush(&self, c: usize, ptrs: &[Region]) {
        self.arena.bin_flush(c, ptrs);
    }

    /// `free::free_unchecked` for a small object: the class from the
    /// page map, then `tcache::free`.
    fn free_unchecked(&mut self, p: Region) {
        let Some(c) = self.arena.small_class_at(p) else {
            panic!("invalid free: region {p} is not the start of an allocated block");
        };
        self.free_raw(p, c);
    }

    /// `tcache::thread_exit`: the thread is marked dead, its stack flushed.
    fn thread_exit(&mut self) {
        if self.tc != Tc::Live {
            return;
        }
        self.tc = Tc::Dead;
        let items = core::mem::take(&mut self.stack);
        if !items.is_empty() {
            self.flush(CLASS, &items);
        }
    }

    /// A user's allocation: takes a region and writes it (its owner).
    fn alloc(&mut self) -> Region {
        let p = self.alloc_raw(CLASS).expect("the model ran out of slabs");
        let me = self.me;
        // SAFETY: loom's cell; a race here is a region with two owners.
        self.arena.regions[p].with_mut(|o| unsafe {
            assert_eq!(*o, None, "region {p} handed out while in use");
            *o = Some(me);
        });
        p
    }

    /// A user's free (C `free`): the owner's writes must happen before.
    fn free(&mut self, p: Region) {
        // SAFETY: loom's cell; as above.
        self.arena.regions[p].with_mut(|o| unsafe {
            assert!((*o).is_some(), "region {p} freed while free");
            *o = None;
        });
        self.free_unchecked(p);
    }
}

/// Explores every interleaving (no preemption bound unless
/// `LOOM_MAX_PREEMPTIONS` is set).
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(f);
}

/// The xmalloc pattern: the owning thread allocates three objects and
/// hands each to a consumer (through a release/acquire slot, the user's
/// queue); the consumer, whose first allocator call is a free, sets up its
/// cache, overflows it (flushing a region to the owner's bin) and flushes
/// the rest when it exits, while the owner refills for a fourth object,
/// frees it and exits too. Both slabs end wholly free: one is kept as the
/// spare, the other given back, whichever thread empties it.
#[test]
fn xmalloc_remote_frees() {
    model(|| {
        let arena = Arena::new();
        let slots: Arc<[AtomicUsize; 3]> = Arc::new(core::array::from_fn(|_| AtomicUsize::new(0)));
        let consumer = {
            let (arena, slots) = (arena.clone(), slots.clone());
            thread::spawn(move || {
                let mut t = Thread::new(&arena, 1, true);
                for slot in slots.iter() {
                    let p = loop {
                        match slot.load(Ordering::Acquire) {
                            0 => thread::yield_now(),
                            v => break v - 1,
                        }
                    };
                    t.free(p);
                }
                t.thread_exit();
            })
        };
        let mut owner = Thread::new(&arena, 0, true);
        for slot in slots.iter() {
            let p = owner.alloc();
            slot.store(p + 1, Ordering::Release);
        }
        let p = owner.alloc();
        owner.free(p);
        owner.thread_exit();
        consumer.join().unwrap();
        arena.account(&[], &[]);
        let runs = arena.runs.lock();
        assert_eq!(runs.free.iter().filter(|&&f| f).count(), 1);
    });
}

/// Two threads free objects of the owner's bin at once, one without a
/// thread cache (each free goes straight to `bin_flush`), one setting its
/// cache up on its first free and flushing it when it exits, while the
/// owner fills for a new object (possibly a region just freed) and keeps
/// it. Every region ends in exactly one place.
#[test]
fn remote_frees_race_a_fill() {
    model(|| {
        let arena = Arena::new();
        let mut owner = Thread::new(&arena, 0, true);
        let (a, b, c) = (owner.alloc(), owner.alloc(), owner.alloc());
        let direct = {
            let arena = arena.clone();
            thread::spawn(move || {
                let mut t = Thread::new(&arena, 1, false);
                t.free(a);
            })
        };
        let cached = {
            let arena = arena.clone();
            thread::spawn(move || {
                let mut t = Thread::new(&arena, 2, true);
                t.free(b);
                t.free(c);
                t.thread_exit();
            })
        };
        let d = owner.alloc();
        direct.join().unwrap();
        cached.join().unwrap();
        arena.account(&[&owner.stack], &[d]);
    });
}

/// The fork handlers take the arena's locks while another thread frees a
/// remote object and refills: with the locks forced, the bin is
/// consistent (no free is half done), and after `fork_release` the other
/// thread goes on and every region is accounted for.
#[test]
fn fork_handlers_see_a_consistent_bin() {
    model(|| {
        let arena = Arena::new();
        let mut owner = Thread::new(&arena, 0, true);
        let (a, b) = (owner.alloc(), owner.alloc());
        let other = {
            let arena = arena.clone();
            thread::spawn(move || {
                let mut t = Thread::new(&arena, 1, false);
                t.free(a);
                let p = t.alloc();
                t.free(p);
            })
        };
        arena.fork_prepare();
        arena
            .bin
            .peek_forced(|bin| arena.runs.peek_forced(|runs| arena.check_bin(bin, runs)));
        arena.fork_release();
        other.join().unwrap();
        arena.account(&[&owner.stack], &[b]);
    });
}
