//! Behaviour of `Pool<T>` and `Pooled<T>`: Box-like ownership, drop and
//! panic safety, thread exit, trim, statistics and non-static pools.

use std::collections::{BTreeSet, HashSet};
use std::mem::{size_of, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use hotpool::{AllocError, Backing, Pool, PoolConfig, Pooled};

/// Counts drops of values made with a given counter.
struct Counted<'a>(&'a AtomicUsize, u64);
impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn pooled_is_one_pointer_like_box() {
    assert_eq!(size_of::<Pooled<[u8; 240]>>(), size_of::<Box<[u8; 240]>>());
    assert_eq!(size_of::<Option<Pooled<u64>>>(), size_of::<Box<u64>>());
    assert_eq!(size_of::<Pooled<()>>(), size_of::<Box<()>>());
}

#[test]
fn values_survive_and_slots_are_distinct() {
    static P: Pool<[u64; 8]> = Pool::new();
    let n = if cfg!(miri) { 1_000 } else { 10_000 };
    let objs: Vec<_> = (0..n as u64).map(|i| P.alloc([i; 8])).collect();
    let addrs: HashSet<usize> = objs.iter().map(|o| Pooled::as_ptr(o) as usize).collect();
    assert_eq!(addrs.len(), objs.len(), "two live objects share a slot");
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(**o, [i as u64; 8]);
        assert_eq!(
            Pooled::as_ptr(o) as usize % std::mem::align_of::<[u64; 8]>(),
            0
        );
    }
    assert_eq!(P.stats().in_use, n);
    drop(objs);
    assert_eq!(P.stats().in_use, 0);
}

#[test]
fn freed_slot_is_reused_on_the_same_thread() {
    static P: Pool<u64> = Pool::new();
    let a = P.alloc(1);
    let addr = Pooled::as_ptr(&a) as usize;
    drop(a);
    let b = P.alloc(2);
    assert_eq!(Pooled::as_ptr(&b) as usize, addr, "LIFO reuse expected");
    assert_eq!(*b, 2);
}

#[test]
fn drop_runs_exactly_once() {
    static P: Pool<Counted<'static>> = Pool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let objs: Vec<_> = (0..1000).map(|i| P.alloc(Counted(&DROPS, i))).collect();
    assert_eq!(DROPS.load(Ordering::SeqCst), 0);
    drop(objs);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1000);
    let kept = Pooled::into_inner(P.alloc(Counted(&DROPS, 7)));
    assert_eq!(
        DROPS.load(Ordering::SeqCst),
        1000,
        "into_inner must not drop"
    );
    assert_eq!(kept.1, 7);
    drop(kept);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1001);
    assert_eq!(P.stats().in_use, 0);
}

#[test]
fn zero_sized_types_need_no_memory() {
    static P: Pool<()> = Pool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    static Z: Pool<Zst> = Pool::new();
    let units: Vec<_> = (0..100).map(|_| P.alloc(())).collect();
    let zs: Vec<_> = (0..100).map(|_| Z.alloc(Zst)).collect();
    let cloned = units[0].clone();
    drop((units, cloned, zs));
    assert_eq!(DROPS.load(Ordering::SeqCst), 100);
    assert_eq!(P.stats().chunks, 0);
    assert_eq!(Z.stats().chunks, 0);
}

#[test]
fn over_aligned_types_are_aligned() {
    #[repr(align(128))]
    struct Line([u8; 8]);
    #[repr(align(4096))]
    struct Page(u64);
    static L: Pool<Line> = Pool::new();
    static G: Pool<Page> = Pool::new();
    let lines: Vec<_> = (0..5000).map(|i| L.alloc(Line([i as u8; 8]))).collect();
    let pages: Vec<_> = (0..300).map(|i| G.alloc(Page(i))).collect();
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(Pooled::as_ptr(l) as usize % 128, 0);
        assert_eq!(l.0, [i as u8; 8]);
    }
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(Pooled::as_ptr(p) as usize % 4096, 0);
        assert_eq!(p.0, i as u64);
    }
}

#[test]
fn panic_in_constructor_returns_the_slot() {
    static P: Pool<[u8; 32]> = Pool::new();
    let keep = P.alloc([1; 32]);
    let r = catch_unwind(|| P.alloc_with(|| panic!("constructor failed")));
    assert!(r.is_err());
    assert_eq!(
        P.stats().in_use,
        1,
        "the slot taken for the panicking constructor leaked"
    );
    let again = P.alloc([2; 32]);
    assert_eq!(*keep, [1; 32]);
    assert_eq!(*again, [2; 32]);
}

