//! Arena statistics, read without stopping anyone: arena counters are
//! relaxed atomics, thread-cache counters are summed on read.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering::*};
use std::fmt::Write as _;

use super::chunk::{CHUNK, HEADER_PAGES};
use super::huge::{HUGE_BYTES, HUGE_MAPPED, HUGE_NFREE, HUGE_NMALLOC};
use super::init;
use super::size_class::{CLASS_SIZE, NCLASSES, NSMALL, PAGE};
use super::tcache;
use crate::sys;

/// Figures of one size class.
///
/// ```
/// let s = hotpool::arena::stats();
/// assert!(s.classes.iter().all(|c| c.current == c.nmalloc.saturating_sub(c.nfree)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// The class's object size, bytes.
    pub size: usize,
    /// Whether the class is small (slab regions) rather than large (page runs).
    pub small: bool,
    /// Objects handed to users, cumulative.
    pub nmalloc: u64,
    /// Objects given back by users, cumulative.
    pub nfree: u64,
    /// Objects users hold now (`nmalloc - nfree`).
    pub current: u64,
    /// Free objects held in threads' caches (counted as freed in `nfree`).
    pub cached: u64,
    /// Free objects parked in the arenas' depots between thread caches and
    /// slabs (counted as freed in `nfree`; not in `cached`).
    pub parked: u64,
}

/// A snapshot of the arena allocator; see [`crate::arena`] for the table of
/// meanings.
///
/// ```
/// let s = hotpool::arena::stats();
/// assert!(s.mapped >= s.metadata);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Bytes in objects users hold (class sizes; huge: page-rounded).
    pub allocated: usize,
    /// Bytes of pages in slabs and large runs, plus huge objects.
    pub active: usize,
    /// Upper estimate of resident bytes: active + dirty + metadata.
    pub resident: usize,
    /// Bytes mapped: chunks, huge mappings, metadata.
    pub mapped: usize,
    /// Bytes of metadata: base blocks and chunk headers.
    pub metadata: usize,
    /// Bytes of free pages not yet purged.
    pub dirty: usize,
    /// Pages purged, cumulative, in bytes.
    pub purged: u64,
    /// Bytes of free objects held in threads' caches (class sizes), all
    /// threads together; each thread holds at most `tcache_bytes` (see
    /// [`crate::config`]). Counted as free in `allocated` and `classes`,
    /// as part of `active` (their slabs and runs are in use).
    ///
    /// ```
    /// let s = hotpool::arena::stats();
    /// assert!(s.tcache_bytes <= s.active);
    /// ```
    pub tcache_bytes: usize,
    /// Bytes of free objects parked in the arenas' depots (class sizes),
    /// between the thread caches and the slabs: like `tcache_bytes`, free
    /// in `allocated` and `classes`, part of `active`; the background
    /// purger returns what no thread took since its last round.
    ///
    /// ```
    /// let s = hotpool::arena::stats();
    /// assert!(s.depot_bytes + s.tcache_bytes <= s.active);
    /// ```
    pub depot_bytes: usize,
    /// Bytes of free objects the background purger took back from the
    /// caches of threads that ran no allocator slow path for `decay_ms`
    /// (a thread blocked after a burst), cumulative.
    ///
    /// ```
    /// let s = hotpool::arena::stats();
    /// assert!(s.tcache_reclaimed <= s.classes.iter().map(|c| c.nfree * c.size as u64).sum());
    /// ```
    pub tcache_reclaimed: u64,
    /// Arenas threads attach to. (With the profiler on, one more holds
    /// the sampled small objects; the totals count it.)
    pub narenas: usize,
    /// Arenas open to new threads, at most `narenas`: with the default
    /// `narenas` (and thread caches on) one at the start, and one more when
    /// a thread that shares its arena keeps finding its bin locks held and
    /// no open arena has fewer threads; otherwise all.
    ///
    /// ```
    /// let s = hotpool::arena::stats();
    /// assert!((1..=s.narenas).contains(&s.arenas_open));
    /// ```
    pub arenas_open: usize,
    /// Huge allocations made, cumulative.
    pub huge_nmalloc: u64,
    /// Huge allocations freed, cumulative.
    pub huge_nfree: u64,
    /// One entry per size class, smallest first.
    pub classes: Vec<ClassStats>,
}

