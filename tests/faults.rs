//! Fault injection: with every Nth request to a backing allocator failing
//! (`hotpool::testing`, enabled for tests by the dev-dependency on the
//! crate with the `fault-injection` feature), every `try_` path returns an
//! error, nothing leaks, and the pool or arena works normally afterwards.
//!
//! The injection switch is process-wide, so the tests take one lock.

use std::alloc::Layout;
use std::sync::{Mutex, MutexGuard};
use std::thread;

use allocator_api2::alloc::Allocator;
use hotpool::testing;
use hotpool::{AllocError, Backing, HotAlloc, Pool, PoolConfig, Pooled};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the injection switch for the whole of one test; turns injection
/// off on drop, even if the test fails.
struct Injection<'a>(#[allow(dead_code)] MutexGuard<'a, ()>);

impl Injection<'_> {
    fn start(every: usize) -> Injection<'static> {
        let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        // The arena must be started before faults are injected: a failed
        // start would leave it without arenas for the whole process. This
        // thread's cache is made now too: a thread whose cache cannot be
        // made runs without one, which is a fault absorbed, not reported.
        let warm = hotpool::arena::try_alloc(64, 8).expect("arena starts");
        // SAFETY: allocated just above, freed once.
        unsafe { hotpool::arena::free(warm) };
        hotpool::arena::trim();
        testing::fail_every(every);
        Injection(guard)
    }
}

impl Injection<'_> {
    /// Stops injecting; the switch stays held until the test ends.
    fn stop(&self) {
        testing::fail_every(0);
    }
}

impl Drop for Injection<'_> {
    fn drop(&mut self) {
        testing::fail_every(0);
    }
}

type Page = [u8; 4000];

/// Allocates `n` objects through every `try_` path of `pool` while faults
/// are injected; returns the objects and how many requests failed.
fn fill(pool: &'static Pool<Page>, n: usize) -> (Vec<Pooled<Page>>, usize) {
    let mut held = Vec::new();
    let mut failed = 0;
    for i in 0..n {
        let made = std::cell::Cell::new(false);
        let r = match i % 3 {
            0 => pool.try_alloc([i as u8; 4000]),
            1 => pool.try_alloc_with(|| {
                made.set(true);
                [i as u8; 4000]
            }),
            _ => pool
                .try_alloc_uninit()
                .map(|slot| Pooled::write(slot, [i as u8; 4000])),
        };
        match r {
            Ok(p) => held.push(p),
            Err(e) => {
                assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");
                assert!(!made.get(), "the constructor ran without memory");
                failed += 1;
            }
        }
    }
    (held, failed)
}

fn pool_survives_faults(label: &str, pool: &'static Pool<Page>, every: usize) {
    let injection = Injection::start(every);
    let before = testing::faults().injected;
    let (held, failed) = fill(pool, 3000);
    let injected = testing::faults().injected - before;
    injection.stop();

    println!(
        "{label} pool, every {every}: {injected} faults injected, {failed} try_ errors, all survived"
    );
    assert!(failed > 0, "no fault reached the pool");
    assert_eq!(failed, injected, "a fault was swallowed or invented");
    for (i, p) in held.iter().enumerate() {
        assert!(p.iter().all(|&b| b == p[0]), "object {i} corrupted");
    }
    let s = pool.stats();
    assert_eq!(s.in_use, held.len(), "{s:?}");
    assert_eq!(s.chunks as u64, s.chunks_made - s.chunks_released, "{s:?}");
    assert_eq!(
        s.capacity,
        s.in_use + s.local_free + s.depot_free + s.chunk_free
    );

    drop(held);
    pool.trim();
    let s = pool.stats();
    assert_eq!(
        (s.in_use, s.chunks),
        (0, 0),
        "objects or chunks lost: {s:?}"
    );

    // Usable afterwards, without faults.
    let again: Vec<_> = (0..1000).map(|i| pool.alloc([i as u8; 4000])).collect();
    assert_eq!(pool.stats().in_use, 1000);
    drop(again);
    pool.trim();
    assert_eq!(pool.stats().chunks, 0);
}

#[test]
fn os_backed_pool_survives_every_second_chunk_failing() {
    static P: Pool<Page> = Pool::with_config(PoolConfig::new().batch(16));
    pool_survives_faults("OS-backed", &P, 2);
}

