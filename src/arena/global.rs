//! Process-wide state: start-up (configuration, arenas, the thread-exit
//! key, fork and exit handlers), routing of requests to small / large /
//! huge paths, huge mappings, and the background purge thread.

use core::ptr::{self, null_mut, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicUsize, Ordering::*};

use super::chunk::*;
use super::heap::Arena;
use super::size_class::*;
use super::tcache;
use crate::config::{self, ArenaConf};
use crate::sys;

/// Most arenas.
pub(crate) const MAX_ARENAS: usize = 64;
/// Arenas per CPU by default (jemalloc's default too): with one per CPU,
/// two producer threads on a 2-CPU machine shared an arena, and its bin
/// locks with the consumers flushing into it.
const ARENAS_PER_CPU: usize = 4;
/// Largest alignment served from page runs; bigger ones are huge.
const MAX_RUN_ALIGN: usize = 256 << 10;
/// Largest alignment served at all.
pub(crate) const MAX_ALIGN: usize = 1 << 30;

static STATE: AtomicU8 = AtomicU8::new(0);
static NARENAS: AtomicUsize = AtomicUsize::new(0);
static ARENAS: [AtomicPtr<Arena>; MAX_ARENAS] = [const { AtomicPtr::new(null_mut()) }; MAX_ARENAS];
static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);
static DECAY_MS: AtomicI64 = AtomicI64::new(config::DEFAULT.decay_ms);
static TCACHE_ON: AtomicBool = AtomicBool::new(true);
static TCACHE_MAX: AtomicUsize = AtomicUsize::new(config::DEFAULT.tcache_max);
static STATS_ON: AtomicBool = AtomicBool::new(true);
static BG_WANTED: AtomicBool = AtomicBool::new(false);
static BG_RUNNING: AtomicBool = AtomicBool::new(false);
static CONF: crate::arena::lock::SpinLock<ArenaConf> =
    crate::arena::lock::SpinLock::new(config::DEFAULT);

/// Huge allocations: count, frees, object bytes, mapped bytes.
pub(crate) static HUGE_NMALLOC: AtomicUsize = AtomicUsize::new(0);
pub(crate) static HUGE_NFREE: AtomicUsize = AtomicUsize::new(0);
pub(crate) static HUGE_BYTES: AtomicUsize = AtomicUsize::new(0);
pub(crate) static HUGE_MAPPED: AtomicUsize = AtomicUsize::new(0);

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
#[inline(always)]
pub(crate) fn stats_enabled() -> bool {
    STATS_ON.load(Relaxed)
}
pub(crate) fn set_stats_enabled(on: bool) {
    STATS_ON.store(on, Relaxed);
}
pub(crate) fn conf() -> ArenaConf {
    ensure_init();
    *CONF.lock()
}
pub(crate) fn narenas() -> usize {
    NARENAS.load(Acquire)
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
/// Attaches a new thread to the arena with the fewest threads attached
/// (the lowest index among equals; jemalloc's choice) and returns its
/// index. Threads that come and go then reuse the arenas of exited ones
/// instead of spreading their memory over every arena in turn. The count
/// is claimed with a compare-exchange against the value the choice was
/// made on, so threads starting together do not all pick the same arena.
pub(crate) fn attach_thread() -> usize {
    loop {
        let mut best = (usize::MAX, 0);
        for i in 0..narenas() {
            if let Some(a) = arena(i) {
                best = best.min((a.nthreads.load(Relaxed), i));
            }
        }
        let Some(a) = arena(best.1) else {
            return best.1;
        };
        if a.nthreads
            .compare_exchange(best.0, best.0 + 1, Relaxed, Relaxed)
            .is_ok()
        {
            return best.1;
        }
    }
}

/// A thread attached to `a` by [`attach_thread`] left it.
pub(crate) fn detach_thread(a: &Arena) {
    a.nthreads.fetch_sub(1, Relaxed);
}

/// The arena owning `p`'s run.
///
/// # Safety
/// `p` is a live small or large object of this allocator.
pub(crate) unsafe fn owner_arena(p: *const u8) -> &'static Arena {
    let c = (p as usize & !(CHUNK - 1)) as *const ChunkHeader;
    // SAFETY: `p` is in a chunk whose header names its arena forever.
    unsafe { &*(*c).arena }
}

