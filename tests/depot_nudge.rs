//! A thread cache whose flush finds its arena's depot full nudges the
//! background purger, which returns the older half of every full depot to
//! the slabs at once: the next flushes find room again, instead of each
//! paying a trip to the slabs until the purger's rounds (every second at
//! the default `decay_ms`, and a round takes only what no thread took for
//! a whole round) get to it.
//! One test: the counts read are per process.

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use hotpool::arena;

/// Objects of 64 B a depot holds at most (`src/arena/bin.rs`: 8,192
/// objects or 1 MiB, the fewer).
const CAP: u64 = 8192;

fn parked_64() -> u64 {
    let s = arena::stats();
    s.classes.iter().find(|c| c.size == 64).unwrap().parked
}

#[test]
#[cfg_attr(miri, ignore = "waits for the background purger")]
fn a_depot_found_full_is_halved_by_the_purger_at_once() {
    arena::set_background_thread(true);
    arena::trim();
    assert_eq!(parked_64(), 0);
    // Allocated here, freed by another thread: its stack for the class
    // (which it only frees) goes whole to this arena's depot each time it
    // runs full, until the depot is full and the rest go to the slabs.
    let ptrs: Vec<usize> = (0..12_000)
        .map(|_| arena::try_alloc(64, 8).unwrap().as_ptr() as usize)
        .collect();
    let start = Instant::now();
    std::thread::spawn(move || {
        for p in ptrs {
            // SAFETY: allocated above, freed once.
            unsafe { arena::free(NonNull::new(p as *mut u8).unwrap()) };
        }
    })
    .join()
    .unwrap();
    // Without the nudge the depot would stay full for at least a second:
    // the first round after the burst only marks what the next one takes.
    loop {
        let parked = parked_64();
        if parked < CAP - 64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(600),
            "the depot still holds {parked} objects"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
