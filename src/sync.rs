//! The synchronisation primitives every concurrent protocol in hotpool uses.
//!
//! Under `--cfg loom` these are loom's model-checked types, so the same
//! protocol code runs unchanged inside a loom model; otherwise they are
//! `core`'s atomics and `parking_lot`'s mutex. The pool layer takes all of
//! its atomics, its [`Mutex`], its thread-locals ([`thread_local!`]) and its
//! process-wide statics ([`lazy_static!`]-style, see [`pool_static!`]) from
//! here.
//!
//! | item | normally | under `cfg(loom)` |
//! |---|---|---|
//! | atomics | `core::sync::atomic` | `loom::sync::atomic` |
//! | [`Mutex`] | `parking_lot::Mutex` (fork-aware) | `loom::sync::Mutex` |
//! | `thread_local!` | `std::thread_local!` (const-initialised) | `loom::thread_local!` (dropped when the model thread ends) |
//! | [`pool_static!`] | a plain `static` | `loom::lazy_static!` (new in each execution) |

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub(crate) use parking_lot::MutexGuard;

#[cfg(loom)]
pub(crate) use loom::sync::MutexGuard;

/// A mutex with `parking_lot`'s API (`lock` returns the guard, no
/// poisoning), switched to loom's under `cfg(loom)`.
///
/// Outside loom it can be held across `fork` by the pool's fork handlers
/// ([`Mutex::lock_for_fork`], then [`Mutex::unlock_after_fork`] in the
/// parent and [`Mutex::reset_after_fork`] in the child).
#[cfg(not(loom))]
pub(crate) struct Mutex<T> {
    /// In a cell so the child of a `fork` can replace the lock word by a
    /// fresh one (see [`Mutex::reset_after_fork`]).
    inner: core::cell::UnsafeCell<parking_lot::Mutex<T>>,
}

// SAFETY: as parking_lot::Mutex<T>: the cell is replaced only by
// `reset_after_fork`, whose caller is the only thread.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as parking_lot::Mutex<T>.
#[cfg(not(loom))]
unsafe impl<T: Send> Send for Mutex<T> {}

#[cfg(not(loom))]
impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub(crate) const fn new(value: T) -> Mutex<T> {
        Mutex {
            inner: core::cell::UnsafeCell::new(parking_lot::Mutex::new(value)),
        }
    }

    fn raw(&self) -> &parking_lot::Mutex<T> {
        // SAFETY: the cell is only written by `reset_after_fork`, when no
        // reference to it can be in use (the caller is the only thread and
        // holds the lock through a forgotten guard).
        unsafe { &*self.inner.get() }
    }

    /// Locks, waiting as long as needed.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.raw().lock()
    }

    /// Locks if that needs no wait.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw().try_lock()
    }

    /// Locks and keeps the lock without a guard, until
    /// [`Mutex::unlock_after_fork`] or [`Mutex::reset_after_fork`]; for a
    /// fork's prepare handler.
    pub(crate) fn lock_for_fork(&self) {
        core::mem::forget(self.lock());
    }

    /// The protected value.
    ///
    /// # Safety
    ///
    /// The caller holds the lock (through [`Mutex::lock_for_fork`]) and
    /// uses the pointer only while it does.
    pub(crate) unsafe fn data_ptr(&self) -> *mut T {
        self.raw().data_ptr()
    }

    /// Releases a lock taken by [`Mutex::lock_for_fork`] (fork's parent
    /// handler: other threads may wait on it and are woken).
    ///
    /// # Safety
    ///
    /// The calling thread took the lock with [`Mutex::lock_for_fork`].
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: per the contract, the lock is held and has no guard.
        unsafe { self.raw().force_unlock() };
    }

    /// Replaces a lock taken by [`Mutex::lock_for_fork`] by a fresh,
    /// unlocked one holding the same value (fork's child handler). Unlike
    /// unlocking, it never wakes waiters: they were threads of the parent,
    /// and `parking_lot`'s wait queues may have been in mid-change when the
    /// process forked.
    ///
    /// # Safety
    ///
    /// The calling thread took the lock with [`Mutex::lock_for_fork`] and
    /// is the only thread of the process (the child of a `fork`).
    pub(crate) unsafe fn reset_after_fork(&self) {
        let cell = self.inner.get();
        // SAFETY: the only thread holds the lock, so nothing else reads or
        // writes the value or the lock word; the value is moved from the
        // old lock into the new one and the old one is overwritten without
        // being dropped (a parking_lot mutex owns nothing else).
        unsafe {
            let value = core::ptr::read((*cell).data_ptr());
            core::ptr::write(cell, parking_lot::Mutex::new(value));
        }
    }
}

