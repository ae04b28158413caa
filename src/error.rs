//! The error type of every fallible (`try_`) operation.

use core::fmt;

/// Why an allocation could not be served.
///
/// Returned by the `try_` variants (for example [`Pool::try_alloc`]) instead
/// of aborting the process as the infallible variants do.
///
/// [`Pool::try_alloc`]: crate::Pool::try_alloc
///
/// ```
/// use hotpool::AllocError;
/// let e = AllocError::OutOfMemory { size: 1 << 20, align: 1 << 20 };
/// assert!(e.to_string().contains("out of memory"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AllocError {
    /// The backing allocator or the OS refused `size` bytes aligned to `align`.
    OutOfMemory {
        /// Bytes requested from the backing allocator.
        size: usize,
        /// Alignment requested, in bytes.
        align: usize,
    },
    /// The request can never be served: the size overflows or the alignment
    /// is not a power of two or is larger than hotpool supports.
    UnsupportedLayout {
        /// Bytes requested.
        size: usize,
        /// Alignment requested, in bytes.
        align: usize,
    },
    /// The process-wide handle table of [`Shared`](crate::Shared) has no
    /// free slot and cannot grow (2^32 - 64 slots in use or retired).
    HandleTableFull,
    /// The pool is at its cap ([`PoolConfig::max_objects`] or
    /// [`PoolConfig::max_bytes`]): `max_objects` objects are out of its
    /// chunks (in use, or free in threads' lists and the depot).
    ///
    /// [`PoolConfig::max_objects`]: crate::PoolConfig::max_objects
    /// [`PoolConfig::max_bytes`]: crate::PoolConfig::max_bytes
    ///
    /// ```
    /// use hotpool::{AllocError, Pool, PoolConfig};
    /// static P: Pool<u64> = Pool::with_config(PoolConfig::new().name("orders").max_objects(1));
    /// let one = P.try_alloc(1).unwrap();
    /// let e = P.try_alloc(2).unwrap_err();
    /// assert_eq!(e, AllocError::PoolFull { pool: "orders", max_objects: 1 });
    /// assert_eq!(e.to_string(), "hotpool: pool orders is at its cap of 1 objects");
    /// # drop(one);
    /// ```
    PoolFull {
        /// The pool's name: the one given with
        /// [`PoolConfig::name`](crate::PoolConfig::name), else the path of
        /// its type.
        pool: &'static str,
        /// The cap in objects (for
        /// [`PoolConfig::max_bytes`](crate::PoolConfig::max_bytes), the
        /// bytes over the slot size).
        max_objects: usize,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AllocError::OutOfMemory { size, align } => write!(
                f,
                "hotpool: out of memory: the backing allocator refused {size} bytes aligned to {align}"
            ),
            AllocError::UnsupportedLayout { size, align } => write!(
                f,
                "hotpool: unsupported layout: {size} bytes aligned to {align} cannot be served"
            ),
            AllocError::HandleTableFull => {
                f.write_str("hotpool: the handle table is full (2^32 - 64 slots)")
            }
            AllocError::PoolFull { pool, max_objects } => write!(
                f,
                "hotpool: pool {pool} is at its cap of {max_objects} objects"
            ),
        }
    }
}

impl std::error::Error for AllocError {}
