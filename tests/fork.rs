//! Pools survive `fork` (issue 12, item 7): a child forked while other
//! threads allocate, free, or sit inside a pool's depot lock can use the
//! pool at once. Before the pools had fork handlers, a child forked while
//! another thread held a pool lock hung on its first allocation.
//!
//! Each child allocates and frees through the pool and leaves with
//! `_exit`; the parent waits up to 10 s per child, then kills it and counts
//! it as hung.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use hotpool::{Pool, PoolConfig};

#[path = "common/child.rs"]
mod child;
use child::wait_child;

/// Tiny lists: nearly every operation moves a batch under the depot lock.
const TINY: PoolConfig = PoolConfig::new().batch(2).local_max(2).depot_max(4);

/// What a child does: allocate and free through `pool`, check the values,
/// and leave with status 0 (1 if a value was wrong).
fn child_work(pool: &Pool<[u64; 4]>) -> ! {
    let objs: Vec<_> = (0..64u64).map(|i| pool.alloc([i; 4])).collect();
    let ok = objs.iter().enumerate().all(|(i, o)| **o == [i as u64; 4]);
    drop(objs);
    pool.trim();
    // SAFETY: ends the child without running the parent's atexit handlers
    // or unwinding into the test harness.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// Forks a child running [`child_work`].
fn fork_child(pool: &Pool<[u64; 4]>) -> libc::pid_t {
    // SAFETY: the child only runs `child_work`, which uses the pool and the
    // allocator (both fork-safe) and ends with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child_work(pool);
    }
    pid
}

#[test]
fn fork_while_another_thread_allocates_and_frees_batches() {
    static P: Pool<[u64; 4]> = Pool::with_config(TINY);
    let stop = AtomicBool::new(false);
    let (mut hung, mut failed) = (0, 0);
    thread::scope(|s| {
        s.spawn(|| {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let batch: Vec<_> = (0..64).map(|i| P.alloc([round + i; 4])).collect();
                assert!(batch
                    .iter()
                    .enumerate()
                    .all(|(i, o)| o[3] == round + i as u64));
                drop(batch);
                round += 1;
            }
        });
        for _ in 0..200 {
            match wait_child(fork_child(&P)) {
                Some(0) => {}
                Some(_) => failed += 1,
                None => hung += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!((hung, failed), (0, 0), "of 200 children, (hung, failed)");
}

/// Needs the `fault-injection` feature's `Pool::with_depot_locked` (CI runs
/// `cargo test --all-features`).
#[cfg(feature = "fault-injection")]
#[test]
fn fork_while_another_thread_is_inside_the_depot_lock() {
    use std::sync::mpsc;

    static P: Pool<[u64; 4]> = Pool::with_config(TINY);
    // Some objects in the depot and chunks, so the child finds both used.
    drop((0..16u64).map(|i| P.alloc([i; 4])).collect::<Vec<_>>());
    let (locked_tx, locked_rx) = mpsc::channel();
    let (forked_tx, forked_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        P.with_depot_locked(|| {
            locked_tx.send(()).unwrap();
            // Held until the parent returned from fork: without fork
            // handlers the child is made while we are in here. With them,
            // fork waits for this lock, so let it go after a while.
            let _ = forked_rx.recv_timeout(std::time::Duration::from_millis(200));
        });
    });
    locked_rx.recv().unwrap();
    let pid = fork_child(&P);
    let _ = forked_tx.send(());
    holder.join().unwrap();
    assert_eq!(wait_child(pid), Some(0), "the child hung or failed");
    // The parent's pool still works.
    let a = P.alloc([9; 4]);
    assert_eq!(*a, [9; 4]);
}

/// Set in the child processes of
/// [`fork_while_another_thread_starts_the_allocator`].
const START_RACE: &str = "HOTPOOL_FORK_START_RACE";

/// A fork while another thread is starting the arena allocator: the child
/// (which does not have that thread) used to wait forever for the start to
/// finish (found as a rare hang of the test above: the worker's first
/// chunk starts the arena). Each round is a fresh process (this test
/// binary again), where one thread makes the allocator's first request
/// while the main thread forks; the grandchild must be able to allocate.
#[cfg(target_os = "linux")]
#[test]
fn fork_while_another_thread_starts_the_allocator() {
    use std::sync::Barrier;

    if std::env::var_os(START_RACE).is_some() {
        let go = Barrier::new(2);
        let code = thread::scope(|s| {
            s.spawn(|| {
                go.wait();
                let p = hotpool::arena::try_alloc(64, 8).expect("an allocation");
                // SAFETY: allocated just above, freed once.
                unsafe { hotpool::arena::free(p) };
            });
            go.wait();
            // SAFETY: the child only allocates, frees and leaves with _exit.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let ok = hotpool::arena::try_alloc(64, 8).is_ok();
                // SAFETY: ends the child without the parent's exit handlers.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            wait_child(pid)
        });
        // What the parent test reads: the grandchild's fate.
        println!("start-race: {code:?}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let mut stuck = Vec::new();
    for _ in 0..40 {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "fork_while_another_thread_starts_the_allocator",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(START_RACE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "round failed: {text}");
        if !text.contains("start-race: Some(0)") {
            // Where the grandchild waited (tests/common/child.rs).
            stuck.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    assert!(
        stuck.is_empty(),
        "of 40 grandchildren, {} hung or failed; the first:\n{}",
        stuck.len(),
        stuck[0]
    );
}
