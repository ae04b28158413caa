//! The pool and handle integration tests again, with `HotAlloc` installed as
//! this binary's global allocator: every `Vec`, `Box`, thread and channel of
//! the tests (and the pools' bookkeeping) then lives in the arena allocator
//! beside the pools' chunks, as in a program that installs it.
//! (`tests/arena_global.rs` has the allocator's own stress tests under the
//! same setup.)

#[global_allocator]
static GLOBAL: hotpool::HotAlloc = hotpool::HotAlloc;

#[path = "pool.rs"]
mod pool;

#[path = "handles.rs"]
mod handles;