/// Starts the allocator once; returns whether it is usable.
#[inline]
pub(crate) fn ensure_init() -> bool {
    if STATE.load(Acquire) == 2 {
        return true;
    }
    init_slow()
}

#[cold]
fn init_slow() -> bool {
    if STATE.compare_exchange(0, 1, Acquire, Acquire).is_err() {
        while STATE.load(Acquire) != 2 {
            sys::yield_now();
        }
        return narenas() > 0;
    }
    let mut conf = config::from_env();
    let want = if conf.narenas == 0 {
        (ARENAS_PER_CPU * sys::ncpus()).min(MAX_ARENAS)
    } else {
        conf.narenas
    };
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
    NARENAS.store(made, Release);
    DECAY_MS.store(conf.decay_ms, Relaxed);
    TCACHE_ON.store(conf.tcache, Relaxed);
    TCACHE_MAX.store(conf.tcache_max, Relaxed);
    if let Some(k) = sys::thread_key_create(tcache::thread_exit) {
        KEY.store(k as usize, Relaxed);
    } else {
        TCACHE_ON.store(false, Relaxed);
    }
    sys::at_fork(fork_prepare, fork_parent, fork_child);
    if conf.stats_print {
        sys::at_exit(print_at_exit);
    }
    *CONF.lock() = conf;
    STATE.store(2, Release);
    if conf.background_thread {
        set_background_thread(true);
    }
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
    tcache::REGISTRY.force_lock();
    super::huge_cache::fork_prepare();
    super::base::fork_prepare();
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.fork_prepare();
        }
    }
}
unsafe extern "C" fn fork_parent() {
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.fork_release();
        }
    }
    super::base::fork_release();
    super::huge_cache::fork_release();
    tcache::REGISTRY.force_unlock();
}
unsafe extern "C" fn fork_child() {
    // SAFETY: same handler as the parent's; the child has one thread.
    unsafe { fork_parent() };
    // The purge thread does not exist in the child.
    BG_RUNNING.store(false, Relaxed);
    BG_WANTED.store(false, Relaxed);
}

/// Starts or stops the background purge thread; returns whether it is
/// (or will keep) running.
pub(crate) fn set_background_thread(on: bool) -> bool {
    ensure_init();
    BG_WANTED.store(on, SeqCst);
    CONF.lock().background_thread = on;
    if !on {
        return false;
    }
    if BG_RUNNING.swap(true, SeqCst) {
        return true;
    }
    if sys::spawn_detached(background_main) {
        true
    } else {
        BG_RUNNING.store(false, SeqCst);
        BG_WANTED.store(false, SeqCst);
        CONF.lock().background_thread = false;
        false
    }
}

extern "C" fn background_main(_: *mut libc::c_void) -> *mut libc::c_void {
    loop {
        if !BG_WANTED.load(SeqCst) {
            BG_RUNNING.store(false, SeqCst);
            // A restart may have raced with our exit: keep going then.
            if !BG_WANTED.load(SeqCst) || BG_RUNNING.swap(true, SeqCst) {
                return null_mut();
            }
        }
        let d = decay_ms();
        let nap = if d < 0 {
            1000
        } else {
            (d as u64 / 4).clamp(10, 1000)
        };
        sys::sleep_ms(nap);
        for i in 0..narenas() {
            if let Some(a) = arena(i) {
                let mut r = a.runs.lock();
                a.purge_expired(&mut r, sys::now_ms(), decay_ms());
            }
        }
        huge_purge(sys::now_ms());
    }
}

/// Whether `(size, align)` is served by a small class, and which.
#[inline(always)]
pub(crate) fn small_class_of(size: usize, align: usize) -> Option<usize> {
    if align > PAGE {
        return None;
    }
    let s = (size.max(1) + align - 1) & !(align - 1);
    (s <= SMALL_MAX).then(|| small_class(s))
}

