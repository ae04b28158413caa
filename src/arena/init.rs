//! Process-wide state and start-up: the arenas, the configuration (read
//! once from `HOTPOOL_CONF`), the thread-exit key, the fork and exit
//! handlers, and which arena a new thread joins.

use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicI8, AtomicPtr, AtomicUsize, Ordering::*};

use super::heap::Arena;
use super::purge::{BG_RUNNING, BG_WANTED};
use super::tcache;
use crate::config::{self, ArenaConf};
use crate::sys;

/// Most arenas.
pub(crate) const MAX_ARENAS: usize = 64;

/// Arenas per CPU by default (jemalloc's default too): with one per CPU,
/// two producer threads on a 2-CPU machine shared an arena, and its bin
/// locks with the consumers flushing into it.
const ARENAS_PER_CPU: usize = 4;

/// 0: not started; [`READY`]: started; otherwise a start in progress,
/// tagged with the starting process's id (`pid << 2 | 1`): a fork child
/// that finds its parent's tag knows the starting thread is not there.
static STATE: AtomicUsize = AtomicUsize::new(0);

const READY: usize = 2;

/// Set once each (before the call, so a fork in between cannot make a
/// child register twice): the fork handlers and the exit handlers.
static FORK_HANDLERS: AtomicBool = AtomicBool::new(false);
static EXIT_STATS: AtomicBool = AtomicBool::new(false);
static EXIT_PROF: AtomicBool = AtomicBool::new(false);

/// Registers the fork handlers when the program (or the library) is
/// loaded, before it has a second thread; [`init_slow`] registers them
/// too if this did not run. glibc skips the parent and child handlers of
/// one registered after a fork's prepare phase began, so a fork on one
/// thread that raced the allocator's start on another, with the handlers
/// registered by the start, could copy a bin lock the starting thread had
/// just taken into a child that then waited on it for ever (CI lost a
/// forked child so, twice; tests/fork.rs).
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
#[used]
#[link_section = ".init_array"]
static REGISTER_AT_LOAD: extern "C" fn() = register_fork_handlers;

/// Registers the fork handlers, once.
extern "C" fn register_fork_handlers() {
    if !FORK_HANDLERS.swap(true, Relaxed) {
        sys::at_fork(fork_prepare, fork_parent, fork_child);
    }
}

static NARENAS: AtomicUsize = AtomicUsize::new(0);

/// Arenas threads attach to: the first `THREAD_ARENAS` of [`ARENAS`]. The
/// one after them, with the profiler on, is the samples'
/// ([`super::samples`]).
static THREAD_ARENAS: AtomicUsize = AtomicUsize::new(0);

/// CPUs online at start-up (at least 1): how many arenas threads that
/// take turns without waiting for each other's locks may open
/// ([`move_thread`]).
static CPUS: AtomicUsize = AtomicUsize::new(1);

/// Arenas new threads may join: the first `OPEN` of [`ARENAS`]. With the
/// default `narenas` and thread caches on, one at the start, and one more
/// when a thread that shares its arena keeps refilling from bins others
/// refilled from in between ([`move_thread`]; beyond one arena per CPU,
/// only when it also finds their locks held): threads that do not contend
/// share one arena's chunks and partly used slabs (8 arenas of larson's 8
/// threads held 2.3 MiB more than one). With `narenas` set, or
/// `tcache:false` (no cache to count refills in), all of them.
static OPEN: AtomicUsize = AtomicUsize::new(0);

pub(super) static ARENAS: [AtomicPtr<Arena>; MAX_ARENAS] =
    [const { AtomicPtr::new(null_mut()) }; MAX_ARENAS];

static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);

static DECAY_MS: AtomicI64 = AtomicI64::new(config::DEFAULT.decay_ms);

static TCACHE_ON: AtomicBool = AtomicBool::new(true);

static TCACHE_MAX: AtomicUsize = AtomicUsize::new(config::DEFAULT.tcache_max);

