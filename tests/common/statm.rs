//! Resident memory of this process, read without allocating (shared by the
//! RSS tests through `#[path]`): a block allocated between a burst and its
//! measurement could pin freed memory or wake an allocator.

/// Resident bytes from `/proc/self/statm`, read into a stack buffer.
pub fn rss() -> usize {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path; `buf` is a valid out-buffer of its
    // length; the descriptor is closed before returning.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY);
        assert!(fd >= 0, "cannot open /proc/self/statm");
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    assert!(n > 0, "cannot read /proc/self/statm");
    // Second field: resident pages.
    let resident = buf[..n as usize]
        .split(|&b| b == b' ')
        .nth(1)
        .expect("statm has a second field");
    let pages = resident
        .iter()
        .fold(0usize, |acc, &d| acc * 10 + usize::from(d - b'0'));
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// Whether C's `malloc` is a sanitizer's (ASan's, which
/// `scripts/sanitize.sh` runs every test binary under): a block from
/// `malloc` then does not show in glibc's count. Resident memory then
/// includes the sanitizer's shadow of every page touched, which is not
/// given back, so an RSS test has nothing to measure.
#[cfg(target_env = "gnu")]
pub fn under_a_sanitizer() -> bool {
    // SAFETY: mallinfo only reads glibc's counters; the block is
    // freed once.
    unsafe {
        let before = libc::mallinfo().uordblks;
        // `black_box`: LLVM knows `malloc` and would drop an unused pair.
        let block = std::hint::black_box(libc::malloc(4096));
        let after = libc::mallinfo().uordblks;
        libc::free(block);
        after.wrapping_sub(before) < 4096
    }
}

#[cfg(not(target_env = "gnu"))]
pub fn under_a_sanitizer() -> bool {
    false
}
