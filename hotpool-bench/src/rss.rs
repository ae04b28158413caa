//! Memory over time: a child process makes a burst of allocations through
//! one allocator, holds them briefly, frees them and then stays idle (no
//! allocator calls at all), while this process samples the child's
//! resident memory from `/proc/PID/statm`. Linux only, like the rest of
//! the report.
//!
//! The child calls its allocator explicitly through `GlobalAlloc`, as the
//! other workloads do, on the default global allocator (the system's; see
//! `crate::global`), so the burst's blocks are the only ones its
//! allocator holds. The burst keeps no bookkeeping of its own: each block holds the link to the
//! next one and its own size, so the blocks are the only memory the burst
//! moves, and the child makes no allocation between the marks it prints.

use std::alloc::{handle_alloc_error, GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::ptr::null_mut;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hotpool::HotAlloc;
use serde::Serialize;

use crate::workloads::Info;

/// The allocators measured, in report order.
pub const CONTESTANTS: [&str; 4] = ["HotAlloc", "system", "mimalloc", "jemalloc"];

/// Seconds after the end of the frees at which the table reads RSS.
pub const AFTER_S: [f64; 4] = [0.0, 1.0, 10.0, 30.0];

/// The child's quiet time before the burst, which gives the baseline.
const BEFORE: Duration = Duration::from_millis(300);

/// How long a child outlives its idle period if this process, which ends
/// it, has died.
const LINGER: Duration = Duration::from_secs(10);

/// Sampling interval until [`FAST_FOR`] after the frees ended.
const FAST: Duration = Duration::from_millis(10);
/// How long after the frees the fast sampling goes on.
const FAST_FOR: Duration = Duration::from_secs(2);
/// Sampling interval after that.
const SLOW: Duration = Duration::from_millis(50);

/// What a child does: `blocks` allocations, a hold, the frees in
/// allocation order, an idle period.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Burst {
    /// Blocks allocated.
    pub blocks: u64,
    /// Block sizes from 16 B to 1 KiB (each doubling equally likely,
    /// uniform within it) instead of 64 B each.
    pub mixed: bool,
    /// Time between the last allocation and the first free, ms.
    pub hold_ms: u64,
    /// Time sampled after the last free, ms.
    pub idle_ms: u64,
}

impl Burst {
    /// The burst of memory workload `id` (`None` for other workloads).
    pub fn of(id: &str, quick: bool) -> Option<Burst> {
        let (blocks, mixed) = match id {
            "memory/64" => (if quick { 1 << 18 } else { 1 << 22 }, false),
            "memory/mixed" => (if quick { 1 << 16 } else { 1 << 20 }, true),
            _ => return None,
        };
        Some(Burst {
            blocks,
            mixed,
            hold_ms: if quick { 200 } else { 500 },
            idle_ms: if quick { 3_000 } else { 30_000 },
        })
    }

    /// The arguments of the hidden `--memory-cell` mode, after the
    /// contestant's name.
    pub fn args(&self) -> [String; 4] {
        [
            self.blocks.to_string(),
            u8::from(self.mixed).to_string(),
            self.hold_ms.to_string(),
            self.idle_ms.to_string(),
        ]
    }

    /// Parses what [`Burst::args`] wrote.
    pub fn parse(args: &[String]) -> Result<Burst, String> {
        let num = |i: usize| -> Result<u64, String> {
            args.get(i)
                .and_then(|a| a.parse().ok())
                .ok_or(format!("--memory-cell: argument {} is not a count", i + 2))
        };
        Ok(Burst {
            blocks: num(0)?,
            mixed: num(1)? != 0,
            hold_ms: num(2)?,
            idle_ms: num(3)?,
        })
    }

    fn sizes(&self) -> &'static str {
        if self.mixed {
            "16 B-1 KiB (each doubling equally likely)"
        } else {
            "64 B"
        }
    }
}

