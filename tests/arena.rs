//! The arena allocator through `HotAlloc`'s methods (not installed as the
//! global allocator here; see `arena_global.rs`).

use core::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;

use allocator_api2::alloc::Allocator;
use hotpool::arena;
use hotpool::config::{parse, ConfProblem, DEFAULT};
use hotpool::{AllocError, HotAlloc};

#[path = "common/cached.rs"]
mod cached;
use cached::cached;

/// Serialises the tests: several read process-wide figures (resident
/// memory, dirty pages, allocated bytes) that any concurrent test changes.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
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

fn fill(p: *mut u8, n: usize, seed: u8) {
    let mut i = 0;
    while i < n {
        // SAFETY: callers pass live blocks of at least `n` bytes.
        unsafe { *p.add(i) = seed.wrapping_add(i as u8) };
        i = next(i);
    }
}

fn check(p: *const u8, n: usize, seed: u8) {
    let mut i = 0;
    while i < n {
        // SAFETY: callers pass live blocks of at least `n` bytes.
        let b = unsafe { *p.add(i) };
        assert_eq!(b, seed.wrapping_add(i as u8), "byte {i} of {n}");
        i = next(i);
    }
}

#[test]
fn every_size_class_round_trips() {
    let _g = serial();
    let mut size = 1;
    while size <= 3 << 20 {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero layout; each block is freed once with it.
        unsafe {
            let ps: Vec<*mut u8> = (0..3).map(|_| HotAlloc.alloc(layout)).collect();
            for (k, &p) in ps.iter().enumerate() {
                assert!(!p.is_null());
                assert!(arena::usable_size(core::ptr::NonNull::new(p).unwrap()) >= size);
                fill(p, size.min(4096), k as u8);
            }
            for (k, &p) in ps.iter().enumerate() {
                check(p, size.min(4096), k as u8);
                HotAlloc.dealloc(p, layout);
            }
        }
        size = if size < 64 { size + 1 } else { size + size / 5 };
    }
}

#[test]
fn alignments_are_honoured() {
    let _g = serial();
    let mut align = 1;
    while align <= 64 << 10 {
        for size in [1, 7, 100, 3000, 20_000, 300_000] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero layout, freed once.
            unsafe {
                let p = HotAlloc.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                fill(p, size, 3);
                check(p, size, 3);
                HotAlloc.dealloc(p, layout);
            }
        }
        align *= 2;
    }
    for align in [1 << 20, 2 << 20, 8 << 20] {
        let layout = Layout::from_size_align(4096, align).unwrap();
        // SAFETY: non-zero layout, freed once.
        unsafe {
            let p = HotAlloc.alloc(layout);
            assert_eq!(p as usize % align, 0);
            fill(p, 4096, 9);
            HotAlloc.dealloc(p, layout);
        }
    }
}

#[test]
fn realloc_chains_preserve_content() {
    let _g = serial();
    for align in [8, 64, 8192] {
        let mut size = 1;
        let mut layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: every realloc passes the block's current layout.
        unsafe {
            let mut p = HotAlloc.alloc(layout);
            fill(p, size, 1);
            // Grow through small, large and huge, then shrink back.
            let sizes: Vec<usize> = (0..40)
                .map(|i| 1usize << (i / 2))
                .map(|s| s + s / 3)
                .chain((0..30).rev().map(|i| (1usize << (i * 2 / 3)) + 5))
                .collect();
            for &new in &sizes {
                p = HotAlloc.realloc(p, layout, new);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                check(p, size.min(new), 1);
                size = new;
                layout = Layout::from_size_align(size, align).unwrap();
                fill(p, size, 1);
            }
            HotAlloc.dealloc(p, layout);
        }
    }
}

#[test]
fn large_realloc_grows_in_place_when_room() {
    let _g = serial();
    let layout = Layout::from_size_align(20_000, 8).unwrap();
    // SAFETY: layouts match each block.
    unsafe {
        // A huge block grows with mremap, usually in place; content survives.
        let big = Layout::from_size_align(2 << 20, 8).unwrap();
        let h = HotAlloc.alloc(big);
        fill(h, 4096, 5);
        let h2 = HotAlloc.realloc(h, big, 3 << 20);
        check(h2, 4096, 5);
        HotAlloc.dealloc(h2, Layout::from_size_align(3 << 20, 8).unwrap());
        let p = HotAlloc.alloc(layout);
        fill(p, 20_000, 2);
        let q = HotAlloc.realloc(p, layout, 30_000);
        check(q, 20_000, 2);
        HotAlloc.dealloc(q, Layout::from_size_align(30_000, 8).unwrap());
    }
}

