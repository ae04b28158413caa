//! Typed object pools: [`Pool<T>`] and [`Pooled<T>`].
//!
//! # How objects flow
//!
//! ```text
//!   thread A                    pool (one per type)                thread B
//!  +-----------+  batch   +---------------------------+  batch  +-----------+
//!  | free list | <------> |  depot: bounded stack of  | <-----> | free list |
//!  | (stack)   |          |  free objects (one lock)  |         | (stack)   |
//!  +-----------+          +------------+--------------+         +-----------+
//!    ^ alloc/free                      | empty: carve        alloc/free ^
//!    | no lock, no                     v full: give back    no lock, no |
//!    | shared line            +------------------+          shared line |
//!                             | chunks (>= 1 MiB,|
//!                             | bitmap of free   |
//!                             | slots)           |
//!                             +--------+---------+
//!                                      | wholly free on trim
//!                                      v
//!                               OS (munmap) / malloc
//! ```
//!
//! * **alloc** pops the calling thread's list; when it is empty, one batch
//!   comes from the depot, or, when the depot is empty, from the chunks, or a
//!   new chunk is mapped.
//! * **free** pushes onto the *freeing* thread's list (whichever thread
//!   allocated the object); when the list is at its bound, the whole list
//!   goes to the depot by pointer (the thread takes an empty stack back), or
//!   when the depot has no room for it, one batch goes to the depot or back
//!   into its chunks.
//! * **thread exit** moves the thread's lists to the depot.
//! * **trim** empties the depot and the caller's list into the chunks, makes
//!   every other thread flush its list at its next free into the pool,
//!   and gives wholly free chunks back (with [`Backing::Os`] their pages go
//!   back to the OS at once; the default [`Backing::Arena`] unmaps them or
//!   keeps the last freed ones mapped for reuse until `decay_ms` passes).
//!
//! # Costs and limits
//!
//! * No per-object header: an object takes its size rounded up to its
//!   alignment. Each chunk (1 MiB or more) spends one cache line plus one bit
//!   per slot on its header: 0.3% for 64-byte objects.
//! * Free objects cached per thread are bounded by `local_max` per pool
//!   and by a byte budget across all pools (`pool_thread_bytes`, 64 KiB by
//!   default; [`set_thread_bytes`]): a thread that goes quiet holds at most
//!   that much. They are not counted as in use, and a trim reclaims them.
//! * Zero-sized types take no memory and never touch the pool.
//! * Pools are found from object addresses, so each `Pooled<T>` is one
//!   pointer. Unsized `Pooled<dyn Trait>` and `Pooled<[T]>` are made with
//!   [`unsize!`](crate::unsize) (a pointer and its metadata, like `Box`);
//!   their drop finds the pool from the address and the value's dynamic
//!   size and alignment.

mod central;
#[cfg(any(feature = "checks", debug_assertions))]
mod checks;
mod chunk;
mod config;
#[cfg(not(loom))]
mod fork;
mod local;
mod pooled;
mod registry;
pub(crate) mod stats;

use core::marker::PhantomData;
use core::mem::{self, MaybeUninit};
use core::pin::Pin;
use core::ptr::{self, NonNull};

pub use config::{Backing, PoolConfig, ResolvedConfig};
pub use pooled::Pooled;

use crate::error::AllocError;
use crate::sync::stat::AtomicUsize as PlainUsize;
use crate::sync::{const_fn, AtomicPtr, Ordering};
use central::Inner;
use pooled::Layout;
use stats::PoolStats;

pub(crate) use central::Inner as PoolInner;
#[cfg(any(feature = "checks", debug_assertions))]
pub(crate) use chunk::Geometry;
pub(crate) use local::cached_in_threads;
pub(crate) use registry::for_each_pool;

