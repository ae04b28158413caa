//! The debug modes of `HOTPOOL_CONF`: leak report, allocation sites, junk
//! filling, double and foreign free detection, valgrind client requests.
//!
//! Scenarios that must abort or print at exit run in a child process: the
//! test binary re-executes itself with `HOTPOOL_CHILD=<scenario>` and the
//! `HOTPOOL_CONF` under test, running only `child_entry`.

use std::process::{Command, Output};

use hotpool::{Pool, Pooled};

/// A pooled type with a name the reports must show.
#[derive(Debug)]
#[repr(C)] // the write-after-free test writes byte 16
#[allow(dead_code)] // the fields exist for their size and layout
struct Order {
    id: u64,
    qty: [u64; 3],
}

/// A type that stays allocated until exit.
#[allow(dead_code)]
struct LeakyFrame([u8; 48]);

static ORDERS: Pool<Order> = Pool::new();
static FRAMES: Pool<LeakyFrame> = Pool::new();

/// Runs `scenario` in a child process with `HOTPOOL_CONF=conf`.
fn child(scenario: &str, conf: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("HOTPOOL_CHILD", scenario)
        .env("HOTPOOL_CONF", conf)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The scenarios; a no-op unless run as a child.
#[test]
fn child_entry() {
    let Ok(scenario) = std::env::var("HOTPOOL_CHILD") else {
        return;
    };
    match scenario.as_str() {
        "pool_double_free" => {
            let raw = Pooled::into_raw(ORDERS.alloc(Order { id: 1, qty: [0; 3] }));
            let keep = ORDERS.alloc(Order { id: 2, qty: [0; 3] });
            eprintln!("address {raw:p}");
            // SAFETY: none: the second from_raw is the bug under test.
            unsafe {
                drop(Pooled::from_raw(raw));
                drop(Pooled::from_raw(raw));
            }
            drop(keep);
        }
        "pool_drop_twice" => {
            // Two owners of one object (a from_raw bug the checks cannot
            // see at from_raw time): the second drop must be caught.
            let raw = Pooled::into_raw(ORDERS.alloc(Order { id: 1, qty: [0; 3] }));
            let keep = ORDERS.alloc(Order { id: 2, qty: [0; 3] });
            eprintln!("address {raw:p}");
            // SAFETY: none: two owners of one object is the bug under test.
            let (a, b) = unsafe { (Pooled::from_raw(raw), Pooled::from_raw(raw)) };
            drop(a);
            drop(b);
            drop(keep);
        }
        "pool_foreign" => {
            let raw = Box::into_raw(Box::new(Order { id: 3, qty: [0; 3] }));
            eprintln!("address {raw:p}");
            // SAFETY: none: a Box pointer is the bug under test.
            drop(unsafe { Pooled::from_raw(raw) });
        }
        "pool_write_after_free" => {
            let first = ORDERS.alloc(Order { id: 1, qty: [0; 3] });
            let raw = Pooled::into_raw(ORDERS.alloc(Order { id: 2, qty: [0; 3] }));
            eprintln!("address {raw:p}");
            // SAFETY: `raw` came from into_raw and is taken back once.
            drop(unsafe { Pooled::from_raw(raw) });
            // SAFETY: none: writing freed (still mapped) memory is the bug.
            unsafe { std::ptr::write_volatile(std::ptr::addr_of_mut!((*raw).qty[1]), 7) };
            let again = ORDERS.alloc(Order { id: 3, qty: [0; 3] });
            drop((first, again));
        }
        "arena_double_free" => {
            let p = hotpool::arena::try_alloc(64, 8).unwrap();
            eprintln!("address {:p}", p.as_ptr());
            // SAFETY: none: the second free is the bug under test.
            unsafe {
                hotpool::arena::free(p);
                hotpool::arena::free(p);
            }
        }
        "arena_large_double_free" => {
            let p = hotpool::arena::try_alloc(200_000, 8).unwrap();
            eprintln!("address {:p}", p.as_ptr());
            hotpool::arena::trim();
            // SAFETY: none: the second free is the bug under test.
            unsafe {
                hotpool::arena::free(p);
                hotpool::arena::trim();
                hotpool::arena::free(p);
            }
        }
        "arena_foreign" => {
            let b = Box::into_raw(Box::new([0u64; 8])).cast::<u8>();
            eprintln!("address {b:p}");
            // SAFETY: none: a malloc pointer is the bug under test.
            unsafe { hotpool::arena::free(std::ptr::NonNull::new(b).unwrap()) };
        }
        "arena_interior" => {
            let p = hotpool::arena::try_alloc(64, 8).unwrap();
            // SAFETY: 16 < 64, inside the block.
            let q = unsafe { p.as_ptr().add(16) };
            eprintln!("address {q:p}");
            // SAFETY: none: an interior pointer is the bug under test.
            unsafe { hotpool::arena::free(std::ptr::NonNull::new(q).unwrap()) };
        }
        "arena_guard_page" => {
            // A pointer into an inaccessible mapping (like a guard page):
            // the check must report it, not fault reading the header.
            const CHUNK: usize = 4 << 20;
            // SAFETY: a fresh anonymous PROT_NONE mapping touches nothing.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    2 * CHUNK,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(raw, libc::MAP_FAILED);
            let aligned = (raw as usize + CHUNK - 1) & !(CHUNK - 1);
            let p = (aligned + 4096) as *mut u8;
            eprintln!("address {p:p}");
            // SAFETY: none: a pointer into a PROT_NONE mapping is the bug.
            unsafe { hotpool::arena::free(std::ptr::NonNull::new(p).unwrap()) };
        }
        "leaks" => make_leaks(),
        "valgrind_clean" => {
            // Every kind of block through the checked paths, used properly.
            let objs: Vec<_> = (0..1000u64)
                .map(|i| ORDERS.alloc(Order { id: i, qty: [i; 3] }))
                .collect();
            assert_eq!(objs.iter().map(|o| o.id).sum::<u64>(), 499_500);
            drop(objs);
            let mut blocks = Vec::new();
            for size in [8, 24, 100, 3000, 20_000, 300_000, 3 << 20] {
                let p = hotpool::arena::try_alloc(size, 8).unwrap();
                // SAFETY: the block has `size` bytes.
                unsafe { p.as_ptr().write_bytes(1, size) };
                blocks.push(p);
            }
            for p in blocks {
                // SAFETY: each block is freed once.
                unsafe { hotpool::arena::free(p) };
            }
            eprintln!("clean run done");
        }
        "valgrind_use_after_free" => {
            let raw = Pooled::into_raw(ORDERS.alloc(Order { id: 1, qty: [5; 3] }));
            // SAFETY: taken back once.
            drop(unsafe { Pooled::from_raw(raw) });
            // SAFETY: none: reading a freed object is the bug valgrind must see.
            let stale = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*raw).qty[2])) };
            eprintln!("read {stale:#x}");
        }
        other => panic!("unknown scenario {other}"),
    }
}

