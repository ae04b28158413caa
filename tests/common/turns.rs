//! Threads that take turns at one bin of the arena, never at the same time
//! (so a refill never finds the bin lock held): the shape behind the
//! arena-opening rule's tests.

use std::ptr::NonNull;
use std::sync::{Arc, Barrier, Condvar, Mutex};

use hotpool::arena;

/// Objects per turn: about one refill of the 48-byte class.
const PER_TURN: usize = 64;

/// Runs `threads` threads that each take `turns` turns, in order, at
/// allocating [`PER_TURN`] blocks of 48 bytes. Nobody frees (and takes a
/// bin lock for it) until every thread has taken all its turns.
pub fn take_turns(threads: usize, turns: usize) {
    // Whose turn it is.
    let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
    let done = Arc::new(Barrier::new(threads));
    let workers: Vec<_> = (0..threads)
        .map(|me| {
            let turn = Arc::clone(&turn);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut kept: Vec<NonNull<u8>> = Vec::with_capacity(PER_TURN * turns);
                for _ in 0..turns {
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
}
