//! `Pool`/`Pooled`/`Shared`/`Weak` operation sequences on two threads.
//!
//! The input is a list of phases; in each phase both threads run their own
//! list of operations at once (allocate, drop, write, move out, send to the
//! other thread, `Shared::new`/`new_in`/clone/downgrade/`into_inner`,
//! `Weak::upgrade`, `Pool::trim`). Objects sent to the other thread arrive
//! at the start of the next phase; phases are separated by barriers, so a
//! run depends on the input only (up to the interleaving inside a phase).
//!
//! Checks: each object keeps its contents (an id and a payload derived from
//! it) and is dropped exactly once; an upgrade of a `Weak` whose object was
//! already dropped gives `None`, one whose object this thread owns gives
//! `Some` of that object; between phases (both threads parked) the pool's
//! statistics balance (`capacity = in_use + local_free + depot_free +
//! chunk_free`) and `in_use` is the number of live pool objects; at the end
//! every object is dropped, no `Weak` upgrades, and a trim frees every chunk.
#![no_main]

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Barrier, Mutex};

use arbitrary::Arbitrary;
use hotpool::{Backing, Pool, PoolConfig, Pooled, Shared, Weak};
use libfuzzer_sys::fuzz_target;

const MAX_OBJECTS: usize = 2048;
const MAX_PHASES: usize = 12;
const MAX_OPS: usize = 48;
const MAX_HELD: usize = 64;

/// Life of each object id in the current input: never made, live, dropped.
static STATE: [AtomicU8; MAX_OBJECTS] = [const { AtomicU8::new(NEW) }; MAX_OBJECTS];
const NEW: u8 = 0;
const LIVE: u8 = 1;
const DROPPED: u8 = 2;
/// Whether a `Weak` of each object was made (an upgrade may then race).
static WEAK_MADE: [AtomicBool; MAX_OBJECTS] = [const { AtomicBool::new(false) }; MAX_OBJECTS];
/// Next free id.
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
/// Objects living in pool slots (`Pool::alloc`, `Shared::new_in`).
static IN_POOL: AtomicUsize = AtomicUsize::new(0);
/// One input at a time (libFuzzer runs inputs on one thread, but be sure).
static RUN: Mutex<()> = Mutex::new(());

fn payload(id: usize, version: u64) -> [u64; 3] {
    let x = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ version;
    [x, !x, x.rotate_left(17)]
}

/// A pooled value that knows who it is.
struct Obj {
    id: usize,
    version: u64,
    data: [u64; 3],
    in_pool: bool,
}

impl Obj {
    fn make(in_pool: bool) -> Option<Obj> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if id >= MAX_OBJECTS {
            return None;
        }
        assert_eq!(STATE[id].swap(LIVE, Ordering::AcqRel), NEW);
        if in_pool {
            IN_POOL.fetch_add(1, Ordering::Relaxed);
        }
        Some(Obj {
            id,
            version: 0,
            data: payload(id, 0),
            in_pool,
        })
    }

    fn check(&self) {
        assert_eq!(
            self.data,
            payload(self.id, self.version),
            "object {} corrupted",
            self.id
        );
        assert_eq!(
            STATE[self.id].load(Ordering::Acquire),
            LIVE,
            "object {} not live",
            self.id
        );
    }

    /// The value moved out of its pool slot.
    fn left_pool(mut self) -> Obj {
        assert!(self.in_pool);
        self.in_pool = false;
        IN_POOL.fetch_sub(1, Ordering::Relaxed);
        self
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.check();
        assert_eq!(STATE[self.id].swap(DROPPED, Ordering::AcqRel), LIVE);
        if self.in_pool {
            IN_POOL.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Alloc,
    /// `alloc_uninit` then `Pooled::write`.
    AllocUninit,
    Drop(u8),
    /// Changes a pooled object's contents through `DerefMut`.
    Write(u8),
    /// `Pooled::into_inner`.
    IntoInner(u8),
    /// `into_raw` then `from_raw`.
    RawRoundTrip(u8),
    /// Sends a pooled object to the other thread.
    SendPooled(u8),
    SharedNew,
    SharedNewIn,
    SharedClone(u8),
    SharedDrop(u8),
    /// Sends an owner (moved) or a clone to the other thread.
    SendShared(u8, bool),
    /// `Shared::into_inner` (or `try_unwrap`).
    SharedIntoInner(u8, bool),
    Downgrade(u8),
    Upgrade(u8),
    SendWeak(u8),
    Trim,
}

#[derive(Arbitrary, Debug)]
struct Phase {
    ops: [Vec<Op>; 2],
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Chunks from the OS, the system allocator or the arena.
    backing: u8,
    /// `batch`, `local_max`, `depot_max` (tiny lists: 1..=4).
    sizes: [u8; 3],
    phases: Vec<Phase>,
    /// Drop the pool before the objects that outlive the threads.
    drop_pool_first: bool,
}

enum Msg {
    Pooled(Pooled<Obj>),
    Shared(Shared<Obj>),
    Weak(Weak<Obj>, usize),
}

#[derive(Default)]
struct Held {
    pooled: Vec<Pooled<Obj>>,
    shared: Vec<Shared<Obj>>,
    weak: Vec<(Weak<Obj>, usize)>,
}

fn pick<T>(v: &mut Vec<T>, i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v.swap_remove(i as usize % v.len()))
}

