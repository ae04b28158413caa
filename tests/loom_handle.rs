//! Loom models of the handle protocol: upgrade racing the last drop, and
//! the free list's ABA guard. Under `--cfg loom` the handle table is a loom
//! lazy static, new for every execution, so these use the public API.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_handle`
#![cfg(loom)]

use hotpool::Shared;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const LIVE: u64 = 1;
const DEAD: u64 = 2;

/// An object whose reads (after an upgrade) and whose drop are checked by
/// loom for data races: if the last owner's drop were not ordered after
/// every other owner's use, loom reports a causality violation.
struct Obj {
    state: UnsafeCell<u64>,
    drops: Arc<AtomicUsize>,
}

// SAFETY: `state` is written only by `drop` (exclusive access) and read
// through shared owners; loom checks that these never race.
unsafe impl Sync for Obj {}

impl Obj {
    fn new(drops: &Arc<AtomicUsize>) -> Obj {
        Obj {
            state: UnsafeCell::new(LIVE),
            drops: drops.clone(),
        }
    }

    fn read(&self) -> u64 {
        // SAFETY: only `drop` writes, and it has exclusive access.
        self.state.with(|p| unsafe { *p })
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody else uses the object.
        self.state.with_mut(|p| unsafe {
            assert_eq!(*p, LIVE, "double drop");
            *p = DEAD;
        });
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// Explores every interleaving (no preemption bound unless
/// `LOOM_MAX_PREEMPTIONS` is set); each model takes well under a second.
fn model(f: impl Fn() + Sync + Send + 'static) {
    loom::model::Builder::new().check(f);
}

/// One thread upgrades while another drops the last owner: either the
/// upgrade wins (and the object lives until its owner drops) or it gets
/// `None`; the object is dropped exactly once, after every use.
#[test]
fn upgrade_races_last_drop() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Shared::new(Obj::new(&drops));
        let w = Shared::downgrade(&a);
        let t = thread::spawn(move || match w.upgrade() {
            Some(s) => {
                assert_eq!(s.read(), LIVE);
                true
            }
            None => false,
        });
        drop(a);
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(w.upgrade().is_none());
    });
}

/// Two owners dropped on two threads while a third upgrades.
#[test]
fn upgrade_races_two_drops() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Shared::new(Obj::new(&drops));
        let b = a.clone();
        let w = Shared::downgrade(&a);
        let t1 = thread::spawn(move || drop(a));
        let t2 = thread::spawn(move || drop(b));
        if let Some(s) = w.upgrade() {
            assert_eq!(s.read(), LIVE);
        }
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(w.upgrade().is_none());
    });
}

/// A stale handle racing the reuse of its slot by a new object never
/// upgrades to the new object.
#[test]
fn stale_upgrade_races_slot_reuse() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Shared::new(Obj::new(&drops));
        let w = Shared::downgrade(&a);
        let t = thread::spawn(move || {
            drop(a);
            Shared::new(7u32) // reuses the slot
        });
        if let Some(s) = w.upgrade() {
            assert_eq!(s.read(), LIVE);
        }
        let b = t.join().unwrap();
        assert_eq!(*b, 7);
        assert!(w.upgrade().is_none());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// The free list's ABA case: thread 1 pops while thread 2 pops the top
/// two slots and pushes the first back. Without the tag, thread 1 would
/// install the slot thread 2 still uses as the new head, and a later
/// object would share it.
#[test]
fn free_list_aba() {
    model(|| {
        // Free list: y on top of x.
        let x = Shared::new(0u32);
        let y = Shared::new(0u32);
        drop(x);
        drop(y);
        let t1 = thread::spawn(|| Shared::new(1u32));
        let t2 = thread::spawn(|| {
            let s1 = Shared::new(2u32);
            let s2 = Shared::new(3u32);
            drop(s1);
            s2
        });
        let a = t1.join().unwrap();
        let c = t2.join().unwrap();
        let d = Shared::new(4u32);
        assert_eq!((*a, *c, *d), (1, 3, 4));
        assert!(!Shared::ptr_eq(&a, &c));
        assert!(!Shared::ptr_eq(&a, &d));
        assert!(!Shared::ptr_eq(&c, &d));
    });
}

