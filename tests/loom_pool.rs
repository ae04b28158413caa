//! Loom models of the pool, run on the real code: `Pool`, `Pooled`, the
//! depot, the thread lists, trim, thread exit and pool drop, through their
//! own functions (no copy of the protocol).
//!
//! Under `--cfg loom`, `src/sync.rs` gives the pool loom's atomics for its
//! protocol (the pool's stamp, `closed`, the reference count, the handle's
//! pointer), loom's mutex (depot and registries), loom's thread-locals (a
//! model thread's lists are handed back when it ends, as at thread exit) and
//! registries made anew in each execution; chunks come from the system
//! allocator. Statistics counters stay plain atomics (no protocol reads
//! them), which keeps the state space small.
//!
//! Run with:
//!
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom_pool`
//!
//! Preemption bound: 2 unless `LOOM_MAX_PREEMPTIONS` is set (every planted
//! bug listed in the README's "Verification" section is caught within it).
//!
//! # What the models check
//!
//! A model thread ends with `loom_probe::thread_exit()`, which runs the
//! pool's real thread-exit hook (`ThreadCache::retire`): loom cannot run
//! loom operations from a thread-local destructor, so under loom the
//! destructor only checks that the hook ran.
//!
//! Besides loom's own checks (deadlock, and causality: the pool's shared
//! state carries a `sync::Tracked` cell that every depot operation reads and
//! its destruction writes, so a free not ordered after the last use is
//! reported), each model asserts the pool's accounting: every object comes
//! back exactly once (`in_use` returns to 0, no chunk is left after a
//! trim), live objects keep their values, a thread that saw a pool close
//! caches nothing more of it, and a dropped pool's state is freed once its
//! last object is (`hotpool::stats::pools()` no longer lists it).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

use hotpool::pool::loom_probe;
use hotpool::{Pool, PoolConfig, Pooled};

/// Tiny lists: a thread's second free moves a batch to the depot, whose
/// second batch goes back to the chunks.
fn tiny() -> PoolConfig {
    PoolConfig::new().batch(1).local_max(1).depot_max(1)
}

/// Runs `f` in every interleaving loom explores, on a model thread of its
/// own: the model's main thread keeps its thread-locals until after
/// loom's per-execution statics are gone, too late for its list to go
/// back to the pool's registries.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let f = std::sync::Arc::new(f);
    b.check(move || {
        let f = f.clone();
        spawn(move || f()).join().unwrap();
    });
}

/// Whether any pool's shared state is still alive (the registry is new in
/// each execution, so only this model's pools can be listed).
fn pool_alive() -> bool {
    !hotpool::stats::pools().is_empty()
}

/// `thread::spawn`, ending the thread with its exit hook (loom cannot run
/// the pool's thread-local destructor itself).
fn spawn<R: 'static>(f: impl FnOnce() -> R + 'static) -> thread::JoinHandle<R> {
    thread::spawn(move || {
        let r = f();
        loom_probe::thread_exit();
        r
    })
}

/// Waits (yielding to loom) until `flag` is set.
fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::Acquire) {
        thread::yield_now();
    }
}

/// Two threads allocate two objects each and free them: the frees overflow
/// the lists into the depot and back to the chunks, the allocations refill
/// from the depot or the chunks, while the other thread does the same; then
/// each thread exits (its list goes to the depot). Every object comes back
/// exactly once and the dropped pool's state is freed.
#[test]
fn batches_move_through_the_depot() {
    model(|| {
        let pool = Arc::new(Pool::with_config(tiny()));
        let workers: Vec<_> = (1..=2u64)
            .map(|me| {
                let pool = pool.clone();
                spawn(move || {
                    let objs: Vec<Pooled<u64>> = (0..2).map(|i| pool.alloc(me * 10 + i)).collect();
                    for (i, o) in objs.iter().enumerate() {
                        assert_eq!(**o, me * 10 + i as u64, "an object was handed out twice");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(pool.stats().in_use, 0, "an object was lost");
        drop(pool);
        assert!(!pool_alive(), "the dropped pool's state was never freed");
    });
}

/// An object allocated on one thread is freed on another, which reuses it
/// and exits, while the first trims the pool and frees its other object.
/// Counts balance, a trim never gives back a slot still cached or in use,
/// and after a last trim no chunk is left.
#[test]
fn trim_races_a_remote_free() {
    model(|| {
        let pool = Arc::new(Pool::with_config(tiny()));
        let (x, y) = (pool.alloc(1u64), pool.alloc(2u64));
        let t = {
            let pool = pool.clone();
            spawn(move || {
                drop(x);
                let again = pool.alloc(3);
                assert_eq!(*again, 3);
            })
        };
        pool.trim();
        assert_eq!(*y, 2, "a trim gave back an object in use");
        drop(y);
        t.join().unwrap();
        pool.trim();
        let s = pool.stats();
        assert_eq!((s.in_use, s.chunks), (0, 0), "an object was lost");
        drop(pool);
        assert!(!pool_alive(), "the dropped pool's state was never freed");
    });
}

/// The pool handle is dropped while another thread frees the pool's last
/// object and exits. Whoever drops the last reference frees the state,
/// after every use of it; a thread that saw the closing epoch caches
/// nothing more (`Pool::drop` stores `closed` before the new epoch).
#[test]
fn drop_races_free_and_thread_exit() {
    model(|| {
        let pool = Pool::with_config(tiny());
        let x = pool.alloc(7u64);
        let after_close = loom_probe::stamp(&pool) + 1;
        let t = spawn(move || {
            drop(x);
            loom_probe::thread_lists()
        });
        drop(pool);
        let lists = t.join().unwrap();
        for (stamp, cached) in lists {
            if stamp == after_close {
                assert_eq!(cached, 0, "a thread cached an object of a closed pool");
            }
        }
        assert!(!pool_alive(), "the dropped pool's state was never freed");
    });
}

/// After a trim, a thread's list made before it is stale: the thread's next
/// free hands it back before caching anything new, so the trim reclaims
/// every object that thread held.
#[test]
fn a_stale_list_is_flushed_after_trim() {
    model(|| {
        let pool = Arc::new(Pool::with_config(
            PoolConfig::new().batch(1).local_max(2).depot_max(1),
        ));
        let (x, y) = (pool.alloc(1u64), pool.alloc(2u64));
        let freed_x = Arc::new(AtomicBool::new(false));
        let trimmed = Arc::new(AtomicBool::new(false));
        let t = {
            let (freed_x, trimmed) = (freed_x.clone(), trimmed.clone());
            spawn(move || {
                drop(x);
                freed_x.store(true, Ordering::Release);
                wait_for(&trimmed);
                drop(y);
                loom_probe::thread_lists()
            })
        };
        wait_for(&freed_x);
        let stamp = loom_probe::stamp(&pool);
        pool.trim();
        trimmed.store(true, Ordering::Release);
        let lists = t.join().unwrap();
        let current: Vec<_> = lists.iter().filter(|l| l.0 == stamp + 1).collect();
        assert_eq!(
            current.len(),
            1,
            "the free did not bind the list to the new epoch"
        );
        assert_eq!(current[0].1, 1, "a stale list was not flushed");
        assert_eq!(pool.stats().in_use, 0, "an object was lost");
    });
}

/// Two threads race to refill from an empty pool: both may map a chunk;
/// each object still goes to one owner, and a trim after both exited gives
/// every chunk back.
#[test]
fn concurrent_refills_map_chunks_safely() {
    model(|| {
        let pool = Arc::new(Pool::with_config(tiny()));
        let workers: Vec<_> = (1..=2u64)
            .map(|me| {
                let pool = pool.clone();
                spawn(move || {
                    let o = pool.alloc(me);
                    assert_eq!(*o, me, "an object was handed out twice");
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        pool.trim();
        let s = pool.stats();
        assert_eq!((s.in_use, s.chunks), (0, 0), "a chunk or an object leaked");
        drop(pool);
        assert!(!pool_alive(), "the dropped pool's state was never freed");
    });
}

/// A thread frees two objects another allocated: its list (a bound of one)
/// runs full and goes to the depot whole, by pointer, while the allocating
/// thread refills from the depot (maybe from that very stack) and trims.
/// Every object goes to one owner, the handed-over stack is read only
/// after it was handed over (loom's causality check on the depot's
/// `Tracked` state), and after the last trim nothing is left in the depot
/// or the chunks.
#[test]
fn a_full_list_is_handed_over_whole() {
    model(|| {
        let pool = Arc::new(Pool::with_config(
            PoolConfig::new().batch(1).local_max(1).depot_max(2),
        ));
        let (x, y) = (pool.alloc(1u64), pool.alloc(2u64));
        let t = spawn(move || {
            drop(x);
            drop(y);
        });
        let z = pool.alloc(3u64);
        assert_eq!(*z, 3, "an object was handed out twice");
        pool.trim();
        t.join().unwrap();
        drop(z);
        pool.trim();
        let s = pool.stats();
        assert_eq!(
            (s.in_use, s.depot_free, s.chunks),
            (0, 0, 0),
            "an object or a chunk was lost"
        );
        drop(pool);
        assert!(!pool_alive(), "the dropped pool's state was never freed");
    });
}

/// The purger's reclaim (`loom_probe::reclaim`, the same function it runs
/// on quiet threads) takes a thread's list while the thread pops from it
/// and pushes onto it, on fast and slow paths: one fast-path call may
/// straddle the reclaim's barrier (modelled by `SeqCst` fences on both
/// sides), slow paths meet the reclaim in progress or settle after it.
/// Every object goes to one owner at a time (values intact, addresses
/// distinct), none is lost (`in_use` back to 0, the dropped pool's state
/// freed), and the list works after.
#[test]
fn a_list_is_reclaimed_while_its_thread_uses_it() {
    model(|| {
        let pool = Arc::new(Pool::with_config(
            PoolConfig::new().batch(2).local_max(4).depot_max(8),
        ));
        let filled = Arc::new(AtomicBool::new(false));
        let owner = {
            let (pool, filled) = (pool.clone(), filled.clone());
            spawn(move || {
                // Three allocations (two refills of two), three frees: the
                // list holds four objects.
                drop((0..3u64).map(|i| pool.alloc(i)).collect::<Vec<_>>());
                filled.store(true, Ordering::Release);
                let again: Vec<Pooled<u64>> = (10..13u64).map(|i| pool.alloc(i)).collect();
                for (i, o) in again.iter().enumerate() {
                    assert_eq!(**o, 10 + i as u64, "an object was handed out twice");
                }
                let mut at: Vec<_> = again.iter().map(|o| &**o as *const u64).collect();
                at.sort();
                at.dedup();
                assert_eq!(at.len(), 3, "an object was handed out twice");
            })
        };
        wait_for(&filled);
        loom_probe::reclaim();
        owner.join().unwrap();
        assert_eq!(pool.stats().in_use, 0, "an object was lost");
        drop(pool);
        assert!(!pool_alive(), "the dropped pool's state was never freed");
    });
}
