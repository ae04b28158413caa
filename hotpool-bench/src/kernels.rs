//! The workloads that have no kernel in `benches/`: the router (messages
//! with buffer chains passed many-to-many), the order book (allocator-api2
//! collections), and the weak-handle patterns; plus [`Via`], which turns a
//! `GlobalAlloc` into an `allocator_api2` allocator.

use std::alloc::GlobalAlloc;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::ops::DerefMut;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use allocator_api2::alloc::{AllocError, Allocator, Layout};
use allocator_api2::boxed::Box as ABox;
use allocator_api2::vec::Vec as AVec;
use hotpool::{Pool, Pooled, Shared, Weak};

use crate::alloc_kernels::rng;

// ---------------------------------------------------------------------------
// GlobalAlloc -> Allocator
// ---------------------------------------------------------------------------

/// A `GlobalAlloc` used as an `allocator_api2` allocator (growing goes to
/// its `realloc`), so collections allocate from it explicitly.
pub struct Via<G: 'static>(pub &'static G);

impl<G> Clone for Via<G> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<G> Copy for Via<G> {}

fn empty_block(align: usize) -> NonNull<[u8]> {
    // `align` is a non-zero power of two: an aligned dangling pointer.
    let p =
        NonNull::new(std::ptr::null_mut::<u8>().wrapping_add(align)).unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(p, 0)
}

// SAFETY: blocks come from `G`, are valid for their layout until freed
// through the same `G`, and `realloc` keeps their contents; zero-size
// requests get a dangling aligned pointer that never reaches `G`.
unsafe impl<G: GlobalAlloc + Sync> Allocator for Via<G> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return Ok(empty_block(layout.align()));
        }
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { self.0.alloc(layout) };
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the caller passes a block of ours with its layout.
            unsafe { self.0.dealloc(ptr.as_ptr(), layout) }
        }
    }

    /// `realloc` where the alignment stays (always, in these workloads);
    /// shrinking keeps the trait's default (allocate, copy, free).
    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() != 0 && old.align() == new.align() {
            // SAFETY: the caller passes a live block of ours with its
            // layout `old`; `new` is no smaller, so its size is non-zero.
            let p = unsafe { self.0.realloc(ptr.as_ptr(), old, new.size()) };
            return NonNull::new(p)
                .map(|p| NonNull::slice_from_raw_parts(p, new.size()))
                .ok_or(AllocError);
        }
        let b = self.allocate(new)?;
        // SAFETY: both blocks are live, distinct and hold `old.size()`
        // bytes; the old one is ours with its layout.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), b.cast::<u8>().as_ptr(), old.size());
            self.deallocate(ptr, old);
        }
        Ok(b)
    }
}

// ---------------------------------------------------------------------------
// Router: many-to-many messages with buffer chains
// ---------------------------------------------------------------------------

/// Bytes of payload per buffer, as the router's `qd_buffer_t`.
pub const BUFFER: usize = 512;
/// Payload of one message: a chain of four buffers.
pub const MESSAGE: usize = 4 * BUFFER;
/// Messages a worker builds and sends at once.
pub const ROUTER_BATCH: usize = 64;

/// Where messages and buffers are allocated.
pub trait Heap: Copy + Send + Sync + 'static {
    /// The owning pointer (`Pooled` or an allocator-api2 `Box`).
    type Ptr<T: Send + 'static>: DerefMut<Target = T> + Send;
    /// Allocates a buffer.
    fn buffer(self, b: Buffer<Self>) -> Self::Ptr<Buffer<Self>>;
    /// Allocates a message header.
    fn message(self, m: Message<Self>) -> Self::Ptr<Message<Self>>;
}

/// One link of a message's buffer chain.
pub struct Buffer<H: Heap> {
    next: Option<H::Ptr<Buffer<H>>>,
    len: usize,
    data: [u8; BUFFER],
}

/// A message header owning its buffer chain.
pub struct Message<H: Heap> {
    to: usize,
    sum: u64,
    body: Option<H::Ptr<Buffer<H>>>,
}

