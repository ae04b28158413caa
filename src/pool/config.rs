//! Per-pool tuning: [`PoolConfig`] and [`Backing`].

/// Where a pool gets its chunks of objects from.
///
/// What exists depends on the target (see the README's platform table):
/// `System` everywhere, `Os` on unix systems, `Arena` on Linux only, where
/// it is the default; elsewhere the default is `System`.
///
/// ```
/// use hotpool::{Backing, Pool, PoolConfig};
/// static P: Pool<[u8; 64]> = Pool::with_config(PoolConfig::new().backing(Backing::System));
/// assert_eq!(P.alloc([7; 64])[63], 7);
/// # #[cfg(target_os = "linux")] {
/// static A: Pool<[u8; 64]> = Pool::with_config(PoolConfig::new().backing(Backing::Arena));
/// assert_eq!(A.alloc([8; 64])[0], 8);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backing {
    /// Chunks are mapped straight from the OS and unmapped when a trim finds
    /// them wholly free, so their pages go back at once. Unix only.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    Os,
    /// Chunks come from Rust's [`std::alloc::System`] allocator (`malloc`);
    /// whether their pages go back to the OS is then up to it.
    System,
    /// Chunks come from hotpool's arena allocator ([`crate::arena`]) as
    /// huge blocks: counted in its statistics (and in its `stats_print`
    /// report), and freed like any huge block when given back (unmapped,
    /// or kept mapped for reuse until `decay_ms` passes). The default on
    /// Linux, the only OS that has it: the arena counts purged pages as
    /// zero, which Linux's `madvise(MADV_DONTNEED)` guarantees and other
    /// systems' do not, and it is tested on Linux only.
    #[cfg(target_os = "linux")]
    #[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
    Arena,
}

/// The default backing: the arena where it exists.
#[cfg(target_os = "linux")]
const DEFAULT_BACKING: Backing = Backing::Arena;
#[cfg(not(target_os = "linux"))]
const DEFAULT_BACKING: Backing = Backing::System;