/// A large block that `realloc` moves goes back to its arena, where it can
/// merge with its free neighbours, not to the thread cache; a large block
/// freed by `dealloc` goes to the thread cache.
#[test]
fn a_large_block_that_realloc_moved_skips_the_thread_cache() {
    let _g = serial();
    const SIZE: usize = 28 << 10;
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    // SAFETY: layouts match each block.
    unsafe {
        let blocks: Vec<*mut u8> = (0..16).map(|_| HotAlloc.alloc(layout)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        // A block whose next run is another of ours cannot grow in place.
        let (i, &p) = blocks
            .iter()
            .enumerate()
            .find(|&(_, &p)| blocks.contains(&p.wrapping_add(SIZE)))
            .expect("two of 16 runs are neighbours");
        fill(p, SIZE, 3);
        let before = cached(SIZE);
        let q = HotAlloc.realloc(p, layout, 2 * SIZE);
        assert!(!q.is_null() && q != p, "the block moved");
        check(q, SIZE, 3);
        assert_eq!(cached(SIZE), before, "the old run went to the arena");
        HotAlloc.dealloc(q, Layout::from_size_align(2 * SIZE, 8).unwrap());
        for (j, &b) in blocks.iter().enumerate() {
            if j != i {
                HotAlloc.dealloc(b, layout);
            }
        }
        assert!(
            cached(SIZE) > before,
            "a freed run goes to the thread cache"
        );
    }
}

/// Huge blocks that cannot grow where they are move with their pages
/// (new mappings go below old ones, so a block's neighbour is usually
/// taken): every byte survives every step.
#[test]
fn huge_realloc_moves_pages_and_keeps_content() {
    let _g = serial();
    const MIB: usize = 1 << 20;
    // SAFETY: layouts match each block; each block is freed once.
    unsafe {
        let mut blocks: Vec<(*mut u8, usize)> = (0..4)
            .map(|i| {
                let p = HotAlloc.alloc(Layout::from_size_align(2 * MIB, 8).unwrap());
                fill(p, 2 * MIB, i as u8);
                (p, 2 * MIB)
            })
            .collect();
        for _ in 0..4 {
            for (i, b) in blocks.iter_mut().enumerate() {
                let new = b.1 * 2;
                let q = HotAlloc.realloc(b.0, Layout::from_size_align(b.1, 8).unwrap(), new);
                assert!(!q.is_null());
                check(q, b.1, i as u8);
                fill(q, new, i as u8);
                *b = (q, new);
            }
            let s = arena::stats();
            let live: usize = blocks.iter().map(|b| b.1).sum();
            assert!(s.mapped >= live, "{s:?}");
        }
        for (i, (p, size)) in blocks.into_iter().enumerate() {
            check(p, size, i as u8);
            HotAlloc.dealloc(p, Layout::from_size_align(size, 8).unwrap());
        }
    }
}

#[test]
fn zero_size_allocator_requests_dangle_aligned() {
    let _g = serial();
    for align in [1, 8, 4096] {
        let layout = Layout::from_size_align(0, align).unwrap();
        let b = HotAlloc.allocate(layout).unwrap();
        assert_eq!(b.len(), 0);
        assert_eq!(b.cast::<u8>().as_ptr() as usize % align, 0);
        // SAFETY: zero-size blocks may be "freed" with their layout.
        unsafe { HotAlloc.deallocate(b.cast(), layout) };
    }
    let mut v: allocator_api2::vec::Vec<u64, HotAlloc> = allocator_api2::vec::Vec::new_in(HotAlloc);
    v.extend(0..10_000u64);
    assert_eq!(v.iter().sum::<u64>(), 10_000 * 9_999 / 2);
    v.truncate(3);
    v.shrink_to_fit();
    assert_eq!(&v[..], &[0, 1, 2]);
}

/// `allocate` reports a small block's length from its layout alone (the
/// class size, no metadata lookup): it is the block's usable size, its
/// first and last bytes can be written, and a layout of that length frees it.
#[test]
fn allocate_reports_the_class_size_of_small_blocks() {
    let _g = serial();
    for align in [1, 8, 16, 64, 512, 4096] {
        let mut size = 1;
        while size <= 16 << 10 {
            let layout = Layout::from_size_align(size, align).unwrap();
            let b = HotAlloc.allocate(layout).unwrap();
            let p = b.cast::<u8>();
            assert!(b.len() >= size && p.as_ptr() as usize % align == 0);
            // SAFETY: a live block of ours, `b.len()` bytes long; freed once
            // with a length between the requested and the reported one.
            unsafe {
                assert_eq!(
                    b.len(),
                    arena::usable_size(p),
                    "{size} B aligned to {align}"
                );
                p.as_ptr().write(1);
                p.as_ptr().add(b.len() - 1).write(2);
                HotAlloc.deallocate(p, Layout::from_size_align(b.len(), align).unwrap());
            }
            size = size * 5 / 4 + 1;
        }
    }
}

#[test]
fn allocate_hands_back_a_cached_block_with_its_class_length() {
    // The second allocation of each layout pops the block the first one
    // freed from the thread cache (allocate's fast path in a release
    // build): the same address, and the same reported length, the usable
    // size.
    let _g = serial();
    for (size, align) in [(1, 1), (24, 8), (40, 16), (100, 4), (3000, 8), (14336, 16)] {
        let layout = Layout::from_size_align(size, align).unwrap();
        let first = HotAlloc.allocate(layout).unwrap();
        // SAFETY: a live block of ours, freed once with its layout.
        unsafe { HotAlloc.deallocate(first.cast(), layout) };
        let again = HotAlloc.allocate(layout).unwrap();
        let p = again.cast::<u8>();
        assert_eq!(p, first.cast::<u8>(), "{size} B aligned to {align}");
        // SAFETY: a live block of ours; freed once with its layout.
        unsafe {
            assert_eq!(
                again.len(),
                arena::usable_size(p),
                "{size} B aligned to {align}"
            );
            p.as_ptr().add(again.len() - 1).write(1);
            HotAlloc.deallocate(p, layout);
        }
    }
}

#[test]
fn allocate_reports_usable_size_and_zeroes() {
    let _g = serial();
    let layout = Layout::from_size_align(100, 8).unwrap();
    let b = HotAlloc.allocate(layout).unwrap();
    assert!(b.len() >= 100);
    // SAFETY: freed once with a size within [requested, reported].
    unsafe { HotAlloc.deallocate(b.cast(), Layout::from_size_align(b.len(), 8).unwrap()) };
    for size in [100, 50_000, 3 << 20] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // Dirty the memory first so zeroing is observable.
        // SAFETY: non-zero layout, freed once.
        unsafe {
            let p = HotAlloc.alloc(layout);
            fill(p, size, 0xAA);
            HotAlloc.dealloc(p, layout);
            let z = HotAlloc.alloc_zeroed(layout);
            // Every byte natively; under Miri one byte in 64 (a per-byte
            // loop over 3 MiB takes minutes there).
            let step = if cfg!(miri) { 64 } else { 1 };
            let bytes = core::slice::from_raw_parts(z, size);
            assert!(bytes.iter().step_by(step).all(|&x| x == 0));
            HotAlloc.dealloc(z, layout);
        }
    }
}

