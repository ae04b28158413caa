//! Threads that take turns at one bin, never at the same time, open at
//! most one arena per CPU: taking turns is what threads do when there are
//! more of them than CPUs, and arenas beyond the CPU count cannot keep
//! them apart in the caches, while each one costs its own chunk and
//! partly used slabs. One test: the arena assignment is per process.

use std::ptr::NonNull;
use std::sync::{Arc, Barrier, Condvar, Mutex};

use hotpool::arena;

/// Objects per turn: about one refill of the 48-byte class.
const PER_TURN: usize = 64;
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
    // Whose turn it is.
    let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
    // Nobody frees (and takes a bin lock for it) while others take turns.
    let done = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|me| {
            let turn = Arc::clone(&turn);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut kept: Vec<NonNull<u8>> = Vec::with_capacity(PER_TURN * TURNS);
                for _ in 0..TURNS {
                    let (lock, cv) = &*turn;
                    let mut t = cv.wait_while(lock.lock().unwrap(), |t| *t != me).unwrap();
                    for i in 0..PER_TURN {
                        let p = arena::try_alloc(48, 16).unwrap();
                        // SAFETY: a fresh block of 48 bytes.
                        unsafe { p.as_ptr().write(i as u8) };
                        kept.push(p);
                    }
                    *t = (me + 1) % threads;
                    cv.notify_all();
                }
                done.wait();
                for p in kept {
                    // SAFETY: each block is live and freed once.
                    unsafe { arena::free(p) };
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
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
