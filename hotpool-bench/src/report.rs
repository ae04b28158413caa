//! The results of a run and everything made from them: per-workload
//! tables with ratios and recommendations, the headline table, the
//! Markdown report, JSON and the SVG plots.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::measure::{median, spread_pct, Machine};
use crate::rss::{RssRun, AFTER_S};
use crate::svg::{Plot, Series};
use crate::workloads::Info;

/// Contestants whose score is within this factor of the best one's are
/// contenders; the recommendation picks the one using least memory.
pub const CONTENDER: f64 = 1.10;

/// The repetitions of one contestant in one cell.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// Workload id.
    pub workload: String,
    /// Contestant name.
    pub contestant: String,
    /// Threads.
    pub threads: usize,
    /// Operations per repetition.
    pub ops: u64,
    /// Nanoseconds of wall time per operation, one per repetition.
    pub ns_per_op: Vec<f64>,
}

/// Peak resident memory of one contestant on one workload, measured in a
/// child process that ran only it.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// Workload id.
    pub workload: String,
    /// Contestant name.
    pub contestant: String,
    /// Threads of the measured run.
    pub threads: usize,
    /// The child's peak RSS (VmHWM) before the run, KiB.
    pub start_kib: u64,
    /// The child's peak RSS after the run, KiB.
    pub peak_kib: u64,
}

impl Memory {
    /// Growth of the peak over the child's start, MiB.
    pub fn growth_mib(&self) -> f64 {
        self.peak_kib.saturating_sub(self.start_kib) as f64 / 1024.0
    }
}

/// Latency percentiles of one contestant, per operation of a timed batch.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Workload id.
    pub workload: String,
    /// Contestant name.
    pub contestant: String,
    /// Operations per timed batch.
    pub batch: usize,
    /// Timed batches.
    pub samples: usize,
    /// Median, ns per operation.
    pub p50: f64,
    /// 99th percentile, ns per operation.
    pub p99: f64,
    /// 99.9th percentile, ns per operation.
    pub p999: f64,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// The command line that produced the results.
    pub command: String,
    /// Repetitions per figure.
    pub reps: usize,
    /// Target wall time of one repetition, ms.
    pub rep_ms: u64,
    /// Median cost of one timer read pair, ns.
    pub timer_overhead_ns: f64,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// The workloads, in report order.
    pub workloads: Vec<Info>,
    /// Every timed cell.
    pub timings: Vec<Timing>,
    /// Peak memory per workload and contestant.
    pub memory: Vec<Memory>,
    /// Latency percentiles.
    pub latency: Vec<Latency>,
    /// Memory over time, per memory workload and allocator.
    pub rss: Vec<RssRun>,
}

/// One contestant's line in a workload's table.
#[derive(Debug)]
pub struct Row {
    /// Contestant name.
    pub contestant: String,
    /// Per thread count of the table: (median ns/op, spread %), if run.
    pub ns: Vec<Option<(f64, f64)>>,
    /// Per thread count: median time over the best median (1 = best).
    pub ratio: Vec<Option<f64>>,
    /// Geometric mean of the ratios: the contestant's score (lower wins).
    pub score: f64,
    /// Peak RSS growth, MiB, if measured.
    pub rss_mib: Option<f64>,
}

/// A workload's results, rows best first, and what they recommend.
#[derive(Debug)]
pub struct Table {
    /// The workload.
    pub info: Info,
    /// Thread counts (columns).
    pub threads: Vec<usize>,
    /// Contestants, best score first.
    pub rows: Vec<Row>,
    /// The recommended contestant.
    pub pick: String,
    /// The recommendation in words, derived from the rows.
    pub advice: String,
}