#[test]
fn overflow_and_bad_alignment_are_errors() {
    let _g = serial();
    assert!(matches!(
        arena::alloc_array(usize::MAX / 2, 3),
        Err(AllocError::UnsupportedLayout { .. })
    ));
    assert!(matches!(
        arena::calloc(1 << 40, 1 << 40),
        Err(AllocError::UnsupportedLayout { .. })
    ));
    assert!(matches!(
        arena::try_alloc(8, 3),
        Err(AllocError::UnsupportedLayout { .. })
    ));
    assert!(matches!(
        arena::try_alloc(8, 1 << 40),
        Err(AllocError::UnsupportedLayout { .. })
    ));
    assert!(matches!(
        arena::try_alloc(isize::MAX as usize, 8),
        Err(AllocError::UnsupportedLayout { .. })
    ));
    // A request the OS refuses is OutOfMemory, not a crash.
    assert!(matches!(
        arena::try_alloc(1 << 60, 8),
        Err(AllocError::OutOfMemory { .. })
    ));
    let p = arena::calloc(1000, 8).unwrap();
    // SAFETY: 8000 zeroed bytes, freed once.
    unsafe {
        assert!(core::slice::from_raw_parts(p.as_ptr(), 8000)
            .iter()
            .all(|&b| b == 0));
        assert!(arena::usable_size(p) >= 8000);
        arena::free(p);
    }
}

