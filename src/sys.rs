//! The only module that talks to the operating system.
//!
//! Everything above asks this layer for page-aligned anonymous memory and
//! gives it back; nothing else in hotpool calls `mmap`, `munmap` or
//! `sysconf` directly.
//!
//! Per OS: Linux has every function (the arena allocator's primitives are
//! compiled only there, as the arena is). Other unix systems have what
//! pools need: pages for `Backing::Os`, the environment, stderr, fork and
//! exit hooks. Windows has only what pools and handles need, over std.

#[cfg(unix)]
use core::ptr::NonNull;

#[cfg(miri)]
mod miri;

/// The size of a virtual memory page, read once from the OS.
#[cfg(unix)]
pub(crate) fn page_size() -> usize {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; it only reads a system value.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if raw > 0 { raw as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// The page size on Windows: 4 KiB on every architecture Rust targets
/// there. Only [`resident_bytes`] uses it, and that returns 0 on Windows.
#[cfg(windows)]
pub(crate) fn page_size() -> usize {
    4096
}

/// Maps `size` bytes of fresh, zeroed, read-write memory placed so that
/// the address `offset` bytes into it is a multiple of `align`: pool and
/// arena chunks (`offset` 0) and huge blocks, whose header page precedes
/// an aligned object (`offset` one page). The one aligned mapping of
/// hotpool: it over-maps by `align` ([`map`]) and unmaps the misaligned
/// head and the unused tail.
///
/// `align` must be a power of two, `size` and `offset` multiples of the
/// page size; returns `None` when the OS refuses or the arithmetic would
/// overflow.
#[cfg(unix)]
pub(crate) fn map_aligned(size: usize, align: usize, offset: usize) -> Option<NonNull<u8>> {
    debug_assert!(align.is_power_of_two() && offset % page_size() == 0);
    debug_assert!(size.is_power_of_two() || size % page_size() == 0);
    let align = align.max(page_size());
    let size = size.max(page_size());
    let len = size.checked_add(align)?;
    let raw = map(len)?.as_ptr() as usize;
    let start = ((raw + offset + align - 1) & !(align - 1)) - offset;
    let (head, tail) = (start - raw, raw + len - (start + size));
    // SAFETY: both ranges lie inside the mapping made above (`start - raw`
    // is below `align`) and outside the block returned to the caller.
    unsafe {
        unmap_range(raw as *mut u8, head);
        unmap_range((start + size) as *mut u8, tail);
    }
    NonNull::new(start as *mut u8)
}

/// Returns a block from [`map_aligned`] to the OS.
///
/// # Safety
///
/// `ptr` and `size` must be exactly a block returned by `map_aligned(size, _, _)`
/// that was not unmapped yet, and nothing may use the memory afterwards.
#[cfg(unix)]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, size: usize) {
    let size = size.max(page_size());
    #[cfg(loom)]
    crate::sync::loom_arena::unmapped(ptr.as_ptr(), size);
    #[cfg(miri)]
    // SAFETY: the caller guarantees the range is one live mapping of ours.
    return unsafe { miri::unmap(ptr.as_ptr(), size) };
    // SAFETY: the caller guarantees the range is one live mapping of ours.
    let rc = unsafe { libc::munmap(ptr.as_ptr().cast(), size) };
    debug_assert_eq!(rc, 0, "munmap of a hotpool chunk failed");
}

/// Resident set size of this process in bytes, from `/proc/self/statm`.
///
/// Used by statistics and tests; returns 0 where the file cannot be read,
/// which is every OS but Linux. Under Miri, which has no `/proc`, the
/// bytes hotpool has mapped.
///
/// ```
/// use hotpool::Pool;
/// static PAGES: Pool<[u8; 4096]> = Pool::new();
/// let page = PAGES.alloc([1; 4096]);
/// assert!(hotpool::stats::resident_bytes() >= 4096);
/// # drop(page);
/// ```
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub fn resident_bytes() -> usize {
    #[cfg(miri)]
    return miri::mapped_bytes();
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: usize = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

// ---------------------------------------------------------------------------
// Primitives of the arena allocator (`crate::arena`). None of them allocates
// through the global allocator: they are called from inside `malloc`. All
// but `map` and `unmap_range` (which `map_aligned` uses on every unix) exist
// only on Linux, as the arena does.
// ---------------------------------------------------------------------------

/// Maps `len` bytes (a multiple of the page size) of fresh, zeroed memory at
/// an address of the kernel's choice; `None` when the OS refuses.
#[cfg(unix)]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) fn map(len: usize) -> Option<NonNull<u8>> {
    #[cfg(feature = "fault-injection")]
    if crate::testing::inject() {
        return None;
    }
    #[cfg(miri)]
    return miri::map(len, page_size());
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choice touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    #[cfg(loom)]
    crate::sync::loom_arena::mapped(raw.cast(), len);
    NonNull::new(raw.cast())
}

/// Reserves `len` bytes of address space aligned to `align` (powers of
/// two, multiples of the page size), mapped with no access: nothing can
/// be read or written there until [`commit`] maps a part of it. The
/// profiler's range for sampled objects. `None` when the OS refuses (an
/// address-space limit) and under Miri and loom, which the profiler does
/// not run under.
#[cfg(all(target_os = "linux", not(any(miri, loom))))]
pub(crate) fn reserve(len: usize, align: usize) -> Option<NonNull<u8>> {
    let total = len.checked_add(align)?;
    // SAFETY: an anonymous private mapping with no access at an address
    // of the kernel's choice touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let raw = raw as usize;
    let start = (raw + align - 1) & !(align - 1);
    // SAFETY: both ranges lie inside the reservation made above and
    // outside the part kept.
    unsafe {
        unmap_range(raw as *mut u8, start - raw);
        unmap_range((start + len) as *mut u8, raw + total - (start + len));
    }
    NonNull::new(start as *mut u8)
}

/// Maps `len` bytes of fresh, zeroed, read-write memory at `ptr`, inside
/// a range from [`reserve`]; whether the OS did.
///
/// # Safety
///
/// `ptr..ptr + len` lies inside a reservation of ours, page-aligned, with
/// no data anyone needs (what was mapped there is replaced).
#[cfg(all(target_os = "linux", not(any(miri, loom))))]
pub(crate) unsafe fn commit(ptr: NonNull<u8>, len: usize) -> bool {
    #[cfg(feature = "fault-injection")]
    if crate::testing::inject() {
        return false;
    }
    // SAFETY: per the contract, the range is ours and holds nothing in
    // use: `MAP_FIXED` replaces it with fresh zeroed pages.
    let raw = unsafe {
        libc::mmap(
            ptr.as_ptr().cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | MAP_NORESERVE,
            -1,
            0,
        )
    };
    raw == ptr.as_ptr().cast()
}

/// No swap reservation for our (mostly untouched) mappings, where the OS
/// has the flag.
#[cfg(target_os = "linux")]
const MAP_NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(all(unix, not(target_os = "linux")))]
const MAP_NORESERVE: libc::c_int = 0;

