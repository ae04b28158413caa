//! Panic safety where user code runs inside hotpool's operations (the
//! cases tests/pool.rs does not cover already): `T::drop` of the last
//! `Shared`, a panicking drop in the middle of many, objects dropped during
//! thread-local destruction, and the whole file again with the debug
//! checks on. Each test checks that the pool stays consistent (its counts
//! balance) and that no other object is lost or corrupted.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;

use hotpool::{Pool, Pooled, Shared};

/// Panics in its drop when `loud`; counts drops in `drops`.
struct Bomb {
    loud: bool,
    value: u64,
    drops: &'static AtomicUsize,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.loud {
            panic!("drop of {} failed", self.value);
        }
    }
}

fn balanced<T>(pool: &Pool<T>) {
    let s = pool.stats();
    assert_eq!(
        s.capacity,
        s.in_use + s.local_free + s.depot_free + s.chunk_free,
        "{s:?}"
    );
}

#[test]
fn panic_in_drop_of_the_last_shared_frees_its_memory_and_nothing_else() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static P: Pool<Bomb> = Pool::new();
    let quiet: Vec<Shared<Bomb>> = (0..10)
        .map(|value| {
            Shared::new_in(
                Bomb {
                    loud: false,
                    value,
                    drops: &DROPS,
                },
                &P,
            )
        })
        .collect();
    let loud = Shared::new_in(
        Bomb {
            loud: true,
            value: 99,
            drops: &DROPS,
        },
        &P,
    );
    let weak = Shared::downgrade(&loud);
    let second = loud.clone();
    drop(loud); // not the last owner: no drop
    assert_eq!(DROPS.load(SeqCst), 0);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(second))).is_err());
    assert_eq!(DROPS.load(SeqCst), 1);
    assert!(
        weak.upgrade().is_none(),
        "a dropped object is still reachable"
    );
    assert_eq!(P.stats().in_use, 10, "the panicking object's slot leaked");
    balanced(&P);
    assert!(quiet.iter().enumerate().all(|(i, s)| s.value == i as u64));
    drop(quiet);
    assert_eq!(DROPS.load(SeqCst), 11);
    assert_eq!(P.stats().in_use, 0);

    // Same with the global allocator behind the Shared.
    let boxed = Shared::new(Bomb {
        loud: true,
        value: 7,
        drops: &DROPS,
    });
    let weak = Shared::downgrade(&boxed);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(boxed))).is_err());
    assert!(weak.upgrade().is_none());
    assert_eq!(DROPS.load(SeqCst), 12);
}

#[test]
fn a_panicking_drop_among_many_loses_no_other_object() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static P: Pool<Bomb> = Pool::new();
    let all: Vec<Pooled<Bomb>> = (0..1000)
        .map(|value| {
            P.alloc(Bomb {
                loud: value == 500,
                value,
                drops: &DROPS,
            })
        })
        .collect();
    // Vec's drop keeps dropping the other elements while unwinding.
    assert!(catch_unwind(AssertUnwindSafe(|| drop(all))).is_err());
    assert_eq!(DROPS.load(SeqCst), 1000, "an object was not dropped");
    assert_eq!(P.stats().in_use, 0, "a slot was lost");
    balanced(&P);
    // Every slot is reusable and distinct.
    let again: Vec<_> = (0..1000)
        .map(|value| {
            P.alloc(Bomb {
                loud: false,
                value,
                drops: &DROPS,
            })
        })
        .collect();
    let mut addrs: Vec<_> = again.iter().map(|b| Pooled::as_ptr(b) as usize).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 1000);
    drop(again);
    assert_eq!(P.stats().in_use, 0);
}

#[test]
fn panicking_constructors_on_many_threads_leak_no_slot() {
    static P: Pool<[u64; 16]> = Pool::new();
    // Thousands of expected panics: keep their messages off stderr.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let expected = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("constructor "));
        if !expected {
            previous(info);
        }
    }));
    // Joined (not scoped) threads: a join returns only after the thread's
    // exit hook handed its list back, so the counts are final.
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..2000u64 {
                    let r = catch_unwind(|| {
                        P.alloc_with(|| {
                            if i % 3 == 0 {
                                panic!("constructor {i} failed");
                            }
                            [t * 10_000 + i; 16]
                        })
                    });
                    if let Ok(p) = r {
                        kept.push(p);
                    }
                }
                for p in &kept {
                    assert!(p.iter().all(|&v| v == p[0] && v / 10_000 == t));
                }
                assert_eq!(kept.len(), 1333);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(P.stats().in_use, 0);
    balanced(&P);
}

#[test]
fn objects_dropped_during_thread_local_destruction_go_back() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static P: Pool<Bomb> = Pool::new();
    thread_local! {
        static KEPT: RefCell<Vec<Pooled<Bomb>>> = const { RefCell::new(Vec::new()) };
    }
    let threads: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(|| {
                KEPT.with(|k| {
                    k.borrow_mut().extend((0..300).map(|value| {
                        P.alloc(Bomb {
                            loud: false,
                            value,
                            drops: &DROPS,
                        })
                    }))
                });
                // Returns with the objects in the thread-local: they are
                // dropped by its destructor, before or after hotpool's own
                // thread-exit hook (the order is unspecified).
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(DROPS.load(SeqCst), 2400);
    let s = P.stats();
    assert_eq!((s.in_use, s.local_free, s.threads), (0, 0, 0), "{s:?}");
    balanced(&P);
}

/// The child half of the next test: a thread whose thread-local holds a
/// `Pooled` whose drop panics.
#[test]
fn tls_child() {
    if std::env::var_os("HOTPOOL_TLS_CHILD").is_none() {
        return;
    }
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static P: Pool<Bomb> = Pool::new();
    thread_local! {
        static KEPT: RefCell<Option<Pooled<Bomb>>> = const { RefCell::new(None) };
    }
    let survivor = P.alloc(Bomb {
        loud: false,
        value: 1,
        drops: &DROPS,
    });
    let _ = thread::spawn(|| {
        KEPT.with(|k| {
            *k.borrow_mut() = Some(P.alloc(Bomb {
                loud: true,
                value: 2,
                drops: &DROPS,
            }))
        });
    })
    .join();
    // Not reached: Rust aborts when a thread-local destructor panics.
    eprintln!("survivor {}", survivor.value);
}

/// A panic in `T::drop` during thread-local destruction aborts the process:
/// Rust does not unwind out of a thread-local destructor ("thread local
/// panicked on drop"), so nothing can be kept consistent after it. This
/// checks that the abort is Rust's (the object's drop ran and panicked)
/// and not a report of hotpool's.
#[test]
fn a_panic_in_drop_during_thread_local_destruction_aborts_cleanly() {
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tls_child", "--nocapture"])
        .env("HOTPOOL_TLS_CHILD", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("drop of 2 failed"), "{err}");
    assert!(!err.contains("hotpool: "), "{err}");
    assert!(!err.contains("survivor"), "{err}");
}

/// Everything above again, with junk filling and the free checks on: every
/// object then goes through the checked slow paths.
#[test]
#[cfg(any(feature = "checks", debug_assertions))]
fn panic_safety_holds_with_the_debug_checks_on() {
    if std::env::var_os("HOTPOOL_CONF").is_some() {
        return; // already the checked run
    }
    let o = Command::new(std::env::current_exe().unwrap())
        .args(["--skip", "panic_safety_holds_with_the_debug_checks_on"])
        .env("HOTPOOL_CONF", "checks:true")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("test result: ok. 6 passed"), "{out}");
}