static ROUTER_MESSAGES: Pool<Message<Pools>> = Pool::new();
static ROUTER_BUFFERS: Pool<Buffer<Pools>> = Pool::new();

/// Messages and buffers from hotpool's typed pools.
#[derive(Clone, Copy)]
pub struct Pools;

impl Heap for Pools {
    type Ptr<T: Send + 'static> = Pooled<T>;
    fn buffer(self, b: Buffer<Self>) -> Pooled<Buffer<Self>> {
        ROUTER_BUFFERS.alloc(b)
    }
    fn message(self, m: Message<Self>) -> Pooled<Message<Self>> {
        ROUTER_MESSAGES.alloc(m)
    }
}

/// Messages and buffers boxed in an allocator.
#[derive(Clone, Copy)]
pub struct Boxed<A>(pub A);

impl<A: Allocator + Copy + Send + Sync + 'static> Heap for Boxed<A> {
    type Ptr<T: Send + 'static> = ABox<T, A>;
    fn buffer(self, b: Buffer<Self>) -> ABox<Buffer<Self>, A> {
        ABox::new_in(b, self.0)
    }
    fn message(self, m: Message<Self>) -> ABox<Message<Self>, A> {
        ABox::new_in(m, self.0)
    }
}

fn build<H: Heap>(heap: H, id: u64, to: usize) -> H::Ptr<Message<H>> {
    let mut body = None;
    let mut sum = 0;
    for i in 0..MESSAGE / BUFFER {
        let fill = (id as u8).wrapping_add(i as u8);
        let mut b = heap.buffer(Buffer {
            next: body.take(),
            len: BUFFER,
            data: [0; BUFFER],
        });
        b.data.fill(fill);
        sum += u64::from(fill) * BUFFER as u64;
        body = Some(b);
    }
    heap.message(Message { to, sum, body })
}

/// Walks a delivered message's chain and checks its sum.
fn check<H: Heap>(m: &Message<H>, me: usize) {
    let (mut sum, mut next) = (0u64, m.body.as_deref());
    while let Some(b) = next {
        sum += u64::from(b.data[b.len - 1]) * b.len as u64;
        next = b.next.as_deref();
    }
    assert!(m.to == me && sum == m.sum, "corrupted message");
}

type Inbox<H> = Vec<<H as Heap>::Ptr<Message<H>>>;

/// `workers` threads each build `batches` batches of [`ROUTER_BATCH`]
/// messages and send them round-robin to the other workers (to itself when
/// alone); every worker checks and frees what it receives. Returns the wall
/// time from a common start until every message is freed.
pub fn router<H: Heap>(heap: H, workers: usize, batches: u64) -> Duration {
    let mut txs: Vec<SyncSender<Inbox<H>>> = Vec::new();
    let mut rxs: Vec<Receiver<Inbox<H>>> = Vec::new();
    for (tx, rx) in (0..workers).map(|_| sync_channel(8)) {
        txs.push(tx);
        rxs.push(rx);
    }
    let total = workers as u64 * batches * ROUTER_BATCH as u64;
    let done = AtomicU64::new(0);
    let start = Barrier::new(workers + 1);
    thread::scope(|s| {
        for (me, rx) in rxs.into_iter().enumerate() {
            let (txs, done, start) = (txs.clone(), &done, &start);
            s.spawn(move || {
                let drain = |rx: &Receiver<Inbox<H>>| {
                    while let Ok(batch) = rx.try_recv() {
                        for m in &batch {
                            check(m, me);
                        }
                        done.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                };
                start.wait();
                let mut id = (me as u64) << 40;
                for round in 0..batches {
                    let to = if workers == 1 {
                        me
                    } else {
                        (me + 1 + round as usize % (workers - 1)) % workers
                    };
                    let mut batch: Inbox<H> = (0..ROUTER_BATCH)
                        .map(|_| {
                            id += 1;
                            build(heap, id, to)
                        })
                        .collect();
                    loop {
                        match txs[to].try_send(batch) {
                            Ok(()) => break,
                            Err(TrySendError::Full(back)) => {
                                batch = back;
                                drain(&rx);
                                thread::yield_now();
                            }
                            Err(TrySendError::Disconnected(_)) => {
                                unreachable!("workers outlive the run")
                            }
                        }
                    }
                    drain(&rx);
                }
                while done.load(Ordering::Relaxed) < total {
                    drain(&rx);
                    thread::yield_now();
                }
            });
        }
        start.wait();
        let t0 = Instant::now();
        while done.load(Ordering::Relaxed) < total {
            thread::sleep(Duration::from_micros(50));
        }
        t0.elapsed()
    })
}

// ---------------------------------------------------------------------------
// Order book on allocator-api2 collections
// ---------------------------------------------------------------------------

/// Orders kept in the book on average.
pub const BOOK_DEPTH: usize = 4096;

/// A multiplicative hash for order ids (ids are sequential).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
}