/// Reads the `u32` at `p` (4-aligned) if that memory is readable, without
/// faulting: used by the debug checks to look at metadata below an address
/// a caller passed in. `process_vm_readv` on our own process reports an
/// unreadable address as an error; where that call is refused, the page is
/// checked to be mapped (`mincore`) and read directly.
#[cfg(all(target_os = "linux", any(feature = "checks", debug_assertions)))]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) fn peek_u32(p: *const u8) -> Option<u32> {
    #[cfg(miri)]
    return miri::peek_u32(p);
    let mut out = 0u32;
    let local = libc::iovec {
        iov_base: (&mut out as *mut u32).cast(),
        iov_len: 4,
    };
    let remote = libc::iovec {
        iov_base: p as *mut libc::c_void,
        iov_len: 4,
    };
    // SAFETY: the call writes at most 4 bytes to `out`, described by
    // `local`; the remote side is only read by the kernel, which checks it.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == 4 {
        return Some(out);
    }
    // SAFETY: reading errno of this thread.
    let errno = unsafe { *libc::__errno_location() };
    if errno != libc::ENOSYS && errno != libc::EPERM {
        return None;
    }
    let page = p as usize & !(page_size() - 1);
    let mut resident = 0u8;
    // SAFETY: mincore only queries the mapping of one page-aligned page and
    // writes one byte to `resident`, a valid out-pointer.
    if unsafe { libc::mincore(page as *mut libc::c_void, page_size(), &mut resident) } != 0 {
        return None;
    }
    // SAFETY: the page is mapped; hotpool maps its metadata read-write.
    Some(unsafe { p.cast::<u32>().read() })
}

