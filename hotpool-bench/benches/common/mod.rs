//! Helpers shared by the benchmark binaries (not a benchmark itself).

/// Criterion options that take a value (so the value is not the filter).
pub const VALUE_OPTIONS: [&str; 17] = [
    "-c",
    "--color",
    "--colour",
    "-s",
    "--save-baseline",
    "-b",
    "--baseline",
    "--format",
    "--profile-time",
    "--load-baseline",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
];

/// Whether to run the memory part: only when benchmarking (`--bench`, as
/// `cargo bench` passes), not listing, and the filter (if any) mentions it.
pub fn memory_wanted() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return false;
    }
    let mut filter = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if VALUE_OPTIONS.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            filter = Some(a.as_str());
            break;
        }
    }
    filter.is_none_or(|f| f.contains("memory"))
}

/// The criterion settings every hotpool benchmark shares: short warm-up
/// and measurement so a whole binary runs in minutes on 2 cores. Callers
/// add their own settings, then `configure_from_args()` so the command line
/// wins.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(20)
}
