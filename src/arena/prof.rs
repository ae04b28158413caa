//! Sampled heap profiling (`HOTPOOL_CONF=prof:true`), readable by jemalloc's
//! `jeprof`.
//!
//! With `prof:true`, each thread samples the allocations of the arena
//! allocator on average once per `2^lg_prof_sample` bytes (default 2^19,
//! 512 KiB): the bytes to the next sample are drawn from an exponential
//! distribution, as jemalloc and tcmalloc do, so an object of `s` bytes is
//! sampled with probability `1 - exp(-s / 2^lg_prof_sample)` whatever the
//! allocation rate, and the cost per allocation is a subtraction. A
//! sampled allocation's stack is captured with the system unwinder
//! (`_Unwind_Backtrace` from libgcc_s: it reads the unwind tables, so
//! programs built without frame pointers are profiled too; on x86-64 its
//! findings are cached per return address, see `unwind.rs`) and recorded
//! in tables of metadata memory under one lock of the arena's; the
//! profiler never allocates through the allocator it profiles. A sampled
//! object of a small class is moved to a page run of its own (jemalloc's
//! "promotion"; the thread cache's `prof_due`), aligned to 64 KiB, so that
//! a free of a small object looks further only when its pointer is so
//! aligned; then, and
//! for a large-class block, it looks its pointer up only when a 64
//! Ki-bucket filter of the sampled pointers says it may be one. The thread cache counts objects to the next sample per class
//! in its statistics counters (kept while the profiler is on): objects of
//! one size sampled at a byte rate are a geometric count apart.
//!
//! [`dump`] (or `prof_final:true` at exit, or the signal `prof_signal`)
//! writes the live samples in jemalloc's `heap_v2` format, which
//! `jeprof --text <program> <file>` reads and scales back to estimated
//! bytes, and `jeprof --collapsed` turns into flame-graph input.
//!
//! Costs: with `prof:false` the allocation and free fast paths run not one
//! instruction more (the thread cache's one test of the statistics flag
//! also tells it whether the profiler is on). With `prof:true` they stay
//! inline: a compare of the class's count with its next sample on
//! allocation, a test of the pointer's low bits on free (about 9
//! instructions per allocation and free together); a sample costs a page
//! run for a small object (16 KiB, the smallest large class), a stack walk
//! and a lock: a few hundred instructions once the return addresses on the
//! way are cached (x86-64), about 2 000 per frame through libgcc
//! otherwise. Memory: 560 bytes per distinct stack (never freed), 24 bytes
//! per live sample plus its page run, 32 KiB of rule cache.
//!
//! A dump holds the profiler's lock while it writes the stacks (not the
//! mappings), so threads that take a sample meanwhile wait for it.
//!
//! Limits: Linux only; an allocation made while the profiler captures or
//! records one (by the unwinder) is never sampled; a stack deeper than
//! [`MAX_DEPTH`] frames keeps its innermost frames; the frames of the
//! allocator itself (the global allocator shim, `malloc`) stay at the top
//! of each stack, where `jeprof` drops `malloc` and friends by name.
//!
//! ```no_run
//! // Run with HOTPOOL_CONF=prof:true and HotAlloc as the global allocator.
//! let name = hotpool::prof::dump_next()?;
//! println!("wrote {}; read it with: jeprof --text <program> {}", name.display(), name.display());
//! # Ok::<(), std::io::Error>(())
//! ```

use core::cell::Cell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::lock::SpinLock;
use crate::sys;

/// Most frames kept per sampled stack.
pub const MAX_DEPTH: usize = 64;

/// Buckets of the filter of sampled pointers.
const FILTER_BITS: u32 = 16;

/// Live samples the first table holds.
const FIRST_LIVE: usize = 1 << 12;

/// Stack slots of the first index.
const FIRST_INDEX: usize = 1 << 10;

/// Whether the profiler is on (set once at start-up).
static ON: AtomicBool = AtomicBool::new(false);

/// `lg_prof_sample`.
static LG_SAMPLE: AtomicU8 = AtomicU8::new(crate::config::DEFAULT.lg_prof_sample);

/// Dumps written so far by [`dump_next`] (the `<seq>` of their names).
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Per bucket, the live samples whose pointer hashes there: a free whose
/// bucket holds none was not sampled. Written under [`TABLES`]' lock.
static FILTER: [AtomicU32; 1 << FILTER_BITS] = [const { AtomicU32::new(0) }; 1 << FILTER_BITS];

/// One distinct stack and the samples taken there.
#[repr(C)]
struct Stack {
    hash: u64,
    depth: usize,
    frames: [usize; MAX_DEPTH],
    /// Live samples and their bytes.
    cur_objs: u64,
    cur_bytes: u64,
    /// Every sample ever taken here, and its bytes.
    cum_objs: u64,
    cum_bytes: u64,
    /// The next stack in the order they were made.
    next: *mut Stack,
}

/// A live sampled object.
#[derive(Clone, Copy)]
struct Live {
    ptr: usize,
    size: usize,
    stack: *mut Stack,
}

