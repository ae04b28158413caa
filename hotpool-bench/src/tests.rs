//! Tests of the report generator on synthetic results, of the command
//! line, a smoke run of every workload and contestant, and a real run of
//! the memory-over-time measurement.

use std::path::PathBuf;

use crate::global::{self, Target};
use crate::measure::{median, percentile, spread_pct, status_kib, Machine};
use crate::report::{
    analyse, headline, peak_markdown, rss_markdown, rss_plot, write_all, Latency, Memory, Results,
    Timing,
};
use crate::rss::{Burst, RssRun, CONTESTANTS};
use crate::seed::{self, Kind};
use crate::svg;
use crate::workloads::{self, Info, Plan};

fn info(id: &str) -> Info {
    Info {
        id: id.into(),
        unit: "op".into(),
        about: format!("synthetic {id}"),
    }
}

fn timing(workload: &str, contestant: &str, threads: usize, ns: &[f64]) -> Timing {
    Timing {
        workload: workload.into(),
        contestant: contestant.into(),
        threads,
        ops: 1000,
        ns_per_op: ns.to_vec(),
    }
}

fn memory(workload: &str, contestant: &str, growth_kib: u64) -> Memory {
    Memory {
        workload: workload.into(),
        contestant: contestant.into(),
        threads: 2,
        start_kib: 2048,
        peak_kib: 2048 + growth_kib,
    }
}

/// A memory-over-time run of 3.5 s: RSS `base` MiB before the burst,
/// rising by `rise` MiB over the burst (0-0.5 s), held until the frees
/// (0.7-0.8 s), then `kept` MiB over the base, sampled every 0.1 s.
fn rss_run(contestant: &str, base: u64, rise: u64, kept: u64) -> RssRun {
    let samples = (-3..=43)
        .map(|i| {
            let t = f64::from(i) / 10.0;
            let mib = match i {
                ..=-1 => base,
                0..=5 => base + rise * i as u64 / 5,
                6..=7 => base + rise,
                _ => base + kept,
            };
            (t, mib * 1024)
        })
        .collect();
    RssRun {
        workload: "memory/64".into(),
        contestant: contestant.into(),
        burst: Burst::of("memory/64", true).unwrap(),
        hold_s: 0.5,
        free_s: 0.7,
        freed_s: 0.8,
        samples,
    }
}

