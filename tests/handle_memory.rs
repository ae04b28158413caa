//! The handle table takes nothing from the global allocator: after 4 Mi
//! `Shared` objects of 64 bytes, each with a `Weak`, are made and dropped,
//! the global heap holds exactly what it held before (issue 14: the table's
//! segments came from the global allocator and kept 128 MiB of it for
//! good).
//!
//! Its own test binary, without libtest's harness: it installs a counting
//! global allocator, and the main thread is the only thread, so every byte
//! counted is this test's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use hotpool::{Shared, Weak};

/// Live bytes and blocks of the global allocator.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; the counters are
// atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The burst: 4 Mi objects.
const N: usize = 4 << 20;

fn live() -> (usize, usize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}

fn main() {
    let (bytes0, blocks0) = live();
    let table0 = hotpool::handle::stats().bytes;

    let mut owners: Vec<Shared<[u8; 64]>> = Vec::with_capacity(N);
    let mut weaks: Vec<Weak<[u8; 64]>> = Vec::with_capacity(N);
    for i in 0..N {
        let s = Shared::new([i as u8; 64]);
        weaks.push(Shared::downgrade(&s));
        owners.push(s);
    }
    let (bytes1, blocks1) = live();
    let table1 = hotpool::handle::stats();

    // The global heap holds the objects and the two vectors, nothing more:
    // the table's segments are mapped from the OS.
    let vectors = 2 * N * core::mem::size_of::<usize>();
    assert_eq!(bytes1 - bytes0, N * 64 + vectors, "global heap while live");
    assert_eq!(blocks1 - blocks0, N + 2, "global blocks while live");
    // The table did grow: 4 Mi slots of 16 bytes, mapped elsewhere.
    assert!(table1.slots_in_use >= N, "{table1:?}");
    assert!(table1.bytes - table0 >= N * 16, "{table1:?}");

    drop(owners);
    assert!(weaks.iter().all(|w| w.upgrade().is_none()));
    drop(weaks);

    // Back to the byte: the table keeps its slots (free for reuse) but
    // none of the global allocator's memory.
    assert_eq!(live(), (bytes0, blocks0), "global heap after the burst");
    let table2 = hotpool::handle::stats();
    assert_eq!(table2.slots_in_use, 0, "{table2:?}");
    assert!(table2.slots_free >= N, "{table2:?}");
    println!(
        "handle_memory: {N} Shared of 64 B with a Weak each: global heap +{} B while live, +0 B after; table {} B, mapped from the OS",
        bytes1 - bytes0,
        table2.bytes
    );
}
