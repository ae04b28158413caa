//! Process-wide lists: every live pool, and every thread holding a cache.
//!
//! Both are touched only on cold paths (a pool's first use and last drop, a
//! thread's first pool operation and exit, statistics). Lock order when both
//! are held: pools, then threads.

use slab::Slab;

use super::central::Inner;
use super::chunk::Geometry;
use super::config::ResolvedConfig;
use super::local::ThreadCache;
use crate::sync::{pool_static, AtomicU32, Mutex, Ordering, Wait};

struct PoolRef(*const Inner);
// SAFETY: Inner is shared between threads by design (atomics and a mutex);
// the registry only hands out shared references under its lock.
unsafe impl Send for PoolRef {}

pub(crate) struct ThreadRef(pub *const ThreadCache);
// SAFETY: a registered cache stays valid until its thread removes it under
// the registry lock; other threads read only its atomic fields.
unsafe impl Send for ThreadRef {}

pool_static! {
    /// Every live pool's shared state, by pool id.
    static POOLS: Mutex<Slab<PoolRef>> = Mutex::new(Slab::new());
}
pool_static! {
    /// Every thread holding a cache.
    pub(crate) static THREADS: Mutex<Slab<ThreadRef>> = Mutex::new(Slab::new());
}
pool_static! {
    /// The next pool serial number.
    static SERIAL: AtomicU32 = AtomicU32::new(1);
}
pool_static! {
    /// Serialises the creation of a pool's shared state (`Pool::init`);
    /// taken before [`POOLS`].
    pub(crate) static INIT: Mutex<()> = Mutex::new(());
}

/// Makes and registers the shared state of a new pool.
pub(crate) fn create(
    geo: Geometry,
    config: ResolvedConfig,
    type_name: &'static str,
    object_size: usize,
) -> *const Inner {
    let mut pools = POOLS.lock();
    let slot = pools.vacant_entry();
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let inner = Box::into_raw(Box::new(Inner::new(
        slot.key(),
        serial,
        geo,
        config,
        type_name,
        object_size,
    )));
    slot.insert(PoolRef(inner));
    inner
}

/// Unregisters and frees a pool's shared state.
///
/// # Safety
///
/// `this` came from [`create`] and no reference to it remains.
pub(crate) unsafe fn destroy(this: *const Inner) {
    // SAFETY: still alive until the Box is dropped below.
    let id = unsafe { &*this }.hot.0.id;
    // SAFETY: as above.
    unsafe { &*this }.alive.freed();
    POOLS.lock().remove(id);
    // SAFETY: made by Box::into_raw in `create`; the last reference is gone.
    drop(unsafe { Box::from_raw(this as *mut Inner) });
}

/// Calls `f` on every live pool in id order, holding the registry lock (so
/// none is freed meanwhile), taken as `wait` says.
pub(crate) fn for_each_pool(wait: Wait, mut f: impl FnMut(&Inner)) {
    let pools = POOLS.lock_with(wait);
    for (_, p) in pools.iter() {
        // SAFETY: registered pools are alive while the lock is held.
        f(unsafe { &*p.0 });
    }
}

/// Pools trimmed per pass of [`trim_idle`] (the rest wait for the next).
#[cfg(target_os = "linux")]
const IDLE_BATCH: usize = 64;

/// Gives back what idle pools hold: a pool whose central lock has seen no
/// batch move for `decay_ms` has its depot emptied into its chunks and its
/// wholly free chunks (spares too) returned to the OS at once. Called by
/// the arena's background purger about once a second (registered with
/// [`crate::arena::set_idle_hook`]); a pool is trimmed once per idle spell.
/// Then the lists of threads that ran no pool slow path for `decay_ms` go
/// back to their pools but for one object each (`local::reclaim_quiet`).
#[cfg(target_os = "linux")]
pub(crate) fn trim_idle(now: u64, decay_ms: i64) {
    if decay_ms < 0 {
        return;
    }
    let mut picked = [core::ptr::null::<Inner>(); IDLE_BATCH];
    let mut n = 0;
    for_each_pool(Wait::Park, |p| {
        if n < IDLE_BATCH && p.idle_for(now) >= decay_ms.max(1) as u64 && p.take_ref() {
            p.mark_trimmed();
            picked[n] = p;
            n += 1;
        }
    });
    for &p in &picked[..n] {
        // SAFETY: `take_ref` gave us a reference, so the pool is alive until
        // we release it; trimming keeps the pool open.
        unsafe {
            Inner::trim_central(p, false, false);
            Inner::release(p, 1);
        }
    }
    super::local::reclaim_quiet(now, decay_ms);
}

/// Takes the pool registry's lock, then every registered pool's central
/// lock, then the thread registry's lock, keeping them without guards (the
/// prepare handler of a fork, see `fork.rs`).
#[cfg(not(loom))]
pub(crate) fn lock_for_fork() {
    POOLS.lock_for_fork();
    // SAFETY: we hold POOLS (above) until `unlock_after_fork`.
    let pools = unsafe { &*POOLS.data_ptr() };
    for (_, p) in pools.iter() {
        // SAFETY: registered pools are alive while POOLS is held.
        unsafe { &*p.0 }.lock_for_fork();
    }
    THREADS.lock_for_fork();
}

/// Releases what [`lock_for_fork`] took, in reverse order; with `child`,
/// replaces each lock by a fresh one instead (the child of a fork, where
/// the caller is the only thread).
///
/// # Safety
///
/// The calling thread called [`lock_for_fork`] and no pool was made or
/// freed since (every path that could do so waits for these locks).
#[cfg(not(loom))]
pub(crate) unsafe fn unlock_after_fork(child: bool) {
    // SAFETY: per the contract, we hold every one of these locks, the
    // registry still lists the pools whose locks we took, and with `child`
    // we are the only thread.
    unsafe {
        if child {
            THREADS.reset_after_fork();
        } else {
            THREADS.unlock_after_fork();
        }
        let pools = &*POOLS.data_ptr();
        for (_, p) in pools.iter() {
            (*p.0).unlock_after_fork(child);
        }
        if child {
            POOLS.reset_after_fork();
        } else {
            POOLS.unlock_after_fork();
        }
    }
}
