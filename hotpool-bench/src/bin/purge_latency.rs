//! Tail latency of allocation and free with the background purger on and
//! off (issue 14): the purger must never stall an allocating thread.
//!
//! `HotAlloc` is the global allocator; `decay_ms` is 20 ms so that purging
//! goes on all the time. Each of `--threads` threads repeatedly allocates
//! a batch of blocks of mixed sizes (64 B to 64 KiB, so that slabs and
//! large runs are freed whole and their pages go dirty), touches them, and
//! frees them; every allocation and every free is timed on its own. Rounds
//! alternate between `background_thread` on (allocating threads never
//! purge; the purger `madvise`s with the run lock released) and off (the
//! threads purge expired pages on their own slow paths). Prints p50, p99,
//! p99.9 and max per mode (medians over the rounds) and the ratio of the
//! p99.9s.
//!
//! ```text
//! cargo run --release -p hotpool-bench --bin purge_latency -- [--rounds 5] [--threads 2]
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use hotpool::{arena, HotAlloc};

#[global_allocator]
static A: HotAlloc = HotAlloc;

const BATCH: usize = 2048;
const SIZES: [usize; 8] = [64, 200, 1024, 3000, 16 << 10, 24 << 10, 40 << 10, 64 << 10];
const ROUND: Duration = Duration::from_millis(1500);

/// Nanoseconds of every operation of one thread for one round.
fn worker(seed: usize) -> Vec<u32> {
    let mut lat = Vec::with_capacity(4 << 20);
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let start = Instant::now();
    let mut i = seed;
    while start.elapsed() < ROUND && lat.len() + 2 * BATCH <= lat.capacity() {
        for _ in 0..BATCH {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = SIZES[(i >> 33) % SIZES.len()];
            let t = Instant::now();
            let mut v = Vec::<u8>::with_capacity(size);
            lat.push(t.elapsed().as_nanos() as u32);
            // SAFETY: capacity is `size`; one byte per page is written.
            unsafe {
                for off in (0..size).step_by(4096) {
                    v.as_mut_ptr().add(off).write(1);
                }
            }
            blocks.push(v);
        }
        for v in blocks.drain(..) {
            let t = Instant::now();
            drop(black_box(v));
            lat.push(t.elapsed().as_nanos() as u32);
        }
    }
    lat
}

fn percentiles(mut all: Vec<u32>) -> [u32; 4] {
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    [at(0.5), at(0.99), at(0.999), *all.last().unwrap()]
}

fn round(threads: usize) -> [u32; 4] {
    let handles: Vec<_> = (0..threads)
        .map(|t| std::thread::spawn(move || worker(t * 7919 + 1)))
        .collect();
    let all: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    percentiles(all)
}

fn median(mut v: Vec<u32>) -> u32 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let mut rounds = 5;
    let mut threads = 2;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{a} takes a number"))
        };
        match a.as_str() {
            "--rounds" => rounds = num(),
            "--threads" => threads = num(),
            _ => panic!("usage: purge_latency [--rounds N] [--threads N]"),
        }
    }
    arena::set_decay_ms(20);
    let mut by_mode: [Vec<[u32; 4]>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (m, on) in [true, false].into_iter().enumerate() {
            arena::set_background_thread(on);
            by_mode[m].push(round(threads));
        }
    }
    println!("purge_latency: {threads} threads, {rounds} rounds of {ROUND:?} per mode, decay_ms 20; ns per operation, medians over rounds");
    println!("| background_thread | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|");
    let mut p999 = [0; 2];
    for (m, name) in ["true", "false"].iter().enumerate() {
        let col = |k: usize| median(by_mode[m].iter().map(|r| r[k]).collect());
        p999[m] = col(2);
        println!(
            "| {name} | {} | {} | {} | {} |",
            col(0),
            col(1),
            col(2),
            col(3)
        );
    }
    println!(
        "p99.9 on/off: {:.2}",
        f64::from(p999[0]) / f64::from(p999[1].max(1))
    );
    println!("purged pages: {}", arena::stats().purged / 4096);
}