fn get<T>(v: &[T], i: u8) -> Option<&T> {
    (!v.is_empty()).then(|| &v[i as usize % v.len()])
}

impl Held {
    fn run(&mut self, op: Op, pool: &Pool<Obj>, to_other: &Sender<Msg>) {
        let room = self.pooled.len() + self.shared.len() < MAX_HELD;
        match op {
            Op::Alloc if room => {
                if let Some(o) = Obj::make(true) {
                    let p = pool.alloc(o);
                    p.check();
                    self.pooled.push(p);
                }
            }
            Op::AllocUninit if room => {
                if let Some(o) = Obj::make(true) {
                    let p = Pooled::write(pool.alloc_uninit(), o);
                    p.check();
                    self.pooled.push(p);
                }
            }
            Op::Drop(i) => drop(pick(&mut self.pooled, i)),
            Op::Write(i) if !self.pooled.is_empty() => {
                let n = self.pooled.len();
                let p = &mut self.pooled[i as usize % n];
                p.check();
                p.version += 1;
                p.data = payload(p.id, p.version);
            }
            Op::IntoInner(i) => {
                if let Some(p) = pick(&mut self.pooled, i) {
                    Pooled::into_inner(p).left_pool().check();
                }
            }
            Op::RawRoundTrip(i) => {
                if let Some(p) = pick(&mut self.pooled, i) {
                    let raw = Pooled::into_raw(p);
                    // SAFETY: `raw` came from `into_raw` just above.
                    let p = unsafe { Pooled::from_raw(raw) };
                    p.check();
                    self.pooled.push(p);
                }
            }
            Op::SendPooled(i) => {
                if let Some(p) = pick(&mut self.pooled, i) {
                    to_other.send(Msg::Pooled(p)).unwrap();
                }
            }
            Op::SharedNew | Op::SharedNewIn if room => {
                let in_pool = matches!(op, Op::SharedNewIn);
                if let Some(o) = Obj::make(in_pool) {
                    let s = if in_pool {
                        Shared::new_in(o, pool)
                    } else {
                        Shared::new(o)
                    };
                    s.check();
                    self.shared.push(s);
                }
            }
            Op::SharedClone(i) if room => {
                if let Some(s) = get(&self.shared, i) {
                    let c = s.clone();
                    assert!(Shared::ptr_eq(s, &c));
                    assert!(Shared::strong_count(&c) >= 2);
                    self.shared.push(c);
                }
            }
            Op::SharedDrop(i) => drop(pick(&mut self.shared, i)),
            Op::SendShared(i, keep) => {
                if keep {
                    if let Some(s) = get(&self.shared, i) {
                        to_other.send(Msg::Shared(s.clone())).unwrap();
                    }
                } else if let Some(s) = pick(&mut self.shared, i) {
                    to_other.send(Msg::Shared(s)).unwrap();
                }
            }
            Op::SharedIntoInner(i, try_unwrap) => {
                if let Some(s) = pick(&mut self.shared, i) {
                    // With no `Weak`, nobody can add an owner behind our back.
                    let unique_here =
                        !WEAK_MADE[s.id].load(Ordering::SeqCst) && Shared::strong_count(&s) == 1;
                    let o = if try_unwrap {
                        Shared::try_unwrap(s).map_err(drop).ok()
                    } else {
                        Shared::into_inner(s)
                    };
                    if unique_here {
                        assert!(o.is_some(), "the only owner did not get the value");
                    }
                    if let Some(o) = o {
                        let o = if o.in_pool { o.left_pool() } else { o };
                        o.check();
                    }
                }
            }
            Op::Downgrade(i) => {
                if let Some(s) = get(&self.shared, i) {
                    WEAK_MADE[s.id].store(true, Ordering::SeqCst);
                    self.weak.push((Shared::downgrade(s), s.id));
                }
            }
            Op::Upgrade(i) => {
                if let Some(&(w, id)) = get(&self.weak, i) {
                    let dead = STATE[id].load(Ordering::Acquire) == DROPPED;
                    let owned_here = self.shared.iter().any(|s| s.id == id);
                    match w.upgrade() {
                        Some(s) => {
                            assert!(!dead, "upgrade of dropped object {id}");
                            assert_eq!(s.id, id, "upgrade gave another object");
                            s.check();
                            if room {
                                self.shared.push(s);
                            }
                        }
                        None => assert!(!owned_here, "upgrade of owned object {id} failed"),
                    }
                }
            }
            Op::SendWeak(i) => {
                if let Some(&(w, id)) = get(&self.weak, i) {
                    to_other.send(Msg::Weak(w, id)).unwrap();
                }
            }
            Op::Trim => pool.trim(),
            _ => {}
        }
    }