#[inline(never)]
fn make_leaks() {
    for i in 0..3 {
        std::mem::forget(FRAMES.alloc(LeakyFrame([i; 48])));
    }
    let freed = ORDERS.alloc(Order { id: 0, qty: [0; 3] });
    drop(freed);
}

#[cfg(any(feature = "checks", debug_assertions))]
mod with_checks {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    /// SIGABRT's number on Linux.
    const SIGABRT: i32 = 6;

    /// Asserts that the child aborted (SIGABRT) with a report naming `what`,
    /// the type and the address it printed.
    fn assert_aborts(o: &Output, what: &str, type_name: &str) {
        let err = stderr(o);
        assert_eq!(o.status.signal(), Some(SIGABRT), "did not abort: {err}");
        let address = err
            .lines()
            .find_map(|l| l.strip_prefix("address "))
            .unwrap_or_else(|| panic!("no address line: {err}"));
        let report = err
            .lines()
            .find(|l| l.starts_with("hotpool: ") && l.contains(what))
            .unwrap_or_else(|| panic!("no '{what}' report: {err}"));
        assert!(report.contains(type_name), "{report}");
        assert!(report.contains(address), "{report} lacks {address}");
        assert!(report.ends_with("aborting"), "{report}");
    }

    #[test]
    fn pool_double_free_through_from_raw_aborts_naming_type_and_address() {
        let o = child("pool_double_free", "checks:true");
        assert_aborts(&o, "was freed twice", "checks::Order");
    }

    #[test]
    fn pool_double_drop_aborts_before_corrupting() {
        let o = child("pool_drop_twice", "checks:true");
        assert_aborts(&o, "was freed twice", "checks::Order");
    }

    #[test]
    fn pool_foreign_pointer_aborts() {
        let o = child("pool_foreign", "checks:true");
        assert_aborts(&o, "is not an object of any pool", "checks::Order");
    }

    #[test]
    fn pool_write_after_free_is_caught_on_reuse() {
        let o = child("pool_write_after_free", "junk:true");
        assert_aborts(&o, "write after free", "checks::Order");
        // qty[1] is at byte 16 of Order; 7 is the byte written.
        assert!(stderr(&o).contains("(byte 16 is 0x07)"), "{}", stderr(&o));
    }