/// The memory workloads of a run, for the report (none but on Linux,
/// where `/proc/PID/statm` gives a process's RSS).
pub fn infos(quick: bool) -> Vec<Info> {
    if !cfg!(target_os = "linux") {
        return Vec::new();
    }
    ["memory/64", "memory/mixed"]
        .into_iter()
        .map(|id| {
            let b = Burst::of(id, quick).expect("a memory workload");
            Info {
                id: id.into(),
                unit: "sample of RSS".into(),
                about: format!(
                    "a child process allocates {} blocks of {} through one allocator, writing \
                     every byte, holds them {} ms, frees them in allocation order and then makes \
                     no allocator call for {} s; this process reads the child's RSS from \
                     /proc/PID/statm every {} ms (every {} ms from {} s after the frees)",
                    b.blocks,
                    b.sizes(),
                    b.hold_ms,
                    b.idle_ms / 1000,
                    FAST.as_millis(),
                    SLOW.as_millis(),
                    FAST_FOR.as_secs()
                ),
            }
        })
        .collect()
}

/// The first words of every block of a burst: blocks are chained in
/// allocation order, each with its size.
#[repr(C)]
struct Link {
    next: *mut Link,
    size: usize,
}

/// Tells the parent that a phase starts: one `write` to stdout, no
/// allocation.
fn mark(line: &'static [u8]) {
    // SAFETY: `line` is valid for `line.len()` bytes; a short or failed
    // write loses a mark, which the parent reports.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

/// The size of a block of a mixed burst from a random number: 16 B to
/// 1 KiB, each doubling equally likely, uniform within it.
pub fn mixed_size(r: u64) -> usize {
    let low = 16usize << (r % 6);
    low + (r >> 8) as usize % low
}

/// Allocates the burst's blocks through `a`, writing every byte, and
/// returns the first of the chain.
fn burst<A: GlobalAlloc>(a: &A, b: &Burst) -> *mut Link {
    let (mut head, mut tail) = (null_mut::<Link>(), null_mut::<Link>());
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..b.blocks {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let size = if b.mixed { mixed_size(rng) } else { 64 };
        let layout = Layout::from_size_align(size, 8).expect("a valid layout");
        // SAFETY: `layout` has a non-zero size.
        let p = unsafe { a.alloc(layout) };
        if p.is_null() {
            handle_alloc_error(layout)
        }
        let link = p.cast::<Link>();
        // SAFETY: `p` is a new block of `size` >= 16 bytes aligned to 8,
        // room for a `Link`; `tail`, if not null, is the previous block of
        // the chain, still live.
        unsafe {
            p.write_bytes(0x5a, size);
            link.write(Link {
                next: null_mut(),
                size,
            });
            if tail.is_null() {
                head = link;
            } else {
                (*tail).next = link;
            }
        }
        tail = link;
    }
    head
}

/// Frees the chain made by [`burst`] through the same allocator, first
/// block first.
fn free_all<A: GlobalAlloc>(a: &A, mut p: *mut Link) {
    while !p.is_null() {
        // SAFETY: `p` is a live block of the chain, allocated by `a` with
        // `(*p).size` bytes aligned to 8; its link is read before it is
        // freed, and it is not touched again.
        unsafe {
            let Link { next, size } = p.read();
            a.dealloc(p.cast(), Layout::from_size_align_unchecked(size, 8));
            p = next;
        }
    }
}

fn run_child<A: GlobalAlloc>(a: &A, b: &Burst) {
    mark(b"@rss start\n");
    thread::sleep(BEFORE);
    mark(b"@rss burst\n");
    let chain = burst(a, b);
    mark(b"@rss hold\n");
    thread::sleep(Duration::from_millis(b.hold_ms));
    mark(b"@rss free\n");
    free_all(a, chain);
    mark(b"@rss freed\n");
    // The parent ends this process once it has sampled the idle period.
    thread::sleep(Duration::from_millis(b.idle_ms) + LINGER);
}

/// Child mode: runs burst `b` through allocator `name`, printing a mark
/// line at each phase.
pub fn child(name: &str, b: &Burst) -> Result<(), String> {
    match name {
        "HotAlloc" => run_child(&HotAlloc, b),
        "system" => run_child(&System, b),
        "mimalloc" => run_child(&mimalloc::MiMalloc, b),
        "jemalloc" => run_child(&tikv_jemallocator::Jemalloc, b),
        other => return Err(format!("no allocator '{other}'")),
    }
    Ok(())
}

/// One allocator's resident memory through a burst.
#[derive(Clone, Debug, Serialize)]
pub struct RssRun {
    /// Workload id.
    pub workload: String,
    /// Contestant name.
    pub contestant: String,
    /// What the child did.
    pub burst: Burst,
    /// When the burst ended, seconds since it started.
    pub hold_s: f64,
    /// When the frees started, seconds since the burst started.
    pub free_s: f64,
    /// When the frees ended, seconds since the burst started.
    pub freed_s: f64,
    /// (seconds since the burst started, RSS in KiB), in time order; the
    /// ones before the burst are negative.
    pub samples: Vec<(f64, u64)>,
}

impl RssRun {
    /// RSS just before the burst, KiB.
    pub fn before_kib(&self) -> Option<u64> {
        self.samples
            .iter()
            .take_while(|s| s.0 < 0.0)
            .last()
            .map(|s| s.1)
    }

    /// The highest RSS sampled, KiB.
    pub fn peak_kib(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.1).max()
    }

    /// RSS `secs` after the frees ended (the first sample at or after
    /// then), KiB; `None` when the run ended sooner.
    pub fn after_kib(&self, secs: f64) -> Option<u64> {
        let t = self.freed_s + secs;
        self.samples.iter().find(|s| s.0 >= t).map(|s| s.1)
    }
}

