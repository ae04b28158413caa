//! hotpool's `Pool` against allocators and other pools.
//!
//! Every peer implements [`Contestant`] (alloc, free), so every peer runs the
//! identical loop. As in `shared/PEERS.md`, each alloc writes the first and
//! last word of the object and nothing else: no peer pays for copying a
//! whole value in.
//!
//! | group | what one element is |
//! |---|---|
//! | `pair/N` | one alloc + free on one thread |
//! | `batch-{lifo,fifo,random}/N` | one object of 1024 allocated, then freed in that order |
//! | `pc/N` | one object allocated on a producer thread and freed on a consumer |
//! | `scaling/N` | one object of T threads each churning batches of 1024 (LIFO) |
//!
//! | peer | what one alloc / free is |
//! |---|---|
//! | `hotpool` | `Pool::alloc_uninit` / drop of the `Pooled` |
//! | `slab` | `slab::Slab` insert / remove, one slab per thread (no `pc`) |
//! | `tls-vec` | pop / push on a thread-local `Vec<Box<T>>`, else `Box` on glibc |
//! | `box/{glibc,mimalloc,jemalloc,hotalloc}` | `GlobalAlloc::alloc` / `dealloc` on that allocator (`hotalloc`: `hotpool::HotAlloc`) |
//! | `object-pool`, `lf/{linear,spin,mutex}`, `sharded-slab` | those crates' pools |
//!
//! `pair/N` holds the floors a pool is measured against: `tls-vec` and
//! `slab` (the fastest free lists a single thread can have) and
//! `box/hotalloc` (hotpool's own allocator, called directly).
//!
//! `N` is the object size: `[u8; 64]`, `[u8; 512]`, `[u8; 4096]`. Criterion
//! reports time per iteration and throughput in elements (objects) per second.
//!
//! Before criterion runs, the `memory` part (skipped when a filter that does
//! not contain "memory" is given, and in `--test`/`--list` mode) holds 4 Mi
//! live 64-byte objects and prints the resident memory above baseline: live,
//! after free, after trim (hotpool's `Pool::trim`, glibc's `malloc_trim(0)`).
//!
//! ```text
//! cargo bench -p hotpool-bench --bench pool                 # everything (about 7 minutes)
//! cargo bench -p hotpool-bench --bench pool -- pair/64      # one group
//! cargo bench -p hotpool-bench --bench pool -- memory       # the footprint table only
//! ```

#![warn(clippy::undocumented_unsafe_blocks)]

mod common;
#[path = "common/pool_kernels.rs"]
mod kernels;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use criterion::{BenchmarkId, Criterion, Throughput};
use hotpool::Pool;
use kernels::*;

/// Bound of each thread's `tls-vec` free list, in objects.
const TLS_VEC_MAX: usize = 4096;
/// Object sizes with a `tls-vec` free list, in the order of its lists.
const TLS_SIZES: [usize; 3] = [64, 512, 4096];

/// One thread's `tls-vec` free lists, one per object size, holding what
/// `Box::into_raw` gave (boxes on the system allocator, as plain `Box` is
/// here: no `#[global_allocator]` is set).
struct TlsLists([Vec<NonNull<u8>>; 3]);

impl Drop for TlsLists {
    fn drop(&mut self) {
        for (list, size) in self.0.iter_mut().zip(TLS_SIZES) {
            let layout = Layout::array::<u8>(size).expect("small layout");
            for p in list.drain(..) {
                // SAFETY: the list holds boxes of `size` bytes from System
                // that nothing else references.
                unsafe { System.dealloc(p.as_ptr(), layout) };
            }
        }
    }
}

thread_local! {
    static TLS_FREE: RefCell<TlsLists> = const {
        RefCell::new(TlsLists([Vec::new(), Vec::new(), Vec::new()]))
    };
}

/// `tls-vec`: a thread-local `Vec<Box<T>>` free list in front of `Box`,
/// bounded at [`TLS_VEC_MAX`] objects per thread.
struct TlsVec<const N: usize>;