#[test]
fn panic_in_drop_returns_the_slot_and_drops_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Bomb(bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
            if self.0 {
                panic!("drop failed");
            }
        }
    }
    static P: Pool<Bomb> = Pool::new();
    let quiet = P.alloc(Bomb(false));
    let loud = P.alloc(Bomb(true));
    assert!(catch_unwind(AssertUnwindSafe(|| drop(loud))).is_err());
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(P.stats().in_use, 1);
    drop(quiet);
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
    assert_eq!(P.stats().in_use, 0);
}

#[test]
fn clone_goes_to_the_same_pool_and_a_panicking_clone_leaks_nothing() {
    static P: Pool<Vec<u32>> = Pool::new();
    let a = P.alloc(vec![1, 2, 3]);
    let b = a.clone();
    assert_eq!(a, b);
    assert_ne!(Pooled::as_ptr(&a), Pooled::as_ptr(&b));
    assert_eq!(P.stats().in_use, 2);

    struct BadClone;
    impl Clone for BadClone {
        fn clone(&self) -> Self {
            panic!("clone failed")
        }
    }
    static Q: Pool<(BadClone, u64)> = Pool::new();
    let q = Q.alloc((BadClone, 1));
    assert!(catch_unwind(AssertUnwindSafe(|| q.clone())).is_err());
    assert_eq!(Q.stats().in_use, 1);
}

#[test]
fn raw_round_trip_leak_and_pin() {
    static P: Pool<String> = Pool::new();
    let raw = Pooled::into_raw(P.alloc("raw".to_string()));
    assert_eq!(P.stats().in_use, 1);
    // SAFETY: from into_raw, used once.
    let back = unsafe { Pooled::from_raw(raw) };
    assert_eq!(*back, "raw");
    drop(back);
    assert_eq!(P.stats().in_use, 0);

    let leaked: &'static mut String = Pooled::leak(P.alloc("leaked".to_string()));
    leaked.push('!');
    assert_eq!(leaked, "leaked!");
    assert_eq!(P.stats().in_use, 1);

    let pinned: std::pin::Pin<Pooled<String>> = P.alloc_pin("pinned".into());
    assert_eq!(pinned.len(), 6);
    let from: std::pin::Pin<Pooled<String>> = P.alloc("x".into()).into();
    assert_eq!(&*from, "x");
}

#[test]
fn uninit_slots_are_built_in_place() {
    static P: Pool<[u8; 4096]> = Pool::new();
    let mut slot: Pooled<MaybeUninit<[u8; 4096]>> = P.alloc_uninit();
    // SAFETY: writes 4096 bytes into a 4096-byte slot.
    unsafe { slot.as_mut_ptr().cast::<u8>().write_bytes(0x5A, 4096) };
    // SAFETY: fully written above.
    let buf = unsafe { Pooled::assume_init(slot) };
    assert!(buf.iter().all(|&b| b == 0x5A));
    drop(P.alloc_uninit()); // dropping an unfinished slot just returns it
    assert_eq!(P.stats().in_use, 1);
    let written = Pooled::write(P.alloc_uninit(), [3; 4096]);
    assert_eq!(written[4095], 3);
}

#[test]
fn box_traits_forward() {
    static S: Pool<String> = Pool::new();
    static N: Pool<u32> = Pool::new();
    let s = S.alloc("hello".to_string());
    assert_eq!(format!("{s}"), "hello");
    assert_eq!(format!("{s:?}"), "\"hello\"");
    assert!(format!("{s:p}").starts_with("0x"));
    let a = N.alloc(1);
    let b = N.alloc(2);
    assert!(a < b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Less);
    let set: BTreeSet<Pooled<u32>> = [N.alloc(3), N.alloc(1)].into_iter().collect();
    assert_eq!(set.iter().map(|p| **p).collect::<Vec<_>>(), [1, 3]);
    let hashed: HashSet<Pooled<u32>> = [N.alloc(5), N.alloc(5)].into_iter().collect();
    assert_eq!(hashed.len(), 1);
    let r: &u32 = std::borrow::Borrow::borrow(&a);
    assert_eq!(*r, 1);
    assert_eq!(*AsRef::<u32>::as_ref(&b), 2);
}

