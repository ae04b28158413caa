//! The allocation kernels of the pool benchmark, shared by `benches/pool.rs`
//! and the `compare` report (included by both with `#[path]`): the
//! [`Contestant`] abstraction, its implementations for hotpool and the
//! peers, and one generic function per workload pattern.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::mpsc::sync_channel;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use hotpool::{Pool, Pooled};

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

/// Writes the first and last word of an `n`-byte object at `p`: the only
/// touch every peer makes on alloc.
#[inline(always)]
pub fn touch(p: *mut u8, n: usize) {
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
pub struct Obj<const N: usize>([u8; N]);

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
pub trait Contestant: Send + Sized {
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
pub struct Hot<const N: usize>(pub &'static Pool<[u8; N]>);

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
pub struct Raw(NonNull<u8>);
// SAFETY: a Raw is the sole owner of plain bytes; any thread may free it.
unsafe impl Send for Raw {}

/// `Box` on a given allocator: `GlobalAlloc::alloc` / `dealloc` directly.
pub struct BoxOn<A: GlobalAlloc + Sync + 'static, const N: usize>(pub &'static A);

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
pub struct SlabPeer<const N: usize>(pub slab::Slab<MaybeUninit<[u8; N]>>);

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

/// object-pool 0.6: `Pool::pull` with a fallback. The pool holds
/// `Box<T>`, since `Reusable` moves its value in and out of the pool's
/// `Vec` (a 4 KiB copy each way otherwise).
pub struct ObjectPool<const N: usize>(pub &'static object_pool::Pool<Box<Obj<N>>>);

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
        pub struct $name<const N: usize>(pub &'static lockfree_object_pool::$pool<Obj<N>>);

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
pub struct ShardedSlab<const N: usize>(pub &'static sharded_slab::Pool<Obj<N>>);

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
pub const BATCH: usize = 1024;

/// One alloc + free.
#[inline(always)]
pub fn pair<C: Contestant>(c: &mut C) {
    let h = c.alloc();
    black_box(&h);
    c.free(h);
}

/// Allocates `slots.len()` objects into `slots`, then frees them in
/// `order` (a permutation of the slot indices).
#[inline(always)]
pub fn batch<C: Contestant>(c: &mut C, slots: &mut [Option<C::Handle>], order: &[u16]) {
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
pub enum Order {
    Lifo,
    Fifo,
    Random,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Lifo => "lifo",
            Order::Fifo => "fifo",
            Order::Random => "random",
        }
    }

    /// The free order of a batch of `n` objects (index = allocation order);
    /// `Random` is a fixed permutation (xorshift-driven Fisher-Yates).
    pub fn indices(self, n: usize) -> Vec<u16> {
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

/// Stack size of the kernels' threads: lockfree-object-pool builds a page
/// of 32 objects on the stack (2 MiB of 64 KiB objects, more unoptimized).
pub const STACK: usize = 64 << 20;

/// Spawns `f` on a scoped thread with a [`STACK`]-sized stack.
pub fn spawn_big<'scope, T: Send + 'scope>(
    s: &'scope thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    thread::Builder::new()
        .stack_size(STACK)
        .spawn_scoped(s, f)
        .expect("thread spawned")
}

/// Handles sent per channel message in `pc`.
pub const PC_BATCH: usize = 64;
/// Messages in flight in `pc` (bounds the objects in flight to 2048).
pub const PC_DEPTH: usize = 32;

/// One producer (this thread) allocates `total` objects and sends them in
/// batches of [`PC_BATCH`] over a bounded channel; one consumer thread
/// frees them and sends the empty batch vectors back for reuse, so no
/// allocation happens outside the contestant. Thread start and exit are
/// not timed.
pub fn producer_consumer<C: Contestant>(c: &C, total: u64) -> Duration {
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
        spawn_big(s, move || {
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

/// Runs `body` on `threads` threads, each with its own `c.for_thread()`;
/// `body` waits on the barrier it is given once its set-up is done. Returns
/// the wall time from that common start to the last thread's end (thread
/// start and exit not timed).
pub fn on_threads<C: Contestant>(
    c: &C,
    threads: usize,
    body: impl Fn(C, &Barrier) + Sync,
) -> Duration {
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    thread::scope(|s| {
        for _ in 0..threads {
            let mine = c.for_thread();
            let (body, start, end) = (&body, &start, &end);
            spawn_big(s, move || {
                body(mine, start);
                end.wait();
            });
        }
        start.wait();
        let t0 = Instant::now();
        end.wait();
        t0.elapsed()
    })
}

/// `threads` threads each allocate and free `rounds` batches of [`BATCH`]
/// objects, freeing in `order`; timed as [`on_threads`].
pub fn scaling<C: Contestant>(c: &C, order: Order, threads: usize, rounds: u64) -> Duration {
    let order = order.indices(BATCH);
    on_threads(c, threads, |mut mine, start| {
        let mut slots: Vec<Option<C::Handle>> = (0..BATCH).map(|_| None).collect();
        start.wait();
        for _ in 0..rounds {
            batch(&mut mine, &mut slots, &order);
        }
    })
}