/// A tiny deterministic generator (xorshift).
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn threads_free_each_others_objects() {
    let _g = serial();
    const THREADS: usize = if cfg!(miri) { 4 } else { 8 };
    const ROUNDS: usize = if cfg!(miri) { 150 } else { 4000 };
    struct Block(usize, usize, u8);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let txs = txs.clone();
            std::thread::spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                let mut mine = Vec::new();
                for i in 0..ROUNDS {
                    let r = rng(&mut seed);
                    let size = match r % 16 {
                        0 => 16_385 + (r >> 8) as usize % 200_000,
                        1 if i % 50 == 0 => (1 << 20) + (r >> 8) as usize % (2 << 20),
                        _ => 1 + (r >> 8) as usize % 2048,
                    };
                    let layout = Layout::from_size_align(size, 8).unwrap();
                    // SAFETY: non-zero layout.
                    let p = unsafe { HotAlloc.alloc(layout) };
                    assert!(!p.is_null());
                    let seed_b = (r >> 40) as u8;
                    fill(p, size, seed_b);
                    let to = (r >> 20) as usize % THREADS;
                    if to == t {
                        mine.push(Block(p as usize, size, seed_b));
                    } else {
                        txs[to].send(Block(p as usize, size, seed_b)).unwrap();
                    }
                    while let Ok(b) = rx.try_recv() {
                        mine.push(b);
                    }
                    if mine.len() > 64 {
                        for b in mine.drain(..32) {
                            check(b.0 as *const u8, b.1, b.2);
                            // SAFETY: each block is freed once with its layout.
                            unsafe {
                                HotAlloc.dealloc(
                                    b.0 as *mut u8,
                                    Layout::from_size_align(b.1, 8).unwrap(),
                                )
                            };
                        }
                    }
                }
                drop(txs);
                (rx, mine)
            })
        })
        .collect();
    drop(txs);
    let leftovers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (rx, mine) in leftovers {
        for b in mine.into_iter().chain(rx.try_iter()) {
            check(b.0 as *const u8, b.1, b.2);
            // SAFETY: each block is freed once with its layout.
            unsafe { HotAlloc.dealloc(b.0 as *mut u8, Layout::from_size_align(b.1, 8).unwrap()) };
        }
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "measures the resident set; Miri has no /proc and no page purging"
)]
fn trim_returns_a_burst_to_the_os() {
    let _g = serial();
    arena::trim();
    let before = hotpool::stats::resident_bytes();
    let mut blocks = Vec::new();
    for i in 0..64 << 10 {
        let size = if i % 2 == 0 { 1000 } else { 40_000 };
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero layout.
        let p = unsafe { HotAlloc.alloc(layout) };
        fill(p, size, 1);
        blocks.push((p, layout));
        if blocks.len() * 20_000 > 256 << 20 {
            break;
        }
    }
    let peak = hotpool::stats::resident_bytes();
    assert!(
        peak > before + (128 << 20),
        "burst not resident: {before} -> {peak}"
    );
    for (p, layout) in blocks {
        // SAFETY: freed once with its layout.
        unsafe { HotAlloc.dealloc(p, layout) };
    }
    arena::trim();
    let after = hotpool::stats::resident_bytes();
    assert!(
        after < before + (16 << 20),
        "trim kept memory: {before} -> {peak} -> {after}"
    );
}

#[test]
fn decay_purges_without_trim() {
    let _g = serial();
    arena::set_decay_ms(0);
    let before = arena::stats().purged;
    let layout = Layout::from_size_align(500_000, 8).unwrap();
    // SAFETY: non-zero layout, freed once.
    unsafe {
        let p = HotAlloc.alloc(layout);
        fill(p, 500_000, 1);
        HotAlloc.dealloc(p, layout);
    }
    // Counted by `purged` rather than `dirty`: an exiting thread of an
    // earlier test may be flushing its cache into the arenas right now.
    let purged = arena::stats().purged - before;
    assert!(purged >= 500_000, "decay_ms:0 purges on free ({purged})");
    arena::set_decay_ms(10_000);
}

