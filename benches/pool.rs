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
//! `N` is the object size: `[u8; 64]`, `[u8; 512]`, `[u8; 4096]`. Criterion
//! reports time per iteration and throughput in elements (objects) per second.
//!
//! Before criterion runs, the `memory` part (skipped when a filter that does
//! not contain "memory" is given, and in `--test`/`--list` mode) holds 4 Mi
//! live 64-byte objects and prints the resident memory above baseline: live,
//! after free, after trim (hotpool's `Pool::trim`, glibc's `malloc_trim(0)`).
//!
//! ```text
//! cargo bench --bench pool                 # everything (about 7 minutes)
//! cargo bench --bench pool -- pair/64      # one group
//! cargo bench --bench pool -- memory       # the footprint table only
//! ```

#![warn(clippy::undocumented_unsafe_blocks)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::mpsc::sync_channel;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use hotpool::{Pool, Pooled};

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

/// Writes the first and last word of an `n`-byte object at `p`: the only
/// touch every peer makes on alloc.
#[inline(always)]
fn touch(p: *mut u8, n: usize) {
    // SAFETY: every caller passes the start of a live, writable object of
    // `n >= 8` bytes that it owns; unaligned writes need no alignment.
    unsafe {
        p.cast::<u64>().write_unaligned(n as u64);
        p.add(n - 8).cast::<u64>().write_unaligned(!(n as u64));
    }
}

/// `[u8; N]` with the `Default` (for any `N`) and `Clear` that the
/// sharded-slab and lockfree-object-pool pools require. Same layout.
#[repr(transparent)]
struct Obj<const N: usize>([u8; N]);

impl<const N: usize> Default for Obj<N> {
    fn default() -> Self {
        Obj([0; N])
    }
}

impl<const N: usize> sharded_slab::Clear for Obj<N> {
    /// Nothing to reset: every alloc writes what it needs.
    fn clear(&mut self) {}
}

impl<const N: usize> Obj<N> {
    #[inline(always)]
    fn touch(&mut self) {
        touch(self.0.as_mut_ptr(), N);
    }
}

// ---------------------------------------------------------------------------
// Contestants
// ---------------------------------------------------------------------------

/// One allocator or pool, as seen by one thread.
trait Contestant: Send + Sized {
    /// An allocated object; dropping it without `free` may leak.
    type Handle: Send;
    /// Whether an object may be freed on another thread than it was
    /// allocated on (false: `pc` skips this peer).
    const CROSS_THREAD: bool = true;
    /// This contestant for another thread: the same pool for shared pools,
    /// a fresh one for single-thread structures (`slab`).
    fn for_thread(&self) -> Self;
    /// Allocates an object and writes its first and last word.
    fn alloc(&mut self) -> Self::Handle;
    /// Frees an object.
    fn free(&mut self, h: Self::Handle);
}

/// hotpool: `Pool::alloc_uninit`, freed by dropping the `Pooled`.
struct Hot<const N: usize>(&'static Pool<[u8; N]>);

impl<const N: usize> Contestant for Hot<N> {
    type Handle = Pooled<MaybeUninit<[u8; N]>>;
    fn for_thread(&self) -> Self {
        Hot(self.0)
    }
    #[inline(always)]
    fn alloc(&mut self) -> Self::Handle {
        let mut slot = self.0.alloc_uninit();
        touch(slot.as_mut_ptr().cast(), N);
        slot
    }
    #[inline(always)]
    fn free(&mut self, h: Self::Handle) {
        drop(h);
    }
}

/// A raw object pointer from a `GlobalAlloc`.
struct Raw(NonNull<u8>);
// SAFETY: a Raw is the sole owner of plain bytes; any thread may free it.
unsafe impl Send for Raw {}

/// `Box` on a given allocator: `GlobalAlloc::alloc` / `dealloc` directly.
struct BoxOn<A: GlobalAlloc + Sync + 'static, const N: usize>(&'static A);

impl<A: GlobalAlloc + Sync + 'static, const N: usize> BoxOn<A, N> {
    const LAYOUT: Layout = Layout::new::<[u8; N]>();
}

