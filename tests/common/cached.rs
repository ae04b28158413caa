//! What the arena's thread caches hold (shared by the cache tests through
//! `#[path]`).

/// Free objects of the size class of `size` bytes in threads' caches.
pub fn cached(size: usize) -> u64 {
    let s = hotpool::arena::stats();
    s.classes.iter().find(|c| c.size == size).unwrap().cached
}
