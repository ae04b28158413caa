//! Model-based tests: random sequences of operations on pools, handles and
//! the arena allocator, run on several threads, each step compared with a
//! simple reference model (which objects are alive, what they hold, their
//! counts).
//!
//! The operations of one sequence run one at a time, each on the worker
//! thread it names, so objects move between threads (allocated on one,
//! checked on another, freed on a third) while the outcome stays
//! deterministic and comparable with the model. At the end the workers
//! exit, which flushes their free lists.
//!
//! Each property runs 24 cases by default (a few seconds in debug; 2 under
//! Miri); set
//! `PROPTEST_CASES` for more, e.g. `PROPTEST_CASES=2000 cargo test --release
//! --test model`.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};

use allocator_api2::alloc::Allocator;
use hotpool::{arena, HotAlloc, Pool, PoolConfig, Pooled, Shared, Weak};
use proptest::prelude::*;

/// Worker threads in a sequence.
const THREADS: usize = 3;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(miri) { 2 } else { 24 });
    let mut config = ProptestConfig::with_cases(cases);
    if cfg!(miri) {
        // Miri's isolation forbids the regression file's reads and writes.
        config.failure_persistence = None;
    }
    config
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run closures one at a time, in the order given.
struct Workers {
    jobs: Vec<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    fn new() -> Workers {
        let (jobs, threads) = (0..THREADS)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Job>();
                (
                    tx,
                    thread::spawn(move || rx.into_iter().for_each(|job| job())),
                )
            })
            .unzip();
        Workers { jobs, threads }
    }

    /// Runs `f` on worker `t` and waits for its result.
    fn run<R: Send + 'static>(&self, t: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.jobs[t % THREADS]
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .expect("worker gone");
        rx.recv()
            .expect("an operation panicked on its worker (see its message above)")
    }

    /// Lets every worker exit (flushing its free lists) and joins it.
    fn finish(self) {
        drop(self.jobs);
        for t in self.threads {
            t.join().expect("worker panicked");
        }
    }
}

/// Picks an index into a collection of `len > 0` items.
fn pick(len: usize, choice: usize) -> usize {
    choice % len
}

// ---------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------

/// A pooled value whose every word derives from `key`.
type Words = [u64; 6];

fn words(key: u64) -> Words {
    core::array::from_fn(|i| key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64)
}

#[derive(Debug, Clone)]
enum PoolOp {
    Alloc { t: usize },
    Free { t: usize, which: usize },
    Rewrite { t: usize, which: usize },
    Clone { t: usize, which: usize },
    IntoInner { t: usize, which: usize },
    Trim { t: usize },
}

fn pool_op() -> impl Strategy<Value = PoolOp> {
    let t = 0..THREADS;
    let w = any::<usize>();
    prop_oneof![
        4 => t.clone().prop_map(|t| PoolOp::Alloc { t }),
        3 => (t.clone(), w).prop_map(|(t, which)| PoolOp::Free { t, which }),
        2 => (t.clone(), w).prop_map(|(t, which)| PoolOp::Rewrite { t, which }),
        1 => (t.clone(), w).prop_map(|(t, which)| PoolOp::Clone { t, which }),
        1 => (t.clone(), w).prop_map(|(t, which)| PoolOp::IntoInner { t, which }),
        1 => t.prop_map(|t| PoolOp::Trim { t }),
    ]
}