/// Tuning of one pool, usable in a `const` or `static`.
///
/// Every count is in objects. A value of 0 (the default) means "derive from
/// the object size" (the rule is in the table below); the derived defaults
/// were chosen by measurement with `cargo bench -p hotpool-bench --bench pool`.
///
/// | setting | meaning | default for a slot of `s` bytes |
/// |---|---|---|
/// | `batch` | objects moved per transfer between a thread and the depot | `64 KiB / s`, clamped to 16..=256 |
/// | `local_max` | bound of each thread's free list | `8 MiB / s`, clamped to `4 * batch..=4096` |
/// | `depot_max` | bound of the shared depot | `16 MiB / s`, clamped to `4 * batch..=65536` |
/// | `backing` | where chunks come from | `Backing::Arena` on Linux, `Backing::System` elsewhere |
/// | `name` | the pool's name in statistics | the full type path (`std::any::type_name`) |
/// | `max_objects` | cap: objects out of the pool's chunks at once | none |
/// | `max_bytes` | cap: the same, as bytes of slots (`max_bytes / slot size` objects) | none |
///
/// Objects beyond the depot bound go back to their chunks, and a chunk whose
/// objects are all free is returned to the backing allocator (one spare
/// chunk per pool is kept).
///
/// # Caps
///
/// [`max_objects`](PoolConfig::max_objects) and
/// [`max_bytes`](PoolConfig::max_bytes) bound a pool. What they count, exactly:
/// the objects *out of the pool's chunks*, that is objects in use plus free
/// objects held in threads' lists and in the depot (in [`PoolStats`]:
/// `in_use + local_free + depot_free`, which is `capacity - chunk_free`). The
/// count changes only when a thread takes a batch out of the chunks or objects
/// go back into them, both under the pool's lock, so the cap is exact and
/// costs the fast path nothing: allocating from and freeing to a thread's
/// own list does not look at it. Past the cap, the `try_` allocations return
/// [`AllocError::PoolFull`] and the others abort like an allocation failure
/// ([`std::alloc::handle_alloc_error`]).
///
/// Consequences: objects in use never exceed the cap; a thread can be
/// refused while fewer objects are in use, because free objects cached by
/// other threads count (they come back when those threads free past their
/// list bound, trim or exit, or after [`Pool::trim`]). The chunks held stay
/// within `ceil(cap / objects per chunk)`, plus one for each other thread
/// that maps a chunk at the same moment. Zero-sized types take no memory
/// and are never refused.
///
/// [`PoolStats`]: crate::stats::PoolStats
/// [`AllocError::PoolFull`]: crate::AllocError::PoolFull
/// [`Pool::trim`]: crate::Pool::trim
///
/// ```
/// use hotpool::{Pool, PoolConfig};
/// const TUNED: PoolConfig = PoolConfig::new().batch(32).local_max(256).depot_max(4096);
/// static BUFFERS: Pool<[u8; 512]> = Pool::with_config(TUNED);
/// let b = BUFFERS.alloc([0; 512]);
/// assert_eq!(b.len(), 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PoolConfig {
    pub(crate) batch: usize,
    pub(crate) local_max: usize,
    pub(crate) depot_max: usize,
    pub(crate) backing: Backing,
    pub(crate) name: Option<&'static str>,
    /// Cap in objects; 0: none.
    pub(crate) max_objects: usize,
    /// Cap in bytes of slots; 0: none.
    pub(crate) max_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolConfig {
    /// The defaults: every bound derived from the object size, chunks from
    /// the arena allocator (`Backing::Arena`) on Linux and from the system
    /// allocator ([`Backing::System`]) elsewhere, no name.
    ///
    /// ```
    /// assert_eq!(hotpool::PoolConfig::new(), hotpool::PoolConfig::default());
    /// ```
    pub const fn new() -> Self {
        PoolConfig {
            batch: 0,
            local_max: 0,
            depot_max: 0,
            backing: DEFAULT_BACKING,
            name: None,
            max_objects: 0,
            max_bytes: 0,
        }
    }

    /// Objects moved per transfer between a thread's list and the depot.
    ///
    /// # Panics
    ///
    /// If `n` is 0 (at compile time when used in a `const`).
    ///
    /// ```
    /// let c = hotpool::PoolConfig::new().batch(64);
    /// assert_eq!(c.resolve(64).batch, 64);
    /// ```
    pub const fn batch(mut self, n: usize) -> Self {
        assert!(n > 0, "PoolConfig::batch must be at least 1");
        self.batch = n;
        self
    }

    /// Bound of each thread's free list, in objects.
    ///
    /// # Panics
    ///
    /// If `n` is 0. A bound below the batch size is raised to the batch size.
    ///
    /// ```
    /// let c = hotpool::PoolConfig::new().batch(16).local_max(8);
    /// assert_eq!(c.resolve(64).local_max, 16);
    /// ```
    pub const fn local_max(mut self, n: usize) -> Self {
        assert!(n > 0, "PoolConfig::local_max must be at least 1");
        self.local_max = n;
        self
    }

    /// Bound of the shared depot, in objects.
    ///
    /// # Panics
    ///
    /// If `n` is 0. A bound below the batch size is raised to the batch size.
    ///
    /// ```
    /// let c = hotpool::PoolConfig::new().depot_max(100_000);
    /// assert_eq!(c.resolve(64).depot_max, 100_000);
    /// ```
    pub const fn depot_max(mut self, n: usize) -> Self {
        assert!(n > 0, "PoolConfig::depot_max must be at least 1");
        self.depot_max = n;
        self
    }

    /// Where chunks come from.
    ///
    /// ```
    /// use hotpool::{Backing, PoolConfig};
    /// assert_eq!(PoolConfig::new().backing(Backing::System).resolve(8).backing, Backing::System);
    /// ```
    pub const fn backing(mut self, backing: Backing) -> Self {
        self.backing = backing;
        self
    }

    /// The pool's name in statistics ([`PoolStats::name`], the first column
    /// of [`stats::report`]). Without one, a pool is shown by the full path
    /// of its type (`std::any::type_name`), so types of the same name in
    /// two modules are told apart; two pools shown by the same name (two
    /// unnamed pools of one type, or one name given twice) get their pool
    /// id appended in [`stats::pools`].
    ///
    /// [`PoolStats::name`]: crate::stats::PoolStats::name
    /// [`stats::report`]: crate::stats::report
    /// [`stats::pools`]: crate::stats::pools
    ///
    /// ```
    /// use hotpool::{Pool, PoolConfig};
    /// static INBOUND: Pool<[u8; 256]> = Pool::with_config(PoolConfig::new().name("inbound"));
    /// static OUTBOUND: Pool<[u8; 256]> = Pool::with_config(PoolConfig::new().name("outbound"));
    /// let (a, b) = (INBOUND.alloc([0; 256]), OUTBOUND.alloc([0; 256]));
    /// assert_eq!(INBOUND.stats().name, "inbound");
    /// assert!(hotpool::stats::report().contains("outbound"));
    /// # drop((a, b));
    /// ```
    pub const fn name(mut self, name: &'static str) -> Self {
        self.name = Some(name);
        self
    }

    /// Caps the pool at `n` objects out of its chunks: in use, or free in
    /// threads' lists and the depot (see [Caps](PoolConfig#caps)). Past it
    /// [`Pool::try_alloc`](crate::Pool::try_alloc) returns
    /// [`AllocError::PoolFull`](crate::AllocError::PoolFull).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// use hotpool::{AllocError, Pool, PoolConfig};
    /// static SESSIONS: Pool<[u8; 64]> =
    ///     Pool::with_config(PoolConfig::new().name("sessions").max_objects(2));
    /// let a = SESSIONS.try_alloc([0; 64]).unwrap();
    /// let b = SESSIONS.try_alloc([0; 64]).unwrap();
    /// let full = SESSIONS.try_alloc([0; 64]).unwrap_err();
    /// assert_eq!(full, AllocError::PoolFull { pool: "sessions", max_objects: 2 });
    /// drop(a);
    /// let c = SESSIONS.try_alloc([0; 64]).unwrap(); // `a`'s object, reused
    /// # drop((b, c));
    /// ```
    pub const fn max_objects(mut self, n: usize) -> Self {
        assert!(n > 0, "PoolConfig::max_objects must be at least 1");
        self.max_objects = n;
        self
    }

    /// Caps the pool at `bytes` of object slots: `bytes / slot` objects out
    /// of its chunks, where `slot` is the pool's slot size
    /// ([`PoolStats::slot_size`](crate::stats::PoolStats::slot_size): the
    /// object size rounded up to its alignment, plus a cache line for
    /// multiples of 4 KiB). The chunks' headers and unused slots are not
    /// counted; the chunks held are bounded as told under
    /// [Caps](PoolConfig#caps). With [`max_objects`](PoolConfig::max_objects)
    /// too, the lower cap holds. A cap below one slot refuses every
    /// allocation.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
    ///
    /// ```
    /// use hotpool::{AllocError, Pool, PoolConfig};
    /// static BUFS: Pool<[u8; 1024]> = Pool::with_config(PoolConfig::new().max_bytes(1 << 20));
    /// let held: Vec<_> = (0..1024).map(|_| BUFS.try_alloc([0; 1024]).unwrap()).collect();
    /// assert!(matches!(
    ///     BUFS.try_alloc([0; 1024]),
    ///     Err(AllocError::PoolFull { max_objects: 1024, .. })
    /// ));
    /// # drop(held);
    /// ```
    pub const fn max_bytes(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "PoolConfig::max_bytes must be at least 1");
        self.max_bytes = bytes;
        self
    }

    /// The effective settings for objects occupying `slot` bytes: every 0
    /// replaced by its derived default and every bound at least one batch.
    ///
    /// ```
    /// let c = hotpool::PoolConfig::new().resolve(64);
    /// assert_eq!((c.batch, c.local_max, c.depot_max), (256, 4096, 65536));
    /// let c = hotpool::PoolConfig::new().resolve(4160);
    /// assert_eq!((c.batch, c.local_max, c.depot_max), (16, 2016, 4032));
    /// ```
    pub const fn resolve(self, slot: usize) -> ResolvedConfig {
        let slot = if slot == 0 { 1 } else { slot };
        let batch = if self.batch != 0 {
            self.batch
        } else {
            clamp((64 << 10) / slot, 16, 256)
        };
        let local_max = if self.local_max != 0 {
            self.local_max
        } else {
            clamp((8 << 20) / slot, 4 * batch, 4096)
        };
        let depot_max = if self.depot_max != 0 {
            self.depot_max
        } else {
            clamp((16 << 20) / slot, 4 * batch, 65536)
        };
        ResolvedConfig {
            batch,
            local_max: max(local_max, batch),
            depot_max: max(depot_max, batch),
            backing: self.backing,
            name: self.name,
            max_objects: cap(self.max_objects, self.max_bytes, slot),
        }
    }
}

