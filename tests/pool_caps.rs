//! Bounded pools (`PoolConfig::max_objects` / `max_bytes`, issue 14 item
//! 5): past the cap the `try_` allocations return `AllocError::PoolFull`
//! and `alloc` aborts like an allocation failure; objects freed come back
//! under the cap; from several threads at once the cap is never exceeded.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;
use std::thread;

use hotpool::{AllocError, Pool, PoolConfig, Shared};

/// Counts drops of values made with a given counter.
struct Counted(&'static AtomicUsize);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Objects out of the pool's chunks, from its statistics: what a cap counts.
fn out_of_chunks<T>(p: &Pool<T>) -> usize {
    let s = p.stats();
    s.in_use + s.local_free + s.depot_free
}

#[test]
fn the_cap_refuses_every_try_path_and_frees_make_room_again() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static P: Pool<Counted> = Pool::with_config(PoolConfig::new().name("capped").max_objects(100));
    let full = AllocError::PoolFull {
        pool: "capped",
        max_objects: 100,
    };
    let mut held: Vec<_> = (0..100)
        .map(|_| P.try_alloc(Counted(&DROPS)).unwrap())
        .collect();
    assert_eq!(P.stats().in_use, 100);

    // Every try_ path is refused; values handed in are dropped, closures
    // not called.
    assert_eq!(P.try_alloc(Counted(&DROPS)).err(), Some(full));
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(
        P.try_alloc_with(|| -> Counted { panic!("not called past the cap") })
            .err(),
        Some(full)
    );
    assert_eq!(P.try_alloc_uninit().err(), Some(full));
    assert_eq!(Shared::try_new_in(Counted(&DROPS), &P).err(), Some(full));
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
    assert_eq!(
        full.to_string(),
        "hotpool: pool capped is at its cap of 100 objects"
    );

    // Statistics: exactly the cap is out of the chunks, all in use.
    let s = P.stats();
    assert_eq!((s.in_use, out_of_chunks(&P)), (100, 100));
    assert_eq!(
        s.capacity,
        s.in_use + s.local_free + s.depot_free + s.chunk_free
    );

    // Ten freed, ten more fit, then the cap again.
    held.truncate(90);
    assert_eq!(DROPS.load(Ordering::SeqCst), 12);
    assert_eq!(P.stats().in_use, 90);
    for _ in 0..10 {
        held.push(P.try_alloc(Counted(&DROPS)).unwrap());
    }
    assert_eq!(P.try_alloc(Counted(&DROPS)).err(), Some(full));
    assert_eq!(P.stats().in_use, 100);

    // All freed and trimmed: the objects went back into the chunks, the
    // chunks back to the OS, and the whole cap is available again.
    drop(held);
    P.trim();
    let s = P.stats();
    assert_eq!((s.in_use, s.chunks, out_of_chunks(&P)), (0, 0, 0));
    let again: Vec<_> = (0..100)
        .map(|_| P.try_alloc(Counted(&DROPS)).unwrap())
        .collect();
    assert_eq!(P.try_alloc(Counted(&DROPS)).err(), Some(full));
    assert_eq!(P.stats().in_use, 100);
    drop(again);
}

#[test]
fn max_bytes_counts_slot_bytes_and_the_lower_cap_holds() {
    static BYTES: Pool<[u8; 256]> =
        Pool::with_config(PoolConfig::new().name("by-bytes").max_bytes(10_000));
    static BOTH: Pool<[u8; 256]> = Pool::with_config(
        PoolConfig::new()
            .name("both")
            .max_bytes(10_000)
            .max_objects(20),
    );
    // 10_000 / 256 = 39 slots.
    let held: Vec<_> = (0..39)
        .map(|_| BYTES.try_alloc([1; 256]).unwrap())
        .collect();
    assert_eq!(
        BYTES.try_alloc([1; 256]).err(),
        Some(AllocError::PoolFull {
            pool: "by-bytes",
            max_objects: 39
        })
    );
    assert_eq!(BYTES.stats().slot_size * held.len(), 9_984);
    let both: Vec<_> = (0..20).map(|_| BOTH.try_alloc([2; 256]).unwrap()).collect();
    assert_eq!(
        BOTH.try_alloc([2; 256]).err(),
        Some(AllocError::PoolFull {
            pool: "both",
            max_objects: 20
        })
    );
    drop((held, both));
}

#[test]
fn an_uncapped_pool_has_no_cap() {
    assert_eq!(PoolConfig::new().resolve(64).max_objects, None);
    assert_eq!(
        PoolConfig::new().max_objects(7).resolve(64).max_objects,
        Some(7)
    );
    assert_eq!(
        PoolConfig::new().max_bytes(100).resolve(64).max_objects,
        Some(1)
    );
    assert_eq!(
        PoolConfig::new().max_bytes(63).resolve(64).max_objects,
        Some(0)
    );
}

