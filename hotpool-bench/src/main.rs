//! Measures hotpool's pools and allocator against the system allocator,
//! mimalloc, jemalloc and the pool crates on pool, allocator, weak-handle
//! and order-book workloads, the seed tutorial's programs with each
//! allocator as the global allocator, and the allocators' resident memory
//! through a burst, its frees and an idle period; writes a report with
//! tables, plots and recommendations.
//!
//! ```sh
//! cargo run --release -p hotpool-bench --bin compare -- --threads 1,2,4,8 --quick
//! cargo run --release -p hotpool-bench --bin compare -- --workload pair --out /tmp/r --json
//! cargo run --release -p hotpool-bench --bin compare -- --workload memory --out /tmp/memplot
//! cargo run --release -p hotpool-bench --bin compare -- --workload seed --out /tmp/seed
//! ```
//!
//! Writes `target/hotpool-report/report.md`, `results.json` and SVG plots
//! (or into `--out DIR`) and prints the headline table (or, with `--json`,
//! the results as JSON).

#![warn(clippy::undocumented_unsafe_blocks)]

#[path = "../benches/common/alloc_kernels.rs"]
mod alloc_kernels;
mod global;
mod kernels;
mod measure;
#[path = "../benches/common/pool_kernels.rs"]
mod pool_kernels;
mod report;
mod rss;
mod seed;
mod svg;
#[cfg(test)]
mod tests;
mod workloads;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use measure::{percentile, status_kib, Machine};
use report::{Latency, Memory, Results, Timing};
use workloads::{Plan, Runner, LATENCY_BATCH};

/// The allocator of every allocation std makes in this program: the
/// system allocator unless [`global::ENV`] names another (the seed
/// workloads' child processes).
#[global_allocator]
static GLOBAL: global::Dispatch = global::Dispatch;

/// Command-line options.
#[derive(Debug)]
struct Options {
    quick: bool,
    out: PathBuf,
    workloads: Vec<String>,
    json: bool,
    threads: Vec<usize>,
    /// Hidden: `--cell ID THREADS CONTESTANT N` measures one contestant's
    /// memory in this (child) process.
    cell: Option<(String, usize, String, u64)>,
    /// Hidden: `--memory-cell CONTESTANT BLOCKS MIXED HOLD_MS IDLE_MS`
    /// runs one allocator's burst in this (child) process.
    memory_cell: Option<(String, rss::Burst)>,
    /// Hidden: `--seed-cell ID THREADS N` runs seed workload ID in this
    /// (child) process on its global allocator.
    seed_cell: Option<(String, usize, u64)>,
}

const USAGE: &str =
    "usage: compare [--quick] [--threads 1,2,4] [--workload NAME]... [--out DIR] [--json]
  --quick          short run (fewer sizes, repetitions and shorter ones; smaller
                   memory bursts and 3 s idle instead of 30 s)
  --threads LIST   thread counts of the threaded workloads (default 1,2,4,8)
  --workload NAME  only workloads whose id is NAME or starts with NAME/ (repeatable)
  --out DIR        where the report goes (default target/hotpool-report)
  --json           print the results as JSON instead of the summary table";

fn usage(problem: &str) -> ! {
    if problem.is_empty() {
        println!("{USAGE}");
        std::process::exit(0)
    }
    eprintln!("compare: {problem}\n{USAGE}");
    std::process::exit(2)
}

