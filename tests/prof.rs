//! `HOTPOOL_CONF=prof:true`: a heap profile that jemalloc's `jeprof` reads
//! and that attributes live bytes to the right functions.
//!
//! A child process (this test binary again, running
//! `child_keeps_80_mib_live`, with [`HotAlloc`] as its global allocator and
//! `prof:true,lg_prof_sample:14`) keeps 80 MiB live in blocks of at most
//! 1 KiB from three functions, 60/30/10 of the bytes, and dumps a profile;
//! `jeprof --text` must give each function its share within 5 percentage
//! points. The binary is built with default flags (no frame pointers). If
//! `jeprof` (Debian: libjemalloc-dev) is missing the test says so and
//! passes without checking.

#![cfg(target_os = "linux")]

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use hotpool::HotAlloc;

#[global_allocator]
static GLOBAL: HotAlloc = HotAlloc;

const MIB: usize = 1 << 20;

/// Keeps `bytes` live in blocks of `block` bytes filled with `fill`.
fn blocks(bytes: usize, block: usize, fill: u8) -> Vec<Box<[u8]>> {
    let mut kept = Vec::with_capacity(bytes / block);
    for _ in 0..bytes / block {
        kept.push(black_box(vec![fill; block].into_boxed_slice()));
    }
    kept
}

#[inline(never)]
fn sixty_percent_site(bytes: usize) -> Vec<Box<[u8]>> {
    black_box(blocks(bytes, 512, 0x60))
}

#[inline(never)]
fn thirty_percent_site(bytes: usize) -> Vec<Box<[u8]>> {
    black_box(blocks(bytes, 256, 0x30))
}

#[inline(never)]
fn ten_percent_site(bytes: usize) -> Vec<Box<[u8]>> {
    black_box(blocks(bytes, 1024, 0x10))
}

#[test]
#[ignore = "the child process of jeprof_attributes_live_bytes_60_30_10"]
fn child_keeps_80_mib_live() {
    let path = std::env::var("PROF_TEST_DUMP").unwrap();
    // Interleaved, so that no function owns a run of fresh pages alone.
    let mut kept = Vec::new();
    for _ in 0..8 {
        kept.push(sixty_percent_site(6 * MIB));
        kept.push(thirty_percent_site(3 * MIB));
        kept.push(ten_percent_site(MIB));
    }
    // Garbage that is freed again must not show.
    for _ in 0..4 {
        drop(black_box(sixty_percent_site(8 * MIB)));
    }
    hotpool::prof::dump(&path).unwrap();
    println!("dumped {path}");
    drop(kept);
}

/// The `cum%` column of `jeprof --text`'s line for `function`.
fn cum_percent(text: &str, function: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 6 && f[5..].join(" ").contains(function))
            .then(|| f[4].trim_end_matches('%').parse().ok())
            .flatten()
    })
}

#[test]
fn jeprof_attributes_live_bytes_60_30_10() {
    if Command::new("jeprof").arg("--version").output().is_err() {
        eprintln!("jeprof not found (Debian: apt-get install libjemalloc-dev): skipped");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("hotpool-prof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("test.heap");
    let out = Command::new(&exe)
        .args([
            "child_keeps_80_mib_live",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("HOTPOOL_CONF", "prof:true,lg_prof_sample:14")
        .env("PROF_TEST_DUMP", &dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = jeprof_text(&exe, &dump);
    let _ = std::fs::remove_dir_all(&dir);
    for (function, want) in [
        ("sixty_percent_site", 60.0),
        ("thirty_percent_site", 30.0),
        ("ten_percent_site", 10.0),
    ] {
        let got = cum_percent(&text, function)
            .unwrap_or_else(|| panic!("{function} missing from jeprof's output:\n{text}"));
        assert!(
            (got - want).abs() <= 5.0,
            "{function}: {got}% of live bytes, want {want}% +- 5:\n{text}"
        );
    }
}

fn jeprof_text(exe: &Path, dump: &Path) -> String {
    let out = Command::new("jeprof")
        .args(["--text", "--nodefraction=0", "--nodecount=1000"])
        .arg(exe)
        .arg(dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "jeprof failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
