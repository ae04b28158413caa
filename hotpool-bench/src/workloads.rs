//! The workload registry: which workloads exist, at which sizes and thread
//! counts, which contestants run each, and how one run is timed.

use std::alloc::System;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use hotpool::{HotAlloc, Pool};

use crate::alloc_kernels::{churn, larson, realloc_builder, scratch, timed_threads, xmalloc};
use crate::kernels::{self, Boxed, Handles, Pools, Via};
use crate::pool_kernels::{
    on_threads, pair, producer_consumer, scaling, spawn_big, BoxOn, Contestant, Hot, LfLinear,
    LfMutex, LfSpin, Obj, ObjectPool, Order, ShardedSlab, SlabPeer, BATCH, PC_BATCH,
};

static HOT_ALLOC: HotAlloc = HotAlloc;
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Operations per timed batch in the latency runs.
pub const LATENCY_BATCH: usize = 64;

/// What one timed run did.
pub struct Sample {
    /// Operations done (the workload's unit), over all threads.
    pub ops: u64,
    /// Wall time they took.
    pub elapsed: Duration,
}

/// One contestant, ready to run a workload cell repeatedly.
pub struct Runner {
    /// Runs `n` units of work (per thread where the workload is threaded).
    pub run: Box<dyn FnMut(u64) -> Sample>,
    /// Times `batches` batches of [`LATENCY_BATCH`] operations and returns
    /// nanoseconds per operation of each batch (latency workloads only).
    pub latency: Option<Box<dyn FnMut(usize) -> Vec<f64>>>,
}

/// A contestant of a cell, made only when it runs (a child process that
/// measures one contestant's memory makes no other).
pub struct Entry {
    /// The contestant's name in the report.
    pub contestant: &'static str,
    /// Builds its runner.
    pub make: Box<dyn Fn() -> Runner>,
}

/// A workload's description for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Info {
    /// Workload id, e.g. `pair/64`.
    pub id: String,
    /// What one operation is.
    pub unit: String,
    /// What the workload does.
    pub about: String,
}

/// What to build: sizes and thread counts follow `quick`.
pub struct Plan {
    /// The short run's sizes.
    pub quick: bool,
    /// Thread counts of the threaded workloads.
    pub threads: Vec<usize>,
}

impl Plan {
    fn pair_sizes(&self) -> &'static [usize] {
        if self.quick {
            &[16, 4096, 65536]
        } else {
            &[16, 256, 4096, 65536]
        }
    }
    fn batch_sizes(&self) -> &'static [usize] {
        if self.quick {
            &[64, 4096]
        } else {
            &[64, 512, 4096]
        }
    }
    fn pc_sizes(&self) -> &'static [usize] {
        if self.quick {
            &[64, 4096]
        } else {
            &[64, 4096, 65536]
        }
    }
}

/// Evaluates `$body` with `$n` a `const usize` equal to `$size` (one of
/// the sizes the plans use) and `$set` the process's `OnceLock` of the
/// pool set of that size.
macro_rules! by_size {
    ($size:expr, $n:ident, $set:ident => $body:expr) => {
        match $size {
            16 => {
                const $n: usize = 16;
                static $set: OnceLock<PoolSet<$n>> = OnceLock::new();
                $body
            }
            64 => {
                const $n: usize = 64;
                static $set: OnceLock<PoolSet<$n>> = OnceLock::new();
                $body
            }
            256 => {
                const $n: usize = 256;
                static $set: OnceLock<PoolSet<$n>> = OnceLock::new();
                $body
            }
            512 => {
                const $n: usize = 512;
                static $set: OnceLock<PoolSet<$n>> = OnceLock::new();
                $body
            }
            4096 => {
                const $n: usize = 4096;
                static $set: OnceLock<PoolSet<$n>> = OnceLock::new();
                $body
            }
            65536 => {
                const $n: usize = 65536;
                static $set: OnceLock<PoolSet<$n>> = OnceLock::new();
                $body
            }
            other => unreachable!("no pool workload of {other} bytes"),
        }
    };
}

