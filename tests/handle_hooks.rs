//! Handle tests that need the hidden `test-hooks` feature: exact slot
//! reuse and generation exhaustion, observed through `Weak::__slot_id`,
//! `Weak::__generation` and `Shared::__raise_generation`.
//!
//! Every test takes `SERIAL`: they share the process-wide handle table and
//! assert exact slot reuse.

use std::sync::{Mutex, MutexGuard};

use hotpool::{handle, Pool, Shared};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn stale_after_reuse_of_slot_and_memory() {
    let _g = serial();
    static OBJECTS: Pool<[u64; 4]> = Pool::new();
    let a = Shared::new_in([1; 4], &OBJECTS);
    let w = Shared::downgrade(&a);
    let addr = Shared::as_ptr(&a);
    drop(a);
    // The free list is LIFO and the pool's thread-local free list too: the
    // next object on this thread reuses both the slot and the memory.
    let b = Shared::new_in([2; 4], &OBJECTS);
    let wb = Shared::downgrade(&b);
    assert_eq!(wb.__slot_id(), w.__slot_id(), "slot reused");
    assert_eq!(Shared::as_ptr(&b), addr, "memory reused");
    assert_eq!(wb.__generation(), w.__generation() + 1);
    assert!(
        w.upgrade().is_none(),
        "stale handle must not see the new object"
    );
    assert!(!w.is_alive());
    assert_ne!(w, wb);
    assert_eq!(*wb.upgrade().unwrap(), [2; 4]);

    // Same with Box memory: the slot is reused, the handle stays stale.
    let c = Shared::new(String::from("c"));
    let wc = Shared::downgrade(&c);
    drop(c);
    let d = Shared::new(String::from("d"));
    assert_eq!(Shared::downgrade(&d).__slot_id(), wc.__slot_id());
    assert!(wc.upgrade().is_none());
}

#[test]
fn generation_exhaustion_retires_slot() {
    let _g = serial();
    let retired_before = handle::stats().slots_retired;

    // One step before the last usable generation: the slot is reused once
    // more, then retired.
    let a = Shared::new(0u32);
    Shared::__raise_generation(&a, (1 << 27) - 3);
    let wa = Shared::downgrade(&a);
    assert_eq!(wa.__generation(), (1 << 27) - 3);
    drop(a);
    let b = Shared::new(1u32);
    let wb = Shared::downgrade(&b);
    assert_eq!(wb.__slot_id(), wa.__slot_id(), "slot reused once more");
    assert_eq!(wb.__generation(), (1 << 27) - 2);
    assert!(wa.upgrade().is_none());
    assert_eq!(handle::stats().slots_retired, retired_before);
    drop(b);

    // Now the generation would reach the retirement value: retired.
    assert_eq!(handle::stats().slots_retired, retired_before + 1);
    assert!(wa.upgrade().is_none());
    assert!(wb.upgrade().is_none());
    let many: Vec<_> = (0..1000).map(Shared::new).collect();
    for s in &many {
        assert_ne!(Shared::downgrade(s).__slot_id(), wb.__slot_id());
    }
    drop(many);
    assert!(wb.upgrade().is_none());

    // Raising is clamped below the retirement value and never lowers.
    let c = Shared::new(2u32);
    Shared::__raise_generation(&c, u32::MAX);
    let wc = Shared::downgrade(&c);
    assert_eq!(wc.__generation(), (1 << 27) - 2);
    Shared::__raise_generation(&c, 5);
    assert_eq!(Shared::downgrade(&c).__generation(), (1 << 27) - 2);
    assert!(wc.upgrade().is_some());
    drop(c);
    assert_eq!(handle::stats().slots_retired, retired_before + 2);
}
