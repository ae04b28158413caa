//! Regression tests for the aliasing bugs Miri found in the pool (issue 12,
//! item 1), one per bug and named after it. They pass natively either way;
//! they fail under Miri (Stacked Borrows and Tree Borrows) before the fix:
//!
//! `MIRIFLAGS="-Zmiri-disable-isolation" cargo +nightly-2026-05-20 miri test --test pool_aliasing`
//! (add `-Zmiri-tree-borrows` for Tree Borrows).

use std::sync::Barrier;
use std::thread;

use hotpool::{Pool, PoolConfig};

/// The pool's shared state was stored in each chunk through a pointer made
/// from `&Inner`, and the last chunk to go freed the state through it: a
/// deallocation through a read-only pointer.
#[test]
fn pool_state_freed_through_pointer_from_shared_reference() {
    let pool: Pool<u64> = Pool::new();
    let a = pool.alloc(7);
    let b = pool.alloc(8);
    drop(pool);
    assert_eq!((*a, *b), (7, 8));
    drop(a);
    drop(b); // the last object frees the pool's shared state
}

/// Giving objects back made a `&mut` to a chunk header, relinked the chunk
/// (a second `&mut` to the same header), then read the first one again.
#[test]
fn chunk_header_mut_used_after_relinking_the_chunk() {
    static BIG: Pool<[u8; 8192]> = Pool::new();
    let n = if cfg!(miri) { 200 } else { 2000 };
    let objs: Vec<_> = (0..n).map(|i| BIG.alloc([i as u8; 8192])).collect();
    assert!(objs.iter().enumerate().all(|(i, o)| o[8191] == i as u8));
    drop(objs);
    BIG.trim();
    let s = BIG.stats();
    assert_eq!((s.in_use, s.chunks), (0, 0));
}

/// A free on one thread read the chunk header's owner and id without the
/// lock while another thread, holding it, had a `&mut` to the whole header.
#[test]
fn lock_free_header_read_races_header_mut_under_the_lock() {
    static TINY: Pool<u64> =
        Pool::with_config(PoolConfig::new().batch(2).local_max(2).depot_max(2));
    static START: Barrier = Barrier::new(2);
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    // Plain threads, joined: a join returns once the thread's exit flush
    // (a thread-local destructor) has run, so the count below is exact.
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            thread::spawn(move || {
                START.wait();
                for i in 0..rounds {
                    let batch: Vec<_> = (0..5).map(|k| TINY.alloc(t * 1000 + i * 5 + k)).collect();
                    for (k, o) in batch.iter().enumerate() {
                        assert_eq!(**o, t * 1000 + i * 5 + k as u64);
                    }
                    drop(batch);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    TINY.trim();
    assert_eq!(TINY.stats().in_use, 0);
}