/// A pool of objects of type `T`, declared once (usually as a `static`)
/// and shared by every thread.
///
/// Allocation and free on one thread touch only that thread's free list: no
/// lock, no atomic read-modify-write, no cache line that another thread
/// writes. See the [module docs](crate::pool) for how objects move.
///
/// ```
/// use hotpool::{Pool, Pooled};
///
/// struct Message { id: u64, body: [u8; 240] }
///
/// static MESSAGES: Pool<Message> = Pool::new();
///
/// let m: Pooled<Message> = MESSAGES.alloc(Message { id: 1, body: [0; 240] });
/// assert_eq!(m.id, 1);
/// drop(m); // back to this thread's free list
/// assert_eq!(MESSAGES.stats().in_use, 0);
/// ```
///
/// A pool that is not `static` may be dropped while objects from it are
/// alive; they stay valid and their memory is released when they drop.
pub struct Pool<T> {
    inner: AtomicPtr<Inner>,
    /// The pool's thread-cache entry index (`hot.entry`) once `inner` is
    /// set, before that the never-bound MISS entry's: the allocation fast
    /// path reads only this, and a handle not yet initialised goes to the
    /// slow path like a thread whose list is empty.
    entry: PlainUsize,
    config: PoolConfig,
    _objects: PhantomData<fn() -> T>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> core::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("type", &core::any::type_name::<T>())
            .field("config", &self.config)
            .finish()
    }
}

impl<T> Pool<T> {
    const_fn! {
        /// A pool with the default configuration; `const`, so it can be a
        /// `static`. Nothing is allocated until first use.
        ///
        /// ```
        /// static POINTS: hotpool::Pool<(f64, f64)> = hotpool::Pool::new();
        /// assert_eq!(*POINTS.alloc((1.0, 2.0)), (1.0, 2.0));
        /// ```
        pub fn new() -> Self {
            Self::with_config(PoolConfig::new())
        }
    }

    const_fn! {
        /// A pool with the given configuration.
        ///
        /// ```
        /// use hotpool::{Pool, PoolConfig};
        /// static BIG: Pool<[u8; 4096]> = Pool::with_config(PoolConfig::new().batch(16));
        /// assert_eq!(BIG.alloc([1; 4096])[0], 1);
        /// ```
        pub fn with_config(config: PoolConfig) -> Self {
            Pool {
                inner: AtomicPtr::new(ptr::null_mut()),
                entry: PlainUsize::new(local::MISS),
                config,
                _objects: PhantomData,
            }
        }
    }

    /// The shared state, created on first use.
    #[inline(always)]
    fn inner(&self) -> Result<*const Inner, AllocError> {
        let p = self.inner.load(Ordering::Acquire);
        if !p.is_null() {
            return Ok(p);
        }
        self.init()
    }

    #[cold]
    fn init(&self) -> Result<*const Inner, AllocError> {
        let geo = Layout::<T>::GEOMETRY.ok_or(AllocError::UnsupportedLayout {
            size: mem::size_of::<T>(),
            align: mem::align_of::<T>(),
        })?;
        #[cfg(not(loom))]
        fork::register();
        let _guard = registry::INIT.lock();
        let p = self.inner.load(Ordering::Acquire);
        if !p.is_null() {
            return Ok(p);
        }
        let inner = registry::create(
            geo,
            self.config.resolve(geo.slot),
            core::any::type_name::<T>(),
            mem::size_of::<T>(),
        );
        self.inner.store(inner as *mut Inner, Ordering::Release);
        // SAFETY: just created; the handle holds its reference.
        self.entry
            .store(unsafe { (*inner).hot.0.entry }, Ordering::Relaxed);
        stats::register_reports();
        Ok(inner)
    }

    /// Moves `value` into a pooled object.
    ///
    /// Aborts through [`std::alloc::handle_alloc_error`] if memory runs out
    /// or the pool is at its cap ([`PoolConfig::max_objects`]), like
    /// `Box::new`; see [`Pool::try_alloc`].
    ///
    /// ```
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// assert_eq!(*P.alloc(42), 42);
    /// ```
    #[inline]
    pub fn alloc(&self, value: T) -> Pooled<T> {
        match self.try_alloc(value) {
            Ok(p) => p,
            Err(_) => std::alloc::handle_alloc_error(core::alloc::Layout::new::<T>()),
        }
    }