/// `try_unwrap` racing an upgrade: exactly one of them gets the object.
#[test]
fn try_unwrap_races_upgrade() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Shared::new(Obj::new(&drops));
        let w = Shared::downgrade(&a);
        let t = thread::spawn(move || w.upgrade().map(|s| s.read()));
        let unwrapped = Shared::try_unwrap(a);
        let seen = t.join().unwrap();
        match unwrapped {
            Ok(obj) => {
                assert_eq!(obj.read(), LIVE);
                assert_eq!(drops.load(Ordering::SeqCst), 0);
                drop(obj);
            }
            // The upgrade won; both owners are gone by now.
            Err(a) => {
                assert_eq!(seen, Some(LIVE));
                drop(a);
            }
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(w.upgrade().is_none());
    });
}

/// Two threads need the same new segment at once: one publishes it, the
/// other frees its own copy and uses the published one.
#[test]
fn segment_growth_race() {
    model(|| {
        // Under loom segment 0 has 4 slots: fill it.
        let first: Vec<_> = (0..4u32).map(Shared::new).collect();
        let t1 = thread::spawn(|| Shared::new(10u32));
        let t2 = thread::spawn(|| Shared::new(20u32));
        let a = t1.join().unwrap();
        let b = t2.join().unwrap();
        assert_eq!((*a, *b), (10, 20));
        assert!(!Shared::ptr_eq(&a, &b));
        let (wa, wb) = (Shared::downgrade(&a), Shared::downgrade(&b));
        assert_eq!(*wa.upgrade().unwrap(), 10);
        assert_eq!(*wb.upgrade().unwrap(), 20);
        drop(first);
    });
}

/// An object for `make_mut` models: counts its clones and drops; writes
/// through `&mut` are checked by loom against reads by other owners.
struct Cow {
    state: UnsafeCell<u64>,
    drops: Arc<AtomicUsize>,
    clones: Arc<AtomicUsize>,
}

// SAFETY: `state` is written only through `&mut Cow` (exclusive access)
// and read through shared owners; loom checks that these never race.
unsafe impl Sync for Cow {}

impl Clone for Cow {
    fn clone(&self) -> Cow {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Cow {
            // SAFETY: a read through a shared owner, as in `Obj::read`.
            state: UnsafeCell::new(self.state.with(|p| unsafe { *p })),
            drops: self.drops.clone(),
            clones: self.clones.clone(),
        }
    }
}

impl Drop for Cow {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// `make_mut` of the sole owner of an object with a `Weak` (it re-slots
/// the object, disassociating the handle) racing an upgrade of that
/// handle: either the upgrade wins and `make_mut` clones (or re-slots once
/// the upgraded owner is gone), or the upgrade gets `None`. The write
/// through `make_mut` never races a read by the other thread, and every
/// object is dropped exactly once.
#[test]
fn make_mut_races_upgrade() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let clones = Arc::new(AtomicUsize::new(0));
        let mut a = Shared::new(Cow {
            state: UnsafeCell::new(LIVE),
            drops: drops.clone(),
            clones: clones.clone(),
        });
        let w = Shared::downgrade(&a);
        let t = thread::spawn(move || {
            // SAFETY: a read through an owner, as in `Obj::read`.
            w.upgrade().map(|s| s.state.with(|p| unsafe { *p }))
        });
        let cow = Shared::make_mut(&mut a);
        // SAFETY: `make_mut` gave exclusive access.
        cow.state.with_mut(|p| unsafe { *p = LIVE + 10 });
        let seen = t.join().unwrap();
        assert!(seen.is_none() || seen == Some(LIVE), "{seen:?}");
        // After make_mut the old handle never reaches `a`'s object.
        if let Some(s) = w.upgrade() {
            assert!(!Shared::ptr_eq(&s, &a));
        }
        drop(a);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1 + clones.load(Ordering::SeqCst)
        );
        assert!(clones.load(Ordering::SeqCst) <= 1);
    });
}
