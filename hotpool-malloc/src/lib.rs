//! hotpool's arena allocator behind the C allocation interface, as a shared
//! library any program can load without being rebuilt:
//!
//! ```sh
//! cargo build --release -p hotpool-malloc
//! LD_PRELOAD=target/release/libhotpool_malloc.so python3 -c 'print(sum(range(10**6)))'
//! HOTPOOL_CONF=stats_print:true LD_PRELOAD=target/release/libhotpool_malloc.so git --version
//! ```
//!
//! Every function follows glibc's rules (2.38 for `aligned_alloc`):
//!
//! | call | on failure / odd input |
//! |---|---|
//! | `malloc`, `calloc`, `realloc`, `reallocarray` | `NULL`, `errno = ENOMEM` (also for overflowing products) |
//! | `malloc(0)` | a unique minimal block |
//! | `free(NULL)` | nothing |
//! | `realloc(NULL, n)` | `malloc(n)` |
//! | `realloc(p, 0)` | frees `p`, returns `NULL` |
//! | `posix_memalign` | `EINVAL` (returned) unless the alignment is a power of two multiple of `sizeof(void *)`; `ENOMEM` |
//! | `aligned_alloc` | `NULL`, `EINVAL` unless the alignment is a power of two |
//! | `memalign` | alignment rounded up to a power of two; `EINVAL` above `SIZE_MAX / 2 + 1` |
//! | `valloc`, `pvalloc` | page-aligned; `pvalloc` rounds the size up to pages |
//! | `malloc_usable_size(NULL)` | 0 |
//!
//! Blocks are 16-byte aligned (as glibc's on x86-64). C++ `operator
//! new`/`delete` reach these through libstdc++. A pointer this allocator
//! did not hand out, passed to `free`, `realloc` or `malloc_usable_size`,
//! is reported on stderr and the process aborts (see
//! [`hotpool::arena::owns`]) rather than corrupting memory.
//!
//! A panic cannot unwind out of these functions: an `extern "C"` function
//! that panics aborts the process.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "linux"))]
mod refused {
    /// The target, as the message below names it.
    #[cfg(target_os = "macos")]
    macro_rules! target {
        () => {
            "macOS"
        };
    }
    #[cfg(windows)]
    macro_rules! target {
        () => {
            "Windows"
        };
    }
    #[cfg(target_os = "freebsd")]
    macro_rules! target {
        () => {
            "FreeBSD"
        };
    }
    #[cfg(target_os = "netbsd")]
    macro_rules! target {
        () => {
            "NetBSD"
        };
    }
    #[cfg(not(any(
        target_os = "macos",
        windows,
        target_os = "freebsd",
        target_os = "netbsd"
    )))]
    macro_rules! target {
        () => {
            "an OS other than Linux"
        };
    }
    compile_error!(concat!(
        "hotpool-malloc is not supported on this target (",
        target!(),
        "): it replaces the C library's malloc through LD_PRELOAD and is \
         built on hotpool's arena allocator, which needs target_os = \"linux\""
    ));
}

use core::ffi::{c_int, c_void};
use core::ptr::{null_mut, NonNull};

use hotpool::arena;

// The library's own Rust code (the statistics report at exit) allocates
// from the arenas directly.
#[global_allocator]
static GLOBAL: hotpool::HotAlloc = hotpool::HotAlloc;

/// The alignment of every block (glibc's `MALLOC_ALIGNMENT` on 64-bit).
const MIN_ALIGN: usize = 16;

fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// `p` or, for an error, `NULL` with `errno = ENOMEM`.
fn or_enomem<E>(r: Result<NonNull<u8>, E>) -> *mut c_void {
    match r {
        Ok(p) => p.as_ptr().cast(),
        Err(_) => {
            set_errno(libc::ENOMEM);
            null_mut()
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// The block at `p`, after checking it is one of ours; a foreign pointer
/// is reported (`what` names the call) and the process aborts.
///
/// # Safety
/// `p` is either a live block the caller owns or not arena memory at all.
unsafe fn checked(p: *mut c_void, what: &[u8]) -> NonNull<u8> {
    let p = p.cast::<u8>();
    // SAFETY: the caller's contract is `owns`'s.
    let ours = unsafe { arena::owns(p) };
    match NonNull::new(p) {
        Some(nn) if ours => nn,
        _ => foreign(p as usize, what),
    }
}

/// Reports a pointer not from this allocator and aborts. One `writev(2)`
/// of stack data: no allocation, one line even with other threads writing.
#[cold]
fn foreign(addr: usize, what: &[u8]) -> ! {
    let mut hex = [0u8; 16];
    for (i, h) in hex.iter_mut().enumerate() {
        *h = b"0123456789abcdef"[(addr >> (60 - 4 * i)) & 15];
    }
    let parts: [&[u8]; 5] = [
        b"hotpool-malloc: ",
        what,
        b"(0x",
        &hex,
        b"): pointer not allocated by hotpool; aborting\n",
    ];
    let iov = parts.map(|p| libc::iovec {
        iov_base: p.as_ptr() as *mut c_void,
        iov_len: p.len(),
    });
    // SAFETY: every iovec describes a live, readable slice (writev only
    // reads them); abort has no preconditions.
    unsafe {
        libc::writev(2, iov.as_ptr(), iov.len() as c_int);
        libc::abort()
    }
}

/// C `malloc`: `size` bytes, 16-aligned; `NULL` and `ENOMEM` on failure.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let p = arena::malloc(size);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// C `calloc`: `n * size` zeroed bytes; `ENOMEM` also when the product
/// overflows.
#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    or_enomem(arena::calloc(n, size))
}

/// C `free`; `NULL` is ignored.
///
/// # Safety
/// `p` is `NULL` or a live block of this allocator, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: the caller's contract (a live block, or a foreign pointer,
    // which is refused before anything is written).
    if !unsafe { arena::free_if_owned(p.cast()) } {
        foreign(p as usize, b"free")
    }
}

/// C `realloc` (glibc's rules for `NULL` and 0).
///
/// # Safety
/// `p` is `NULL` or a live block of this allocator; on success it must not
/// be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    // SAFETY: the caller's contract.
    let block = unsafe { checked(p, b"realloc") };
    if size == 0 {
        // SAFETY: as above; glibc frees and returns NULL.
        unsafe { arena::free(block) };
        return null_mut();
    }
    // SAFETY: as above.
    or_enomem(unsafe { arena::realloc(block, size) })
}

/// C `reallocarray`: `realloc(p, n * size)`, `ENOMEM` if the product
/// overflows (the block is kept).
///
/// # Safety
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: the caller's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            null_mut()
        }
    }
}

/// C `posix_memalign`: 0, `EINVAL` (alignment not a power of two multiple
/// of `sizeof(void *)`) or `ENOMEM`; `*out` is written only on success.
///
/// # Safety
/// `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    match arena::try_alloc(size, align.max(MIN_ALIGN)) {
        Ok(p) => {
            // SAFETY: the caller's contract.
            unsafe { out.write(p.as_ptr().cast()) };
            0
        }
        Err(_) => libc::ENOMEM,
    }
}

/// C11 `aligned_alloc`: `NULL` and `EINVAL` unless `align` is a power of
/// two (glibc 2.38's rule; the size need not be a multiple of it).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return null_mut();
    }
    or_enomem(arena::try_alloc(size, align.max(MIN_ALIGN)))
}

/// Obsolete `memalign`, as glibc: an alignment that is not a power of two
/// is rounded up to one; above `SIZE_MAX / 2 + 1` it is `EINVAL`.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.checked_next_power_of_two() {
        Some(a) => or_enomem(arena::try_alloc(size, a.max(MIN_ALIGN))),
        None => {
            set_errno(libc::EINVAL);
            null_mut()
        }
    }
}

/// Obsolete `valloc`: `size` bytes aligned to a page.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    or_enomem(arena::try_alloc(size, page_size()))
}

/// Obsolete `pvalloc`: `size` rounded up to whole pages (at least one),
/// page-aligned; `ENOMEM` if the rounding overflows.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.max(1).checked_add(page - 1) {
        Some(s) => or_enomem(arena::try_alloc(s & !(page - 1), page)),
        None => {
            set_errno(libc::ENOMEM);
            null_mut()
        }
    }
}

/// glibc's `malloc_usable_size`: bytes usable at `p` (0 for `NULL`).
///
/// # Safety
/// `p` is `NULL` or a live block of this allocator.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: the caller's contract.
    unsafe { arena::usable_size(checked(p, b"malloc_usable_size")) }
}

/// glibc's `malloc_trim`: flushes the caller's thread cache and gives every
/// free page back to the OS ([`hotpool::arena::trim`]); returns 1.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    arena::trim();
    1
}