fn parse_threads(list: &str) -> Result<Vec<usize>, String> {
    let mut v = Vec::new();
    for item in list.split(',') {
        match item.trim().parse::<usize>() {
            Ok(n @ 1..=256) => v.push(n),
            _ => {
                return Err(format!(
                    "--threads: '{item}' is not a thread count from 1 to 256"
                ))
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        // The workspace's target directory (this crate is one of its members).
        out: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/hotpool-report"
        )),
        workloads: Vec::new(),
        json: false,
        threads: vec![1, 2, 4, 8],
        cell: None,
        memory_cell: None,
        seed_cell: None,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--quick" => o.quick = true,
            "--json" => o.json = true,
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--workload" => o.workloads.push(value("--workload")?),
            "--threads" => o.threads = parse_threads(&value("--threads")?)?,
            "--cell" => {
                let id = value("--cell")?;
                let threads = value("--cell")?
                    .parse()
                    .map_err(|_| "--cell: bad threads")?;
                let name = value("--cell")?;
                let n = value("--cell")?.parse().map_err(|_| "--cell: bad count")?;
                o.cell = Some((id, threads, name, n));
            }
            "--memory-cell" => {
                let name = value("--memory-cell")?;
                let rest = (0..4)
                    .map(|_| value("--memory-cell"))
                    .collect::<Result<Vec<_>, _>>()?;
                o.memory_cell = Some((name, rss::Burst::parse(&rest)?));
            }
            "--seed-cell" => {
                let id = value("--seed-cell")?;
                let threads = value("--seed-cell")?
                    .parse()
                    .map_err(|_| "--seed-cell: bad threads")?;
                let n = value("--seed-cell")?
                    .parse()
                    .map_err(|_| "--seed-cell: bad count")?;
                o.seed_cell = Some((id, threads, n));
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(o)
}

/// Timing settings of a run.
struct Settings {
    reps: usize,
    rep: Duration,
    latency_batches: usize,
}

impl Settings {
    fn new(quick: bool) -> Settings {
        if quick {
            Settings {
                reps: 5,
                rep: Duration::from_millis(20),
                latency_batches: 3_000,
            }
        } else {
            Settings {
                reps: 7,
                rep: Duration::from_millis(120),
                latency_batches: 30_000,
            }
        }
    }
}

/// Runs the warm-up and sizes the work: the count of units whose run
/// takes about `target`.
fn calibrate(r: &mut Runner, target: Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let s = (r.run)(n);
        if s.elapsed >= target / 4 || n >= 1 << 40 {
            let scale = target.as_secs_f64() / s.elapsed.as_secs_f64().max(1e-9);
            return ((n as f64 * scale) as u64).max(1);
        }
        n *= 4;
    }
}

/// Child mode: runs one contestant of one cell `n` units once and prints
/// its peak RSS before and after, in KiB.
fn child(id: &str, threads: usize, name: &str, n: u64) -> Result<(u64, u64), String> {
    let cell = workloads::cell(id, threads);
    let entry = cell
        .iter()
        .find(|e| e.contestant == name)
        .ok_or(format!("no contestant {name} in {id}"))?;
    let mut runner = (entry.make)();
    let start = status_kib("VmHWM").ok_or("no VmHWM in /proc/self/status")?;
    (runner.run)(n);
    let peak = status_kib("VmHWM").ok_or("no VmHWM in /proc/self/status")?;
    Ok((start, peak))
}

/// Measures a contestant's memory in a child process running `--cell`.
fn memory_of(id: &str, threads: usize, name: &str, n: u64) -> Result<Memory, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--cell", id, &threads.to_string(), name, &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next()) {
        (Some(Ok(start_kib)), Some(Ok(peak_kib))) => Ok(Memory {
            workload: id.into(),
            contestant: name.into(),
            threads,
            start_kib,
            peak_kib,
        }),
        _ => Err(format!("child printed '{text}'")),
    }
}

/// Memory over time of every allocator on memory workload `id`, each in
/// a child process running `--memory-cell`.
fn run_memory(id: &str, burst: &rss::Burst, bar: &ProgressBar, out: &mut Results) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            bar.println(format!("{id}: cannot re-execute this program: {e}"));
            return;
        }
    };
    for name in rss::CONTESTANTS {
        bar.set_message(format!("{id}: {name} in a child process"));
        let mut cmd = Command::new(&exe);
        cmd.args(["--memory-cell", name]).args(burst.args());
        match rss::measure(cmd, id, name, burst) {
            Ok(run) => out.rss.push(run),
            Err(e) => bar.println(format!("{id} / {name}: no memory figures: {e}")),
        }
        bar.inc(1);
    }
}

