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
//!
//! Before criterion runs, the `memory` part (skipped when a filter that does
//! not contain "memory" is given, and in `--test`/`--list` mode) runs each
//! workload with a larger working set once per allocator, each in a child
//! process of its own (this binary re-run), and prints the peak resident
//! memory each child reached above its start (`VmHWM - VmRSS`):
//!
//! ```text
//! cargo bench --bench arena -- memory     # the peak-RSS table only
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::Criterion;

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

mod common;

fn churn<A: GlobalAlloc>(a: &A, iters: u64, window: usize) {
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

fn larson<A: GlobalAlloc + Sync>(a: &'static A, iters: u64, blocks: usize) -> Duration {
    let (tx0, rx0) = mpsc::sync_channel::<Blocks>(1);
    let (tx1, rx1) = mpsc::sync_channel::<Blocks>(1);
    let start = Instant::now();
    let run = move |tx: mpsc::SyncSender<Blocks>, rx: mpsc::Receiver<Blocks>, seed: u64| {
        move || {
            let mut seed = seed;
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
}

/// xmalloc for the memory table, with a peak that does not depend on
/// which thread is faster: each round the producer allocates `batches`
/// batches of 256 objects, hands them all to the consumer, and waits until
/// it has freed them. What a round adds to the peak is memory that frees on
/// the other thread did not make reusable.
fn xmalloc_rounds<A: GlobalAlloc + Sync>(a: &'static A, rounds: usize, batches: usize) {
    let (tx, rx) = mpsc::channel::<Vec<Vec<usize>>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let consumer = std::thread::spawn(move || {
        for round in rx {
            for p in round.into_iter().flatten() {
                // SAFETY: freed once, layout as allocated.
                unsafe { a.dealloc(p as *mut u8, lay(64)) };
            }
            done_tx.send(()).unwrap();
        }
    });
    for _ in 0..rounds {
        let round: Vec<Vec<usize>> = (0..batches)
            .map(|_| {
                (0..256)
                    // SAFETY: non-zero layout; the first byte is in bounds.
                    .map(|_| unsafe {
                        let p = a.alloc(lay(64));
                        p.write(1);
                        p as usize
                    })
                    .collect()
            })
            .collect();
        tx.send(round).unwrap();
        done_rx.recv().unwrap();
    }
    drop(tx);
    consumer.join().unwrap();
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

/// With `fill`, every byte of the string is written (as a real builder
/// does); the timed benchmark writes one byte per step, so that it times
/// the allocator rather than `memset`.
fn realloc_builder<A: GlobalAlloc>(a: &A, max: usize, fill: bool) {
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
            // freed (it knows `malloc`'s semantics).
            black_box(p);
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
    each!(c, "arena/churn", |a| |b| b.iter(|| churn(a, 1000, 1024)));
    each!(c, "arena/larson", |a| |b| b
        .iter_custom(|n| larson(a, n, 256)));
    each!(c, "arena/xmalloc", |a| |b| b.iter_custom(|n| xmalloc(a, n)));
    each!(c, "arena/scratch", |a| |b| b.iter_custom(|n| scratch(a, n)));
    each!(c, "arena/realloc", |a| |b| b.iter(|| realloc_builder(
        a,
        1 << 20,
        false
    )));
}

mod memory {
    use super::*;

    /// Set in a child: `workload/allocator` to run.
    const CHILD: &str = "HOTPOOL_ARENA_MEMORY_CHILD";
    const WORKLOADS: [&str; 4] = ["churn", "larson", "xmalloc", "realloc"];
    const ALLOCATORS: [&str; 4] = ["hotpool", "mimalloc", "jemalloc", "system"];

    /// A field of /proc/self/status, in KiB.
    fn status_kib(field: &str) -> u64 {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
    }

    /// The larger working sets: about 128 MiB live for churn, 9 MiB for
    /// larson, 16 MiB per round for xmalloc, a 64 MiB string for realloc.
    fn work<A: GlobalAlloc + Sync>(a: &'static A, workload: &str) {
        match workload {
            "churn" => churn(a, 2_000_000, 65536),
            "larson" => drop(larson(a, 2_000_000, 16384)),
            "xmalloc" => xmalloc_rounds(a, 16, 1024),
            "realloc" => realloc_builder(a, 64 << 20, true),
            _ => panic!("unknown workload {workload}"),
        }
    }

    /// In a child: runs one cell and prints its peak above the start.
    pub fn child() -> bool {
        let Ok(cell) = std::env::var(CHILD) else {
            return false;
        };
        let (workload, allocator) = cell.split_once('/').unwrap();
        let start = status_kib("VmRSS:");
        match allocator {
            "hotpool" => work(&HOT, workload),
            "mimalloc" => work(&MI, workload),
            "jemalloc" => work(&JE, workload),
            "system" => work(&System, workload),
            _ => panic!("unknown allocator {allocator}"),
        }
        println!("{}", status_kib("VmHWM:").saturating_sub(start));
        true
    }

    /// Runs every cell in a child and prints the table with each
    /// allocator's ratio to jemalloc (the target: at most 1.1).
    pub fn run() {
        println!("memory: peak resident KiB above the process's start, one child per cell");
        println!(
            "{:<8} {:>10} {:>10} {:>10} {:>10}   hotpool/jemalloc",
            "", "hotpool", "mimalloc", "jemalloc", "system"
        );
        let exe = std::env::current_exe().unwrap();
        for w in WORKLOADS {
            let peaks: Vec<u64> = ALLOCATORS
                .iter()
                .map(|a| {
                    let out = std::process::Command::new(&exe)
                        .env(CHILD, format!("{w}/{a}"))
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "child {w}/{a} failed");
                    String::from_utf8(out.stdout)
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap()
                })
                .collect();
            println!(
                "{:<8} {:>10} {:>10} {:>10} {:>10}   {:.2}",
                w,
                peaks[0],
                peaks[1],
                peaks[2],
                peaks[3],
                peaks[0] as f64 / peaks[2].max(1) as f64
            );
        }
        println!();
    }
}

fn main() {
    if memory::child() {
        return;
    }
    if common::memory_wanted() {
        memory::run();
    }
    let mut c = common::criterion().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