/// Unmaps `len` bytes at `ptr`.
///
/// # Safety
///
/// The range must be page-aligned, lie inside mappings of ours, and nothing
/// may use the memory afterwards.
#[cfg(unix)]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) unsafe fn unmap_range(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    #[cfg(loom)]
    crate::sync::loom_arena::unmapped(ptr, len);
    #[cfg(miri)]
    // SAFETY: the caller guarantees the range is ours and unused.
    return unsafe { miri::unmap(ptr, len) };
    // SAFETY: the caller guarantees the range is ours and unused.
    let rc = unsafe { libc::munmap(ptr.cast(), len) };
    debug_assert_eq!(rc, 0, "munmap of an arena range failed");
}

/// Gives the physical pages of `len` bytes at `ptr` back to the OS; the
/// range stays mapped and reads as zeros afterwards (`MADV_DONTNEED` on a
/// private anonymous mapping). Returns whether the kernel accepted.
///
/// # Safety
///
/// The range must be page-aligned, inside a private anonymous mapping of
/// ours, and hold no data anyone needs.
#[cfg(target_os = "linux")]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) unsafe fn purge(ptr: *mut u8, len: usize) -> bool {
    #[cfg(miri)]
    {
        // Miri has no madvise: zero the pages, as the caller counts on.
        // SAFETY: the caller guarantees the range is ours and its contents
        // dead.
        unsafe { ptr.write_bytes(0, len) };
        return true;
    }
    // SAFETY: the caller guarantees the range is ours and its contents dead.
    unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED) == 0 }
}

/// Tries to grow or shrink the mapping of `old` bytes at `ptr` to `new`
/// bytes without moving it; returns whether it succeeded.
///
/// # Safety
///
/// `ptr..ptr+old` must be one mapping of ours (page-aligned lengths).
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) unsafe fn remap_in_place(ptr: *mut u8, old: usize, new: usize) -> bool {
    // Miri has no mremap: the caller moves the block instead.
    #[cfg(miri)]
    return false;
    // SAFETY: without MREMAP_MAYMOVE the kernel either resizes this mapping
    // of ours where it is or fails; nothing else is touched.
    let raw = unsafe { libc::mremap(ptr.cast(), old, new, 0) };
    raw != libc::MAP_FAILED
}

/// Moves the pages of `old..old+len` (a whole mapping, or a part of one)
/// to `new..new+len`, which must be part of another mapping of ours
/// (replaced there), with `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`:
/// resident pages move without being copied or faulted in again. The old
/// range is unmapped on success; on failure (a range over several
/// mappings, before Linux 6.17; out of mappings) nothing changed.
///
/// # Safety
///
/// `old..old+len` lies in mappings of ours that nobody uses;
/// `new..new+len` is within a mapping of ours that nobody uses; both
/// page-aligned.
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
#[cfg_attr(miri, allow(unreachable_code, unused_variables))]
pub(crate) unsafe fn remap_onto(old: *mut u8, len: usize, new: *mut u8) -> bool {
    // Miri has no mremap: the caller keeps the fresh pages instead.
    #[cfg(miri)]
    return false;
    // SAFETY: per the contract both ranges are ours and unused; with
    // MREMAP_FIXED the kernel replaces what was at `new`.
    let raw = unsafe {
        libc::mremap(
            old.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            new.cast::<libc::c_void>(),
        )
    };
    raw != libc::MAP_FAILED
}

/// Milliseconds of a coarse monotonic clock (vDSO, no system call).
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
pub(crate) fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Online CPUs, at least 1.
#[cfg(target_os = "linux")]
pub(crate) fn ncpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        1
    }
}

/// Calls `f` with the bytes of environment variable `name` (without the NUL)
/// if it is set. Reads the C environment in place: no allocation.
#[cfg(unix)]
pub(crate) fn with_env(name: &core::ffi::CStr, f: impl FnOnce(&[u8])) {
    // SAFETY: getenv reads the environment; `name` is NUL-terminated. The
    // result is only used before returning, during allocator start-up.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return;
    }
    // SAFETY: getenv returned a NUL-terminated string that stays valid until
    // the environment is changed; we read it immediately.
    let bytes = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
    f(bytes)
}

/// Calls `f` with the bytes of environment variable `name` if it is set
/// (its WTF-8 bytes, which are UTF-8 for a Unicode value). Through std,
/// which allocates: on Windows there is no arena whose start-up could be
/// the caller.
#[cfg(windows)]
pub(crate) fn with_env(name: &core::ffi::CStr, f: impl FnOnce(&[u8])) {
    let Ok(name) = name.to_str() else { return };
    if let Some(value) = std::env::var_os(name) {
        f(value.as_encoded_bytes())
    }
}

