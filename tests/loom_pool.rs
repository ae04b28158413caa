//! Loom models of the pool protocol: batches moving between thread free
//! lists and the depot, thread-exit flush, trim racing frees, and the
//! closing of a pool whose objects are still cached or in use.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_pool`
//!
//! # What is modelled, and from where
//!
//! The real pool code cannot run under loom: the thread caches are std
//! `thread_local!`s (loom runs its threads on one OS thread, so they would
//! be shared) and the depot lock and registries are `parking_lot` mutexes
//! (loom cannot switch threads inside them). So this file is a faithful
//! copy of the protocol with the queue abstracted: the same functions, the
//! same steps in the same order, the same atomic orderings, on loom's
//! atomics, `Mutex` and `UnsafeCell`. Each function names the code it
//! mirrors; when that code changes, this model must change with it.
//!
//! | model | mirrors |
//! |---|---|
//! | [`Inner`] `stamp`, `closed`, `refs` | `pool/central.rs` `Hot::stamp`, `Hot::closed`, `Counters::refs` |
//! | [`Inner::refill`] | `Inner::refill` |
//! | [`Inner::put`] | `Inner::put` / `put_locked` |
//! | [`Central::reclaim`] | `Inner::reclaim_locked` + `ChunkHeader::give_back` |
//! | [`Inner::trim_central`] | `Inner::trim_central` / `trim_locked` |
//! | [`Inner::release`] | `Inner::release` (+ `registry::destroy`) |
//! | [`Inner::new_epoch`] | `Inner::new_epoch` |
//! | [`Cache::alloc`] | `pool/local.rs` `alloc` + `alloc_slow` / `alloc_cached` / `alloc_uncached` |
//! | [`Cache::free`] | `free` + `push` + `free_slow` |
//! | [`Cache::bind`] | `ThreadCache::bind` |
//! | [`Cache::retire`] | `ExitGuard::drop` -> `ThreadCache::retire` |
//! | [`Cache::trim`] | `pool/mod.rs` `Pool::trim` (+ `local::flush_current`) |
//! | [`Cache::drop_pool`] | `Pool::drop` |
//!
//! Abstracted: a chunk is an array of free flags (the bitmap) and the chunk
//! list is a vector; the depot is a vector behind a loom `Mutex` (the real
//! one is behind `parking_lot`); one pool, so a thread cache has one entry
//! and `last_free` always guesses it; the object's memory is a loom
//! `UnsafeCell` holding its owner, and the pool's shared state has a
//! `freed` cell written by `registry::destroy`'s model and read by every
//! operation, so loom reports a use after free (or a free not ordered after
//! the last use) as a causality violation.
//!
//! Each model was checked to fail when the protocol is broken: see the
//! "Verification" section of the README for the mutations tried.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Object slots per chunk (`Geometry::capacity`).
const CAP: usize = 4;
/// Chunks the models may need; more is a bug in a model, not the pool.
const MAX_CHUNKS: usize = 4;
/// `ResolvedConfig::batch`, `local_max` and `depot_max`, small so batch
/// moves and a full depot happen within a few operations.
const BATCH: usize = 2;
const LOCAL_MAX: usize = 2;
const DEPOT_MAX: usize = 2;
/// `central.rs` `SPARE_CHUNKS`.
const SPARE_CHUNKS: usize = 1;
/// The pool's serial, in the upper half of its stamp.
const SERIAL: u64 = 7 << 32;

/// An object slot: chunk number * CAP + slot index.
type Obj = usize;

/// The shared state of one pool (`central.rs` `Inner`).
struct Inner {
    stamp: AtomicU64,
    closed: AtomicBool,
    central: Mutex<Central>,
    refs: AtomicUsize,
    /// Set by the model of `registry::destroy`; read by every use.
    freed: UnsafeCell<bool>,
    /// Each object's memory: who owns it now (None while free).
    objects: Vec<UnsafeCell<Option<usize>>>,
}

/// What the depot lock guards (`central.rs` `Central`).
struct Central {
    depot: Vec<Obj>,
    /// Free flags of each chunk; None once the chunk was given back.
    chunks: Vec<Option<[bool; CAP]>>,
    closed: bool,
}

impl Central {
    /// Wholly free chunks (`Central::empty`).
    fn empty(&self) -> usize {
        self.chunks
            .iter()
            .flatten()
            .filter(|c| c.iter().all(|&f| f))
            .count()
    }

    /// `Central::carve`: up to `want` free slots, lowest first.
    fn carve(&mut self, want: usize) -> Vec<Obj> {
        let mut out = Vec::new();
        for (k, chunk) in self.chunks.iter_mut().enumerate() {
            if let Some(free) = chunk {
                for (i, f) in free.iter_mut().enumerate() {
                    if *f && out.len() < want {
                        *f = false;
                        out.push(k * CAP + i);
                    }
                }
            }
        }
        out
    }

