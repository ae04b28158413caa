//! The one thread-local word of the arena allocator: the calling thread's
//! cache pointer ([`super::tcache`]).
//!
//! By default it is a `thread_local!`: in an executable the linker gives
//! it the local-exec model, one load through `%fs`. A `thread_local!`
//! compiled into a shared library (the `hotpool-malloc` cdylib) uses the
//! general-dynamic model instead: every access calls `__tls_get_addr`,
//! about a dozen instructions plus a call, on each `malloc` and each
//! `free`. Stable Rust cannot ask for another model, so with the
//! `initial-exec-tls` feature (on x86-64 Linux) the word is declared in
//! assembly as an initial-exec TLS symbol and read with two instructions
//! (`mov` of its offset from the GOT, `mov` through `%fs`). A shared
//! library using it is marked `DF_STATIC_TLS`: it still loads with
//! `LD_PRELOAD` or at startup, and by `dlopen` while glibc's static TLS
//! surplus has 8 bytes to spare (as jemalloc's and mimalloc's initial-exec
//! variables do). In an executable the feature costs an instruction per
//! access (`cache-scratch` in `hotpool-bench/benches/arena.rs`: 4.56-4.73 ns against
//! 4.37-4.45 ns without it).
//!
//! Without the feature, the entry points that read the word
//! (`HotAlloc`'s `GlobalAlloc` and allocator-api2 methods) are
//! `#[inline]`: compiled into the calling crate, an executable's, their
//! access is local-exec. Compiled in hotpool's own crate (an rlib, built
//! position-independent), it is general-dynamic: the linker rewrites the
//! `__tls_get_addr` call into the `%fs` load, but the code around it was
//! laid out for a call and saves registers around it (up to four on
//! allocator-api2 `allocate`'s fast path).
//!
//! The symbol's name carries the crate version, so two versions of hotpool
//! linked into one program keep separate words. Under loom the word is a
//! `loom::thread_local!` (through [`crate::sync`]).

#[cfg(all(
    feature = "initial-exec-tls",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri),
    not(loom)
))]
mod imp {
    use core::arch::{asm, global_asm};

    // An 8-byte, zero-initialised TLS object, global (so that code in every
    // codegen unit can name it) but hidden (never exported from a shared
    // library, never interposed).
    global_asm!(
        concat!(
            ".pushsection .tbss.hotpool_tcache_",
            env!("CARGO_PKG_VERSION"),
            ",\"awT\",@nobits"
        ),
        ".p2align 3",
        concat!(".globl hotpool_tcache_", env!("CARGO_PKG_VERSION")),
        concat!(".hidden hotpool_tcache_", env!("CARGO_PKG_VERSION")),
        concat!(
            ".type hotpool_tcache_",
            env!("CARGO_PKG_VERSION"),
            ",@tls_object"
        ),
        concat!(".size hotpool_tcache_", env!("CARGO_PKG_VERSION"), ",8"),
        concat!("hotpool_tcache_", env!("CARGO_PKG_VERSION"), ":"),
        ".zero 8",
        ".popsection",
    );

    /// The calling thread's word (null until [`set`]).
    #[inline(always)]
    pub(crate) fn get() -> *mut u8 {
        let v: *mut u8;
        // SAFETY: reads this thread's copy of the 8-byte TLS object defined
        // above: its thread-pointer offset comes from the GOT (initial-exec
        // relocation), and `%fs` is the thread pointer on x86-64 Linux, set
        // before any code of the thread runs. Touches no other memory.
        unsafe {
            asm!(
                concat!("mov {v}, qword ptr [rip + hotpool_tcache_", env!("CARGO_PKG_VERSION"), "@GOTTPOFF]"),
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
        v
    }

    /// Sets the calling thread's word.
    #[inline(always)]
    pub(crate) fn set(v: *mut u8) {
        // SAFETY: writes this thread's copy of the TLS object above (see
        // `get`); no other memory is touched and no other thread sees it.
        unsafe {
            asm!(
                concat!("mov {t}, qword ptr [rip + hotpool_tcache_", env!("CARGO_PKG_VERSION"), "@GOTTPOFF]"),
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(
    feature = "initial-exec-tls",
    target_arch = "x86_64",
    target_os = "linux",
    not(miri),
    not(loom)
)))]
mod imp {
    use core::cell::Cell;
    use core::ptr::null_mut;

    // Under loom, loom's (one word per modelled thread).
    crate::sync::thread_local! {
        // Const-initialised, no `Drop`: no destructor registration, which
        // could allocate.
        static WORD: Cell<*mut u8> = const { Cell::new(null_mut()) };
    }

    /// The calling thread's word (null until [`set`]).
    #[inline(always)]
    pub(crate) fn get() -> *mut u8 {
        WORD.with(Cell::get)
    }

    /// Sets the calling thread's word.
    #[inline(always)]
    pub(crate) fn set(v: *mut u8) {
        // Never fails with std's word (no destructor); loom's is gone when
        // the exit hook, another thread-local's destructor, runs: the
        // thread is ending then and its word is read no more.
        let _ = WORD.try_with(|w| w.set(v));
    }
}

pub(crate) use imp::{get, set};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_has_its_own_word() {
        // The arena may have set this thread's word already: restore it.
        let before = get();
        const MINE: usize = 0x1234;
        let mine = MINE as *mut u8;
        set(mine);
        assert_eq!(get(), mine);
        std::thread::spawn(move || {
            assert_ne!(
                get() as usize,
                MINE,
                "a new thread sees another thread's word"
            );
            let other = 0x5678_usize as *mut u8;
            let saved = get();
            set(other);
            assert_eq!(get(), other);
            set(saved);
        })
        .join()
        .unwrap();
        assert_eq!(get(), mine);
        set(before);
    }
}
