//! The allocator's lock: a spin-then-yield mutex on one `AtomicU32`.
//!
//! Why not `std::sync::Mutex` (futex-based, allocation-free on Linux)? The
//! fork handlers must take every lock before `fork` and release them in the
//! parent and the child without a guard object, which std's mutex cannot do
//! on stable Rust. Critical sections here are short (a batch of list
//! operations), so spinning briefly and then yielding is enough; no
//! allocation, no poisoning, all-zero bytes are the unlocked state (so locks
//! can live in zeroed metadata memory).

use crate::sync::{LockWord, Ordering};
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// A mutex over `T`; zeroed memory is a valid unlocked `SpinLock<T>` when it
/// is a valid `T`.
pub(crate) struct SpinLock<T> {
    locked: LockWord,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the data; `T: Send` suffices.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock over `data`.
    pub(crate) const fn new(data: T) -> Self {
        SpinLock {
            locked: LockWord::new(0),
            data: UnsafeCell::new(data),
        }
    }

    /// Takes the lock, spinning a little, then yielding the CPU.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Guard { lock: self }
    }

    /// Whether some thread holds the lock right now (a hint: it may be
    /// released or taken the next moment).
    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed) != 0
    }

    /// Takes the lock if it is free right now.
    pub(crate) fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.locked
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Guard { lock: self })
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            if self.locked.load(Ordering::Relaxed) == 0
                && self
                    .locked
                    .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if spins < 64 {
                spins += 1;
                crate::sync::spin_loop();
            } else {
                crate::sys::yield_now();
            }
        }
    }

    /// Takes the lock without a guard (fork `prepare` handler).
    pub(crate) fn force_lock(&self) {
        core::mem::forget(self.lock());
    }

    /// Under loom: records an access to the data, as the copy of memory
    /// that `fork` makes while the prepare handler holds the lock.
    #[cfg(loom)]
    pub(crate) fn loom_snapshot(&self) {
        crate::sync::track_write(self.data.get().cast());
    }

    /// Releases a lock taken by [`SpinLock::force_lock`] (fork parent and
    /// child handlers; in the child the taking thread is the only one).
    pub(crate) fn force_unlock(&self) {
        self.locked.store(0, Ordering::Release);
    }
}

/// Holds a [`SpinLock`]; releases it on drop.
pub(crate) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        crate::sync::track_write(self.lock.data.get().cast());
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        crate::sync::track_write(self.lock.data.get().cast());
        // SAFETY: the guard proves the lock is held, exclusively.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(0, Ordering::Release);
    }
}
