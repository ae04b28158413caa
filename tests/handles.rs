//! Behaviour of `Shared<T>` / `Weak<T>` and the handle table.
//!
//! Every test takes `SERIAL`: they share the process-wide handle table, and
//! several assert exact slot reuse or exact statistics deltas.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;

use hotpool::{handle, Pool, Shared, Weak};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts its drops in a counter the test owns.
struct Counted<'a> {
    drops: &'a AtomicUsize,
    value: u64,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn sizes() {
    use std::mem::size_of;
    assert_eq!(size_of::<Weak<[u8; 256]>>(), 8);
    assert_eq!(size_of::<Option<Weak<[u8; 256]>>>(), 8);
    assert_eq!(size_of::<Shared<[u8; 256]>>(), size_of::<*const ()>());
    assert_eq!(
        size_of::<Option<Shared<[u8; 256]>>>(),
        size_of::<*const ()>()
    );
}

#[test]
fn send_sync_like_arc() {
    use static_assertions::{assert_impl_all, assert_not_impl_any};
    use std::cell::Cell;
    use std::rc::Rc;
    assert_impl_all!(Shared<u32>: Send, Sync, Clone, Unpin);
    assert_impl_all!(Weak<u32>: Send, Sync, Copy);
    // Sync but not Send, Send but not Sync, neither: like Arc, no Send/Sync.
    assert_not_impl_any!(Shared<std::sync::MutexGuard<'static, u32>>: Send, Sync);
    assert_not_impl_any!(Shared<Cell<u32>>: Send, Sync);
    assert_not_impl_any!(Shared<Rc<u32>>: Send, Sync);
    assert_not_impl_any!(Weak<Cell<u32>>: Send, Sync);
    // Weak needs nothing of T for its own traits.
    struct Opaque;
    assert_impl_all!(Weak<Opaque>: Copy, Clone, PartialEq, Eq, Hash, std::fmt::Debug);
}

#[test]
fn drop_of_last_owner_frees_at_once_despite_weaks() {
    let _g = serial();
    let drops = AtomicUsize::new(0);
    let a = Shared::new(Counted {
        drops: &drops,
        value: 7,
    });
    let w = Shared::downgrade(&a);
    let w2 = w; // Copy
    let b = w.upgrade().expect("alive");
    assert_eq!(b.value, 7);
    assert!(Shared::ptr_eq(&a, &b));
    assert_eq!(Shared::strong_count(&a), 2);
    assert_eq!(w.strong_count(), 2);
    drop(a);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(w.is_alive());
    drop(b);
    // Dropped now, with two weak handles still around.
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(w.upgrade().is_none());
    assert!(w2.upgrade().is_none());
    assert!(!w.is_alive());
    assert_eq!(w.strong_count(), 0);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn dangling_weak_never_upgrades() {
    let _g = serial();
    let w: Weak<String> = Weak::new();
    assert!(w.upgrade().is_none());
    assert!(!w.is_alive());
    assert_eq!(w, Weak::default());
    assert_eq!(format!("{w:?}"), "Weak(dangling)");
    // Even with many objects around.
    let live: Vec<_> = (0..100).map(|i| Shared::new(i.to_string())).collect();
    assert!(w.upgrade().is_none());
    drop(live);
}

#[test]
fn weak_eq_hash_debug() {
    let _g = serial();
    let a = Shared::new(1);
    let b = Shared::new(1);
    let wa = Shared::downgrade(&a);
    let wa2 = Shared::downgrade(&a.clone());
    let wb = Shared::downgrade(&b);
    assert_eq!(wa, wa2);
    assert_ne!(wa, wb);
    let set: HashSet<Weak<i32>> = [wa, wa2, wb].into_iter().collect();
    assert_eq!(set.len(), 2);
    let dbg = format!("{wa:?}");
    assert!(dbg.starts_with("Weak { segment: "), "{dbg}");
    // A Weak stays equal to itself after its object dies.
    drop(a);
    assert_eq!(wa, wa2);
}

#[test]
fn new_in_returns_memory_to_the_pool() {
    let _g = serial();
    static LINKS: Pool<Counted<'static>> = Pool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let link = Shared::new_in(
        Counted {
            drops: &DROPS,
            value: 3,
        },
        &LINKS,
    );
    let w = Shared::downgrade(&link);
    let other = link.clone();
    assert_eq!(LINKS.stats().in_use, 1);
    drop(link);
    assert_eq!(LINKS.stats().in_use, 1);
    assert_eq!(w.upgrade().unwrap().value, 3);
    drop(other);
    assert_eq!(LINKS.stats().in_use, 0, "slot back in the pool");
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert!(w.upgrade().is_none());

    // try_unwrap of a pooled object: value moved out, slot back, no drop.
    let p = Shared::new_in(
        Counted {
            drops: &DROPS,
            value: 4,
        },
        &LINKS,
    );
    assert_eq!(LINKS.stats().in_use, 1);
    let v = Shared::try_unwrap(p).ok().expect("only owner");
    assert_eq!(LINKS.stats().in_use, 0);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    assert_eq!(v.value, 4);
    drop(v);
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
}

#[test]
fn new_in_with_a_non_static_pool() {
    let _g = serial();
    let pool: Pool<Vec<u8>> = Pool::new();
    let a = Shared::new_in(vec![1, 2, 3], &pool);
    let w = Shared::downgrade(&a);
    drop(pool); // objects outlive a dropped pool
    assert_eq!(*w.upgrade().unwrap(), [1, 2, 3]);
    drop(a);
    assert!(w.upgrade().is_none());
}

#[test]
fn try_unwrap_and_into_inner() {
    let _g = serial();
    let drops = AtomicUsize::new(0);
    let a = Shared::new(Counted {
        drops: &drops,
        value: 9,
    });
    let w = Shared::downgrade(&a);
    let b = a.clone();
    let a = Shared::try_unwrap(a).err().expect("two owners");
    assert_eq!(Shared::strong_count(&a), 2);
    drop(b);
    let v = Shared::try_unwrap(a).ok().expect("one owner");
    // The value is out and the handle is stale; nothing was dropped.
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(w.upgrade().is_none());
    assert_eq!(v.value, 9);
    drop(v);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    let a = Shared::new(String::from("x"));
    let w = Shared::downgrade(&a);
    let b = a.clone();
    assert!(Shared::into_inner(a).is_none());
    assert!(w.upgrade().is_some());
    assert_eq!(Shared::into_inner(b).as_deref(), Some("x"));
    assert!(w.upgrade().is_none());
}

#[test]
fn into_inner_races_give_exactly_one_value() {
    let _g = serial();
    for _ in 0..if cfg!(miri) { 20 } else { 200 } {
        let a = Shared::new(String::from("v"));
        let b = a.clone();
        let t = thread::spawn(move || Shared::into_inner(b));
        let mine = Shared::into_inner(a);
        let theirs = t.join().unwrap();
        assert_eq!(mine.is_some() as u32 + theirs.is_some() as u32, 1);
    }
}

#[test]
fn get_mut_rules() {
    let _g = serial();
    let mut a = Shared::new(vec![1]);
    Shared::get_mut(&mut a)
        .expect("sole owner, no weak")
        .push(2);
    let b = a.clone();
    assert!(Shared::get_mut(&mut a).is_none(), "two owners");
    drop(b);
    assert_eq!(*Shared::get_mut(&mut a).expect("sole owner again"), [1, 2]);
    let w = Shared::downgrade(&a);
    assert!(Shared::get_mut(&mut a).is_none(), "a weak exists");
    // Weaks are not counted, so a weak ever made blocks get_mut for the
    // rest of this object's life, even once the handle itself is gone.
    let _ = w;
    assert!(Shared::get_mut(&mut a).is_none());
    // A weak made through another owner that is gone blocks it too.
    let mut c = Shared::new(0u8);
    let d = c.clone();
    let t = thread::spawn(move || {
        let _w = Shared::downgrade(&d);
    });
    t.join().unwrap();
    assert_eq!(Shared::strong_count(&c), 1);
    assert!(Shared::get_mut(&mut c).is_none());
    // A new object in the same slot starts without the flag.
    drop(a);
    let mut e = Shared::new(vec![0]);
    assert!(Shared::get_mut(&mut e).is_some());
}

#[test]
fn arc_like_traits() {
    let _g = serial();
    let a = Shared::new(String::from("b"));
    let b = Shared::new(String::from("a"));
    assert_eq!(format!("{a}"), "b");
    assert_eq!(format!("{a:?}"), "\"b\"");
    assert_eq!(format!("{a:p}"), format!("{:p}", Shared::as_ptr(&a)));
    assert!(a > b);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Greater);
    assert_eq!(a, Shared::new(String::from("b")), "compares values");
    let hash = |v: &dyn Fn(&mut DefaultHasher)| {
        let mut h = DefaultHasher::new();
        v(&mut h);
        h.finish()
    };
    assert_eq!(hash(&|h| a.hash(h)), hash(&|h| "b".to_string().hash(h)));
    let r: &String = a.as_ref();
    assert_eq!(r, "b");
    let mut map: HashMap<Shared<String>, u32> = HashMap::new();
    map.insert(a.clone(), 1);
    assert_eq!(map.get(&String::from("b")), Some(&1)); // Borrow<T>
    assert_eq!(a.len(), 1); // Deref
    let d: Shared<Vec<u8>> = Shared::default();
    assert!(d.is_empty());
    let f: Shared<u8> = 5.into();
    assert_eq!(*f, 5);
}