/// Everything the profiler records, behind [`TABLES`].
struct Tables {
    /// Every stack, newest first (records from `base`, never freed).
    stacks: *mut Stack,
    /// Open-addressed index of `stacks` by hash (a mapping, doubled when
    /// half full).
    index: *mut *mut Stack,
    index_cap: usize,
    nstacks: usize,
    /// Open-addressed table of live samples by address (linear probing,
    /// deletion by backward shift; doubled when half full).
    live: *mut Live,
    live_cap: usize,
    nlive: usize,
}

// SAFETY: the raw pointers are to mappings and metadata owned by the
// tables, reached only under the lock.
unsafe impl Send for Tables {}

impl Tables {
    /// No stacks, no live samples; the tables are mapped on first use.
    const EMPTY: Tables = Tables {
        stacks: null_mut(),
        index: null_mut(),
        index_cap: 0,
        nstacks: 0,
        live: null_mut(),
        live_cap: 0,
        nlive: 0,
    };
}

static TABLES: SpinLock<Tables> = SpinLock::new(Tables::EMPTY);

/// Page runs of freed samples of small objects, kept for the next ones
/// (the thread cache's promotion): a new run would fault its pages in
/// again, which cost as much as the rest of a sample, and the slabs that
/// took the places of freed ones made aligned pointers common.
struct Stash {
    runs: [usize; STASH_RUNS],
    n: usize,
}

/// Most runs the stash keeps (16 KiB each).
const STASH_RUNS: usize = 64;

static STASH: SpinLock<Stash> = SpinLock::new(Stash {
    runs: [0; STASH_RUNS],
    n: 0,
});

/// Keeps `run`, a freed sample's page run, for the next sample; false
/// (nothing done) when the stash is full.
pub(crate) fn stash_run(run: *mut u8) -> bool {
    let mut st = STASH.lock();
    if st.n == STASH_RUNS {
        return false;
    }
    let n = st.n;
    st.runs[n] = run as usize;
    st.n = n + 1;
    true
}

/// A run [`stash_run`] kept, if any.
pub(crate) fn stashed_run() -> Option<*mut u8> {
    let mut st = STASH.lock();
    st.n = st.n.checked_sub(1)?;
    Some(st.runs[st.n] as *mut u8)
}

/// A thread's sampling state.
#[derive(Clone, Copy)]
struct ThreadState {
    /// Bytes to allocate before the next sample (when `seeded`).
    left: i64,
    /// xorshift state.
    rng: u64,
    seeded: bool,
    /// Inside the profiler: allocations are not sampled.
    busy: bool,
    /// The highest frame address a stack walk of this thread saw (bounds
    /// the cached unwinder's reads; 0: none yet).
    stack_hi: usize,
}

crate::sync::thread_local! {
    static THREAD: Cell<ThreadState> = const {
        Cell::new(ThreadState { left: 0, rng: 0, seeded: false, busy: false, stack_hi: 0 })
    };
}

/// Whether the profiler is on (`HOTPOOL_CONF=prof:true`).
///
/// ```
/// // Off unless the program runs with HOTPOOL_CONF=prof:true.
/// let _on: bool = hotpool::prof::enabled();
/// ```
pub fn enabled() -> bool {
    super::init::ensure_init();
    ON.load(Relaxed)
}

/// Turns the profiler on at start-up (from the configuration); false when
/// it cannot run here (Miri and loom have no unwinder).
pub(super) fn start(lg_sample: u8) -> bool {
    if cfg!(any(miri, loom)) {
        return false;
    }
    LG_SAMPLE.store(lg_sample, Relaxed);
    ON.store(true, Release);
    true
}

/// Mean bytes between samples.
fn period() -> u64 {
    1u64 << LG_SAMPLE.load(Relaxed)
}

