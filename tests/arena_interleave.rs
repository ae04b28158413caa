//! Two threads that take turns refilling the same size class from one
//! arena, never at the same time (so never finding the bin lock held),
//! end up in two arenas: their objects would otherwise interleave in the
//! same slabs, and each thread's writes would take cache lines from the
//! other's core. One test: the arena assignment is per process.

use hotpool::arena;

#[path = "common/turns.rs"]
mod turns;

/// Turns per thread.
const TURNS: usize = 200;

#[test]
#[cfg_attr(miri, ignore = "12 800 allocations taking turns")]
fn threads_taking_turns_at_one_bin_move_apart() {
    // A fresh process has one arena open, unless `HOTPOOL_CONF` opens
    // them all (`narenas` set, `tcache:false`): then nothing to show here.
    let s = arena::stats();
    if s.narenas < 2 || s.arenas_open != 1 {
        return;
    }
    // Threads that take turns open arenas only up to one per CPU.
    // SAFETY: sysconf has no preconditions.
    if unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } < 2 {
        return;
    }
    turns::take_turns(2, TURNS);
    assert!(
        arena::stats().arenas_open >= 2,
        "the two threads still share one arena"
    );
}
