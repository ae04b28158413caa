//! Loom models of the arena allocator's real small-object paths: a thread
//! cache filling from its arena's bin, a full cache flushing into the
//! owning arena's bin (another thread's arena: a remote free), a thread's
//! exit hook flushing its cache, the fork handlers taking every lock, and
//! the background purger reclaiming a thread's cache while the thread
//! works, all at once.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_arena`
//!
//! # What runs
//!
//! The real code, through [`HotAlloc`]: `tcache::alloc`/`alloc_slow`,
//! `Arena::bin_fill`, `tcache::free`/`free_slow`/`flush`,
//! `Arena::bin_flush` and `locate`, the slab list and spare handling,
//! `alloc_run`/`free_run`, `tcache::setup`/`make`, `tcache::thread_exit`
//! and the arena's `SpinLock`, and the purger's `tcache::reclaim` with the
//! owner's `own`/`compact`. Under `--cfg loom`, [`hotpool`]'s
//! `src/sync.rs` switches what loom must see: the spin lock's word is a
//! loom atomic (its spin wait yields to loom), so are a thread cache's
//! heights, bounds and state word (`RawU32`/`RawU16`), the fast paths'
//! compiler fence and the purger's `membarrier` are `SeqCst` fences (the
//! pair gives the model the barrier's guarantee), the thread-cache pointer and
//! the arena index are loom thread-locals, the pthread-key exit hook is a
//! loom thread-local whose `Drop` runs `tcache::thread_exit`, every access
//! to a lock's data and to a slab's metadata in `bin_fill`/`bin_flush` is
//! recorded as a loom `UnsafeCell` write (so accesses not ordered by the
//! lock are reported), and the memory mapped in an execution is unmapped
//! when the next starts (`loom_hooks::reset`, which also puts every
//! process-wide static back). Statistics counters stay plain atomics;
//! thread caches hold 2 objects per class (a fill takes one, a full cache
//! flushes one); `narenas:2`, so the first two threads get an arena each
//! and a free of the other's object goes to the other's bin. Time stands
//! still (no decay purging). Preemption bounds (`model`'s first argument,
//! overridden by `LOOM_MAX_PREEMPTIONS`): 2 for the fill/flush and
//! reclaim models, 1 for the other two (four threads; and the fork handlers take every
//! lock, 77 with two arenas): with a bound of 2 the fork model ran past
//! 400 s and the remote-frees model past 80 s.
//!
//! The objects are of the 10 KiB class: two regions per slab, so slabs
//! fill, empty, become the bin's spare or go back to the runs after a few
//! operations. Each object's ownership is a loom `UnsafeCell` too (written
//! when handed out and when freed), so an object handed to two owners, or
//! handed out before its free happened-before, is reported; each owner
//! also writes its id into the object and finds it there when freeing.
//! At the end the class's counts balance (nothing held), and a fresh
//! thread taking twice as many objects as the model used (as many as
//! their slabs hold) gets them all distinct, every object used before
//! among them, and no memory newly mapped: freed objects, remote ones
//! included, are reusable, none lost or doubled.
//!
//! # Checked to fail
//!
//! Each mutation below, the list the former copied model was checked
//! against, was applied by hand to the real code (never committed) and
//! the models run (one at a time, `cargo test ... -- NAME`):
//!
//! | mutation (real code) | reported by |
//! |---|---|
//! | `Guard::drop` stores with `Relaxed` (`lock.rs`) | all three: loom, "Concurrent write accesses to `UnsafeCell`" (a lock guard's access in a free) |
//! | `bin_flush` sets the bit before the double-free check | all three: "invalid free: ... was freed twice; aborting" (the allocator's report, SIGABRT) |
//! | `bin_flush` flips bits before taking the bin lock | all three: loom, concurrent writes to a slab's metadata (`bin_flush`'s access) |
//! | `bin_fill` does not clear the region's bit | all three: "object ... handed out while in use" |
//! | `bin_flush` leaves a wholly free slab on the list when the spare is taken | fill/flush and remote frees: "handed out while in use" (the fork model frees too little) |
//! | `free_slow` lowers the count without moving the rest down (no `copy_within`) | fill/flush: "was freed twice" (the only model whose cache overflows) |
//! | `reclaim` takes the top object too (`n`, not `n - 1`) | reclaim: "range end index out of range" (`compact` finds more taken than held) |
//! | the fast paths' `light_fence` removed | reclaim: as above (two pops on the old bounds) |
//! | `own` lets a slow path at the stacks while the purger reclaims them | reclaim: "was freed twice; aborting" |
//! | `force_unlock` stores with `Relaxed` | the fork model: loom, concurrent writes to a lock's data (fork's copy against the other thread) |
//!
//! Run time: the three models take 8.5 s in release (`finished in`, on a
//! busy 2-core machine; 35 s at its busiest), nearly all of it the
//! fill/flush model.
#![cfg(loom)]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use hotpool::arena::loom_hooks;
use hotpool::HotAlloc;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