#[test]
fn zero_sized_types_are_never_refused() {
    static Z: Pool<()> = Pool::with_config(PoolConfig::new().max_objects(1));
    let many: Vec<_> = (0..10).map(|_| Z.try_alloc(()).unwrap()).collect();
    assert_eq!(many.len(), 10);
}

/// Eight threads allocate against one cap at once. First each takes up to
/// 64 objects and holds them until all have tried (8 * 64 > the cap, so the
/// cap is reached); then they churn: free half (all every fourth round),
/// allocate again. The objects held (counted by the threads themselves)
/// never exceed the cap, and once the threads have exited every object is
/// back: one thread gets the whole cap again.
#[test]
fn eight_threads_never_exceed_the_cap_and_the_objects_come_back() {
    const CAP: usize = 300;
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    static P: Pool<[u64; 4]> = Pool::with_config(
        PoolConfig::new()
            .name("shared-cap")
            .max_objects(CAP)
            .batch(16)
            .local_max(32),
    );
    static HELD: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    static REFUSED: AtomicUsize = AtomicUsize::new(0);

    /// Takes objects until `mine` holds 64 or the pool refuses.
    fn fill(mine: &mut Vec<hotpool::Pooled<[u64; 4]>>, t: u64) -> usize {
        let mut served = 0;
        while mine.len() < 64 {
            match P.try_alloc([t; 4]) {
                Ok(o) => {
                    let now = HELD.fetch_add(1, Ordering::SeqCst) + 1;
                    PEAK.fetch_max(now, Ordering::SeqCst);
                    mine.push(o);
                    served += 1;
                }
                Err(e) => {
                    let want = AllocError::PoolFull {
                        pool: "shared-cap",
                        max_objects: CAP,
                    };
                    assert_eq!(e, want);
                    REFUSED.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
        served
    }

    let (start, held_all) = (Barrier::new(THREADS), Barrier::new(THREADS));
    let served: usize = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS as u64)
            .map(|t| {
                let (start, held_all) = (&start, &held_all);
                s.spawn(move || {
                    let mut mine = Vec::with_capacity(64);
                    start.wait();
                    let mut served = fill(&mut mine, t);
                    held_all.wait();
                    for round in 0..ROUNDS {
                        assert!(mine.iter().all(|o| **o == [t; 4]));
                        let keep = if round % 4 == 3 { 0 } else { mine.len() / 2 };
                        while mine.len() > keep {
                            HELD.fetch_sub(1, Ordering::SeqCst);
                            mine.pop();
                        }
                        served += fill(&mut mine, t);
                    }
                    HELD.fetch_sub(mine.len(), Ordering::SeqCst);
                    drop(mine);
                    served
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    let peak = PEAK.load(Ordering::SeqCst);
    assert!(peak <= CAP, "{peak} objects held at once, cap {CAP}");
    assert!(REFUSED.load(Ordering::SeqCst) > 0);
    assert!(served > CAP, "{served} objects served");
    assert_eq!(HELD.load(Ordering::SeqCst), 0);

    // The threads are gone and their lists flushed: nothing in use, and
    // this thread gets the whole cap again.
    let s = P.stats();
    assert_eq!((s.in_use, s.local_free), (0, 0), "{s:?}");
    let all: Vec<_> = (0..CAP).map(|_| P.try_alloc([9; 4]).unwrap()).collect();
    assert!(P.try_alloc([9; 4]).is_err());
    let s = P.stats();
    assert_eq!(s.in_use, CAP, "{s:?}");
    // Chunks: what the cap needs, plus at most one per other thread that
    // mapped one at the same moment.
    let per_chunk = s.capacity / s.chunks;
    let others = THREADS - 1;
    assert!(s.chunks <= CAP.div_ceil(per_chunk) + others, "{s:?}");
    assert_eq!(
        s.capacity,
        s.in_use + s.local_free + s.depot_free + s.chunk_free
    );
    drop(all);
}

/// `alloc` past the cap follows the allocation-failure rule: it aborts
/// through `handle_alloc_error` (checked in a child process).
#[test]
fn alloc_past_the_cap_aborts_like_an_allocation_failure() {
    if std::env::var_os("HOTPOOL_CAP_CHILD").is_some() {
        static P: Pool<u64> = Pool::with_config(PoolConfig::new().max_objects(1));
        let one = P.alloc(1);
        eprintln!("first object {}", *one);
        let two = P.alloc(2);
        eprintln!("second object {}", *two);
        return;
    }
    if cfg!(miri) {
        return; // Miri runs no child processes
    }
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "alloc_past_the_cap_aborts_like_an_allocation_failure",
            "--nocapture",
        ])
        .env("HOTPOOL_CAP_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("first object 1"), "{err}");
    assert!(err.contains("memory allocation of 8 bytes failed"), "{err}");
    assert!(!err.contains("second object"), "{err}");
}