    fn receive(&mut self, from_other: &Receiver<Msg>) {
        for m in from_other.try_iter() {
            match m {
                Msg::Pooled(p) => {
                    p.check();
                    self.pooled.push(p);
                }
                Msg::Shared(s) => {
                    s.check();
                    self.shared.push(s);
                }
                Msg::Weak(w, id) => self.weak.push((w, id)),
            }
        }
    }
}

/// Between phases, with both threads parked at the barrier.
fn check_stats(pool: &Pool<Obj>) {
    let s = pool.stats();
    let expected = IN_POOL.load(Ordering::Relaxed);
    assert_eq!(
        s.capacity,
        s.in_use + s.local_free + s.depot_free + s.chunk_free,
        "unbalanced statistics {s:?}"
    );
    assert_eq!(s.in_use, expected, "in_use against the model: {s:?}");
    assert_eq!(s.bytes_held, s.chunks * s.chunk_size);
    assert!(
        s.chunks_made >= s.chunks_released + s.chunks as u64,
        "{s:?}"
    );
}

fn run(input: Input) {
    let backing = [Backing::Arena, Backing::Os, Backing::System][input.backing as usize % 3];
    let [b, l, d] = input.sizes.map(|x| x as usize % 4 + 1);
    let pool = Pool::with_config(
        PoolConfig::new()
            .batch(b)
            .local_max(l)
            .depot_max(d)
            .backing(backing),
    );
    let phases: Vec<Phase> = input.phases.into_iter().take(MAX_PHASES).collect();
    let barrier = Barrier::new(2);
    let (to_b, from_a) = channel();
    let (to_a, from_b) = channel();

    let worker = |me: usize, to_other: Sender<Msg>, from_other: Receiver<Msg>| {
        let (pool, barrier, phases) = (&pool, &barrier, &phases);
        move || {
            let mut held = Held::default();
            for phase in phases {
                held.receive(&from_other);
                for &op in phase.ops[me].iter().take(MAX_OPS) {
                    held.run(op, pool, &to_other);
                }
                // Both threads done and every message sent: the leader checks.
                if barrier.wait().is_leader() {
                    check_stats(pool);
                }
                barrier.wait();
            }
            held.receive(&from_other);
            barrier.wait();
            // The other thread's last messages are in.
            held.receive(&from_other);
            held
        }
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(worker(0, to_b, from_b));
        let b = s.spawn(worker(1, to_a, from_a));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Both threads have exited: their lists are back in the depot.
    check_stats(&pool);
    let weak: Vec<_> = a.weak.iter().chain(&b.weak).copied().collect();
    let mut rest = vec![a, b];
    if input.drop_pool_first {
        drop(pool);
        drop(rest.drain(..));
        assert_eq!(IN_POOL.load(Ordering::Relaxed), 0);
    } else {
        drop(rest.drain(..));
        assert_eq!(IN_POOL.load(Ordering::Relaxed), 0);
        check_stats(&pool);
        pool.trim();
        let s = pool.stats();
        assert_eq!(
            s.chunks, 0,
            "chunks left after the last object and a trim: {s:?}"
        );
    }
    for (w, id) in weak {
        assert!(
            w.upgrade().is_none(),
            "object {id} upgrades after all owners dropped"
        );
    }
    let made = NEXT_ID.load(Ordering::Relaxed).min(MAX_OBJECTS);
    for (id, st) in STATE[..made].iter().enumerate() {
        assert_eq!(
            st.load(Ordering::Relaxed),
            DROPPED,
            "object {id} never dropped"
        );
    }
}

fuzz_target!(|input: Input| {
    let _one = RUN.lock().unwrap_or_else(|e| e.into_inner());
    for (st, weak) in STATE.iter().zip(&WEAK_MADE) {
        st.store(NEW, Ordering::Relaxed);
        weak.store(false, Ordering::Relaxed);
    }
    NEXT_ID.store(0, Ordering::Relaxed);
    IN_POOL.store(0, Ordering::Relaxed);
    run(input);
});
