//! A thread that goes quiet holds little: its arena cache and its pool
//! lists are bounded by byte budgets (`tcache_bytes` + `pool_thread_bytes`,
//! 9 MiB together by default, 256 KiB with the budgets the first test
//! sets) whatever it did before, and a size class or a pool it stops using
//! gives its cached objects back over the GC events of its other work.
//! Linux only (the arena).
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{mpsc, Mutex, MutexGuard};

use hotpool::{arena, config, HotAlloc, Pool, PoolConfig};

#[path = "common/cached.rs"]
mod cached;
use cached::cached;

/// The tests read process-wide figures: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static SMALL: Pool<[u8; 64]> = Pool::new();
static WORDS: Pool<[u64; 64]> = Pool::new();
static PAGES: Pool<[u8; 4096]> = Pool::new();
static NAMES: Pool<(String, u32)> = Pool::new();

/// Bytes of free objects in threads' arena caches and pool lists.
fn held() -> (usize, usize) {
    let pools = hotpool::stats::pools()
        .iter()
        .map(|p| p.local_free * p.slot_size)
        .sum();
    (arena::stats().tcache_bytes, pools)
}

/// Bursts are scaled down under Miri.
const SCALE: usize = if cfg!(miri) { 50 } else { 1 };

/// Sizes of the arena burst: small classes of several slab shapes and a
/// large class kept in thread caches (up to `tcache_max`, 64 KiB).
const SIZES: [usize; 6] = [24, 100, 512, 3000, 9000, 20_000];

fn arena_burst(n: usize) {
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        let layout = Layout::from_size_align(SIZES[i % SIZES.len()], 8).unwrap();
        // SAFETY: non-zero layout; freed below with the same layout.
        let p = unsafe { HotAlloc.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: `p` holds at least one byte.
        unsafe { p.write(i as u8) };
        live.push((p, layout));
    }
    for (p, layout) in live {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { HotAlloc.dealloc(p, layout) };
    }
}

fn pool_burst(n: usize) {
    let a: Vec<_> = (0..n).map(|i| SMALL.alloc([i as u8; 64])).collect();
    let b: Vec<_> = (0..n).map(|i| WORDS.alloc([i as u64; 64])).collect();
    let c: Vec<_> = (0..n / 4).map(|_| PAGES.alloc([1; 4096])).collect();
    let d: Vec<_> = (0..n).map(|i| NAMES.alloc((i.to_string(), 7))).collect();
    drop((a, b, c, d));
}

#[test]
fn a_thread_that_blocks_after_a_burst_holds_at_most_256_kib() {
    let _g = serial();
    let defaults = config::DEFAULT;
    assert!(defaults.tcache_bytes + defaults.pool_thread_bytes <= 12 << 20);
    // The bound: 256 KiB in all, from budgets set at run time (they
    // apply to the thread started below).
    let budgets = (192 << 10, 64 << 10);
    arena::set_tcache_bytes(budgets.0);
    hotpool::pool::set_thread_bytes(budgets.1);
    // This thread's own arena cache goes back first, so what is measured
    // below is the other thread's.
    arena::trim();
    let (arena_before, pools_before) = held();

    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        arena_burst(100_000 / SCALE);
        pool_burst(20_000 / SCALE);
        ready_tx.send(()).unwrap();
        // Blocked: this thread runs no allocator code until told to go.
        go_rx.recv().unwrap();
    });
    ready_rx.recv().unwrap();
    let (arena_now, pools_now) = held();
    let arena_held = arena_now.saturating_sub(arena_before);
    let pools_held = pools_now.saturating_sub(pools_before);
    assert!(arena_held <= budgets.0, "arena cache holds {arena_held} B");
    assert!(pools_held <= budgets.1, "pool lists hold {pools_held} B");
    assert!(arena_held + pools_held <= 256 << 10);
    // The budgets do not stop the caches from working: the quiet thread
    // keeps some objects (below the budgets), as a warm cache.
    assert!(arena_held > 0 && pools_held > 0);
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    arena::set_tcache_bytes(defaults.tcache_bytes);
    hotpool::pool::set_thread_bytes(defaults.pool_thread_bytes);
}

