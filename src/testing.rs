//! Fault injection for tests: makes the backing allocators fail every Nth
//! request. Present only with the `fault-injection` cargo feature, which
//! hotpool's own tests turn on through a dev-dependency on the crate.
//!
//! Counted requests are the ones that reach the OS or `malloc` for memory:
//! pool chunks (`Backing::Os` and `Backing::Arena` map, `Backing::System`
//! calls `malloc`) and the arena's mappings (chunks, huge blocks,
//! metadata).
//!
//! ```
//! use hotpool::testing;
//! hotpool::arena::trim(); // start the arena before injecting faults
//! testing::fail_every(1); // every request fails
//! assert!(hotpool::arena::try_alloc(8 << 20, 8).is_err());
//! let f = testing::faults();
//! testing::fail_every(0); // off
//! assert!(f.injected >= 1 && f.requests >= 1);
//! assert!(hotpool::arena::try_alloc(8 << 20, 8).is_ok());
//! ```
//!
//! Start the arena (any call, e.g. [`crate::arena::trim`]) before injecting
//! faults: a failed start leaves it without arenas for the whole process.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static EVERY: AtomicUsize = AtomicUsize::new(0);
static REQUESTS: AtomicUsize = AtomicUsize::new(0);
static INJECTED: AtomicUsize = AtomicUsize::new(0);

/// Makes every `n`th request to a backing allocator fail from now on
/// (counting from this call); 0 turns injection off.
///
/// ```
/// hotpool::testing::fail_every(0);
/// ```
pub fn fail_every(n: usize) {
    REQUESTS.store(0, Relaxed);
    EVERY.store(n, Relaxed);
}

/// Requests counted and failures injected since the last [`fail_every`].
///
/// ```
/// hotpool::testing::fail_every(0);
/// assert_eq!(hotpool::testing::faults().requests, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// Requests to backing allocators while injection was on.
    pub requests: usize,
    /// Requests made to fail, in total since start.
    pub injected: usize,
}

/// The counts so far; see [`Faults`].
///
/// ```
/// let f = hotpool::testing::faults();
/// assert!(f.requests <= f.injected.max(f.requests));
/// ```
pub fn faults() -> Faults {
    Faults {
        requests: REQUESTS.load(Relaxed),
        injected: INJECTED.load(Relaxed),
    }
}

/// Called by each backing request: whether this one must fail.
pub(crate) fn inject() -> bool {
    let n = EVERY.load(Relaxed);
    if n == 0 {
        return false;
    }
    let k = REQUESTS.fetch_add(1, Relaxed) + 1;
    let fail = k % n == 0;
    if fail {
        INJECTED.fetch_add(1, Relaxed);
    }
    fail
}
