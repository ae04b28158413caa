//! `HotAlloc` against the system allocator, mimalloc and jemalloc, each used
//! directly through its `GlobalAlloc` impl (nothing is installed globally).
//!
//! * `churn`: random sizes 8..4096, a window of 1024 live blocks, one thread.
//! * `larson`: 2 threads, each replaces random slots of its array of blocks;
//!   every 64 rounds the arrays are swapped between threads (remote frees).
//! * `xmalloc`: a producer allocates, a consumer thread frees (channel).
//! * `scratch`: 2 threads each alloc/write/free a 64 B object in a loop
//!   (false sharing would show here).
//! * `realloc`: a string builder doubling from 16 B to 1 MiB.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

static HOT: hotpool::HotAlloc = hotpool::HotAlloc;
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rng(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn lay(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

fn churn<A: GlobalAlloc>(a: &A, iters: u64) {
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
            let size = 8 + (r >> 16) as usize % 4088;
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

fn larson<A: GlobalAlloc + Sync>(a: &'static A, iters: u64) -> Duration {
    let (tx0, rx0) = mpsc::sync_channel::<Blocks>(1);
    let (tx1, rx1) = mpsc::sync_channel::<Blocks>(1);
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
    let t = std::thread::spawn(run(tx0, rx1, 7));
    run(tx1, rx0, 9)();
    t.join().unwrap();
    start.elapsed()
}

fn xmalloc<A: GlobalAlloc + Sync>(a: &'static A, iters: u64) -> Duration {
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

fn scratch<A: GlobalAlloc + Sync>(a: &'static A, iters: u64) -> Duration {
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
    let t = std::thread::spawn(work);
    work();
    t.join().unwrap();
    start.elapsed()
}

fn realloc_builder<A: GlobalAlloc>(a: &A) {
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

macro_rules! each {
    ($c:expr, $group:literal, |$a:ident| $body:expr) => {{
        let mut g = $c.benchmark_group($group);
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        g.sample_size(10);
        {
            let $a = &HOT;
            g.bench_function("hotpool", $body);
        }
        {
            let $a = &MI;
            g.bench_function("mimalloc", $body);
        }
        {
            let $a = &JE;
            g.bench_function("jemalloc", $body);
        }
        {
            let $a: &'static System = &System;
            g.bench_function("system", $body);
        }
        g.finish();
    }};
}

fn benches(c: &mut Criterion) {
    each!(c, "arena/churn", |a| |b| b.iter(|| churn(a, 1000)));
    each!(c, "arena/larson", |a| |b| b.iter_custom(|n| larson(a, n)));
    each!(c, "arena/xmalloc", |a| |b| b.iter_custom(|n| xmalloc(a, n)));
    each!(c, "arena/scratch", |a| |b| b.iter_custom(|n| scratch(a, n)));
    each!(c, "arena/realloc", |a| |b| b.iter(|| realloc_builder(a)));
}

criterion_group!(arena, benches);
criterion_main!(arena);