pub(crate) fn collect() -> ArenaStats {
    init::ensure_init();
    let mut nmalloc = [0u64; NCLASSES];
    let mut nfree = [0u64; NCLASSES];
    let (mut active, mut dirty, mut chunks, mut purged) = (0, 0, 0, 0);
    let mut parked = [0u64; NCLASSES];
    for i in 0..init::narenas() {
        let Some(a) = init::arena(i) else { continue };
        for (c, k) in parked.iter_mut().enumerate().take(NSMALL) {
            *k += a.depot_len(c) as u64;
        }
        for c in 0..NCLASSES {
            nmalloc[c] += a.nmalloc[c].load(Relaxed);
            nfree[c] += a.nfree[c].load(Relaxed);
        }
        active += a.active_pages.load(Relaxed) * PAGE;
        dirty += a.dirty_pages.load(Relaxed) * PAGE;
        chunks += a.nchunks.load(Relaxed);
        purged += a.purged_pages.load(Relaxed) * PAGE as u64;
    }
    tcache::sum_counts(&mut nmalloc, &mut nfree);
    let mut cached = [0u64; NCLASSES];
    tcache::sum_cached(&mut cached);
    let classes: Vec<ClassStats> = (0..NCLASSES)
        .map(|c| ClassStats {
            size: CLASS_SIZE[c],
            small: c < NSMALL,
            nmalloc: nmalloc[c],
            nfree: nfree[c],
            current: nmalloc[c].saturating_sub(nfree[c]),
            cached: cached[c],
            parked: parked[c],
        })
        .collect();
    let huge = HUGE_BYTES.load(Relaxed);
    let allocated = classes
        .iter()
        .map(|c| c.current as usize * c.size)
        .sum::<usize>()
        + huge;
    // Freed huge mappings kept for reuse are free pages not yet purged.
    let dirty = dirty + super::huge_cache::KEPT.load(Relaxed);
    let metadata = super::base::MAPPED.load(Relaxed) + chunks * HEADER_PAGES * PAGE;
    let active = active + huge;
    ArenaStats {
        allocated,
        active,
        resident: active + dirty + metadata,
        mapped: chunks * CHUNK + HUGE_MAPPED.load(Relaxed) + super::base::MAPPED.load(Relaxed),
        metadata,
        dirty,
        purged,
        tcache_bytes: (0..NCLASSES)
            .map(|c| cached[c] as usize * CLASS_SIZE[c])
            .sum(),
        depot_bytes: (0..NCLASSES)
            .map(|c| parked[c] as usize * CLASS_SIZE[c])
            .sum(),
        tcache_reclaimed: tcache::reclaimed_bytes(),
        narenas: init::thread_arenas(),
        arenas_open: init::open_arenas(),
        huge_nmalloc: HUGE_NMALLOC.load(Relaxed) as u64,
        huge_nfree: HUGE_NFREE.load(Relaxed) as u64,
        classes,
    }
}

pub(crate) fn stats_print(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let s = collect();
    let conf = init::conf();
    let mut t = String::new();
    let hb = crate::report::human_bytes;
    let _ = writeln!(t, "___ hotpool arena statistics ___");
    let _ = writeln!(
        t,
        "config: narenas:{} tcache:{} tcache_max:{} tcache_bytes:{} decay_ms:{} background_thread:{}",
        conf.narenas,
        conf.tcache,
        conf.tcache_max,
        conf.tcache_bytes,
        conf.decay_ms,
        conf.background_thread
    );
    for (name, v) in [
        ("allocated", s.allocated),
        ("active", s.active),
        ("resident", s.resident),
        ("mapped", s.mapped),
        ("metadata", s.metadata),
        ("dirty", s.dirty),
        ("tcache", s.tcache_bytes),
        ("depots", s.depot_bytes),
    ] {
        let _ = writeln!(t, "{name:<10} {:>12}  ({v} B)", hb(v));
    }
    let _ = writeln!(
        t,
        "reclaimed  {:>12}  ({} B, from quiet threads' caches)",
        hb(s.tcache_reclaimed as usize),
        s.tcache_reclaimed
    );
    let _ = writeln!(t, "arenas     {} of {} open", s.arenas_open, s.narenas);
    let _ = writeln!(
        t,
        "purged     {:>12}\nhuge       nmalloc {} nfree {}",
        hb(s.purged as usize),
        s.huge_nmalloc,
        s.huge_nfree
    );
    let _ = writeln!(
        t,
        "{:>8} {:>6} {:>12} {:>12} {:>10} {:>8} {:>8}",
        "size", "kind", "nmalloc", "nfree", "current", "cached", "parked"
    );
    for c in s.classes.iter().filter(|c| c.nmalloc > 0) {
        let _ = writeln!(
            t,
            "{:>8} {:>6} {:>12} {:>12} {:>10} {:>8} {:>8}",
            c.size,
            if c.small { "small" } else { "large" },
            c.nmalloc,
            c.nfree,
            c.current,
            c.cached,
            c.parked
        );
    }
    for (title, hook) in [("pools:", &REPORT_HOOK), ("handles:", &HANDLE_REPORT_HOOK)] {
        let hook = hook.load(Acquire);
        if !hook.is_null() {
            // SAFETY: the setters store nothing but `fn(&mut String)`
            // pointers, and a function pointer survives the round trip
            // through a data pointer on every platform Rust supports.
            let hook: fn(&mut String) = unsafe { core::mem::transmute(hook) };
            let _ = writeln!(t, "{title}");
            hook(&mut t);
        }
    }
    out.write_all(t.as_bytes())
}