    /// Like [`Pool::alloc`], but returns an error instead of aborting when
    /// the backing allocator fails ([`AllocError::OutOfMemory`]) or the pool
    /// is at its cap ([`AllocError::PoolFull`]); the value is dropped.
    ///
    /// ```
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// assert_eq!(*P.try_alloc(7).unwrap(), 7);
    /// ```
    #[inline]
    pub fn try_alloc(&self, value: T) -> Result<Pooled<T>, AllocError> {
        Ok(Pooled::write(self.try_alloc_uninit()?, value))
    }

    /// Builds the value with `make` and stores it in a pooled object.
    ///
    /// The slot is taken first; if `make` panics, the slot goes back to the
    /// pool and the panic continues. For values too large for the stack,
    /// prefer [`Pool::alloc_uninit`], which guarantees construction in place.
    ///
    /// ```
    /// static P: hotpool::Pool<Vec<u32>> = hotpool::Pool::new();
    /// let v = P.alloc_with(|| (0..4).collect());
    /// assert_eq!(v.len(), 4);
    /// ```
    #[inline]
    pub fn alloc_with(&self, make: impl FnOnce() -> T) -> Pooled<T> {
        Pooled::write(self.alloc_uninit(), make())
    }

    /// Like [`Pool::alloc_with`], returning an error instead of aborting;
    /// `make` is not called when no memory could be had.
    ///
    /// ```
    /// static P: hotpool::Pool<u8> = hotpool::Pool::new();
    /// assert_eq!(*P.try_alloc_with(|| 3).unwrap(), 3);
    /// ```
    #[inline]
    pub fn try_alloc_with(&self, make: impl FnOnce() -> T) -> Result<Pooled<T>, AllocError> {
        Ok(Pooled::write(self.try_alloc_uninit()?, make()))
    }

    /// An uninitialized object, to be built in place and finished with
    /// [`Pooled::write`] or [`Pooled::assume_init`]. Dropping it unfinished
    /// just returns the slot.
    ///
    /// ```
    /// use std::mem::MaybeUninit;
    /// static P: hotpool::Pool<[u64; 512]> = hotpool::Pool::new();
    /// let mut slot: hotpool::Pooled<MaybeUninit<[u64; 512]>> = P.alloc_uninit();
    /// let words = slot.as_mut_ptr().cast::<u64>();
    /// for i in 0..512 {
    ///     // SAFETY: i < 512, inside the slot.
    ///     unsafe { words.add(i).write(i as u64) };
    /// }
    /// // SAFETY: all 512 words were written.
    /// let table = unsafe { hotpool::Pooled::assume_init(slot) };
    /// assert_eq!(table[511], 511);
    /// ```
    #[inline]
    pub fn alloc_uninit(&self) -> Pooled<MaybeUninit<T>> {
        match self.try_alloc_uninit() {
            Ok(p) => p,
            Err(_) => std::alloc::handle_alloc_error(core::alloc::Layout::new::<T>()),
        }
    }

    /// Like [`Pool::alloc_uninit`], returning an error instead of aborting.
    ///
    /// ```
    /// static P: hotpool::Pool<u32> = hotpool::Pool::new();
    /// let slot = P.try_alloc_uninit().unwrap();
    /// assert_eq!(*hotpool::Pooled::write(slot, 1), 1);
    /// ```
    #[inline]
    pub fn try_alloc_uninit(&self) -> Result<Pooled<MaybeUninit<T>>, AllocError> {
        if mem::size_of::<T>() == 0 {
            // SAFETY: zero-sized values need no memory; dangling is aligned.
            return Ok(unsafe { Pooled::from_non_null(NonNull::dangling()) });
        }
        // SAFETY: `entry` is MISS or this pool's index, and `self` holds
        // the pool's handle reference.
        let slot = unsafe { local::alloc(self.entry.load(Ordering::Relaxed), || self.inner()) }?;
        // SAFETY: a fresh slot of this pool, sized and aligned for T.
        Ok(unsafe { Pooled::from_non_null(slot.cast()) })
    }

