//! `Arc`/`Box` parity of `Shared`/`Weak`: `Weak::{to_bits, from_bits,
//! ptr_eq}`, `Shared::{make_mut, unwrap_or_clone, new_cyclic, pin,
//! try_new, try_new_in}`, `From<Box<T>>` and `From<Pooled<T>>`.
//!
//! Every test takes `SERIAL`: the handle table is process-wide, and a
//! test that counts its slots must not see another test's objects.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;

use hotpool::{handle, Pool, Shared, Weak};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts its clones and drops in counters the test owns.
struct Tracked<'a> {
    clones: &'a AtomicUsize,
    drops: &'a AtomicUsize,
    value: Vec<u32>,
}

impl Clone for Tracked<'_> {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Tracked {
            clones: self.clones,
            drops: self.drops,
            value: self.value.clone(),
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn weak_bits_round_trip_through_an_atomic() {
    let _g = serial();
    static SLOT: AtomicU64 = AtomicU64::new(0);
    let a = Shared::new(String::from("peer"));
    let w = Shared::downgrade(&a);
    let bits = w.to_bits();
    assert_ne!(bits, 0, "0 stays free to mean 'no handle'");
    SLOT.store(bits, Ordering::Release);

    // Another thread rebuilds the handle and upgrades it.
    let seen = thread::spawn(|| {
        let bits = SLOT.load(Ordering::Acquire);
        // SAFETY: SLOT only ever holds bits of a `Weak<String>`.
        let w = unsafe { Weak::<String>::from_bits(bits) };
        w.upgrade().map(|s| (*s).clone())
    })
    .join()
    .unwrap();
    assert_eq!(seen.as_deref(), Some("peer"));

    // The round trip is exact and takes nothing: the original still works,
    // the rebuilt one is equal to it, and no owner was added.
    // SAFETY: bits of a `Weak<String>`.
    let back = unsafe { Weak::<String>::from_bits(SLOT.load(Ordering::Acquire)) };
    assert_eq!(back, w);
    assert!(back.ptr_eq(&w));
    assert_eq!(Shared::strong_count(&a), 1);

    // After the last owner goes, the rebuilt handle is stale, and stays
    // stale when the slot and the memory are reused by a new object.
    drop(a);
    assert!(back.upgrade().is_none());
    let reuse: Vec<_> = (0..64).map(|i| Shared::new(i.to_string())).collect();
    // SAFETY: bits of a `Weak<String>`.
    let again = unsafe { Weak::<String>::from_bits(SLOT.load(Ordering::Acquire)) };
    assert!(again.upgrade().is_none());
    assert!(!again.is_alive());
    assert!(reuse.iter().all(|s| !Shared::downgrade(s).ptr_eq(&again)));

    // `Weak::new` round-trips too, and never upgrades.
    let dangling = Weak::<String>::new();
    // SAFETY: bits of a `Weak<String>`.
    let d = unsafe { Weak::<String>::from_bits(dangling.to_bits()) };
    assert_eq!(d, dangling);
    assert!(d.upgrade().is_none());
}

#[test]
fn from_bits_rejects_values_no_weak_has() {
    let _g = serial();
    // A stamp is `generation << 5 | segment`; segment 0 has 64 slots,
    // segments 0..=25 exist and 31 is the one of `Weak::new` (offset 0).
    let cases: [u64; 5] = [
        0,                     // stamp 0: no handle has it
        0xFFFF_FFFF,           // stamp 0, any offset
        (1 << 5) << 32 | 64,   // generation 1, segment 0, offset 64
        ((1 << 5) | 27) << 32, // segment 27 does not exist
        31 << 32 | 1,          // `Weak::new`'s segment, offset 1
    ];
    for bits in cases {
        let r = catch_unwind(|| {
            // SAFETY: the contract is broken on purpose; `from_bits` must
            // panic before building a handle.
            let _ = unsafe { Weak::<u8>::from_bits(bits) };
        });
        assert!(r.is_err(), "{bits:#x} was accepted");
    }
}

