//! Bugs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) found, one test each,
//! named after the bug.

use hotpool::arena;

/// `arena::realloc` (C's `realloc`) took the class of a block from its
/// usable size. An over-aligned request is served by a large run or a huge
/// block; when its usable size is also the size of a small class (one page,
/// 8 KiB, ...), a move freed it into the thread cache as a small object of
/// that class. The next flush of the cache (here `trim`) aborted with
/// "invalid free: ... is a huge block, not a small object"; without a flush
/// the run would have been handed out again as a small object.
///
/// Found by `alloc_ops`: `try_alloc(0, 512 KiB)`, `realloc` to 0, `trim`.
#[test]
fn realloc_by_address_of_an_over_aligned_block_sized_like_a_small_class() {
    for align in [8 << 10, 16 << 10, 64 << 10, 512 << 10, 2 << 20] {
        for size in [0, 100, 4096, 8000] {
            let p = arena::try_alloc(size, align).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0);
            // SAFETY: `p` is live and holds `size.max(1)` bytes; each realloc
            // replaces the block, which is freed once at the end.
            unsafe {
                p.as_ptr().write_bytes(0x5a, size.max(1));
                let q = arena::realloc(p, 1).unwrap();
                assert_eq!(*q.as_ptr(), 0x5a);
                let r = arena::realloc(q, 24).unwrap();
                assert_eq!(*r.as_ptr(), 0x5a);
                arena::free(r);
            }
            // Flushes this thread's cache, checking every cached object.
            arena::trim();
        }
    }
}