#[test]
fn a_class_left_unused_shrinks_over_gc_events_while_another_is_used() {
    let _g = serial();
    std::thread::spawn(|| {
        let idle = Layout::from_size_align(256, 8).unwrap();
        // The largest small class: a stack of 8, moved 4 at a time, so a
        // slow-path event (and a GC event every 256 of them) comes cheap.
        let busy = Layout::from_size_align(14336, 8).unwrap();
        // SAFETY (every block below): non-zero layouts, each block freed
        // once with its layout.
        let burst: Vec<_> = (0..100).map(|_| unsafe { HotAlloc.alloc(idle) }).collect();
        for p in burst {
            unsafe { HotAlloc.dealloc(p, idle) };
        }
        let start = cached(256);
        assert!(start > 0);
        let mut seen = vec![start];
        for _ in 0..2000 {
            // Runs of 40 objects of the busy class: its stack runs dry and
            // overflows, which are slow-path events.
            let run: Vec<_> = (0..40).map(|_| unsafe { HotAlloc.alloc(busy) }).collect();
            for p in run {
                unsafe { HotAlloc.dealloc(p, busy) };
            }
            let now = cached(256);
            if now != *seen.last().unwrap() {
                seen.push(now);
            }
            if now == 0 {
                break;
            }
        }
        // Gradually: never growing, through at least one step between the
        // start and the end, down to nothing.
        assert!(seen.windows(2).all(|w| w[1] < w[0]), "{seen:?}");
        assert!(seen.len() >= 3, "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 0, "{seen:?}");
        // The class in use keeps its cache.
        assert!(cached(14336) > 0);
    })
    .join()
    .unwrap();
}

static IDLE_POOL: Pool<[u8; 64]> = Pool::with_config(PoolConfig::new().batch(32));
static BUSY_POOL: Pool<[u8; 64]> = Pool::with_config(PoolConfig::new().batch(4).local_max(8));

#[test]
fn a_pool_list_left_unused_shrinks_over_gc_events_while_another_is_used() {
    let _g = serial();
    std::thread::spawn(|| {
        let burst: Vec<_> = (0..100).map(|i| IDLE_POOL.alloc([i as u8; 64])).collect();
        drop(burst);
        let start = IDLE_POOL.stats().local_free;
        assert!(start > 0);
        let mut seen = vec![start];
        for _ in 0..2000 {
            // Runs of 40 objects through a list of at most 8, moved 4 at a
            // time: slow-path events.
            let run: Vec<_> = (0..40).map(|i| BUSY_POOL.alloc([i as u8; 64])).collect();
            drop(run);
            let now = IDLE_POOL.stats().local_free;
            if now != *seen.last().unwrap() {
                seen.push(now);
            }
            if now == 0 {
                break;
            }
        }
        assert!(seen.windows(2).all(|w| w[1] < w[0]), "{seen:?}");
        assert!(seen.len() >= 3, "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 0, "{seen:?}");
        // What the idle list gave back went to its pool's depot.
        assert!(IDLE_POOL.stats().depot_free >= start);
        assert!(BUSY_POOL.stats().local_free > 0);
    })
    .join()
    .unwrap();
}

#[test]
fn a_lower_pool_budget_bounds_the_lists_of_all_pools_together() {
    let _g = serial();
    hotpool::pool::set_thread_bytes(16 << 10);
    let (_, before) = held();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        pool_burst(5_000 / SCALE);
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    ready_rx.recv().unwrap();
    let (_, now) = held();
    hotpool::pool::set_thread_bytes(config::DEFAULT.pool_thread_bytes);
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    let pools_held = now.saturating_sub(before);
    assert!(pools_held <= 16 << 10, "pool lists hold {pools_held} B");
}

/// Raw blocks that can cross threads.
struct Blocks(Vec<*mut u8>);
// SAFETY: the blocks are plain memory owned by whoever holds the vector.
unsafe impl Send for Blocks {}

fn alloc_blocks(layout: Layout, n: usize) -> Blocks {
    // SAFETY: non-zero layout; each block is freed once by the receiver.
    Blocks((0..n).map(|_| unsafe { HotAlloc.alloc(layout) }).collect())
}

#[test]
fn a_thread_that_only_frees_a_class_keeps_a_few_kib_of_it() {
    let _g = serial();
    // A class no other test here uses; a consumer's stack of it may hold
    // 4 KiB (9 objects), against 128 objects (56 KiB) for a thread that
    // allocates the class.
    const SIZE: usize = 448;
    const FREE_ONLY: u64 = (4096 / SIZE) as u64;
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    let (blocks_tx, blocks_rx) = mpsc::channel::<Blocks>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let consumer = std::thread::spawn(move || {
        // Frees what it is sent, then reports and blocks until the next
        // batch; an empty batch: allocate more blocks of the class than
        // its stack holds, and free them.
        while let Ok(Blocks(batch)) = blocks_rx.recv() {
            if batch.is_empty() {
                for p in alloc_blocks(layout, 2 * FREE_ONLY as usize).0 {
                    // SAFETY: allocated just now with `layout`.
                    unsafe { HotAlloc.dealloc(p, layout) };
                }
            }
            for p in batch {
                // SAFETY: allocated by `alloc_blocks` with `layout`.
                unsafe { HotAlloc.dealloc(p, layout) };
            }
            done_tx.send(()).unwrap();
        }
    });
    let n = 2000 / SCALE;
    for _ in 0..3 {
        let batch = alloc_blocks(layout, n);
        // This thread is done allocating: what changes below is the consumer's.
        let before = cached(SIZE);
        blocks_tx.send(batch).unwrap();
        done_rx.recv().unwrap();
        let held = cached(SIZE).saturating_sub(before);
        assert!(held <= FREE_ONLY, "the consumer holds {held} objects");
    }
    // Once the consumer allocates the class, it caches it as any thread:
    // more than the free-only bound, from the same frees.
    let batch = alloc_blocks(layout, n);
    let before = cached(SIZE);
    blocks_tx.send(Blocks(Vec::new())).unwrap();
    done_rx.recv().unwrap();
    blocks_tx.send(batch).unwrap();
    done_rx.recv().unwrap();
    let held = cached(SIZE).saturating_sub(before);
    assert!(held > FREE_ONLY, "the consumer holds {held} objects");
    drop(blocks_tx);
    consumer.join().unwrap();
}
