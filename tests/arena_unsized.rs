//! The arena's C-style entry points, as `hotpool-malloc` uses them:
//! resizing knowing only the address (`arena::realloc`), huge blocks in
//! quarter steps, and telling arena blocks from foreign pointers
//! (`arena::owns`).

use std::sync::{Mutex, MutexGuard};

use hotpool::arena;

/// Held by each test here: all of them map huge blocks, and a freed huge
/// mapping is kept for reuse, so a block another test maps meanwhile can
/// start at the very address `owns_tells_arena_blocks_from_foreign_ones`
/// has just freed (CI saw `owns` answer true there once).
static HUGE_BLOCKS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    HUGE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The byte after `i` that `fill` writes and `check` reads: every byte, or
/// under Miri (which interprets every access, slowly) the first 64 and then
/// the first and last of every page, a set that does not depend on the
/// block's size, so a block filled at one size can be checked at another.
fn next(i: usize) -> usize {
    if !cfg!(miri) || i < 63 {
        return i + 1;
    }
    let page = i / 4096 * 4096;
    if i == page + 4095 {
        i + 1
    } else {
        page + 4095
    }
}

/// Writes a pattern derived from `seed` over `n` bytes at `p`.
fn fill(p: *mut u8, n: usize, seed: u8) {
    // SAFETY: callers pass live blocks of at least `n` bytes.
    let bytes = unsafe { core::slice::from_raw_parts_mut(p, n) };
    let mut i = 0;
    while i < n {
        bytes[i] = seed ^ (i % 251) as u8;
        i = next(i);
    }
}

/// Asserts the first `n` bytes at `p` still hold `fill`'s pattern.
fn check(p: *const u8, n: usize, seed: u8) {
    // SAFETY: callers pass live blocks of at least `n` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(p, n) };
    let mut i = 0;
    while i < n {
        assert_eq!(bytes[i], seed ^ (i % 251) as u8, "byte {i} of {n}");
        i = next(i);
    }
}

#[test]
fn unsized_realloc_keeps_content_across_every_path() {
    let _one = one_at_a_time();
    // small -> same class (in place), small -> small, -> large, large grows
    // and shrinks, -> huge, huge grows, -> back to small.
    let sizes = [
        20,
        24,
        200,
        5_000,
        40_000,
        20_000,
        900_000,
        3 << 20,
        5 << 20,
        2 << 20,
        100,
        1,
    ];
    let mut p = arena::try_alloc(10, 16).unwrap();
    fill(p.as_ptr(), 10, 3);
    let mut have = 10;
    for &n in &sizes {
        // SAFETY: `p` is live and replaced by the result.
        p = unsafe { arena::realloc(p, n) }.unwrap();
        assert_eq!(
            p.as_ptr() as usize % 16,
            0,
            "moved blocks keep malloc alignment"
        );
        // SAFETY: `p` is live.
        assert!(unsafe { arena::usable_size(p) } >= n);
        check(p.as_ptr(), have.min(n), 3);
        fill(p.as_ptr(), n, 3);
        have = n;
    }
    // SAFETY: a block of `memalign` kind moves to a 16-aligned one.
    unsafe {
        let a = arena::try_alloc(40, 4096).unwrap();
        fill(a.as_ptr(), 40, 9);
        let b = arena::realloc(a, 4000).unwrap();
        assert_eq!(a, b, "growing within the class (4096) stays in place");
        let c = arena::realloc(b, 30).unwrap();
        assert_ne!(b, c, "a much smaller size moves to its own class");
        check(c.as_ptr(), 30, 9);
        arena::free(c);
        assert!(arena::realloc(p, usize::MAX / 2).is_err());
        check(p.as_ptr(), 1, 3);
        arena::free(p);
    }
}

#[test]
fn owns_tells_arena_blocks_from_foreign_ones() {
    let _one = one_at_a_time();
    let small = arena::try_alloc(48, 16).unwrap();
    let large = arena::try_alloc(100_000, 16).unwrap();
    let huge = arena::try_alloc(2 << 20, 16).unwrap();
    let huge_aligned = arena::try_alloc(100, 8 << 20).unwrap();
    let boxed = Box::new(0u64);
    let local = 0u64;
    // SAFETY: every block is ours until freed below; nothing frees
    // concurrently.
    unsafe {
        for p in [small, large, huge, huge_aligned] {
            assert!(arena::owns(p.as_ptr()), "{p:p}");
        }
        assert!(!arena::owns(huge.as_ptr().add(16)));
        assert!(!arena::owns(huge_aligned.as_ptr().add(4096)));
        let chunk = small.as_ptr() as usize & !((4 << 20) - 1);
        assert!(
            !arena::owns(chunk as *const u8),
            "chunk headers are not objects"
        );
        assert!(!arena::owns(&*boxed as *const u64 as *const u8));
        assert!(!arena::owns(&local as *const u64 as *const u8));
        assert!(!arena::owns(core::ptr::null()));
        let (h, ha) = (huge.as_ptr(), huge_aligned.as_ptr());
        arena::free(huge);
        arena::free(huge_aligned);
        assert!(!arena::owns(h), "an unmapped huge block is forgotten");
        assert!(!arena::owns(ha));
        arena::free(small);
        arena::free(large);
    }
}

#[test]
fn huge_blocks_resize_in_quarter_steps() {
    let _one = one_at_a_time();
    let p = arena::try_alloc(8 << 20, 16).unwrap();
    // SAFETY: `p` is live and replaced by each result; freed once.
    unsafe {
        let have = arena::usable_size(p);
        let q = arena::realloc(p, 7 << 20).unwrap();
        assert_eq!(
            (q, arena::usable_size(q)),
            (p, have),
            "within a quarter: kept"
        );
        let r = arena::realloc(q, 4 << 20).unwrap();
        assert_eq!(r, q, "huge blocks shrink in place");
        assert_eq!(
            arena::usable_size(r),
            4 << 20,
            "beyond a quarter: the tail goes back"
        );
        let s = arena::realloc(r, (4 << 20) + 1).unwrap();
        let got = arena::usable_size(s);
        assert!(
            s != r || got == 5 << 20 || got == (4 << 20) + 4096,
            "grown in place by a quarter, or exactly when no room: {got}"
        );
        arena::free(s);
    }
}
