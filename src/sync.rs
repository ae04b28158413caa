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

    /// Locks, waiting as `wait` says.
    pub(crate) fn lock_with(&self, wait: Wait) -> MutexGuard<'_, T> {
        match wait {
            Wait::Park => self.lock(),
            Wait::Yield => loop {
                if let Some(guard) = self.try_lock() {
                    return guard;
                }
                std::thread::yield_now();
            },
        }
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

    /// Locks: loom's mutex has one way to wait (a switch of model thread).
    pub(crate) fn lock_with(&self, _wait: Wait) -> MutexGuard<'_, T> {
        self.lock()
    }
}

/// How [`Mutex::lock_with`] waits for a lock another thread holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Sleep in `parking_lot`'s queue ([`Mutex::lock`]). A thread's first
    /// sleep makes its `parking_lot` thread data, which can allocate: the
    /// C library's record of that thread-local's destructor, and
    /// `parking_lot`'s hash table (made at the first sleep in the process,
    /// grown as more threads sleep).
    Park,
    /// Retry, yielding the CPU between tries (`sched_yield`); allocates
    /// nothing. For the exit-time leak report, which must not allocate
    /// through the allocator it reports on.
    Yield,
}

/// Atomics that only statistics read: `core`'s even under loom, since no
/// protocol depends on them (keeps loom's state space small).
pub(crate) mod stat {
    pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize};
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

// ---------------------------------------------------------------------------
// arena: what the arena allocator (`crate::arena`) needs from the facade.
// Under `--cfg loom` the lock word, the spin wait, the thread-locals, the
// thread-exit hook and the OS memory calls are loom's or loom-friendly;
// otherwise they are the real ones and cost nothing extra. Linux only, as
// the arena.
// ---------------------------------------------------------------------------

