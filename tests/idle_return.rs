//! Memory goes back while the program is idle, without a trim call (issue
//! 14): with `HotAlloc` as the global allocator and default settings but
//! `decay_ms` shortened to 1 s, a burst of 1 Mi boxed objects of 64 B and
//! a burst of 1 Mi objects through a pool are freed, then the program
//! sleeps without calling the allocator for `decay_ms` + 2 s. The
//! background purger (started lazily at the first frees) purges the dirty
//! pages, unmaps the chunks they free, and trims the pool once it has been
//! idle for `decay_ms`: the resident set comes back within max(10%, 4 MiB)
//! of where it was before the bursts, plus one pool chunk and 256 KiB per
//! thread. Then the same again with `background_thread` off, where nothing
//! comes back, so the test shows the purger is what returns it.
//!
//! Its own binary without libtest's harness: libtest's threads would call
//! the allocator while the program is meant to be idle. Linux only.

#[cfg(target_os = "linux")]
#[path = "common/statm.rs"]
mod statm;

#[cfg(target_os = "linux")]
mod idle {
    use std::hint::black_box;
    use std::time::Duration;

    use super::statm::{rss, under_a_sanitizer};
    use hotpool::{arena, HotAlloc, Pool};

    #[global_allocator]
    static A: HotAlloc = HotAlloc;

    static P: Pool<[u64; 8]> = Pool::new();

    const N: usize = 1 << 20;
    const MIB: usize = 1 << 20;
    const DECAY_MS: i64 = 1000;

    /// The bursts, freed; the pool's on a thread of its own that exits.
    fn bursts() -> usize {
        let boxes: Vec<Box<[u64; 8]>> = (0..N).map(|i| Box::new([i as u64; 8])).collect();
        let pooled = std::thread::spawn(|| {
            let objs: Vec<_> = (0..N).map(|i| P.alloc([i as u64; 8])).collect();
            black_box(&objs);
        });
        pooled.join().unwrap();
        let peak = rss();
        drop(black_box(boxes));
        peak
    }

    /// One round: bursts, then idle; returns (before, peak, after) in bytes.
    fn round() -> (usize, usize, usize) {
        let before = rss();
        let peak = bursts();
        std::thread::sleep(Duration::from_millis(DECAY_MS as u64 + 2000));
        (before, peak, rss())
    }

    pub fn main() {
        if under_a_sanitizer() {
            eprintln!("idle_return: skipped: malloc is not glibc's (a sanitizer's runtime?)");
            return;
        }
        arena::set_decay_ms(DECAY_MS);
        // Warm up: the allocator, this thread's cache and the pool exist.
        drop(black_box(P.alloc([0; 8])));
        drop(black_box(vec![0u8; 4096]));

        let (before, peak, after) = round();
        let allowed = (before / 10).max(4 * MIB) + MIB + 2 * 256 * 1024;
        println!(
            "idle_return: RSS {} KiB, peak {} KiB, {} ms after the frees {} KiB (+{} KiB, allowed +{} KiB)",
            before >> 10,
            peak >> 10,
            DECAY_MS + 2000,
            after >> 10,
            after.saturating_sub(before) >> 10,
            allowed >> 10
        );
        assert!(peak > before + 64 * MIB, "the bursts were resident");
        assert!(
            after <= before + allowed,
            "idle memory did not come back: {} KiB over",
            (after - before) >> 10
        );
        let purged = arena::stats().purged;
        assert!(purged > 0, "the purger purged");

        // Without the purger, an idle program keeps the burst.
        assert!(!arena::set_background_thread(false));
        std::thread::sleep(Duration::from_millis(1500));
        let (before, _, after) = round();
        println!(
            "idle_return: background_thread:false: +{} KiB after {} ms",
            after.saturating_sub(before) >> 10,
            DECAY_MS + 2000
        );
        assert!(
            after > before + 32 * MIB,
            "without the purger the burst stays until the next allocator call"
        );
        arena::set_decay_ms(10_000);
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    idle::main();
}
