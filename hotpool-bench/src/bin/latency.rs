//! Tail latency of single allocations and frees (issue 16, item 6):
//! `Pool` and `HotAlloc` against the system allocator (glibc), jemalloc
//! and mimalloc, with hotpool's background purger on (its default).
//!
//! Each contestant is called directly, through a `GlobalAlloc` value
//! (`System`, `tikv_jemallocator::Jemalloc`, `mimalloc::MiMalloc`,
//! `HotAlloc`) or through one `Pool<[u8; N]>` per size, all in this one
//! process. The program's own allocations (histograms, batch vectors, the
//! channels) go to the system allocator, outside the timed calls.
//!
//! Workloads, each for the size set `64` (64 B only) and `mixed` (16 B to
//! 4 KiB):
//!
//! * `local`: one thread allocates a batch of 1 to [`MAX_BATCH`] blocks
//!   (the length drawn at random, so that batches sometimes overflow or
//!   drain the thread caches and reach their slow paths), writes one byte
//!   of each, then frees them in a random order.
//! * `remote`: thread A allocates such batches and sends each (a vector of
//!   addresses) to thread B, which frees every block: every free is a free
//!   of another thread's block.
//!
//! Every call is timed on its own with the time-stamp counter: `lfence;
//! rdtsc; lfence` on both sides, so that the call neither starts before
//! the first read nor ends after the second (without the fences the CPU
//! overlaps a 10 ns call with the reads). `Instant::now` would cost about
//! 20 ns a read, as much as the calls measured, and its resolution is
//! coarser; batches of calls would hide the single slow call this is
//! about. An empty timed region costs 60 to 80 ticks here (30 to 40 ns);
//! that cost, measured the same way (the median of 100 000), is
//! subtracted from every figure, so figures near the median are rough
//! and the tails are what this measures. The counter is calibrated
//! against `Instant` (it runs at a constant rate on the CPUs this runs
//! on: `constant_tsc`). On other targets `Instant` is the clock.
//! Samples go into a log-linear histogram (exact below 1024 ticks, then
//! 64 buckets per power of two: at most 1.6 % error), read by nearest rank.
//!
//! Contestants are interleaved: each round runs every workload, and in it
//! every contestant in an order rotated by the round; the figures are the
//! medians over the rounds of each round's percentiles. The last line
//! gives, per workload and operation, hotpool's p99.9 over the best
//! peer's (target: at most 1.2).
//!
//! ```text
//! cargo run --release -p hotpool-bench --bin latency -- [--rounds 5] [--ops 500000]
//! ```

#![warn(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::mem::MaybeUninit;
use std::sync::mpsc;
use std::time::Instant;

use hotpool::{HotAlloc, Pool, Pooled};

/// The largest batch: allocated before any of it is freed.
const MAX_BATCH: usize = 2048;

/// The size sets, by name.
const SETS: [(&str, &[usize]); 2] = [
    ("64", &[64]),
    ("mixed", &[16, 32, 64, 128, 256, 512, 1024, 4096]),
];

/// Log-linear histogram of tick counts.
mod hist {
    /// Values below this are counted exactly.
    const EXACT: u64 = 1024;
    /// log2 of [`EXACT`].
    const EXACT_BITS: u32 = 10;
    /// log2 of the buckets per power of two above [`EXACT`].
    const SUB_BITS: u32 = 6;
    /// Buckets: exact ones, then 64 per power of two up to 2^64.
    const LEN: usize = EXACT as usize + ((64 - EXACT_BITS as usize) << SUB_BITS);

    /// Counts of values by bucket, and the exact maximum.
    pub struct Hist {
        counts: Vec<u64>,
        n: u64,
        max: u64,
    }

    /// The bucket of `v`.
    fn index(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        let sub = (v >> (e - SUB_BITS)) as usize - (1 << SUB_BITS);
        EXACT as usize + (((e - EXACT_BITS) as usize) << SUB_BITS) + sub
    }

    /// The least value of bucket `i`.
    fn low(i: usize) -> u64 {
        if i < EXACT as usize {
            return i as u64;
        }
        let j = i - EXACT as usize;
        let e = (j >> SUB_BITS) as u32 + EXACT_BITS;
        let sub = (j & ((1 << SUB_BITS) - 1)) as u64 + (1 << SUB_BITS);
        sub << (e - SUB_BITS)
    }

    impl Hist {
        /// An empty histogram.
        pub fn new() -> Hist {
            Hist {
                counts: vec![0; LEN],
                n: 0,
                max: 0,
            }
        }

        /// Counts one value.
        #[inline]
        pub fn record(&mut self, v: u64) {
            self.counts[index(v)] += 1;
            self.n += 1;
            self.max = self.max.max(v);
        }