impl<A: GlobalAlloc + Sync + 'static, const N: usize> Contestant for BoxOn<A, N> {
    type Handle = Raw;
    fn for_thread(&self) -> Self {
        BoxOn(self.0)
    }
    #[inline(always)]
    fn alloc(&mut self) -> Raw {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { self.0.alloc(Self::LAYOUT) };
        let Some(p) = NonNull::new(p) else {
            std::alloc::handle_alloc_error(Self::LAYOUT)
        };
        touch(p.as_ptr(), N);
        Raw(p)
    }
    #[inline(always)]
    fn free(&mut self, h: Raw) {
        // SAFETY: allocated by this allocator with this layout, freed once.
        unsafe { self.0.dealloc(h.0.as_ptr(), Self::LAYOUT) };
    }
}

/// `slab::Slab`, one per thread: the single-thread floor.
struct SlabPeer<const N: usize>(slab::Slab<MaybeUninit<[u8; N]>>);

impl<const N: usize> Contestant for SlabPeer<N> {
    type Handle = usize;
    const CROSS_THREAD: bool = false;
    fn for_thread(&self) -> Self {
        SlabPeer(slab::Slab::new())
    }
    #[inline(always)]
    fn alloc(&mut self) -> usize {
        let entry = self.0.vacant_entry();
        let key = entry.key();
        let obj = entry.insert(MaybeUninit::uninit());
        touch(obj.as_mut_ptr().cast(), N);
        key
    }
    #[inline(always)]
    fn free(&mut self, key: usize) {
        // Dropped unread: a pool does not copy the object out either.
        let _ = self.0.remove(key);
    }
}

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