fn next_random(rng: &mut u64) -> u64 {
    // xorshift64*.
    let mut x = *rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Bytes to the next sample: exponential with mean [`period`].
fn draw(rng: &mut u64, period: u64) -> i64 {
    // A uniform in (0, 1] from 53 random bits.
    let u = ((next_random(rng) >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let bytes = -ln(u) * period as f64;
    (bytes as i64).max(1)
}

// The profiler's two transcendental functions are computed here, not by
// `f64::ln` and `f64::exp`: those are libm's `log` and `exp`, and would make
// every program that links hotpool (and every process `hotpool-malloc` is
// preloaded into) load libm, whose pages count in its resident memory
// (0.3 MiB in a small Rust program here). Only arithmetic and bit
// operations: no call that lowers to libm (`round`, `floor`, `mul_add`
// would, on the baseline x86-64 target).

/// The natural logarithm of a normal, finite `x > 0`: `x = m * 2^e` with `m`
/// in [1/√2, √2), and `ln m = 2 atanh(s)` with `s = (m - 1) / (m + 1)`,
/// `|s| < 0.172`, its series summed to `s^15` (the next term is below
/// 1e-14 of the sum).
fn ln(x: f64) -> f64 {
    debug_assert!(x.is_normal() && x > 0.0);
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut t = 1.0 / 15.0;
    for k in [13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        t = t * s2 + 1.0 / k;
    }
    e as f64 * core::f64::consts::LN_2 + 2.0 * s * t
}

/// `1 - e^-r` for `r >= 0`, without the cancellation of `1.0 - exp(-r)` at
/// small `r`: `r = k ln 2 + y` with `|y| <= ln 2 / 2`, `e^-y - 1` by its
/// series to the 16th power (the next term is below 1e-19), then
/// `1 - 2^-k (1 + (e^-y - 1))`.
fn one_minus_exp_neg(r: f64) -> f64 {
    debug_assert!(r >= 0.0);
    if r >= 40.0 {
        // e^-40 is below the spacing of doubles near 1.
        return 1.0;
    }
    // Rounds to nearest: `r` is not negative.
    let k = (r * core::f64::consts::LOG2_E + 0.5) as i64;
    let y = r - k as f64 * core::f64::consts::LN_2;
    let mut term = 1.0;
    let mut em1 = 0.0;
    for n in 1..=16 {
        term *= -y / f64::from(n);
        em1 += term;
    }
    if k == 0 {
        -em1
    } else {
        // `1 <= k <= 58`: `2^-k` is a normal double.
        1.0 - (1.0 + em1) * f64::from_bits(((1023 - k) as u64) << 52)
    }
}

/// An allocation of `size` bytes at `p` (profiler on) on a path without
/// a counter of its own: counts it against the thread's bytes to the next
/// sample and records it when they run out.
pub(crate) fn on_alloc(p: *mut u8, size: usize) {
    on_alloc_with(p, size, None);
}

/// [`on_alloc`] of an allocation that a sample moves elsewhere: when it
/// is sampled, `promote(size)` makes the block that is handed out and
/// recorded instead of `p` (see [`due`]). Returns the block to hand out.
pub(crate) fn on_alloc_with(p: *mut u8, size: usize, promote: Option<Promote>) -> *mut u8 {
    // `try_with`: a thread's last allocations may run after its
    // thread-locals are gone; they are not sampled.
    THREAD
        .try_with(|t| {
            let mut s = t.get();
            s.left -= size as i64;
            if s.left > 0 {
                t.set(s);
                return p;
            }
            t.set(s);
            let first = (s.left + size as i64 == 0).then_some(size);
            let (left, q) = due(p, size, first, promote);
            t.set(ThreadState { left, ..t.get() });
            q
        })
        .unwrap_or(p)
}

/// Makes the block that a sampled allocation of the given size gets
/// instead of the one it was about to get; null when it cannot (the
/// allocation is then not sampled). The thread cache moves sampled small
/// objects to page runs of their own this way, in a range of addresses
/// that only they use, so that a free can tell a sampled object by its
/// address and the run's metadata, and the
/// fast paths need no lookup for the objects that were not sampled.
pub(crate) type Promote = fn(usize) -> *mut u8;

/// A counter of bytes (or of objects of one size) to the next sample ran
/// out at the allocation of `size` bytes at `p`: samples it, unless the
/// counter was not drawn yet (`first`: a new thread or class, with the
/// bytes just counted; then only if the drawn point falls within them),
/// and returns the bytes
/// to the next sample, with the block to hand out: `p`, or when sampled
/// with a `promote` the block it made (which is what is recorded). The
/// thread cache counts objects per class (its fast path's statistics
/// counter), other paths bytes through [`on_alloc`]: each counter is a
/// Poisson process over the bytes it sees, so every byte is sampled at the
/// same rate.
///
/// Never inlined, nor are [`sample`] and [`capture`]: the stack walk skips
/// exactly these three frames.
#[cold]
#[inline(never)]
pub(crate) fn due(
    p: *mut u8,
    size: usize,
    first: Option<usize>,
    promote: Option<Promote>,
) -> (i64, *mut u8) {
    let Ok(mut s) = THREAD.try_with(Cell::get) else {
        return (period() as i64, p);
    };
    if !s.seeded {
        s.rng = (&raw const s as u64) ^ sys::now_ms().wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        s.seeded = true;
    }
    let mut next = draw(&mut s.rng, period());
    if let Some(counted) = first {
        // The counter's first draw: this allocation is sampled only if it
        // crosses the drawn point.
        next -= counted as i64;
        if next > 0 {
            let _ = THREAD.try_with(|t| t.set(s));
            return (next, p);
        }
        next = draw(&mut s.rng, period());
    }
    if s.busy {
        let _ = THREAD.try_with(|t| t.set(s));
        return (next, p);
    }
    s.busy = true;
    let _ = THREAD.try_with(|t| t.set(s));
    let q = promote.map_or(p, |f| f(size));
    let stack_hi = if q.is_null() {
        s.stack_hi
    } else {
        sample(q, size, s.stack_hi)
    };
    let _ = THREAD.try_with(|t| {
        let mut s = t.get();
        s.busy = false;
        s.stack_hi = stack_hi;
        t.set(s);
    });
    (next, if q.is_null() { p } else { q })
}

/// Captures the stack of [`due`]'s caller and records the sample;
/// returns the thread's new highest frame address (see
/// [`super::unwind::capture`]).
#[inline(never)]
fn sample(p: *mut u8, size: usize, mut stack_hi: usize) -> usize {
    let mut frames = [0usize; MAX_DEPTH];
    let depth = super::unwind::capture(&mut frames, &mut stack_hi);
    record(p as usize, size, &frames[..depth]);
    stack_hi
}

#[inline(always)]
fn bucket(p: usize) -> usize {
    ((p as u64 >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - FILTER_BITS)) as usize
}

/// Whether `p` may be a live sample: false for most pointers that are
/// not, true for every one that is (read by the free fast path).
#[inline(always)]
pub(crate) fn maybe_sampled(p: *mut u8) -> bool {
    // SAFETY: `bucket` is below the filter's length.
    unsafe { FILTER.get_unchecked(bucket(p as usize)) }.load(Relaxed) != 0
}

/// A free of `p` (profiler on): forgets `p` if it was sampled.
pub(crate) fn on_free(p: *mut u8) {
    if !maybe_sampled(p) {
        return;
    }
    let p = p as usize;
    let mut t = TABLES.lock();
    if let Some(live) = t.remove(p) {
        FILTER[bucket(p)].fetch_sub(1, Relaxed);
        // SAFETY: stacks live forever; their counters change under the lock.
        unsafe {
            (*live.stack).cur_objs -= 1;
            (*live.stack).cur_bytes -= live.size as u64;
        }
    }
}

/// `realloc` moved a block from `from` to `to` (or resized it in place:
/// `from == to`), from `old` to `new` bytes, its contents kept. A sampled
/// block stays sampled, at its new place with its new size; of another,
/// only the bytes it grew by are counted toward the next sample, and it is
/// sampled, with its new size, when they reach it. So a block grown in
/// steps is sampled as if made at its final size (each of its bytes
/// counted once), and a `realloc` loop costs no more samples than the
/// bytes it adds.
pub(crate) fn on_realloc(from: *mut u8, to: *mut u8, old: usize, new: usize) {
    if maybe_sampled(from) {
        let mut t = TABLES.lock();
        if let Some(live) = t.remove(from as usize) {
            FILTER[bucket(from as usize)].fetch_sub(1, Relaxed);
            let moved = t.insert(Live {
                ptr: to as usize,
                size: new,
                stack: live.stack,
            });
            if moved {
                FILTER[bucket(to as usize)].fetch_add(1, Relaxed);
            }
            // SAFETY: stacks live forever; their counters change under the lock.
            unsafe {
                (*live.stack).cur_bytes -= live.size as u64;
                if moved {
                    (*live.stack).cur_bytes += new as u64;
                } else {
                    (*live.stack).cur_objs -= 1;
                }
            }
            return;
        }
    }
    if new <= old {
        return;
    }
    let grown = new - old;
    let _ = THREAD.try_with(|t| {
        let mut s = t.get();
        s.left -= grown as i64;
        t.set(s);
        if s.left <= 0 {
            let first = (s.left + grown as i64 == 0).then_some(grown);
            let (left, _) = due(to, new, first, None);
            t.set(ThreadState { left, ..t.get() });
        }
    });
}

// ---- tables --------------------------------------------------------------

fn hash_frames(frames: &[usize]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ frames.len() as u64;
    for &f in frames {
        h = (h ^ f as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    h
}

fn slot_of(key: u64, cap: usize) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17) as usize & (cap - 1)
}

/// A zeroed mapping for `n` values of `T` (zero is their empty value).
fn map_array<T>(n: usize) -> Option<*mut T> {
    sys::map(n * core::mem::size_of::<T>()).map(|p| p.as_ptr().cast())
}

/// Records a sample of `size` bytes at `p` taken at `frames`; drops it
/// when metadata memory runs out.
fn record(p: usize, size: usize, frames: &[usize]) {
    let mut t = TABLES.lock();
    let Some(stack) = t.stack(frames) else {
        return;
    };
    if !t.insert(Live {
        ptr: p,
        size,
        stack,
    }) {
        return;
    }
    FILTER[bucket(p)].fetch_add(1, Relaxed);
    // SAFETY: stacks live forever; their counters change under the lock.
    unsafe {
        (*stack).cur_objs += 1;
        (*stack).cur_bytes += size as u64;
        (*stack).cum_objs += 1;
        (*stack).cum_bytes += size as u64;
    }
}

impl Tables {
    /// The record of `frames`, made if new.
    fn stack(&mut self, frames: &[usize]) -> Option<*mut Stack> {
        let hash = hash_frames(frames);
        if self.nstacks * 2 >= self.index_cap {
            self.grow_index()?;
        }
        let mut i = slot_of(hash, self.index_cap);
        loop {
            // SAFETY: `i < index_cap`, the index's length.
            let s = unsafe { *self.index.add(i) };
            if s.is_null() {
                break;
            }
            // SAFETY: indexed stacks live forever; the lock is held.
            let st = unsafe { &*s };
            let found =
                st.hash == hash && st.depth == frames.len() && st.frames[..st.depth] == *frames;
            if found {
                return Some(s);
            }
            i = (i + 1) & (self.index_cap - 1);
        }
        let s = super::base::alloc(core::mem::size_of::<Stack>(), 8)?
            .as_ptr()
            .cast::<Stack>();
        // SAFETY: fresh zeroed metadata, ours alone; `i` is an empty slot.
        unsafe {
            let st = &mut *s;
            st.hash = hash;
            st.depth = frames.len();
            st.frames[..frames.len()].copy_from_slice(frames);
            st.next = self.stacks;
            *self.index.add(i) = s;
        }
        self.stacks = s;
        self.nstacks += 1;
        Some(s)
    }

    fn grow_index(&mut self) -> Option<()> {
        let cap = (self.index_cap * 2).max(FIRST_INDEX);
        let index = map_array::<*mut Stack>(cap)?;
        let mut s = self.stacks;
        while !s.is_null() {
            // SAFETY: stacks live forever; `index` has `cap` slots.
            unsafe {
                let mut i = slot_of((*s).hash, cap);
                while !(*index.add(i)).is_null() {
                    i = (i + 1) & (cap - 1);
                }
                *index.add(i) = s;
                s = (*s).next;
            }
        }
        if let Some(old) = core::ptr::NonNull::new(self.index) {
            // SAFETY: the old index, mapped by `map_array`, no longer used.
            unsafe {
                sys::unmap(
                    old.cast(),
                    self.index_cap * core::mem::size_of::<*mut Stack>(),
                )
            };
        }
        self.index = index;
        self.index_cap = cap;
        Some(())
    }

    fn insert(&mut self, e: Live) -> bool {
        if self.nlive * 2 >= self.live_cap && self.grow_live().is_none() {
            return false;
        }
        self.put(e);
        self.nlive += 1;
        true
    }

    /// Places `e` in the live table (which has room).
    fn put(&mut self, e: Live) {
        let mut i = slot_of(e.ptr as u64, self.live_cap);
        // SAFETY: indices stay below `live_cap`, the table's length; the
        // table is never full.
        unsafe {
            while (*self.live.add(i)).ptr != 0 {
                i = (i + 1) & (self.live_cap - 1);
            }
            *self.live.add(i) = e;
        }
    }

    fn grow_live(&mut self) -> Option<()> {
        let cap = (self.live_cap * 2).max(FIRST_LIVE);
        let live = map_array::<Live>(cap)?;
        let (old, old_cap) = (self.live, self.live_cap);
        self.live = live;
        self.live_cap = cap;
        for i in 0..old_cap {
            // SAFETY: `i < old_cap`, the old table's length.
            let e = unsafe { *old.add(i) };
            if e.ptr != 0 {
                self.put(e);
            }
        }
        if let Some(old) = core::ptr::NonNull::new(old) {
            // SAFETY: the old table, mapped by `map_array`, no longer used.
            unsafe { sys::unmap(old.cast(), old_cap * core::mem::size_of::<Live>()) };
        }
        Some(())
    }

    /// Takes `p` out of the live table, if there.
    fn remove(&mut self, p: usize) -> Option<Live> {
        if self.live_cap == 0 {
            return None;
        }
        let mask = self.live_cap - 1;
        let mut i = slot_of(p as u64, self.live_cap);
        // SAFETY: every index is masked below `live_cap`, the table's length.
        unsafe {
            loop {
                let e = *self.live.add(i);
                if e.ptr == 0 {
                    return None;
                }
                if e.ptr == p {
                    break;
                }
                i = (i + 1) & mask;
            }
            let found = *self.live.add(i);
            // Backward-shift deletion: move up every later entry of the run
            // that may sit at or before the hole.
            let mut hole = i;
            let mut j = (i + 1) & mask;
            loop {
                let e = *self.live.add(j);
                if e.ptr == 0 {
                    break;
                }
                let home = slot_of(e.ptr as u64, self.live_cap);
                // `e` may move to `hole` unless its home lies cyclically in
                // (hole, j].
                if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                    *self.live.add(hole) = e;
                    hole = j;
                }
                j = (j + 1) & mask;
            }
            (*self.live.add(hole)).ptr = 0;
            self.nlive -= 1;
            Some(found)
        }
    }
}

// ---- reading the samples -------------------------------------------------

/// A heap allocation site with sampled objects still live: what
/// [`live_sites`] returns. Counts and bytes are estimates, scaled from the
/// samples as `jeprof` scales them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Site {
    /// Estimated live objects allocated here.
    pub objects: u64,
    /// Estimated live bytes.
    pub bytes: u64,
    /// Return addresses, innermost first (the allocator's own frames first).
    pub frames: Vec<usize>,
}

/// The scale jeprof applies to a stack's samples: `1 / (1 - exp(-mean / period))`.
fn scale(objs: u64, bytes: u64) -> f64 {
    if objs == 0 {
        return 0.0;
    }
    let ratio = bytes as f64 / objs as f64 / period() as f64;
    1.0 / one_minus_exp_neg(ratio)
}

/// Calls `f(objects, bytes, frames)` for each stack with live samples
/// (estimated counts), under the profiler's lock: `f` must not allocate.
pub(crate) fn for_each_live(mut f: impl FnMut(u64, u64, &[usize])) {
    let t = TABLES.lock();
    let mut s = t.stacks;
    while !s.is_null() {
        // SAFETY: stacks live forever; the lock is held.
        let st = unsafe { &*s };
        if st.cur_objs > 0 {
            let k = scale(st.cur_objs, st.cur_bytes);
            f(
                (st.cur_objs as f64 * k) as u64,
                (st.cur_bytes as f64 * k) as u64,
                &st.frames[..st.depth],
            );
        }
        s = st.next;
    }
}

/// The heap allocation sites with live sampled objects, most bytes first;
/// empty when the profiler is off. Part of [`crate::stats::leaks`].
///
/// ```
/// for site in hotpool::prof::live_sites() {
///     println!("{} bytes in {} objects at {:x?}", site.bytes, site.objects, site.frames);
/// }
/// ```
pub fn live_sites() -> Vec<Site> {
    if !enabled() {
        return Vec::new();
    }
    let mut n = 0;
    for_each_live(|_, _, _| n += 1);
    // Allocated outside the lock, filled under it with at most `n` sites
    // (stacks only gain samples between the two looks at the cost of a
    // site left out); frames are copied into a stack buffer first.
    let mut raw: Vec<(u64, u64, [usize; MAX_DEPTH], usize)> = Vec::with_capacity(n);
    for_each_live(|objects, bytes, frames| {
        if raw.len() < raw.capacity() {
            let mut f = [0; MAX_DEPTH];
            f[..frames.len()].copy_from_slice(frames);
            raw.push((objects, bytes, f, frames.len()));
        }
    });
    let mut sites: Vec<Site> = raw
        .into_iter()
        .map(|(objects, bytes, f, depth)| Site {
            objects,
            bytes,
            frames: f[..depth].to_vec(),
        })
        .collect();
    sites.sort_by_key(|s| core::cmp::Reverse(s.bytes));
    sites
}

/// Frames of a site the leak report shows.
const REPORT_FRAMES: usize = 24;

/// One heap site of the leak report: a line with the estimated objects
/// and bytes, then up to [`REPORT_FRAMES`] return addresses, each with its
/// module and offset (for `addr2line -e <module> <offset>`) and the
/// nearest exported symbol when the dynamic linker knows one. Allocates
/// nothing.
pub(crate) fn write_site(
    out: &mut impl core::fmt::Write,
    objects: u64,
    bytes: u64,
    frames: &[usize],
) -> core::fmt::Result {
    writeln!(
        out,
        "hotpool: leak: about {objects} heap objects ({bytes} bytes, from samples) still live, allocated at:"
    )?;
    for &ip in frames.iter().take(REPORT_FRAMES) {
        write!(out, "    {ip:#018x}")?;
        // SAFETY: an all-zero Dl_info is a valid out-value.
        let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
        // SAFETY: `dladdr` only reads the loader's tables and fills `info`.
        if unsafe { libc::dladdr(ip as *const libc::c_void, &mut info) } != 0 {
            if !info.dli_fname.is_null() {
                // SAFETY: a NUL-terminated name owned by the loader.
                let name = unsafe { core::ffi::CStr::from_ptr(info.dli_fname) };
                let module = name.to_str().unwrap_or("?");
                write!(out, " {module}+{:#x}", ip - info.dli_fbase as usize)?;
            }
            if !info.dli_sname.is_null() {
                // SAFETY: as above.
                let sym = unsafe { core::ffi::CStr::from_ptr(info.dli_sname) };
                write!(
                    out,
                    " ({}+{:#x})",
                    sym.to_str().unwrap_or("?"),
                    ip - info.dli_saddr as usize
                )?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The heap half of the exit-time leak report (`leak_report:true` with
/// `prof:true`): every site with live samples, most bytes first, through
/// [`crate::report::Stream`]. Allocates nothing: it finds the sites in
/// order with one pass over the stacks per site.
pub(crate) fn print_live_sites() {
    let mut out = crate::report::Stream::new();
    let mut after: Option<(u64, usize)> = None;
    loop {
        // The site with the most bytes below `after`, keyed by (bytes,
        // address of its frames): (bytes, frames, objects, depth).
        let mut best: Option<(u64, usize, u64, usize)> = None;
        for_each_live(|objects, bytes, frames| {
            let key = (bytes, frames.as_ptr() as usize);
            if after.is_none_or(|a| key < a) && best.is_none_or(|b| key > (b.0, b.1)) {
                best = Some((bytes, key.1, objects, frames.len()));
            }
        });
        let Some((bytes, at, objects, depth)) = best else {
            break;
        };
        after = Some((bytes, at));
        // SAFETY: the frames of a stack record, which lives forever and
        // whose frames never change.
        let frames = unsafe { core::slice::from_raw_parts(at as *const usize, depth) };
        // A `Stream` never fails.
        let _ = write_site(&mut out, objects, bytes, frames);
        out.flush();
    }
}

// ---- dumps ---------------------------------------------------------------

/// A buffer on the stack in front of a writer: the dump formats into it
/// under the profiler's lock and writes it out with `write(2)` when full.
struct Out<'a, W: Write> {
    buf: [u8; 4096],
    len: usize,
    to: &'a mut W,
    err: Option<io::Error>,
}

impl<W: Write> Out<'_, W> {
    fn flush_buf(&mut self) {
        if self.err.is_none() {
            if let Err(e) = self.to.write_all(&self.buf[..self.len]) {
                self.err = Some(e);
            }
        }
        self.len = 0;
    }

    fn bytes(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.len == self.buf.len() {
                self.flush_buf();
            }
            let n = b.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
    }

    fn num(&mut self, v: u64) {
        let mut d = [0u8; 20];
        self.bytes(decimal(v, &mut d));
    }

    fn hex(&mut self, v: usize) {
        let mut d = [0u8; 18];
        let mut i = d.len();
        let mut v = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[v & 15];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        d[i] = b'0';
        d[i + 1] = b'x';
        self.bytes(&d[i..]);
    }

    /// `  t*: objs: bytes [objs: bytes]`.
    fn counts(&mut self, cur: (u64, u64), cum: (u64, u64)) {
        self.bytes(b"  t*: ");
        self.num(cur.0);
        self.bytes(b": ");
        self.num(cur.1);
        self.bytes(b" [");
        self.num(cum.0);
        self.bytes(b": ");
        self.num(cum.1);
        self.bytes(b"]\n");
    }
}

/// Writes the profile in jeprof's `heap_v2` format to `to`: the header
/// with the sample period and the totals, one `@ frames` entry per stack
/// (raw sampled counts: jeprof scales them), then `MAPPED_LIBRARIES:` and
/// `/proc/self/maps`. Nothing is allocated while the lock is held.
fn write_profile<W: Write>(to: &mut W) -> io::Result<()> {
    let mut out = Out {
        buf: [0; 4096],
        len: 0,
        to,
        err: None,
    };
    {
        let t = TABLES.lock();
        let (mut cur, mut cum) = ((0, 0), (0, 0));
        let mut s = t.stacks;
        while !s.is_null() {
            // SAFETY: stacks live forever; the lock is held.
            let st = unsafe { &*s };
            cur = (cur.0 + st.cur_objs, cur.1 + st.cur_bytes);
            cum = (cum.0 + st.cum_objs, cum.1 + st.cum_bytes);
            s = st.next;
        }
        out.bytes(b"heap_v2/");
        out.num(period());
        out.bytes(b"\n");
        out.counts(cur, cum);
        let mut s = t.stacks;
        while !s.is_null() {
            // SAFETY: as above.
            let st = unsafe { &*s };
            if st.cur_objs > 0 || st.cum_objs > 0 {
                out.bytes(b"@");
                for &f in &st.frames[..st.depth] {
                    out.bytes(b" ");
                    out.hex(f);
                }
                out.bytes(b"\n");
                out.counts((st.cur_objs, st.cur_bytes), (st.cum_objs, st.cum_bytes));
            }
            s = st.next;
        }
    }
    out.bytes(b"\nMAPPED_LIBRARIES:\n");
    // Opened from a stack buffer, read into one: no allocation.
    if let Ok(mut maps) = std::fs::File::open("/proc/self/maps") {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = io::Read::read(&mut maps, &mut chunk) {
            out.bytes(&chunk[..n]);
        }
    }
    out.flush_buf();
    match out.err {
        Some(e) => Err(e),
        None => to_flush(out.to),
    }
}

fn to_flush<W: Write>(w: &mut W) -> io::Result<()> {
    w.flush()
}

/// The error of a dump while the profiler is off.
fn off() -> io::Error {
    io::Error::from(io::ErrorKind::Unsupported)
}

/// Writes a heap profile of the live sampled allocations to `path`, in the
/// `heap_v2` format of jemalloc's `jeprof`: read it with
/// `jeprof --text <program> <path>` (top allocation sites by live bytes),
/// `jeprof --collapsed <program> <path>` (input for flame graphs) or
/// `jeprof --svg`. An error if the profiler is off
/// ([`io::ErrorKind::Unsupported`]) or `path` cannot be written.
///
/// ```no_run
/// // HOTPOOL_CONF=prof:true, HotAlloc as the global allocator.
/// hotpool::prof::dump("now.heap")?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump(path: impl AsRef<Path>) -> io::Result<()> {
    if !enabled() {
        return Err(off());
    }
    let mut f = std::fs::File::create(path)?;
    write_profile(&mut f)
}

/// `v` in decimal, written at the end of `d` (no allocation).
fn decimal(mut v: u64, d: &mut [u8; 20]) -> &[u8] {
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &d[i..];
        }
    }
}

/// The next dump's name, `<prof_prefix>.<pid>.<seq>.heap`, in `buf`;
/// returns its length (the prefix is at most 64 bytes, so it fits).
fn next_name(buf: &mut [u8; 128]) -> usize {
    let conf = super::init::conf();
    let mut len = 0;
    let mut put = |b: &[u8]| {
        let n = b.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&b[..n]);
        len += n;
    };
    put(conf.prof_prefix.as_bytes());
    let num = |v: u64, put: &mut dyn FnMut(&[u8])| {
        let mut d = [0u8; 20];
        put(b".");
        put(decimal(v, &mut d));
    };
    num(std::process::id() as u64, &mut put);
    num(SEQ.fetch_add(1, Relaxed), &mut put);
    put(b".heap");
    len
}