/// Runs `ops` against a pool with small batches (so lists overflow into the
/// depot often) and against a map of live objects to their keys.
fn run_pool(ops: Vec<PoolOp>) {
    let pool: Arc<Pool<Words>> = Arc::new(Pool::with_config(
        PoolConfig::new().batch(2).local_max(4).depot_max(6),
    ));
    let workers = Workers::new();
    let mut live: Vec<(u64, Pooled<Words>)> = Vec::new();
    let mut next_key = 0u64;
    for op in ops {
        match op {
            PoolOp::Alloc { t } => {
                next_key += 1;
                let (key, p) = (next_key, pool.clone());
                live.push((key, workers.run(t, move || p.alloc(words(key)))));
            }
            PoolOp::Free { t, which } if !live.is_empty() => {
                let (key, obj) = live.swap_remove(pick(live.len(), which));
                workers.run(t, move || {
                    assert_eq!(*obj, words(key), "object {key} changed");
                    drop(obj);
                });
            }
            PoolOp::Rewrite { t, which } if !live.is_empty() => {
                let i = pick(live.len(), which);
                let (key, mut obj) = live.swap_remove(i);
                next_key += 1;
                let new = next_key;
                let obj = workers.run(t, move || {
                    assert_eq!(*obj, words(key), "object {key} changed");
                    *obj = words(new);
                    obj
                });
                live.push((new, obj));
            }
            PoolOp::Clone { t, which } if !live.is_empty() => {
                let (key, obj) = live.swap_remove(pick(live.len(), which));
                let (a, b) = workers.run(t, move || {
                    let copy = obj.clone();
                    assert!(!std::ptr::eq(&*copy, &*obj), "a clone shares its slot");
                    (obj, copy)
                });
                live.push((key, a));
                live.push((key, b));
            }
            PoolOp::IntoInner { t, which } if !live.is_empty() => {
                let (key, obj) = live.swap_remove(pick(live.len(), which));
                let value = workers.run(t, move || Pooled::into_inner(obj));
                assert_eq!(value, words(key));
            }
            PoolOp::Trim { t } => {
                let p = pool.clone();
                workers.run(t, move || p.trim());
            }
            _ => {}
        }
        // The workers are idle, so the statistics balance exactly.
        let s = pool.stats();
        assert_eq!(s.in_use, live.len(), "in_use differs from the model");
        assert_eq!(
            s.capacity,
            s.in_use + s.local_free + s.depot_free + s.chunk_free
        );
        let mut addrs: Vec<*const Words> = live.iter().map(|(_, p)| &**p as *const _).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), live.len(), "two live objects share a slot");
    }
    for (i, (key, obj)) in live.into_iter().enumerate() {
        workers.run(i, move || assert_eq!(*obj, words(key)));
    }
    workers.finish();
    assert_eq!(pool.stats().in_use, 0);
    pool.trim();
    let s = pool.stats();
    assert_eq!((s.chunks, s.local_free, s.depot_free), (0, 0, 0));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_matches_model(ops in prop::collection::vec(pool_op(), 1..120)) {
        run_pool(ops);
    }
}

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

/// Drops of each key, recorded by `Val::drop`.
type Drops = Arc<Mutex<HashMap<u64, u32>>>;

struct Val {
    key: u64,
    words: Words,
    drops: Drops,
}

impl Drop for Val {
    fn drop(&mut self) {
        *self.drops.lock().unwrap().entry(self.key).or_default() += 1;
    }
}

#[derive(Debug, Clone)]
enum HandleOp {
    New { t: usize, pooled: bool },
    Clone { t: usize, which: usize },
    Drop { t: usize, which: usize },
    Downgrade { which: usize },
    Upgrade { t: usize, which: usize },
    TryUnwrap { t: usize, which: usize },
}

fn handle_op() -> impl Strategy<Value = HandleOp> {
    let t = 0..THREADS;
    let w = any::<usize>();
    prop_oneof![
        3 => (t.clone(), any::<bool>()).prop_map(|(t, pooled)| HandleOp::New { t, pooled }),
        2 => (t.clone(), w).prop_map(|(t, which)| HandleOp::Clone { t, which }),
        3 => (t.clone(), w).prop_map(|(t, which)| HandleOp::Drop { t, which }),
        2 => w.prop_map(|which| HandleOp::Downgrade { which }),
        3 => (t.clone(), w).prop_map(|(t, which)| HandleOp::Upgrade { t, which }),
        1 => (t, w).prop_map(|(t, which)| HandleOp::TryUnwrap { t, which }),
    ]
}

/// Keys are unique across the whole test binary.
static KEYS: AtomicU64 = AtomicU64::new(1);