    /// Moves `value` into a pinned pooled object, like `Box::pin`.
    ///
    /// ```
    /// static P: hotpool::Pool<String> = hotpool::Pool::new();
    /// let pinned = P.alloc_pin(String::from("fixed"));
    /// assert_eq!(pinned.as_str(), "fixed");
    /// ```
    pub fn alloc_pin(&self, value: T) -> Pin<Pooled<T>> {
        Pooled::into_pin(self.alloc(value))
    }

    /// Gives memory back: empties the depot and the calling thread's free
    /// list into the chunks, asks every other thread to flush its list at its
    /// next operation on this pool, and returns every wholly free chunk to
    /// the OS at once (with the default [`Backing::Arena`] too: a trim asks
    /// for the memory back, so the arena does not keep these chunks for
    /// reuse, and unmaps the huge mappings it kept, where chunks this pool
    /// freed earlier may be; with [`Backing::System`], to `malloc`).
    ///
    /// Another thread notices the request at its next free into the pool or
    /// when its list runs dry; allocations in between may still reuse
    /// objects from its list (the allocation fast path skips the check: one
    /// load and compare fewer on every allocation).
    ///
    /// ```
    /// static P: hotpool::Pool<[u8; 64]> = hotpool::Pool::new();
    /// let burst: Vec<_> = (0..100_000).map(|_| P.alloc([0; 64])).collect();
    /// assert!(P.stats().chunks >= 6);
    /// drop(burst);
    /// P.trim();
    /// assert_eq!(P.stats().chunks, 0);
    /// ```
    pub fn trim(&self) {
        let p = self.inner.load(Ordering::Acquire);
        if p.is_null() {
            return;
        }
        // SAFETY: the handle keeps the pool alive for the whole call.
        let backing = unsafe {
            let backing = (*p).hot.0.config.backing;
            (*p).new_epoch();
            local::flush_current(p);
            Inner::trim_central(p, false, false);
            backing
        };
        // Chunks this pool released earlier (as its objects came back) may
        // sit among the arena's kept huge mappings.
        #[cfg(target_os = "linux")]
        if matches!(backing, Backing::Arena) {
            crate::arena::unmap_kept();
        }
        #[cfg(not(target_os = "linux"))]
        let _ = backing;
    }

    /// Runs `f` while holding this pool's central lock (the depot's), as a
    /// thread moving a batch does; for tests of what another thread sees
    /// meanwhile (such as a `fork`). Only with the test-only
    /// `fault-injection` feature.
    ///
    /// ```
    /// # #[cfg(feature = "fault-injection")] {
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// let n = P.with_depot_locked(|| 42);
    /// assert_eq!(n, 42);
    /// # }
    /// ```
    #[cfg(feature = "fault-injection")]
    pub fn with_depot_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.inner() {
            // SAFETY: the handle keeps the pool alive for the whole call.
            Ok(p) => unsafe { &*p }.with_locked(f),
            Err(e) => panic!("with_depot_locked: {e}"),
        }
    }

    /// Statistics of this pool; reading them never stalls allocating threads.
    ///
    /// ```
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// let a = P.alloc(1);
    /// let s = P.stats();
    /// assert_eq!(s.in_use, 1);
    /// assert_eq!(s.object_size, 8);
    /// drop(a);
    /// ```
    pub fn stats(&self) -> PoolStats {
        let p = self.inner.load(Ordering::Acquire);
        if p.is_null() {
            return PoolStats::unused(
                self.config.name,
                core::any::type_name::<T>(),
                mem::size_of::<T>(),
            );
        }
        // SAFETY: the handle keeps the pool alive.
        PoolStats::collect(unsafe { &*p })
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        let p = self.inner.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: the handle's reference is still held until trim_central
            // drops it; `p` is not used afterwards.
            unsafe {
                // Closed before the new epoch: a thread that sees the epoch
                // change also sees that it must stop caching.
                (*p).hot.0.closed.store(true, Ordering::Release);
                (*p).new_epoch();
                local::flush_current(p);
                Inner::trim_central(p, true, true);
            }
        }
    }
}

