//! Threads that take turns at one bin, never at the same time, open at
//! most one arena per CPU: taking turns is what threads do when there are
//! more of them than CPUs, and arenas beyond the CPU count cannot keep
//! them apart in the caches, while each one costs its own chunk and
//! partly used slabs. One test: the arena assignment is per process.

use hotpool::arena;

#[path = "common/turns.rs"]
mod turns;

/// Turns per thread.
const TURNS: usize = 60;

#[test]
#[cfg_attr(miri, ignore = "thousands of allocations taking turns")]
fn threads_taking_turns_open_at_most_one_arena_per_cpu() {
    // A fresh process has one arena open, unless `HOTPOOL_CONF` opens
    // them all (`narenas` set, `tcache:false`): then nothing to show here.
    let s = arena::stats();
    if s.arenas_open != 1 {
        return;
    }
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    // More threads than CPUs and than arenas a CPU count could justify,
    // fewer than the arenas that exist when there are many CPUs.
    let threads = (2 * cpus + 2).min(16);
    if s.narenas <= cpus || threads <= cpus {
        return;
    }
    turns::take_turns(threads, TURNS);
    let open = arena::stats().arenas_open;
    assert!(
        open <= cpus,
        "{threads} threads taking turns opened {open} arenas on {cpus} CPUs"
    );
    if cpus >= 2 {
        assert!(
            open >= 2,
            "{threads} threads taking turns still share one arena"
        );
    }
}