        /// The values counted.
        pub fn len(&self) -> u64 {
            self.n
        }

        /// The value of nearest rank `ceil(q * n)` (the least value of
        /// its bucket; the maximum for `q = 1`), or 0 if empty.
        pub fn quantile(&self, q: f64) -> u64 {
            if self.n == 0 {
                return 0;
            }
            let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
            if rank == self.n {
                return self.max;
            }
            let mut seen = 0;
            for (i, &c) in self.counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return low(i);
                }
            }
            self.max
        }

        /// p50, p99, p99.9 and max.
        pub fn summary(&self) -> [u64; 4] {
            [
                self.quantile(0.5),
                self.quantile(0.99),
                self.quantile(0.999),
                self.max,
            ]
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn exact_below_1024_by_nearest_rank() {
            let mut h = Hist::new();
            for v in 1..=1000 {
                h.record(v);
            }
            assert_eq!(h.len(), 1000);
            assert_eq!(h.summary(), [500, 990, 999, 1000]);
        }

        #[test]
        fn a_tail_of_rare_large_values() {
            let mut h = Hist::new();
            for _ in 0..9990 {
                h.record(20);
            }
            for _ in 0..10 {
                h.record(100_000);
            }
            // 10 of 10000 are large: p99.9 (rank 9990) is still 20, the
            // next rank is large.
            assert_eq!(h.quantile(0.999), 20);
            let above = h.quantile(0.9991);
            assert!(above <= 100_000 && above * 64 >= 100_000 * 63, "{above}");
            assert_eq!(h.summary()[3], 100_000);
        }

        #[test]
        fn buckets_tile_the_range_within_one_in_64() {
            for v in [
                1023u64,
                1024,
                1025,
                4095,
                1 << 20,
                (1 << 20) + 12345,
                u64::MAX,
            ] {
                let i = index(v);
                assert!(low(i) <= v, "{v}");
                assert!(low(i).saturating_add(low(i) >> 6) >= v, "{v}");
                if i + 1 < LEN {
                    assert!(low(i + 1) > v, "{v}");
                }
            }
            for i in 1..LEN {
                assert!(low(i) > low(i - 1), "{i}");
                assert_eq!(index(low(i)), i);
            }
        }

        #[test]
        fn empty_is_zero() {
            assert_eq!(Hist::new().summary(), [0; 4]);
        }
    }
}

use hist::Hist;

/// The clock: time-stamp counter ticks (x86-64) or nanoseconds.
mod clock {
    use std::time::{Duration, Instant};

    /// Reads the clock, ordered after every earlier instruction and before
    /// every later one.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn now() -> u64 {
        use core::arch::x86_64::{_mm_lfence, _rdtsc};
        // SAFETY: lfence (SSE2) and rdtsc are part of every x86-64 CPU.
        unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        }
    }

    /// Reads the clock (nanoseconds since its first read).
    #[cfg(not(target_arch = "x86_64"))]
    #[inline(always)]
    pub fn now() -> u64 {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    /// Ticks per nanosecond, measured against `Instant` over 100 ms.
    pub fn ticks_per_ns() -> f64 {
        let (t0, c0) = (Instant::now(), now());
        while t0.elapsed() < Duration::from_millis(100) {}
        let (dt, dc) = (t0.elapsed(), now() - c0);
        dc as f64 / dt.as_nanos() as f64
    }

    /// Ticks of an empty timed region: the median of 100 000.
    pub fn overhead() -> u64 {
        let mut h = super::Hist::new();
        for _ in 0..100_000 {
            let t = now();
            h.record(now() - t);
        }
        h.quantile(0.5)
    }
}

/// An allocator under test, serving the sizes of [`SETS`].
trait Contestant: Sync {
    /// Allocates `size` bytes (one of [`SETS`]' sizes), aligned to 8 or
    /// to `size` if less; null on failure.
    fn alloc(&self, size: usize) -> *mut u8;

    /// Frees a block from [`Contestant::alloc`] of the same `size`.
    ///
    /// # Safety
    ///
    /// `p` came from `self.alloc(size)` and is freed once.
    unsafe fn free(&self, p: *mut u8, size: usize);
}

/// A general allocator.
struct General<A>(A);

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, size.min(8)).expect("a valid size")
}

impl<A: GlobalAlloc + Sync> Contestant for General<A> {
    #[inline(always)]
    fn alloc(&self, size: usize) -> *mut u8 {
        // SAFETY: every size of SETS is non-zero.
        unsafe { self.0.alloc(layout(size)) }
    }