/// What a layer above adds to [`stats_print`]: the pool layer registers
/// its pool table when it creates its first pool ([`set_report_hook`]).
static REPORT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// The handle layer's line in [`stats_print`], registered when the handle
/// table makes its first segment ([`set_handle_report_hook`]).
static HANDLE_REPORT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Makes [`stats_print`] end with `handles:` and what `hook` appends, after
/// the pool table (the handle layer is above the arena).
pub(crate) fn set_handle_report_hook(hook: fn(&mut String)) {
    HANDLE_REPORT_HOOK.store(hook as *mut (), Release);
}

/// Makes [`stats_print`] end with `pools:` and what `hook` appends. The
/// arena cannot name the pool layer above it, so the pool layer registers
/// its table here.
pub(crate) fn set_report_hook(hook: fn(&mut String)) {
    REPORT_HOOK.store(hook as *mut (), Release);
}

pub(crate) fn stats_json() -> String {
    let s = collect();
    let mut t = String::new();
    let _ = write!(
        t,
        "{{\"allocated\":{},\"active\":{},\"resident\":{},\"mapped\":{},\"metadata\":{},\"dirty\":{},\"purged\":{},\"tcache_bytes\":{},\"depot_bytes\":{},\"tcache_reclaimed\":{},\"narenas\":{},\"arenas_open\":{},\"huge\":{{\"nmalloc\":{},\"nfree\":{}}},\"classes\":[",
        s.allocated, s.active, s.resident, s.mapped, s.metadata, s.dirty, s.purged, s.tcache_bytes, s.depot_bytes, s.tcache_reclaimed, s.narenas, s.arenas_open,
        s.huge_nmalloc, s.huge_nfree
    );
    for (i, c) in s.classes.iter().enumerate() {
        let _ = write!(
            t,
            "{}{{\"size\":{},\"small\":{},\"nmalloc\":{},\"nfree\":{},\"current\":{},\"cached\":{},\"parked\":{}}}",
            if i == 0 { "" } else { "," },
            c.size,
            c.small,
            c.nmalloc,
            c.nfree,
            c.current,
            c.cached,
            c.parked
        );
    }
    t.push_str("]}");
    t
}

/// The last line of the report printed on `stats_signal`, so that a reader
/// of stderr knows the report is complete.
pub(crate) const SIGNAL_REPORT_END: &str = "___ end of hotpool statistics ___\n";

/// The pipe from the `stats_signal` handler to the thread that prints: its
/// read end and its write end; -1 for none.
static SIGNAL_READ: AtomicI32 = AtomicI32::new(-1);
static SIGNAL_WRITE: AtomicI32 = AtomicI32::new(-1);

/// Whether [`start_signal_report`] ran.
static SIGNAL_STARTED: AtomicBool = AtomicBool::new(false);

/// What a handler writes to the pipe: which report the thread makes.
const PRINT_STATS: u8 = b's';
const DUMP_PROFILE: u8 = b'p';