/// `thread_local!` for const-initialised values: std's, or under loom
/// loom's (one value per modelled thread; its macro takes no `const`
/// block, so the initialiser is passed plainly).
#[cfg(loom)]
macro_rules! thread_local_const {
    ($(#[$a:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        loom::thread_local! { $(#[$a])* static $name: $t = $init; }
    };
}
#[cfg(all(target_os = "linux", not(loom)))]
macro_rules! thread_local_const {
    ($(#[$a:meta])* static $name:ident: $t:ty = const { $init:expr };) => {
        std::thread_local! { $(#[$a])* static $name: $t = const { $init }; }
    };
}
#[cfg(target_os = "linux")]
pub(crate) use thread_local_const as thread_local;

/// One step of a spin wait: a CPU hint, or under loom a yield so that the
/// scheduler runs the thread holding what we wait for.
#[cfg(target_os = "linux")]
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// The light side of an asymmetric fence, whose heavy side is
/// [`crate::sys::membarrier`]: no instruction, only a compiler fence, so
/// that the memory accesses of two fast-path calls of one thread are never
/// interleaved by the compiler (the barrier's interrupt falls between two
/// instructions; the fence makes it fall between two calls or inside one).
/// Under loom, a `SeqCst` fence, which with the heavy side's own gives the
/// same guarantee in the model.
#[cfg(target_os = "linux")]
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// The word of the arena's spin lock. Outside loom it is an `AtomicU32`;
/// zeroed memory is a valid unlocked word either way.
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) type LockWord = core::sync::atomic::AtomicU32;

/// Records, under loom, a write access to the memory at `addr` that a lock
/// guards (checked by loom like an `UnsafeCell` access: two accesses not
/// ordered by happens-before are reported); nothing outside loom.
#[cfg(target_os = "linux")]
#[inline(always)]
pub(crate) fn track_write(addr: *const u8) {
    #[cfg(loom)]
    loom_arena::track_write(addr as usize);
    #[cfg(not(loom))]
    let _ = addr;
}

#[cfg(loom)]
pub(crate) use loom_arena::{exited_threads, LockWord};

/// Atomics in the arena's raw (zeroed) metadata that loom must see: a
/// thread cache's stack heights and bounds, which the owning thread's fast
/// paths read and write and the purger's reclaim writes
/// (`arena::tcache`). Outside loom, plain atomics (zero is a valid value);
/// under loom, words in the execution's table, as [`LockWord`].
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) type RawU32 = core::sync::atomic::AtomicU32;
/// See [`RawU32`].
#[cfg(all(target_os = "linux", not(loom)))]
pub(crate) type RawU16 = core::sync::atomic::AtomicU16;
#[cfg(loom)]
pub(crate) use loom_arena::{LockWord as RawU32, RawU16};

/// The arena's state that loom must see, kept per loom execution: the lock
/// words (loom atomics), access trackers (loom cells) for lock-guarded
/// memory, the thread-exit hook and the memory "mapped" in the execution.
///
/// The arena's metadata lives in raw memory (zeroed bytes are a valid
/// arena), where loom's types cannot be placed; so each lock's word and
/// each tracked address gets its loom object in a per-execution table,
/// keyed by address.
#[cfg(loom)]
pub(crate) mod loom_arena {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

    struct Tables {
        words: HashMap<usize, Box<AtomicU32>>,
        cells: HashMap<usize, Box<UnsafeCell<()>>>,
    }

    loom::lazy_static! {
        // loom runs every modelled thread on one OS thread and never
        // switches inside these critical sections (no loom operation in
        // them), so a std mutex is enough.
        static ref TABLES: Mutex<Tables> = Mutex::new(Tables {
            words: HashMap::new(),
            cells: HashMap::new(),
        });
        static ref EXITED: AtomicUsize = AtomicUsize::new(0);
    }

    fn word(addr: usize) -> &'static AtomicU32 {
        let mut t = TABLES.lock().unwrap();
        let w: *const AtomicU32 = &**t
            .words
            .entry(addr)
            .or_insert_with(|| Box::new(AtomicU32::new(0)));
        // SAFETY: the box is never removed from the table, which lives
        // until the execution ends, after every modelled thread.
        unsafe { &*w }
    }

    pub(crate) fn track_write(addr: usize) {
        let c: *const UnsafeCell<()> = {
            let mut t = TABLES.lock().unwrap();
            &**t.cells
                .entry(addr)
                .or_insert_with(|| Box::new(UnsafeCell::new(())))
        };
        // SAFETY: as in `word`; the access itself only informs loom.
        unsafe { &*c }.with_mut(|_| ());
    }

    /// The spin lock's word: zero-sized state in place, loom's atomic in
    /// the execution's table (created unlocked on first use).
    pub(crate) struct LockWord {
        /// Keeps the lock's size and layout; never read.
        _in_place: u32,
    }

    impl LockWord {
        /// An unlocked word (loom's starts unlocked).
        pub(crate) const fn new(v: u32) -> Self {
            assert!(v == 0, "a lock word starts unlocked");
            LockWord { _in_place: 0 }
        }
        fn get(&self) -> &'static AtomicU32 {
            word(self as *const Self as usize)
        }
        pub(crate) fn load(&self, o: Ordering) -> u32 {
            self.get().load(o)
        }
        pub(crate) fn store(&self, v: u32, o: Ordering) {
            self.get().store(v, o)
        }
        pub(crate) fn compare_exchange(
            &self,
            cur: u32,
            new: u32,
            ok: Ordering,
            err: Ordering,
        ) -> Result<u32, u32> {
            self.get().compare_exchange(cur, new, ok, err)
        }
        pub(crate) fn compare_exchange_weak(
            &self,
            cur: u32,
            new: u32,
            ok: Ordering,
            err: Ordering,
        ) -> Result<u32, u32> {
            // loom's weak CAS may fail spuriously, adding paths that the
            // spin loop already covers by contention: use the strong one.
            self.get().compare_exchange(cur, new, ok, err)
        }
    }

    /// A 16-bit word in raw memory: the value lives in the execution's
    /// table (a 32-bit loom atomic, truncated), as [`LockWord`]'s.
    pub(crate) struct RawU16 {
        /// Keeps the word's size and layout; never read.
        _in_place: u16,
    }

    impl RawU16 {
        fn get(&self) -> &'static AtomicU32 {
            word(self as *const Self as usize)
        }
        pub(crate) fn load(&self, o: Ordering) -> u16 {
            self.get().load(o) as u16
        }
        pub(crate) fn store(&self, v: u16, o: Ordering) {
            self.get().store(u32::from(v), o)
        }
    }

    /// How many modelled threads have run their exit hook.
    pub(crate) fn exited_threads() -> usize {
        EXITED.load(Ordering::Acquire)
    }

    struct ExitHook {
        dtor: unsafe extern "C" fn(*mut libc::c_void),
        value: *mut libc::c_void,
    }

    impl Drop for ExitHook {
        fn drop(&mut self) {
            // Not while loom tears down a failed execution.
            if !self.value.is_null() && !std::thread::panicking() {
                // SAFETY: the destructor and value `thread_key_set` got,
                // called once, at the modelled thread's exit, as pthread
                // would.
                unsafe { (self.dtor)(self.value) };
                EXITED.fetch_add(1, Ordering::Release);
            }
        }
    }

    loom::thread_local! {
        static HOOK: RefCell<Option<ExitHook>> = RefCell::new(None);
    }

    static DTOR: Mutex<Option<unsafe extern "C" fn(*mut libc::c_void)>> = Mutex::new(None);

    /// `pthread_key_create` under loom: one key, its destructor run by a
    /// loom thread-local's `Drop` when the modelled thread ends.
    pub(crate) fn thread_key_create(
        dtor: unsafe extern "C" fn(*mut libc::c_void),
    ) -> Option<libc::pthread_key_t> {
        *DTOR.lock().unwrap() = Some(dtor);
        Some(0)
    }

    /// `pthread_setspecific` under loom.
    pub(crate) fn thread_key_set(value: *mut libc::c_void) {
        let dtor = DTOR.lock().unwrap().expect("thread key not created");
        HOOK.with(|h| *h.borrow_mut() = Some(ExitHook { dtor, value }));
    }

    /// The ranges the execution mapped (start, length), unmapped when
    /// the next execution starts ([`unmap_all`]).
    static MAPPED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    /// `sys` mapped `len` bytes at `p`.
    pub(crate) fn mapped(p: *mut u8, len: usize) {
        MAPPED.lock().unwrap().push((p as usize, len));
    }

    /// `sys` is about to unmap `len` bytes at `p`: forget that range
    /// (splitting the mapping it lies in).
    pub(crate) fn unmapped(p: *mut u8, len: usize) {
        let (a, b) = (p as usize, p as usize + len);
        let mut m = MAPPED.lock().unwrap();
        let mut out = Vec::with_capacity(m.len() + 1);
        for &(s, l) in m.iter() {
            let e = s + l;
            if e <= a || b <= s {
                out.push((s, l));
                continue;
            }
            if s < a {
                out.push((s, a - s));
            }
            if b < e {
                out.push((b, e - b));
            }
        }
        *m = out;
    }

    /// Unmaps everything the previous execution mapped and left mapped.
    pub(crate) fn unmap_all() {
        for (p, l) in MAPPED.lock().unwrap().drain(..) {
            // SAFETY: a range `sys` mapped for the execution that is over;
            // nothing refers to it any more.
            unsafe { libc::munmap(p as *mut libc::c_void, l) };
        }
    }
}
