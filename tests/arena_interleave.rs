//! Two threads that take turns refilling the same size class from one
//! arena, never at the same time (so never finding the bin lock held),
//! end up in two arenas: their objects would otherwise interleave in the
//! same slabs, and each thread's writes would take cache lines from the
//! other's core. One test: the arena assignment is per process.

use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex};

use hotpool::arena;

/// Objects per turn: about one refill of the 48-byte class.
const PER_TURN: usize = 64;
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
    // Whose turn it is (0 or 1).
    let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
    let workers: Vec<_> = (0..2)
        .map(|me| {
            let turn = Arc::clone(&turn);
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
                    *t = 1 - me;
                    cv.notify_all();
                }
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
    assert!(
        arena::stats().arenas_open >= 2,
        "the two threads still share one arena"
    );
}