/// `HOTPOOL_CONF=stats_signal:SIG` (and `prof_signal:SIG` with `prof`): the
/// handler of `SIG` only writes one byte to a pipe (async-signal-safe, no
/// lock, no allocation); a thread of our own reads it and prints
/// [`stats_print`] and [`SIGNAL_REPORT_END`] to stderr, or writes a
/// numbered heap profile ([`super::prof::dump_next`]). It allocates like
/// any thread, never from the interrupted one, so it waits at worst for a
/// lock until the interrupted thread resumes. A signal the program already
/// handles or ignores is left alone with a warning.
///
/// Does its work once; called when the arena has started (not during its
/// start-up: creating a thread may allocate) and, through
/// [`crate::arena::start_signal_report`], when the pool layer makes a pool
/// and the handle layer its table, since a program whose pools take their
/// chunks straight from the OS never starts the arena.
pub(crate) fn start_signal_report() {
    let conf = crate::config::from_env();
    let prof_sig = if conf.prof { conf.prof_signal } else { 0 };
    let wanted: [(&str, i32, extern "C" fn(i32)); 2] = [
        ("stats_signal", conf.stats_signal, on_report_signal),
        ("prof_signal", prof_sig, on_prof_signal),
    ];
    if wanted.iter().all(|w| w.1 == 0) || SIGNAL_STARTED.swap(true, AcqRel) {
        return;
    }
    let warn = |key: &str, sig: i32, why: &str| {
        let mut r = crate::report::Report::new();
        let _ = writeln!(r, "hotpool: HOTPOOL_CONF: {key}: signal {sig} {why}");
        r.emit();
    };
    let warn_all = |why: &str| {
        for &(key, sig, _) in wanted.iter().filter(|w| w.1 != 0) {
            warn(key, sig, why);
        }
    };
    let Some((read, write)) = sys::signal_pipe() else {
        warn_all("not used: no pipe for it");
        return;
    };
    SIGNAL_READ.store(read, Release);
    SIGNAL_WRITE.store(write, Release);
    // A signal that arrives before the thread runs waits in the pipe.
    let mut caught = 0;
    for &(key, sig, handler) in wanted.iter().filter(|w| w.1 != 0) {
        match sys::catch_signal(sig, handler) {
            Ok(()) => caught += 1,
            Err(why) => warn(
                key,
                sig,
                match why {
                    sys::NotCaught::Taken => {
                        "already has a handler (or is ignored): left alone, no report on it"
                    }
                    sys::NotCaught::Failed => "not used: sigaction failed",
                },
            ),
        }
    }
    if caught == 0 {
        stop_signal_report();
    } else if !sys::spawn_detached(signal_report_main) {
        warn_all("not used: no thread to print the report");
        stop_signal_report();
    } else if !sys::at_fork(fork_nothing, fork_nothing, fork_child) {
        warn_all("not used: no fork handler for it");
        stop_signal_report();
    }
}

unsafe extern "C" fn fork_nothing() {}

/// The printing thread does not exist in a fork child.
unsafe extern "C" fn fork_child() {
    stop_signal_report();
}

/// Closes the pipe where no thread reads it: when the report could not be
/// set up, and in a fork child, where the printing thread does not exist
/// (the child's signals would wake the parent's thread). The handler, if
/// installed, then writes nothing: the signal prints nothing.
/// Async-signal-safe.
fn stop_signal_report() {
    for end in [&SIGNAL_WRITE, &SIGNAL_READ] {
        let fd = end.swap(-1, AcqRel);
        if fd >= 0 {
            sys::close(fd);
        }
    }
}

extern "C" fn on_report_signal(_: i32) {
    let fd = SIGNAL_WRITE.load(Acquire);
    if fd >= 0 {
        sys::write_byte_in_handler(fd, PRINT_STATS);
    }
}

extern "C" fn on_prof_signal(_: i32) {
    let fd = SIGNAL_WRITE.load(Acquire);
    if fd >= 0 {
        sys::write_byte_in_handler(fd, DUMP_PROFILE);
    }
}

extern "C" fn signal_report_main(_: *mut libc::c_void) -> *mut libc::c_void {
    let fd = SIGNAL_READ.load(Acquire);
    while let Some(what) = sys::read_byte(fd) {
        if what == DUMP_PROFILE {
            super::prof::dump_or_warn("prof_signal");
            continue;
        }
        let mut out = Vec::new();
        let _ = stats_print(&mut out);
        out.extend_from_slice(SIGNAL_REPORT_END.as_bytes());
        sys::write_stderr(&out);
    }
    core::ptr::null_mut()
}
