//! A program whose only frees are of large blocks (above the thread
//! caches' classes, so no cache ever ticks) still gets its memory back
//! while idle (issue 14): the background purger starts at a large block's
//! free as it does at a thread cache's tick. With `HotAlloc` as the global
//! allocator and `decay_ms` shortened to 1 s, 96 blocks of 512 KiB (a
//! size freed once before, so they stay dirty at their free) are
//! written, freed, and the program sleeps for `decay_ms` + 2 s without
//! calling the allocator: the resident set comes back within 4 MiB of
//! where it was.
//!
//! Its own binary without libtest's harness, whose threads would allocate
//! small objects (and so start the purger) while the program is meant to
//! do nothing but large blocks. Linux only.

#[cfg(target_os = "linux")]
#[path = "common/statm.rs"]
mod statm;

#[cfg(target_os = "linux")]
mod idle {
    use std::alloc::{GlobalAlloc, Layout};
    use std::time::Duration;

    use super::statm::{rss, under_a_sanitizer};
    use hotpool::{arena, HotAlloc};

    #[global_allocator]
    static A: HotAlloc = HotAlloc;

    const MIB: usize = 1 << 20;
    const BLOCK: usize = 512 << 10;
    const N: usize = 96;
    const DECAY_MS: i64 = 1000;

    pub fn main() {
        if under_a_sanitizer() {
            eprintln!("idle_return_large: skipped: malloc is not glibc's (a sanitizer's runtime?)");
            return;
        }
        arena::set_decay_ms(DECAY_MS);
        let layout = Layout::from_size_align(BLOCK, 16).unwrap();
        // One block of the size freed first: a large run bigger than any
        // freed before goes back at its free, so without this the blocks
        // below would never be dirty and the purger would have nothing to do.
        // SAFETY: a valid layout of non-zero size; freed once.
        unsafe {
            let p = A.alloc(layout);
            assert!(!p.is_null());
            A.dealloc(p, layout);
        }
        let before = rss();
        let mut blocks = [core::ptr::null_mut::<u8>(); N];
        for b in &mut blocks {
            // SAFETY: a valid layout of non-zero size.
            let p = unsafe { A.alloc(layout) };
            assert!(!p.is_null());
            // SAFETY: `p` is a fresh block of `BLOCK` bytes.
            unsafe { p.write_bytes(0x5a, BLOCK) };
            *b = p;
        }
        let peak = rss();
        for &p in &blocks {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { A.dealloc(p, layout) };
        }
        std::thread::sleep(Duration::from_millis(DECAY_MS as u64 + 2000));
        let after = rss();
        println!(
            "idle_return_large: RSS {} KiB, peak {} KiB, {} ms after the frees {} KiB",
            before >> 10,
            peak >> 10,
            DECAY_MS + 2000,
            after >> 10
        );
        assert!(peak >= before + 40 * MIB, "the blocks were resident");
        assert!(
            after <= before + 4 * MIB,
            "idle memory did not come back: {} KiB over",
            after.saturating_sub(before) >> 10
        );
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    idle::main();
}
