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