/// Two regions per 5-page slab.
const SIZE: usize = 10 << 10;

fn layout() -> Layout {
    Layout::from_size_align(SIZE, 8).unwrap()
}

/// The objects' owners, shared by one execution's threads.
#[derive(Clone, Default)]
struct Owners {
    /// A loom cell per object address: who holds it (0: nobody).
    cells: Arc<Mutex<HashMap<usize, Arc<UnsafeCell<usize>>>>>,
}

impl Owners {
    // Sharing loom's cell between threads is the point: loom checks every
    // access to it.
    #[allow(clippy::arc_with_non_send_sync)]
    fn cell(&self, p: usize) -> Arc<UnsafeCell<usize>> {
        // loom never switches threads inside this std lock (no loom
        // operation inside).
        self.cells
            .lock()
            .unwrap()
            .entry(p)
            .or_insert_with(|| Arc::new(UnsafeCell::new(0)))
            .clone()
    }

    /// Allocates an object for `me` (> 0).
    fn alloc(&self, me: usize) -> usize {
        // SAFETY: a non-zero size.
        let p = unsafe { HotAlloc.alloc(layout()) };
        assert!(!p.is_null(), "the arena ran out of memory");
        self.cell(p as usize).with_mut(|o| {
            // SAFETY: loom's cell; a race here is an object with two owners.
            let o = unsafe { &mut *o };
            assert_eq!(*o, 0, "object {p:p} handed out while in use");
            *o = me;
        });
        // SAFETY: the object is ours, at least SIZE bytes.
        unsafe { p.cast::<usize>().write(me) };
        p as usize
    }

    /// Frees an object `owner` allocated (`me` may be another thread).
    fn free(&self, p: usize, owner: usize) {
        self.cell(p).with_mut(|o| {
            // SAFETY: loom's cell.
            let o = unsafe { &mut *o };
            assert_eq!(*o, owner, "object {p:#x} freed by the wrong owner");
            *o = 0;
        });
        // SAFETY: the object is live, written by its owner.
        let seen = unsafe { (p as *const usize).read() };
        assert_eq!(seen, owner, "object {p:#x} overwritten while held");
        // SAFETY: allocated above with this layout, freed once.
        unsafe { HotAlloc.dealloc(p as *mut u8, layout()) };
    }

    /// Every object address the execution used.
    fn used(&self) -> HashSet<usize> {
        self.cells.lock().unwrap().keys().copied().collect()
    }
}

/// Hands objects from one thread to another (the user's queue).
struct Slots([AtomicUsize; 3]);

impl Slots {
    fn new() -> Arc<Self> {
        Arc::new(Slots(core::array::from_fn(|_| AtomicUsize::new(0))))
    }
    fn put(&self, i: usize, p: usize) {
        self.0[i].store(p, Ordering::Release);
    }
    fn take(&self, i: usize) -> usize {
        loop {
            match self.0[i].load(Ordering::Acquire) {
                0 => thread::yield_now(),
                p => return p,
            }
        }
    }
}

/// Waits until `n` modelled threads have run the allocator's exit hook
/// (loom runs it after `join` returns).
fn wait_exits(n: usize) {
    while loom_hooks::exited_threads() < n {
        thread::yield_now();
    }
}

/// After every thread exited: nothing is held, and a fresh thread takes
/// back as many objects as were used, all distinct and all reused.
fn check_end(owners: &Owners, exited: usize) {
    wait_exits(exited);
    let class = hotpool::arena::stats()
        .classes
        .into_iter()
        .find(|c| c.size == SIZE)
        .unwrap();
    assert_eq!(class.current, 0, "counts do not balance: {class:?}");
    assert_eq!(class.nmalloc, class.nfree, "counts do not balance");
    let used = owners.used();
    // The objects used lie in at most `used.len()` slabs of two regions.
    let n = 2 * used.len();
    let mapped = hotpool::arena::stats().mapped;
    let again = Owners::default();
    let reuse = {
        let again = again.clone();
        thread::spawn(move || (0..n).map(|_| again.alloc(99)).collect::<Vec<_>>())
    };
    let got = reuse.join().unwrap();
    // Its exit hook must run before the execution ends.
    wait_exits(exited + 1);
    let distinct: HashSet<usize> = got.iter().copied().collect();
    assert_eq!(distinct.len(), n, "an object was handed out twice");
    assert!(
        used.is_subset(&distinct),
        "freed objects were not handed out again: {got:x?} against {used:x?}"
    );
    assert_eq!(
        hotpool::arena::stats().mapped,
        mapped,
        "memory was mapped although freed slabs were there"
    );
}

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    // Read once per process by the allocator's start-up.
    std::env::set_var("HOTPOOL_CONF", "narenas:2");
    // The allocator's state is process-wide: one model at a time, even
    // when the test harness runs tests on several threads.
    static SERIAL: Mutex<()> = Mutex::new(());
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = loom::model::Builder::new();
    // The fork handlers alone take every bin lock of both arenas.
    b.max_branches = 100_000;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(move || {
        loom_hooks::reset();
        f();
    });
}

