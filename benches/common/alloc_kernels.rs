//! The allocator workloads of `benches/arena.rs`, shared with the `compare`
//! example (both include this file with `#[path]`). Every kernel calls the
//! allocator it is given through `GlobalAlloc` directly.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// xorshift64: the kernels' random numbers (deterministic per seed).
pub fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn lay(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// One thread replaces random blocks of a window of 1024 live ones `iters`
/// times; `size_of` maps a random number to the new block's size.
pub fn churn<A: GlobalAlloc>(a: &A, iters: u64, size_of: impl Fn(u64) -> usize) {
    let mut seed = 42;
    let mut live = vec![(std::ptr::null_mut::<u8>(), 0usize); 1024];
    for _ in 0..iters {
        let r = rng(&mut seed);
        let slot = &mut live[(r % 1024) as usize];
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

/// Larson: `threads` threads (at least 1) each replace random blocks
/// (16-527 B) of an array of 256, `iters` times in all per thread; every
/// 128 replacements each thread passes its array to the next thread in a
/// ring, so blocks are freed by other threads than their allocator's.
pub fn larson<A: GlobalAlloc + Sync>(a: &'static A, threads: usize, iters: u64) -> Duration {
    let threads = threads.max(1);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| mpsc::sync_channel::<Blocks>(1))
        .unzip();
    let start = Instant::now();
    let run = move |tx: mpsc::SyncSender<Blocks>, rx: mpsc::Receiver<Blocks>, seed: u64| {
        move || {
            let mut seed = seed;
            let mut mine: Blocks = (0..256)
                .map(|_| {
                    let s = 16 + rng(&mut seed) as usize % 512;
                    // SAFETY: non-zero layout.
                    (unsafe { a.alloc(lay(s)) } as usize, s)
                })
                .collect();
            for round in 0..iters.div_ceil(64) {
                for _ in 0..64 {
                    let r = rng(&mut seed);
                    let i = (r % 256) as usize;
                    let s = 16 + (r >> 20) as usize % 512;
                    // SAFETY: blocks are freed once with their layouts.
                    unsafe {
                        a.dealloc(mine[i].0 as *mut u8, lay(mine[i].1));
                        mine[i] = (a.alloc(lay(s)) as usize, s);
                    }
                }
                if round % 2 == 0 {
                    tx.send(mine).unwrap();
                    mine = rx.recv().unwrap();
                }
            }
            for (p, s) in mine {
                // SAFETY: as above.
                unsafe { a.dealloc(p as *mut u8, lay(s)) };
            }
        }
    };
    // Thread i sends to channel i and receives from channel i - 1.
    let mut rxs: Vec<Option<mpsc::Receiver<Blocks>>> = rxs.into_iter().map(Some).collect();
    let mut others = Vec::new();
    let mut mine = None;
    for (i, tx) in txs.into_iter().enumerate() {
        let rx = rxs[(i + threads - 1) % threads].take().unwrap();
        let body = run(tx, rx, 7 + 2 * i as u64);
        if i == 0 {
            mine = Some(body);
        } else {
            others.push(std::thread::spawn(body));
        }
    }
    mine.unwrap()();
    for t in others {
        t.join().unwrap();
    }
    start.elapsed()
}

/// xmalloc: this thread allocates `iters` 64-byte blocks, a consumer thread
/// frees them (batches of 256 over a channel).
pub fn xmalloc<A: GlobalAlloc + Sync>(a: &'static A, iters: u64) -> Duration {
    let (tx, rx) = mpsc::sync_channel::<Vec<usize>>(16);
    let start = Instant::now();
    let consumer = std::thread::spawn(move || {
        for batch in rx {
            for p in batch {
                // SAFETY: freed once, layout as allocated.
                unsafe { a.dealloc(p as *mut u8, lay(64)) };
            }
        }
    });
    let mut left = iters;
    while left > 0 {
        let n = left.min(256);
        left -= n;
        // SAFETY: non-zero layout.
        let batch: Vec<usize> = (0..n)
            .map(|_| unsafe { a.alloc(lay(64)) } as usize)
            .collect();
        tx.send(batch).unwrap();
    }
    drop(tx);
    consumer.join().unwrap();
    start.elapsed()
}

/// Cache-scratch: `threads` threads (this one among them) each
/// alloc/write/free a 64 B object `iters` times (false sharing would show).
pub fn scratch<A: GlobalAlloc + Sync>(a: &'static A, threads: usize, iters: u64) -> Duration {
    let start = Instant::now();
    let work = move || {
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
    };
    let others: Vec<_> = (1..threads.max(1))
        .map(|_| std::thread::spawn(work))
        .collect();
    work();
    for t in others {
        t.join().unwrap();
    }
    start.elapsed()
}

/// A string builder: one block grown by `realloc` from 16 B to 1 MiB,
/// doubling, a byte written past the old end each time.
pub fn realloc_builder<A: GlobalAlloc>(a: &A) {
    // SAFETY: every realloc passes the current layout.
    unsafe {
        let mut size = 16;
        let mut p = a.alloc(lay(size));
        while size < 1 << 20 {
            p = a.realloc(p, lay(size), size * 2);
            p.add(size).write(1);
            size *= 2;
        }
        a.dealloc(p, lay(size));
    }
}
