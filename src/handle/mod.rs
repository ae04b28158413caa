//! Shared owners with generational weak handles: [`Shared<T>`] and
//! [`Weak<T>`].
//!
//! # Concept
//!
//! `Shared<T>` is a reference-counted owner like `Arc<T>`. `Weak<T>` is not a
//! pointer but an 8-byte *key* into one process-wide **handle table** that
//! knows nothing about pools or types: a slot index and the generation the
//! slot had when the key was made. Consequences:
//!
//! - When the last `Shared` goes, the object is dropped **and its memory
//!   freed at once** (`Box` memory back to the global allocator, pool memory
//!   back to its [`Pool`](crate::Pool)), however many `Weak`s exist. With
//!   `std::sync::Weak` the allocation lives until the last `Weak` is gone.
//! - A `Weak` is `Copy`, has no `Drop` and holds nothing alive but its
//!   16-byte table slot, which is recycled for the next object.
//! - Upgrading a stale `Weak` gives `None` even after the slot and the
//!   memory were reused: liveness is decided by the slot's generation, never
//!   by looking at object memory.
//!
//! ```
//! use hotpool::{Shared, Weak};
//!
//! struct Link { url: String }
//!
//! let link = Shared::new(Link { url: "amqp://peer".into() });
//! let w: Weak<Link> = Shared::downgrade(&link);
//! assert_eq!(w.upgrade().unwrap().url, "amqp://peer");
//! drop(link);                      // dropped and memory freed now
//! assert!(w.upgrade().is_none());
//!
//! static LINKS: hotpool::Pool<Link> = hotpool::Pool::new();
//! let pooled = Shared::new_in(Link { url: "b".into() }, &LINKS);
//! assert_eq!(LINKS.stats().in_use, 1);
//! drop(pooled);                    // the object's slot is back in LINKS
//! assert_eq!(LINKS.stats().in_use, 0);
//! ```
//!
//! # Design
//!
//! The table is an array of up to 26 **segments**; segment `k` holds
//! `64 << k` slots, is mapped from the OS (zeroed, through `sys`; from the
//! global allocator where `sys` cannot map) the first time a slot in it is
//! needed, published with a CAS and never moved or freed, so a slot's
//! address is stable for the life of the process.
//!
//! ```text
//!  TABLE.segments: [ *seg0 | *seg1 | *seg2 | ... | *seg25 | null x6 ]
//!                      |        |
//!                      |        +--> [ slot 64 | slot 65 | ... | slot 191 ]   128 slots
//!                      +-----------> [ slot 0  | slot 1  | ... | slot 63  ]    64 slots
//!
//!  slot (16 bytes)                         Shared<T> (8 bytes)
//!  +--------------------+---------------+   +--------------+
//!  | state: AtomicU64   | ptr: *mut ()  |<--| NonNull<Slot>|
//!  +--------------------+---------------+   +--------------+
//!                              |
//!                              v
//!                        the T (Box or pool slot)
//!
//!  Weak<T> (8 bytes) = { offset in segment: u32, stamp: NonZeroU32 }
//! ```
//!
//! The **state word** packs everything the protocol decides on, so every
//! transition is a single atomic operation:
//!
//! ```text
//!   63                 37 36   32 31   30  29                            0
//!  +---------------------+-------+----+----+-------------------------------+
//!  | generation (27 bit) |seg (5)| WM | PL |     strong count (30 bit)     |
//!  +---------------------+-------+----+----+-------------------------------+
//!  \________ stamp: upper 32 bits, kept by every Weak _______/
//! ```
//!
//! - *generation*: 0 = slot never used, `1 ..= 2^27 - 2` = live or free,
//!   `2^27 - 1` = retired.
//! - *seg*: the slot's segment number (constant); it lets a `Shared` find
//!   its slot index (for the free list and for `downgrade`) without a
//!   search, and lets `upgrade` find the segment without arithmetic.
//! - *WM* (weak made): set by the first `downgrade` of the object.
//! - *PL* (pooled): the memory came from a `Pool`, not a `Box`.
//!
//! Transitions:
//!
//! | operation | atomic step on `state` |
//! |---|---|
//! | `Shared::new`/`new_in` | pop a free slot (or take a fresh one); store `ptr`; store `stamp, count 1` (Release) |
//! | `Weak::upgrade` | load; fail unless stamp equal and count > 0; CAS count + 1 (Acquire) |
//! | `Shared::clone` | `fetch_add(1)` |
//! | `Shared::drop` | `fetch_sub(1)` (AcqRel); the thread that saw 1 is the last owner |
//! | last owner | store `generation + 1, count 0` (or retire); push slot on free list; drop the object; free its memory |
//! | `Shared::downgrade` | `fetch_or(WM)` the first time, else a load |
//! | `Shared::new_cyclic` | take a slot; store `stamp, WM, count 0` (its `Weak` fails to upgrade); after the closure: store `ptr`, then `stamp, WM, count 1` (Release); if the closure panics, the slot is recycled as by a last owner |
//! | `Shared::make_mut`, sole owner with WM | CAS count 1 -> 0 and recycle the slot (old `Weak`s go stale); the same memory gets a fresh slot without WM |
//!
//! Free slots form a lock-free **Treiber stack** of slot indices. Its head is
//! one `AtomicU64`: `ABA tag (32 bit) | index + 1 (32 bit)`; every push and
//! pop changes the tag, so a pop that read `head = A, next = B` cannot
//! succeed after others popped `A` and `B` and pushed `A` back. The link to
//! the next free slot lives in the free slot's `ptr` field (as an integer),
//! so the list costs no memory. Segments are never freed, so reading a
//! link of a slot that was popped meanwhile reads garbage, never freed
//! memory, and the tagged CAS then fails.
//!
//! ## Why an upgrade cannot race the last drop into a use-after-free
//!
//! Both operate on the same word. The last drop is the `fetch_sub` that
//! moves the count from 1 to 0. An upgrade succeeds only by a CAS from a
//! value it read with a count > 0 and its own stamp.
//!
//! - If the upgrade's CAS comes first in the word's modification order, the
//!   count was >= 1 and becomes >= 2, so the `fetch_sub` does not see 1: the
//!   dropping thread is not last and the object lives on, now owned by the
//!   upgrader.
//! - If the `fetch_sub` comes first, every later value of the word has
//!   either count 0 with the old stamp (until the last owner stores the next
//!   generation) or a different stamp; the CAS expected a value with count >
//!   0 and the old stamp, so it fails, and the retry sees one of those and
//!   returns `None`. Count 0 is final for a generation: nothing increments
//!   from 0.
//!
//! So exactly one thread performs the 1 -> 0 step (no double drop), it
//! always frees (no leak), and a stamp names one object life because the
//! generation grows on every reuse and a slot is retired before its
//! generation could wrap (no ABA on the state word). The protocol is
//! model-checked with loom (`tests/loom_handle.rs`).
//!
//! # Costs and limits
//!
//! | what | value |
//! |---|---|
//! | `Shared<T>` / `Option<Shared<T>>` | 8 bytes (one pointer) |
//! | `Weak<T>` / `Option<Weak<T>>` | 8 bytes |
//! | table memory per slot (live, free or retired) | 16 bytes; segments are allocated zeroed, so untouched slots cost address space only |
//! | per object, besides its own memory | one slot; `Box` allocation or pool slot of `size_of::<T>()` |
//! | memory held by a dead object with `Weak`s | none; its 16-byte slot is reused |
//! | deref | two dependent loads (slot, then object), `Arc` needs one |
//! | clone / drop | one atomic RMW (like `Arc`) |
//! | upgrade, live | two loads + one CAS |
//! | upgrade, stale | two loads + compare, no write |
//! | downgrade | one load (one RMW the first time per object) |
//! | slots | at most 2^32 - 64 in the process; `Shared::new` panics beyond, `Shared::try_new` returns [`AllocError::HandleTableFull`](crate::AllocError::HandleTableFull) |
//! | strong count | aborts at 2^29 owners of one object (like `Arc` at `isize::MAX`) |
//! | slot reuse | a slot is retired (never reused, 16 bytes kept) after 2^27 - 2 objects have used it |
//! | table memory | never returned to the OS (segments are reused, never freed) |
//! | thread exit | nothing to do: the table has no per-thread state |
//! | free-list ABA | the 32-bit tag would need exactly 2^32 list operations while one `pop` is preempted between two loads |
//!
//! `T` must be `Sized`. `Shared<T>` is `Send`/`Sync` when `T: Send + Sync`,
//! like `Arc<T>`; so is `Weak<T>`: a handle that can upgrade to a
//! `Shared<T>` on another thread needs what sending the `Shared` needs.
//!
//! ```compile_fail,E0277
//! use std::cell::Cell;
//! let a = hotpool::Shared::new(Cell::new(1));
//! let w = hotpool::Shared::downgrade(&a);
//! // error[E0277]: `Cell<i32>` cannot be shared between threads safely
//! std::thread::spawn(move || w.upgrade().map(|s| s.get()));
//! ```
//!
//! # Statistics
//!
//! [`stats()`] walks the table and returns a [`HandleStats`]:
//!
//! | field | meaning |
//! |---|---|
//! | `slots_in_use` | slots holding a live object |
//! | `slots_free` | slots ever used that are free for reuse (includes slots mid-transition) |
//! | `slots_retired` | slots whose generation ran out; never reused |
//! | `bytes` | memory the table holds: its segments (mapped from the OS in whole pages, so the two smallest take a page each) plus the static header. Segments double, so up to half of the last one may be untouched (zeroed pages the OS has not yet backed: address space, not resident memory) |