#[test]
fn zero_sized_values() {
    let _g = serial();
    let drops = AtomicUsize::new(0);
    struct Zst<'a>(&'a AtomicUsize);
    impl Drop for Zst<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let a = Shared::new(());
    let w = Shared::downgrade(&a);
    assert!(w.upgrade().is_some());
    drop(a);
    assert!(w.upgrade().is_none());
    let z = Shared::new(Zst(&drops));
    drop(z.clone());
    drop(z);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn stats_count_slots_and_bytes() {
    let _g = serial();
    // Scaled down under Miri, where each census walk of the table is slow.
    let n: u32 = if cfg!(miri) { 500 } else { 5000 };
    let before = handle::stats();
    let objs: Vec<_> = (0..n).map(Shared::new).collect();
    let weaks: Vec<_> = objs.iter().map(Shared::downgrade).collect();
    let mid = handle::stats();
    assert_eq!(mid.slots_in_use, before.slots_in_use + n as usize);
    let total = mid.slots_in_use + mid.slots_free + mid.slots_retired;
    assert!(mid.bytes >= 16 * total, "{mid:?}");
    // Segments double, so at most ~2x slack plus the header.
    assert!(mid.bytes <= 16 * (2 * total + 64) + 4096, "{mid:?}");
    drop(objs);
    let after = handle::stats();
    assert_eq!(after.slots_in_use, before.slots_in_use);
    assert_eq!(
        after.slots_free + after.slots_in_use + after.slots_retired,
        total
    );
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
    // Freed slots are reused: making as many more does not grow the table.
    let again: Vec<_> = (0..n).map(Shared::new).collect();
    assert_eq!(handle::stats().bytes, mid.bytes);
    drop(again);
}