/// Builds the table of one workload (`None` if nothing was timed).
pub fn analyse(r: &Results, info: &Info) -> Option<Table> {
    let timings: Vec<&Timing> = r.timings.iter().filter(|t| t.workload == info.id).collect();
    let mut threads: Vec<usize> = timings.iter().map(|t| t.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut names: Vec<&str> = Vec::new();
    for t in &timings {
        if !names.contains(&t.contestant.as_str()) {
            names.push(&t.contestant);
        }
    }
    if names.is_empty() {
        return None;
    }
    let cell = |name: &str, th: usize| {
        timings
            .iter()
            .find(|t| t.contestant == name && t.threads == th)
            .map(|t| (median(&t.ns_per_op), spread_pct(&t.ns_per_op)))
    };
    let best: Vec<f64> = threads
        .iter()
        .map(|&th| {
            names
                .iter()
                .filter_map(|n| cell(n, th).map(|c| c.0))
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let mut rows: Vec<Row> = names
        .iter()
        .map(|&name| {
            let ns: Vec<_> = threads.iter().map(|&th| cell(name, th)).collect();
            let ratio: Vec<Option<f64>> = ns
                .iter()
                .zip(&best)
                .map(|(c, b)| c.map(|(m, _)| m / b))
                .collect();
            let logs: Vec<f64> = ratio.iter().flatten().map(|x| x.ln()).collect();
            let score = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
            // Measured at the largest thread count (the seed workloads
            // measure at each).
            let rss_mib = r
                .memory
                .iter()
                .filter(|m| m.workload == info.id && m.contestant == name)
                .max_by_key(|m| m.threads)
                .map(Memory::growth_mib);
            Row {
                contestant: name.to_string(),
                ns,
                ratio,
                score,
                rss_mib,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.score.total_cmp(&b.score));
    let (pick, advice) = recommend(&rows, &threads);
    Some(Table {
        info: info.clone(),
        threads,
        rows,
        pick,
        advice,
    })
}

/// The recommendation from rows sorted best first: the contenders are the
/// rows whose score is within [`CONTENDER`] of the best; among several,
/// the one whose peak RSS grew least wins (the fastest when memory was
/// not measured).
fn recommend(rows: &[Row], threads: &[usize]) -> (String, String) {
    let best = &rows[0];
    let contenders: Vec<&Row> = rows
        .iter()
        .take_while(|r| r.score <= best.score * CONTENDER)
        .collect();
    let pick = contenders
        .iter()
        .filter(|r| r.rss_mib.is_some())
        .min_by(|a, b| {
            a.rss_mib
                .unwrap_or(0.0)
                .total_cmp(&b.rss_mib.unwrap_or(0.0))
        })
        .copied()
        .unwrap_or(best);
    let over = match threads {
        [t] => format!("at {t} thread{}", if *t == 1 { "" } else { "s" }),
        ts => format!(
            "over {} thread counts ({})",
            ts.len(),
            ts.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut text = format!(
        "**{}**: its time per operation is {:.2}x the best on geometric mean {over}",
        pick.contestant, pick.score
    );
    if contenders.len() > 1 {
        let others: Vec<String> = contenders
            .iter()
            .filter(|r| r.contestant != pick.contestant)
            .map(|r| format!("{} ({:.2}x)", r.contestant, r.score))
            .collect();
        let _ = write!(
            text,
            "; {} within {:.0}% of the fastest",
            others.join(", "),
            (CONTENDER - 1.0) * 100.0
        );
        if let Some(m) = pick.rss_mib {
            let _ = write!(
                text,
                ", and {} grew its peak RSS least ({m:.1} MiB)",
                pick.contestant
            );
        }
    } else if let Some(second) = rows.get(1) {
        let _ = write!(
            text,
            "; the next, {}, takes {:.2}x its time",
            second.contestant,
            second.score / pick.score
        );
    }
    if let Some(worst) = rows.last().filter(|w| rows.len() > 2 && w.score > 2.0) {
        let _ = write!(
            text,
            ". Avoid {} ({:.1}x the best)",
            worst.contestant, worst.score
        );
    }
    text.push('.');
    (pick.contestant.clone(), text)
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0} us", ns / 1000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0}")
    } else {
        format!("{ns:.1}")
    }
}

/// A workload's table in Markdown.
pub fn table_markdown(t: &Table) -> String {
    let mut s = String::from("| contestant |");
    for th in &t.threads {
        let _ = write!(s, " {th} thr: ns/op (x best) |");
    }
    s.push_str(" score (geomean x best) | peak RSS growth, MiB |\n|---|");
    s.push_str(&"---|".repeat(t.threads.len() + 2));
    s.push('\n');
    for r in &t.rows {
        let name = if r.contestant == t.pick {
            format!("**{}**", r.contestant)
        } else {
            r.contestant.clone()
        };
        let _ = write!(s, "| {name} |");
        for (c, ratio) in r.ns.iter().zip(&r.ratio) {
            match (c, ratio) {
                (Some((m, sp)), Some(x)) => {
                    let _ = write!(s, " {} ±{sp:.0}% ({x:.2}) |", fmt_ns(*m));
                }
                _ => s.push_str(" - |"),
            }
        }
        let rss = r.rss_mib.map_or("-".to_string(), |m| format!("{m:.1}"));
        let _ = writeln!(s, " {:.2} | {rss} |", r.score);
    }
    s
}

/// The contestants of the headline table's columns: each is the best
/// scoring row whose name matches one of the prefixes.
const HEADLINE: [(&str, &[&str]); 4] = [
    ("hotpool", &["hotpool::Pool", "HotAlloc", "Shared/Weak"]),
    ("system", &["system"]),
    ("mimalloc", &["mimalloc"]),
    ("jemalloc", &["jemalloc"]),
];

/// The headline table: per workload the recommendation, the fastest
/// figure, and the score of hotpool and the general allocators.
pub fn headline(tables: &[Table]) -> String {
    let mut s = String::from("| workload | recommended | fastest, ns/op (threads) |");
    for (col, _) in HEADLINE {
        let _ = write!(s, " {col} x best |");
    }
    s.push_str("\n|---|---|---|");
    s.push_str(&"---|".repeat(HEADLINE.len()));
    s.push('\n');
    for t in tables {
        let (ns, th) = t
            .rows
            .iter()
            .flat_map(|r| {
                r.ns.iter()
                    .zip(&t.threads)
                    .filter_map(|(c, th)| c.map(|c| (c.0, *th)))
            })
            .filter(|&(_, th)| th == t.threads[0])
            .fold((f64::INFINITY, 0), |a, b| if b.0 < a.0 { b } else { a });
        let _ = write!(s, "| {} | {} | {} ({th}) |", t.info.id, t.pick, fmt_ns(ns));
        for (_, prefixes) in HEADLINE {
            let row = t
                .rows
                .iter()
                .find(|r| prefixes.iter().any(|p| r.contestant.starts_with(p)));
            match row {
                Some(r) if prefixes.len() > 1 => {
                    let _ = write!(s, " {:.2} ({}) |", r.score, r.contestant);
                }
                Some(r) => {
                    let _ = write!(s, " {:.2} |", r.score);
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s
}

/// The contestants of the peak-RSS table: hotpool's allocator, and the
/// two peers it is held to.
const PEAK: [&str; 3] = ["HotAlloc", "system", "mimalloc"];

/// hotpool's peak RSS against glibc's and mimalloc's: a row per
/// (workload, threads) where all three were measured, in workload order,
/// with the ratio to the lower of the two peaks (and of the two growths)
/// and HotAlloc's time over the best other general allocator's in the
/// same cell. Empty when there is no such row.
pub fn peak_markdown(r: &Results) -> String {
    let mut s = String::new();
    for info in &r.workloads {
        let mut threads: Vec<usize> = r
            .memory
            .iter()
            .filter(|m| m.workload == info.id)
            .map(|m| m.threads)
            .collect();
        threads.sort_unstable();
        threads.dedup();
        for th in threads {
            let mem = |name: &str| {
                r.memory
                    .iter()
                    .find(|m| m.workload == info.id && m.threads == th && m.contestant == name)
            };
            let [Some(hot), Some(sys), Some(mi)] = PEAK.map(mem) else {
                continue;
            };
            let time = |name: &str| {
                r.timings
                    .iter()
                    .find(|t| t.workload == info.id && t.threads == th && t.contestant == name)
                    .map(|t| median(&t.ns_per_op))
            };
            let peers = ["system", "mimalloc", "jemalloc"]
                .into_iter()
                .filter_map(time)
                .fold(f64::INFINITY, f64::min);
            let speed = time("HotAlloc")
                .filter(|_| peers.is_finite())
                .map_or("-".to_string(), |h| format!("{:.2}", h / peers));
            let lower = sys.peak_kib.min(mi.peak_kib) as f64;
            let lower_growth = sys.growth_mib().min(mi.growth_mib());
            let growth = if lower_growth > 0.0 {
                format!("{:.2}", hot.growth_mib() / lower_growth)
            } else {
                "-".to_string()
            };
            if s.is_empty() {
                s.push_str(
                    "| workload | threads | HotAlloc peak, MiB (growth) | system | mimalloc | \
                     HotAlloc / lower peak | HotAlloc / lower growth | HotAlloc time / best peer |\n\
                     |---|---|---|---|---|---|---|---|\n",
                );
            }
            let cell =
                |m: &Memory| format!("{:.1} ({:.1})", m.peak_kib as f64 / 1024.0, m.growth_mib());
            let _ = writeln!(
                s,
                "| {} | {th} | {} | {} | {} | {:.2} | {growth} | {speed} |",
                info.id,
                cell(hot),
                cell(sys),
                cell(mi),
                hot.peak_kib as f64 / lower
            );
        }
    }
    s
}

/// The file name stem of a workload id.
pub fn slug(id: &str) -> String {
    id.replace('/', "-")
}

fn plot_err<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

/// Draws `series` (name, y per x index) on a log-scale y axis with the
/// x axis labelled by `xs`.
fn line_plot(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    xs: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> io::Result<()> {
    let ys = series.iter().flat_map(|s| s.1.iter().flatten().copied());
    let (lo, hi) = ys.fold((f64::INFINITY, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if lo.is_finite() && lo > 0.0 {
        (lo / 1.5, hi * 1.5)
    } else {
        (0.1, 10.0)
    };
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    // The legend gets its own column, right of the chart, so it hides no line.
    let (root, legend) = root.split_horizontally(760);
    let last = xs.len().saturating_sub(1).max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.2f64..last + 0.2, (lo..hi).log_scale())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_labels(xs.len().max(2))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                xs.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(x_desc)
        .y_desc(y_desc)
        // Enough key points that a range within one decade still gets
        // labels (plotters' log axis otherwise labels powers of ten only).
        .y_labels(12)
        .y_label_formatter(&|y| {
            format!("{:.3}", y)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string()
        })
        .draw()
        .map_err(plot_err)?;
    for (i, (name, ys)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = ys
            .iter()
            .enumerate()
            .filter_map(|(x, y)| y.map(|y| (x as f64, y)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_err)?;
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(plot_err)?;
        let y = 50 + 22 * i as i32;
        legend
            .draw(&PathElement::new(
                vec![(8, y), (30, y)],
                color.stroke_width(3),
            ))
            .map_err(plot_err)?;
        legend
            .draw(&Text::new(name.as_str(), (36, y - 7), ("sans-serif", 14)))
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)
}

/// Throughput against thread count, one line per contestant.
fn throughput_plot(dir: &Path, t: &Table) -> io::Result<PathBuf> {
    let path = dir.join(format!("throughput-{}.svg", slug(&t.info.id)));
    let xs: Vec<String> = t.threads.iter().map(|t| t.to_string()).collect();
    let series: Vec<(String, Vec<Option<f64>>)> = t
        .rows
        .iter()
        .map(|r| {
            let mops = r.ns.iter().map(|c| c.map(|(m, _)| 1e3 / m)).collect();
            (r.contestant.clone(), mops)
        })
        .collect();
    line_plot(
        &path,
        &format!("{}: throughput (one operation: {})", t.info.id, t.info.unit),
        ("threads", "million operations per second (log)"),
        &xs,
        &series,
    )?;
    Ok(path)
}

/// Latency percentiles of one workload, one line per contestant.
fn latency_plot(dir: &Path, id: &str, lat: &[&Latency]) -> io::Result<PathBuf> {
    let path = dir.join(format!("latency-{}.svg", slug(id)));
    let xs = ["p50", "p99", "p99.9"].map(String::from);
    let series: Vec<(String, Vec<Option<f64>>)> = lat
        .iter()
        .map(|l| {
            (
                l.contestant.clone(),
                vec![Some(l.p50), Some(l.p99), Some(l.p999)],
            )
        })
        .collect();
    let batch = lat.first().map_or(0, |l| l.batch);
    line_plot(
        &path,
        &format!("{id}: latency per operation, batches of {batch}"),
        ("percentile of batches", "ns per operation (log)"),
        &xs,
        &series,
    )?;
    Ok(path)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The table of a memory workload: per allocator, RSS before the burst,
/// at the peak and at each of [`AFTER_S`] after the frees ended, MiB.
pub fn rss_markdown(runs: &[&RssRun]) -> String {
    let mut s = String::from("| allocator | before the burst | peak |");
    for a in AFTER_S {
        let _ = write!(s, " {a:.0} s after the frees |");
    }
    s.push_str(" frees took, ms |\n|---|---|---|");
    s.push_str(&"---|".repeat(AFTER_S.len() + 1));
    s.push('\n');
    for r in runs {
        let _ = write!(
            s,
            "| {} | {} | {} |",
            r.contestant,
            mib(r.before_kib()),
            mib(r.peak_kib())
        );
        for a in AFTER_S {
            let _ = write!(s, " {} |", mib(r.after_kib(a)));
        }
        let _ = writeln!(s, " {:.0} |", (r.freed_s - r.free_s) * 1000.0);
    }
    s
}

/// The memory-over-time plot of one workload: RSS against seconds since
/// the burst started, a line per allocator, the frees shaded and each
/// allocator's start and end of the frees circled on its line.
pub fn rss_plot(id: &str, runs: &[&RssRun]) -> String {
    let on_line = |r: &RssRun, t: f64| {
        let i = r.samples.partition_point(|s| s.0 < t);
        r.samples
            .get(i.min(r.samples.len().saturating_sub(1)))
            .map(|s| (t, s.1 as f64 / 1024.0))
    };
    let series = runs
        .iter()
        .map(|r| Series {
            name: r.contestant.clone(),
            points: r
                .samples
                .iter()
                .map(|&(t, k)| (t, k as f64 / 1024.0))
                .collect(),
            marks: [r.free_s, r.freed_s]
                .into_iter()
                .filter_map(|t| on_line(r, t))
                .collect(),
        })
        .collect();
    let spans = match runs.first() {
        Some(first) => {
            let (a, b) = runs
                .iter()
                .fold((first.free_s, first.freed_s), |(a, b), r| {
                    (a.min(r.free_s), b.max(r.freed_s))
                });
            vec![(a, b, "frees".to_string())]
        }
        None => Vec::new(),
    };
    let about = runs.first().map_or(String::new(), |r| {
        format!(
            ": {} blocks, {} s idle",
            r.burst.blocks,
            r.burst.idle_ms / 1000
        )
    });
    Plot {
        title: format!("{id}: resident memory over time{about}"),
        x_desc: "seconds since the burst started (circles: each allocator's frees begin, end)"
            .into(),
        y_desc: "RSS, MiB".into(),
        spans,
        series,
    }
    .render()
}

/// Writes `report.md`, `results.json` and the plots into `dir`; returns
/// the files written and the headline table.
pub fn write_all(r: &Results, dir: &Path) -> io::Result<(Vec<PathBuf>, String)> {
    std::fs::create_dir_all(dir)?;
    let tables: Vec<Table> = r.workloads.iter().filter_map(|i| analyse(r, i)).collect();
    let mut files = Vec::new();
    let mut md = String::new();
    let m = &r.machine;
    // The summary: the headline table if anything was timed.
    let mut head = if tables.is_empty() {
        String::new()
    } else {
        headline(&tables)
    };
    let _ = write!(
        md,
        "# hotpool: allocators and pools compared\n\n\
         Produced by `{}` in {:.0} s.\n\n\
         ## Machine\n\n\
         - CPU: {} ({} logical CPUs available)\n- Memory: {:.1} GiB\n- Kernel: {}\n\
         - Load average at the start (1, 5, 15 min): {}\n\n\
         ## Method\n\n\
         - All contestants run in one process, interleaved: each repetition runs every \
         contestant of a cell once, in turn, so slow phases of a busy machine hit all of them. \
         Before the repetitions, each contestant runs once untimed (warm-up) to size the work \
         so that a repetition takes about {} ms.\n\
         - Each figure is the median of {} repetitions; `±` is half their range relative to the \
         median. `x best` is the median time over the best median of that column (1.00 = best). \
         The score is the geometric mean of a contestant's `x best` over the thread counts.\n\
         - Allocators are called explicitly (`GlobalAlloc` or allocator-api2), none is installed \
         as the global allocator, except in the seed workloads (`seed/...`): those are plain std \
         programs, run in a child process per contestant (this program re-executed) whose \
         global allocator the contestant is; per thread count the work is sized on the system \
         allocator, then each repetition starts one child per contestant, in turn, which runs \
         the work once untimed and once timed and reports its VmHWM; the figure is the median \
         child's. This program's global allocator dispatches on a choice made once per process \
         (a jump through a table per call, always to the same place; the same for every \
         contestant).\n\
         - Peak RSS growth: each (workload, contestant) runs once more, alone, in a child process \
         (this program re-executed), at the largest thread count with the work of one \
         repetition; the figure is the child's VmHWM after the run minus its VmHWM before it.\n\
         - Latency: batches of operations timed with `Instant`; a timer read pair costs {:.0} ns \
         (median), included in every batch time, not subtracted.\n\
         - Recommendation rule: the contestants whose score is within {:.0}% of the best are \
         contenders; of several, the one whose peak RSS grew least is recommended.\n\
         - Memory over time (workloads `memory/...`): each allocator runs in a child process \
         (this program re-executed) that calls it explicitly through `GlobalAlloc` for a burst \
         whose blocks chain themselves (no other bookkeeping), then frees it and makes no \
         allocator call at all; this process samples the child's RSS from `/proc/PID/statm` \
         and ends the child after the idle period.\n\n\
         ## Summary\n\n{}\n",
        r.command,
        r.seconds,
        m.cpu,
        m.cpus,
        m.memory_gib,
        m.kernel,
        m.load,
        r.rep_ms,
        r.reps,
        r.timer_overhead_ns,
        (CONTENDER - 1.0) * 100.0,
        if head.is_empty() {
            "Nothing timed in this run.\n"
        } else {
            head.as_str()
        },
    );
    md.push_str("## Workloads\n\n");
    for t in &tables {
        let _ = write!(
            md,
            "### {}\n\n{}. One operation: {}.\n\n{}\nRecommendation: {}\n\n",
            t.info.id,
            t.info.about,
            t.info.unit,
            table_markdown(t),
            t.advice
        );
        if t.threads.len() > 1 {
            let p = throughput_plot(dir, t)?;
            let _ = write!(md, "![throughput of {}]({})\n\n", t.info.id, file_name(&p));
            files.push(p);
        }
        let lat: Vec<&Latency> = r
            .latency
            .iter()
            .filter(|l| l.workload == t.info.id)
            .collect();
        if let Some(first) = lat.first() {
            let _ = write!(
                md,
                "Latency in ns per operation, from {} timed batches of {} operations \
                 (pairs: one thread's alloc + free pairs; producer/consumer: the producer's \
                 allocations and the consumer's frees, both sides' batches together; timer \
                 overhead {:.1} ns per operation):\n\n\
                 | contestant | p50 | p99 | p99.9 |\n|---|---|---|---|\n",
                first.samples,
                first.batch,
                r.timer_overhead_ns / first.batch as f64
            );
            for l in &lat {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    l.contestant,
                    fmt_ns(l.p50),
                    fmt_ns(l.p99),
                    fmt_ns(l.p999)
                );
            }
            let p = latency_plot(dir, &t.info.id, &lat)?;
            let _ = write!(md, "\n![latency of {}]({})\n\n", t.info.id, file_name(&p));
            files.push(p);
        }
    }
    let memory: Vec<&Info> = r
        .workloads
        .iter()
        .filter(|i| r.rss.iter().any(|x| x.workload == i.id))
        .collect();
    if !memory.is_empty() {
        md.push_str("## Memory over time\n\n");
    }
    for info in memory {
        let runs: Vec<&RssRun> = r.rss.iter().filter(|x| x.workload == info.id).collect();
        let p = dir.join(format!("{}.svg", slug(&info.id)));
        std::fs::write(&p, rss_plot(&info.id, &runs))?;
        let table = rss_markdown(&runs);
        let _ = write!(
            md,
            "### {}\n\n{}.\n\nRSS in MiB:\n\n{table}\n![memory over time of {}]({})\n\n",
            info.id,
            info.about,
            info.id,
            file_name(&p)
        );
        let _ = write!(head, "\n{}, RSS in MiB:\n\n{table}", info.id);
        files.push(p);
    }
    let peaks = peak_markdown(r);
    if !peaks.is_empty() {
        let _ = write!(
            md,
            "## Peak RSS against glibc and mimalloc\n\n\
             Peak RSS (VmHWM) of the child processes in MiB, with its growth over the child's \
             start in parentheses; the ratios are HotAlloc's over the lower of system's and \
             mimalloc's, and HotAlloc's median time over the best of system, mimalloc and \
             jemalloc in the same cell.\n\n{peaks}\n"
        );
        let _ = write!(head, "\nPeak RSS against glibc and mimalloc:\n\n{peaks}");
    }
    let report = dir.join("report.md");
    std::fs::write(&report, md)?;
    files.push(report);
    let json = dir.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(r).map_err(plot_err)?)?;
    files.push(json);
    Ok((files, head))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}