/// The pool owning the chunk whose base is `base`.
///
/// # Safety
///
/// `base` is the base of a live pool chunk.
#[cfg(any(feature = "checks", debug_assertions))]
pub(crate) unsafe fn chunk_owner(base: *const u8) -> *const Inner {
    // SAFETY: per the contract, a chunk header is at `base`.
    unsafe { (*base.cast::<chunk::ChunkHeader>()).owner }
}

/// Sets the byte budget of each thread's free lists, all pools together
/// (objects times slot size); `HOTPOOL_CONF=pool_thread_bytes:N` sets it at
/// start-up, 8 MiB by default. A list grows from what is left of the
/// budget when it runs dry or overflows; a list that gets nothing takes
/// room for one object from the thread's largest list, and one whose bound
/// is below a batch refills fewer objects per trip to its depot. Lists left
/// unused give their objects back gradually (every 256 slow-path events of
/// the thread, 3/4 of what no allocation reached). With a budget below one
/// slot, that pool's objects bypass the lists. A lower budget applies to a
/// thread at its next list growth, when other lists give back what exceeds
/// it. Use it to trade memory held by idle threads against trips to the
/// depots; [`PoolConfig::local_max`] still bounds each list.
///
/// ```
/// use hotpool::Pool;
/// static P: Pool<[u8; 1024]> = Pool::new();
/// hotpool::pool::set_thread_bytes(16 << 10);
/// let burst: Vec<_> = (0..1000).map(|_| P.alloc([0; 1024])).collect();
/// drop(burst);
/// assert!(P.stats().local_free * 1024 <= 16 << 10);
/// hotpool::pool::set_thread_bytes(8 << 20);
/// ```
pub fn set_thread_bytes(bytes: usize) {
    local::set_thread_bytes(bytes);
}

/// Reports a free that cannot be valid and aborts before memory is corrupted.
#[cold]
pub(crate) fn report_bad_free(obj: *const u8, type_name: &str, what: &str) -> ! {
    crate::report::abort_with(format_args!(
        "hotpool: invalid free: the `{type_name}` at {obj:p} {what}"
    ))
}

/// Views of the pool's internals for the loom models (`tests/loom_pool.rs`);
/// only under `cfg(loom)`.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_probe {
    use super::{Ordering, Pool};

    /// The pool's stamp (`serial << 32 | trim epoch`), 0 if never used.
    pub fn stamp<T>(pool: &Pool<T>) -> u64 {
        let p = pool.inner.load(Ordering::Acquire);
        if p.is_null() {
            return 0;
        }
        // SAFETY: the handle keeps the pool alive.
        unsafe { (*p).hot.0.stamp.load(Ordering::Relaxed) }
    }

    /// Runs the calling thread's exit hook (its lists go back to their
    /// pools); a model thread calls it last.
    pub fn thread_exit() {
        super::local::retire_current();
    }

    /// The calling thread's bound lists: (stamp, objects cached) of each.
    pub fn thread_lists() -> Vec<(u64, usize)> {
        super::local::bound_lists()
    }

    /// Reclaims the lists of every registered thread now, as the purger
    /// does those of quiet threads: each keeps its top object.
    pub fn reclaim() {
        super::local::reclaim_all();
    }
}