#[test]
fn iterator_and_future_forward() {
    static IT: Pool<std::vec::IntoIter<u8>> = Pool::new();
    let mut it = IT.alloc(vec![1, 2, 3].into_iter());
    assert_eq!(it.len(), 3);
    assert_eq!(it.next_back(), Some(3));
    assert_eq!(it.by_ref().collect::<Vec<_>>(), [1, 2]);

    static F: Pool<std::future::Ready<u8>> = Pool::new();
    let mut fut = F.alloc(std::future::ready(9));
    // A waker that does nothing (`Waker::noop` needs Rust 1.85, past the MSRV).
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    assert_eq!(
        std::pin::Pin::new(&mut fut).poll(&mut cx),
        std::task::Poll::Ready(9)
    );
    use std::future::Future;
}

#[test]
fn send_and_sync_follow_t() {
    fn is_send<T: Send>() {}
    fn is_sync<T: Sync>() {}
    is_send::<Pooled<u8>>();
    is_sync::<Pooled<u8>>();
    is_send::<Pooled<std::cell::Cell<u8>>>();
    is_sync::<Pool<std::rc::Rc<u8>>>();
    fn is_unpin<T: Unpin>() {}
    is_unpin::<Pooled<std::marker::PhantomPinned>>();
}

#[test]
fn unservable_layout_and_oom_are_errors() {
    // 512 GiB objects: the chunk cannot be mapped on this machine.
    static HUGE: Pool<[u8; 1 << 39]> = Pool::new();
    match HUGE.try_alloc_uninit() {
        Err(AllocError::OutOfMemory { size, .. }) => assert!(size >= 1 << 39),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a 512 GiB object was served"),
    }
    // Too large to describe at all.
    static ABSURD: Pool<[u8; 1 << 41]> = Pool::new();
    assert!(matches!(
        ABSURD.try_alloc_uninit(),
        Err(AllocError::UnsupportedLayout { .. })
    ));
}

#[test]
fn config_bounds_hold() {
    static P: Pool<[u8; 64]> =
        Pool::with_config(PoolConfig::new().batch(8).local_max(16).depot_max(32));
    let objs: Vec<_> = (0..1000).map(|_| P.alloc([0; 64])).collect();
    drop(objs);
    let s = P.stats();
    assert!(
        s.local_free <= 16,
        "local list above its bound: {}",
        s.local_free
    );
    assert!(
        s.depot_free <= 32,
        "depot above its bound: {}",
        s.depot_free
    );
    assert_eq!(s.in_use, 0);
    assert_eq!(s.capacity, s.local_free + s.depot_free + s.chunk_free);
    assert!(s.batches_to_depot > 0);
}

