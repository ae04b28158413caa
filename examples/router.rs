//! A small message router, the workload hotpool was built for.
//!
//! Worker threads "receive" messages (each a header plus a chain of
//! fixed-size buffers, as in the Qpid Dispatch / Skupper router), route them
//! in batches to other workers, which check and free them. The same run is
//! made with hotpool's pools and with `Box` on the system allocator.
//!
//! Each message also carries a `Weak<Link>` to the link it was routed over.
//! Links are owned by the main thread alone (`Shared<Link>`, from a pool),
//! which closes and reopens them twice a second while messages still refer
//! to them: a message that arrives after its link closed finds
//! `Weak::upgrade` returning `None`, safely, although the link's memory was
//! freed and reused.
//!
//! What it prints: the message rate of each run, hotpool's pool statistics
//! table with every column explained, and the ratio of the two rates. The
//! comparison only means something when each worker has a CPU to itself:
//! the example says so when there are more workers than CPUs or when other
//! programs keep the CPUs busy.
//!
//! ```sh
//! cargo run --release --example router          # one worker per CPU (2 to 4), 3 s per run, 2 KiB messages
//! cargo run --release --example router -- --threads 8 --duration 5 --size 8192
//! cargo run --release --example router -- --duration 60 --metrics 9464   # then: curl http://127.0.0.1:9464/metrics
//! ```
//!
//! With `--metrics PORT` it also serves `hotpool::stats::prometheus()` at
//! `http://127.0.0.1:PORT/metrics` while it runs, for Prometheus or curl.

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

#[path = "shared/metrics_server.rs"]
mod metrics_server;
#[path = "shared/router_workload.rs"]
mod workload;
use workload::{run, Buffer, Heap, Message, Options, Pools, RunResult, BUFFER_SIZE};

struct Boxes;
impl Heap for Boxes {
    const NAME: &'static str = "Box (system allocator)";
    type Ptr<T: Send + 'static> = Box<T>;
    fn message(m: Message<Self>) -> Box<Message<Self>> {
        Box::new(m)
    }
    fn buffer(b: Buffer<Self>) -> Box<Buffer<Self>> {
        Box::new(b)
    }
}

/// CPUs this process may run on (1 if unknown).
fn cpus() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1-minute load average (runnable threads, averaged), if the OS says.
fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// What each column of `hotpool::stats::report()` means.
const COLUMNS: [(&str, &str); 11] = [
    (
        "pool",
        "the pool's name (PoolConfig::name), else its type's path",
    ),
    ("size", "bytes per object (size_of the type)"),
    ("in-use", "objects the program owns now"),
    (
        "local",
        "free objects in threads' own free lists, reused without a lock",
    ),
    (
        "depot",
        "free objects in the pool's shared depot, moved to threads in batches",
    ),
    (
        "chunk-free",
        "free slots left in the chunks (never handed out, or given back)",
    ),
    ("chunks", "chunks of objects the pool holds"),
    ("held", "memory the pool holds: chunks x chunk size"),
    (
        "to-depot",
        "batches of freed objects threads handed to the depot, cumulative",
    ),
    (
        "from-depot",
        "batches threads took from the depot, cumulative",
    ),
    (
        "contention",
        "times a thread found the depot lock taken, cumulative",
    ),
];

/// The options, and the port of `--metrics` if given.
fn parse() -> (Options, Option<u16>) {
    let mut opts = Options {
        threads: cpus().clamp(2, 4),
        duration: Duration::from_secs(3),
        size: 2048,
    };
    let mut metrics = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = |name: &str| -> u64 {
            let v = args
                .next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")));
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: '{v}' is not a whole number")))
        };
        match flag.as_str() {
            "--threads" => opts.threads = value("--threads").clamp(2, 256) as usize,
            "--duration" => {
                opts.duration = Duration::from_secs_f64(value("--duration").max(1) as f64)
            }
            "--size" => opts.size = value("--size").clamp(1, 1 << 20) as usize,
            "--metrics" => {
                let port = value("--metrics");
                metrics =
                    Some(u16::try_from(port).unwrap_or_else(|_| {
                        usage(&format!("--metrics: port {port} is above 65535"))
                    }))
            }
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    (opts, metrics)
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("router: {problem}");
    }
    eprintln!("usage: router [--threads N (>= 2, default: CPUs, at most 4)] [--duration SECONDS (default 3)] [--size BYTES (default 2048)] [--metrics PORT (serve http://127.0.0.1:PORT/metrics)]");
    std::process::exit(if problem.is_empty() { 0 } else { 2 })
}