struct Order<A: Allocator> {
    price: u64,
    qty: u64,
    client: AVec<u8, A>,
}

/// One order book: filled with [`BOOK_DEPTH`] orders, then (timed between
/// `go` and `done`) `ops` random adds (each with a 16-64 byte client tag)
/// and cancels of a random live order, in a hashbrown map and a vector of
/// live ids that both allocate from `a`, as does every tag. Returns a
/// checksum of the cancelled orders.
pub fn order_book<A: Allocator + Copy>(
    a: A,
    ops: u64,
    seed: u64,
    go: &Barrier,
    done: &Barrier,
) -> u64 {
    let mut book: hashbrown::HashMap<u64, Order<A>, BuildHasherDefault<IdHasher>, A> =
        hashbrown::HashMap::with_hasher_in(BuildHasherDefault::default(), a);
    let mut live: AVec<u64, A> = AVec::new_in(a);
    let (mut seed, mut next, mut sum) = (seed | 1, 0u64, 0u64);
    let fill = BOOK_DEPTH as u64;
    for op in 0..fill + ops {
        if op == fill {
            go.wait();
        }
        let r = rng(&mut seed);
        let add = live.len() < BOOK_DEPTH / 2 || (r & 1 == 0 && live.len() < 2 * BOOK_DEPTH);
        if add {
            let len = 16 + (r >> 8) as usize % 49;
            let mut client = AVec::with_capacity_in(len, a);
            client.resize(len, r as u8);
            let order = Order {
                price: 10_000 + (r >> 32) % 512,
                qty: 1 + (r >> 20) % 100,
                client,
            };
            book.insert(next, order);
            live.push(next);
            next += 1;
        } else {
            let id = live.swap_remove((r >> 16) as usize % live.len());
            let o = book.remove(&id).expect("a live id is in the book");
            sum = sum.wrapping_add(o.price * o.qty + o.client.len() as u64);
        }
    }
    done.wait();
    black_box(sum)
}

// ---------------------------------------------------------------------------
// Weak handles
// ---------------------------------------------------------------------------

/// A 256-byte object behind a handle.
pub type Obj = [u8; 256];

/// Objects whose handles the handle workloads use.
pub const HANDLES: usize = 4096;

/// A store of objects reached through copyable or clonable handles.
pub trait Handles {
    /// What a holder keeps to reach an object later.
    type Key: Clone;
    /// Stores an object and returns its handle.
    fn insert(&mut self, v: Obj) -> Self::Key;
    /// Drops the object of a live handle.
    fn remove(&mut self, k: &Self::Key);
    /// Reads the object's first byte, `None` if it is gone.
    fn read(&self, k: &Self::Key) -> Option<u8>;
}

/// hotpool `Shared`/`Weak`: owners in a slab, holders keep the `Weak`.
/// `pool` selects `Shared::new_in` over a pool instead of `Shared::new`.
pub struct SharedStore {
    owners: slab::Slab<Shared<Obj>>,
    pool: Option<&'static Pool<Obj>>,
}

impl SharedStore {
    /// An empty store, boxing objects or taking them from `pool`.
    pub fn new(pool: Option<&'static Pool<Obj>>) -> Self {
        SharedStore {
            owners: slab::Slab::new(),
            pool,
        }
    }
}