    /// `Inner::reclaim_locked`: objects back into their chunks; a chunk
    /// that becomes wholly free beyond the spare allowance is released.
    /// Returns how many chunks were released (references to drop).
    fn reclaim(&mut self, objs: &[Obj]) -> usize {
        let spare = if self.closed { 0 } else { SPARE_CHUNKS };
        let mut released = 0;
        for &o in objs {
            let chunk = self.chunks[o / CAP]
                .as_mut()
                .expect("object of a chunk that was given back");
            // `ChunkHeader::give_back`'s double-free check.
            assert!(!chunk[o % CAP], "object {o} was freed twice");
            chunk[o % CAP] = true;
            if chunk.iter().all(|&f| f) && self.empty() > spare {
                self.chunks[o / CAP] = None;
                released += 1;
            }
        }
        released
    }
}

impl Inner {
    /// `registry::create` + `Inner::new`: one reference, the handle's.
    fn new() -> Arc<Inner> {
        Arc::new(Inner {
            stamp: AtomicU64::new(SERIAL),
            closed: AtomicBool::new(false),
            central: Mutex::new(Central {
                depot: Vec::new(),
                chunks: Vec::new(),
                closed: false,
            }),
            refs: AtomicUsize::new(1),
            freed: UnsafeCell::new(false),
            objects: (0..CAP * MAX_CHUNKS)
                .map(|_| UnsafeCell::new(None))
                .collect(),
        })
    }

    /// A use of the shared state: it must not have been freed, and the
    /// free must not race this read.
    #[track_caller]
    fn check(&self) {
        // SAFETY: loom's cell; written only by `release` on the last ref.
        self.freed
            .with(|f| assert!(!unsafe { *f }, "pool state used after it was freed"));
    }

    /// `Inner::new_epoch`.
    fn new_epoch(&self) {
        self.check();
        let _ = self
            .stamp
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |s| {
                Some((s & !0xFFFF_FFFF) | (s.wrapping_add(1) & 0xFFFF_FFFF))
            });
    }

    /// `Inner::refill`: from the depot if it has any, else carved from the
    /// chunks, mapping a chunk (outside the lock) when none has room.
    fn refill(&self, want: usize) -> Vec<Obj> {
        self.check();
        let mut c = self.central.lock().unwrap();
        let have = c.depot.len();
        if have > 0 {
            let n = have.min(want);
            return c.depot.split_off(have - n);
        }
        loop {
            let got = c.carve(want);
            if !got.is_empty() {
                return got;
            }
            drop(c);
            // `ChunkHeader::create`, then the chunk's reference.
            self.refs.fetch_add(1, Ordering::Relaxed);
            c = self.central.lock().unwrap();
            assert!(c.chunks.len() < MAX_CHUNKS, "model needs more chunks");
            c.chunks.push(Some([true; CAP]));
        }
    }

    /// `Inner::put` / `put_locked`: to the depot while it has room (unless
    /// closed), the rest into the chunks; then drops released chunks' refs.
    fn put(&self, objs: &[Obj], to_depot: bool) {
        self.check();
        let mut c = self.central.lock().unwrap();
        let mut done = 0;
        if to_depot && !c.closed {
            let room = DEPOT_MAX.saturating_sub(c.depot.len());
            done = room.min(objs.len());
            c.depot.extend_from_slice(&objs[..done]);
        }
        let released = c.reclaim(&objs[done..]);
        drop(c);
        self.unmap(released);
        self.release(released);
    }

    /// `Inner::trim_central` / `trim_locked`.
    fn trim_central(&self, close: bool) {
        self.check();
        let mut c = self.central.lock().unwrap();
        c.closed |= close;
        let depot = core::mem::take(&mut c.depot);
        let mut released = c.reclaim(&depot);
        for chunk in c.chunks.iter_mut() {
            if chunk.is_some_and(|free| free.iter().all(|&f| f)) {
                *chunk = None;
                released += 1;
            }
        }
        drop(c);
        self.unmap(released);
        self.release(released + usize::from(close));
    }

    /// `Inner::unmap`: after the lock is released, released chunks are
    /// unmapped and the counters updated, reads of the shared state that
    /// only `release`'s ordering keeps ahead of its free. With nothing
    /// released it returns at once, touching nothing.
    fn unmap(&self, released: usize) {
        if released > 0 {
            self.check();
        }
    }

    /// `Inner::release`: the last reference frees the shared state.
    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let prev = self.refs.fetch_sub(n, Ordering::AcqRel);
        if prev == n {
            // `registry::destroy` (what it leaves is checked by `freed`).
            // SAFETY: loom's cell; loom checks this write is ordered after
            // every `check` of other threads.
            self.freed.with_mut(|f| unsafe {
                assert!(!*f, "pool state freed twice");
                *f = true;
            });
        }
    }

    /// The state was freed, and with it every chunk and depot entry: no
    /// object was lost or left behind.
    fn freed(&self) -> bool {
        // SAFETY: loom's cell; callers are ordered after the free by joins.
        let freed = self.freed.with(|f| unsafe { *f });
        let c = self.central.lock().unwrap();
        freed && c.chunks.iter().all(Option::is_none) && c.depot.is_empty()
    }
}