/// Writes `bytes` to standard error with `write(2)`: no buffer, no lock.
#[cfg(unix)]
pub(crate) fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid readable buffer of `rest.len()` bytes.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Writes `bytes` to standard error through std (unbuffered there; it takes
/// std's stderr lock, which no caller on Windows holds already).
#[cfg(windows)]
pub(crate) fn write_stderr(bytes: &[u8]) {
    use std::io::Write;
    // Nowhere to report a failure to write to stderr.
    let _ = std::io::stderr().write_all(bytes);
}

/// This process's id (a fork child has its own).
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
pub(crate) fn pid() -> u32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as u32 }
}

/// Gives the CPU to another thread (under loom: to another modelled one).
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
pub(crate) fn yield_now() {
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

/// Waits at most `ms` milliseconds while `word` holds `expected`
/// (`FUTEX_WAIT`): returns at once if it does not, early when
/// [`wake_one`] is called on it or a signal arrives.
#[cfg(target_os = "linux")]
pub(crate) fn wait_ms(word: &core::sync::atomic::AtomicU32, expected: u32, ms: u64) {
    let ts = libc::timespec {
        // `as _`: `time_t` is deprecated on musl (its width will change).
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit word for the whole call;
    // `ts` is a valid relative timeout; the unused arguments are ignored
    // by FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        )
    };
}

/// Wakes a thread in [`wait_ms`] on `word`, if there is one.
#[cfg(target_os = "linux")]
pub(crate) fn wake_one(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit word; FUTEX_WAKE only reads
    // its address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        )
    };
}

/// The heavy side of an asymmetric fence (light side:
/// [`crate::sync::light_fence`]): every thread of the process that is
/// running executes a full memory barrier before this returns
/// (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, registered when the
/// kernel first refuses it as unregistered; a forked child inherits the
/// registration). So a
/// store made before the call is seen by each other thread's next
/// instruction after its barrier, and each other thread's stores before its
/// barrier are seen after the call. False when there is no such barrier
/// (a kernel before 4.14, a sandbox that forbids it, or a build for
/// ThreadSanitizer, which cannot see it): the caller must then do without.
#[cfg(target_os = "linux")]
#[cfg(not(any(loom, miri, hotpool_tsan)))]
pub(crate) fn membarrier() -> bool {
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    let barrier = || {
        // SAFETY: membarrier takes a command and flags by value and touches
        // no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0) == 0 }
    };
    if barrier() {
        return true;
    }
    // Not registered yet (EPERM): register, then try once more.
    // SAFETY: as above.
    let registered =
        unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0) == 0 };
    registered && barrier()
}

/// Under Miri and ThreadSanitizer: no barrier they could see.
#[cfg(target_os = "linux")]
#[cfg(all(not(loom), any(miri, hotpool_tsan)))]
pub(crate) fn membarrier() -> bool {
    false
}

/// Under loom: a `SeqCst` fence, which with the light side's
/// ([`crate::sync::light_fence`]) gives the barrier's guarantee in the
/// model.
#[cfg(loom)]
pub(crate) fn membarrier() -> bool {
    loom::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    true
}

/// Creates a pthread key whose `dtor` runs at thread exit for threads that
/// set a non-null value. Returns `None` if the system is out of keys.
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
pub(crate) fn thread_key_create(
    dtor: unsafe extern "C" fn(*mut libc::c_void),
) -> Option<libc::pthread_key_t> {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; `dtor` is a valid destructor.
    let rc = unsafe { libc::pthread_key_create(&mut key, Some(dtor)) };
    (rc == 0).then_some(key)
}

/// Sets the calling thread's value of `key`, arming its destructor.
#[cfg(target_os = "linux")]
#[cfg(not(loom))]
pub(crate) fn thread_key_set(key: libc::pthread_key_t, value: *mut libc::c_void) {
    // SAFETY: `key` came from `thread_key_create`; the value is opaque to
    // pthread and only handed back to our destructor.
    unsafe { libc::pthread_setspecific(key, value) };
}

/// Registers fork handlers (`pthread_atfork`); returns whether it worked.
#[cfg(unix)]
#[cfg(not(loom))]
pub(crate) fn at_fork(
    prepare: unsafe extern "C" fn(),
    parent: unsafe extern "C" fn(),
    child: unsafe extern "C" fn(),
) -> bool {
    // SAFETY: the handlers are valid `extern "C"` functions for the life of
    // the process.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
}