/// Allocates `size` bytes aligned to `align` (a power of two); zeroed when
/// `zero`. Null when memory runs out or the layout cannot be served.
#[inline(always)]
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    alloc_with(size, align, zero, false)
}

/// [`alloc`]; with `growing` (a `realloc` that grows), a large run is
/// placed at the front of a free run of at least [`LARGE_MAX`] where one
/// exists, so that it can keep growing in place up to the largest large
/// class: a string or vector grown by doubling then moves once, not at
/// every doubling when the arena is fragmented.
#[inline(always)]
fn alloc_with(size: usize, align: usize, zero: bool, growing: bool) -> *mut u8 {
    let p = alloc_unchecked(size, align, zero, growing);
    #[cfg(any(feature = "checks", debug_assertions))]
    if !p.is_null() {
        // SAFETY: `p` is a live block we just made.
        crate::checks::arena_alloced(p, unsafe { usable_size(p) }, zero);
    }
    p
}

/// Whether `p` is the start of a live block: its usable size and whether
/// it is a huge mapping, or why not. Reads a header only after its magic
/// was read without faulting ([`sys::peek_u32`]).
#[cfg(any(feature = "checks", debug_assertions))]
fn check_block(p: *const u8) -> Result<(usize, bool), &'static str> {
    const FOREIGN: &str = "is not a block of the arena allocator (or was freed already)";
    let a = p as usize;
    let hdr = if a & (CHUNK - 1) == 0 {
        a.wrapping_sub(PAGE)
    } else {
        a & !(CHUNK - 1)
    };
    if a == 0 {
        return Err(FOREIGN);
    }
    // Chunk and huge headers both start with `kind`; the rest of a header is
    // read only once its magic was found.
    match sys::peek_u32(hdr as *const u8).ok_or(FOREIGN)? {
        // SAFETY: a huge header (magic checked) is readable.
        KIND_HUGE => match unsafe { &*(hdr as *const HugeHeader) } {
            h if h.ptr as usize == a => Ok((h.usable, true)),
            _ => Err("is not the start of a block"),
        },
        KIND_CHUNK if a & (CHUNK - 1) != 0 => {
            let c = hdr as *mut ChunkHeader;
            // SAFETY: a chunk header (magic checked) is readable.
            let owner = unsafe { (*c).arena };
            if !(0..narenas()).any(|i| ptr::eq(ARENAS[i].load(Relaxed), owner)) {
                return Err(FOREIGN);
            }
            let page = (a - hdr) >> LG_PAGE;
            if page < HEADER_PAGES {
                return Err("points into a chunk header");
            }
            // SAFETY: page < CHUNK_PAGES; the page map names a run start.
            let m = unsafe { meta_at(c, pagemap(c, page)) };
            let start = run_addr(m) as usize;
            // SAFETY: `m` is run metadata inside the header.
            let (state, class, npages) = unsafe { ((*m).state, (*m).class, (*m).npages) };
            match state {
                RUN_SLAB if (a - start) % CLASS_SIZE[class as usize] == 0 => {
                    Ok((CLASS_SIZE[class as usize], false))
                }
                RUN_LARGE if a == start => Ok((npages as usize * PAGE, false)),
                RUN_SLAB | RUN_LARGE => Err("is not the start of a block"),
                _ => Err("is in free pages: it was freed already"),
            }
        }
        _ => Err(FOREIGN),
    }
}