fn report(name: &str, r: &RunResult) -> f64 {
    let secs = r.elapsed.as_secs_f64();
    let rate = r.messages as f64 / secs;
    println!(
        "{name}: {} messages in {:.2} s = {:.2} M msg/s, {:.0} MiB/s of payload",
        r.messages,
        secs,
        rate / 1e6,
        r.bytes as f64 / secs / (1 << 20) as f64
    );
    println!(
        "  links: {} opened and closed under traffic; {} messages arrived after their link \
         closed (Weak::upgrade -> None), the rest upgraded it",
        r.links_opened, r.link_closed
    );
    rate
}

/// Serves the Prometheus metrics at `http://127.0.0.1:port/metrics` from a
/// thread that ends with the process.
fn serve_metrics(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| {
        eprintln!("router: --metrics {port}: cannot listen on 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    let port = listener.local_addr().map_or(port, |a| a.port());
    if let Err(e) = metrics_server::spawn(listener, hotpool::stats::prometheus) {
        eprintln!("router: --metrics {port}: cannot start the server thread: {e}");
        std::process::exit(1)
    }
    println!(
        "metrics: hotpool::stats::prometheus() at http://127.0.0.1:{port}/metrics while the router runs"
    );
}

fn main() {
    let (opts, metrics) = parse();
    if let Some(port) = metrics {
        serve_metrics(port);
    }
    let (cpus, load) = (cpus(), load_average());
    println!(
        "router: {} workers, {}-byte messages in {}-byte buffers, {} s per run",
        opts.threads,
        opts.size,
        BUFFER_SIZE,
        opts.duration.as_secs_f64()
    );
    println!(
        "Runs the same message router twice and compares the message rates: first\n\
         with messages and buffers from hotpool's typed pools (Pooled<T>), then with\n\
         Box<T> on the system allocator. Links are Shared<Link>, referred to by\n\
         Weak<Link> in both runs."
    );
    // Measured before the runs, so the figure is other programs' load.
    let busy = load.is_some_and(|l| l > cpus as f64 * 0.5);
    if opts.threads > cpus {
        println!(
            "warning: {} workers on {cpus} CPUs: workers wait for a CPU, so the rates\n  \
             measure the scheduler as much as the memory allocator",
            opts.threads
        );
    }
    if busy {
        println!(
            "warning: the machine is busy (load average {:.1} on {cpus} CPUs before the runs):\n  \
             other programs take CPU time from the workers, so the comparison is noisy",
            load.unwrap_or(0.0)
        );
    }

    println!("\n== {} ==", Pools::NAME);
    let pooled = run::<Pools>(&opts);
    let pooled_rate = report(Pools::NAME, &pooled);
    println!(
        "\npool statistics (hotpool::stats::report(), after the run):\n{}",
        hotpool::stats::report()
    );
    for (column, meaning) in COLUMNS {
        println!("  {column:<10}  {meaning}");
    }
    println!();

    println!("== {} ==", Boxes::NAME);
    let boxed = run::<Boxes>(&opts);
    let boxed_rate = report(Boxes::NAME, &boxed);

    let ratio = pooled_rate / boxed_rate;
    println!(
        "\nhotpool / Box throughput: {ratio:.2}x  ({} workers on {cpus} CPUs; above 1: hotpool\n\
         routed more messages per second than Box)",
        opts.threads,
    );
    if (0.9..=1.1).contains(&ratio) && (busy || opts.threads > cpus) {
        println!(
            "note: a ratio this close to 1 on an oversubscribed or busy machine says nothing\n  \
             about the allocators; run again on an idle machine with --threads {}",
            cpus.max(2)
        );
    }
}