/// Windows has no `fork`, so there is nothing to prepare for: the handlers
/// are never called, and registering them succeeds.
#[cfg(all(windows, not(loom)))]
pub(crate) fn at_fork(
    _prepare: unsafe extern "C" fn(),
    _parent: unsafe extern "C" fn(),
    _child: unsafe extern "C" fn(),
) -> bool {
    true
}

/// Registers `f` to run at process exit (`atexit`).
pub(crate) fn at_exit(f: extern "C" fn()) -> bool {
    // SAFETY: `f` is a valid function for the life of the process.
    unsafe { libc::atexit(f) == 0 }
}

/// A pipe for a signal handler to wake a thread: `(read end, write end)`,
/// both close-on-exec; the write end never blocks (a full pipe drops the
/// byte).
#[cfg(target_os = "linux")]
pub(crate) fn signal_pipe() -> Option<(i32, i32)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: `fds[1]` is the pipe's write end, just opened.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    Some((fds[0], fds[1]))
}

/// Closes a file descriptor (async-signal-safe).
#[cfg(target_os = "linux")]
pub(crate) fn close(fd: i32) {
    // SAFETY: closing a descriptor we opened and no longer use.
    unsafe { libc::close(fd) };
}

/// Blocks until one byte arrives on `fd` and returns it; `None` at end of
/// file or on an error other than an interruption.
#[cfg(target_os = "linux")]
pub(crate) fn read_byte(fd: i32) -> Option<u8> {
    let mut b = 0u8;
    loop {
        // SAFETY: `b` is a valid one-byte buffer.
        let n = unsafe { libc::read(fd, (&raw mut b).cast(), 1) };
        if n == 1 {
            return Some(b);
        }
        // SAFETY: reading the calling thread's errno.
        if n == 0 || unsafe { *libc::__errno_location() } != libc::EINTR {
            return None;
        }
    }
}

/// Writes the byte `b` to `fd` from a signal handler: `write(2)` is
/// async-signal-safe, and the interrupted code's `errno` is kept.
#[cfg(target_os = "linux")]
pub(crate) fn write_byte_in_handler(fd: i32, b: u8) {
    // SAFETY: the thread's errno location is valid for the thread's life.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    // SAFETY: a valid one-byte buffer; a failed write (full pipe) drops it.
    unsafe { libc::write(fd, [b].as_ptr().cast(), 1) };
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// Why [`catch_signal`] left a signal alone.
#[cfg(target_os = "linux")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotCaught {
    /// The program already handles or ignores it.
    Taken,
    /// `sigaction` failed.
    Failed,
}

/// Makes `handler` run on `sig` (restarting interrupted system calls), if
/// `sig` still has its default action; a handler or an "ignore" the
/// program set is left alone.
#[cfg(target_os = "linux")]
pub(crate) fn catch_signal(sig: i32, handler: extern "C" fn(i32)) -> Result<(), NotCaught> {
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask).
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into `old`.
    if unsafe { libc::sigaction(sig, core::ptr::null(), &mut old) } != 0 {
        return Err(NotCaught::Failed);
    }
    if old.sa_sigaction != libc::SIG_DFL {
        return Err(NotCaught::Taken);
    }
    // SAFETY: as above.
    let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
    new.sa_sigaction = handler as libc::sighandler_t;
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: `new.sa_mask` is a valid sigset_t to clear.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: `new` is a fully initialised action; `handler` lives forever.
    if unsafe { libc::sigaction(sig, &new, core::ptr::null_mut()) } != 0 {
        return Err(NotCaught::Failed);
    }
    Ok(())
}

/// Starts a detached OS thread running `f(null)` directly with
/// `pthread_create` (std's `thread::spawn` would allocate through the
/// global allocator). Returns whether the thread started.
#[cfg(target_os = "linux")]
pub(crate) fn spawn_detached(f: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void) -> bool {
    // Uninitialised: `pthread_t` is an integer on glibc, a pointer on musl.
    let mut tid = core::mem::MaybeUninit::<libc::pthread_t>::uninit();
    // The thread starts with every signal blocked (it inherits the mask in
    // force at creation), so that no signal meant for the program's own
    // threads is delivered to one of ours.
    let mut all = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = core::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: `all` is a valid out-pointer that sigfillset initialises;
    // `old` receives the calling thread's mask.
    let masked = unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), old.as_mut_ptr()) == 0
    };
    // SAFETY: `tid` is a valid out-pointer; default attributes (null), a
    // valid entry point and argument.
    let rc = unsafe {
        libc::pthread_create(
            tid.as_mut_ptr(),
            core::ptr::null(),
            f,
            core::ptr::null_mut(),
        )
    };
    if masked {
        // SAFETY: `old` was written by the successful pthread_sigmask above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), core::ptr::null_mut()) };
    }
    if rc != 0 {
        return false;
    }
    // SAFETY: pthread_create succeeded, so it wrote `tid`: a thread we just
    // created and nobody joins.
    unsafe { libc::pthread_detach(tid.assume_init()) };
    true
}