/// Whether workload `id` is selected by the `--workload` names.
fn selected(id: &str, names: &[String]) -> bool {
    names.is_empty()
        || names.iter().any(|n| {
            id == n
                || id
                    .strip_prefix(n.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
}

/// Everything measured for one workload: timings at each thread count,
/// latency, and each contestant's peak RSS.
fn run_workload(id: &str, threads: &[usize], set: &Settings, bar: &ProgressBar, out: &mut Results) {
    let mut last_n = Vec::new();
    for &th in threads {
        bar.set_message(format!("{id} @ {th} threads"));
        let cell = workloads::cell(id, th);
        let mut runners: Vec<Runner> = cell.iter().map(|e| (e.make)()).collect();
        let ns: Vec<u64> = runners.iter_mut().map(|r| calibrate(r, set.rep)).collect();
        let mut times = vec![Vec::with_capacity(set.reps); runners.len()];
        let mut ops = vec![0; runners.len()];
        for _ in 0..set.reps {
            for (i, r) in runners.iter_mut().enumerate() {
                let s = (r.run)(ns[i]);
                times[i].push(s.elapsed.as_nanos() as f64 / s.ops as f64);
                ops[i] = s.ops;
            }
        }
        for (i, e) in cell.iter().enumerate() {
            out.timings.push(Timing {
                workload: id.into(),
                contestant: e.contestant.into(),
                threads: th,
                ops: ops[i],
                ns_per_op: std::mem::take(&mut times[i]),
            });
        }
        if th == threads[0] {
            for (e, r) in cell.iter().zip(runners.iter_mut()) {
                if let Some(lat) = r.latency.as_mut() {
                    out.latency
                        .push(latency(id, e.contestant, lat(set.latency_batches)));
                }
            }
        }
        last_n = cell.iter().map(|e| e.contestant).zip(ns).collect();
        bar.inc(1);
    }
    let th = threads[threads.len() - 1];
    bar.set_message(format!("{id}: peak RSS in child processes"));
    for (name, n) in last_n {
        match memory_of(id, th, name, n) {
            Ok(m) => out.memory.push(m),
            Err(e) => bar.println(format!("{id} / {name}: no memory figure: {e}")),
        }
    }
    bar.inc(1);
}

/// Every contestant's time and peak RSS on seed workload `k`, each run in
/// child processes (`--seed-cell`) with it as the global allocator: per
/// thread count, the work is sized here (on the system allocator), then
/// each repetition starts one child per contestant, in turn.
fn run_seed(
    k: seed::Kind,
    threads: &[usize],
    set: &Settings,
    bar: &ProgressBar,
    out: &mut Results,
) {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            bar.println(format!("{}: cannot re-execute this program: {e}", k.id()));
            return;
        }
    };
    for &th in threads {
        bar.set_message(format!("{} @ {th} threads", k.id()));
        let n = calibrate(&mut seed::runner(k, th), set.rep);
        let mut runs: Vec<Vec<seed::ChildRun>> = vec![Vec::new(); global::Target::ALL.len()];
        for _ in 0..set.reps {
            for (i, t) in global::Target::ALL.into_iter().enumerate() {
                let mut cmd = Command::new(&exe);
                cmd.args(["--seed-cell", k.id(), &th.to_string(), &n.to_string()]);
                match seed::measure(cmd, t) {
                    Ok(r) => runs[i].push(r),
                    Err(e) => bar.println(format!("{} / {}: {e}", k.id(), t.name())),
                }
            }
            bar.inc(1);
        }
        let sums: Vec<u64> = runs.iter().flatten().map(|r| r.outcome.checksum).collect();
        if sums.windows(2).any(|w| w[0] != w[1]) {
            bar.println(format!(
                "{} @ {th}: checksums differ between allocators: {sums:?}",
                k.id()
            ));
        }
        for (t, rs) in global::Target::ALL.into_iter().zip(runs) {
            if rs.is_empty() {
                continue;
            }
            out.timings.push(Timing {
                workload: k.id().into(),
                contestant: t.name().into(),
                threads: th,
                ops: rs[0].outcome.ops,
                ns_per_op: rs
                    .iter()
                    .map(|r| r.outcome.elapsed.as_nanos() as f64 / r.outcome.ops as f64)
                    .collect(),
            });
            // The child of the median peak.
            let mut by_peak: Vec<&seed::ChildRun> = rs.iter().collect();
            by_peak.sort_by_key(|r| r.peak_kib);
            let m = by_peak[by_peak.len() / 2];
            out.memory.push(Memory {
                workload: k.id().into(),
                contestant: t.name().into(),
                threads: th,
                start_kib: m.start_kib,
                peak_kib: m.peak_kib,
            });
        }
    }
}

fn latency(id: &str, contestant: &str, samples: Vec<f64>) -> Latency {
    Latency {
        workload: id.into(),
        contestant: contestant.into(),
        batch: LATENCY_BATCH,
        samples: samples.len(),
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
        p999: percentile(&samples, 0.999),
    }
}

fn main() {
    let o = parse(std::env::args().skip(1)).unwrap_or_else(|e| usage(&e));
    if let Some((id, threads, name, n)) = &o.cell {
        match child(id, *threads, name, *n) {
            Ok((start, peak)) => println!("{start} {peak}"),
            Err(e) => {
                eprintln!("compare --cell: {e}");
                std::process::exit(1)
            }
        }
        return;
    }
    if let Some((id, threads, n)) = &o.seed_cell {
        if let Err(e) = seed::child(id, *threads, *n) {
            eprintln!("compare --seed-cell: {e}");
            std::process::exit(1)
        }
        return;
    }
    if let Some((name, burst)) = &o.memory_cell {
        if let Err(e) = rss::child(name, burst) {
            eprintln!("compare --memory-cell: {e}");
            std::process::exit(1)
        }
        return;
    }
    let started = Instant::now();
    let plan = Plan {
        quick: o.quick,
        threads: o.threads.clone(),
    };
    let all_infos = || {
        workloads::infos(&plan)
            .into_iter()
            .chain(seed::infos())
            .chain(rss::infos(o.quick))
    };
    let infos: Vec<_> = all_infos()
        .filter(|i| selected(&i.id, &o.workloads))
        .collect();
    if infos.is_empty() {
        let all: Vec<String> = all_infos().map(|i| i.id).collect();
        usage(&format!(
            "no workload matches; the workloads are: {}",
            all.join(", ")
        ));
    }
    let set = Settings::new(o.quick);
    let mut results = Results {
        machine: Machine::probe(),
        command: std::iter::once("compare".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        reps: set.reps,
        rep_ms: set.rep.as_millis() as u64,
        timer_overhead_ns: measure::timer_overhead_ns(),
        seconds: 0.0,
        workloads: infos.clone(),
        timings: Vec::new(),
        memory: Vec::new(),
        latency: Vec::new(),
        rss: Vec::new(),
    };
    let steps: usize = infos
        .iter()
        .map(
            |i| match (rss::Burst::of(&i.id, o.quick), seed::Kind::of(&i.id)) {
                (Some(_), _) => rss::CONTESTANTS.len(),
                (None, Some(k)) => k.threads(&plan).len() * set.reps,
                (None, None) => workloads::threads_of(&i.id, &plan).len() + 1,
            },
        )
        .sum();
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    for info in &infos {
        if let Some(burst) = rss::Burst::of(&info.id, o.quick) {
            run_memory(&info.id, &burst, &bar, &mut results);
            continue;
        }
        if let Some(k) = seed::Kind::of(&info.id) {
            run_seed(k, &k.threads(&plan), &set, &bar, &mut results);
            continue;
        }
        let threads = workloads::threads_of(&info.id, &plan);
        run_workload(&info.id, &threads, &set, &bar, &mut results);
    }
    bar.finish_and_clear();
    results.seconds = started.elapsed().as_secs_f64();
    match report::write_all(&results, &o.out) {
        Ok((files, head)) => {
            if o.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&results).expect("results serialize")
                );
            } else {
                println!("{head}");
                println!(
                    "{} files in {} (report.md, results.json, plots); {:.0} s",
                    files.len(),
                    o.out.display(),
                    results.seconds
                );
            }
        }
        Err(e) => {
            eprintln!(
                "compare: cannot write the report to {}: {e}",
                o.out.display()
            );
            std::process::exit(1)
        }
    }
}