#[test]
fn stats_balance() {
    let _g = serial();
    arena::trim();
    let base = arena::stats();
    let layouts: Vec<Layout> = [24, 700, 9000, 100_000, 3 << 20]
        .iter()
        .map(|&s| Layout::from_size_align(s, 8).unwrap())
        .collect();
    // SAFETY: non-zero layouts.
    let ps: Vec<*mut u8> = layouts
        .iter()
        .map(|&l| unsafe { HotAlloc.alloc(l) })
        .collect();
    let mid = arena::stats();
    assert!(mid.allocated >= base.allocated + 24 + 700 + 9000 + 100_000 + (3 << 20));
    assert!(mid.active >= mid.allocated - base.allocated);
    assert!(mid.mapped >= mid.active && mid.resident >= mid.active);
    let c24 = mid.classes.iter().find(|c| c.size == 32).unwrap();
    assert!(c24.current >= 1 && c24.nmalloc >= c24.nfree);
    for (p, l) in ps.into_iter().zip(layouts) {
        // SAFETY: freed once with its layout.
        unsafe { HotAlloc.dealloc(p, l) };
    }
    let end = arena::stats();
    assert_eq!(end.allocated, base.allocated, "allocated goes back down");
    // The pool layer adds its table once a pool exists, the handle layer
    // its line once a handle does.
    static REPORTED: hotpool::Pool<[u8; 24]> = hotpool::Pool::new();
    let kept = REPORTED.alloc([0; 24]);
    let handle = hotpool::Shared::new(5u8);
    let mut text = Vec::new();
    arena::stats_print(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("allocated") && text.contains("pools:") && text.contains("pool"));
    assert!(
        text.contains("[u8; 24]"),
        "the pool table lists the pool:\n{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let handles = lines.iter().position(|l| *l == "handles:").unwrap();
    assert!(handles > lines.iter().position(|l| *l == "pools:").unwrap());
    assert_eq!(
        handles + 2,
        lines.len(),
        "one line after `handles:`\n{text}"
    );
    assert!(lines[handles + 1].starts_with("slots in use "), "{text}");
    drop((kept, handle));
    let json = arena::stats_json();
    assert!(json.starts_with('{') && json.ends_with('}') && json.contains("\"classes\":["));
}

#[test]
fn background_thread_purges() {
    let _g = serial();
    arena::set_decay_ms(20);
    assert!(arena::set_background_thread(true));
    let layout = Layout::from_size_align(800_000, 8).unwrap();
    // SAFETY: non-zero layout, freed once.
    unsafe {
        let p = HotAlloc.alloc(layout);
        fill(p, 800_000, 1);
        HotAlloc.dealloc(p, layout);
    }
    let mut purged = false;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        if arena::stats().dirty == 0 {
            purged = true;
            break;
        }
    }
    assert!(!arena::set_background_thread(false));
    arena::set_decay_ms(10_000);
    assert!(purged, "background thread did not purge");
}

#[test]
fn config_parser() {
    let _g = serial();
    let none = &mut |p: ConfProblem<'_>| panic!("unexpected {p:?}");
    let c = parse(
        b"narenas:4,tcache:false,tcache_max:1024,decay_ms:-1,background_thread:true,stats_print:true",
        none,
    );
    assert_eq!(c.narenas, 4);
    assert!(!c.tcache && c.background_thread && c.stats_print);
    assert_eq!((c.tcache_max, c.decay_ms), (1024, -1));
    assert_eq!(parse(b"", none), DEFAULT);
    assert_eq!(parse(b" decay_ms : 5 ,", none).decay_ms, 5);

    let mut seen = Vec::new();
    let c = parse(
        b"narenas:0,bogus:1,tcache:maybe,decay_ms:9x,justakey,tcache_max:999999",
        &mut |p| seen.push(format!("{p:?}")),
    );
    assert_eq!(c, DEFAULT, "bad items keep the defaults");
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen[1].contains("UnknownKey"));
    assert!(seen[4].contains("Malformed"));
}

/// Runs this test binary again with only `test` selected and `HOTPOOL_TEST_CHILD`
/// set, and returns its exit status and stderr.
fn run_child(test: &str) -> (std::process::ExitStatus, String) {
    run_child_with(test, "")
}

/// [`run_child`] with `HOTPOOL_CONF=conf`.
fn run_child_with(test: &str, conf: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("HOTPOOL_TEST_CHILD", "1")
        .env("HOTPOOL_CONF", conf)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn double_free_is_reported_and_aborts() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let p = hotpool::arena::try_alloc(48, 8).unwrap();
        // Enough frees of one pointer to overflow the thread cache, whose
        // flush to the slab sees the region is already free.
        for _ in 0..1000 {
            // SAFETY: deliberately invalid: this child must abort.
            unsafe { hotpool::arena::free(p) };
        }
        return;
    }
    let (status, stderr) = run_child("double_free_is_reported_and_aborts");
    assert!(!status.success(), "child survived a double free: {stderr}");
    assert!(stderr.contains("was freed twice"), "{stderr}");
    assert!(
        stderr.contains("hotpool: invalid free: the block at 0x"),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn interior_pointer_free_is_reported_and_aborts() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let p = hotpool::arena::try_alloc(64, 8).unwrap();
        // SAFETY: deliberately invalid (p + 8 is inside a block): this child
        // must abort at once, before a thread cache could hand it out.
        unsafe { hotpool::arena::free(p.add(8)) };
        eprintln!("child: still running after the bad free");
        return;
    }
    let (status, stderr) = run_child("interior_pointer_free_is_reported_and_aborts");
    assert!(!status.success(), "child survived a bad free: {stderr}");
    assert!(
        stderr.contains("is not the start of an allocated block"),
        "{stderr}"
    );
}