/// Runs `ops` against `Shared`/`Weak` (boxed or from a pool) and a model
/// of strong counts per object.
fn run_handles(ops: Vec<HandleOp>) {
    let pool: Arc<Pool<Val>> = Arc::new(Pool::new());
    let drops: Drops = Arc::default();
    let workers = Workers::new();
    let mut owners: Vec<(u64, Shared<Val>)> = Vec::new();
    let mut weaks: Vec<(u64, Weak<Val>)> = Vec::new();
    // Model: strong count and whether the memory is pooled, per key.
    let mut count: HashMap<u64, (usize, bool)> = HashMap::new();
    let dropped = |key: u64| drops.lock().unwrap().get(&key).copied().unwrap_or(0);
    for op in ops {
        match op {
            HandleOp::New { t, pooled } => {
                let key = KEYS.fetch_add(1, Ordering::Relaxed);
                let (p, d) = (pool.clone(), drops.clone());
                let s = workers.run(t, move || {
                    let v = Val {
                        key,
                        words: words(key),
                        drops: d,
                    };
                    if pooled {
                        Shared::new_in(v, &p)
                    } else {
                        Shared::new(v)
                    }
                });
                count.insert(key, (1, pooled));
                owners.push((key, s));
            }
            HandleOp::Clone { t, which } if !owners.is_empty() => {
                let (key, s) = owners.swap_remove(pick(owners.len(), which));
                let (a, b) = workers.run(t, move || {
                    let c = s.clone();
                    (s, c)
                });
                count.get_mut(&key).unwrap().0 += 1;
                owners.push((key, a));
                owners.push((key, b));
            }
            HandleOp::Drop { t, which } if !owners.is_empty() => {
                let (key, s) = owners.swap_remove(pick(owners.len(), which));
                workers.run(t, move || {
                    assert_eq!((s.key, s.words), (key, words(key)));
                    drop(s);
                });
                let c = &mut count.get_mut(&key).unwrap().0;
                *c -= 1;
                assert_eq!(dropped(key), u32::from(*c == 0), "drops of {key}");
            }
            HandleOp::Downgrade { which } if !owners.is_empty() => {
                let (key, s) = &owners[pick(owners.len(), which)];
                weaks.push((*key, Shared::downgrade(s)));
            }
            HandleOp::Upgrade { t, which } if !weaks.is_empty() => {
                let (key, w) = weaks[pick(weaks.len(), which)];
                let got = workers.run(t, move || w.upgrade());
                let alive = count[&key].0 > 0;
                assert_eq!(got.is_some(), alive, "upgrade of {key}");
                if let Some(s) = got {
                    assert_eq!((s.key, s.words), (key, words(key)));
                    count.get_mut(&key).unwrap().0 += 1;
                    owners.push((key, s));
                }
            }
            HandleOp::TryUnwrap { t, which } if !owners.is_empty() => {
                let (key, s) = owners.swap_remove(pick(owners.len(), which));
                let unique = count[&key].0 == 1;
                match workers.run(t, move || Shared::try_unwrap(s)) {
                    Ok(v) => {
                        assert!(unique, "try_unwrap of a shared {key}");
                        assert_eq!(v.words, words(key));
                        count.get_mut(&key).unwrap().0 = 0;
                    }
                    Err(s) => {
                        assert!(!unique, "try_unwrap of the only owner of {key} failed");
                        owners.push((key, s));
                    }
                }
            }
            _ => {}
        }
        for (key, s) in &owners {
            assert_eq!(Shared::strong_count(s), count[key].0, "count of {key}");
        }
        for (key, w) in &weaks {
            assert_eq!(w.strong_count(), count[key].0, "weak count of {key}");
        }
        let pooled_alive = count.values().filter(|(c, p)| *c > 0 && *p).count();
        assert_eq!(pool.stats().in_use, pooled_alive, "pooled objects alive");
    }
    drop(owners);
    workers.finish();
    for (key, w) in &weaks {
        assert!(w.upgrade().is_none(), "{key} outlived its owners");
    }
    for key in count.keys() {
        assert_eq!(dropped(*key), 1, "{key} not dropped exactly once");
    }
    assert_eq!(pool.stats().in_use, 0);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn handles_match_model(ops in prop::collection::vec(handle_op(), 1..120)) {
        run_handles(ops);
    }
}

// ---------------------------------------------------------------------------
// Arena
// ---------------------------------------------------------------------------

/// Which interface a block was allocated through (and is resized and freed
/// through).
#[derive(Debug, Clone, Copy)]
enum Api {
    /// `arena::try_alloc` / `arena::free`.
    Raw,
    /// `GlobalAlloc for HotAlloc`: `alloc` / `realloc` / `dealloc`.
    Global,
    /// `allocator_api2::Allocator for HotAlloc`: `allocate` / `grow` /
    /// `shrink` / `deallocate`.
    Api2,
}

#[derive(Debug, Clone)]
enum ArenaOp {
    Alloc {
        t: usize,
        size: usize,
        align: usize,
        api: Api,
    },
    Free {
        t: usize,
        which: usize,
    },
    Resize {
        t: usize,
        which: usize,
        size: usize,
    },
}

/// Small blocks mostly, some large, a few huge (beyond a chunk).
fn block_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1usize..=512,
        4 => 513usize..=16 << 10,
        2 => (16usize << 10)..=(512 << 10),
        1 => (2usize << 20)..=(6 << 20),
    ]
}

fn arena_op() -> impl Strategy<Value = ArenaOp> {
    let t = 0..THREADS;
    let w = any::<usize>();
    let align = prop::sample::select(vec![1usize, 8, 16, 64, 4096]);
    let api = prop::sample::select(vec![Api::Raw, Api::Global, Api::Api2]);
    prop_oneof![
        4 => (t.clone(), block_size(), align, api)
            .prop_map(|(t, size, align, api)| ArenaOp::Alloc { t, size, align, api }),
        3 => (t.clone(), w).prop_map(|(t, which)| ArenaOp::Free { t, which }),
        2 => (t, w, block_size()).prop_map(|(t, which, size)| ArenaOp::Resize { t, which, size }),
    ]
}

