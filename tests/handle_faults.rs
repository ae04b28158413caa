//! `Shared::try_new_in` when the pool cannot get memory: an error, the
//! value dropped, no handle-table slot kept. Needs the `fault-injection`
//! feature (a separate test binary: injection is process-wide).

use std::sync::atomic::{AtomicUsize, Ordering};

use hotpool::{handle, testing, AllocError, Pool, Shared};

struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn try_new_in_reports_pool_failure_and_drops_the_value() {
    static POOL: Pool<Counted<'static>> = Pool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    hotpool::arena::trim(); // start the arena before injecting faults
    let slots_before = handle::stats().slots_in_use;
    testing::fail_every(1);
    let r = Shared::try_new_in(Counted(&DROPS), &POOL);
    testing::fail_every(0);
    assert!(
        matches!(r, Err(AllocError::OutOfMemory { .. })),
        "{r:?}",
        r = r.as_ref().err()
    );
    assert_eq!(DROPS.load(Ordering::SeqCst), 1, "the value was dropped");
    assert_eq!(handle::stats().slots_in_use, slots_before);
    // Without injection the same pool works.
    let ok = Shared::try_new_in(Counted(&DROPS), &POOL).unwrap();
    assert_eq!(POOL.stats().in_use, 1);
    drop(ok);
    assert_eq!(DROPS.load(Ordering::SeqCst), 2);
}