/// Every pool for objects of `N` bytes, made once per size and process
/// (hotpool caches per pool id, so pools are not made per cell). The pool
/// workloads take `[u8; N]` objects from them.
struct PoolSet<const N: usize> {
    hot: Pool<[u8; N]>,
    object_pool: object_pool::Pool<Box<Obj<N>>>,
    lf_linear: lockfree_object_pool::LinearObjectPool<Obj<N>>,
    lf_spin: lockfree_object_pool::SpinLockObjectPool<Obj<N>>,
    lf_mutex: lockfree_object_pool::MutexObjectPool<Obj<N>>,
    sharded: sharded_slab::Pool<Obj<N>>,
}

impl<const N: usize> PoolSet<N> {
    fn new() -> Self {
        PoolSet {
            hot: Pool::new(),
            object_pool: object_pool::Pool::new(0, Box::default),
            lf_linear: lockfree_object_pool::LinearObjectPool::new(Obj::default, |_| {}),
            lf_spin: lockfree_object_pool::SpinLockObjectPool::new(Obj::default, |_| {}),
            lf_mutex: lockfree_object_pool::MutexObjectPool::new(Obj::default, |_| {}),
            sharded: sharded_slab::Pool::new(),
        }
    }
}

/// The pool workload patterns.
#[derive(Clone, Copy)]
enum PoolWork {
    Pair,
    Batch(Order),
    ProducerConsumer,
}

fn pool_runner<C: Contestant + 'static>(c: C, work: PoolWork, threads: usize) -> Runner {
    let lat = c.for_thread();
    match work {
        PoolWork::Pair => Runner {
            run: Box::new(move |n| Sample {
                ops: n * threads as u64,
                elapsed: on_threads(&c, threads, |mut mine, start| {
                    start.wait();
                    for _ in 0..n {
                        pair(&mut mine);
                    }
                }),
            }),
            latency: Some(Box::new(move |batches| pair_latency(&lat, batches))),
        },
        PoolWork::Batch(order) => Runner {
            run: Box::new(move |n| Sample {
                ops: n * (threads * BATCH) as u64,
                elapsed: scaling(&c, order, threads, n),
            }),
            latency: None,
        },
        PoolWork::ProducerConsumer => Runner {
            run: Box::new(move |n| Sample {
                ops: n * PC_BATCH as u64,
                elapsed: producer_consumer(&c, n * PC_BATCH as u64),
            }),
            latency: Some(Box::new(move |batches| pc_latency(&lat, batches))),
        },
    }
}

/// Times `batches` batches of [`LATENCY_BATCH`] same-thread pairs.
fn pair_latency<C: Contestant>(c: &C, batches: usize) -> Vec<f64> {
    let mut c = c.for_thread();
    (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..LATENCY_BATCH {
                pair(&mut c);
            }
            t.elapsed().as_nanos() as f64 / LATENCY_BATCH as f64
        })
        .collect()
}

/// Producer/consumer with each side timed per batch of [`LATENCY_BATCH`]:
/// the producer's allocations and the consumer's (remote) frees, both in
/// the returned samples. Batch vectors go back and forth, so nothing but
/// the contestant allocates.
fn pc_latency<C: Contestant>(c: &C, batches: usize) -> Vec<f64> {
    use std::sync::mpsc::sync_channel;
    let (full_tx, full_rx) = sync_channel::<Vec<C::Handle>>(4);
    let (empty_tx, empty_rx) = sync_channel::<Vec<C::Handle>>(4);
    for _ in 0..4 {
        empty_tx
            .send(Vec::with_capacity(LATENCY_BATCH))
            .expect("receiver alive");
    }
    let mut producer = c.for_thread();
    let mut consumer = c.for_thread();
    let per_op = |t: Instant| t.elapsed().as_nanos() as f64 / LATENCY_BATCH as f64;
    thread::scope(|s| {
        let frees = spawn_big(s, move || {
            let mut times = Vec::with_capacity(batches);
            while let Ok(mut v) = full_rx.recv() {
                let t = Instant::now();
                for h in v.drain(..) {
                    consumer.free(h);
                }
                times.push(per_op(t));
                let _ = empty_tx.send(v);
            }
            times
        });
        let mut times = Vec::with_capacity(2 * batches);
        for _ in 0..batches {
            let mut v = empty_rx.recv().expect("consumer alive");
            let t = Instant::now();
            for _ in 0..LATENCY_BATCH {
                v.push(producer.alloc());
            }
            times.push(per_op(t));
            full_tx.send(v).expect("consumer alive");
        }
        drop(full_tx);
        times.extend(frees.join().expect("consumer thread"));
        times
    })
}