/// A thread whose first allocator call is a free (a consumer of what other
/// threads allocated) gets a thread cache on that free; its frees must all
/// land, and memory must stay consistent for both threads afterwards.
#[test]
fn a_thread_that_only_frees_gets_a_working_cache() {
    let _g = serial();
    let base = arena::stats().allocated;
    let sizes = |i: usize| 16 + (i * 37) % 900;
    let n = if cfg!(miri) { 500 } else { 20_000 };
    for round in 0..3u8 {
        let blocks: Vec<(usize, usize)> = (0..n)
            .map(|i| {
                let n = sizes(i);
                let p = arena::try_alloc(n, 8).unwrap().as_ptr();
                fill(p, n, round ^ i as u8);
                (p as usize, n)
            })
            .collect();
        std::thread::spawn(move || {
            for (i, &(p, n)) in blocks.iter().enumerate() {
                check(p as *const u8, n, round ^ i as u8);
                // SAFETY: each block is live and freed once.
                unsafe { arena::free(std::ptr::NonNull::new(p as *mut u8).unwrap()) };
            }
        })
        .join()
        .unwrap();
    }
    // The freed blocks are handed out again without overlapping.
    let again: Vec<(usize, usize)> = (0..n)
        .map(|i| {
            let n = sizes(i);
            let p = arena::try_alloc(n, 8).unwrap().as_ptr();
            fill(p, n, i as u8);
            (p as usize, n)
        })
        .collect();
    for (i, &(p, n)) in again.iter().enumerate() {
        check(p as *const u8, n, i as u8);
        // SAFETY: as above.
        unsafe { arena::free(std::ptr::NonNull::new(p as *mut u8).unwrap()) };
    }
    assert_eq!(arena::stats().allocated, base);
}

#[test]
fn free_if_owned_frees_ours_and_refuses_the_rest() {
    let on_stack = 0u64;
    let boxed = Box::new(7u64);
    let huge = arena::try_alloc(5 << 20, 16).unwrap().as_ptr();
    let small = arena::try_alloc(40, 8).unwrap().as_ptr();
    let chunk_header = (small as usize & !((4 << 20) - 1)) as *mut u8;
    // SAFETY: none of these is a block of the arena, so nothing may be
    // freed or written; the blocks are freed once below.
    unsafe {
        assert!(!arena::free_if_owned(&on_stack as *const u64 as *mut u8));
        assert!(!arena::free_if_owned(&*boxed as *const u64 as *mut u8));
        assert!(!arena::free_if_owned(huge.add(4096)));
        assert!(!arena::free_if_owned(chunk_header));
        fill(small, 40, 3);
        fill(huge, 4096, 4);
        check(small, 40, 3);
        check(huge, 4096, 4);
    }
    assert_eq!(*boxed, 7);
    for size in [40, 100_000, 5 << 20] {
        let p = if size == 40 {
            small
        } else if size == 5 << 20 {
            huge
        } else {
            arena::try_alloc(size, 8).unwrap().as_ptr()
        };
        // SAFETY: `p` is a live block, freed once.
        assert!(unsafe { arena::free_if_owned(p) }, "{size}-byte block");
    }
    // The small block went to this thread's cache: the next request of its
    // class gets it back.
    let again = arena::try_alloc(40, 8).unwrap();
    assert_eq!(again.as_ptr(), small);
    // SAFETY: freed once.
    unsafe { arena::free(again) };
}

