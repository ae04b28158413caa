//! `HotAlloc` installed as the global allocator of this test binary.

use std::cell::RefCell;
use std::collections::HashMap;

#[global_allocator]
static A: hotpool::HotAlloc = hotpool::HotAlloc;

/// Tests here share process-wide figures (resident memory).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn multithreaded_collections() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (threads, n) = if cfg!(miri) {
        (4, 1_500)
    } else {
        (8, 20_000u64)
    };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut map: HashMap<String, Vec<u64>> = HashMap::new();
                for i in 0..n {
                    let key = format!("t{t}-k{}", i % 512);
                    map.entry(key).or_default().push(i);
                    if i % 1000 == 0 {
                        map.retain(|k, _| !k.ends_with('7'));
                    }
                }
                let total: usize = map.values().map(Vec::len).sum();
                let s: String = map.keys().take(10).cloned().collect::<Vec<_>>().join(",");
                (total, s.len(), map)
            })
        })
        .collect();
    // Maps built on other threads are dropped here: cross-thread frees.
    for h in handles {
        let (total, len, map) = h.join().unwrap();
        assert!(total > 0 && len > 0);
        drop(map);
    }
}

struct Noisy(Vec<u8>);
impl Drop for Noisy {
    fn drop(&mut self) {
        // Allocates and frees inside a thread-local destructor.
        let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert_eq!(v.len() + self.0.len(), 100 + 4096);
    }
}

thread_local! {
    static NOISY: RefCell<Option<Noisy>> = const { RefCell::new(None) };
}

#[test]
fn thread_local_destructors_may_allocate() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (threads, boxes) = if cfg!(miri) { (4, 100) } else { (16, 1000) };
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                NOISY.with(|n| *n.borrow_mut() = Some(Noisy(vec![1; 4096])));
                let _v: Vec<Box<[u8; 100]>> = (0..boxes).map(|_| Box::new([0; 100])).collect();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore = "forks; Miri cannot fork")]
fn fork_child_can_allocate() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Other threads allocate while we fork.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
                    drop(v);
                }
            })
        })
        .collect();
    for _ in 0..5 {
        // SAFETY: the child only allocates, frees and calls `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; i * 10]).collect();
            let big = vec![7u8; 3 << 20];
            let ok = v[999][0] == (999 % 256) as u8 && big[3 << 19] == 7;
            drop(v);
            hotpool::arena::trim();
            // SAFETY: `_exit` skips atexit handlers and never returns.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for b in busy {
        b.join().unwrap();
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "measures the resident set; Miri has no /proc and no page purging"
)]
fn trim_drops_resident_after_burst() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    hotpool::arena::trim();
    let before = hotpool::stats::resident_bytes();
    let burst: Vec<Vec<u8>> = (0..100_000)
        .map(|i| vec![i as u8; 1000 + i % 3000])
        .collect();
    let big: Vec<Vec<u8>> = (0..100).map(|_| vec![1u8; 500_000]).collect();
    let peak = hotpool::stats::resident_bytes();
    assert!(peak > before + (200 << 20), "{before} -> {peak}");
    drop(burst);
    drop(big);
    hotpool::arena::trim();
    let after = hotpool::stats::resident_bytes();
    assert!(after < before + (24 << 20), "{before} -> {peak} -> {after}");
}