/// Writes the next numbered profile, `<prof_prefix>.<pid>.<seq>.heap` in
/// the working directory (as jemalloc names its dumps; `prof_prefix`
/// defaults to `hotpool`), and returns its name. An error if the profiler
/// is off or the file cannot be written.
///
/// ```no_run
/// // HOTPOOL_CONF=prof:true,prof_prefix:/tmp/app
/// let name = hotpool::prof::dump_next()?; // e.g. /tmp/app.4242.0.heap
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn dump_next() -> io::Result<PathBuf> {
    let mut buf = [0u8; 128];
    dump_numbered(&mut buf).map(|n| PathBuf::from(name_of(&buf[..n])))
}

fn name_of(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

/// [`dump_next`] without allocating (std opens short paths from a stack
/// buffer): for the exit handler and the signal thread. The name is left
/// in `buf`; returns its length.
fn dump_numbered(buf: &mut [u8; 128]) -> io::Result<usize> {
    if !enabled() {
        return Err(off());
    }
    let n = next_name(buf);
    let mut f = std::fs::File::create(name_of(&buf[..n]))?;
    write_profile(&mut f)?;
    Ok(n)
}

/// Writes the next numbered dump, or one line on stderr saying why not
/// (`prof_final` at exit, `prof_signal`). Allocates nothing.
pub(crate) fn dump_or_warn(why: &str) {
    let mut buf = [0u8; 128];
    if let Err(e) = dump_numbered(&mut buf) {
        let mut r = crate::report::Report::new();
        r.bytes(b"hotpool: ")
            .bytes(why.as_bytes())
            .bytes(b": cannot write the heap profile ")
            .bytes(&buf[..buf.iter().position(|&b| b == 0).unwrap_or(buf.len())]);
        match e.raw_os_error() {
            Some(code) => {
                let _ = core::fmt::Write::write_fmt(&mut r, format_args!(" (os error {code})\n"));
            }
            None => {
                r.bytes(b"\n");
            }
        }
        r.emit();
    }
}

/// `prof_final:true`: the dump at exit.
pub(super) extern "C" fn dump_at_exit() {
    dump_or_warn("prof_final");
}

/// Fork `prepare`: hold the profiler's lock across `fork`. (Not under
/// loom, where the profiler never runs: its lock would only enlarge the
/// arena models' state space.)
pub(super) fn fork_prepare() {
    #[cfg(not(loom))]
    {
        TABLES.force_lock();
        STASH.force_lock();
    }
}

/// Fork parent/child: release it.
pub(super) fn fork_release() {
    #[cfg(not(loom))]
    {
        STASH.force_unlock();
        TABLES.force_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "100 000 draws are slow under Miri")]
    fn intervals_average_the_period() {
        let mut rng = 0x1234_5678_9abc_def1;
        let n = 100_000;
        let sum: i64 = (0..n).map(|_| draw(&mut rng, 1024)).sum();
        let mean = sum as f64 / n as f64;
        assert!((mean - 1024.0).abs() < 1024.0 * 0.03, "mean {mean}");
    }

    #[test]
    fn ln_and_one_minus_exp_neg_match_the_c_library() {
        // Powers of two times mantissas at the range reduction's
        // boundaries (1, √2 either side, just under 2) and between them.
        let sqrt2 = core::f64::consts::SQRT_2;
        for e in (-1020..=1020).step_by(5) {
            let x = f64::from_bits(((e + 1023) as u64) << 52);
            for m in [
                1.0,
                1.0 + 1e-12,
                1.3,
                sqrt2 * (1.0 - 1e-12),
                sqrt2 * (1.0 + 1e-12),
                1.77,
                2.0 - 1e-15,
            ] {
                let v = x * m;
                let (got, want) = (ln(v), v.ln());
                assert!(
                    (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                    "ln {v}: {got} {want}"
                );
            }
        }
        assert_eq!(ln(1.0), 0.0);
        let mut r = 1e-12;
        while r < 60.0 {
            let (got, want) = (one_minus_exp_neg(r), -(-r).exp_m1());
            assert!(
                (got - want).abs() <= 1e-13 * want,
                "1 - e^-{r}: {got} {want}"
            );
            r *= 1.3;
        }
        assert_eq!(one_minus_exp_neg(0.0), 0.0);
    }

    #[test]
    fn live_table_inserts_finds_and_removes_across_growth() {
        let mut t = Tables::EMPTY;
        let s = t.stack(&[1, 2, 3]).unwrap();
        assert_eq!(t.stack(&[1, 2, 3]), Some(s));
        assert_ne!(t.stack(&[1, 2]), Some(s));
        let n = 3 * FIRST_LIVE;
        for i in 1..=n {
            assert!(t.insert(Live {
                ptr: i * 16,
                size: i,
                stack: s
            }));
        }
        for i in (1..=n).step_by(2) {
            assert_eq!(t.remove(i * 16).map(|e| e.size), Some(i));
        }
        assert!(t.remove(16).is_none());
        for i in (2..=n).step_by(2) {
            assert_eq!(t.remove(i * 16).map(|e| e.size), Some(i), "{i}");
        }
        assert_eq!(t.nlive, 0);
    }

    #[test]
    #[cfg_attr(miri, ignore = "opens /proc/self/maps, which Miri's isolation refuses")]
    fn profile_text_has_jeprof_shape() {
        let mut v = Vec::new();
        write_profile(&mut v).unwrap();
        let text = String::from_utf8(v).unwrap();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("heap_v2/"));
        assert!(lines.next().unwrap().starts_with("  t*: "));
        assert!(text.contains("\nMAPPED_LIBRARIES:\n"));
    }
}