static TCACHE_BYTES: AtomicUsize = AtomicUsize::new(config::DEFAULT.tcache_bytes);

static STATS_ON: AtomicBool = AtomicBool::new(true);

/// What the thread cache's fast paths do after an allocation or a free,
/// in the one byte they test: 1, count it (statistics on); 0, nothing;
/// negative (`prof:true`), count it (whatever the statistics setting: the
/// counts are the profiler's countdowns) and tell the profiler. One signed
/// compare tells the three apart, so the profiler adds no instruction to
/// the fast paths.
static EVENTS: AtomicI8 = AtomicI8::new(1);

pub(super) static CONF: crate::arena::lock::SpinLock<ArenaConf> =
    crate::arena::lock::SpinLock::new(config::DEFAULT);

pub(crate) fn decay_ms() -> i64 {
    DECAY_MS.load(Relaxed)
}

pub(crate) fn set_decay_ms(ms: i64) {
    DECAY_MS.store(ms, Relaxed);
    CONF.lock().decay_ms = ms;
}

pub(crate) fn tcache_enabled() -> bool {
    TCACHE_ON.load(Relaxed)
}

pub(crate) fn tcache_max() -> usize {
    TCACHE_MAX.load(Relaxed)
}

/// Bytes of free objects a thread's cache may hold (`tcache_bytes`).
pub(crate) fn tcache_bytes() -> usize {
    TCACHE_BYTES.load(Relaxed)
}

/// Sets `tcache_bytes` for thread caches made from now on.
pub(crate) fn set_tcache_bytes(bytes: usize) {
    TCACHE_BYTES.store(bytes, Relaxed);
    CONF.lock().tcache_bytes = bytes;
}

#[inline(always)]
pub(crate) fn stats_enabled() -> bool {
    STATS_ON.load(Relaxed)
}

pub(crate) fn set_stats_enabled(on: bool) {
    STATS_ON.store(on, Relaxed);
    // The profiler's setting (negative) stays.
    let _ = EVENTS.fetch_update(Relaxed, Relaxed, |e| (e >= 0).then_some(on as i8));
}

/// See [`EVENTS`].
#[inline(always)]
pub(crate) fn events() -> i8 {
    EVENTS.load(Relaxed)
}

/// Whether the heap profiler samples (`prof:true`).
#[inline(always)]
pub(crate) fn prof_enabled() -> bool {
    events() < 0
}

pub(crate) fn conf() -> ArenaConf {
    ensure_init();
    *CONF.lock()
}

/// Arenas made: the threads' and, with the profiler on, the samples'.
pub(crate) fn narenas() -> usize {
    NARENAS.load(Acquire)
}

/// Arenas threads attach to ([`THREAD_ARENAS`]).
pub(crate) fn thread_arenas() -> usize {
    THREAD_ARENAS.load(Relaxed).min(narenas())
}

pub(crate) fn arena(i: usize) -> Option<&'static Arena> {
    // SAFETY: arenas live forever once published.
    unsafe { ARENAS.get(i)?.load(Acquire).as_ref() }
}

pub(crate) fn arena_index(a: *const Arena) -> usize {
    (0..narenas())
        .find(|&i| ptr::eq(ARENAS[i].load(Relaxed), a))
        .unwrap_or(0)
}

/// Attaches a new thread to the open arena ([`OPEN`]) with the fewest
/// threads attached (the lowest index among equals; jemalloc's choice) and
/// returns its index. Threads that come and go then reuse the arenas of
/// exited ones instead of spreading their memory over every arena in turn.
pub(crate) fn attach_thread() -> usize {
    claim(usize::MAX).unwrap_or(0)
}