/// A live block and what the model says it holds: `size` bytes of `fill`.
#[derive(Debug)]
struct Block {
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    api: Api,
    fill: u8,
}

// SAFETY: a block is plain memory owned by whoever holds the `Block`; the
// arena allows freeing it on any thread.
unsafe impl Send for Block {}

impl Block {
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).unwrap()
    }

    /// Checks the model's content, allowing only the first `len` bytes.
    fn check(&self, len: usize) {
        // SAFETY: the block is live and has at least `size >= len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), len) };
        if let Some(at) = bytes.iter().position(|&b| b != self.fill) {
            panic!("{self:?}: byte {at} is {} not {}", bytes[at], self.fill);
        }
        // SAFETY: live arena block.
        let usable = unsafe { arena::usable_size(self.ptr) };
        assert!(usable >= self.size, "{self:?}: usable_size {usable}");
    }

    fn fill(&mut self, fill: u8) {
        self.fill = fill;
        // SAFETY: the block is live and `size` bytes long.
        unsafe { self.ptr.as_ptr().write_bytes(fill, self.size) };
    }

    fn alloc(size: usize, align: usize, api: Api, fill: u8) -> Block {
        let layout = Layout::from_size_align(size, align).unwrap();
        let ptr = match api {
            Api::Raw => arena::try_alloc(size, align).unwrap(),
            // SAFETY: the layout is not zero-sized.
            Api::Global => NonNull::new(unsafe { HotAlloc.alloc(layout) }).unwrap(),
            Api::Api2 => HotAlloc.allocate(layout).unwrap().cast(),
        };
        assert_eq!(ptr.as_ptr() as usize % align, 0, "misaligned block");
        let mut b = Block {
            ptr,
            size,
            align,
            api,
            fill,
        };
        b.fill(fill);
        b
    }

    fn free(self) {
        self.check(self.size);
        // SAFETY: live block of this api and layout, freed once.
        unsafe {
            match self.api {
                Api::Raw => arena::free(self.ptr),
                Api::Global => HotAlloc.dealloc(self.ptr.as_ptr(), self.layout()),
                Api::Api2 => HotAlloc.deallocate(self.ptr, self.layout()),
            }
        }
    }

    /// Resizes through the block's api; the common prefix must survive.
    fn resize(mut self, size: usize, fill: u8) -> Block {
        self.check(self.size);
        let old = self.layout();
        let new = Layout::from_size_align(size, self.align).unwrap();
        // SAFETY: live block of this layout; `new` keeps its alignment.
        self.ptr = unsafe {
            match self.api {
                // The arena's raw blocks may be resized through GlobalAlloc
                // with the layout they were made with.
                Api::Raw | Api::Global => {
                    NonNull::new(HotAlloc.realloc(self.ptr.as_ptr(), old, size)).unwrap()
                }
                Api::Api2 if size >= self.size => HotAlloc.grow(self.ptr, old, new).unwrap().cast(),
                Api::Api2 => HotAlloc.shrink(self.ptr, old, new).unwrap().cast(),
            }
        };
        let kept = self.size.min(size);
        self.size = size;
        self.check(kept);
        self.fill(fill);
        self
    }

    fn range(&self) -> (usize, usize) {
        let start = self.ptr.as_ptr() as usize;
        (start, start + self.size)
    }
}

/// Runs `ops` against the arena and a list of live blocks with their
/// contents: content survives, blocks never overlap, usable sizes cover the
/// request.
fn run_arena(ops: Vec<ArenaOp>) {
    let workers = Workers::new();
    let mut live: Vec<Block> = Vec::new();
    let mut fill = 0u8;
    for op in ops {
        fill = fill.wrapping_add(1);
        match op {
            ArenaOp::Alloc {
                t,
                size,
                align,
                api,
            } => live.push(workers.run(t, move || Block::alloc(size, align, api, fill))),
            ArenaOp::Free { t, which } if !live.is_empty() => {
                let b = live.swap_remove(pick(live.len(), which));
                workers.run(t, move || b.free());
            }
            ArenaOp::Resize { t, which, size } if !live.is_empty() => {
                let b = live.swap_remove(pick(live.len(), which));
                live.push(workers.run(t, move || b.resize(size, fill)));
            }
            _ => {}
        }
        let mut ranges: Vec<_> = live.iter().map(Block::range).collect();
        ranges.sort_unstable();
        for pair in ranges.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "live blocks overlap: {pair:?}");
        }
    }
    for (i, b) in live.into_iter().enumerate() {
        workers.run(i, move || b.free());
    }
    workers.finish();
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arena_matches_model(ops in prop::collection::vec(arena_op(), 1..100)) {
        run_arena(ops);
    }
}