    #[test]
    fn arena_double_free_aborts() {
        let o = child("arena_double_free", "checks:true");
        assert_aborts(&o, "was freed twice", "arena block of 64 bytes");
    }

    #[test]
    fn arena_double_free_of_a_large_block_aborts() {
        let o = child("arena_large_double_free", "checks:true");
        assert_aborts(&o, "invalid free", "arena block");
    }

    #[test]
    fn arena_foreign_and_interior_pointers_abort() {
        let o = child("arena_foreign", "checks:true");
        assert_aborts(&o, "is not a block of the arena allocator", "arena block");
        let o = child("arena_guard_page", "checks:true");
        assert_aborts(&o, "is not a block of the arena allocator", "arena block");
        let o = child("arena_interior", "checks:true");
        assert_aborts(&o, "is not the start of a block", "arena block");
    }

    #[test]
    fn checks_off_leaves_correct_programs_alone() {
        for conf in ["checks:true", "junk:true", ""] {
            let o = child("valgrind_clean", conf);
            assert!(o.status.success(), "{conf}: {}", stderr(&o));
            assert!(stderr(&o).contains("clean run done"));
        }
    }

    /// Whether `valgrind` can be run here.
    fn valgrind() -> bool {
        Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn under_valgrind(scenario: &str) -> Output {
        Command::new("valgrind")
            .args(["--tool=memcheck", "--error-exitcode=99", "--leak-check=no"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env("HOTPOOL_CHILD", scenario)
            .env("HOTPOOL_CONF", "checks:true")
            .output()
            .unwrap()
    }

    #[test]
    fn valgrind_sees_use_after_free_inside_a_pool() {
        if !valgrind() {
            eprintln!("valgrind not installed: skipped");
            return;
        }
        let o = under_valgrind("valgrind_use_after_free");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(99), "{err}");
        assert!(err.contains("Invalid read of size 8"), "{err}");
        assert!(err.contains("inside a block of size 32 free'd"), "{err}");
    }

    #[test]
    fn valgrind_finds_nothing_in_a_correct_program() {
        if !valgrind() {
            eprintln!("valgrind not installed: skipped");
            return;
        }
        let o = under_valgrind("valgrind_clean");
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("ERROR SUMMARY: 0 errors"), "{err}");
    }
}

#[test]
fn leak_report_prints_each_leaking_type_at_exit() {
    let o = child("leaks", "leak_report:true");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("hotpool: leak:"))
        .collect();
    assert_eq!(
        lines,
        ["hotpool: leak: 3 objects of type `checks::LeakyFrame` (144 B) still in use"],
        "{err}"
    );
    assert!(
        !err.contains("allocated at"),
        "sites without leak_backtrace"
    );
}

#[test]
fn leak_report_is_silent_unless_asked() {
    let o = child("leaks", "");
    assert!(o.status.success());
    assert!(!stderr(&o).contains("hotpool: leak"), "{}", stderr(&o));
}

#[test]
fn leak_backtrace_names_the_allocating_function() {
    let o = child("leaks", "leak_report:true,leak_backtrace:true");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("  3 allocated at:"), "{err}");
    let first_frame = err
        .lines()
        .skip_while(|l| !l.contains("allocated at:"))
        .nth(1)
        .unwrap_or_default();
    assert!(first_frame.contains("checks::make_leaks"), "{err}");
}

#[test]
fn bad_values_of_the_new_keys_warn_and_are_ignored() {
    let o = child("leaks", "leak_report:sometimes,junk:maybe");
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad value 'sometimes' for 'leak_report'"),
        "{err}"
    );
    assert!(err.contains("bad value 'maybe' for 'junk'"), "{err}");
    assert!(!err.contains("hotpool: leak:"), "{err}");
}

#[test]
fn leaks_lists_types_with_objects_in_use() {
    #[allow(dead_code)]
    struct Session(u32, u32);
    static SESSIONS: Pool<Session> = Pool::new();
    let held: Vec<_> = (0..5).map(|i| SESSIONS.alloc(Session(i, i))).collect();
    let find = || {
        hotpool::stats::leaks()
            .into_iter()
            .find(|l| l.type_name.ends_with("Session"))
    };
    let leak = find().expect("Session not listed");
    assert_eq!((leak.count, leak.bytes), (5, 40));
    assert!(leak.sites.is_empty());
    let text = hotpool::stats::render_leaks(&[leak]);
    assert!(
        text.starts_with("hotpool: leak: 5 objects of type `"),
        "{text}"
    );
    drop(held);
    assert!(find().is_none(), "freed objects still listed");
}