/// The object cap of `max_objects` and `max_bytes` (0: none) for slots of
/// `slot` bytes: the lower of the two.
const fn cap(max_objects: usize, max_bytes: usize, slot: usize) -> Option<usize> {
    match (max_objects, max_bytes) {
        (0, 0) => None,
        (n, 0) => Some(n),
        (0, b) => Some(b / slot),
        (n, b) => Some(if n < b / slot { n } else { b / slot }),
    }
}

/// A [`PoolConfig`] with every default filled in; see [`PoolConfig::resolve`].
///
/// ```
/// let r = hotpool::PoolConfig::new().resolve(4096);
/// assert!(r.local_max >= r.batch);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ResolvedConfig {
    /// Objects per transfer between a thread and the depot.
    pub batch: usize,
    /// Bound of each thread's free list.
    pub local_max: usize,
    /// Bound of the depot.
    pub depot_max: usize,
    /// Where chunks come from.
    pub backing: Backing,
    /// The name given with [`PoolConfig::name`], if any.
    pub name: Option<&'static str>,
    /// The cap in objects out of the chunks ([`PoolConfig::max_objects`],
    /// or [`PoolConfig::max_bytes`] over the slot size, the lower), if any.
    pub max_objects: Option<usize>,
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

const fn clamp(v: usize, lo: usize, hi: usize) -> usize {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}