/// Child-process tests (a fresh process: no other test takes the kept
/// mapping in between).
#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn a_freed_huge_mapping_is_reused_zeroed_and_trimmed() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let n = 3 << 20;
        let a = arena::try_alloc(n, 16).unwrap();
        fill(a.as_ptr(), n, 9);
        let mapped = arena::stats().mapped;
        // SAFETY: freed once.
        unsafe { arena::free(a) };
        let kept = arena::stats();
        assert!(kept.dirty >= n, "the mapping is kept as dirty: {kept:?}");
        assert_eq!(kept.mapped, mapped, "and stays mapped");
        let b = arena::calloc(1, n).unwrap();
        assert_eq!(b, a, "the kept mapping is reused");
        // SAFETY: `b` holds `n` bytes.
        assert!(unsafe { core::slice::from_raw_parts(b.as_ptr(), n) }
            .iter()
            .all(|&x| x == 0));
        // SAFETY: freed once.
        unsafe { arena::free(b) };
        arena::trim();
        let trimmed = arena::stats();
        assert!(trimmed.mapped + n <= mapped, "trim unmaps it: {trimmed:?}");
        // With decay_ms 0 nothing is kept.
        arena::set_decay_ms(0);
        let c = arena::try_alloc(n, 16).unwrap();
        let mapped = arena::stats().mapped;
        // SAFETY: freed once.
        unsafe { arena::free(c) };
        assert!(arena::stats().mapped + n <= mapped);
        eprintln!("child: ok");
        return;
    }
    let (status, stderr) = run_child("a_freed_huge_mapping_is_reused_zeroed_and_trimmed");
    assert!(status.success() && stderr.contains("child: ok"), "{stderr}");
}

/// A kept mapping over twice a request serves it and keeps its tail as a
/// mapping of its own; a request longer than every kept mapping takes the
/// longest one's pages at its head (resident, so not faulted in again),
/// except for `calloc`, which gets fresh zero pages.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn kept_huge_mappings_are_split_and_adopted() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        const MIB: usize = 1 << 20;
        let big = arena::try_alloc(20 * MIB, 16).unwrap();
        fill(big.as_ptr(), 20 * MIB, 5);
        let mapped = arena::stats().mapped;
        // SAFETY: freed once.
        unsafe { arena::free(big) };
        // 4 MiB from the 20 MiB mapping: its 16 MiB tail stays kept.
        let small = arena::try_alloc(4 * MIB, 16).unwrap();
        assert_eq!(small, big, "the head of the kept mapping is reused");
        let s = arena::stats();
        assert!(s.dirty >= 15 * MIB, "the tail is kept: {s:?}");
        assert_eq!(s.mapped, mapped, "nothing was unmapped or mapped anew");
        // A 12 MiB request is served by the kept tail, still holding the
        // bytes written through the first block.
        let from_tail = arena::try_alloc(12 * MIB, 16).unwrap();
        assert_eq!(arena::stats().mapped, mapped);
        // SAFETY: both blocks are live and written within their bounds.
        unsafe {
            fill(small.as_ptr(), 4 * MIB, 6);
            fill(from_tail.as_ptr(), 12 * MIB, 7);
            check(small.as_ptr(), 4 * MIB, 6);
            check(from_tail.as_ptr(), 12 * MIB, 7);
            arena::free(from_tail);
        }
        // A 24 MiB request, longer than anything kept: the kept 16 MiB move
        // to its head; every byte is usable.
        let grown = arena::try_alloc(24 * MIB, 16).unwrap();
        assert!(arena::stats().dirty < MIB, "the kept mapping was adopted");
        // SAFETY: `grown` holds 24 MiB; freed once.
        unsafe {
            fill(grown.as_ptr(), 24 * MIB, 8);
            check(grown.as_ptr(), 24 * MIB, 8);
            arena::free(grown);
        }
        // calloc never adopts written pages.
        let zeroed = arena::calloc(1, 32 * MIB).unwrap();
        // SAFETY: `zeroed` holds 32 MiB.
        assert!(
            unsafe { core::slice::from_raw_parts(zeroed.as_ptr(), 32 * MIB) }
                .iter()
                .all(|&x| x == 0)
        );
        // SAFETY: freed once each.
        unsafe {
            arena::free(zeroed);
            arena::free(small);
        }
        eprintln!("child: ok");
        return;
    }
    let (status, stderr) = run_child("kept_huge_mappings_are_split_and_adopted");
    assert!(status.success() && stderr.contains("child: ok"), "{stderr}");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn a_double_free_of_a_kept_huge_block_is_reported() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let p = arena::try_alloc(2 << 20, 16).unwrap();
        // SAFETY: deliberately invalid: the second free must abort.
        unsafe {
            arena::free(p);
            arena::free(p);
        }
        eprintln!("child: still running after the double free");
        return;
    }
    let (status, stderr) = run_child("a_double_free_of_a_kept_huge_block_is_reported");
    assert!(!status.success(), "child survived a double free: {stderr}");
    assert!(stderr.contains("was freed already"), "{stderr}");
}