mod shared;
mod table;
mod weak;

pub use shared::Shared;
pub use weak::Weak;

/// Memory use of the process-wide handle table (see the [module
/// docs](self#statistics)).
///
/// # Examples
///
/// ```
/// let before = hotpool::handle::stats();
/// let a = hotpool::Shared::new(1u8);
/// let after = hotpool::handle::stats();
/// // Other threads may be using handles too, so only `>=` is certain.
/// assert!(after.slots_in_use + after.slots_free >= 1);
/// assert!(after.bytes >= before.bytes);
/// drop(a);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandleStats {
    /// Slots holding a live object.
    pub slots_in_use: usize,
    /// Slots that held an object and may be reused.
    pub slots_free: usize,
    /// Slots retired forever because their generation ran out.
    pub slots_retired: usize,
    /// Bytes of memory the table holds (segments plus header).
    pub bytes: usize,
}

/// Registers the handle table's line in [`crate::arena::stats_print`]
/// (the arena cannot name this layer): called when the table makes its
/// first segment, so a process without handles has no such line. Also
/// starts the report on `HOTPOOL_CONF=stats_signal` (once), which the
/// arena starts only if it is used.
fn register_report() {
    #[cfg(target_os = "linux")]
    {
        crate::arena::set_handle_report_hook(write_report);
        crate::arena::start_signal_report();
    }
}

/// The handle table's line, for the arena's statistics report.
#[cfg(target_os = "linux")]
fn write_report(out: &mut String) {
    use std::fmt::Write as _;
    let s = stats();
    let _ = writeln!(
        out,
        "slots in use {}, free {}, retired {}; table {}",
        s.slots_in_use,
        s.slots_free,
        s.slots_retired,
        crate::report::human_bytes(s.bytes)
    );
}

/// Counts the slots of the process-wide handle table.
///
/// Walks every slot ever used (O(slots), meant for diagnostics, not hot
/// paths) without stopping other threads, so under concurrent use the
/// counts are a blurred snapshot.
///
/// # Examples
///
/// ```
/// let w = hotpool::Shared::downgrade(&hotpool::Shared::new([0u8; 256]));
/// assert!(w.upgrade().is_none());
/// let s = hotpool::handle::stats();
/// assert!(s.slots_free + s.slots_in_use >= 1);
/// println!("{} bytes of handle table", s.bytes);
/// ```
pub fn stats() -> HandleStats {
    let c = table::table().census();
    HandleStats {
        slots_in_use: c.in_use,
        slots_free: c.free,
        slots_retired: c.retired,
        bytes: c.bytes,
    }
}
