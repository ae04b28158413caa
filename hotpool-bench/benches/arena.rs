//! `HotAlloc` against the system allocator, mimalloc and jemalloc, each used
//! directly through its `GlobalAlloc` impl (nothing is installed globally).
//!
//! * `churn`: random sizes 8..4096, a window of 1024 live blocks, one thread.
//! * `larson`: 2 threads, each replaces random slots of its array of blocks;
//!   every 2048 replacements the arrays are swapped between threads (remote
//!   frees, about one in eight).
//! * `xmalloc`: a producer allocates, a consumer thread frees (channel).
//! * `scratch`: 2 threads each alloc/write/free a 64 B object in a loop
//!   (false sharing would show here).
//! * `realloc`: a string builder doubling from 16 B to 1 MiB.
//! * `large`: mimalloc-bench's malloc-large shape: 20 slots, each step
//!   replaces a slot's block by a new one of 1-32 MiB and writes a byte
//!   per page of it (time per replacement; the slots live across
//!   criterion's calls, so it times the steady state).
//! * `realloc-large`: a buffer doubling by `realloc` from 16 B to 32 MiB,
//!   every new byte written.
//!
//! Before criterion runs, the `memory` part (skipped when a filter that does
//! not contain "memory" is given, and in `--test`/`--list` mode) runs each
//! workload with a larger working set once per allocator, each in a child
//! process of its own (this binary re-run), and prints the peak resident
//! memory each child reached above its start (`VmHWM - VmRSS`), then where
//! hotpool's bytes were when its blocks' requested bytes peaked (from
//! `hotpool::arena::stats()`, taken by a counting wrapper each time the
//! live requested bytes grow by 1%):
//!
//! ```text
//! cargo bench -p hotpool-bench --bench arena -- memory     # the peak-RSS tables only
//! ```

#[path = "common/alloc_kernels.rs"]
mod kernels;

use std::alloc::{GlobalAlloc, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Criterion;
use kernels::{churn, larson, lay, realloc_builder, scratch, xmalloc};

/// The churn benchmark's block sizes: 8..4096 B.
fn churn_size(r: u64) -> usize {
    8 + (r >> 16) as usize % 4088
}

static HOT: hotpool::HotAlloc = hotpool::HotAlloc;
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod common;

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

/// Slots of the `large` workload.
const LARGE_SLOTS: usize = 20;

/// The `large` workload's state: `LARGE_SLOTS` blocks of 1-32 MiB, kept
/// across criterion's calls so that every timed replacement sees the
/// steady state (a fresh set per call made the first few replacements,
/// right after 330 MiB were allocated, most of what was timed).
struct Large<'a, A: GlobalAlloc> {
    a: &'a A,
    seed: u64,
    slots: Vec<(*mut u8, usize)>,
}

impl<'a, A: GlobalAlloc> Large<'a, A> {
    /// Fills the slots (not timed).
    fn new(a: &'a A) -> Self {
        let mut l = Large {
            a,
            seed: 0x5eed,
            slots: Vec::with_capacity(LARGE_SLOTS),
        };
        for _ in 0..LARGE_SLOTS {
            let b = l.block();
            l.slots.push(b);
        }
        l
    }

    /// A new block of 1-32 MiB, written one byte per page.
    fn block(&mut self) -> (*mut u8, usize) {
        const MIB: usize = 1 << 20;
        let size = MIB + (kernels::rng(&mut self.seed) >> 20) as usize % (31 * MIB);
        // SAFETY: non-zero size; the block is written one byte per page
        // within its bounds.
        unsafe {
            let p = self.a.alloc(kernels::lay(size));
            assert!(!p.is_null());
            for off in (0..size).step_by(4096) {
                p.add(off).write(off as u8);
            }
            (black_box(p), size)
        }
    }

    /// `n` replacements of a slot's block by a new one; their time.
    fn run(&mut self, n: u64) -> Duration {
        let t0 = Instant::now();
        for i in 0..n {
            let k = (i as usize * 7 + 3) % LARGE_SLOTS;
            let (p, size) = self.slots[k];
            // SAFETY: a live block of `size` bytes, freed once.
            unsafe { self.a.dealloc(p, kernels::lay(size)) };
            self.slots[k] = self.block();
        }
        t0.elapsed()
    }
}

impl<A: GlobalAlloc> Drop for Large<'_, A> {
    fn drop(&mut self) {
        for &(p, size) in &self.slots {
            // SAFETY: a live block of `size` bytes, freed once.
            unsafe { self.a.dealloc(p, kernels::lay(size)) };
        }
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
    each!(c, "arena/churn", |a| |b| b
        .iter(|| churn(a, 1000, 1024, churn_size)));
    each!(c, "arena/larson", |a| |b| b
        .iter_custom(|n| larson(a, 2, n, 256)));
    each!(c, "arena/xmalloc", |a| |b| b.iter_custom(|n| xmalloc(a, n)));
    each!(c, "arena/scratch", |a| |b| b
        .iter_custom(|n| scratch(a, 2, n)));
    each!(c, "arena/realloc", |a| |b| b.iter(|| realloc_builder(
        a,
        1 << 20,
        false
    )));
    each!(c, "arena/large", |a| {
        // Filled on first use: not when a filter skips the row.
        let mut large = None;
        move |b| {
            let large = large.get_or_insert_with(|| Large::new(a));
            b.iter_custom(|n| large.run(n))
        }
    });
    each!(c, "arena/realloc-large", |a| |b| b
        .iter(|| realloc_builder(a, 32 << 20, true)));
}

mod memory {
    use super::*;

