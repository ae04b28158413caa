//! Fork safety of the pools.
//!
//! A `fork` copies only the calling thread; a lock another thread held at
//! that moment stays locked for ever in the child. So the pool registers
//! `pthread_atfork` handlers at its first pool's creation that take every
//! pool lock before the fork, in the lock order:
//!
//! 1. [`registry::INIT`] (creation of a pool's shared state),
//! 2. the pool registry,
//! 3. each registered pool's central lock (depot and chunk list),
//! 4. the thread registry,
//!
//! and afterwards release them in the parent and replace them by fresh,
//! unlocked ones in the child (see [`crate::sync::Mutex::reset_after_fork`]).
//! No thread is then inside a critical section when the process forks, so
//! the child finds every depot, chunk list and registry consistent.
//!
//! In the child, the other threads' caches stay registered with the
//! objects they held: those objects are lost to the child (as the threads
//! are), never handed out twice. A reclaimer (the purger) that was at the
//! forking thread's lists is gone too: the child hands the lists back to
//! their owner as reclaimed ([`local::after_fork_in_child`]). Another
//! thread's cache may stay in any state; no one waits on it.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use super::{local, registry};

/// Registers the fork handlers when the program (or the library) is
/// loaded, before it has a second thread; [`register`] runs again at the
/// first pool's creation in case this did not. glibc skips the parent and
/// child handlers of one registered after a fork's prepare phase began: a
/// fork racing the first pool's creation on another thread could otherwise
/// copy a pool lock held into a child that waits on it for ever (as the
/// arena's start did, see `arena::init`).
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_LOAD: extern "C" fn() = register_at_load;

#[cfg(all(target_os = "linux", not(loom), not(miri)))]
extern "C" fn register_at_load() {
    register();
}

/// Registers the fork handlers, once per process. Another thread that
/// comes here meanwhile does not wait for the first to finish: with a
/// `Once`, a thread of the parent caught inside `call_once` at a fork left
/// it "running" for ever in the child, whose first pool then waited on it
/// (tests/fork.rs lost about one child in 200 so; gdb showed the child in
/// `Once::call`).
pub(crate) fn register() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    // Miri cannot fork (nor register fork handlers).
    if cfg!(miri) || REGISTERED.swap(true, Relaxed) {
        return;
    }
    // pthread_atfork fails only on ENOMEM; without handlers a fork may
    // deadlock the child, but everything else works, so carry on.
    let _registered = crate::sys::at_fork(prepare, parent, child);
}

/// Before `fork`: takes every pool lock, in order.
unsafe extern "C" fn prepare() {
    registry::INIT.lock_for_fork();
    registry::lock_for_fork();
}

/// After `fork`, in the parent: releases them.
unsafe extern "C" fn parent() {
    // SAFETY: `prepare` took these locks on this thread.
    unsafe {
        registry::unlock_after_fork(false);
        registry::INIT.unlock_after_fork();
    }
}

/// After `fork`, in the child (one thread): replaces them by fresh locks.
unsafe extern "C" fn child() {
    // SAFETY: `prepare` took these locks on this thread, now the only one.
    unsafe {
        registry::unlock_after_fork(true);
        registry::INIT.reset_after_fork();
    }
    local::after_fork_in_child();
}