/// Attaches the calling thread to the open arena with the fewest threads
/// if it has fewer than `below`; returns its index. The count is claimed
/// with a compare-exchange against the value the choice was made on, so
/// threads starting together do not all pick the same arena.
fn claim(below: usize) -> Option<usize> {
    loop {
        let mut best = (usize::MAX, 0);
        for i in 0..OPEN.load(Acquire).min(thread_arenas()) {
            if let Some(a) = arena(i) {
                best = best.min((a.nthreads.load(Relaxed), i));
            }
        }
        if best.0 >= below {
            return None;
        }
        let a = arena(best.1)?;
        if a.nthreads
            .compare_exchange(best.0, best.0 + 1, Relaxed, Relaxed)
            .is_ok()
        {
            return Some(best.1);
        }
    }
}

/// A thread attached to `a` by [`attach_thread`] left it.
pub(crate) fn detach_thread(a: &Arena) {
    a.nthreads.fetch_sub(1, Relaxed);
}

/// The calling thread, attached to `from`, keeps refilling from bins that
/// other threads refilled from in between ([`super::tcache`]'s
/// `interleaved`). If it shares `from` with other threads, it moves to the
/// open arena with the fewest threads when that has fewer than the others
/// left in `from`, opening one more arena first if none has and any is
/// closed: any while the refill that tipped the count found its bin lock
/// held (`busy`: threads running at once wait for each other), else only
/// up to one arena per CPU. Threads that interleave without waiting are
/// threads taking turns on the CPUs, and more arenas than CPUs cannot keep
/// those apart in the caches; each arena opened costs its own chunk and
/// partly used slabs (larson's 8 threads on 2 CPUs peaked at 12.6-13.3 MiB
/// in 8 arenas, 9.0 MiB in 2).
/// A thread alone in its arena stays: what contends there is other
/// threads' frees of its objects, which would follow it (a producer that
/// moved on each contended refill left its consumer's frees in one depot
/// after another, and opened every arena). Returns the new arena, if the
/// thread moved.
pub(crate) fn move_thread(from: &'static Arena, busy: bool) -> Option<&'static Arena> {
    let others = from.nthreads.load(Relaxed).checked_sub(1)?;
    if others == 0 {
        return None;
    }
    let i = match claim(others) {
        Some(i) => i,
        None => {
            let open = OPEN.load(Relaxed);
            let cap = if busy {
                thread_arenas()
            } else {
                thread_arenas().min(CPUS.load(Relaxed))
            };
            if open >= cap {
                return None;
            }
            // One opener per step; a loser still moves to what is open.
            let _ = OPEN.compare_exchange(open, open + 1, Release, Relaxed);
            claim(others)?
        }
    };
    detach_thread(from);
    arena(i)
}

/// Arenas open to new threads ([`OPEN`]).
pub(crate) fn open_arenas() -> usize {
    OPEN.load(Relaxed).min(thread_arenas())
}

/// Starts the allocator once; returns whether it is usable.
#[inline]
pub(crate) fn ensure_init() -> bool {
    if STATE.load(Acquire) == READY {
        return true;
    }
    init_slow()
}

#[cold]
fn init_slow() -> bool {
    let mine = (sys::pid() as usize) << 2 | 1;
    loop {
        let seen = STATE.load(Acquire);
        if seen == READY {
            return narenas() > 0;
        }
        if seen == 0 && STATE.compare_exchange(0, mine, Acquire, Acquire).is_ok() {
            break;
        }
        if seen != 0 && seen != mine {
            // A fork child whose parent forked while one of its threads was
            // starting the allocator: that thread is not here, so this one
            // starts it over. The child has no other thread, and the locks
            // the start takes may have been copied held.
            if STATE.compare_exchange(seen, mine, Acquire, Acquire).is_ok() {
                super::base::fork_release();
                CONF.force_unlock();
                break;
            }
            continue;
        }
        sys::yield_now();
    }
    let mut conf = config::from_env();
    let cpus = sys::ncpus();
    CPUS.store(cpus, Relaxed);
    let want = if conf.narenas == 0 {
        (ARENAS_PER_CPU * cpus).min(MAX_ARENAS)
    } else {
        conf.narenas
    };
    // Open one arena at first only when no count was asked for and
    // thread caches (which notice contention) are on.
    let lazy = conf.narenas == 0 && conf.tcache;
    let mut made = 0;
    for slot in ARENAS.iter().take(want) {
        let Some(p) = super::base::alloc(core::mem::size_of::<Arena>(), 64) else {
            break;
        };
        // Zeroed metadata memory is a valid empty arena.
        slot.store(p.as_ptr().cast(), Release);
        made += 1;
    }
    conf.narenas = made;
    // With the profiler on, one arena more, past the threads', for the
    // page runs of sampled small objects, in a range of its own
    // ([`super::samples`]). Without it the profiler stays off.
    let mut total = made;
    let samples = conf.prof && made > 0 && made < MAX_ARENAS && super::samples::reserve();
    if samples {
        if let Some(p) = super::base::alloc(core::mem::size_of::<Arena>(), 64) {
            let p = p.as_ptr().cast::<Arena>();
            ARENAS[made].store(p, Release);
            super::samples::set_arena(p);
            total += 1;
        }
    }
    if conf.prof && total == made {
        let mut r = crate::report::Report::new();
        r.bytes(b"hotpool: prof:true: no address space for the range of sampled objects; the profiler is off\n");
        r.emit();
        conf.prof = false;
    }
    THREAD_ARENAS.store(made, Relaxed);
    super::registry::start();
    // Published under the lock the fork handler takes before it reads the
    // count: a fork then either takes the locks of every arena published,
    // or copies a start that has not published any, which the child then
    // takes over (above).
    let reg = tcache::REGISTRY.lock();
    NARENAS.store(total, Release);
    drop(reg);
    DECAY_MS.store(conf.decay_ms, Relaxed);
    TCACHE_ON.store(conf.tcache, Relaxed);
    TCACHE_MAX.store(conf.tcache_max, Relaxed);
    TCACHE_BYTES.store(conf.tcache_bytes, Relaxed);
    if let Some(k) = sys::thread_key_create(tcache::thread_exit) {
        KEY.store(k as usize, Relaxed);
    } else {
        TCACHE_ON.store(false, Relaxed);
    }
    let lazy = lazy && tcache_enabled();
    OPEN.store(if lazy { made.min(1) } else { made }, Release);
    register_fork_handlers();
    if conf.stats_print && !EXIT_STATS.swap(true, Relaxed) {
        sys::at_exit(print_at_exit);
    }
    if conf.prof && super::prof::start(conf.lg_prof_sample) {
        EVENTS.store(-1, Relaxed);
        if conf.prof_final && !EXIT_PROF.swap(true, Relaxed) {
            sys::at_exit(super::prof::dump_at_exit);
        }
        if conf.leak_report {
            crate::debug::set_heap_leak_report(super::prof::print_live_sites);
        }
    }
    *CONF.lock() = conf;
    // Wanted, started lazily (`purge::start_lazily`).
    BG_WANTED.store(conf.background_thread, Relaxed);
    STATE.store(READY, Release);
    super::stats::start_signal_report();
    made > 0
}

/// Arms the thread-exit destructor for this thread's cache.
pub(crate) fn arm_thread_exit(value: *mut libc::c_void) {
    sys::thread_key_set(KEY.load(Relaxed) as libc::pthread_key_t, value);
}

extern "C" fn print_at_exit() {
    let _ = super::stats::stats_print(&mut std::io::stderr());
}

unsafe extern "C" fn fork_prepare() {
    // The profiler's lock first: it allocates metadata under it.
    super::prof::fork_prepare();
    tcache::REGISTRY.force_lock();
    super::huge_cache::fork_prepare();
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.fork_prepare();
        }
    }
    // The base allocator's lock last: it nests inside the others (a bin's
    // depot makes its slots under the bin's lock).
    super::base::fork_prepare();
}

