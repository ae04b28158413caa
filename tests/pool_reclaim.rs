//! The background purger reclaims the pool lists of a thread that goes
//! quiet (issue 14): with the default budgets (8 MiB of lists per thread)
//! and `decay_ms` shortened, a thread that bursts through several pools
//! and then blocks on a channel holds at most one object per list within
//! `decay_ms` and a few purger rounds, and its lists work when it wakes.
//! A stress test runs eight threads that alternate bursts, fast-path churn
//! and short blocks while the purger reclaims with `decay_ms:0`, checking
//! every object against its owner's pattern (a double hand-out would
//! show).
//!
//! The reclaim needs the process-wide barrier (`membarrier`): without it
//! (an old kernel, a sandbox, ThreadSanitizer) the tests say so and pass.
//! Linux only (the purger); not under Miri (no purger thread).
#![cfg(all(target_os = "linux", not(miri)))]

use std::collections::HashSet;
use std::sync::{mpsc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hotpool::stats::PoolStats;
use hotpool::{arena, Pool};

#[path = "common/child.rs"]
mod child;
#[path = "common/membarrier.rs"]
mod membarrier;
use child::wait_child;
use membarrier::reclaim_available;

/// The tests set process-wide knobs (`decay_ms`): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shortens `decay_ms` and makes sure the purger runs.
fn start_purger(decay_ms: i64) {
    arena::set_decay_ms(decay_ms);
    assert!(arena::set_background_thread(true), "the purger runs");
}

/// Polls `done` every 5 ms until it holds; panics with `what` and the last
/// figures if `limit` passes first.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match done() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!("{what} not within {limit:?}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Ok if each thread's list of each pool holds at most one object.
fn at_most_one_per_list(pools: &[PoolStats]) -> Result<(), String> {
    if pools.iter().all(|p| p.local_free <= p.threads) {
        Ok(())
    } else {
        Err(pools
            .iter()
            .map(|p| format!("{}: {} in {} lists", p.type_name, p.local_free, p.threads))
            .collect::<Vec<_>>()
            .join(", "))
    }
}

/// Ok once each list holds at most one object and no object is on its way
/// from a list to its pool: `in_use` is derived (capacity less the free
/// objects in chunks, depot and lists, read one after the other), so while
/// the purger moves a list's objects back it counts them as in use.
fn reclaimed(pools: &[PoolStats]) -> Result<(), String> {
    at_most_one_per_list(pools)?;
    match pools.iter().find(|p| p.in_use != 0) {
        None => Ok(()),
        Some(p) => Err(format!("{}: {} in use", p.type_name, p.in_use)),
    }
}

/// Bytes of free objects in threads' lists of `pools`.
fn held(pools: &[PoolStats]) -> usize {
    pools.iter().map(|p| p.local_free * p.slot_size).sum()
}

static SMALL: Pool<[u8; 64]> = Pool::new();
static WORDS: Pool<[u64; 64]> = Pool::new();
static PAGES: Pool<[u8; 4096]> = Pool::new();
static NAMES: Pool<(String, u32)> = Pool::new();

fn burst_pools() -> Vec<PoolStats> {
    vec![SMALL.stats(), WORDS.stats(), PAGES.stats(), NAMES.stats()]
}

/// Allocates `n` objects of each pool (a quarter as many pages), each with
/// a value of its own plus `salt`; checks they are distinct objects that
/// kept their values; frees them.
fn burst_and_check(n: usize, salt: u64) {
    let a: Vec<_> = (0..n)
        .map(|i| SMALL.alloc([(i as u64 + salt) as u8; 64]))
        .collect();
    let b: Vec<_> = (0..n).map(|i| WORDS.alloc([i as u64 + salt; 64])).collect();
    let c: Vec<_> = (0..n / 4)
        .map(|i| PAGES.alloc([(i as u64 + salt) as u8; 4096]))
        .collect();
    let d: Vec<_> = (0..n)
        .map(|i| NAMES.alloc(((i as u64 + salt).to_string(), i as u32)))
        .collect();
    let mut seen = HashSet::new();
    for (i, o) in a.iter().enumerate() {
        assert!(o.iter().all(|&x| x == (i as u64 + salt) as u8), "small {i}");
        assert!(seen.insert(&**o as *const _ as usize), "small {i} twice");
    }
    for (i, o) in b.iter().enumerate() {
        assert!(o.iter().all(|&x| x == i as u64 + salt), "words {i}");
        assert!(seen.insert(&**o as *const _ as usize), "words {i} twice");
    }
    for (i, o) in c.iter().enumerate() {
        assert!(o.iter().all(|&x| x == (i as u64 + salt) as u8), "page {i}");
        assert!(seen.insert(&**o as *const _ as usize), "page {i} twice");
    }
    for (i, o) in d.iter().enumerate() {
        assert_eq!(o.0, (i as u64 + salt).to_string(), "name {i}");
        assert_eq!(o.1, i as u32, "name {i}");
        assert!(seen.insert(&**o as *const _ as usize), "name {i} twice");
    }
    drop((a, b, c, d));
}

#[test]
fn a_thread_that_blocks_after_a_burst_keeps_one_object_per_list() {
    let _g = serial();
    if !reclaim_available() {
        eprintln!("pool_reclaim: skipped: no membarrier (or a ThreadSanitizer build)");
        return;
    }
    const DECAY_MS: i64 = 400;
    start_purger(DECAY_MS);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        burst_and_check(20_000, 0);
        ready_tx.send(()).unwrap();
        // Blocked: this thread runs no pool code until told to go.
        go_rx.recv().unwrap();
        // Its lists work after the reclaim.
        burst_and_check(20_000, 7);
        burst_and_check(300, 11);
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    ready_rx.recv().unwrap();
    let start = Instant::now();
    let before = burst_pools();
    // The burst left far more than the reclaim leaves.
    assert!(
        held(&before) > 1 << 20,
        "the lists hold {} B",
        held(&before)
    );
    wait_until(
        Duration::from_millis(DECAY_MS as u64 + 5_000),
        "reclaim of the quiet thread's lists",
        || reclaimed(&burst_pools()),
    );
    let after = burst_pools();
    println!(
        "pool_reclaim: the quiet thread's lists went from {} KiB to {} B in {:?}",
        held(&before) >> 10,
        held(&after),
        start.elapsed()
    );
    assert!(held(&after) <= 256 << 10);
    for p in &after {
        assert_eq!(p.in_use, 0, "{}: every object is free", p.type_name);
        assert_eq!(
            p.threads, 1,
            "{}: the worker still has its list",
            p.type_name
        );
    }
    go_tx.send(()).unwrap();
    ready_rx.recv().unwrap();
    for p in burst_pools() {
        assert_eq!(p.in_use, 0, "{}: every object came back", p.type_name);
        assert!(p.local_free > 0, "{}: the list caches again", p.type_name);
    }
    // Quiet again: reclaimed again.
    wait_until(
        Duration::from_millis(DECAY_MS as u64 + 5_000),
        "second reclaim of the quiet thread's lists",
        || reclaimed(&burst_pools()),
    );
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    for p in burst_pools() {
        assert_eq!((p.in_use, p.local_free), (0, 0), "{}", p.type_name);
    }
    arena::set_decay_ms(hotpool::config::DEFAULT.decay_ms);
}

static SMALL_OBJS: Pool<[u64; 8]> = Pool::new();
static PAGE_OBJS: Pool<[u64; 512]> = Pool::new();

/// A value no other thread or object writes: the thread in the top bits.
fn tag(thread: u64, n: u64) -> u64 {
    thread << 48 | n
}

/// One stress thread: rounds of a burst (held, checked, freed in another
/// order), fast-path churn (a few objects allocated and freed again and
/// again, which the reclaimer may catch mid-call: the churn runs no slow
/// path) and a short block, until `stop`.
fn stress_thread(me: u64, stop: Instant) -> u64 {
    let mut n = 0u64;
    let mut rounds = 0;
    let mut rng = me.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    while Instant::now() < stop {
        let count = 100 + (next() % 3000) as usize;
        let mut small = Vec::with_capacity(count);
        let mut pages = Vec::with_capacity(count / 8);
        for i in 0..count {
            n += 1;
            small.push((n, SMALL_OBJS.alloc([tag(me, n); 8])));
            if i % 8 == 0 {
                pages.push((n, PAGE_OBJS.alloc([tag(me, n); 512])));
            }
        }
        for (v, o) in &small {
            assert!(
                o.iter().all(|&x| x == tag(me, *v)),
                "thread {me}: small {v}"
            );
        }
        for (v, o) in &pages {
            assert!(o.iter().all(|&x| x == tag(me, *v)), "thread {me}: page {v}");
        }
        // Freed from the middle out, so the lists' order changes.
        while !small.is_empty() {
            let (v, o) = small.swap_remove((next() % small.len() as u64) as usize);
            assert!(o.iter().all(|&x| x == tag(me, v)), "thread {me}: small {v}");
        }
        drop(pages);
        let churn_until = Instant::now() + Duration::from_millis(next() % 40);
        while Instant::now() < churn_until {
            let held: Vec<_> = (0..16)
                .map(|_| {
                    n += 1;
                    (n, SMALL_OBJS.alloc([tag(me, n); 8]))
                })
                .collect();
            for (v, o) in &held {
                assert!(
                    o.iter().all(|&x| x == tag(me, *v)),
                    "thread {me}: churn {v}"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(5 + next() % 40));
        rounds += 1;
    }
    rounds
}

#[test]
fn threads_alternating_bursts_and_blocks_never_share_an_object() {
    let _g = serial();
    if !reclaim_available() {
        eprintln!("pool_reclaim: skipped: no membarrier (or a ThreadSanitizer build)");
        return;
    }
    start_purger(0);
    const THREADS: u64 = 8;
    let stop = Instant::now() + Duration::from_millis(2_000);
    let quiet = std::sync::Arc::new(Barrier::new(THREADS as usize + 1));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = std::sync::Arc::new(Mutex::new(go_rx));
    let workers: Vec<_> = (1..=THREADS)
        .map(|me| {
            let (quiet, go_rx) = (quiet.clone(), go_rx.clone());
            std::thread::spawn(move || {
                let rounds = stress_thread(me, stop);
                // Everyone quiet, holding lists: the purger takes them.
                quiet.wait();
                let _ = go_rx.lock().unwrap().recv();
                rounds
            })
        })
        .collect();
    quiet.wait();
    let pools = || vec![SMALL_OBJS.stats(), PAGE_OBJS.stats()];
    wait_until(
        Duration::from_secs(5),
        "reclaim of the stress threads' lists",
        || at_most_one_per_list(&pools()),
    );
    for _ in 0..THREADS {
        go_tx.send(()).unwrap();
    }
    let rounds: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    println!("pool_reclaim: stress rounds per thread {rounds:?}");
    for p in pools() {
        assert_eq!((p.in_use, p.local_free), (0, 0), "{}", p.type_name);
    }
    arena::set_decay_ms(hotpool::config::DEFAULT.decay_ms);
}

static FORKED: Pool<[u64; 8]> = Pool::new();

/// Allocates `n` objects of [`FORKED`] holding `salt + i`; true if each
/// kept its value and none was handed out twice. Frees them.
fn forked_burst(n: u64, salt: u64) -> bool {
    let objs: Vec<_> = (0..n).map(|i| FORKED.alloc([salt + i; 8])).collect();
    let distinct: HashSet<_> = objs.iter().map(|o| &**o as *const _ as usize).collect();
    let kept = objs
        .iter()
        .enumerate()
        .all(|(i, o)| o.iter().all(|&x| x == salt + i as u64));
    kept && distinct.len() == objs.len()
}

/// The forking thread fills its list, goes quiet for up to about two
/// purger rounds (`decay_ms:0`: the purger may be taking its list when it
/// forks), then forks: the child, without the purger, uses the list at
/// once (settling it if the purger was at it) and gets distinct objects
/// with their values; so does the parent.
#[test]
fn a_child_forked_while_the_purger_reclaims_uses_its_list() {
    let _g = serial();
    if !reclaim_available() {
        eprintln!("pool_reclaim: skipped: no membarrier (or a ThreadSanitizer build)");
        return;
    }
    start_purger(0);
    let (mut hung, mut failed) = (0, 0);
    for round in 0..40u64 {
        assert!(forked_burst(2000, round << 32), "parent, round {round}");
        std::thread::sleep(Duration::from_millis(round % 25));
        // SAFETY: the child only uses the pool and the allocator (both
        // fork-safe) and ends with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = forked_burst(3000, 1 << 40);
            // SAFETY: ends the child without running the parent's atexit
            // handlers or unwinding into the test harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        match wait_child(pid) {
            None => hung += 1,
            Some(0) => {}
            Some(_) => failed += 1,
        }
    }
    assert_eq!((hung, failed), (0, 0), "children hung or got bad objects");
    arena::set_decay_ms(hotpool::config::DEFAULT.decay_ms);
}