    #[inline(always)]
    unsafe fn free(&self, p: *mut u8, size: usize) {
        // SAFETY: per the contract, `p` came from this allocator with
        // this layout.
        unsafe { self.0.dealloc(p, layout(size)) }
    }
}

/// One `Pool<[u8; N]>` per size of [`SETS`].
struct Pools;

macro_rules! pools {
    ($($n:literal => $pool:ident),*) => {
        $(static $pool: Pool<[u8; $n]> = Pool::new();)*

        impl Contestant for Pools {
            #[inline(always)]
            fn alloc(&self, size: usize) -> *mut u8 {
                match size {
                    $($n => Pooled::into_raw($pool.alloc_uninit()).cast(),)*
                    _ => unreachable!("size {size} is in no set"),
                }
            }

            #[inline(always)]
            unsafe fn free(&self, p: *mut u8, size: usize) {
                match size {
                    // SAFETY: per the contract, `p` came from `alloc(size)`,
                    // which is `into_raw` of this pool's `alloc_uninit`.
                    $($n => drop(unsafe {
                        Pooled::<MaybeUninit<[u8; $n]>>::from_raw(p.cast())
                    }),)*
                    _ => unreachable!("size {size} is in no set"),
                }
            }
        }
    };
}

pools!(16 => P16, 32 => P32, 64 => P64, 128 => P128, 256 => P256, 512 => P512, 1024 => P1K, 4096 => P4K);

static SYSTEM: General<System> = General(System);
static JEMALLOC: General<tikv_jemallocator::Jemalloc> = General(tikv_jemallocator::Jemalloc);
static MIMALLOC: General<mimalloc::MiMalloc> = General(mimalloc::MiMalloc);
static HOTALLOC: General<HotAlloc> = General(HotAlloc);

/// Contestants in report order; the first three are the peers.
const NAMES: [&str; 5] = ["system", "jemalloc", "mimalloc", "HotAlloc", "Pool"];
const PEERS: usize = 3;

/// Small deterministic generator (PCG-style LCG, high bits).
struct Rng(u64);

impl Rng {
    #[inline(always)]
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Allocation and free histograms of one run.
struct Run {
    alloc: Hist,
    free: Hist,
}

/// Allocates one batch, timing each call, into `out` (address, size).
#[inline(always)]
fn alloc_batch<C: Contestant>(
    c: &C,
    sizes: &[usize],
    rng: &mut Rng,
    h: &mut Hist,
    out: &mut Vec<(usize, usize)>,
) {
    let n = 1 + rng.below(MAX_BATCH);
    for _ in 0..n {
        let size = sizes[rng.below(sizes.len())];
        let t = clock::now();
        let p = c.alloc(size);
        h.record(clock::now() - t);
        assert!(!p.is_null(), "out of memory");
        // SAFETY: `p` is a fresh block of `size` > 0 bytes.
        unsafe { p.write_volatile(1) };
        out.push((p as usize, size));
    }
}

/// The `local` workload: about `ops` allocations and as many frees.
fn local<C: Contestant>(c: &C, sizes: &[usize], ops: usize, seed: u64) -> Run {
    let mut run = Run {
        alloc: Hist::new(),
        free: Hist::new(),
    };
    let mut rng = Rng(seed);
    let mut live = Vec::with_capacity(MAX_BATCH);
    while run.alloc.len() < ops as u64 {
        alloc_batch(c, sizes, &mut rng, &mut run.alloc, &mut live);
        while !live.is_empty() {
            let (p, size) = live.swap_remove(rng.below(live.len()));
            let t = clock::now();
            // SAFETY: `p` came from `c.alloc(size)` and left `live`.
            unsafe { c.free(p as *mut u8, size) };
            run.free.record(clock::now() - t);
        }
    }
    run
}

/// The `remote` workload: this thread allocates, a second thread frees.
fn remote<C: Contestant>(c: &C, sizes: &[usize], ops: usize, seed: u64) -> Run {
    let (to_b, from_a) = mpsc::sync_channel::<Vec<(usize, usize)>>(4);
    let (to_a, from_b) = mpsc::channel::<Vec<(usize, usize)>>();
    std::thread::scope(|s| {
        let b = s.spawn(move || {
            let mut h = Hist::new();
            for mut batch in from_a {
                for (p, size) in batch.drain(..) {
                    let t = clock::now();
                    // SAFETY: `p` came from `c.alloc(size)` on thread A,
                    // which sent it here and kept no copy.
                    unsafe { c.free(p as *mut u8, size) };
                    h.record(clock::now() - t);
                }
                // A may have stopped listening; the vector is then dropped.
                let _ = to_a.send(batch);
            }
            h
        });
        let mut alloc = Hist::new();
        let mut rng = Rng(seed);
        while alloc.len() < ops as u64 {
            let mut batch = from_b
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(MAX_BATCH));
            alloc_batch(c, sizes, &mut rng, &mut alloc, &mut batch);
            to_b.send(batch).expect("thread B is alive");
        }
        drop(to_b);
        Run {
            alloc,
            free: b.join().expect("thread B does not panic"),
        }
    })
}