impl<const N: usize> TlsVec<N> {
    const LIST: usize = match N {
        64 => 0,
        512 => 1,
        4096 => 2,
        _ => panic!("tls-vec serves 64, 512 and 4096 bytes"),
    };
}

impl<const N: usize> Contestant for TlsVec<N> {
    type Handle = Box<MaybeUninit<[u8; N]>>;
    fn for_thread(&self) -> Self {
        TlsVec
    }
    #[inline(always)]
    fn alloc(&mut self) -> Self::Handle {
        let cached = TLS_FREE.with(|l| l.borrow_mut().0[Self::LIST].pop());
        let mut b = match cached {
            // SAFETY: the list only holds pointers from `Box::into_raw` of
            // this very type (list index = size), owned by nobody else.
            Some(p) => unsafe { Box::from_raw(p.as_ptr().cast::<MaybeUninit<[u8; N]>>()) },
            None => Box::new_uninit(),
        };
        touch(b.as_mut_ptr().cast(), N);
        b
    }
    #[inline(always)]
    fn free(&mut self, b: Self::Handle) {
        TLS_FREE.with(|l| {
            let list = &mut l.borrow_mut().0[Self::LIST];
            if list.len() < TLS_VEC_MAX {
                // SAFETY: Box::into_raw is never null.
                list.push(unsafe { NonNull::new_unchecked(Box::into_raw(b).cast()) });
            } else {
                drop(b);
            }
        });
    }
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

/// Thread counts of the scaling groups (2 cores: 4 and 8 oversubscribe).
const THREADS: [usize; 4] = [1, 2, 4, 8];

/// Every peer for objects of `N` bytes, in the order they are reported.
/// Calls `$m!(name, contestant)` for each.
macro_rules! for_each_peer {
    ($peers:expr, $m:ident) => {{
        let p = $peers;
        $m!("hotpool", Hot(p.hot));
        $m!("slab", SlabPeer::<N>(slab::Slab::new()));
        $m!("tls-vec", TlsVec::<N>);
        $m!("box/glibc", BoxOn::<_, N>(&System));
        $m!("box/mimalloc", BoxOn::<_, N>(&mimalloc::MiMalloc));
        $m!("box/jemalloc", BoxOn::<_, N>(&tikv_jemallocator::Jemalloc));
        $m!("box/hotalloc", BoxOn::<_, N>(&hotpool::HotAlloc));
        $m!("object-pool", ObjectPool(p.object_pool));
        $m!("lf/linear", LfLinear(p.lf_linear));
        $m!("lf/spin", LfSpin(p.lf_spin));
        $m!("lf/mutex", LfMutex(p.lf_mutex));
        $m!("sharded-slab", ShardedSlab(p.sharded));
    }};
}

/// The shared pools of every peer for objects of `N` bytes, made once and
/// used by every group.
struct Peers<const N: usize> {
    hot: &'static Pool<[u8; N]>,
    object_pool: &'static object_pool::Pool<Box<Obj<N>>>,
    lf_linear: &'static lockfree_object_pool::LinearObjectPool<Obj<N>>,
    lf_spin: &'static lockfree_object_pool::SpinLockObjectPool<Obj<N>>,
    lf_mutex: &'static lockfree_object_pool::MutexObjectPool<Obj<N>>,
    sharded: &'static sharded_slab::Pool<Obj<N>>,
}

// Manual impls: a derive would demand `[u8; N]: Clone` bounds it can't see.
impl<const N: usize> Clone for Peers<N> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<const N: usize> Copy for Peers<N> {}

impl<const N: usize> Peers<N> {
    /// `hot` is a `static` of the bench (one per size, so hotpool's pool
    /// ids stay few); the other pools are leaked for `'static` handles.
    fn new(hot: &'static Pool<[u8; N]>) -> Self {
        Peers {
            hot,
            object_pool: Box::leak(Box::new(object_pool::Pool::new(0, Box::default))),
            lf_linear: Box::leak(Box::new(lockfree_object_pool::LinearObjectPool::new(
                Obj::default,
                |_| {},
            ))),
            lf_spin: Box::leak(Box::new(lockfree_object_pool::SpinLockObjectPool::new(
                Obj::default,
                |_| {},
            ))),
            lf_mutex: Box::leak(Box::new(lockfree_object_pool::MutexObjectPool::new(
                Obj::default,
                |_| {},
            ))),
            sharded: Box::leak(Box::new(sharded_slab::Pool::new())),
        }
    }
}

static HOT_64: Pool<[u8; 64]> = Pool::new();
static HOT_512: Pool<[u8; 512]> = Pool::new();
static HOT_4K: Pool<[u8; 4096]> = Pool::new();

fn bench_pair<const N: usize>(c: &mut Criterion, peers: Peers<N>) {
    let mut g = c.benchmark_group(format!("pair/{N}"));
    g.throughput(Throughput::Elements(1));
    macro_rules! run {
        ($name:expr, $peer:expr) => {{
            let mut peer = $peer;
            g.bench_function($name, |b| b.iter(|| pair(&mut peer)));
        }};
    }
    for_each_peer!(peers, run);
    g.finish();
}

fn bench_batch<const N: usize>(c: &mut Criterion, peers: Peers<N>, order: Order) {
    let mut g = c.benchmark_group(format!("batch-{}/{N}", order.name()));
    g.throughput(Throughput::Elements(BATCH as u64));
    let indices = order.indices(BATCH);
    macro_rules! run {
        ($name:expr, $peer:expr) => {{
            let mut peer = $peer;
            let mut slots: Vec<Option<_>> = (0..BATCH).map(|_| None).collect();
            g.bench_function($name, |b| {
                b.iter(|| batch(&mut peer, &mut slots, &indices));
            });
        }};
    }
    for_each_peer!(peers, run);
    g.finish();
}

fn bench_pc<const N: usize>(c: &mut Criterion, peers: Peers<N>) {
    let mut g = c.benchmark_group(format!("pc/{N}"));
    g.throughput(Throughput::Elements(1));
    macro_rules! run {
        ($name:expr, $peer:expr) => {{
            let peer = $peer;
            if is_cross_thread(&peer) {
                g.bench_function($name, |b| {
                    b.iter_custom(|iters| producer_consumer(&peer, iters));
                });
            }
        }};
    }
    for_each_peer!(peers, run);
    g.finish();
}

fn is_cross_thread<C: Contestant>(_: &C) -> bool {
    C::CROSS_THREAD
}

fn bench_scaling<const N: usize>(c: &mut Criterion, peers: Peers<N>) {
    let mut g = c.benchmark_group(format!("scaling/{N}"));
    for threads in THREADS {
        g.throughput(Throughput::Elements((threads * BATCH) as u64));
        macro_rules! run {
            ($name:expr, $peer:expr) => {{
                let peer = $peer;
                g.bench_with_input(BenchmarkId::new($name, threads), &threads, |b, &t| {
                    b.iter_custom(|rounds| scaling(&peer, Order::Lifo, t, rounds));
                });
            }};
        }
        for_each_peer!(peers, run);
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let p64 = Peers::new(&HOT_64);
    let p512 = Peers::new(&HOT_512);
    let p4k = Peers::new(&HOT_4K);
    bench_pair(c, p64);
    bench_pair(c, p512);
    bench_pair(c, p4k);
    for order in [Order::Lifo, Order::Fifo, Order::Random] {
        bench_batch(c, p64, order);
        bench_batch(c, p512, order);
        bench_batch(c, p4k, order);
    }
    bench_pc(c, p64);
    bench_pc(c, p512);
    bench_pc(c, p4k);
    bench_scaling(c, p64);
    bench_scaling(c, p4k);
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

mod memory {
    use super::*;
    use hotpool::stats::resident_bytes;

    /// Live objects: 256 MiB of 64-byte payload.
    const COUNT: usize = 4 << 20;
    const PAYLOAD: usize = COUNT * 64;
    const MIB: f64 = (1 << 20) as f64;

    /// Its own pool, so the benchmark groups' pools do not blur the figures.
    static MEM_POOL: Pool<[u8; 64]> = Pool::new();

    /// Resident bytes above the baseline: live, after free, after trim.
    struct Footprint {
        live: usize,
        freed: usize,
        trimmed: Option<usize>,
    }

    /// Holds [`COUNT`] objects of `c`, frees them in allocation order, then
    /// calls `trim` (if any). The handle vector is allocated and touched
    /// before the baseline is read.
    fn measure<C: Contestant>(mut c: C, trim: Option<&dyn Fn()>) -> Footprint {
        let mut handles: Vec<C::Handle> = Vec::with_capacity(COUNT);
        // Make the vector's pages resident. Not zeros: LLVM would turn
        // malloc + memset(0) into calloc, which touches nothing.
        let spare = handles.spare_capacity_mut();
        // SAFETY: `spare` is the vector's own uninitialized capacity; any
        // bytes are valid for MaybeUninit.
        unsafe { spare.as_mut_ptr().write_bytes(0x5A, spare.len()) };
        black_box(spare.as_mut_ptr());
        let base = resident_bytes();
        for _ in 0..COUNT {
            handles.push(c.alloc());
        }
        black_box(&mut handles);
        let live = resident_bytes().saturating_sub(base);
        for h in handles.drain(..) {
            c.free(h);
        }
        let freed = resident_bytes().saturating_sub(base);
        let trimmed = trim.map(|t| {
            t();
            resident_bytes().saturating_sub(base)
        });
        Footprint {
            live,
            freed,
            trimmed,
        }
    }

    fn mib(b: usize) -> String {
        format!("{:.1}", b as f64 / MIB)
    }

    /// Prints the footprint table and the two memory targets.
    pub fn run() {
        println!("memory: {COUNT} live [u8; 64] objects = 256 MiB of payload");
        println!("MiB resident above baseline (RSS from /proc/self/statm)");
        let hot = measure(Hot(&MEM_POOL), Some(&|| MEM_POOL.trim()));
        let s = MEM_POOL.stats();
        let glibc = measure(
            BoxOn::<_, 64>(&System),
            // SAFETY: malloc_trim has no preconditions.
            Some(&|| unsafe {
                libc::malloc_trim(0);
            }),
        );
        let mi = measure(BoxOn::<_, 64>(&mimalloc::MiMalloc), None);
        let je = measure(BoxOn::<_, 64>(&tikv_jemallocator::Jemalloc), None);
        println!("| peer | live | after free | after trim |");
        println!("|---|---|---|---|");
        for (name, f) in [
            ("hotpool", &hot),
            ("box/glibc (malloc_trim)", &glibc),
            ("box/mimalloc (no purge)", &mi),
            ("box/jemalloc (no purge)", &je),
        ] {
            let trimmed = f.trimmed.map_or_else(|| "-".to_string(), mib);
            println!(
                "| {name} | {} | {} | {trimmed} |",
                mib(f.live),
                mib(f.freed)
            );
        }
        println!(
            "hotpool after trim: {} chunks, {} bytes held",
            s.chunks, s.bytes_held
        );
        let over = hot.live as f64 / PAYLOAD as f64 - 1.0;
        let left = hot.trimmed.unwrap_or(hot.live) as f64 / hot.live.max(1) as f64;
        println!(
            "target live <= 3% over payload: {:+.2}% {}",
            over * 100.0,
            verdict(over <= 0.03)
        );
        println!(
            "target after free+trim <= 1% of peak: {:.2}% {}",
            left * 100.0,
            verdict(left <= 0.01)
        );
        println!();
    }

    fn verdict(ok: bool) -> &'static str {
        if ok {
            "PASS"
        } else {
            "FAIL"
        }
    }
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

fn main() {
    if common::memory_wanted() {
        memory::run();
    }
    let mut c = common::criterion().nresamples(20_000).configure_from_args();
    benches(&mut c);
    c.final_summary();
}
