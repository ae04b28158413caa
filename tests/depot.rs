//! The arenas' depots (see `src/arena/bin.rs`): a thread cache whose stack
//! of a class runs full parks the older half whole in the depot of the
//! arena that owns the objects; a stack that runs empty takes a batch from
//! its arena's depot before the slabs; `trim` drains every depot.
//! One test: the counts read are per process.

use std::ptr::NonNull;

use hotpool::arena;

fn parked(size: usize) -> u64 {
    let s = arena::stats();
    s.classes.iter().find(|c| c.size == size).unwrap().parked
}

fn alloc_n(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| arena::try_alloc(64, 8).unwrap().as_ptr() as usize)
        .collect()
}

/// Frees `ptrs` on a thread of its own (remote frees), which then exits.
fn free_remotely(ptrs: Vec<usize>) {
    std::thread::spawn(move || {
        for p in ptrs {
            // SAFETY: allocated by `alloc_n`, freed once.
            unsafe { arena::free(NonNull::new(p as *mut u8).unwrap()) };
        }
    })
    .join()
    .unwrap();
}

#[test]
fn remote_frees_park_half_stacks_whole_for_the_owner_and_trim_drains_them() {
    // No purger round in between: it would drain what stays untouched.
    arena::set_background_thread(false);
    arena::trim();
    assert_eq!(parked(64), 0);
    const N: usize = 1000;
    free_remotely(alloc_n(N));
    // The freeing thread's stack for 64 B holds 128 (its default grant):
    // each time it ran full, 64 objects went to the owner's depot whole;
    // the rest left with the thread, to the slabs.
    let p = parked(64);
    assert!(p >= (N as u64) / 2 && p < N as u64, "parked {p}");
    assert_eq!(p % 64, 0, "parked {p}");
    // The owner's empty stack refills from its depot.
    let again = alloc_n(N);
    assert_eq!(parked(64), 0);
    free_remotely(again);
    assert!(parked(64) > 0);
    arena::trim();
    let s = arena::stats();
    assert!(s.classes.iter().all(|c| c.parked == 0));
}