/// The resident set of process `statm` (its `/proc/PID/statm`), KiB.
fn rss_kib(statm: &str, page_kib: u64) -> Option<u64> {
    let text = std::fs::read_to_string(statm).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // A child that has exited but is not yet reaped reads as 0.
    (pages > 0).then_some(pages * page_kib)
}

/// Runs `cmd` (a child in `--memory-cell` mode, or anything printing the
/// same marks) and samples its RSS until `idle_ms` after its frees, then
/// ends it.
pub fn measure(
    mut cmd: Command,
    workload: &str,
    contestant: &str,
    b: &Burst,
) -> Result<RssRun, String> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page_kib = u64::try_from(page).map_err(|_| "no page size")? / 1024;
    let t0 = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let statm = format!("/proc/{}/statm", child.id());
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(i) = line.find("@rss ") {
                let what = line[i + 5..].trim().to_string();
                if tx.send((what, t0.elapsed())).is_err() {
                    break;
                }
            }
        }
    });
    let idle = Duration::from_millis(b.idle_ms);
    let mut samples = Vec::new();
    let mut marks: Vec<(String, Duration)> = Vec::new();
    let status = loop {
        let now = t0.elapsed();
        if let Some(kib) = rss_kib(&statm, page_kib) {
            samples.push((now, kib));
        }
        marks.extend(rx.try_iter());
        let freed = marks.iter().find(|m| m.0 == "freed").map(|m| m.1);
        if freed.is_some_and(|f| now >= f + idle) {
            break None;
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status.to_string()),
            Ok(None) => {}
            Err(e) => break Some(e.to_string()),
        }
        thread::sleep(if freed.is_some_and(|f| now >= f + FAST_FOR) {
            SLOW
        } else {
            FAST
        });
    };
    // The child sleeps past its idle period: ending it is the protocol.
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    if let Some(status) = status {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("the child ended early ({status}): {}", err.trim()));
    }
    let at = |what: &str| {
        marks
            .iter()
            .find(|m| m.0 == what)
            .map(|m| m.1)
            .ok_or(format!("the child printed no '{what}' mark"))
    };
    // Samples before the child's first mark may be of the process before
    // it became this program.
    let began = at("start")?;
    if !samples.iter().any(|s| s.0 >= began) {
        return Err(format!("{statm} could not be read"));
    }
    let start = at("burst")?;
    let secs = |d: Duration| d.as_secs_f64() - start.as_secs_f64();
    Ok(RssRun {
        workload: workload.into(),
        contestant: contestant.into(),
        burst: *b,
        hold_s: secs(at("hold")?),
        free_s: secs(at("free")?),
        freed_s: secs(at("freed")?),
        samples: samples
            .into_iter()
            .filter(|s| s.0 >= began)
            .map(|(t, k)| (secs(t), k))
            .collect(),
    })
}