    /// Set in a child: `workload/allocator` to run.
    const CHILD: &str = "HOTPOOL_ARENA_MEMORY_CHILD";
    const WORKLOADS: [&str; 5] = ["churn", "larson", "xmalloc", "realloc", "large"];
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
    /// larson, 16 MiB per round for xmalloc, a 64 MiB string for realloc,
    /// 200 replacements for large (about 330 MiB live).
    fn work<A: GlobalAlloc + Sync>(a: &'static A, workload: &str) {
        match workload {
            "churn" => churn(a, 2_000_000, 65536, churn_size),
            "larson" => drop(larson(a, 2, 2_000_000, 16384)),
            "xmalloc" => xmalloc_rounds(a, 16, 1024),
            "realloc" => realloc_builder(a, 64 << 20, true),
            "large" => drop(Large::new(a).run(200)),
            _ => panic!("unknown workload {workload}"),
        }
    }

    /// `HotAlloc` with the bytes its callers asked for counted, and the
    /// arena's statistics taken (after the call) each time they reach 1%
    /// (and 64 KiB) above the last time: the last snapshot is where the
    /// bytes were when the requested bytes peaked.
    struct Counted {
        live: AtomicUsize,
        next: AtomicUsize,
        peak: Mutex<Option<(usize, hotpool::arena::ArenaStats)>>,
    }

    static COUNTED: Counted = Counted {
        live: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        peak: Mutex::new(None),
    };

    impl Counted {
        fn grew(&self, size: usize) {
            let live = self.live.fetch_add(size, Relaxed) + size;
            if live >= self.next.load(Relaxed) {
                if let Ok(mut peak) = self.peak.try_lock() {
                    self.next.store(live + live / 100 + (64 << 10), Relaxed);
                    *peak = Some((live, hotpool::arena::stats()));
                }
            }
        }
    }

    // SAFETY: every call goes to `HotAlloc` unchanged; only counters are
    // added.
    unsafe impl GlobalAlloc for Counted {
        unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
            // SAFETY: forwarded contract.
            let p = unsafe { HOT.alloc(l) };
            self.grew(l.size());
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
            self.live.fetch_sub(l.size(), Relaxed);
            // SAFETY: forwarded contract.
            unsafe { HOT.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
            // SAFETY: forwarded contract.
            let q = unsafe { HOT.realloc(p, l, new) };
            self.live.fetch_sub(l.size(), Relaxed);
            self.grew(new);
            q
        }
    }

    /// In a child: runs one cell and prints its peak above the start (for
    /// hotpool, then the breakdown at its requested bytes' peak, KiB:
    /// requested, allocated, active, thread caches, depots, dirty,
    /// metadata).
    pub fn child() -> bool {
        let Ok(cell) = std::env::var(CHILD) else {
            return false;
        };
        let (workload, allocator) = cell.split_once('/').unwrap();
        let start = status_kib("VmRSS:");
        match allocator {
            "hotpool" => work(&COUNTED, workload),
            "mimalloc" => work(&MI, workload),
            "jemalloc" => work(&JE, workload),
            "system" => work(&System, workload),
            _ => panic!("unknown allocator {allocator}"),
        }
        print!("{}", status_kib("VmHWM:").saturating_sub(start));
        if let Some((live, s)) = COUNTED.peak.lock().unwrap().take() {
            for v in [
                live,
                s.allocated,
                s.active,
                s.tcache_bytes,
                s.depot_bytes,
                s.dirty,
                s.metadata,
            ] {
                print!(" {}", v >> 10);
            }
        }
        println!();
        true
    }

    /// Runs every cell in a child and prints the table with hotpool's
    /// ratio to jemalloc and to the lower of mimalloc and the system
    /// allocator (issue 14's target: at most 1.1), then hotpool's
    /// breakdowns.
    pub fn run() {
        println!("memory: peak resident KiB above the process's start, one child per cell");
        println!(
            "{:<8} {:>10} {:>10} {:>10} {:>10}   hotpool/jemalloc   hotpool/min(mimalloc, system)",
            "", "hotpool", "mimalloc", "jemalloc", "system"
        );
        let exe = std::env::current_exe().unwrap();
        let mut breakdowns = Vec::new();
        for w in WORKLOADS {
            let peaks: Vec<u64> = ALLOCATORS
                .iter()
                .map(|a| {
                    let out = std::process::Command::new(&exe)
                        .env(CHILD, format!("{w}/{a}"))
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "child {w}/{a} failed");
                    let fields: Vec<u64> = String::from_utf8(out.stdout)
                        .unwrap()
                        .split_whitespace()
                        .map(|f| f.parse().unwrap())
                        .collect();
                    if fields.len() == 8 {
                        breakdowns.push((w, fields.clone()));
                    }
                    fields[0]
                })
                .collect();
            println!(
                "{:<8} {:>10} {:>10} {:>10} {:>10}   {:>16.2}   {:>29.2}",
                w,
                peaks[0],
                peaks[1],
                peaks[2],
                peaks[3],
                peaks[0] as f64 / peaks[2].max(1) as f64,
                peaks[0] as f64 / peaks[1].min(peaks[3]).max(1) as f64
            );
        }
        println!();
        println!(
            "memory: hotpool when its blocks' requested bytes peaked, KiB (rounding: allocated - requested; \
             slab free: active - allocated - caches - depots)"
        );
        println!(
            "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "",
            "peak RSS",
            "requested",
            "rounding",
            "slab free",
            "caches",
            "depots",
            "dirty",
            "metadata"
        );
        for (w, f) in breakdowns {
            let (rss, req, alloc, active, caches, depots, dirty, meta) =
                (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
            println!(
                "{:<8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                w,
                rss,
                req,
                alloc as i64 - req as i64,
                active as i64 - (alloc + caches + depots) as i64,
                caches,
                depots,
                dirty,
                meta
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
