//! The run-time debug modes of `HOTPOOL_CONF`: leak report, allocation-site
//! capture and (with the `checks` cfg) junk filling and free checks.
//!
//! The mode is read once, at the first pool slow path or arena start-up.
//! When any per-object mode is on, pools *bypass* their thread caches:
//! entries are never bound, so the allocation and free fast paths always
//! miss and every object goes through the slow path, where the modes act.
//! The fast paths therefore carry no check at all, whether the modes are
//! compiled in or not; the slow paths pay one relaxed load.

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering::*};
use std::backtrace::Backtrace;
use std::collections::BTreeMap;

use parking_lot::Mutex;

/// The mode word has been read from `HOTPOOL_CONF`.
const READ: u8 = 1;
/// Pools bypass their thread caches.
const BYPASS: u8 = 2;
/// Pool allocation sites are recorded.
const BACKTRACE: u8 = 4;
/// Freed memory is poisoned and checked (`junk:true`, or `checks:true`).
pub(crate) const JUNK: u8 = 8;
/// Frees through raw APIs are validated; valgrind is told about blocks.
pub(crate) const CHECKS: u8 = 16;

static MODE: AtomicU8 = AtomicU8::new(0);

/// The mode bits, reading `HOTPOOL_CONF` the first time.
#[inline]
pub(crate) fn mode() -> u8 {
    let m = MODE.load(Relaxed);
    if m & READ != 0 {
        m
    } else {
        init()
    }
}

/// Whether pools must bypass their thread caches.
#[inline]
pub(crate) fn bypass() -> bool {
    mode() & BYPASS != 0
}

#[cold]
fn init() -> u8 {
    let conf = crate::config::from_env();
    let mut m = READ;
    if conf.leak_backtrace {
        m |= BYPASS | BACKTRACE;
    }
    if conf.junk || conf.checks {
        if cfg!(any(feature = "checks", debug_assertions)) {
            m |= BYPASS | JUNK;
            if conf.checks {
                m |= CHECKS;
            }
        } else {
            crate::sys::write_stderr(
                b"hotpool: HOTPOOL_CONF: junk and checks need the `checks` feature or a debug build; ignored\n",
            );
        }
    }
    // Published before the exit hook is registered: `atexit` may allocate,
    // and an allocator call from there must see the mode already read.
    match MODE.compare_exchange(0, m, Relaxed, Relaxed) {
        Ok(_) => {
            if conf.leak_report {
                crate::sys::at_exit(print_leaks_at_exit);
            }
            m
        }
        Err(current) => current,
    }
}

/// The leak report printed at exit with `HOTPOOL_CONF=leak_report`: a
/// `fn()` registered by the pool layer ([`set_leak_report`]), which this
/// module, below it, cannot name.
static LEAK_REPORT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the function that prints the leak report at exit.
pub(crate) fn set_leak_report(report: fn()) {
    LEAK_REPORT.store(report as *mut (), Release);
}

/// The heap half of the leak report: a `fn()` registered by the arena
/// when its profiler runs ([`set_heap_leak_report`]).
static HEAP_LEAK_REPORT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the function that prints the heap's live allocation sites
/// after the pools' leaks at exit, and makes sure the exit hook is armed
/// when `leak_report` is on (a program under `LD_PRELOAD` has no pools to
/// read the mode).
#[cfg(target_os = "linux")]
pub(crate) fn set_heap_leak_report(report: fn()) {
    HEAP_LEAK_REPORT.store(report as *mut (), Release);
    mode();
}

extern "C" fn print_leaks_at_exit() {
    for hook in [&LEAK_REPORT, &HEAP_LEAK_REPORT] {
        let report = hook.load(Acquire);
        if !report.is_null() {
            // SAFETY: the setters store nothing but `fn()` pointers, and a
            // function pointer survives the round trip through a data
            // pointer on every platform Rust supports.
            let report: fn() = unsafe { core::mem::transmute(report) };
            report();
        }
    }
}

/// Allocation sites of live pool objects: address -> (pool serial, stack).
static SITES: Mutex<BTreeMap<usize, (u32, Backtrace)>> = Mutex::new(BTreeMap::new());

/// Records where the object at `obj` of the pool with `serial` was made.
pub(crate) fn record_site(obj: *const u8, serial: u32) {
    if mode() & BACKTRACE != 0 {
        let bt = Backtrace::force_capture();
        SITES.lock().insert(obj as usize, (serial, bt));
    }
}

/// Whether allocation sites are recorded (`HOTPOOL_CONF=leak_backtrace`).
pub(crate) fn records_sites() -> bool {
    mode() & BACKTRACE != 0
}

/// Forgets the site of a freed object.
pub(crate) fn forget_site(obj: *const u8) {
    if mode() & BACKTRACE != 0 {
        SITES.lock().remove(&(obj as usize));
    }
}

/// The recorded sites of the live objects of the pool with `serial`, as
/// `(objects, stack)` with the most frequent first. Allocates (the stacks
/// are symbolised and grouped as text) when sites are recorded; without
/// `leak_backtrace` it returns an empty list and allocates nothing.
pub(crate) fn sites_of(serial: u32) -> Vec<(usize, String)> {
    let mut by_stack: BTreeMap<String, usize> = BTreeMap::new();
    for (s, bt) in SITES.lock().values() {
        if *s == serial {
            *by_stack.entry(caller_frames(bt)).or_default() += 1;
        }
    }
    let mut out: Vec<(usize, String)> = by_stack.into_iter().map(|(k, n)| (n, k)).collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    out
}

/// The frames of `bt` from the caller of hotpool on, at most 8. A frame
/// is its numbered line plus its `at file:line` line.
fn caller_frames(bt: &Backtrace) -> String {
    let text = bt.to_string();
    let mut frames: Vec<String> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let numbered = trimmed
            .split_once(": ")
            .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            frames.push(trimmed.to_string());
        } else if let Some(last) = frames.last_mut() {
            last.push_str("\n    ");
            last.push_str(trimmed);
        }
    }
    // The leading frames are the capture machinery, hotpool, and the
    // standard library code hotpool calls through (thread-locals).
    let internal = |f: &String| {
        let name = f.split_once(": ").map_or("", |(_, n)| n);
        let name = name.trim_start_matches('<');
        ["hotpool::", "std::", "core::", "alloc::"]
            .iter()
            .any(|p| name.starts_with(p))
    };
    let first = frames.iter().position(|f| !internal(f)).unwrap_or(0);
    frames[first..]
        .iter()
        .take(8)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}