unsafe extern "C" fn fork_parent() {
    super::base::fork_release();
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.fork_release();
        }
    }
    super::huge_cache::fork_release();
    tcache::REGISTRY.force_unlock();
    super::prof::fork_release();
}

unsafe extern "C" fn fork_child() {
    // SAFETY: same handler as the parent's; the child has one thread.
    unsafe { fork_parent() };
    // The purge thread does not exist in the child: runs it was purging go
    // back on the dirty lists, and the child purges on its own allocator
    // calls (as jemalloc's children do). Starting a thread in the child of
    // a multi-threaded process is what POSIX leaves undefined until exec
    // (and ThreadSanitizer refuses); `set_background_thread(true)` starts
    // one where the program knows better.
    BG_RUNNING.store(false, Relaxed);
    BG_WANTED.store(false, Relaxed);
    // Not held across fork: a thread of the parent may have held it.
    if let Some(mut conf) = CONF.try_lock() {
        conf.background_thread = false;
    }
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.fork_child();
        }
    }
    super::tcache::fork_child();
}

/// Under loom, first thing in every model execution: the allocator starts
/// afresh (the previous execution's memory unmapped, every process-wide
/// static back to its initial value), so that each execution drives the
/// real start-up, fill, flush and exit paths on fresh arenas.
#[cfg(loom)]
pub(crate) fn loom_reset() {
    crate::sync::loom_arena::unmap_all();
    super::registry::loom_reset();
    super::base::loom_reset();
    tcache::loom_reset();
    for a in &ARENAS {
        a.store(null_mut(), Relaxed);
    }
    NARENAS.store(0, Relaxed);
    THREAD_ARENAS.store(0, Relaxed);
    OPEN.store(0, Relaxed);
    KEY.store(usize::MAX, Relaxed);
    DECAY_MS.store(config::DEFAULT.decay_ms, Relaxed);
    TCACHE_ON.store(true, Relaxed);
    TCACHE_MAX.store(config::DEFAULT.tcache_max, Relaxed);
    TCACHE_BYTES.store(config::DEFAULT.tcache_bytes, Relaxed);
    STATS_ON.store(true, Relaxed);
    EVENTS.store(1, Relaxed);
    *CONF.lock() = config::DEFAULT;
    FORK_HANDLERS.store(false, Relaxed);
    EXIT_STATS.store(false, Relaxed);
    EXIT_PROF.store(false, Relaxed);
    STATE.store(0, Release);
}