/// The xmalloc pattern: an owner allocates three objects and hands each to
/// a consumer, whose first allocator call is a free (setting up its
/// cache); its third free overflows the cache and flushes an object into
/// the owner's bin, while the owner fills for a fourth object (possibly
/// that one), frees it and exits; the consumer's exit flushes the rest.
#[test]
fn fill_flush_and_remote_free() {
    model(2, || {
        let owners = Owners::default();
        let slots = Slots::new();
        let owner = {
            let (owners, slots) = (owners.clone(), slots.clone());
            thread::spawn(move || {
                for i in 0..3 {
                    let p = owners.alloc(1);
                    slots.put(i, p);
                }
                let p = owners.alloc(1);
                owners.free(p, 1);
            })
        };
        let consumer = {
            let (owners, slots) = (owners.clone(), slots.clone());
            thread::spawn(move || {
                for i in 0..3 {
                    let p = slots.take(i);
                    owners.free(p, 1);
                }
            })
        };
        owner.join().unwrap();
        consumer.join().unwrap();
        check_end(&owners, 2);
    });
}

/// Two threads free the owner's objects at once and exit (their exit hooks
/// flush into the owner's bin), while the owner fills for a new object and
/// frees it.
#[test]
fn remote_frees_and_exits_race_a_fill() {
    model(1, || {
        let owners = Owners::default();
        let owner = {
            let owners = owners.clone();
            thread::spawn(move || {
                let (a, b, c) = (owners.alloc(1), owners.alloc(1), owners.alloc(1));
                let one = {
                    let owners = owners.clone();
                    thread::spawn(move || owners.free(a, 1))
                };
                let two = {
                    let owners = owners.clone();
                    thread::spawn(move || {
                        owners.free(b, 1);
                        owners.free(c, 1);
                    })
                };
                let d = owners.alloc(1);
                owners.free(d, 1);
                one.join().unwrap();
                two.join().unwrap();
            })
        };
        owner.join().unwrap();
        check_end(&owners, 3);
    });
}

/// The fork handlers take and release every lock of the allocator while
/// another thread frees a remote object and allocates.
#[test]
fn fork_handlers_race_frees() {
    model(1, || {
        let owners = Owners::default();
        let owner = {
            let owners = owners.clone();
            thread::spawn(move || {
                let (a, b) = (owners.alloc(1), owners.alloc(1));
                let other = {
                    let owners = owners.clone();
                    thread::spawn(move || {
                        owners.free(a, 1);
                        let p = owners.alloc(2);
                        owners.free(p, 2);
                    })
                };
                loom_hooks::fork();
                owners.free(b, 1);
                other.join().unwrap();
            })
        };
        owner.join().unwrap();
        check_end(&owners, 2);
    });
}

/// The purger's reclaim of a thread's cache (`tcache::reclaim`: bounds
/// blocked, the barrier, the bottom objects taken) races the owner's fast
/// pops and pushes and its slow paths (the move-down after a reclaim, a
/// refill, a flush), and its exit. The owner's stack holds two objects
/// when the reclaimer may start; the owner then pops and pushes at the
/// top, and allocates one more than its stack holds.
#[test]
fn reclaim_races_fast_and_slow_paths() {
    model(2, || {
        let owners = Owners::default();
        let owner = {
            let owners = owners.clone();
            thread::spawn(move || {
                let (a, b) = (owners.alloc(1), owners.alloc(1));
                owners.free(b, 1);
                owners.free(a, 1);
                let x = owners.alloc(1);
                owners.free(x, 1);
                let (y, z, w) = (owners.alloc(1), owners.alloc(1), owners.alloc(1));
                owners.free(y, 1);
                owners.free(z, 1);
                owners.free(w, 1);
            })
        };
        let reclaimer = thread::spawn(loom_hooks::reclaim_caches);
        owner.join().unwrap();
        reclaimer.join().unwrap();
        check_end(&owners, 1);
    });
}