/// One thread's cache entry for the pool (`local.rs` `Entry`) and its
/// `retired` flag (`ThreadCache::retired`).
struct Cache {
    inner: Arc<Inner>,
    /// Who this thread is, written into the objects it owns.
    me: usize,
    stamp: u64,
    list: Vec<Obj>,
    cap: usize,
    retired: bool,
}

impl Cache {
    fn new(inner: &Arc<Inner>, me: usize) -> Cache {
        Cache {
            inner: inner.clone(),
            me,
            stamp: 0,
            list: Vec::new(),
            cap: 0,
            retired: false,
        }
    }

    /// `Entry::flush`.
    fn flush(&mut self, to_depot: bool) {
        let objs = core::mem::take(&mut self.list);
        if !objs.is_empty() {
            self.inner.put(&objs, to_depot);
        }
    }

    /// `ThreadCache::bind`: a stale list is flushed to the chunks first.
    /// (`free_slots` on a serial change is not modelled: one pool.)
    fn bind(&mut self) {
        let current = self.inner.stamp.load(Ordering::Acquire);
        if self.stamp != current {
            self.flush(false);
            self.stamp = current;
        }
    }

    /// `local::alloc`: pop without a stamp check, else `alloc_slow`.
    fn alloc_raw(&mut self) -> Obj {
        self.inner.check();
        if let Some(o) = self.list.pop() {
            return o;
        }
        if self.retired {
            return self.inner.refill(1)[0];
        }
        self.bind();
        if self.inner.closed.load(Ordering::Acquire) {
            return self.inner.refill(1)[0];
        }
        if self.cap < BATCH {
            self.cap = BATCH.max(self.cap * 2).min(LOCAL_MAX);
        }
        self.list = self.inner.refill(BATCH);
        self.list.pop().unwrap()
    }

    /// `local::free`: `push` if the entry has room and its stamp is the
    /// pool's (Relaxed), else `free_slow`.
    fn free_raw(&mut self, obj: Obj) {
        self.inner.check();
        let stamp = self.inner.stamp.load(Ordering::Relaxed);
        if self.list.len() < self.cap && self.stamp == stamp {
            self.list.push(obj);
            return;
        }
        if self.retired {
            self.inner.put(&[obj], true);
            return;
        }
        self.bind();
        if self.inner.closed.load(Ordering::Acquire) {
            self.inner.put(&[obj], false);
            return;
        }
        let n = self.list.len();
        if n == self.cap {
            if self.cap < LOCAL_MAX {
                // As written in `free_slow`, where the bounds are not constants.
                #[allow(clippy::manual_clamp)]
                let grown = (self.cap * 2).max(BATCH).min(LOCAL_MAX);
                self.cap = grown;
            } else {
                let moved = BATCH.min(n);
                let batch = self.list.split_off(n - moved);
                self.inner.put(&batch, true);
            }
        }
        self.list.push(obj);
    }

    /// `Pool::alloc`: takes a slot and writes the value (its owner).
    fn alloc(&mut self) -> Obj {
        let o = self.alloc_raw();
        let me = self.me;
        // SAFETY: loom's cell; a data race here is a double hand-out.
        self.inner.objects[o].with_mut(|p| unsafe {
            assert_eq!(*p, None, "object {o} handed out while in use");
            *p = Some(me);
        });
        o
    }

    /// `Pooled::drop` on this thread (the object may come from another).
    fn free(&mut self, o: Obj) {
        // SAFETY: loom's cell; the owner's writes must happen before.
        self.inner.objects[o].with_mut(|p| unsafe {
            assert!((*p).is_some(), "object {o} freed while free");
            *p = None;
        });
        self.free_raw(o);
    }

    /// `ExitGuard::drop` -> `ThreadCache::retire`.
    fn retire(&mut self) {
        self.retired = true;
        if self.stamp != 0 {
            self.flush(true);
            self.stamp = 0;
        }
    }

    /// `local::flush_current`.
    fn flush_current(&mut self) {
        if self.stamp >> 32 == self.inner.stamp.load(Ordering::Relaxed) >> 32 {
            self.flush(false);
        }
    }

    /// `Pool::trim`.
    fn trim(&mut self) {
        self.inner.new_epoch();
        self.flush_current();
        self.inner.trim_central(false);
    }

