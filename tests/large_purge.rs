//! A large run bigger than every such run freed before it was allocated
//! goes back to the OS when it is freed (issue 14: the peak of eight
//! threads growing hash tables); a run of a size already freed once stays
//! dirty for reuse, and `decay_ms:-1` keeps everything.
//!
//! Its own binary: the threshold only rises, so no other test of the
//! process may free large runs first. One test, run alone in the binary.

#[cfg(target_os = "linux")]
#[path = "common/statm.rs"]
mod statm;

use hotpool::arena;

const KIB: usize = 1 << 10;

/// Allocates `size` bytes (zeroed if `zero`) and writes every page.
fn filled(size: usize, zero: bool) -> core::ptr::NonNull<u8> {
    let p = if zero {
        arena::calloc(1, size).unwrap()
    } else {
        arena::try_alloc(size, 16).unwrap()
    };
    if zero {
        // SAFETY: a fresh block of `size` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p.as_ptr(), size) };
        assert!(bytes.iter().all(|&b| b == 0), "calloc gave a dirty block");
    }
    // SAFETY: as above.
    unsafe { p.as_ptr().write_bytes(0xa5, size) };
    p
}

/// Frees `p` and returns how much `dirty` and `purged` grew.
fn free_and_measure(p: core::ptr::NonNull<u8>) -> (isize, u64) {
    let before = arena::stats();
    // SAFETY: `p` is a live block of the arena allocator, freed once.
    unsafe { arena::free(p) };
    let after = arena::stats();
    (
        after.dirty as isize - before.dirty as isize,
        after.purged - before.purged,
    )
}

#[test]
fn only_runs_larger_than_any_freed_before_go_back_at_once() {
    // 640 KiB: larger than the first threshold (128 KiB), so given back
    // at once.
    let (dirty, purged) = free_and_measure(filled(640 * KIB, false));
    assert!(dirty <= 0, "a new largest run left {dirty} dirty bytes");
    assert!(purged >= 640 * KIB as u64, "purged {purged} bytes");

    // The same size again: the threshold passed it, so it stays dirty. It
    // is likely placed in the pages just purged, filed as zero: calloc
    // must find them so.
    let (dirty, purged) = free_and_measure(filled(640 * KIB, true));
    assert!(dirty >= 640 * KIB as isize, "only {dirty} dirty bytes");
    assert_eq!(purged, 0);

    // With purging off, even a new largest run stays dirty, and the
    // threshold does not move.
    arena::set_decay_ms(-1);
    let (dirty, purged) = free_and_measure(filled(768 * KIB, false));
    assert!(dirty >= 768 * KIB as isize, "only {dirty} dirty bytes");
    assert_eq!(purged, 0);
    arena::set_decay_ms(10_000);

    // 768 KiB once more, purging on: still the largest ever purged.
    let (_, purged) = free_and_measure(filled(768 * KIB, false));
    assert!(purged >= 768 * KIB as u64, "purged {purged} bytes");

    // 1 MiB, the largest large class: its pages leave the resident set
    // at its free.
    #[cfg(target_os = "linux")]
    if statm::under_a_sanitizer() {
        eprintln!("RSS part skipped: malloc is not glibc's (a sanitizer's runtime?)");
    } else {
        let p = filled(1024 * KIB, false);
        let held = statm::rss();
        // SAFETY: a live block of the arena allocator, freed once.
        unsafe { arena::free(p) };
        let after = statm::rss();
        assert!(
            after + 900 * KIB <= held,
            "RSS {} KiB before the free, {} KiB after",
            held / KIB,
            after / KIB
        );
    }
}
