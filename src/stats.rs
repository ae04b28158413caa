//! Statistics: per-pool figures and the process-wide pool table.
//!
//! Like the router's `qdstat -m`, every pool used in the process is listed
//! with its type, object size and where its objects are. Reading never takes
//! a lock that an allocating thread holds on its fast path: central counters
//! are atomics written on batch moves, and the per-thread list lengths are
//! summed on read.
//!
//! | field | meaning |
//! |---|---|
//! | `name` | the pool's [`PoolConfig::name`](crate::PoolConfig::name), else the full path of its type; [`pools()`] appends ` #id` to names two pools share |
//! | `id` | the pool's number, unique in the process (never reused) |
//! | `type_name` | the pooled type's full path (`std::any::type_name`) |
//! | `object_size` | `size_of` the type, bytes |
//! | `slot_size` | bytes each object occupies (size rounded up to alignment) |
//! | `chunk_size` | bytes per chunk obtained from the backing allocator |
//! | `chunks` | chunks held now |
//! | `bytes_held` | `chunks * chunk_size` |
//! | `capacity` | objects the held chunks can hold (objects obtained from the backing allocator) |
//! | `in_use` | objects owned by users (`capacity - chunk_free - depot_free - local_free`) |
//! | `local_free` | free objects in threads' lists |
//! | `depot_free` | free objects in the shared depot |
//! | `chunk_free` | free slots inside chunks, never handed out or given back |
//! | `threads` | threads holding a free list for this pool |
//! | `batches_to_depot` / `batches_from_depot` | batch transfers, cumulative |
//! | `depot_contention` | depot lock acquisitions whose first try failed (Solaris kmem's measure) |
//! | `chunks_made` / `chunks_released` | chunk allocations and releases, cumulative |
//!
//! While threads run, the figures are read one by one and may be off by a
//! batch; when the process is quiescent they balance exactly.
//!
//! [`prometheus()`] gives every figure of the pools, the handle table and
//! the arena in Prometheus's text format, for a `/metrics` endpoint.

mod prometheus;

pub use crate::pool::stats::{leaks, pools, render, render_leaks, report, Leak, PoolStats, HEAP};
pub use crate::sys::resident_bytes;
pub use prometheus::prometheus;
