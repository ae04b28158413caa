//! # hotpool
//!
//! Memory for hungry, latency-sensitive programs (message routers, brokers,
//! trading engines), in three layers that can each be used alone:
//!
//! 1. **Typed object pools**, [`Pool<T>`] and [`Pooled<T>`]: one pool per
//!    type, a bounded free list per thread in front of a shared depot that
//!    moves objects between threads in batches. Allocation and free on one
//!    thread take no lock and touch no cache line other threads write.
//!    `Pooled<T>` is a drop-in for `Box<T>`.
//! 2. **Generational weak handles**, [`Shared<T>`] and [`Weak<T>`]: an
//!    `Arc`-like owner whose weak handles are 8-byte keys into one handle
//!    table that knows nothing of pools. The last owner's drop frees the
//!    memory at once; a stale handle upgrades to `None` even after the
//!    memory was reused.
//! 3. **A general arena allocator**, [`HotAlloc`] and [`arena`]: size
//!    classes, thread caches, several arenas, cross-thread frees, decay-based
//!    purging, statistics and `HOTPOOL_CONF` tuning; usable as
//!    `#[global_allocator]` and through `allocator_api2`. Linux only;
//!    elsewhere the pools and handles work over the system allocator (the
//!    README's "Platforms" table says what works where).
//!
//! Beside them, **statistics** ([`stats`]): per-pool figures and a
//! process-wide table, like the router's `qdstat -m`.
//!
//! ## Usage
//!
//! ```
//! use hotpool::{Pool, Pooled};
//!
//! struct Message { id: u64, body: [u8; 240] }
//!
//! // One pool per type, declared as a static.
//! static MESSAGES: Pool<Message> = Pool::new();
//!
//! let m: Pooled<Message> = MESSAGES.alloc(Message { id: 1, body: [0; 240] });
//! assert_eq!(m.id, 1);          // Deref / DerefMut like Box
//! drop(m);                      // back to this thread's free list
//! println!("{}", hotpool::stats::report());
//! ```
//!
//! ## Cargo features
//!
//! | feature | effect |
//! |---|---|
//! | `checks` | compiles the debug checks (poisoning, double and foreign free detection, valgrind client requests; switched on at run time by `HOTPOOL_CONF`) into release builds; debug builds always have them |
//! | `initial-exec-tls` | on x86-64 Linux, the arena's thread-cache pointer is an initial-exec thread-local declared in assembly instead of a `thread_local!`; for shared libraries (`hotpool-malloc` turns it on) |
//! | `fault-injection` | the `testing` module, which makes backing allocations fail on demand (for tests of the `try_` paths) |
//! | `test-hooks` | hidden hooks for the crate's own tests (`tests/handle_hooks.rs`); not for users |
//!
//! None is on by default.
//!
//! ## Safety and correctness
//!
//! Unsafe code lives in a few modules (`pool::chunk`, `pool::central`,
//! `pool::local`, `pool::pooled`, `handle::table`, `handle::shared`, `sys`,
//! `checks`, `valgrind`, and the arena allocator's modules under `arena`),
//! each block with a `// SAFETY:` comment. A free that cannot be valid (a double free reaching a chunk, a
//! pointer that is not an object slot) is reported and the process aborts
//! rather than corrupting memory. With the debug checks (the `checks`
//! feature or a debug build, switched on by `HOTPOOL_CONF=checks:true`),
//! freed memory is poisoned and raw frees are validated; see the README's
//! "Debug checks and leak report" and [`stats::leaks`].

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

// Features a target cannot support fail here, at compile time, naming the
// feature and the target (see the README's platform table).
#[cfg(all(
    feature = "initial-exec-tls",
    not(all(target_os = "linux", target_arch = "x86_64"))
))]
mod refused {
    /// The target, as the message below names it.
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    macro_rules! target {
        () => {
            "aarch64 Linux"
        };
    }
    #[cfg(all(target_os = "linux", not(target_arch = "aarch64")))]
    macro_rules! target {
        () => {
            "Linux on a CPU other than x86-64"
        };
    }
    #[cfg(target_os = "macos")]
    macro_rules! target {
        () => {
            "macOS"
        };
    }
    #[cfg(windows)]
    macro_rules! target {
        () => {
            "Windows"
        };
    }
    #[cfg(target_os = "freebsd")]
    macro_rules! target {
        () => {
            "FreeBSD"
        };
    }
    #[cfg(target_os = "netbsd")]
    macro_rules! target {
        () => {
            "NetBSD"
        };
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "macos",
        windows,
        target_os = "freebsd",
        target_os = "netbsd"
    )))]
    macro_rules! target {
        () => {
            "an OS other than Linux"
        };
    }
    compile_error!(concat!(
        "hotpool: feature `initial-exec-tls` is not supported on this target (",
        target!(),
        "): it declares an initial-exec TLS word in x86-64 ELF assembly, so it \
         needs target_os = \"linux\" and target_arch = \"x86_64\""
    ));
}

#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub mod arena;
#[cfg(any(feature = "checks", debug_assertions))]
mod checks;
pub mod config;
mod debug;
mod error;
pub mod handle;
mod list;
pub mod pool;
mod report;
pub mod stats;
mod sync;
mod sys;
#[cfg(feature = "fault-injection")]
#[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
pub mod testing;
#[cfg(any(feature = "checks", debug_assertions))]
mod valgrind;

/// The `allocator_api2` crate, re-exported so that collections over
/// [`HotAlloc`] need no extra dependency (its `Allocator` trait is the
/// stable mirror of the unstable `std::alloc::Allocator`).
///
/// ```
/// use hotpool::allocator_api2::vec::Vec;
/// use hotpool::HotAlloc;
///
/// let mut v: Vec<u32, HotAlloc> = Vec::new_in(HotAlloc);
/// v.extend([1, 2, 3]);
/// assert_eq!(v.iter().sum::<u32>(), 6);
///
/// let b = hotpool::allocator_api2::boxed::Box::new_in([0u8; 64], HotAlloc);
/// assert_eq!(b.len(), 64);
/// ```
pub use allocator_api2;
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub use arena::prof;
#[cfg(target_os = "linux")]
#[cfg_attr(docsrs, doc(cfg(target_os = "linux")))]
pub use arena::HotAlloc;
pub use error::AllocError;
pub use handle::{Shared, Weak};
pub use pool::{Backing, Pool, PoolConfig, Pooled};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