/// Two workloads: `pair/64` at 1 and 2 threads with latency figures,
/// `churn` at one thread count; `hotpool::Pool` is fastest on `pair/64`;
/// and a memory-over-time workload.
fn synthetic() -> Results {
    let lat = |c: &str, p50| Latency {
        workload: "pair/64".into(),
        contestant: c.into(),
        batch: 64,
        samples: 1000,
        p50,
        p99: p50 * 3.0,
        p999: p50 * 10.0,
    };
    Results {
        machine: Machine {
            cpu: "Test CPU".into(),
            cpus: 2,
            memory_gib: 1.0,
            kernel: "6.0".into(),
            load: "0.00 0.00 0.00".into(),
        },
        command: "compare --test".into(),
        reps: 3,
        rep_ms: 10,
        timer_overhead_ns: 20.0,
        seconds: 1.0,
        workloads: vec![info("pair/64"), info("churn"), info("memory/64")],
        timings: vec![
            timing("pair/64", "hotpool::Pool", 1, &[2.0, 2.2, 2.1]),
            timing("pair/64", "hotpool::Pool", 2, &[1.0, 1.1, 1.2]),
            timing("pair/64", "system", 1, &[6.0, 6.3, 6.6]),
            timing("pair/64", "system", 2, &[4.0, 4.0, 4.0]),
            timing("pair/64", "mimalloc", 1, &[4.2, 4.2, 4.2]),
            timing("pair/64", "mimalloc", 2, &[2.2, 2.2, 2.2]),
            timing("churn", "HotAlloc", 2, &[10.0, 10.0, 10.0]),
            timing("churn", "jemalloc", 2, &[10.5, 10.5, 10.5]),
            timing("churn", "system", 2, &[30.0, 30.0, 30.0]),
        ],
        memory: vec![
            memory("pair/64", "hotpool::Pool", 1024),
            memory("pair/64", "system", 512),
            memory("churn", "HotAlloc", 4096),
            memory("churn", "jemalloc", 2048),
            memory("churn", "system", 1024),
        ],
        latency: vec![lat("hotpool::Pool", 2.0), lat("system", 6.0)],
        rss: vec![
            rss_run("HotAlloc", 2, 300, 0),
            rss_run("system", 1, 320, 300),
            rss_run("mimalloc", 2, 280, 250),
            rss_run("jemalloc", 3, 290, 260),
        ],
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotpool-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn report_writes_every_table_and_plot() {
    let r = synthetic();
    let dir = temp_dir("files");
    let (files, head) = write_all(&r, &dir).expect("report written");
    for f in [
        "report.md",
        "results.json",
        "throughput-pair-64.svg",
        "latency-pair-64.svg",
        "memory-64.svg",
    ] {
        let p = dir.join(f);
        assert!(files.contains(&p), "{f} not listed");
        let text = std::fs::read_to_string(&p).expect("file readable");
        assert!(text.len() > 100, "{f} is nearly empty");
    }
    // churn ran at one thread count: a table but no throughput plot.
    assert!(!dir.join("throughput-churn.svg").exists());
    let svg = std::fs::read_to_string(dir.join("throughput-pair-64.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("hotpool::Pool") && svg.contains("mimalloc"));
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("### pair/64") && md.contains("### churn"));
    assert!(md.contains("## Memory over time\n\n### memory/64") && md.contains("(memory-64.svg)"));
    assert!(md.contains("Test CPU (2 logical CPUs available)"));
    assert!(
        md.contains("| hotpool::Pool | 2.0 | 6.0 | 20.0 |"),
        "latency table:\n{md}"
    );
    // The summary: the headline table, then each memory table.
    let (timed, memory) = head.split_once("\nmemory/64, RSS in MiB:\n\n").unwrap();
    assert!(md.contains(timed) && md.contains(memory) && memory.starts_with("| allocator |"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["timings"].as_array().unwrap().len(), 9);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ratios_follow_the_numbers() {
    let r = synthetic();
    let t = analyse(&r, &r.workloads[0]).unwrap();
    assert_eq!(t.threads, vec![1, 2]);
    let row = |name: &str| t.rows.iter().find(|x| x.contestant == name).unwrap();
    // Medians: hotpool 2.1 / 1.1, mimalloc 4.2 / 2.2, system 6.3 / 4.0.
    assert_eq!(row("hotpool::Pool").ratio, vec![Some(1.0), Some(1.0)]);
    let mi = &row("mimalloc").ratio;
    assert!((mi[0].unwrap() - 2.0).abs() < 1e-9 && (mi[1].unwrap() - 2.0).abs() < 1e-9);
    let sys = row("system");
    assert!((sys.ratio[0].unwrap() - 3.0).abs() < 1e-9);
    assert!((sys.score - (3.0f64 * 4.0 / 1.1).sqrt()).abs() < 1e-9);
    // Spread: (6.6 - 6.0) / 2 / 6.3.
    assert!((sys.ns[0].unwrap().1 - 0.3 / 6.3 * 100.0).abs() < 1e-9);
    assert_eq!(t.rows[0].contestant, "hotpool::Pool");
    assert_eq!(sys.rss_mib, Some(0.5));
    let table = crate::report::table_markdown(&t);
    assert!(
        table.contains("| mimalloc | 4.2 ±0% (2.00) | 2.2 ±0% (2.00) | 2.00 | - |"),
        "{table}"
    );
}

#[test]
fn recommendation_follows_the_numbers() {
    let mut r = synthetic();
    let t = analyse(&r, &r.workloads[0]).unwrap();
    assert_eq!(t.pick, "hotpool::Pool");
    assert!(
        t.advice
            .contains("the next, mimalloc, takes 2.00x its time"),
        "{}",
        t.advice
    );
    // Make mimalloc the fastest: the recommendation changes with it.
    for x in r.timings.iter_mut().filter(|x| x.contestant == "mimalloc") {
        x.ns_per_op = vec![0.5; 3];
    }
    let t = analyse(&r, &r.workloads[0]).unwrap();
    assert_eq!(t.pick, "mimalloc");
    assert!(t.advice.starts_with("**mimalloc**"), "{}", t.advice);
    // churn: HotAlloc and jemalloc are within 10%; jemalloc used less memory.
    let c = analyse(&r, &r.workloads[1]).unwrap();
    assert_eq!(c.pick, "jemalloc");
    assert!(
        c.advice.contains("grew its peak RSS least (2.0 MiB)"),
        "{}",
        c.advice
    );
    // ...until HotAlloc's growth is the smaller one.
    r.memory[2].peak_kib = r.memory[2].start_kib + 100;
    assert_eq!(analyse(&r, &r.workloads[1]).unwrap().pick, "HotAlloc");
    // ...or jemalloc falls out of the 10% band.
    for x in r.timings.iter_mut().filter(|x| x.contestant == "jemalloc") {
        x.ns_per_op = vec![12.0; 3];
    }
    r.memory[2].peak_kib = r.memory[2].start_kib + 8192;
    assert_eq!(analyse(&r, &r.workloads[1]).unwrap().pick, "HotAlloc");
}

#[test]
fn headline_has_a_row_per_workload() {
    let r = synthetic();
    let tables: Vec<_> = r.workloads.iter().filter_map(|i| analyse(&r, i)).collect();
    let h = headline(&tables);
    assert!(
        h.contains(
            "| pair/64 | hotpool::Pool | 2.1 (1) | 1.00 (hotpool::Pool) | 3.30 | 2.00 | - |"
        ),
        "{h}"
    );
    assert!(
        h.contains("| churn | jemalloc | 10.0 (2) | 1.00 (HotAlloc) | 3.00 | - | 1.05 |"),
        "{h}"
    );
}

#[test]
fn statistics() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(spread_pct(&[1.0, 2.0, 3.0]), 50.0);
    let v: Vec<f64> = (1..=1000).map(f64::from).collect();
    assert_eq!(percentile(&v, 0.5), 500.0);
    assert_eq!(percentile(&v, 0.99), 990.0);
    assert_eq!(percentile(&v, 0.999), 999.0);
    assert!(status_kib("VmHWM").unwrap() > 0 && status_kib("VmRSS").unwrap() > 0);
    assert_eq!(status_kib("NoSuchField"), None);
}

#[test]
fn command_line() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let o = crate::parse(args(
        "--threads 4,1,2 --quick --workload pair --json --out /x",
    ))
    .unwrap();
    assert_eq!(o.threads, vec![1, 2, 4]);
    assert!(o.quick && o.json && o.out == std::path::Path::new("/x") && o.workloads == ["pair"]);
    assert!(crate::parse(args("--threads 0"))
        .unwrap_err()
        .contains("'0'"));
    assert!(crate::parse(args("--threads"))
        .unwrap_err()
        .contains("needs a value"));
    assert!(crate::parse(args("--bogus"))
        .unwrap_err()
        .contains("--bogus"));
    assert!(crate::selected("pair/64", &["pair".into()]));
    assert!(!crate::selected("pair/64", &["pa".into()]));
    assert!(crate::selected("router", &["router".into()]));
    assert!(crate::selected("memory/mixed", &["memory".into()]));
    let o = crate::parse(args("--memory-cell jemalloc 4096 1 20 3000")).unwrap();
    let (name, b) = o.memory_cell.unwrap();
    assert_eq!(name, "jemalloc");
    assert_eq!(
        b,
        Burst {
            blocks: 4096,
            mixed: true,
            hold_ms: 20,
            idle_ms: 3000
        }
    );
    assert_eq!(Burst::parse(&b.args()).unwrap(), b);
    let o = crate::parse(args("--seed-cell seed/trading 1 5000")).unwrap();
    assert_eq!(o.seed_cell, Some(("seed/trading".into(), 1, 5000)));
    assert!(crate::parse(args("--seed-cell seed/trading x 5"))
        .unwrap_err()
        .contains("bad threads"));
    assert!(crate::selected("seed/market-data", &["seed".into()]));
    assert!(crate::parse(args("--memory-cell system 10 0 x 5"))
        .unwrap_err()
        .contains("argument 4"));
    assert_eq!(Burst::of("memory/64", false).unwrap().idle_ms, 30_000);
    assert_eq!(Burst::of("memory/64", true).unwrap().idle_ms, 3_000);
    assert_eq!(Burst::of("pair/64", true), None);
}

#[test]
fn mixed_sizes_cover_16_bytes_to_1_kib() {
    let mut seen = [0u32; 6];
    let mut r = 1u64;
    for _ in 0..6000 {
        r = r
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = crate::rss::mixed_size(r);
        assert!((16..1024).contains(&size), "{size}");
        seen[(size / 16).ilog2() as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 500), "{seen:?}");
}

/// The value of attribute `name` in tag text `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Checks that `text` is well-formed SVG as far as the plot goes: tags
/// balance, every line point and circle lies inside the `viewBox`.
/// Returns the names of the series lines.
fn check_svg(text: &str) -> Vec<String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut names = Vec::new();
    let mut view = None;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("every tag is closed") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        assert!(!tag.contains('<'), "'<' inside tag {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.trim()), "unbalanced </{name}>");
            continue;
        }
        let name = tag.split_whitespace().next().expect("a tag name");
        if stack.is_empty() {
            assert_eq!(name, "svg", "the root is not <svg>");
            assert!(view.is_none(), "a second root element");
            let v: Vec<f64> = attr(tag, "viewBox")
                .expect("a viewBox")
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            view = Some((v[0], v[1], v[0] + v[2], v[1] + v[3]));
        }
        let (x0, y0, x1, y1) = view.expect("inside <svg>");
        let inside = |x: f64, y: f64| (x0..=x1).contains(&x) && (y0..=y1).contains(&y);
        if name == "polyline" && attr(tag, "class") == Some("series") {
            names.push(attr(tag, "data-name").expect("a series name").to_string());
            let points = attr(tag, "points").expect("points");
            assert!(points.split(' ').count() >= 2, "a line of one point");
            for p in points.split(' ') {
                let (x, y) = p.split_once(',').expect("x,y");
                let (x, y) = (x.parse().unwrap(), y.parse().unwrap());
                assert!(inside(x, y), "point {p} outside the viewBox");
            }
        }
        if name == "circle" {
            let c = |a| attr(tag, a).expect("circle centre").parse().unwrap();
            assert!(
                inside(c("cx"), c("cy")),
                "circle outside the viewBox: {tag}"
            );
        }
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root: {rest}");
    names
}

#[test]
fn memory_plot_is_well_formed() {
    let r = synthetic();
    let runs: Vec<&RssRun> = r.rss.iter().collect();
    let text = rss_plot("memory/64", &runs);
    assert_eq!(check_svg(&text), CONTESTANTS);
    // Each allocator's frees are circled at its start and end, the frees shaded.
    assert_eq!(
        text.matches("<circle class=\"mark\"").count(),
        2 * runs.len()
    );
    assert_eq!(text.matches("<rect class=\"span\"").count(), 1);
    // Escaping keeps a name with markup characters well-formed.
    let plot = svg::Plot {
        title: "a < b & c".into(),
        x_desc: "x".into(),
        y_desc: "y".into(),
        spans: vec![(1.0, 2.0, "<span>".into())],
        series: vec![svg::Series {
            name: "\"quoted\" <name>".into(),
            points: vec![(0.0, 0.0), (3.0, 5.0)],
            marks: vec![(3.0, 5.0)],
        }],
    };
    assert_eq!(
        check_svg(&plot.render()),
        ["&quot;quoted&quot; &lt;name&gt;"]
    );
}

#[test]
fn memory_table_has_a_row_per_allocator() {
    let r = synthetic();
    let runs: Vec<&RssRun> = r.rss.iter().collect();
    let table = rss_markdown(&runs);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + CONTESTANTS.len(), "{table}");
    let cells = |l: &str| -> Vec<String> {
        l.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    assert_eq!(
        cells(lines[0]),
        [
            "allocator",
            "before the burst",
            "peak",
            "0 s after the frees",
            "1 s after the frees",
            "10 s after the frees",
            "30 s after the frees",
            "frees took, ms"
        ]
    );
    for (line, name) in lines[2..].iter().zip(CONTESTANTS) {
        assert_eq!(cells(line).len(), 8, "{line}");
        assert_eq!(cells(line)[0], name);
    }
    // system: 1 MiB before, 321 at the peak, 301 after; the run ended
    // 3.5 s after the frees, so no 10 s or 30 s figure.
    assert_eq!(
        cells(lines[3]),
        ["system", "1.0", "321.0", "301.0", "301.0", "-", "-", "100"]
    );
}

/// A real run of the memory measurement: this test binary, re-executed,
/// runs [`memory_child`] with a burst of 256 Ki blocks of 64 B through
/// `HotAlloc`; its RSS must rise by half the burst's bytes at least.
#[test]
fn memory_run_rises_during_the_burst() {
    let b = Burst {
        blocks: 1 << 18,
        mixed: false,
        hold_ms: 100,
        idle_ms: 300,
    };
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["tests::memory_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_VAR, format!("HotAlloc {}", b.args().join(" ")));
    let run = crate::rss::measure(cmd, "memory/64", "HotAlloc", &b).expect("a run");
    assert!(0.0 < run.hold_s && run.hold_s <= run.free_s && run.free_s <= run.freed_s);
    assert!(run.samples.windows(2).all(|w| w[0].0 < w[1].0));
    let before = run.before_kib().expect("samples before the burst");
    let held = run
        .samples
        .iter()
        .filter(|s| (0.0..=run.free_s).contains(&s.0))
        .map(|s| s.1)
        .max()
        .expect("samples during the burst and the hold");
    assert!(
        held >= before + (b.blocks * 64 / 1024) / 2,
        "RSS {before} KiB before the burst, {held} KiB after it"
    );
    assert!(run.after_kib(0.3).is_some(), "the idle period was sampled");
}

const CHILD_VAR: &str = "HOTPOOL_BENCH_MEMORY_CELL";

/// The child half of [`memory_run_rises_during_the_burst`]: the burst
/// its parent describes in [`CHILD_VAR`].
#[test]
#[ignore = "the child process of memory_run_rises_during_the_burst, which runs it"]
fn memory_child() {
    let spec = std::env::var(CHILD_VAR).expect("run by memory_run_rises_during_the_burst");
    let args: Vec<String> = spec.split_whitespace().map(String::from).collect();
    let burst = Burst::parse(&args[1..]).unwrap();
    crate::rss::child(&args[0], &burst).unwrap();
}

/// One cell's memory is measured the way a child process does it; every
/// workload and contestant of the quick plan runs a little, at two thread
/// counts; every latency kernel gives its samples. Runs on a thread
/// with the kernels' stack size (the latency kernels run on the caller).
#[test]
fn smoke_every_workload() {
    std::thread::Builder::new()
        .stack_size(crate::pool_kernels::STACK)
        .spawn(smoke)
        .expect("thread spawned")
        .join()
        .expect("smoke run passed");
}

fn smoke() {
    // First, while this process's peak is low: 1024 blocks of 4 KiB from
    // this new thread's fresh malloc arena raise the peak by about 4 MiB.
    let (start, peak) = crate::child("batch-lifo/4096", 1, "system", 1).unwrap();
    assert!(peak >= start + 2048, "peak {peak} KiB, start {start} KiB");
    assert!(crate::child("pair/4096", 1, "nobody", 1).is_err());
    let plan = Plan {
        quick: true,
        threads: vec![1, 2],
    };
    let infos = workloads::infos(&plan);
    assert!(infos.len() >= 20);
    for info in &infos {
        for th in workloads::threads_of(&info.id, &plan) {
            let cell = workloads::cell(&info.id, th);
            assert!(cell.len() >= 4, "{} has few contestants", info.id);
            for e in &cell {
                let mut r = (e.make)();
                let s = (r.run)(1);
                assert!(s.ops >= 1, "{} / {} did nothing", info.id, e.contestant);
                if let Some(lat) = r.latency.as_mut() {
                    let v = lat(3);
                    assert!(v.len() >= 3 && v.iter().all(|x| *x > 0.0));
                }
            }
        }
    }
}

#[test]
fn via_grows_in_place_or_by_copy() {
    use allocator_api2::alloc::{Allocator, Layout};
    let a = crate::kernels::Via(&std::alloc::System);
    let mut v: allocator_api2::vec::Vec<u64, _> = allocator_api2::vec::Vec::new_in(a);
    for i in 0..10_000u64 {
        v.push(i * 3);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
    // A different alignment takes the copy path; contents survive.
    let old = Layout::from_size_align(24, 8).unwrap();
    let new = Layout::from_size_align(4096, 64).unwrap();
    let p = a.allocate(old).unwrap().cast::<u8>();
    // SAFETY: `p` is a live 24-byte block of `a`, grown once and freed
    // once with its current layout.
    unsafe {
        p.as_ptr().copy_from_nonoverlapping([7u8; 24].as_ptr(), 24);
        let q = a.grow(p, old, new).unwrap().cast::<u8>();
        assert_eq!(q.as_ptr() as usize % 64, 0);
        assert_eq!(std::slice::from_raw_parts(q.as_ptr(), 24), &[7u8; 24]);
        a.deallocate(q, new);
    }
    assert_eq!(
        a.allocate(Layout::from_size_align(0, 16).unwrap())
            .unwrap()
            .len(),
        0
    );
}

/// A synthetic run of `seed/market-data` at 1 and 2 threads and `churn`
/// at 2, with peak RSS of HotAlloc, system and mimalloc (jemalloc timed
/// only).
fn synthetic_peaks() -> Results {
    let mem = |w: &str, c: &str, threads, start_kib, peak_kib| Memory {
        workload: w.into(),
        contestant: c.into(),
        threads,
        start_kib,
        peak_kib,
    };
    let mut r = synthetic();
    r.workloads = vec![info("seed/market-data"), info("churn")];
    r.timings = vec![
        timing("seed/market-data", "HotAlloc", 1, &[30.0, 31.0, 29.0]),
        timing("seed/market-data", "system", 1, &[40.0; 3]),
        timing("seed/market-data", "mimalloc", 1, &[20.0; 3]),
        timing("seed/market-data", "jemalloc", 1, &[25.0; 3]),
        timing("seed/market-data", "HotAlloc", 2, &[50.0; 3]),
        timing("seed/market-data", "system", 2, &[50.0; 3]),
        timing("seed/market-data", "mimalloc", 2, &[100.0; 3]),
        timing("churn", "HotAlloc", 2, &[10.0; 3]),
        timing("churn", "system", 2, &[20.0; 3]),
    ];
    r.memory = vec![
        mem("seed/market-data", "HotAlloc", 1, 4096, 6144),
        mem("seed/market-data", "system", 1, 4096, 5120),
        mem("seed/market-data", "mimalloc", 1, 8192, 10240),
        mem("seed/market-data", "HotAlloc", 2, 4096, 8192),
        mem("seed/market-data", "system", 2, 4096, 10240),
        mem("seed/market-data", "mimalloc", 2, 8192, 16384),
        // No mimalloc figure: no row.
        mem("churn", "HotAlloc", 2, 2048, 4096),
        mem("churn", "system", 2, 2048, 4096),
    ];
    r
}

#[test]
fn peak_table_follows_the_numbers() {
    let r = synthetic_peaks();
    let t = peak_markdown(&r);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 4, "{t}");
    assert!(lines[0].starts_with("| workload | threads | HotAlloc peak"));
    // T=1: 6 MiB against the lower of 5 and 10 MiB; growth 2 against 1;
    // time 30 against the best peer's 20.
    assert_eq!(
        lines[2],
        "| seed/market-data | 1 | 6.0 (2.0) | 5.0 (1.0) | 10.0 (2.0) | 1.20 | 2.00 | 1.50 |"
    );
    // T=2: no jemalloc timing; the best peer is system's 50.
    assert_eq!(
        lines[3],
        "| seed/market-data | 2 | 8.0 (4.0) | 10.0 (6.0) | 16.0 (8.0) | 0.80 | 0.67 | 1.00 |"
    );
    // The workload's table shows the growth at the largest thread count.
    let md = analyse(&r, &r.workloads[0]).unwrap();
    let hot = md.rows.iter().find(|x| x.contestant == "HotAlloc").unwrap();
    assert_eq!(hot.rss_mib, Some(4.0));
    // The report gets the section, the summary the table.
    let dir = temp_dir("peaks");
    let (_, head) = write_all(&r, &dir).unwrap();
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("## Peak RSS against glibc and mimalloc") && report.contains(&t));
    assert!(head.contains(&t));
    std::fs::remove_dir_all(&dir).unwrap();
    // Nothing measured, no table.
    assert_eq!(peak_markdown(&synthetic()), "");
}

const SEED_VAR: &str = "HOTPOOL_BENCH_SEED_CELL";

/// This test binary re-executed to run `test`, an ignored test below,
/// with `target` as the global allocator.
fn seed_command(test: &str, spec: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(SEED_VAR, spec);
    cmd
}

/// A child on each global allocator: it reports the allocator it runs
/// on, and a 64 KiB `Vec` lands in hotpool's arena only under `HotAlloc`
/// and in glibc's heap only under `system`.
#[test]
fn child_allocates_through_the_chosen_allocator() {
    for t in Target::ALL {
        let out = seed_command("tests::alloc_child", "")
            .env(global::ENV, t.name())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {out:?}", t.name());
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.find("@alloc ").map(|i| &l[i + 7..]))
            .unwrap_or_else(|| panic!("no @alloc line in {text}"));
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(w[0], t.name());
        let (arena, glibc): (i64, i64) = (w[1].parse().unwrap(), w[2].parse().unwrap());
        let big = 64 << 10;
        assert_eq!(arena >= big, t == Target::HotAlloc, "{line}");
        assert_eq!(glibc >= big, t == Target::System, "{line}");
    }
    // Unset, the default: the system allocator (unless this test's own
    // environment chose another).
    if std::env::var_os(global::ENV).is_none() {
        assert_eq!(global::target(), Target::System);
    }
}

/// The child half of [`child_allocates_through_the_chosen_allocator`].
#[test]
#[ignore = "the child process of child_allocates_through_the_chosen_allocator, which runs it"]
fn alloc_child() {
    // SAFETY: mallinfo2 has no preconditions.
    let glibc = || unsafe { libc::mallinfo2() }.uordblks as i64;
    let arena = || hotpool::arena::stats().allocated as i64;
    let (arena0, glibc0) = (arena(), glibc());
    let v = std::hint::black_box(vec![7u8; 64 << 10]);
    let (arena1, glibc1) = (arena(), glibc());
    println!(
        "@alloc {} {} {}",
        global::target().name(),
        arena1 - arena0,
        glibc1 - glibc0
    );
    drop(v);
}

/// Each seed workload, run in a child on each allocator (twice: the
/// child checks that both runs agree), computes the same, and reports a
/// peak. (Nothing runs here: this process's peak must stay low for
/// [`smoke`].)
#[test]
fn seed_workloads_compute_the_same_under_every_allocator() {
    let plan = Plan {
        quick: true,
        threads: vec![1, 2],
    };
    assert_eq!(
        seed::infos()
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        ["seed/order-book", "seed/market-data", "seed/trading"]
    );
    for k in Kind::ALL {
        let th = *k.threads(&plan).last().unwrap();
        let n = 3000;
        let mut sums = Vec::new();
        for t in Target::ALL {
            let spec = format!("{} {th} {n}", k.id());
            let run = seed::measure(seed_command("tests::seed_cell_child", &spec), t)
                .unwrap_or_else(|e| panic!("{} / {}: {e}", k.id(), t.name()));
            assert_eq!(run.target, t);
            assert_eq!(run.outcome.ops, n * th as u64);
            assert!(run.start_kib > 0 && run.peak_kib >= run.start_kib);
            sums.push(run.outcome.checksum);
        }
        assert!(sums.iter().all(|&x| x == sums[0]), "{}: {sums:?}", k.id());
    }
}

/// The child half of [`seed_workloads_compute_the_same_under_every_allocator`]:
/// the cell its parent names in [`SEED_VAR`], as `--seed-cell` runs it.
#[test]
#[ignore = "the child process of seed_workloads_compute_the_same_under_every_allocator"]
fn seed_cell_child() {
    let spec = std::env::var(SEED_VAR).expect("run by its parent test");
    let w: Vec<&str> = spec.split_whitespace().collect();
    seed::child(w[0], w[1].parse().unwrap(), w[2].parse().unwrap()).unwrap();
}

/// The order book's map, price levels and live list agree after every
/// operation of a long random stream, and its depth stays bounded.
#[test]
fn order_book_stays_consistent() {
    let depth = 2000;
    let mut book = seed::Book::new(depth);
    let mut r = 7u64;
    let mut fills = 0u64;
    for i in 0..30_000u32 {
        r = r
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        fills += u64::from(book.step(r >> 3) != 0);
        if i % 1000 == 0 {
            let live = book.check();
            assert!(live <= 2 * depth);
        }
    }
    assert!(book.check() >= depth / 2 && fills > 1000, "fills {fills}");
}