fn entry(contestant: &'static str, make: impl Fn() -> Runner + 'static) -> Entry {
    Entry {
        contestant,
        make: Box::new(make),
    }
}

/// The entry of contestant `make` on a pool workload, if it fits: objects
/// of a single-thread structure cannot be freed on another thread.
fn pool_entry<C: Contestant + 'static>(
    name: &'static str,
    make: impl Fn() -> C + 'static,
    work: PoolWork,
    threads: usize,
) -> Option<Entry> {
    let fits = C::CROSS_THREAD || !matches!(work, PoolWork::ProducerConsumer);
    fits.then(|| entry(name, move || pool_runner(make(), work, threads)))
}

fn pool_entries<const N: usize>(
    set: &'static OnceLock<PoolSet<N>>,
    work: PoolWork,
    threads: usize,
) -> Vec<Entry> {
    let p: &'static PoolSet<N> = set.get_or_init(PoolSet::new);
    let (w, t) = (work, threads);
    [
        pool_entry("hotpool::Pool", || Hot(&p.hot), w, t),
        pool_entry("HotAlloc", || BoxOn::<_, N>(&HOT_ALLOC), w, t),
        pool_entry("system", || BoxOn::<_, N>(&System), w, t),
        pool_entry("mimalloc", || BoxOn::<_, N>(&MI), w, t),
        pool_entry("jemalloc", || BoxOn::<_, N>(&JE), w, t),
        // One slab per thread: a single-thread structure, the floor.
        pool_entry(
            "slab (per thread)",
            || SlabPeer::<N>(slab::Slab::new()),
            w,
            t,
        ),
        pool_entry("object-pool", || ObjectPool(&p.object_pool), w, t),
        pool_entry("lockfree/linear", || LfLinear(&p.lf_linear), w, t),
        pool_entry("lockfree/spin", || LfSpin(&p.lf_spin), w, t),
        pool_entry("lockfree/mutex", || LfMutex(&p.lf_mutex), w, t),
        pool_entry("sharded-slab", || ShardedSlab(&p.sharded), w, t),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Calls `$m!(name, allocator)` for each general-purpose allocator.
macro_rules! allocators {
    ($m:ident) => {
        vec![
            $m!("HotAlloc", &HOT_ALLOC),
            $m!("system", &System),
            $m!("mimalloc", &MI),
            $m!("jemalloc", &JE),
        ]
    };
}

/// The size of a churn block from a random number: 16 B to 64 KiB, each
/// doubling equally likely, uniform within it.
fn churn_size(r: u64) -> usize {
    let low = 16usize << ((r >> 8) % 12);
    low + (r >> 24) as usize % low
}

fn alloc_entries(family: &str, threads: usize) -> Vec<Entry> {
    macro_rules! make {
        ($name:expr, $a:expr) => {{
            let a = $a;
            let run: fn(&'static _, usize, u64) -> Sample = match family {
                "larson" => |a, t, n| Sample {
                    ops: n * t as u64,
                    elapsed: larson(a, t, n, 256),
                },
                "xmalloc" => |a, _, n| Sample {
                    ops: n,
                    elapsed: xmalloc(a, n),
                },
                "cache-scratch" => |a, t, n| Sample {
                    ops: n * t as u64,
                    elapsed: scratch(a, t, n),
                },
                "churn" => |a, t, n| Sample {
                    ops: n * t as u64,
                    elapsed: timed_threads(t, |_, go, done| {
                        go.wait();
                        churn(a, n, 1024, churn_size);
                        done.wait();
                    }),
                },
                "realloc" => |a, _, n| {
                    let t = Instant::now();
                    (0..n).for_each(|_| realloc_builder(a, 1 << 20, false));
                    Sample {
                        ops: n,
                        elapsed: t.elapsed(),
                    }
                },
                "order-book" => |a, t, n| Sample {
                    ops: n * t as u64,
                    elapsed: timed_threads(t, |i, go, done| {
                        kernels::order_book(Via(a), n, i as u64, go, done);
                    }),
                },
                other => unreachable!("no allocator workload {other}"),
            };
            entry($name, move || Runner {
                run: Box::new(move |n| run(a, threads, n)),
                latency: None,
            })
        }};
    }
    let mut v: Vec<Entry> = allocators!(make);
    if family == "order-book" {
        // HotAlloc is an allocator-api2 allocator itself: use it directly.
        v[0] = entry("HotAlloc", move || Runner {
            run: Box::new(move |n| Sample {
                ops: n * threads as u64,
                elapsed: timed_threads(threads, |i, go, done| {
                    kernels::order_book(HotAlloc, n, i as u64, go, done);
                }),
            }),
            latency: None,
        });
    }
    v
}

fn router_entries(threads: usize) -> Vec<Entry> {
    fn on<H: kernels::Heap>(name: &'static str, heap: H, threads: usize) -> Entry {
        entry(name, move || Runner {
            run: Box::new(move |n| Sample {
                ops: n * (threads * kernels::ROUTER_BATCH) as u64,
                elapsed: kernels::router(heap, threads, n),
            }),
            latency: None,
        })
    }
    vec![
        on("hotpool::Pool", Pools, threads),
        on("HotAlloc", Boxed(HotAlloc), threads),
        on("system", Boxed(Via(&System)), threads),
        on("mimalloc", Boxed(Via(&MI)), threads),
        on("jemalloc", Boxed(Via(&JE)), threads),
    ]
}

static HANDLE_POOL: Pool<kernels::Obj> = Pool::new();

fn handle_entries(lookup: bool) -> Vec<Entry> {
    fn on<S: Handles + 'static>(name: &'static str, make: fn() -> S, lookup: bool) -> Entry {
        entry(name, move || {
            let mut store = make();
            let mut keys = kernels::fill(&mut store);
            Runner {
                run: Box::new(move |n| {
                    let t = Instant::now();
                    if lookup {
                        kernels::lookups(&store, &keys, n);
                    } else {
                        kernels::replace(&mut store, &mut keys, n);
                    }
                    Sample {
                        ops: n,
                        elapsed: t.elapsed(),
                    }
                }),
                latency: None,
            }
        })
    }
    vec![
        on("Shared/Weak", || kernels::SharedStore::new(None), lookup),
        on(
            "Shared/Weak in Pool",
            || kernels::SharedStore::new(Some(&HANDLE_POOL)),
            lookup,
        ),
        on("Arc/Weak", kernels::ArcStore::default, lookup),
        on("slotmap", slotmap::SlotMap::new, lookup),
        on("generational-arena", generational_arena::Arena::new, lookup),
        on("sharded-slab", sharded_slab::Slab::new, lookup),
    ]
}

/// Every workload of a plan with its description, in report order.
pub fn infos(plan: &Plan) -> Vec<Info> {
    let info = |id: String, unit: &str, about: &str| Info {
        id,
        unit: unit.into(),
        about: about.into(),
    };
    let mut v = Vec::new();
    for &n in plan.pair_sizes() {
        v.push(info(
            format!("pair/{n}"),
            "alloc + free",
            &format!(
                "each thread allocates a {n}-byte object, writes its first and last word, frees it"
            ),
        ));
    }
    for order in [Order::Lifo, Order::Fifo, Order::Random] {
        for &n in plan.batch_sizes() {
            v.push(info(
                format!("batch-{}/{n}", order.name()),
                "object",
                &format!(
                    "each thread allocates {BATCH} objects of {n} bytes, then frees them in {} order",
                    order.name()
                ),
            ));
        }
    }
    for &n in plan.pc_sizes() {
        v.push(info(
            format!("pc/{n}"),
            "object",
            &format!("a producer thread allocates {n}-byte objects, a consumer thread frees them (batches of {PC_BATCH})"),
        ));
    }
    v.push(info(
        "router".into(),
        "message",
        &format!(
            "workers build messages (a header and a chain of {} buffers of {} B), send them in batches of {} round-robin to the other workers, which check and free them",
            kernels::MESSAGE / kernels::BUFFER,
            kernels::BUFFER,
            kernels::ROUTER_BATCH
        ),
    ));
    v.push(info("larson".into(), "free + alloc", "larson: each thread replaces random blocks (16-527 B) of its 256; every 2048 replacements the arrays move one thread on in a ring (remote frees, about one in eight)"));
    v.push(info(
        "xmalloc".into(),
        "block",
        "xmalloc: one thread allocates 64 B blocks, another frees them",
    ));
    v.push(info("cache-scratch".into(), "alloc + write + free", "cache-scratch: each thread allocates, writes and frees a 64 B object (false sharing would show)"));
    v.push(info("churn".into(), "free + alloc", "each thread replaces random blocks of a window of 1024 with blocks of 16 B-64 KiB (each doubling equally likely)"));
    v.push(info(
        "realloc".into(),
        "string built",
        "a string builder: one block grown by realloc from 16 B to 1 MiB, doubling",
    ));
    v.push(info("order-book".into(), "add or cancel", &format!("each thread keeps an order book of about {} orders (hashbrown map + id vector, each order owning a 16-64 B client tag, all from the contestant through allocator-api2) and adds or cancels a random order", kernels::BOOK_DEPTH)));
    v.push(info(
        "handles-lookup".into(),
        "lookup",
        &format!(
            "reads through a random handle among {} (one in eight stale, its slot reused)",
            kernels::HANDLES
        ),
    ));
    v.push(info("handles-churn".into(), "replace + 2 lookups", "drops the object of a random handle, stores a new 256 B object, reads through the old (stale) and the new handle"));
    v
}

/// The thread counts a workload runs at: the plan's list where the
/// workload is threaded, else its fixed count.
pub fn threads_of(id: &str, plan: &Plan) -> Vec<usize> {
    let family = id.split('/').next().unwrap_or(id);
    match family {
        "pc" | "xmalloc" => vec![2],
        "realloc" | "handles-lookup" | "handles-churn" => vec![1],
        _ => plan.threads.clone(),
    }
}

/// The contestants of workload `id` at `threads` threads, in report order.
pub fn cell(id: &str, threads: usize) -> Vec<Entry> {
    let (family, size) = match id.split_once('/') {
        Some((f, s)) => (f, s.parse::<usize>().ok()),
        None => (id, None),
    };
    let pool_work = match family {
        "pair" => Some(PoolWork::Pair),
        "batch-lifo" => Some(PoolWork::Batch(Order::Lifo)),
        "batch-fifo" => Some(PoolWork::Batch(Order::Fifo)),
        "batch-random" => Some(PoolWork::Batch(Order::Random)),
        "pc" => Some(PoolWork::ProducerConsumer),
        _ => None,
    };
    match (pool_work, size) {
        // One expansion, so each size has one pool set for all patterns.
        (Some(work), Some(n)) => by_size!(n, N, SET => pool_entries::<N>(&SET, work, threads)),
        (None, None) => match family {
            "router" => router_entries(threads),
            "handles-lookup" => handle_entries(true),
            "handles-churn" => handle_entries(false),
            f => alloc_entries(f, threads),
        },
        _ => unreachable!("unknown workload {id}"),
    }
}