/// Runs contestant `k` on workload `remote?` with `sizes`.
fn run(k: usize, remote_free: bool, sizes: &[usize], ops: usize, seed: u64) -> Run {
    fn go<C: Contestant>(c: &C, r: bool, sizes: &[usize], ops: usize, seed: u64) -> Run {
        if r {
            remote(c, sizes, ops, seed)
        } else {
            local(c, sizes, ops, seed)
        }
    }
    match k {
        0 => go(&SYSTEM, remote_free, sizes, ops, seed),
        1 => go(&JEMALLOC, remote_free, sizes, ops, seed),
        2 => go(&MIMALLOC, remote_free, sizes, ops, seed),
        3 => go(&HOTALLOC, remote_free, sizes, ops, seed),
        _ => go(&Pools, remote_free, sizes, ops, seed),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut rounds = 5;
    let mut ops = 500_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{a} takes a number"))
        };
        match a.as_str() {
            "--rounds" => rounds = num(),
            "--ops" => ops = num(),
            _ => panic!("usage: latency [--rounds N] [--ops N]"),
        }
    }
    let conf = hotpool::arena::config();
    let per_ns = clock::ticks_per_ns();
    let overhead = clock::overhead();
    let ns = |ticks: u64| ticks.saturating_sub(overhead) as f64 / per_ns;

    let workloads: Vec<(String, &[usize], bool)> = SETS
        .iter()
        .flat_map(|&(name, sizes)| {
            [false, true].map(|r| {
                let id = format!("{}/{name}", if r { "remote" } else { "local" });
                (id, sizes, r)
            })
        })
        .collect();
    // Warm-up: every contestant maps its first memory untimed.
    for (_, sizes, r) in &workloads {
        for k in 0..NAMES.len() {
            run(k, *r, sizes, ops / 10, 7);
        }
    }
    // [workload][contestant][op] -> per-round [p50, p99, p99.9, max] in ns.
    let mut res: Vec<[[Vec<[f64; 4]>; 2]; NAMES.len()]> = (0..workloads.len())
        .map(|_| std::array::from_fn(|_| [Vec::new(), Vec::new()]))
        .collect();
    let start = Instant::now();
    for round in 0..rounds {
        for (w, (_, sizes, r)) in workloads.iter().enumerate() {
            for i in 0..NAMES.len() {
                let k = (i + round) % NAMES.len();
                let out = run(k, *r, sizes, ops, 1 + round as u64);
                for (op, h) in [out.alloc, out.free].iter().enumerate() {
                    res[w][k][op].push(h.summary().map(ns));
                }
            }
        }
    }
    println!(
        "latency: {rounds} rounds of {ops} allocations and frees per workload and contestant \
         ({:.1} s); ns per call, medians over rounds; clock {:.2} ticks/ns, {} ticks of \
         overhead subtracted; hotpool's background purger: {}, tcache: {}",
        start.elapsed().as_secs_f64(),
        per_ns,
        overhead,
        if conf.background_thread { "on" } else { "off" },
        if conf.tcache { "on" } else { "off" },
    );
    let mut ratios = Vec::new();
    for (w, (id, _, _)) in workloads.iter().enumerate() {
        for (op, op_name) in ["alloc", "free"].iter().enumerate() {
            println!(
                "\n{id} {op_name}\n| contestant | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|"
            );
            let mut p999 = [0.0; NAMES.len()];
            for (k, name) in NAMES.iter().enumerate() {
                let col = |q: usize| median(res[w][k][op].iter().map(|r| r[q]).collect());
                p999[k] = col(2);
                println!(
                    "| {name} | {:.0} | {:.0} | {:.0} | {:.0} |",
                    col(0),
                    col(1),
                    col(2),
                    col(3)
                );
            }
            let best = p999[..PEERS].iter().copied().fold(f64::INFINITY, f64::min);
            ratios.push(format!(
                "{id} {op_name}: HotAlloc {:.2}, Pool {:.2}",
                p999[3] / best.max(1.0),
                p999[4] / best.max(1.0)
            ));
        }
    }
    println!("\np99.9 / best peer's p99.9 (target <= 1.2):");
    for r in ratios {
        println!("  {r}");
    }
}