#[test]
fn weak_ptr_eq_names_the_object_not_the_value() {
    let _g = serial();
    let a = Shared::new(1);
    let b = Shared::new(1);
    let (wa, wb) = (Shared::downgrade(&a), Shared::downgrade(&b));
    assert!(wa.ptr_eq(&Shared::downgrade(&a.clone())));
    assert!(!wa.ptr_eq(&wb));
    drop(a);
    assert!(wa.ptr_eq(&wa), "a dead handle still names its object");
    assert!(Weak::<i32>::new().ptr_eq(&Weak::new()));
    assert!(!Weak::new().ptr_eq(&wb));
}

#[test]
fn make_mut_borrows_in_place_when_unique() {
    let _g = serial();
    let (clones, drops) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut a = Shared::new(Tracked {
        clones: &clones,
        drops: &drops,
        value: vec![1],
    });
    let addr = Shared::as_ptr(&a);
    Shared::make_mut(&mut a).value.push(2);
    assert_eq!(Shared::as_ptr(&a), addr);
    assert_eq!(a.value, [1, 2]);
    assert_eq!(clones.load(Ordering::SeqCst), 0);
    drop(a);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn make_mut_clones_when_shared() {
    let _g = serial();
    let (clones, drops) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut a = Shared::new(Tracked {
        clones: &clones,
        drops: &drops,
        value: vec![1],
    });
    let b = a.clone();
    let wb = Shared::downgrade(&b);
    Shared::make_mut(&mut a).value.push(2);
    assert_eq!(clones.load(Ordering::SeqCst), 1);
    assert!(!Shared::ptr_eq(&a, &b));
    assert_eq!((&a.value[..], &b.value[..]), (&[1, 2][..], &[1][..]));
    assert_eq!((Shared::strong_count(&a), Shared::strong_count(&b)), (1, 1));
    // The weak stays with the old object.
    assert!(Shared::ptr_eq(&wb.upgrade().unwrap(), &b));
    // The copy is a fresh object: borrowed in place from now on.
    Shared::make_mut(&mut a).value.push(3);
    assert_eq!(clones.load(Ordering::SeqCst), 1);
    drop((a, b));
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn make_mut_disassociates_weaks_without_cloning() {
    let _g = serial();
    let (clones, drops) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut a = Shared::new(Tracked {
        clones: &clones,
        drops: &drops,
        value: vec![1],
    });
    let addr = Shared::as_ptr(&a);
    let w = Shared::downgrade(&a);
    assert!(Shared::get_mut(&mut a).is_none(), "a weak was made");
    Shared::make_mut(&mut a).value.push(2);
    assert!(w.upgrade().is_none(), "old weaks are disassociated");
    assert_eq!(Shared::as_ptr(&a), addr, "the value did not move");
    assert_eq!(clones.load(Ordering::SeqCst), 0, "nothing was cloned");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert!(Shared::get_mut(&mut a).is_some(), "no weak of the new slot");
    let w2 = Shared::downgrade(&a);
    assert_eq!(w2.upgrade().unwrap().value, [1, 2]);
    drop(a);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(w2.upgrade().is_none());
}

#[test]
fn make_mut_keeps_pooled_values_in_their_pool() {
    let _g = serial();
    static POOL: Pool<[u64; 8]> = Pool::new();
    let mut a = Shared::new_in([1; 8], &POOL);
    let b = a.clone();
    Shared::make_mut(&mut a)[0] = 2;
    assert_eq!(POOL.stats().in_use, 2, "the copy is in the same pool");
    assert_eq!((a[0], b[0]), (2, 1));
    let w = Shared::downgrade(&a);
    drop(b);
    Shared::make_mut(&mut a)[1] = 3;
    assert!(w.upgrade().is_none());
    assert_eq!(POOL.stats().in_use, 1, "re-slotting allocates nothing");
    drop(a);
    assert_eq!(POOL.stats().in_use, 0);
}

#[test]
fn unwrap_or_clone_moves_when_unique() {
    let _g = serial();
    let (clones, drops) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let a = Shared::new(Tracked {
        clones: &clones,
        drops: &drops,
        value: vec![7],
    });
    let b = a.clone();
    let v1 = Shared::unwrap_or_clone(a);
    assert_eq!(clones.load(Ordering::SeqCst), 1);
    let w = Shared::downgrade(&b);
    let v2 = Shared::unwrap_or_clone(b);
    assert_eq!(clones.load(Ordering::SeqCst), 1, "moved, not cloned");
    assert!(w.upgrade().is_none());
    assert_eq!((v1.value[0], v2.value[0]), (7, 7));
    drop((v1, v2));
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn new_cyclic_weak_upgrades_only_after_construction() {
    let _g = serial();
    struct Node {
        me: Weak<Node>,
        during: bool,
    }
    let node = Shared::new_cyclic(|me| Node {
        me: *me,
        during: me.upgrade().is_some() || me.is_alive(),
    });
    assert!(!node.during);
    assert!(Shared::ptr_eq(&node.me.upgrade().unwrap(), &node));
    assert!(node.me.ptr_eq(&Shared::downgrade(&node)));
    let me = node.me;
    drop(node);
    assert!(me.upgrade().is_none());
}

#[test]
fn new_cyclic_counts_as_weak_made() {
    let _g = serial();
    let mut a = Shared::new_cyclic(|_| 5u32);
    assert!(Shared::get_mut(&mut a).is_none());
    *Shared::make_mut(&mut a) += 1;
    assert_eq!(*a, 6);
}

#[test]
fn new_cyclic_panic_leaves_a_dead_weak_and_no_slot_in_use() {
    let _g = serial();
    let before = handle::stats().slots_in_use;
    let leaked: Mutex<Option<Weak<String>>> = Mutex::new(None);
    let r = catch_unwind(AssertUnwindSafe(|| {
        Shared::new_cyclic(|me: &Weak<String>| {
            *leaked.lock().unwrap() = Some(*me);
            panic!("construction fails");
        })
    }));
    assert!(r.is_err());
    let w = leaked.lock().unwrap().take().unwrap();
    assert!(w.upgrade().is_none());
    assert_eq!(handle::stats().slots_in_use, before);
    // The slot is reused by the next object, and the handle stays dead.
    let objs: Vec<_> = (0..8).map(|i| Shared::new(i.to_string())).collect();
    assert!(w.upgrade().is_none());
    drop(objs);
}

#[test]
fn pin_never_moves_the_value() {
    let _g = serial();
    let p = Shared::pin(String::from("fixed"));
    let q = p.clone();
    let addr: *const String = &*p;
    drop(p);
    assert_eq!(&*q as *const String, addr);
    assert_eq!(q.as_str(), "fixed");
}

#[test]
fn from_box_and_from_pooled_take_over_the_memory() {
    let _g = serial();
    let b = Box::new([3u8; 32]);
    let addr: *const [u8; 32] = &*b;
    let s = Shared::from(b);
    assert_eq!(Shared::as_ptr(&s), addr);
    let w = Shared::downgrade(&s);
    drop(s);
    assert!(w.upgrade().is_none());

    static POOL: Pool<(u64, u64)> = Pool::new();
    let p = POOL.alloc((1, 2));
    let addr = hotpool::Pooled::as_ptr(&p);
    let s: Shared<(u64, u64)> = p.into();
    assert_eq!(Shared::as_ptr(&s), addr);
    assert_eq!(POOL.stats().in_use, 1);
    assert_eq!(Shared::try_unwrap(s), Ok((1, 2)));
    assert_eq!(POOL.stats().in_use, 0, "the slot went back to the pool");
}

#[test]
fn try_new_and_try_new_in_succeed_like_new() {
    let _g = serial();
    let a = Shared::try_new(String::from("x")).unwrap();
    assert_eq!(*a, "x");
    let z = Shared::try_new(()).unwrap();
    assert_eq!(Shared::strong_count(&z), 1);
    static POOL: Pool<u32> = Pool::new();
    let b = Shared::try_new_in(9, &POOL).unwrap();
    assert_eq!((*b, POOL.stats().in_use), (9, 1));
    drop(b);
    assert_eq!(POOL.stats().in_use, 0);
}
