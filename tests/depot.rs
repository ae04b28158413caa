//! The arenas' depots (see `src/arena/bin.rs`): a thread cache whose stack
//! of a class runs full parks the newer half whole in the depot of the
//! arena that owns the objects; a stack that runs empty takes a batch from
//! its arena's depot before the slabs; `trim` drains every depot; a forked
//! child inherits them.
//! One test: the counts read are per process.

use std::ptr::NonNull;

use hotpool::arena;

fn parked(size: usize) -> u64 {
    let s = arena::stats();
    s.classes.iter().find(|c| c.size == size).unwrap().parked
}

fn alloc_n(n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| arena::try_alloc(64, 8).unwrap().as_ptr() as usize)
        .collect()
}

/// Frees `ptrs` on a thread of its own (remote frees), which then exits.
fn free_remotely(ptrs: Vec<usize>) {
    std::thread::spawn(move || {
        for p in ptrs {
            // SAFETY: allocated by `alloc_n`, freed once.
            unsafe { arena::free(NonNull::new(p as *mut u8).unwrap()) };
        }
    })
    .join()
    .unwrap();
}

#[test]
#[cfg_attr(miri, ignore = "forks")]
fn remote_frees_park_half_stacks_whole_for_the_owner_and_trim_drains_them() {
    // No purger round in between: it would drain what stays untouched.
    arena::set_background_thread(false);
    arena::trim();
    assert_eq!(parked(64), 0);
    const N: usize = 1000;
    free_remotely(alloc_n(N));
    // The freeing thread's stack for 64 B holds 128 (its default grant):
    // each time it ran full, 64 objects went to the owner's depot whole;
    // the rest left with the thread, to the slabs.
    let p = parked(64);
    assert!(p >= (N as u64) / 2 && p < N as u64, "parked {p}");
    assert_eq!(p % 64, 0, "parked {p}");
    // The totals and the reports show them.
    let s = arena::stats();
    let bytes: u64 = s.classes.iter().map(|c| c.parked * c.size as u64).sum();
    assert_eq!(s.depot_bytes as u64, bytes);
    assert!(s.depot_bytes >= p as usize * 64);
    let json = arena::stats_json();
    assert!(
        json.contains(&format!("\"depot_bytes\":{}", s.depot_bytes)),
        "{json}"
    );
    let at = json.find("{\"size\":64,").expect("class 64 in the JSON");
    let class = &json[at..at + json[at..].find('}').unwrap()];
    assert!(class.ends_with(&format!("\"parked\":{p}")), "{class}");
    let mut text = Vec::new();
    arena::stats_print(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("depots") && l.ends_with(&format!("({} B)", s.depot_bytes))),
        "{text}"
    );
    // The owner's empty stack refills from its depot.
    let again = alloc_n(N);
    assert_eq!(parked(64), 0);
    free_remotely(again);
    let p = parked(64);
    assert!(p > 0);
    // A forked child inherits the depots (their bin locks are held across
    // fork): it refills from them and trims them like the parent.
    // SAFETY: the child only allocates, frees and reads statistics through
    // hotpool (whose fork handlers ran), then leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let ok_inherited = parked(64) == p;
        let mine = alloc_n(N);
        let ok_taken = parked(64) < p;
        for q in mine {
            // SAFETY: allocated just above, freed once.
            unsafe { arena::free(NonNull::new(q as *mut u8).unwrap()) };
        }
        arena::trim();
        let ok_drained = parked(64) == 0;
        let code = if ok_inherited && ok_taken && ok_drained {
            0
        } else {
            1
        };
        // SAFETY: leaves the child without the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child: status {status:#x}"
    );
    assert_eq!(parked(64), p, "the child's trim is its own");
    arena::trim();
    let s = arena::stats();
    assert!(s.classes.iter().all(|c| c.parked == 0));
}
