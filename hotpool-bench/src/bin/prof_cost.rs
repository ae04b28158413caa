//! What heap profiling costs, hotpool against jemalloc (issue 15): the
//! `churn` and `realloc` kernels of `benches/arena.rs`, each allocator
//! called through its `GlobalAlloc`, with its sampling profiler off and on
//! at the same mean sample interval (2^19 bytes: `HOTPOOL_CONF=prof:true`,
//! `_RJEM_MALLOC_CONF=prof:true`, each one's default `lg_prof_sample`).
//!
//! Needs the `jemalloc-prof` feature, which builds jemalloc with its
//! profiler (`--enable-prof`): the benches' jemalloc is built without it,
//! as most programs' is, and a profiling build is slower even with
//! `prof:false`, so its figures here are not the benches'.
//!
//! Every figure comes from a child process of its own (each allocator reads
//! its configuration once, at start): this binary run again with the cell
//! and the setting in its environment. Rounds interleave the cells; the
//! table gives each cell's median over the rounds, and each allocator's
//! ratio of profiled to unprofiled time.
//!
//! ```text
//! cargo run --release -p hotpool-bench --features jemalloc-prof --bin prof_cost -- [--rounds 7]
//! ```

#[path = "../../benches/common/alloc_kernels.rs"]
#[allow(dead_code)]
mod kernels;
#[path = "../measure.rs"]
#[allow(dead_code)]
mod measure;

use std::alloc::GlobalAlloc;
use std::time::Instant;

static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
static HOT: hotpool::HotAlloc = hotpool::HotAlloc;

/// Set in a child: `kernel/allocator`.
const CHILD: &str = "HOTPOOL_PROF_COST_CHILD";
const KERNELS: [&str; 2] = ["churn", "realloc"];
const ALLOCATORS: [&str; 2] = ["hotpool", "jemalloc"];

/// One call of `kernel`: 1000 replacements in a window of 1024 blocks of
/// 8 B-4 KiB, or a builder doubling from 16 B to 1 MiB.
fn once<A: GlobalAlloc>(a: &A, kernel: &str) {
    match kernel {
        "churn" => kernels::churn(a, 1000, 1024, |r| 8 + (r >> 16) as usize % 4088),
        "realloc" => kernels::realloc_builder(a, 1 << 20, false),
        _ => panic!("unknown kernel {kernel}"),
    }
}

/// Nanoseconds per call of `kernel` over about a quarter of a second,
/// after as long a warm-up.
fn time<A: GlobalAlloc>(a: &A, kernel: &str) -> f64 {
    let warm = Instant::now();
    let mut n = 0u64;
    while warm.elapsed().as_millis() < 250 {
        once(a, kernel);
        n += 1;
    }
    let t = Instant::now();
    for _ in 0..n {
        once(a, kernel);
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    if let Ok(cell) = std::env::var(CHILD) {
        let (kernel, allocator) = cell.split_once('/').unwrap();
        let ns = match allocator {
            "hotpool" => time(&HOT, kernel),
            "jemalloc" => time(&JE, kernel),
            _ => panic!("unknown allocator {allocator}"),
        };
        println!("{ns}");
        return;
    }
    let mut rounds = 7;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds N")
            }
            _ => panic!("usage: prof_cost [--rounds N]"),
        }
    }
    let exe = std::env::current_exe().unwrap();
    // [kernel][allocator][prof off, on] -> one figure per round.
    let mut figs = vec![vec![[Vec::new(), Vec::new()]; ALLOCATORS.len()]; KERNELS.len()];
    for round in 0..rounds {
        for (k, kernel) in KERNELS.iter().enumerate() {
            for (a, allocator) in ALLOCATORS.iter().enumerate() {
                for (p, on) in [false, true].into_iter().enumerate() {
                    let conf = if on { "prof:true" } else { "prof:false" };
                    let out = std::process::Command::new(&exe)
                        .env(CHILD, format!("{kernel}/{allocator}"))
                        .env("HOTPOOL_CONF", conf)
                        .env("_RJEM_MALLOC_CONF", conf)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "child {kernel}/{allocator} {conf} failed"
                    );
                    let ns: f64 = String::from_utf8(out.stdout)
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    figs[k][a][p].push(ns);
                }
            }
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    println!("ns per call, medians of {rounds} rounds (one child process per figure)");
    println!("| kernel | allocator | prof:false | prof:true | ratio |");
    println!("|---|---|---|---|---|");
    for (k, kernel) in KERNELS.iter().enumerate() {
        for (a, allocator) in ALLOCATORS.iter().enumerate() {
            let off = measure::median(&figs[k][a][0]);
            let on = measure::median(&figs[k][a][1]);
            println!(
                "| {kernel} | {allocator} | {off:.0} | {on:.0} | {:.2} |",
                on / off
            );
        }
    }
}