#[test]
fn malloc_backed_pool_survives_every_second_chunk_failing() {
    static P: Pool<Page> = Pool::with_config(PoolConfig::new().backing(Backing::System));
    pool_survives_faults("malloc-backed", &P, 2);
}

#[test]
fn arena_backed_pool_survives_every_third_chunk_failing() {
    static P: Pool<Page> = Pool::with_config(PoolConfig::new().backing(Backing::Arena));
    pool_survives_faults("arena-backed", &P, 3);
}

#[test]
fn pool_survives_faults_under_concurrent_allocation() {
    static P: Pool<Page> = Pool::with_config(PoolConfig::new().batch(16).local_max(64));
    let injection = Injection::start(2);
    let before = testing::faults().injected;
    // Joined (not scoped) threads: a join returns only after the thread's
    // exit hook handed its list back, so the counts are final.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(|| {
                let mut failed = 0;
                let mut kept = Vec::new();
                for round in 0..4 {
                    let (held, f) = fill(&P, 500);
                    failed += f;
                    if round % 2 == 0 {
                        // Kept to the end: memory stays in use.
                        kept.extend(held);
                    }
                }
                (failed, kept)
            })
        })
        .collect();
    let results: Vec<(usize, Vec<Pooled<Page>>)> =
        workers.into_iter().map(|w| w.join().unwrap()).collect();
    let injected = testing::faults().injected - before;
    injection.stop();
    let failed: usize = results.iter().map(|r| r.0).sum();
    let kept: Vec<Pooled<Page>> = results.into_iter().flat_map(|r| r.1).collect();
    println!("8 threads, every 2: {injected} faults injected, {failed} try_ errors, all survived");
    assert!(failed > 0);
    assert_eq!(failed, injected);
    let s = P.stats();
    assert_eq!(s.in_use, kept.len(), "{s:?}");
    assert_eq!(s.chunks as u64, s.chunks_made - s.chunks_released);
    for (i, p) in kept.iter().enumerate() {
        assert!(p.iter().all(|&b| b == p[0]), "object {i} corrupted");
    }
    drop(kept);
    P.trim();
    let s = P.stats();
    assert_eq!(
        (s.in_use, s.chunks),
        (0, 0),
        "objects or chunks lost: {s:?}"
    );
}

#[test]
fn every_arena_try_path_reports_faults_and_leaks_nothing() {
    let injection = Injection::start(2);
    let before = testing::faults().injected;
    let base = hotpool::arena::stats();
    let mut blocks = Vec::new();
    let mut api_blocks = Vec::new();
    let mut failed = 0;
    for i in 0..120usize {
        // Huge blocks map on every request; large ones when a chunk fills.
        let size = if i % 2 == 0 { 2 << 20 } else { 600 << 10 };
        let r = match i % 4 {
            0 => hotpool::arena::try_alloc(size, 64),
            1 => hotpool::arena::calloc(size / 8, 8),
            2 => hotpool::arena::alloc_array(size / 16, 16),
            _ => {
                let layout = Layout::from_size_align(size, 4096).unwrap();
                match HotAlloc.allocate(layout) {
                    Ok(b) => {
                        api_blocks.push((b.cast::<u8>(), layout));
                        continue;
                    }
                    Err(_) => {
                        failed += 1;
                        continue;
                    }
                }
            }
        };
        match r {
            Ok(p) => blocks.push(p),
            Err(e) => {
                assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");
                failed += 1;
            }
        }
    }
    let injected = testing::faults().injected - before;
    injection.stop();
    println!("arena every 2: {injected} faults injected, {failed} try_ errors, all survived");
    assert!(failed > 0);
    assert_eq!(failed, injected, "a fault was swallowed or invented");
    for p in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { hotpool::arena::free(p) };
    }
    for (p, layout) in api_blocks {
        // SAFETY: allocated with this layout, freed once.
        unsafe { HotAlloc.deallocate(p, layout) };
    }
    hotpool::arena::trim();
    let after = hotpool::arena::stats();
    assert_eq!(after.allocated, base.allocated, "arena bytes leaked");

    // Usable afterwards.
    let p = hotpool::arena::try_alloc(2 << 20, 64).unwrap();
    // SAFETY: freed once.
    unsafe { hotpool::arena::free(p) };
}
