//! The allocator workloads of `benches/arena.rs`, shared with the `compare`
//! report (both include this file with `#[path]`). Every kernel calls the
//! allocator it is given through `GlobalAlloc` directly.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// xorshift64: the kernels' random numbers (deterministic per seed).
pub fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// The layout of an `size`-byte block, 8-aligned.
pub fn lay(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Runs `body(i, go, done)` on `threads` threads (`i` = 0..threads); each
/// waits on `go` when its set-up is done and on `done` when its timed part
/// is. Returns the wall time between the two (thread start, set-up and
/// tear-down are not timed).
pub fn timed_threads(threads: usize, body: impl Fn(usize, &Barrier, &Barrier) + Sync) -> Duration {
    let go = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    thread::scope(|s| {
        for i in 0..threads {
            let (body, go, done) = (&body, &go, &done);
            s.spawn(move || body(i, go, done));
        }
        go.wait();
        let t0 = Instant::now();
        done.wait();
        t0.elapsed()
    })
}

/// One thread replaces random blocks of a window of `window` live ones
/// `iters` times; `size_of` maps a random number to the new block's size.
pub fn churn<A: GlobalAlloc>(a: &A, iters: u64, window: usize, size_of: impl Fn(u64) -> usize) {
    let mut seed = 42;
    let mut live = vec![(std::ptr::null_mut::<u8>(), 0usize); window];
    for _ in 0..iters {
        let r = rng(&mut seed);
        let slot = &mut live[(r % window as u64) as usize];
        // SAFETY: each block is freed once with its layout.
        unsafe {
            if !slot.0.is_null() {
                a.dealloc(slot.0, lay(slot.1));
            }
            let size = size_of(r);
            let p = a.alloc(lay(size));
            p.write(1);
            *slot = (p, size);
        }
    }
    for (p, s) in live {
        if !p.is_null() {
            // SAFETY: as above.
            unsafe { a.dealloc(p, lay(s)) };
        }
    }
}

type Blocks = Vec<(usize, usize)>;

/// Replacements between two hand-offs of a larson thread's array.
pub const LARSON_SWAP: u64 = 2048;

/// Larson: `threads` threads (at least 1) each replace random blocks
/// (16-527 B, first byte written) of an array of `blocks`, `iters` times
/// in all per thread; every [`LARSON_SWAP`] replacements each thread
/// passes its array to the next thread in a ring (as larson hands a dying
/// thread's blocks to a new one), so blocks are freed by other threads
/// than their allocator's: with 256 blocks, about one free in eight is
/// remote. Timed as [`timed_threads`].
///
/// The hand-off is a channel rendezvous, which costs several microseconds
/// of scheduling; at one hand-off per 128 replacements (the first
/// version) it was three quarters of the measured time and the allocators'
/// figures mostly measured the scheduler.
pub fn larson<A: GlobalAlloc + Sync>(a: &A, threads: usize, iters: u64, blocks: usize) -> Duration {
    let threads = threads.max(1);
    // Thread i sends on channel i and receives on channel i - 1.
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::sync_channel::<Blocks>(1))
        .unzip();
    let mut rxs: Vec<Option<_>> = rxs.into_iter().map(Some).collect();
    let ends: Vec<_> = txs
        .into_iter()
        .enumerate()
        .map(|(i, tx)| {
            let rx = rxs[(i + threads - 1) % threads].take().unwrap();
            std::sync::Mutex::new(Some((tx, rx)))
        })
        .collect();
    timed_threads(threads, |i, go, done| {
        let (tx, rx) = ends[i].lock().unwrap().take().unwrap();
        let mut seed = 7 + 2 * i as u64;
        let mut mine: Blocks = (0..blocks)
            .map(|_| {
                let s = 16 + rng(&mut seed) as usize % 512;
                // SAFETY: non-zero layout; the first byte is in bounds.
                let p = unsafe {
                    let p = a.alloc(lay(s));
                    p.write(1);
                    p
                };
                (p as usize, s)
            })
            .collect();
        go.wait();
        for round in 0..iters.div_ceil(64) {
            for _ in 0..64 {
                let r = rng(&mut seed);
                let i = (r % blocks as u64) as usize;
                let s = 16 + (r >> 20) as usize % 512;
                // SAFETY: blocks are freed once with their layouts.
                unsafe {
                    a.dealloc(mine[i].0 as *mut u8, lay(mine[i].1));
                    let p = a.alloc(lay(s));
                    p.write(1);
                    mine[i] = (p as usize, s);
                }
            }
            if round % (LARSON_SWAP / 64) == 0 {
                tx.send(mine).unwrap();
                mine = rx.recv().unwrap();
            }
        }
        done.wait();
        for (p, s) in mine {
            // SAFETY: as above.
            unsafe { a.dealloc(p as *mut u8, lay(s)) };
        }
    })
}

/// xmalloc: this thread allocates `iters` 64-byte blocks, a consumer thread
/// frees them (batches of 256 over a channel); timed from when both are
/// ready until the consumer freed the last block.
pub fn xmalloc<A: GlobalAlloc + Sync>(a: &A, iters: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<Vec<usize>>(16);
    let ready = Barrier::new(2);
    thread::scope(|s| {
        let consumer = s.spawn(|| {
            ready.wait();
            for batch in rx {
                for p in batch {
                    // SAFETY: freed once, layout as allocated.
                    unsafe { a.dealloc(p as *mut u8, lay(64)) };
                }
            }
        });
        ready.wait();
        let start = Instant::now();
        let mut left = iters;
        while left > 0 {
            let n = left.min(256);
            left -= n;
            // SAFETY: non-zero layout.
            let batch: Vec<usize> = (0..n)
                .map(|_| unsafe {
                    let p = a.alloc(lay(64));
                    p.write(1);
                    p as usize
                })
                .collect();
            tx.send(batch).unwrap();
        }
        drop(tx);
        consumer.join().unwrap();
        start.elapsed()
    })
}

/// Cache-scratch: `threads` threads each alloc/write/free a 64 B object
/// `iters` times (false sharing would show); timed as [`timed_threads`].
pub fn scratch<A: GlobalAlloc + Sync>(a: &A, threads: usize, iters: u64) -> Duration {
    timed_threads(threads.max(1), |_, go, done| {
        go.wait();
        for i in 0..iters {
            // SAFETY: freed once with its layout.
            unsafe {
                let p = a.alloc(lay(64));
                for k in 0..8 {
                    p.add(k * 8).write(i as u8);
                }
                black_box(p);
                a.dealloc(p, lay(64));
            }
        }
        done.wait();
    })
}

/// A string builder: one block grown by `realloc` from 16 B to `max`,
/// doubling. With `fill`, every byte of the string is written (as a real
/// builder does); else one byte per step, so that it times the allocator
/// rather than `memset`.
pub fn realloc_builder<A: GlobalAlloc>(a: &A, max: usize, fill: bool) {
    // SAFETY: every realloc passes the current layout.
    unsafe {
        let mut size = 16;
        let mut p = a.alloc(lay(size));
        while size < max {
            p = a.realloc(p, lay(size), size * 2);
            if fill {
                p.add(size).write_bytes(1, size);
            } else {
                p.add(size).write(1);
            }
            // Otherwise LLVM may drop the stores into memory that is only
            // freed, or the whole block (it knows `malloc`'s semantics).
            black_box(p);
            size *= 2;
        }
        a.dealloc(p, lay(size));
    }
}
