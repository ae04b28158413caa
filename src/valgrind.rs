//! Valgrind client requests, so memcheck sees hotpool's blocks as heap
//! blocks: `MALLOCLIKE_BLOCK` when one is handed out, `FREELIKE_BLOCK` when
//! it comes back (its bytes then count as freed: a later access is an
//! "Invalid read/write"), and the memcheck requests that mark memory
//! defined again when hotpool itself needs to read it.
//!
//! A request is valgrind's "special instruction preamble" (four rotations
//! of `rdi` by 128 bits in total, then `xchg rbx, rbx`) with `rax` pointing
//! at the request and its arguments. Natively it does nothing and costs a
//! few instructions; under valgrind the emulator recognises it. Only
//! x86_64 Linux is wired up; elsewhere every request is a no-op. Compiled
//! only with the `checks` cfg, and issued only while the checks are on.

/// `VG_USERREQ__MALLOCLIKE_BLOCK` (valgrind.h).
const MALLOCLIKE_BLOCK: usize = 0x1301;
/// `VG_USERREQ__FREELIKE_BLOCK`.
const FREELIKE_BLOCK: usize = 0x1302;
/// `VG_USERREQ__RESIZEINPLACE_BLOCK`.
#[cfg(target_os = "linux")]
const RESIZEINPLACE_BLOCK: usize = 0x130b;
/// `VG_USERREQ__MAKE_MEM_DEFINED` (memcheck.h: tool base 'M','C' + 2).
const MAKE_MEM_DEFINED: usize = 0x4d43_0002;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
fn request(code: usize, a1: usize, a2: usize, a3: usize, a4: usize) {
    let args: [usize; 6] = [code, a1, a2, a3, a4, 0];
    // SAFETY: the sequence rotates rdi by 128 bits in all (leaving it as it
    // was) and exchanges rbx with itself: natively it changes nothing but
    // flags. Under valgrind it reads `args` (alive across the asm) and
    // writes the result to rdx, which is declared clobbered.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") 0usize => _,
            options(nostack),
        );
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
#[inline(always)]
fn request(_code: usize, _a1: usize, _a2: usize, _a3: usize, _a4: usize) {}

/// `len` bytes at `p` are now a live heap block (undefined unless `zeroed`).
#[inline]
pub(crate) fn malloclike(p: *const u8, len: usize, zeroed: bool) {
    request(MALLOCLIKE_BLOCK, p as usize, len, 0, usize::from(zeroed));
}

/// The block at `p` is freed: its bytes become inaccessible.
#[inline]
pub(crate) fn freelike(p: *const u8) {
    request(FREELIKE_BLOCK, p as usize, 0, 0, 0);
}

/// The block at `p` changed size in place (arena reallocation).
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn resized(p: *const u8, old: usize, new: usize) {
    request(RESIZEINPLACE_BLOCK, p as usize, old, new, 0);
}

/// `len` bytes at `p` become accessible and defined (hotpool's own reads
/// and writes of freed memory).
#[inline]
pub(crate) fn make_defined(p: *const u8, len: usize) {
    request(MAKE_MEM_DEFINED, p as usize, len, 0, 0);
}