    /// `Pool::drop`: closed before the new epoch.
    fn drop_pool(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.new_epoch();
        self.flush_current();
        self.inner.trim_central(true);
    }

    /// Objects in use as `PoolStats::in_use` counts them when quiescent:
    /// slots of held chunks not free in a chunk, the depot or `lists`.
    fn in_use(&self, lists: usize) -> usize {
        let c = self.inner.central.lock().unwrap();
        let held: usize = c.chunks.iter().flatten().map(|_| CAP).sum();
        let chunk_free: usize = c
            .chunks
            .iter()
            .flatten()
            .map(|f| f.iter().filter(|&&x| x).count())
            .sum();
        held - chunk_free - c.depot.len() - lists
    }
}

/// Explores every interleaving (no preemption bound unless
/// `LOOM_MAX_PREEMPTIONS` is set): 8 to 40 s for the four models in
/// release on a busy 2-core machine.
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(f);
}

/// Two threads allocate three objects each and free them: the frees
/// overflow the lists into the depot, the allocations refill from the depot
/// or the chunks, while the other thread does the same. Then each thread
/// exits (its list goes to the depot) and the pool is dropped: every object
/// comes back exactly once and the pool's state is freed exactly once.
#[test]
fn batches_move_through_the_depot() {
    model(|| {
        let inner = Inner::new();
        let workers: Vec<_> = (1..=2)
            .map(|me| {
                let inner = inner.clone();
                thread::spawn(move || {
                    let mut tc = Cache::new(&inner, me);
                    let objs: Vec<Obj> = (0..3).map(|_| tc.alloc()).collect();
                    for o in objs {
                        tc.free(o);
                    }
                    tc.retire();
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut main = Cache::new(&inner, 0);
        assert_eq!(main.in_use(0), 0, "an object was lost");
        main.drop_pool();
        assert!(inner.freed(), "the dropped pool's state was never freed");
    });
}

/// An object allocated on one thread is freed on another while the first
/// trims the pool; the second thread then reuses it and exits. Counts
/// balance, the trim never frees a slot still cached or in use, and the
/// dropped pool is freed.
#[test]
fn trim_races_a_remote_free() {
    model(|| {
        let inner = Inner::new();
        let mut main = Cache::new(&inner, 0);
        let (x, y) = (main.alloc(), main.alloc());
        let t = {
            let inner = inner.clone();
            thread::spawn(move || {
                let mut tc = Cache::new(&inner, 1);
                tc.free(x);
                let again = tc.alloc();
                tc.free(again);
                tc.retire();
            })
        };
        main.trim();
        main.free(y);
        t.join().unwrap();
        assert_eq!(main.in_use(main.list.len()), 0, "an object was lost");
        main.drop_pool();
        assert!(inner.freed(), "the dropped pool's state was never freed");
    });
}

/// The pool handle is dropped while another thread frees the pool's last
/// object and exits. Whoever drops the last reference frees the state,
/// after every use of it; a thread that saw the closing epoch caches
/// nothing more (`Pool::drop` stores `closed` before the new epoch).
#[test]
fn drop_races_free_and_thread_exit() {
    model(|| {
        let inner = Inner::new();
        let mut main = Cache::new(&inner, 0);
        let x = main.alloc();
        let t = {
            let inner = inner.clone();
            thread::spawn(move || {
                let mut tc = Cache::new(&inner, 1);
                tc.free(x);
                let seen = (tc.stamp, tc.list.len());
                tc.retire();
                seen
            })
        };
        main.drop_pool();
        let after_close = inner.stamp.load(Ordering::Relaxed);
        let (bound, cached) = t.join().unwrap();
        if bound == after_close {
            assert_eq!(cached, 0, "a thread cached an object of a closed pool");
        }
        assert!(inner.freed(), "the dropped pool's state was never freed");
    });
}

/// Two threads race to refill from an empty pool: both may map a chunk;
/// each object still goes to one owner, and a trim after both exited
/// gives every chunk back.
#[test]
fn concurrent_refills_map_chunks_safely() {
    model(|| {
        let inner = Inner::new();
        let workers: Vec<_> = (1..=2)
            .map(|me| {
                let inner = inner.clone();
                thread::spawn(move || {
                    let mut tc = Cache::new(&inner, me);
                    let o = tc.alloc();
                    tc.free(o);
                    tc.retire();
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        let mut main = Cache::new(&inner, 0);
        main.trim();
        assert!(inner
            .central
            .lock()
            .unwrap()
            .chunks
            .iter()
            .all(Option::is_none));
        assert_eq!(
            inner.refs.load(Ordering::Relaxed),
            1,
            "a chunk reference leaked"
        );
        main.drop_pool();
        assert!(inner.freed());
    });
}