/// object-pool 0.6: `Pool::pull` with a fallback. The pool holds
/// `Box<T>`, since `Reusable` moves its value in and out of the pool's
/// `Vec` (a 4 KiB copy each way otherwise).
struct ObjectPool<const N: usize>(&'static object_pool::Pool<Box<Obj<N>>>);

impl<const N: usize> Contestant for ObjectPool<N> {
    type Handle = object_pool::Reusable<'static, Box<Obj<N>>>;
    fn for_thread(&self) -> Self {
        ObjectPool(self.0)
    }
    #[inline(always)]
    fn alloc(&mut self) -> Self::Handle {
        let mut r = self.0.pull(Box::default);
        r.touch();
        r
    }
    #[inline(always)]
    fn free(&mut self, h: Self::Handle) {
        drop(h);
    }
}

/// The three lockfree-object-pool 0.1.6 pools, one impl each.
macro_rules! lockfree_peer {
    ($name:ident, $pool:ident, $reusable:ident) => {
        struct $name<const N: usize>(&'static lockfree_object_pool::$pool<Obj<N>>);

        impl<const N: usize> Contestant for $name<N> {
            type Handle = lockfree_object_pool::$reusable<'static, Obj<N>>;
            fn for_thread(&self) -> Self {
                $name(self.0)
            }
            #[inline(always)]
            fn alloc(&mut self) -> Self::Handle {
                let mut r = self.0.pull();
                r.touch();
                r
            }
            #[inline(always)]
            fn free(&mut self, h: Self::Handle) {
                drop(h);
            }
        }
    };
}

lockfree_peer!(LfLinear, LinearObjectPool, LinearReusable);
lockfree_peer!(LfSpin, SpinLockObjectPool, SpinLockReusable);
lockfree_peer!(LfMutex, MutexObjectPool, MutexReusable);

/// sharded-slab 0.1.7 `Pool`: `create_with` returns a key, `clear` frees.
struct ShardedSlab<const N: usize>(&'static sharded_slab::Pool<Obj<N>>);

impl<const N: usize> Contestant for ShardedSlab<N> {
    type Handle = usize;
    fn for_thread(&self) -> Self {
        ShardedSlab(self.0)
    }
    #[inline(always)]
    fn alloc(&mut self) -> usize {
        self.0
            .create_with(Obj::touch)
            .expect("sharded-slab is full")
    }
    #[inline(always)]
    fn free(&mut self, key: usize) {
        let cleared = self.0.clear(key);
        debug_assert!(cleared);
    }
}

// ---------------------------------------------------------------------------
// Workloads: one generic function per pattern
// ---------------------------------------------------------------------------

/// Objects per batch.
const BATCH: usize = 1024;

/// One alloc + free.
#[inline(always)]
fn pair<C: Contestant>(c: &mut C) {
    let h = c.alloc();
    black_box(&h);
    c.free(h);
}

/// Allocates `slots.len()` objects into `slots`, then frees them in
/// `order` (a permutation of the slot indices).
#[inline(always)]
fn batch<C: Contestant>(c: &mut C, slots: &mut [Option<C::Handle>], order: &[u16]) {
    for s in slots.iter_mut() {
        *s = Some(c.alloc());
    }
    black_box(&mut *slots);
    for &i in order {
        if let Some(h) = slots[usize::from(i)].take() {
            c.free(h);
        }
    }
}

/// Free orders of a batch.
#[derive(Clone, Copy)]
enum Order {
    Lifo,
    Fifo,
    Random,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Lifo => "lifo",
            Order::Fifo => "fifo",
            Order::Random => "random",
        }
    }

    /// The free order of a batch of `n` objects (index = allocation order);
    /// `Random` is a fixed permutation (xorshift-driven Fisher-Yates).
    fn indices(self, n: usize) -> Vec<u16> {
        let mut v: Vec<u16> = (0..n)
            .map(|i| u16::try_from(i).expect("n <= 65536"))
            .collect();
        match self {
            Order::Fifo => {}
            Order::Lifo => v.reverse(),
            Order::Random => {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64;
                for i in (1..n).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
        }
        v
    }
}

/// Handles sent per channel message in `pc`.
const PC_BATCH: usize = 64;
/// Messages in flight in `pc` (bounds the objects in flight to 2048).
const PC_DEPTH: usize = 32;

/// One producer (this thread) allocates `total` objects and sends them in
/// batches of [`PC_BATCH`] over a bounded channel; one consumer thread
/// frees them and sends the empty batch vectors back for reuse, so no
/// allocation happens outside the contestant. Thread start and exit are
/// not timed.
fn producer_consumer<C: Contestant>(c: &C, total: u64) -> Duration {
    let (full_tx, full_rx) = sync_channel::<Vec<C::Handle>>(PC_DEPTH);
    let (empty_tx, empty_rx) = sync_channel::<Vec<C::Handle>>(PC_DEPTH);
    for _ in 0..PC_DEPTH {
        empty_tx
            .send(Vec::with_capacity(PC_BATCH))
            .expect("receiver alive");
    }
    let start = Barrier::new(2);
    let end = Barrier::new(2);
    let mut consumer = c.for_thread();
    let mut producer = c.for_thread();
    let (start, end) = (&start, &end);
    thread::scope(|s| {
        s.spawn(move || {
            start.wait();
            while let Ok(mut v) = full_rx.recv() {
                for h in v.drain(..) {
                    consumer.free(h);
                }
                // The producer may be gone already; the vector just drops.
                let _ = empty_tx.send(v);
            }
            end.wait();
        });
        start.wait();
        let t0 = Instant::now();
        let mut left = total;
        while left > 0 {
            let mut v = empty_rx.recv().expect("consumer alive");
            let n = left.min(PC_BATCH as u64);
            for _ in 0..n {
                v.push(producer.alloc());
            }
            left -= n;
            full_tx.send(v).expect("consumer alive");
        }
        drop(full_tx);
        end.wait();
        t0.elapsed()
    })
}

/// `threads` threads each allocate and free (LIFO) `rounds` batches of
/// [`BATCH`] objects; returns the wall time from a common start to the
/// last thread's end (thread start and exit not timed).
fn scaling<C: Contestant>(c: &C, threads: usize, rounds: u64) -> Duration {
    let order = Order::Lifo.indices(BATCH);
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    thread::scope(|s| {
        for _ in 0..threads {
            let mut mine = c.for_thread();
            let (order, start, end) = (&order, &start, &end);
            s.spawn(move || {
                let mut slots: Vec<Option<C::Handle>> = (0..BATCH).map(|_| None).collect();
                start.wait();
                for _ in 0..rounds {
                    batch(&mut mine, &mut slots, order);
                }
                end.wait();
            });
        }
        start.wait();
        let t0 = Instant::now();
        end.wait();
        t0.elapsed()
    })
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
                    b.iter_custom(|rounds| scaling(&peer, t, rounds));
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
