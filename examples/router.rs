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
//! ```sh
//! cargo run --release --example router                       # 4 workers, 3 s per run, 2 KiB messages
//! cargo run --release --example router -- --threads 8 --duration 5 --size 8192
//! ```

use std::thread;
use std::time::Duration;

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

fn parse() -> Options {
    let mut opts = Options {
        threads: 4,
        duration: Duration::from_secs(3),
        size: 2048,
    };
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
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    opts
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("router: {problem}");
    }
    eprintln!("usage: router [--threads N (>= 2, default 4)] [--duration SECONDS (default 3)] [--size BYTES (default 2048)]");
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

fn main() {
    let opts = parse();
    println!(
        "router: {} workers, {}-byte messages in {}-byte buffers, {} s per run",
        opts.threads,
        opts.size,
        BUFFER_SIZE,
        opts.duration.as_secs_f64()
    );
    println!("\n== {} ==", Pools::NAME);
    let pooled = run::<Pools>(&opts);
    let pooled_rate = report(Pools::NAME, &pooled);
    println!(
        "\npool statistics (hotpool::stats::report()):\n{}",
        hotpool::stats::report()
    );

    println!("== {} ==", Boxes::NAME);
    let boxed = run::<Boxes>(&opts);
    let boxed_rate = report(Boxes::NAME, &boxed);

    println!(
        "\nhotpool / Box throughput: {:.2}x  ({} workers on {} CPUs)",
        pooled_rate / boxed_rate,
        opts.threads,
        thread::available_parallelism().map_or(0, |n| n.get())
    );
}