/// A thread that frees objects another allocated fills its list, then
/// hands the list to the depot whole (its stack, by pointer, not a batch
/// copied at a time); the allocating thread refills from those objects;
/// the counts add up; a trim empties the depot and gives every chunk back.
#[test]
fn a_full_list_goes_to_the_depot_whole() {
    static P: Pool<[u8; 64]> =
        Pool::with_config(PoolConfig::new().batch(8).local_max(32).depot_max(1024));
    // 13 refills of 8: 100 objects out, 4 left in this thread's list.
    let objs: Vec<_> = (0..100).map(|i| P.alloc([i as u8; 64])).collect();
    let addrs: HashSet<usize> = objs.iter().map(|o| &**o as *const _ as usize).collect();
    let s = P.stats();
    assert_eq!((s.in_use, s.local_free, s.depot_free), (100, 4, 0));
    let (sent, done) = (mpsc::channel::<()>(), mpsc::channel::<()>());
    let freer = thread::spawn(move || {
        // The list grows 8, 16, 32; every 33rd free finds it full at its
        // bound and hands its 32 objects over: 3 hand-overs, 4 left.
        drop(objs);
        sent.0.send(()).unwrap();
        done.1.recv().unwrap();
    });
    sent.1.recv().unwrap();
    let s = P.stats();
    assert_eq!(
        (s.in_use, s.depot_free, s.batches_to_depot, s.local_free),
        (0, 96, 3, 8),
        "{s:?}"
    );
    // This thread's 4 (never handed out), then 8 at a time from the
    // newest block: 26 of the freed objects, each handed out once.
    let again: Vec<_> = (0..30).map(|_| P.alloc([0; 64])).collect();
    let reused: HashSet<usize> = again.iter().map(|o| &**o as *const _ as usize).collect();
    assert_eq!(reused.len(), 30);
    assert_eq!(reused.intersection(&addrs).count(), 26);
    let s = P.stats();
    // Four refills of 8: 6 left in this thread's list.
    assert_eq!(
        (s.in_use, s.depot_free, s.batches_from_depot, s.local_free),
        (30, 64, 4, 10),
        "{s:?}"
    );
    assert_eq!(
        s.capacity,
        s.in_use + s.local_free + s.depot_free + s.chunk_free
    );
    done.0.send(()).unwrap();
    freer.join().unwrap();
    // The freer's last 4 went to the depot as it exited.
    assert_eq!(P.stats().depot_free, 68);
    drop(again);
    P.trim();
    let s = P.stats();
    assert_eq!(
        (s.in_use, s.local_free, s.depot_free, s.chunks),
        (0, 0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn system_backing_works() {
    static P: Pool<[u8; 100]> = Pool::with_config(PoolConfig::new().backing(Backing::System));
    let n = if cfg!(miri) { 1_000 } else { 20_000 };
    let objs: Vec<_> = (0..n).map(|i| P.alloc([i as u8; 100])).collect();
    assert!(objs.iter().enumerate().all(|(i, o)| o[99] == i as u8));
    drop(objs);
    P.trim();
    assert_eq!(P.stats().chunks, 0);
}

#[test]
fn arena_backing_works_and_trims() {
    static P: Pool<[u8; 200]> = Pool::with_config(PoolConfig::new().backing(Backing::Arena));
    // Four chunks of at least 1 MiB; one under Miri.
    let (n, chunks) = if cfg!(miri) { (1_000, 1) } else { (20_000, 4) };
    let objs: Vec<_> = (0..n).map(|i| P.alloc([i as u8; 200])).collect();
    assert!(objs.iter().enumerate().all(|(i, o)| o[199] == i as u8));
    assert!(P.stats().chunks >= chunks);
    drop(objs);
    P.trim();
    assert_eq!(P.stats().chunks, 0);
}

#[test]
fn thread_exit_moves_its_list_to_the_depot_for_reuse() {
    static P: Pool<[u8; 128]> = Pool::new();
    thread::spawn(|| {
        let objs: Vec<_> = (0..500).map(|_| P.alloc([1; 128])).collect();
        drop(objs);
        // The freed objects plus the rest of the last batch taken.
        let s = P.stats();
        assert!(s.local_free >= 500 && s.local_free < 500 + 64, "{s:?}");
    })
    .join()
    .unwrap();
    let s = P.stats();
    assert_eq!(s.local_free, 0, "an exited thread still holds objects");
    assert!(s.depot_free >= 500, "{s:?}");
    assert_eq!(s.threads, 0);
    let chunks = s.chunks;
    let objs: Vec<_> = (0..500).map(|_| P.alloc([2; 128])).collect();
    assert_eq!(P.stats().chunks, chunks, "depot objects were not reused");
    assert!(P.stats().depot_free < 64);
    drop(objs);
}

#[test]
fn trim_asks_other_threads_to_flush() {
    // 300 objects of 128 B: within the default per-thread budget of the
    // lists (64 KiB), so the worker's list keeps them all.
    static P: Pool<[u8; 128]> = Pool::new();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        drop((0..300).map(|_| P.alloc([0; 128])).collect::<Vec<_>>());
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        // Next operation on the pool after the trim: the list is flushed.
        drop(P.alloc([1; 128]));
        done_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    done_rx.recv().unwrap();
    let before = P.stats().local_free;
    assert!(before >= 300, "{before}");
    P.trim();
    assert_eq!(
        P.stats().local_free,
        before,
        "trim must not touch another thread's list"
    );
    go_tx.send(()).unwrap();
    done_rx.recv().unwrap();
    let s = P.stats();
    // Flushed, then one fresh batch taken (and the object freed back to it).
    let batch = PoolConfig::new().resolve(128).batch;
    assert!(
        s.local_free <= batch && s.local_free < before,
        "the worker did not flush: {}",
        s.local_free
    );
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    P.trim();
    let s = P.stats();
    assert_eq!((s.in_use, s.chunks), (0, 0));
}

#[test]
fn dropping_a_pool_keeps_live_objects_valid() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let pool: Pool<Counted<'static>> = Pool::new();
    let n = if cfg!(miri) { 500 } else { 5000 };
    let objs: Vec<_> = (0..n).map(|i| pool.alloc(Counted(&DROPS, i))).collect();
    let keep = objs[10].clone_value(&pool);
    drop(pool);
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(o.1, i as u64);
    }
    let sent = thread::spawn(move || {
        drop(objs);
        DROPS.load(Ordering::SeqCst)
    })
    .join()
    .unwrap();
    assert_eq!(sent, n as usize);
    assert_eq!(keep.1, 10);
    drop(keep);
    assert_eq!(DROPS.load(Ordering::SeqCst), n as usize + 1);

    trait CloneValue {
        fn clone_value(&self, pool: &Pool<Counted<'static>>) -> Pooled<Counted<'static>>;
    }
    impl CloneValue for Pooled<Counted<'static>> {
        fn clone_value(&self, pool: &Pool<Counted<'static>>) -> Pooled<Counted<'static>> {
            pool.alloc(Counted(self.0, self.1))
        }
    }
}

#[test]
fn dropped_pools_release_their_memory_and_ids_are_reused() {
    fn live_pools_of(name: &str) -> usize {
        hotpool::stats::pools()
            .iter()
            .filter(|p| p.type_name.contains(name))
            .count()
    }
    #[allow(dead_code)]
    struct Transient([u8; 48]);
    let (rounds, per_pool) = if cfg!(miri) { (2, 10) } else { (3, 100) };
    for round in 0..rounds {
        // More pools than the thread-local fast table holds.
        let pools: Vec<Pool<Transient>> = (0..40).map(|_| Pool::new()).collect();
        let objs: Vec<_> = pools
            .iter()
            .flat_map(|p| (0..per_pool).map(move |i| p.alloc(Transient([i as u8; 48]))))
            .collect();
        assert_eq!(live_pools_of("Transient"), 40, "round {round}");
        for (p, chunk) in pools.iter().zip(objs.chunks(per_pool)) {
            assert_eq!(p.stats().in_use, per_pool);
            assert!(chunk.iter().enumerate().all(|(i, o)| o.0[47] == i as u8));
        }
        drop(objs);
        drop(pools);
        assert_eq!(
            live_pools_of("Transient"),
            0,
            "a dropped pool was not freed"
        );
    }
}

#[test]
fn report_lists_pools_in_an_aligned_table() {
    struct RouterMessage(#[allow(dead_code)] [u8; 200]);
    static P: Pool<RouterMessage> = Pool::new();
    let m = P.alloc(RouterMessage([0; 200]));
    let table = hotpool::stats::report();
    let header = table.lines().next().unwrap();
    let row = table
        .lines()
        .find(|l| l.contains("RouterMessage"))
        .expect("pool missing from report");
    assert_eq!(header.len(), row.len(), "columns not aligned:\n{table}");
    assert!(row.contains(" 200 "));
    drop(m);
}

#[test]
fn many_short_lived_threads_keep_memory_bounded() {
    static P: Pool<[u8; 64]> = Pool::new();
    // The first wave's 20 threads start together and may each map a chunk
    // when they find none with room (chunks are mapped outside the depot
    // lock); later waves must live on what the pool already has.
    let (waves, threads) = if cfg!(miri) { (4, 4) } else { (100, 20) };
    let mut after_first = 0;
    for wave in 0..waves {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                thread::spawn(|| {
                    let objs: Vec<_> = (0..50).map(|_| P.alloc([3; 64])).collect();
                    assert!(objs.iter().all(|o| o[63] == 3));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        if wave == 0 {
            after_first = P.stats().chunks;
        }
    }
    let s = P.stats();
    assert_eq!(s.in_use, 0);
    assert_eq!(s.threads, 0);
    assert!(
        after_first <= threads,
        "{threads} threads mapped {after_first} chunks"
    );
    assert_eq!(
        s.chunks,
        after_first,
        "{} threads of 50 objects grew the pool from {after_first} to {} chunks",
        waves * threads,
        s.chunks
    );
}

#[test]
fn stress_cross_thread_free_with_thread_exit() {
    const THREADS: usize = if cfg!(miri) { 2 } else { 8 };
    const PER_THREAD: usize = if cfg!(miri) { 300 } else { 20_000 };
    #[derive(Clone)]
    struct Msg {
        seq: u64,
        check: u64,
        body: [u64; 6],
    }
    static P: Pool<Msg> =
        Pool::with_config(PoolConfig::new().batch(16).local_max(64).depot_max(256));
    let made = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS * 2));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for t in 0..THREADS {
        let (tx, rx) = mpsc::sync_channel::<Pooled<Msg>>(256);
        let (made, go) = (made.clone(), start.clone());
        senders.push(thread::spawn(move || {
            go.wait();
            for i in 0..PER_THREAD {
                let seq = (t * PER_THREAD + i) as u64;
                let m = P.alloc(Msg {
                    seq,
                    check: seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    body: [seq; 6],
                });
                made.fetch_add(1, Ordering::Relaxed);
                tx.send(m).unwrap();
            }
            // This thread exits mid-run while its objects are still in flight.
        }));
        let (freed, go) = (freed.clone(), start.clone());
        receivers.push(thread::spawn(move || {
            go.wait();
            let mut kept = Vec::new();
            for m in rx {
                assert_eq!(
                    m.check,
                    m.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    "object corrupted"
                );
                assert_eq!(m.body, [m.seq; 6], "object corrupted");
                // Keep a few alive for a while, allocate replacements here.
                if m.seq % 7 == 0 {
                    kept.push(P.alloc(m.as_ref().clone()));
                }
                if kept.len() > 100 {
                    kept.clear();
                }
                drop(m);
                freed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in senders.into_iter().chain(receivers) {
        h.join().unwrap();
    }
    assert_eq!(made.load(Ordering::SeqCst), THREADS * PER_THREAD);
    assert_eq!(freed.load(Ordering::SeqCst), THREADS * PER_THREAD);
    let s = P.stats();
    assert_eq!(s.in_use, 0, "objects lost: {s:?}");
    assert_eq!(s.local_free, 0);
    assert_eq!(s.capacity, s.depot_free + s.chunk_free);
    P.trim();
    assert_eq!(P.stats().chunks, 0);
}

#[test]
fn a_dropped_pool_is_freed_once_other_threads_flush_its_objects() {
    #[allow(dead_code)]
    struct Orphaned([u8; 40]);
    let live = || {
        hotpool::stats::pools()
            .iter()
            .filter(|p| p.type_name.contains("Orphaned"))
            .count()
    };
    let pool = Arc::new(Pool::<Orphaned>::new());
    let keep = pool.alloc(Orphaned([1; 40]));
    let (obj_tx, obj_rx) = mpsc::channel::<Pooled<Orphaned>>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let worker = {
        let pool = pool.clone();
        thread::spawn(move || {
            // Cache objects of the pool in this thread's list, then let go
            // of the pool.
            drop(
                (0..100)
                    .map(|_| pool.alloc(Orphaned([2; 40])))
                    .collect::<Vec<_>>(),
            );
            drop(pool);
            ready_tx.send(()).unwrap();
            // Freeing one more object after the pool is gone flushes them.
            drop(obj_rx.recv().unwrap());
            ready_tx.send(()).unwrap();
            obj_rx.recv().ok();
        })
    };
    ready_rx.recv().unwrap();
    drop(pool);
    assert_eq!(
        live(),
        1,
        "the pool's memory must outlive it while objects are cached"
    );
    obj_tx.send(keep).unwrap();
    ready_rx.recv().unwrap();
    assert_eq!(live(), 0, "the dropped pool was not freed after the flush");
    drop(obj_tx);
    worker.join().unwrap();
}

#[test]
fn statistics_read_while_other_threads_grow_their_lists_count_whole_lists() {
    // A list's bound doubles from one batch to `local_max`: 7 stack moves
    // per thread.
    static P: Pool<[u8; 96]> = Pool::with_config(PoolConfig::new().batch(16).local_max(1024));
    let (rounds, burst) = if cfg!(miri) { (3, 200) } else { (60, 3_000) };
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            // Each thread's list starts empty and is moved to larger stacks
            // as it grows, then freed when the thread exits.
            for _ in 0..rounds {
                thread::spawn(move || {
                    let objs: Vec<_> = (0..burst).map(|_| P.alloc([7; 96])).collect();
                    drop(objs);
                })
                .join()
                .unwrap();
            }
            done.store(1, Ordering::Release);
        })
    };
    let mut reads = 0;
    while done.load(Ordering::Acquire) == 0 || reads == 0 {
        let s = P.stats();
        // One thread at a time holds a list, of at most `local_max`; a
        // length read from one stack's top and another's base would be
        // far beyond it.
        assert!(s.local_free <= 1024, "{s:?}");
        reads += 1;
    }
    worker.join().unwrap();
    assert_eq!(P.stats().local_free, 0);
}