/// Threads that come and go join the least used arenas, so waves of
/// short-lived threads reuse the arenas (and chunks) of the exited ones
/// instead of spreading over all eight.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn short_lived_threads_reuse_the_arenas_of_exited_ones() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let chunk = 4 << 20;
        for _ in 0..40 {
            let pair: Vec<_> = (0..2)
                .map(|t| {
                    std::thread::spawn(move || {
                        let blocks: Vec<_> = (0..4000)
                            .map(|i| arena::try_alloc(64 + (i + t) % 200, 8).unwrap())
                            .collect();
                        for b in blocks {
                            // SAFETY: each block is live and freed once.
                            unsafe { arena::free(b) };
                        }
                    })
                })
                .collect();
            for t in pair {
                t.join().unwrap();
            }
        }
        let s = arena::stats();
        assert_eq!(s.narenas, 8);
        // The main thread's arena and the two the waves keep using: at most
        // one chunk each (with round-robin, all eight had one).
        assert!(
            s.mapped - s.metadata <= 3 * chunk + chunk / 2,
            "chunks spread over the arenas: {s:?}"
        );
        eprintln!("child: ok");
        return;
    }
    let (status, stderr) = run_child_with(
        "short_lived_threads_reuse_the_arenas_of_exited_ones",
        "narenas:8",
    );
    assert!(status.success() && stderr.contains("child: ok"), "{stderr}");
}

/// Threads that start together still get an arena each (while arenas are
/// free): the choice and the claim of an arena are one compare-exchange.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn threads_starting_together_get_an_arena_each() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let chunk = 4 << 20;
        let start = std::sync::Arc::new(std::sync::Barrier::new(4));
        let hold = std::sync::Arc::new(std::sync::Barrier::new(5));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (start, hold) = (start.clone(), hold.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let blocks: Vec<_> = (0..1000)
                        .map(|_| arena::try_alloc(64, 8).unwrap())
                        .collect();
                    hold.wait();
                    hold.wait();
                    for b in blocks {
                        // SAFETY: each block is live and freed once.
                        unsafe { arena::free(b) };
                    }
                })
            })
            .collect();
        hold.wait();
        let s = arena::stats();
        hold.wait();
        for t in threads {
            t.join().unwrap();
        }
        // One chunk per arena in use.
        let chunks = (s.mapped - s.metadata + chunk / 2) / chunk;
        assert_eq!(chunks, 4, "threads shared arenas: {s:?}");
        eprintln!("child: ok");
        return;
    }
    for _ in 0..5 {
        let (status, stderr) =
            run_child_with("threads_starting_together_get_an_arena_each", "narenas:8");
        assert!(status.success() && stderr.contains("child: ok"), "{stderr}");
    }
}

/// With the default `narenas`, threads that do not contend share the first
/// arena: its one chunk holds what four threads allocated one after the
/// other (with an arena each, four chunks), and no other arena opens.
#[test]
#[cfg_attr(
    miri,
    ignore = "runs this test binary as a child process, which Miri cannot start"
)]
fn threads_share_an_arena_until_they_contend() {
    if std::env::var_os("HOTPOOL_TEST_CHILD").is_some() {
        let chunk = 4 << 20;
        let mut threads = Vec::new();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = std::sync::Arc::new(std::sync::Mutex::new(go_rx));
        for _ in 0..4 {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let go_rx = go_rx.clone();
            threads.push(std::thread::spawn(move || {
                let blocks: Vec<_> = (0..1000)
                    .map(|_| arena::try_alloc(64, 8).unwrap())
                    .collect();
                ready_tx.send(()).unwrap();
                go_rx.lock().unwrap().recv().unwrap();
                for b in blocks {
                    // SAFETY: each block is live and freed once.
                    unsafe { arena::free(b) };
                }
            }));
            // One thread at a time: no contention.
            ready_rx.recv().unwrap();
        }
        let s = arena::stats();
        for _ in 0..4 {
            go_tx.send(()).unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(s.narenas > 1, "{s:?}");
        assert_eq!(s.arenas_open, 1, "{s:?}");
        let chunks = (s.mapped - s.metadata + chunk / 2) / chunk;
        assert_eq!(chunks, 1, "threads spread over arenas: {s:?}");
        eprintln!("child: ok");
        return;
    }
    let (status, stderr) = run_child_with("threads_share_an_arena_until_they_contend", "");
    assert!(status.success() && stderr.contains("child: ok"), "{stderr}");
}