/// Under loom: what `fork` does to the allocator: the prepare handler
/// takes every lock, the kernel copies the memory (a read of every
/// arena's locked data), the parent handler releases the locks.
#[cfg(loom)]
pub(crate) fn loom_fork() {
    // SAFETY: the handlers need no more than being called in this order.
    unsafe { fork_prepare() };
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.loom_snapshot();
        }
    }
    // SAFETY: as above.
    unsafe { fork_parent() };
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A thread that contends while sharing its arena opens one more
    /// arena (while any is closed) and moves to the open arena with the
    /// fewest threads.
    #[test]
    fn a_contended_thread_sharing_its_arena_moves_to_the_emptiest() {
        assert!(ensure_init());
        if narenas() < 2 {
            return;
        }
        let from = arena(0).unwrap();
        // Two threads of ours on arena 0, besides whoever else is there.
        from.nthreads.fetch_add(2, Relaxed);
        let before = open_arenas();
        let to = move_thread(from, true);
        let after = open_arenas();
        let to = to.expect("moved");
        assert!(!ptr::eq(to, from));
        // Another arena was opened, or one was open with fewer threads.
        assert!(after > before || before > 1, "{before} -> {after}");
        // The emptiest open arena, counting the move (others' threads may
        // come and go meanwhile).
        let fewest = (0..after)
            .map(|i| arena(i).unwrap().nthreads.load(Relaxed))
            .min()
            .unwrap();
        assert!(to.nthreads.load(Relaxed) <= fewest + 1);
        detach_thread(to);
        detach_thread(from);
    }
}