/// A mutex with `parking_lot`'s API over loom's mutex.
#[cfg(loom)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

#[cfg(loom)]
impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(loom::sync::Mutex::new(value))
    }

    /// Locks, waiting as long as needed.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks if that needs no wait.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// Atomics that only statistics read: `core`'s even under loom, since no
/// protocol depends on them (keeps loom's state space small).
pub(crate) mod stat {
    pub(crate) use core::sync::atomic::{AtomicU64, AtomicUsize};
}

/// A witness of accesses to memory that loom cannot see (the pool's shared
/// state is freed with `Box`, not through a loom type): under loom a
/// `loom::cell::UnsafeCell` that every use reads ([`Tracked::used`]) and the
/// destruction writes ([`Tracked::freed`]), so loom reports a free not
/// ordered after every use; otherwise nothing at all.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

impl Tracked {
    /// Records a use of the tracked memory.
    #[inline(always)]
    pub(crate) fn used(&self) {
        #[cfg(loom)]
        self.cell.with(|_| ());
    }

    /// Records the destruction of the tracked memory.
    #[inline(always)]
    pub(crate) fn freed(&self) {
        #[cfg(loom)]
        self.cell.with_mut(|_| ());
    }
}

/// Defines a `const fn`, or under loom (whose atomics and mutexes have no
/// `const` constructors) a plain `fn`.
macro_rules! const_fn {
    ($(#[$m:meta])* $v:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$m])* $v const fn $($rest)*
        #[cfg(loom)]
        $(#[$m])* $v fn $($rest)*
    };
}
pub(crate) use const_fn;

/// `thread_local!` with a `const` initialiser: std's, or loom's (which
/// has no `const` form) under loom.
#[cfg(not(loom))]
macro_rules! const_thread_local {
    ($(static $name:ident: $t:ty = $init:expr;)*) => {
        std::thread_local! { $(static $name: $t = const { $init };)* }
    };
}
#[cfg(loom)]
macro_rules! const_thread_local {
    ($(static $name:ident: $t:ty = $init:expr;)*) => {
        loom::thread_local! { $(static $name: $t = $init;)* }
    };
}
pub(crate) use const_thread_local;

/// A process-wide `static` of the pool layer: a plain `static` (so its
/// initialiser must be `const`), or under loom a `loom::lazy_static!`, made
/// anew in each execution of a model. Use it through `&*NAME` (a plain
/// static derefs to itself through [`Plain`]).
#[cfg(not(loom))]
macro_rules! pool_static {
    ($(#[$m:meta])* $v:vis static $name:ident: $t:ty = $init:expr;) => {
        $(#[$m])* $v static $name: $crate::sync::Plain<$t> = $crate::sync::Plain($init);
    };
}
#[cfg(loom)]
macro_rules! pool_static {
    ($(#[$m:meta])* pub(crate) static $name:ident: $t:ty = $init:expr;) => {
        loom::lazy_static! { $(#[$m])* pub(crate) static ref $name: $t = $init; }
    };
    ($(#[$m:meta])* static $name:ident: $t:ty = $init:expr;) => {
        loom::lazy_static! { $(#[$m])* static ref $name: $t = $init; }
    };
}
pub(crate) use pool_static;

/// A plain static's value, derefs to it (so `&*NAME` reads the same with
/// and without loom).
#[cfg(not(loom))]
pub(crate) struct Plain<T>(pub T);

#[cfg(not(loom))]
impl<T> core::ops::Deref for Plain<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}
