//! The `compare` binary's global allocator: one of the four general
//! allocators, picked once per process from the environment variable
//! [`ENV`] (`HotAlloc`, `system`, `mimalloc` or `jemalloc`; unset or any
//! other value: the system allocator).
//!
//! The seed workloads (`seed/...`) need it: they are ordinary std
//! programs (`HashMap`, `String`, `Vec`, `Box`, channels), which allocate
//! through the global allocator, so each contestant runs them in a child
//! process started with [`ENV`] naming it. Every other workload calls its
//! contestant explicitly and runs with the default, the system allocator.
//!
//! The choice is read with `libc::getenv` (no allocation) on the first
//! call, which is an allocation made before `main` by std's runtime on the
//! one thread there is, and never changes after it: every block is freed
//! by the allocator that made it.
//!
//! What the dispatch costs: each call loads one relaxed atomic byte,
//! compares it with "not chosen yet" (never true after the first call)
//! and jumps through a four-entry table to the chosen allocator's entry,
//! which is inlined there (x86-64: a load, a compare, an indirect jump).
//! The byte never changes after the first call, so the jump always goes
//! to the same place and is predicted. The cost is the same for every
//! contestant (the system allocator, the default, pays it too); the
//! workloads that call their allocator explicitly pay it only for their
//! own bookkeeping.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use hotpool::HotAlloc;

/// The environment variable naming the process's global allocator.
pub const ENV: &str = "HOTPOOL_BENCH_ALLOC";

/// [`ENV`] for `getenv`.
const ENV_C: &CStr = c"HOTPOOL_BENCH_ALLOC";

/// A general allocator the process can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// hotpool's arena allocator.
    HotAlloc,
    /// The C library's malloc (glibc on Linux).
    System,
    /// mimalloc.
    Mimalloc,
    /// jemalloc.
    Jemalloc,
}

impl Target {
    /// Every target, in report order (as `rss::CONTESTANTS`).
    pub const ALL: [Target; 4] = [
        Target::HotAlloc,
        Target::System,
        Target::Mimalloc,
        Target::Jemalloc,
    ];

    /// The contestant name, which is also the value of [`ENV`] choosing it.
    pub fn name(self) -> &'static str {
        match self {
            Target::HotAlloc => "HotAlloc",
            Target::System => "system",
            Target::Mimalloc => "mimalloc",
            Target::Jemalloc => "jemalloc",
        }
    }

    /// The target named `name` (a contestant name).
    pub fn of(name: &[u8]) -> Option<Target> {
        Target::ALL
            .into_iter()
            .find(|t| t.name().as_bytes() == name)
    }
}

/// [`CHOSEN`] before the first call.
const UNSET: u8 = u8::MAX;

/// The index in [`Target::ALL`] of the process's allocator, or [`UNSET`].
static CHOSEN: AtomicU8 = AtomicU8::new(UNSET);

/// The process's global allocator.
#[inline]
pub fn target() -> Target {
    match CHOSEN.load(Relaxed) {
        UNSET => choose(),
        i => decode(i),
    }
}

/// The target stored as `i` (its index in [`Target::ALL`]).
#[inline]
fn decode(i: u8) -> Target {
    match i {
        0 => Target::HotAlloc,
        1 => Target::System,
        2 => Target::Mimalloc,
        _ => Target::Jemalloc,
    }
}

/// Reads [`ENV`] and records the choice; a racing first call reads the
/// same environment, and both keep the value stored first.
#[cold]
fn choose() -> Target {
    // SAFETY: `ENV_C` is NUL-terminated; getenv's result, if not null, is a
    // NUL-terminated string in the environment, read at once. The first
    // call comes from std's runtime before `main`, when no thread can be
    // changing the environment.
    let name = unsafe {
        let p = libc::getenv(ENV_C.as_ptr());
        if p.is_null() {
            None
        } else {
            Target::of(CStr::from_ptr(p).to_bytes())
        }
    };
    let t = name.unwrap_or(Target::System);
    let i = Target::ALL.iter().position(|x| *x == t).unwrap_or(1) as u8;
    match CHOSEN.compare_exchange(UNSET, i, Relaxed, Relaxed) {
        Ok(_) => t,
        Err(first) => decode(first),
    }
}

/// The dispatching global allocator; see the module docs.
pub struct Dispatch;

static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// SAFETY: each call goes to the one allocator chosen on the first call and
// never changed after, so a block is freed or grown by the allocator that
// made it; each forwards the caller's contract to an allocator that keeps
// `GlobalAlloc`'s.
unsafe impl GlobalAlloc for Dispatch {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the target's.
        unsafe {
            match target() {
                Target::HotAlloc => HotAlloc.alloc(layout),
                Target::System => System.alloc(layout),
                Target::Mimalloc => MI.alloc(layout),
                Target::Jemalloc => JE.alloc(layout),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the target's.
        unsafe {
            match target() {
                Target::HotAlloc => HotAlloc.alloc_zeroed(layout),
                Target::System => System.alloc_zeroed(layout),
                Target::Mimalloc => MI.alloc_zeroed(layout),
                Target::Jemalloc => JE.alloc_zeroed(layout),
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was made by this same target (see the impl's SAFETY).
        unsafe {
            match target() {
                Target::HotAlloc => HotAlloc.dealloc(ptr, layout),
                Target::System => System.dealloc(ptr, layout),
                Target::Mimalloc => MI.dealloc(ptr, layout),
                Target::Jemalloc => JE.dealloc(ptr, layout),
            }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was made by this same target (see the impl's SAFETY).
        unsafe {
            match target() {
                Target::HotAlloc => HotAlloc.realloc(ptr, layout, new_size),
                Target::System => System.realloc(ptr, layout, new_size),
                Target::Mimalloc => MI.realloc(ptr, layout, new_size),
                Target::Jemalloc => JE.realloc(ptr, layout, new_size),
            }
        }
    }
}