/// Object checked by the stress test: `magic` is LIVE from construction to
/// drop; drop marks it DEAD and counts itself.
struct Probe {
    magic: AtomicUsize,
    id: usize,
    drops: Arc<Vec<AtomicU8>>,
}

/// The stress test's weak handles of one round, with object ids.
type RoundHandles = Vec<(usize, Weak<Probe>)>;

const LIVE: usize = 0x5EED_CAFE;
const DEAD: usize = 0xDEAD_BEEF;

/// Failures seen on worker threads (a panic there would leave the others
/// waiting on a barrier forever).
static ERRORS: AtomicUsize = AtomicUsize::new(0);
/// Objects whose last owner was an upgrader (the upgrade won the race).
static DROPPED_BY_UPGRADER: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static IS_UPGRADER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Probe {
    fn drop(&mut self) {
        if self.magic.swap(DEAD, Ordering::SeqCst) != LIVE {
            ERRORS.fetch_add(1, Ordering::SeqCst); // double drop
        }
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
        if IS_UPGRADER.with(|u| u.get()) {
            DROPPED_BY_UPGRADER.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn stress_upgrades_race_last_drops() {
    let _g = serial();
    static PROBES: Pool<Probe> = Pool::new();
    const UPGRADERS: usize = if cfg!(miri) { 3 } else { 8 };
    const DROPPERS: usize = if cfg!(miri) { 2 } else { 4 };
    const ROUNDS: usize = if cfg!(miri) {
        3
    } else if cfg!(debug_assertions) {
        40
    } else {
        400
    };
    const PER_ROUND: usize = if cfg!(miri) { 96 } else { 1024 };

    let drops: Arc<Vec<AtomicU8>> =
        Arc::new((0..ROUNDS * PER_ROUND).map(|_| AtomicU8::new(0)).collect());
    let in_use_before = handle::stats().slots_in_use;
    // Per round: droppers own the objects, upgraders hold the weaks.
    let weaks: Arc<Mutex<RoundHandles>> = Arc::new(Mutex::new(Vec::new()));
    let owners: Arc<Mutex<Vec<Shared<Probe>>>> = Arc::new(Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(UPGRADERS + DROPPERS + 1));
    let end = Arc::new(Barrier::new(UPGRADERS + DROPPERS + 1));
    let done = Arc::new(AtomicBool::new(false));
    let upgrades = Arc::new(AtomicUsize::new(0));

    let mut threads = Vec::new();
    for t in 0..UPGRADERS {
        let (weaks, start, end, done, upgrades) = (
            weaks.clone(),
            start.clone(),
            end.clone(),
            done.clone(),
            upgrades.clone(),
        );
        threads.push(thread::spawn(move || loop {
            IS_UPGRADER.with(|u| u.set(true));
            start.wait();
            if done.load(Ordering::SeqCst) {
                return;
            }
            let mine: Vec<(usize, Weak<Probe>)> = weaks.lock().unwrap().clone();
            let mut kept = Vec::new();
            // Walk the round's handles (each thread from a different place)
            // until all are dead.
            let mut alive = true;
            let mut first_pass = true;
            while alive {
                alive = false;
                for k in 0..mine.len() {
                    let (id, w) = mine[(k * 7 + t * 131) % mine.len()];
                    if let Some(s) = w.upgrade() {
                        alive = true;
                        // A dropped object, or another object in its slot.
                        if s.magic.load(Ordering::SeqCst) != LIVE || s.id != id {
                            ERRORS.fetch_add(1, Ordering::SeqCst);
                        }
                        upgrades.fetch_add(1, Ordering::Relaxed);
                        // Sometimes become (and stay briefly) an owner, so the
                        // last drop happens on an upgrader thread.
                        if first_pass && k % 5 == 0 {
                            kept.push(s);
                            if kept.len() > 16 {
                                kept.clear();
                            }
                        }
                    }
                }
                kept.clear();
                first_pass = false;
            }
            end.wait();
        }));
    }
    for _ in 0..DROPPERS {
        let (owners, start, end, done) = (owners.clone(), start.clone(), end.clone(), done.clone());
        threads.push(thread::spawn(move || loop {
            start.wait();
            if done.load(Ordering::SeqCst) {
                return;
            }
            loop {
                let Some(s) = owners.lock().unwrap().pop() else {
                    break;
                };
                // Some objects have a second owner: make it race too.
                let extra = (s.id % 3 == 0).then(|| s.clone());
                drop(s);
                drop(extra);
            }
            end.wait();
        }));
    }

    for round in 0..ROUNDS {
        {
            let mut ws = weaks.lock().unwrap();
            let mut os = owners.lock().unwrap();
            ws.clear();
            for i in 0..PER_ROUND {
                let id = round * PER_ROUND + i;
                let p = Probe {
                    magic: AtomicUsize::new(LIVE),
                    id,
                    drops: drops.clone(),
                };
                let s = if i % 2 == 0 {
                    Shared::new(p)
                } else {
                    Shared::new_in(p, &PROBES)
                };
                ws.push((id, Shared::downgrade(&s)));
                os.push(s);
            }
        }
        start.wait();
        end.wait();
        // Every object of the round dropped exactly once; all handles stale.
        assert_eq!(ERRORS.load(Ordering::SeqCst), 0, "round {round}");
        for (id, w) in weaks.lock().unwrap().iter() {
            assert!(w.upgrade().is_none());
            assert_eq!(drops[*id].load(Ordering::SeqCst), 1, "object {id}");
        }
    }
    done.store(true, Ordering::SeqCst);
    start.wait();
    for t in threads {
        t.join().unwrap();
    }
    assert!(drops.iter().all(|d| d.load(Ordering::SeqCst) == 1));
    assert_eq!(
        handle::stats().slots_in_use,
        in_use_before,
        "no leaked slot"
    );
    assert_eq!(PROBES.stats().in_use, 0, "no leaked pool memory");
    // Both outcomes of the race happened: upgrades that won and became the
    // last owner, and (all handles end stale) upgrades that lost.
    assert!(upgrades.load(Ordering::Relaxed) > 0);
    assert!(DROPPED_BY_UPGRADER.load(Ordering::Relaxed) > 0);
    eprintln!(
        "stress: {} upgrades, {} of {} objects last dropped by an upgrader",
        upgrades.load(Ordering::Relaxed),
        DROPPED_BY_UPGRADER.load(Ordering::Relaxed),
        ROUNDS * PER_ROUND
    );
}

#[test]
fn stress_concurrent_create_drop_distinct_slots() {
    let _g = serial();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            thread::spawn(move || {
                for round in 0..if cfg!(miri) { 5 } else { 200 } {
                    let objs: Vec<_> = (0..64).map(|i| Shared::new((t, round, i))).collect();
                    let ws: Vec<_> = objs.iter().map(Shared::downgrade).collect();
                    for (i, w) in ws.iter().enumerate() {
                        assert_eq!(*w.upgrade().unwrap(), (t, round, i));
                    }
                    drop(objs);
                    assert!(ws.iter().all(|w| w.upgrade().is_none()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Waits until `count` reaches `target` (both racers arrived).
fn rendezvous(count: &AtomicUsize, target: usize) {
    let mut spins = 0u32;
    while count.load(Ordering::Acquire) < target {
        spins += 1;
        if spins % 64 == 0 {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[test]
fn race_one_upgrade_against_the_last_drop() {
    let _g = serial();
    const N: usize = if cfg!(miri) {
        100
    } else if cfg!(debug_assertions) {
        5_000
    } else {
        50_000
    };
    let drops: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let errors_before = ERRORS.load(Ordering::SeqCst);
    let mut owners = Vec::with_capacity(N);
    let mut weaks = Vec::with_capacity(N);
    for id in 0..N {
        let s = Shared::new(Probe {
            magic: AtomicUsize::new(LIVE),
            id,
            drops: drops.clone(),
        });
        weaks.push(Shared::downgrade(&s));
        owners.push(s);
    }
    let arrived = Arc::new(AtomicUsize::new(0));
    let upgrader = {
        let arrived = arrived.clone();
        thread::spawn(move || {
            let (mut won, mut lost) = (0, 0);
            for (id, w) in weaks.iter().enumerate() {
                arrived.fetch_add(1, Ordering::AcqRel);
                rendezvous(&arrived, 2 * (id + 1));
                for _ in 0..(id * 31) % 97 {
                    std::hint::spin_loop();
                }
                match w.upgrade() {
                    Some(s) => {
                        if s.magic.load(Ordering::SeqCst) != LIVE || s.id != id {
                            ERRORS.fetch_add(1, Ordering::SeqCst);
                        }
                        won += 1;
                    }
                    None => lost += 1,
                }
            }
            (won, lost)
        })
    };
    for (id, s) in owners.into_iter().enumerate() {
        arrived.fetch_add(1, Ordering::AcqRel);
        rendezvous(&arrived, 2 * (id + 1));
        // Vary who gets to the state word first.
        for _ in 0..(id * 7919) % 97 {
            std::hint::spin_loop();
        }
        drop(s);
    }
    let (won, lost) = upgrader.join().unwrap();
    assert_eq!(ERRORS.load(Ordering::SeqCst), errors_before);
    assert!(drops.iter().all(|d| d.load(Ordering::SeqCst) == 1));
    assert_eq!(won + lost, N);
    eprintln!("race: upgrade won {won}, lost {lost} of {N}");
}