#[inline(always)]
fn alloc_unchecked(size: usize, align: usize, zero: bool, growing: bool) -> *mut u8 {
    if let Some(c) = small_class_of(size, align) {
        let p = tcache::alloc(c);
        if zero && !p.is_null() {
            // SAFETY: `p` is a fresh region of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        return p;
    }
    alloc_big(size, align, zero, growing)
}

#[cold]
fn alloc_big(size: usize, align: usize, zero: bool, growing: bool) -> *mut u8 {
    if align > MAX_ALIGN || size > isize::MAX as usize - MAX_ALIGN {
        return null_mut();
    }
    if size > LARGE_MAX || align > MAX_RUN_ALIGN {
        return huge_alloc(size, align, zero, growing).map_or(null_mut(), NonNull::as_ptr);
    }
    let Some(arena) = tcache::arena() else {
        return null_mut();
    };
    let c = class_of(size.max(SMALL_MAX + 1));
    if align <= PAGE && c < NCACHED && !growing {
        let p = tcache::alloc(c);
        if zero && !p.is_null() {
            // SAFETY: a fresh run of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        return p;
    }
    let room = if growing { LARGE_MAX / PAGE } else { 0 };
    let Some((p, is_zero)) = arena.alloc_large(CLASS_SIZE[c] / PAGE, align.max(PAGE), c, room)
    else {
        return null_mut();
    };
    tcache::count(c, true, arena);
    if zero && !is_zero {
        // SAFETY: a fresh run of at least `size` bytes.
        unsafe { ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Allocation of class `c` bypassing (or refilling) the thread cache.
pub(crate) fn alloc_direct(arena: &Arena, c: usize) -> *mut u8 {
    if c < NSMALL {
        let mut p = [null_mut(); 1];
        if arena.bin_fill(c, &mut p) == 1 {
            return p[0];
        }
        return null_mut();
    }
    arena
        .alloc_large(CLASS_SIZE[c] / PAGE, PAGE, c, 0)
        .map_or(null_mut(), |(p, _)| p)
}

/// Frees `p`, allocated with `(size, align)`.
///
/// # Safety
/// `p` is a live allocation of this allocator made with that layout (or a
/// size between it and its usable size).
#[inline(always)]
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        crate::checks::arena_freeing(p, check_block)
    };
    if let Some(c) = small_class_of(size, align) {
        // SAFETY: forwarded contract; the class follows from the layout.
        unsafe { tcache::free(p, c) };
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { free_unchecked(p) }
}

/// Frees `p` using only its metadata (C's `free`).
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        crate::checks::arena_freeing(p, check_block)
    };
    // SAFETY: forwarded contract.
    unsafe { free_unchecked(p) }
}

/// [`free`] of `p` if the arena owns it ([`super::registry::owns`]);
/// false, and nothing done, for a foreign pointer. One read of the region
/// map and one of the page map on the path of a small block (C's
/// `free`, which must refuse foreign pointers).
///
/// # Safety
/// `p` is a live allocation of this allocator, or memory it never had.
#[inline]
pub(crate) unsafe fn free_if_owned(p: *mut u8) -> bool {
    let a = p as usize;
    if !super::registry::in_chunk(a) {
        // Huge blocks, foreign pointers, and a registry that gave up (it
        // then owns everything).
        // SAFETY: forwarded contract.
        if !unsafe { super::registry::owns(p) } {
            return false;
        }
        // SAFETY: ours, per the registry.
        unsafe { free(p) };
        return true;
    }
    let base = a & !(CHUNK - 1);
    let page = (a - base) >> LG_PAGE;
    if page < HEADER_PAGES {
        return false;
    }
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    unsafe {
        crate::checks::arena_freeing(p, check_block)
    };
    let c = base as *mut ChunkHeader;
    // SAFETY: `base` is a live chunk (the registry marks it while mapped)
    // and `page` one of its pages.
    match unsafe { slab_at(c, page) } {
        Some((start, class)) => {
            check_slab_offset(p, a - (base + start * PAGE), class);
            // SAFETY: `p` starts a region of class `class`.
            unsafe { tcache::free(p, class) }
        }
        // SAFETY: ours, not in a slab.
        None => unsafe { free_run_or_huge(p) },
    }
    true
}

/// [`free`] without the debug checks (pool chunks, and after them).
///
/// # Safety
/// `p` is a live allocation of this allocator.
#[inline]
pub(crate) unsafe fn free_unchecked(p: *mut u8) {
    // SAFETY: forwarded contract.
    match unsafe { small_class_at(p) } {
        // SAFETY: `p` is an object of class `c`.
        Some(c) => unsafe { tcache::free(p, c) },
        // SAFETY: forwarded contract.
        None => unsafe { free_run_or_huge(p) },
    }
}

/// [`free_unchecked`] of a block that is not in a slab: a large run or a
/// huge mapping (out of line, so the small-object path stays short).
///
/// # Safety
/// `p` is a live allocation of this allocator.
#[inline(never)]
unsafe fn free_run_or_huge(p: *mut u8) {
    let a = p as usize;
    let hdr = if a % CHUNK == 0 {
        a - PAGE
    } else {
        a & !(CHUNK - 1)
    };
    // SAFETY: `p` is (or was, for a double free) a block of ours, so its
    // header is mapped: a live chunk or huge header, or a kept huge
    // mapping whose header `huge_free` cleared.
    if !matches!(unsafe { *(hdr as *const u32) }, KIND_CHUNK | KIND_HUGE) {
        super::heap::report_bad_free(p, b"was freed already");
    }
    // SAFETY: forwarded contract.
    match unsafe { lookup(p) } {
        Owner::Huge(h) => {
            // SAFETY: `h` is the header of `p`'s live mapping.
            unsafe { huge_free(h) }
        }
        Owner::Run(m) => {
            // SAFETY: `m` describes the run holding `p`.
            let (state, c) = unsafe { ((*m).state, (*m).class as usize) };
            // A pointer that cannot be the start of an allocated block is
            // refused here, before a thread cache would hand it out again.
            let off = p as usize - run_addr(m) as usize;
            let valid = match state {
                RUN_SLAB => ((off as u64 * CLASS_RECIP[c]) >> 32) as usize * CLASS_SIZE[c] == off,
                RUN_LARGE => off == 0,
                _ => false,
            };
            if !valid {
                super::heap::report_bad_free(p, b"is not the start of an allocated block");
            }
            if c < NCACHED {
                // SAFETY: `p` is an object of class `c`.
                unsafe { tcache::free(p, c) };
            } else {
                // SAFETY: `p` is a large run owned by this arena.
                let a = unsafe { owner_arena(p) };
                tcache::count(c, false, a);
                // SAFETY: as above.
                unsafe { a.free_large(m) };
            }
        }
    }
}

/// The class of `p` if it lies in a slab, from the page map alone (one
/// entry, no run metadata): the fast path of `free` and `usable_size`.
/// A pointer into a slab that is not the start of a region is reported
/// and the process aborts.
///
/// # Safety
/// `p` points into a live allocation of this allocator.
#[inline]
unsafe fn small_class_at(p: *const u8) -> Option<usize> {
    let a = p as usize;
    if a & (CHUNK - 1) == 0 {
        return None;
    }
    let c = (a & !(CHUNK - 1)) as *mut ChunkHeader;
    // SAFETY: `p` is ours, so the CHUNK-aligned address below it starts a
    // chunk or a huge header, both starting with `kind`; a chunk's page map
    // entry for a page of a live run is stable.
    let (start, class) = unsafe {
        if (*c).kind != KIND_CHUNK {
            return None;
        }
        slab_at(c, (a - c as usize) >> LG_PAGE)?
    };
    check_slab_offset(p, a - (c as usize + start * PAGE), class);
    Some(class)
}

/// Reports `p`, `off` bytes into a slab of class `class`, and aborts
/// unless it starts one of the slab's regions.
#[inline(always)]
fn check_slab_offset(p: *const u8, off: usize, class: usize) {
    if class >= NSMALL {
        super::heap::report_bad_free(p, b"lies in a page with a corrupt page map entry");
    }
    // SAFETY: `class < NSMALL`, the length of both tables.
    let (recip, size) = unsafe {
        (
            *CLASS_RECIP.get_unchecked(class),
            *CLASS_SIZE.get_unchecked(class),
        )
    };
    if ((off as u64 * recip) >> 32) as usize * size != off {
        super::heap::report_bad_free(p, b"is not the start of an allocated block");
    }
}

/// Usable bytes of `p`.
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn usable_size(p: *const u8) -> usize {
    // SAFETY: forwarded contract.
    unsafe { size_and_class(p) }.0
}

/// The usable size of `p` and, for a small block, its class (`None` for
/// large runs and huge blocks), both from the metadata.
///
/// # Safety
/// `p` is a live allocation of this allocator.
unsafe fn size_and_class(p: *const u8) -> (usize, Option<usize>) {
    // SAFETY: forwarded contract.
    match unsafe { lookup(p) } {
        // SAFETY: the header of a live mapping.
        Owner::Huge(h) => (unsafe { (*h).usable }, None),
        // SAFETY: the metadata of a live run.
        Owner::Run(m) => unsafe {
            if (*m).state == RUN_SLAB {
                let class = (*m).class as usize;
                (CLASS_SIZE[class], Some(class))
            } else {
                ((*m).npages as usize * PAGE, None)
            }
        },
    }
}

/// Resizes `p` from `old` to `new` bytes, in place when possible.
///
/// # Safety
/// As `GlobalAlloc::realloc`: `p` live with layout `(old, align)`.
pub(crate) unsafe fn realloc(p: *mut u8, old: usize, align: usize, new: usize) -> *mut u8 {
    // SAFETY: forwarded contract; the class follows from the layout.
    unsafe { resize(p, small_class_of(old, align), old, align, new) }
}

/// Resizes `p` to `new` bytes knowing only its metadata (C's `realloc`);
/// a moved block is aligned to `align`.
///
/// # Safety
/// `p` is a live allocation of this allocator.
pub(crate) unsafe fn realloc_unsized(p: *mut u8, align: usize, new: usize) -> *mut u8 {
    // The class comes from the metadata, not from the size: an over-aligned
    // large run or huge block can have the size of a small class.
    // SAFETY: forwarded contract.
    let (old, class) = unsafe { size_and_class(p) };
    // SAFETY: forwarded contract; `class` is `p`'s own.
    unsafe { resize(p, class, old, align, new) }
}

/// Shared by both reallocs: `p` holds `old` bytes and is of small class
/// `old_class` (`None`: large or huge); a moved block is aligned to `align`.
///
/// # Safety
/// `p` is a live allocation of this allocator matching `old_class`.
unsafe fn resize(
    p: *mut u8,
    old_class: Option<usize>,
    old: usize,
    align: usize,
    new: usize,
) -> *mut u8 {
    match (old_class, small_class_of(new, align)) {
        (Some(a), Some(b)) if a == b => return p,
        // SAFETY: forwarded contract.
        (None, None) if unsafe { resize_checked(p, align, new) } => return p,
        _ => {}
    }
    let q = alloc_with(new, align, false, new > old);
    if !q.is_null() {
        // SAFETY: both blocks are live, distinct, and hold at least the
        // copied bytes; `p` is freed once, by class when it is small.
        unsafe {
            ptr::copy_nonoverlapping(p, q, old.min(new));
            match old_class {
                Some(c) => tcache::free(p, c),
                None => free(p),
            }
        }
    }
    q
}

/// [`resize_in_place`], telling the debug checks about the new size.
///
/// # Safety
/// As [`resize_in_place`].
unsafe fn resize_checked(p: *mut u8, align: usize, new: usize) -> bool {
    // SAFETY: forwarded contract.
    #[cfg(any(feature = "checks", debug_assertions))]
    let before = unsafe { usable_size(p) };
    // SAFETY: forwarded contract.
    let done = unsafe { resize_in_place(p, align, new) };
    #[cfg(any(feature = "checks", debug_assertions))]
    if done {
        // SAFETY: `p` is still live, with its new size.
        crate::checks::arena_resized(p, before, unsafe { usable_size(p) });
    }
    done
}

/// # Safety
/// `p` is a live large or huge allocation aligned to `align`.
unsafe fn resize_in_place(p: *mut u8, align: usize, new: usize) -> bool {
    // SAFETY: forwarded contract.
    match unsafe { lookup(p) } {
        // SAFETY: the header of `p`'s live mapping.
        Owner::Huge(h) => unsafe { huge_resize(h, new) },
        Owner::Run(m) => {
            if new > LARGE_MAX || align > MAX_RUN_ALIGN {
                return false;
            }
            let c = class_of(new.max(SMALL_MAX + 1));
            let pages = CLASS_SIZE[c] / PAGE;
            // SAFETY: `m` is `p`'s live large run.
            unsafe {
                let old_c = (*m).class as usize;
                let have = (*m).npages as usize;
                let a = owner_arena(p);
                if pages == have {
                    return true;
                }
                if pages < have {
                    a.shrink_large(m, pages);
                } else if !a.grow_large(m, pages) {
                    return false;
                }
                (*m).class = c as u8;
                tcache::count(old_c, false, a);
                tcache::count(c, true, a);
            }
            true
        }
    }
}

/// Maps a huge block: `size` bytes aligned to `align`, with its header;
/// zeroed when `zero`. A mapping kept by [`super::huge_cache`] is reused
/// when one is long enough; `growing` (a `realloc` that grows) keeps all of
/// it, up to four times the size, as room to grow in place.
pub(crate) fn huge_alloc(
    size: usize,
    align: usize,
    zero: bool,
    growing: bool,
) -> Option<NonNull<u8>> {
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return None;
    }
    let usable = size.max(1).checked_add(PAGE - 1)? & !(PAGE - 1);
    if align < CHUNK {
        if let Some(p) = huge_reuse(usable, align.max(PAGE), zero, growing) {
            return Some(p);
        }
    }
    let (len, small_align) = if align < CHUNK {
        (
            CHUNK.checked_add(align.max(PAGE))?.checked_add(usable)?,
            true,
        )
    } else {
        (PAGE.checked_add(align)?.checked_add(usable)?, false)
    };
    let raw = sys::map(len)?.as_ptr() as usize;
    let (hdr, obj) = if small_align {
        let b = (raw + CHUNK - 1) & !(CHUNK - 1);
        (b, b + align.max(PAGE))
    } else {
        let obj = (raw + PAGE + align - 1) & !(align - 1);
        (obj - PAGE, obj)
    };
    let end = obj + usable;
    // SAFETY: both ranges are inside our fresh mapping and outside the
    // header..end block we keep.
    unsafe {
        sys::unmap_range(raw as *mut u8, hdr - raw);
        sys::unmap_range(end as *mut u8, raw + len - end);
    }
    HUGE_MAPPED.fetch_add(end - hdr, Relaxed);
    huge_publish(hdr, obj, usable)
}

/// Writes the header of the huge block `hdr..obj + usable` (a mapping of
/// ours, counted in `HUGE_MAPPED`), registers it and counts it.
fn huge_publish(hdr: usize, obj: usize, usable: usize) -> Option<NonNull<u8>> {
    let h = hdr as *mut HugeHeader;
    // SAFETY: the header page is ours and writable.
    unsafe {
        h.write(HugeHeader {
            kind: KIND_HUGE,
            ptr: obj as *mut u8,
            usable,
            map_base: hdr as *mut u8,
            map_len: obj + usable - hdr,
        });
    }
    super::registry::add_huge(hdr, obj);
    if stats_enabled() {
        HUGE_NMALLOC.fetch_add(1, Relaxed);
    }
    HUGE_BYTES.fetch_add(usable, Relaxed);
    NonNull::new(obj as *mut u8)
}

/// A huge block of `usable` bytes (page multiple), its object `off` bytes
/// (a page multiple below CHUNK) after a CHUNK-aligned header, carved from
/// a kept mapping; `None` when no kept mapping is long enough.
fn huge_reuse(usable: usize, off: usize, zero: bool, growing: bool) -> Option<NonNull<u8>> {
    let need = off.checked_add(usable)?;
    let (base, len) = super::huge_cache::take(need)?;
    // Keep the whole mapping when the excess is within the quarter steps
    // of `huge_resize`, or is room for a growing buffer; else unmap it.
    let keep = if len - need <= need / 3 || growing && len / 4 <= need {
        len
    } else {
        // SAFETY: the tail of a mapping we own and nobody uses.
        unsafe { sys::unmap_range((base + need) as *mut u8, len - need) };
        HUGE_MAPPED.fetch_sub(len - need, Relaxed);
        need
    };
    let obj = base + off;
    if zero {
        // SAFETY: the object's pages are ours, mapped and unused.
        unsafe { ptr::write_bytes(obj as *mut u8, 0, usable) };
    }
    huge_publish(base, obj, keep - off)
}

/// Unmaps a huge block.
///
/// # Safety
/// `h` is the header of a live huge block no one uses any more.
pub(crate) unsafe fn huge_free(h: *mut HugeHeader) {
    // SAFETY: per the contract.
    let (base, len, usable) = unsafe {
        super::registry::remove_huge(h);
        // A kept mapping must not look like a live block to a second free.
        (*h).kind = 0;
        ((*h).map_base, (*h).map_len, (*h).usable)
    };
    if stats_enabled() {
        HUGE_NFREE.fetch_add(1, Relaxed);
    }
    HUGE_BYTES.fetch_sub(usable, Relaxed);
    let now = sys::now_ms();
    let kept = if base as usize % CHUNK == 0 {
        super::huge_cache::put(base as usize, len, now, decay_ms())
    } else {
        None
    };
    match kept {
        Some(evicted) => {
            HUGE_MAPPED.fetch_sub(evicted, Relaxed);
            huge_purge(now);
        }
        None => {
            HUGE_MAPPED.fetch_sub(len, Relaxed);
            // SAFETY: the whole mapping is ours and no longer used.
            unsafe { sys::unmap_range(base, len) };
        }
    }
}

/// Unmaps kept huge mappings free for `decay_ms` (all with `u64::MAX`).
pub(crate) fn huge_purge(now: u64) {
    let gone = super::huge_cache::purge(now, decay_ms());
    if gone > 0 {
        HUGE_MAPPED.fetch_sub(gone, Relaxed);
    }
}

/// Resizes a huge block in place: shrinks by unmapping its tail, grows with
/// `mremap` when the address space after it is free. Like the size
/// classes, sizes move in steps of a quarter: a block keeps its pages for
/// any size down to three quarters of them, and grows by at least a
/// quarter (exactly as asked if that much room is not there), so a buffer
/// grown by small appends costs one system call per quarter, not per page.
///
/// # Safety
/// `h` is the header of a live huge block owned by the caller.
unsafe fn huge_resize(h: *mut HugeHeader, new: usize) -> bool {
    let need = (new.max(1) + PAGE - 1) & !(PAGE - 1);
    // SAFETY: per the contract the block and its header are ours.
    unsafe {
        let have = (*h).usable;
        let (base, len) = ((*h).map_base, (*h).map_len);
        if need <= have && need >= have - have / 4 {
            return true;
        }
        let want = if need < have {
            sys::unmap_range((*h).ptr.add(need), have - need);
            need
        } else {
            let step = (have + have / 4 + PAGE - 1) & !(PAGE - 1);
            let grow = |to: usize| sys::remap_in_place(base, len, len + (to - have));
            if need < step && grow(step) {
                step
            } else if grow(need) {
                need
            } else {
                return false;
            }
        };
        (*h).usable = want;
        (*h).map_len = len - have + want;
        HUGE_BYTES.fetch_add(want, Relaxed);
        HUGE_BYTES.fetch_sub(have, Relaxed);
        HUGE_MAPPED.fetch_add(want, Relaxed);
        HUGE_MAPPED.fetch_sub(have, Relaxed);
    }
    true
}

/// Flushes the caller's cache, then purges every arena now.
pub(crate) fn trim() {
    if !ensure_init() {
        return;
    }
    tcache::flush_current();
    for i in 0..narenas() {
        if let Some(a) = arena(i) {
            a.purge_all();
        }
    }
    huge_purge(u64::MAX);
}