impl Handles for SharedStore {
    type Key = (Weak<Obj>, usize);
    fn insert(&mut self, v: Obj) -> Self::Key {
        let s = match self.pool {
            Some(p) => Shared::new_in(v, p),
            None => Shared::new(v),
        };
        let w = Shared::downgrade(&s);
        (w, self.owners.insert(s))
    }
    fn remove(&mut self, k: &Self::Key) {
        drop(self.owners.remove(k.1));
    }
    fn read(&self, k: &Self::Key) -> Option<u8> {
        k.0.upgrade().map(|s| s[0])
    }
}

/// `std::sync::Arc` owners in a slab, holders keep `std::sync::Weak`.
#[derive(Default)]
pub struct ArcStore(slab::Slab<Arc<Obj>>);

impl Handles for ArcStore {
    type Key = (std::sync::Weak<Obj>, usize);
    fn insert(&mut self, v: Obj) -> Self::Key {
        let a = Arc::new(v);
        (Arc::downgrade(&a), self.0.insert(a))
    }
    fn remove(&mut self, k: &Self::Key) {
        drop(self.0.remove(k.1));
    }
    fn read(&self, k: &Self::Key) -> Option<u8> {
        k.0.upgrade().map(|a| a[0])
    }
}

/// `Handles` for a generational container keyed by a `Copy` key:
/// `$insert` maps what its `insert` returns to the key.
macro_rules! keyed {
    ($ty:ty, $key:ty, $insert:expr) => {
        impl Handles for $ty {
            type Key = $key;
            fn insert(&mut self, v: Obj) -> Self::Key {
                $insert(<$ty>::insert(self, v))
            }
            fn remove(&mut self, k: &Self::Key) {
                <$ty>::remove(self, *k);
            }
            fn read(&self, k: &Self::Key) -> Option<u8> {
                self.get(*k).map(|v| v[0])
            }
        }
    };
}

keyed!(slotmap::SlotMap<slotmap::DefaultKey, Obj>, slotmap::DefaultKey, |k| k);
keyed!(
    generational_arena::Arena<Obj>,
    generational_arena::Index,
    |k| k
);
keyed!(sharded_slab::Slab<Obj>, usize, |k: Option<usize>| k
    .expect("sharded-slab is full"));

/// The keys of [`HANDLES`] objects, every eighth one stale: its object was
/// removed and another object stored after it (reusing its slot).
pub fn fill<S: Handles>(s: &mut S) -> Vec<S::Key> {
    let mut keys: Vec<S::Key> = (0..HANDLES).map(|i| s.insert([i as u8; 256])).collect();
    for k in keys.iter().step_by(8) {
        s.remove(k);
    }
    for k in keys.iter_mut().skip(1).step_by(8) {
        s.remove(k);
        *k = s.insert([7; 256]);
    }
    for _ in (0..HANDLES).step_by(8) {
        keys.push(s.insert([9; 256]));
    }
    keys
}

/// `ops` reads through random handles (one in eight stale).
pub fn lookups<S: Handles>(s: &S, keys: &[S::Key], ops: u64) -> u64 {
    let (mut seed, mut found) = (99u64, 0u64);
    for _ in 0..ops {
        let k = &keys[rng(&mut seed) as usize % keys.len()];
        found += u64::from(s.read(black_box(k)).is_some());
    }
    black_box(found)
}

/// `ops` replacements: drop the object of a random live handle, store a
/// new one, read through the old handle (gone) and the new one.
pub fn replace<S: Handles>(s: &mut S, keys: &mut [S::Key], ops: u64) -> u64 {
    let (mut seed, mut found) = (77u64, 0u64);
    for _ in 0..ops {
        let i = rng(&mut seed) as usize % keys.len();
        if s.read(&keys[i]).is_none() {
            keys[i] = s.insert([1; 256]);
        }
        let old = keys[i].clone();
        s.remove(&old);
        keys[i] = s.insert([2; 256]);
        found += u64::from(s.read(&old).is_some()) + u64::from(s.read(&keys[i]).is_some());
    }
    black_box(found)
}