// ---------------------------------------------------------------------------
// Under `--cfg loom` (the arena's loom models, `tests/loom_arena.rs`): memory
// is still mapped by the functions above, which record it so that each loom
// execution starts afresh (`crate::sync::loom_arena`); the calls below are
// replaced, because a model must replay identically, and its threads are
// loom's.
// ---------------------------------------------------------------------------

/// Under loom: the mapping record would go stale; never in place.
///
/// # Safety
/// As the real one.
#[cfg(loom)]
pub(crate) unsafe fn remap_in_place(_ptr: *mut u8, _old: usize, _new: usize) -> bool {
    false
}

/// Under loom: the mapping records would go stale; never moved.
///
/// # Safety
/// As the real one.
#[cfg(loom)]
pub(crate) unsafe fn remap_onto(_old: *mut u8, _len: usize, _new: *mut u8) -> bool {
    false
}

/// Under loom time stands still, so that every run of an execution
/// takes the same decisions.
#[cfg(loom)]
pub(crate) fn now_ms() -> u64 {
    0
}

/// Under loom: one process.
#[cfg(loom)]
pub(crate) fn pid() -> u32 {
    1
}

/// Under loom: lets loom's scheduler run another modelled thread.
#[cfg(loom)]
pub(crate) fn yield_now() {
    loom::thread::yield_now();
}

/// Under loom: one key whose destructor runs when a modelled thread ends.
#[cfg(loom)]
pub(crate) fn thread_key_create(
    dtor: unsafe extern "C" fn(*mut libc::c_void),
) -> Option<libc::pthread_key_t> {
    crate::sync::loom_arena::thread_key_create(dtor)
}

/// Under loom: arms the modelled thread's exit hook.
#[cfg(loom)]
pub(crate) fn thread_key_set(_key: libc::pthread_key_t, value: *mut libc::c_void) {
    crate::sync::loom_arena::thread_key_set(value);
}

/// Under loom each execution starts the allocator anew: no handlers are
/// registered (a model calls them itself).
#[cfg(loom)]
pub(crate) fn at_fork(
    _prepare: unsafe extern "C" fn(),
    _parent: unsafe extern "C" fn(),
    _child: unsafe extern "C" fn(),
) -> bool {
    true
}

#[cfg(all(test, target_os = "linux", not(loom)))]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no sigaction")]
    fn catch_signal_leaves_a_handled_or_ignored_signal_alone() {
        extern "C" fn theirs(_: i32) {}
        extern "C" fn ours(_: i32) {}
        // SIGURG's default action is to do nothing: safe to play with.
        let sig = libc::SIGURG;
        let set = |h: libc::sighandler_t| {
            // SAFETY: setting a disposition of SIGURG, which no other test uses.
            unsafe { libc::signal(sig, h) }
        };
        let (theirs_h, ours_h) = (
            theirs as extern "C" fn(i32) as libc::sighandler_t,
            ours as extern "C" fn(i32) as libc::sighandler_t,
        );
        set(theirs_h);
        assert_eq!(catch_signal(sig, ours), Err(NotCaught::Taken));
        assert_eq!(set(libc::SIG_IGN), theirs_h);
        assert_eq!(catch_signal(sig, ours), Err(NotCaught::Taken));
        assert_eq!(set(libc::SIG_DFL), libc::SIG_IGN);
        assert_eq!(catch_signal(sig, ours), Ok(()));
        assert_eq!(set(libc::SIG_DFL), ours_h);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no pipe2")]
    fn the_signal_pipe_carries_bytes_and_the_handler_keeps_errno() {
        let (read, write) = signal_pipe().unwrap();
        // SAFETY: the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::EAGAIN + 1000 };
        write_byte_in_handler(write, 7);
        // SAFETY: as above.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EAGAIN + 1000);
        assert_eq!(read_byte(read), Some(7));
        close(write);
        assert!(
            read_byte(read).is_none(),
            "end of file once the write end is closed"
        );
        close(read);
    }
}
