//! The handle table: slots, their state words, segment growth and the free
//! list. This file holds the whole concurrent protocol of `Shared`/`Weak`;
//! `shared.rs` and `weak.rs` only call into it. It never touches the objects
//! the slots point to: it stores their address and hands it back.
//!
//! See the module docs of `handle` for the layout diagrams and the race
//! argument; the constants below are the bit layout they describe.
//!
//! Memory: segments are mapped from the OS through `sys` (the global
//! allocator only where `sys` cannot map), so the table never holds part
//! of another allocator's heap. A segment costs address space when mapped
//! and resident memory only for the pages of slots ever handed out.
//!
//! Pages whose slots are all free are kept, not given back, by decision:
//! purging a page (`MADV_DONTNEED`) would zero its state words, and a slot
//! restarting at generation 1 could match an old `Weak` again; its free
//! slots are also links of the lock-free free list, which cannot unlink a
//! page's slots from the middle without a lock. Keeping the generations
//! elsewhere or retiring whole pages would cost the fast paths or the
//! slots. So the table's resident memory is 16 bytes per slot at the
//! highest number of live `Shared` objects the process ever had (64 MiB
//! after 4 Mi), reused by later objects.

use core::ptr::{self, NonNull};

use crate::sync::{AtomicPtr, AtomicU64, Ordering};

// ---------------------------------------------------------------------------
// State word (one `AtomicU64` per slot).
//
//   63                 37 36   32 31   30  29                            0
//  +---------------------+-------+----+----+-------------------------------+
//  | generation (27 bit) |seg (5)| WM | PL |     strong count (30 bit)     |
//  +---------------------+-------+----+----+-------------------------------+
//  \______ stamp: the upper 32 bits, what a `Weak` remembers ___/
//
// WM = a `Weak` was made from the current object (gates `get_mut`).
// PL = the object's memory came from a `Pool` (else from a `Box`).
// ---------------------------------------------------------------------------

/// Bits of the strong count.
pub(crate) const COUNT_BITS: u32 = 30;
/// Mask of the strong count in the state word.
pub(crate) const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Abort when a count reaches this (half the field): leaves 2^29 increments
/// of head-room for threads racing past the check, like `Arc`'s
/// `MAX_REFCOUNT`.
pub(crate) const MAX_COUNT: u64 = 1 << (COUNT_BITS - 1);
/// Flag: the object's memory is a pool slot (`Shared::new_in`).
pub(crate) const POOLED: u64 = 1 << 30;
/// Flag: `Shared::downgrade` was called for the current object.
pub(crate) const WEAK_MADE: u64 = 1 << 31;
/// The stamp is the state word shifted right by this.
const STAMP_SHIFT: u32 = 32;
/// Bits of the segment number inside a stamp.
const SEG_BITS: u32 = 5;
/// Mask of the segment number inside a stamp.
const SEG_MASK: u32 = (1 << SEG_BITS) - 1;
/// Bits of the generation inside a stamp.
const GEN_BITS: u32 = 32 - SEG_BITS;
/// A slot whose generation is this is retired: never handed out again.
/// Live objects have generations `1..GEN_RETIRED`; 0 means "never used".
pub(crate) const GEN_RETIRED: u32 = (1 << GEN_BITS) - 1;

// ---------------------------------------------------------------------------
// Segments: segment `k` holds `SEG0_LEN << k` slots, so slot index `i` lives
// in segment `floor(log2(i + SEG0_LEN)) - SEG0_SHIFT`.
// ---------------------------------------------------------------------------

/// log2 of the number of slots in segment 0 (small under loom so a model
/// only creates a handful of atomics).
const SEG0_SHIFT: u32 = if cfg!(loom) { 2 } else { 6 };
/// Number of slots in segment 0.
const SEG0_LEN: u64 = 1 << SEG0_SHIFT;
/// Number of segments that can ever be allocated.
pub(crate) const NUM_SEGMENTS: usize = (32 - SEG0_SHIFT) as usize;
/// Slots the table can ever hold: `SEG0_LEN * (2^NUM_SEGMENTS - 1)`, i.e.
/// `2^32 - SEG0_LEN`, so `index + 1` always fits in 32 bits.
pub(crate) const MAX_SLOTS: u64 = SEG0_LEN * ((1 << NUM_SEGMENTS) - 1);
/// Segment number stored in the stamp of `Weak::new()`: never allocated, so
/// its segment pointer stays null and upgrade fails there.
pub(crate) const DANGLING_SEG: u32 = SEG_MASK;
/// Length of the segment-pointer array: every value of a stamp's segment
/// field indexes it, so `upgrade` needs no bounds check.
const SEG_ARRAY_LEN: usize = 1 << SEG_BITS;

const _: () = assert!(NUM_SEGMENTS < DANGLING_SEG as usize);
const _: () = assert!(MAX_SLOTS < u32::MAX as u64);

/// Packs a generation and a segment number into a stamp.
#[inline]
pub(crate) const fn make_stamp(generation: u32, seg: u32) -> u32 {
    (generation << SEG_BITS) | seg
}

/// The stamp (upper half) of a state word.
#[inline]
pub(crate) const fn stamp_of(state: u64) -> u32 {
    (state >> STAMP_SHIFT) as u32
}

/// The generation of a stamp.
#[inline]
pub(crate) const fn generation_of(stamp: u32) -> u32 {
    stamp >> SEG_BITS
}

/// The segment number of a stamp.
#[inline]
pub(crate) const fn seg_of(stamp: u32) -> usize {
    (stamp & SEG_MASK) as usize
}

/// Whether `(offset, stamp)` could be the key of a `Weak`: the segment
/// exists (or is `DANGLING_SEG` with offset 0, `Weak::new`) and the offset
/// is inside it. Generation 0 names no object but is harmless (it never
/// matches a live slot).
#[inline]
pub(crate) const fn valid_key(offset: u32, stamp: u32) -> bool {
    let seg = seg_of(stamp);
    if seg == DANGLING_SEG as usize {
        return offset == 0;
    }
    seg < NUM_SEGMENTS && (offset as usize) < seg_len(seg)
}

/// Number of slots in segment `seg`.
#[inline]
const fn seg_len(seg: usize) -> usize {
    (SEG0_LEN as usize) << seg
}

/// Index of the first slot of segment `seg`.
#[inline]
const fn seg_start(seg: usize) -> u64 {
    SEG0_LEN * ((1u64 << seg) - 1)
}

/// Segment number and offset in it of slot `index`.
#[inline]
const fn locate(index: u64) -> (usize, usize) {
    let biased = index + SEG0_LEN;
    let msb = 63 - biased.leading_zeros();
    ((msb - SEG0_SHIFT) as usize, (biased - (1 << msb)) as usize)
}

/// An upgrade refused by the count of a state word whose stamp matched:
/// `None` at count 0 (the object is being dropped), an abort at
/// `MAX_COUNT` or more (as `Arc` does on overflow).
#[cold]
#[inline(never)]
fn refuse<T>(state: u64) -> Option<T> {
    if state & COUNT_MASK == 0 {
        return None;
    }
    std::process::abort()
}

/// One entry of the table: 16 bytes on 64-bit targets.
///
/// While an object is alive `ptr` is its address; while the slot is on the
/// free list `ptr` carries no address but the free-list link (`index + 1`
/// of the next free slot, 0 at the end) as an integer.
#[repr(C)]
pub(crate) struct Slot {
    /// Generation, segment, flags and strong count: see the layout above.
    pub(crate) state: AtomicU64,
    /// The object, or the free-list link.
    pub(crate) ptr: AtomicPtr<()>,
}

#[cfg(all(not(loom), target_pointer_width = "64"))]
static_assertions::assert_eq_size!(Slot, [u64; 2]);

impl Slot {
    #[cfg(loom)]
    fn new() -> Self {
        Slot {
            state: AtomicU64::new(0),
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// Encodes a free-list link (an integer) in the `ptr` field without
/// inventing an address: the pointer has no provenance and is never
/// dereferenced, only turned back into an integer.
#[inline]
fn link_to_ptr(link: u32) -> *mut () {
    ptr::null_mut::<u8>().wrapping_add(link as usize).cast()
}

/// Decodes a free-list link. The slot may have been popped and reused since
/// the caller read the list head, in which case this is garbage, which is
/// fine: the head CAS that would use it then fails.
#[inline]
fn ptr_to_link(p: *mut ()) -> u32 {
    p as usize as u32
}

/// What the last owner of an object gets back from the table once the slot
/// has been recycled: the object's address and where its memory came from.
pub(crate) struct Reclaimed {
    /// Address stored by `alloc`.
    pub(crate) ptr: *mut (),
    /// True when the memory is a pool slot.
    pub(crate) pooled: bool,
}

/// Why a slot could not be had.
#[derive(Debug)]
pub(crate) enum Full {
    /// `MAX_SLOTS` slots are in use or retired.
    Slots,
    /// The allocator refused a new segment of this layout.
    Memory(std::alloc::Layout),
}

/// Keeps the write-hot words off the cache line that `upgrade` reads.
#[repr(align(128))]
struct Padded<T>(T);

/// A handle table. The process has one (`table()`); tests and loom models
/// may build their own.
pub(crate) struct Table {
    /// Segment `k` or null; published once by CAS, never moved or freed
    /// (except by `Drop`, which needs `&mut self`).
    segments: [AtomicPtr<Slot>; SEG_ARRAY_LEN],
    /// Free-list head: `tag << 32 | (index + 1)`, 0 in the low half when
    /// empty. The tag changes on every push and pop (ABA guard).
    free: Padded<AtomicU64>,
    /// Next never-used slot index.
    fresh: Padded<AtomicU64>,
}

/// Counts returned by `Table::census`.
pub(crate) struct Census {
    pub(crate) in_use: usize,
    pub(crate) free: usize,
    pub(crate) retired: usize,
    pub(crate) bytes: usize,
}

impl Table {
    /// An empty table: no segment allocated yet.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Table {
            segments: [const { AtomicPtr::new(ptr::null_mut()) }; SEG_ARRAY_LEN],
            free: Padded(AtomicU64::new(0)),
            fresh: Padded(AtomicU64::new(0)),
        }
    }

    /// An empty table: no segment allocated yet.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Table {
            segments: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            free: Padded(AtomicU64::new(0)),
            fresh: Padded(AtomicU64::new(0)),
        }
    }

    /// Takes a slot (recycled if possible), stores `obj` in it and sets its
    /// strong count to 1. Returns the slot, which stays valid for the life of
    /// the table.
    ///
    /// # Panics
    /// When `MAX_SLOTS` slots are in use or retired, or a new segment cannot
    /// be allocated.
    pub(crate) fn alloc(&self, obj: *mut (), pooled: bool) -> NonNull<Slot> {
        match self.try_alloc(obj, pooled) {
            Ok(slot) => slot,
            Err(Full::Slots) => panic!("hotpool: handle table full ({MAX_SLOTS} slots)"),
            Err(Full::Memory(layout)) => std::alloc::handle_alloc_error(layout),
        }
    }

    /// [`Table::alloc`], returning an error where it would panic.
    pub(crate) fn try_alloc(&self, obj: *mut (), pooled: bool) -> Result<NonNull<Slot>, Full> {
        let (slot, stamp) = self.take_slot()?;
        self.publish(slot, stamp, obj, if pooled { POOLED } else { 0 });
        Ok(slot)
    }

    /// A free slot (recycled if possible) and its current stamp. The slot's
    /// state word still has count 0, so no `Weak` upgrades through it yet.
    fn take_slot(&self) -> Result<(NonNull<Slot>, u32), Full> {
        if let Some(index) = self.pop() {
            let slot = self.slot_at(index);
            // SAFETY: `slot_at` returns a slot of a published segment,
            // and segments are never freed while `self` is borrowed.
            let s = unsafe { slot.as_ref() };
            // Acquire on the head in `pop` ordered this after the
            // releaser's store of the bumped generation.
            return Ok((slot, stamp_of(s.state.load(Ordering::Relaxed))));
        }
        // Claim an index only if it exists: a failed claim must not use up
        // indices (`try_` callers may retry).
        let mut index = self.fresh.0.load(Ordering::Relaxed);
        loop {
            if index >= MAX_SLOTS {
                return Err(Full::Slots);
            }
            match self.fresh.0.compare_exchange_weak(
                index,
                index + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => index = now,
            }
        }
        let (seg, offset) = locate(index);
        let base = match self.segment(seg) {
            Ok(base) => base,
            Err(layout) => {
                // The index is lost for good (its segment may be allocated
                // later by a neighbour, but `fresh` has moved on): at most
                // one slot per failed segment allocation.
                return Err(Full::Memory(layout));
            }
        };
        // SAFETY: `offset < seg_len(seg)` by `locate`, so the result
        // stays inside the segment allocation.
        let slot = unsafe { NonNull::new_unchecked(base.as_ptr().add(offset)) };
        Ok((slot, make_stamp(1, seg as u32)))
    }

    /// Stores `obj` in a slot from `take_slot` and makes it live with count
    /// 1 under `stamp`, with `flags` (`POOLED`, `WEAK_MADE`).
    fn publish(&self, slot: NonNull<Slot>, stamp: u32, obj: *mut (), flags: u64) {
        // SAFETY: as in `take_slot`: a slot of a published, never-freed
        // segment.
        let s = unsafe { slot.as_ref() };
        s.ptr.store(obj, Ordering::Relaxed);
        // Release: whoever acquires this state (an upgrade) sees `ptr`.
        s.state.store(
            (u64::from(stamp) << STAMP_SHIFT) | flags | 1,
            Ordering::Release,
        );
    }

    /// For `Shared::new_cyclic`: a slot with count 0 and `WEAK_MADE` set,
    /// and the key of a `Weak` to it. That `Weak` fails to upgrade (count
    /// 0) until [`Table::publish_reserved`]; if construction is abandoned,
    /// [`Table::abandon`] bumps the generation so it never upgrades.
    pub(crate) fn reserve(&self) -> Result<(NonNull<Slot>, u32, u32), Full> {
        let (slot, stamp) = self.take_slot()?;
        // SAFETY: a slot of a published, never-freed segment.
        let s = unsafe { slot.as_ref() };
        s.state.store(
            (u64::from(stamp) << STAMP_SHIFT) | WEAK_MADE,
            Ordering::Relaxed,
        );
        Ok((slot, self.offset_of(s, seg_of(stamp)), stamp))
    }

    /// Makes a slot from [`Table::reserve`] live: stores `obj`, count 1.
    pub(crate) fn publish_reserved(&self, slot: NonNull<Slot>, obj: *mut (), pooled: bool) {
        // SAFETY: a slot of a published, never-freed segment.
        let state = unsafe { slot.as_ref() }.state.load(Ordering::Relaxed);
        let flags = WEAK_MADE | if pooled { POOLED } else { 0 };
        self.publish(slot, stamp_of(state), obj, flags);
    }

    /// Gives back a slot from [`Table::reserve`] that never became live;
    /// its generation moves on, so `Weak`s made from it stay dead.
    pub(crate) fn abandon(&self, slot: NonNull<Slot>) {
        // SAFETY: a slot of a published, never-freed segment.
        let s = unsafe { slot.as_ref() };
        let state = s.state.load(Ordering::Relaxed);
        // Nobody else owns the slot: the reservation is ours and upgrades
        // refuse count 0. `recycle` reads `ptr` (a stale link: returned and
        // ignored) and pushes the slot back.
        let _ = self.recycle(s, state);
    }

    /// The slot a `Weak` names, if its segment exists. Does not check the
    /// stamp.
    #[inline(always)]
    fn weak_slot(&self, offset: u32, stamp: u32) -> Option<&Slot> {
        let base = self.segments[seg_of(stamp)].load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        // SAFETY: a non-null segment pointer is a live segment of
        // `seg_len(seg)` slots that is never freed while `self` is
        // borrowed; `offset` was computed by `weak_key` for a slot of that
        // very segment (the stamp carries the segment number), so it is in
        // bounds. `Weak::new()` names `DANGLING_SEG`, which is never
        // allocated and so returned above.
        Some(unsafe { &*base.add(offset as usize) })
    }

    /// Upgrade: +1 on the strong count if the slot still holds the object
    /// of `stamp`.
    ///
    /// The fast path is straight-line code, no loop: one segment load, one
    /// state load, the stamp compare (where a stale handle leaves), one
    /// range check of the count and one CAS. A CAS that loses a race with
    /// another count change retries out of line ([`Table::upgrade_retry`]),
    /// so the common path carries no loop (and no loop-alignment padding).
    #[inline(always)]
    pub(crate) fn upgrade(&self, offset: u32, stamp: u32) -> Option<NonNull<Slot>> {
        let slot = self.weak_slot(offset, stamp)?;
        // Relaxed: only a guess for the CAS, which is what orders.
        let cur = slot.state.load(Ordering::Relaxed);
        if stamp_of(cur) != stamp {
            return None;
        }
        // One compare for both refusals: count 0 (the window between the
        // last drop and the generation bump: dead already) wraps to the
        // top, and a count at MAX_COUNT or above aborts.
        if (cur & COUNT_MASK).wrapping_sub(1) >= MAX_COUNT - 1 {
            return refuse(cur);
        }
        // Acquire: pairs with the Release of `publish` (the `ptr` store
        // and the object's initialisation) and of other owners' drops.
        // Strong CAS: a spurious failure would only cost the slow path.
        match slot
            .state
            .compare_exchange(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(NonNull::from(slot)),
            Err(now) => Self::upgrade_retry(slot, stamp, now),
        }
    }

    /// [`Table::upgrade`] after its CAS lost a race: the same checks and
    /// CAS, in a loop, with the state word `cur` the CAS saw.
    #[cold]
    #[inline(never)]
    fn upgrade_retry(slot: &Slot, stamp: u32, mut cur: u64) -> Option<NonNull<Slot>> {
        loop {
            if stamp_of(cur) != stamp {
                return None;
            }
            if (cur & COUNT_MASK).wrapping_sub(1) >= MAX_COUNT - 1 {
                return refuse(cur);
            }
            // Acquire: as in `upgrade`.
            match slot.state.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(NonNull::from(slot)),
                Err(now) => cur = now,
            }
        }
    }

    /// True if the slot named by a `Weak` holds its object right now.
    #[inline]
    pub(crate) fn is_alive(&self, offset: u32, stamp: u32) -> bool {
        self.strong_count(offset, stamp) != 0
    }

    /// The strong count of the object a `Weak` names, 0 if it is gone.
    #[inline]
    pub(crate) fn strong_count(&self, offset: u32, stamp: u32) -> usize {
        match self.weak_slot(offset, stamp) {
            Some(slot) => {
                let cur = slot.state.load(Ordering::Acquire);
                if stamp_of(cur) == stamp {
                    (cur & COUNT_MASK) as usize
                } else {
                    0
                }
            }
            None => 0,
        }
    }

    /// Offset and stamp of a live slot, for a new `Weak`; sets `WEAK_MADE`.
    #[inline]
    pub(crate) fn downgrade(&self, slot: &Slot) -> (u32, u32) {
        let mut cur = slot.state.load(Ordering::Relaxed);
        if cur & WEAK_MADE == 0 {
            // Relaxed is enough: `get_mut` reads the bit on a thread that
            // holds the only `Shared`, so it is ordered after this RMW by
            // the (AcqRel) drop of every other `Shared`.
            cur = slot.state.fetch_or(WEAK_MADE, Ordering::Relaxed);
        }
        let stamp = stamp_of(cur);
        (self.offset_of(slot, seg_of(stamp)), stamp)
    }

    /// Offset of `slot` inside segment `seg`.
    #[inline]
    fn offset_of(&self, slot: &Slot, seg: usize) -> u32 {
        let base = self.segments[seg].load(Ordering::Acquire);
        let bytes = (slot as *const Slot as usize) - (base as usize);
        (bytes / core::mem::size_of::<Slot>()) as u32
    }

    /// +1 on the strong count of a live slot (`Shared::clone`).
    #[inline]
    pub(crate) fn retain(&self, slot: &Slot) {
        let old = slot.state.fetch_add(1, Ordering::Relaxed);
        if old & COUNT_MASK >= MAX_COUNT {
            std::process::abort();
        }
    }

    /// -1 on the strong count (`Shared::drop`). When that was the last
    /// owner, recycles the slot and returns the object for the caller to
    /// drop and free.
    #[inline]
    pub(crate) fn release(&self, slot: &Slot) -> Option<Reclaimed> {
        // AcqRel: Release publishes this owner's uses of the object to the
        // last owner; Acquire makes the last owner see all of them.
        let old = slot.state.fetch_sub(1, Ordering::AcqRel);
        if old & COUNT_MASK != 1 {
            return None;
        }
        Some(self.recycle(slot, old))
    }

    /// Count 1 -> 0 only if this is the only owner (`Shared::try_unwrap`).
    /// On success the slot is recycled and the object handed back.
    pub(crate) fn release_if_unique(&self, slot: &Slot) -> Option<Reclaimed> {
        let mut cur = slot.state.load(Ordering::Relaxed);
        loop {
            if cur & COUNT_MASK != 1 {
                return None;
            }
            match slot.state.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.recycle(slot, cur)),
                Err(now) => cur = now,
            }
        }
    }

    /// Called by the thread that moved the count from 1 to 0 (`last` is the
    /// state word just before). Nobody else can touch the slot now: no
    /// `Shared` exists and upgrades refuse count 0. Bumps the generation (or
    /// retires the slot) and puts it on the free list.
    fn recycle(&self, slot: &Slot, last: u64) -> Reclaimed {
        let obj = slot.ptr.load(Ordering::Relaxed);
        let stamp = stamp_of(last);
        let seg = seg_of(stamp);
        let next_gen = generation_of(stamp) + 1;
        if next_gen >= GEN_RETIRED {
            let retired = make_stamp(GEN_RETIRED, seg as u32);
            slot.state
                .store(u64::from(retired) << STAMP_SHIFT, Ordering::Relaxed);
        } else {
            let fresh = make_stamp(next_gen, seg as u32);
            // Relaxed: stale upgrades see (old stamp, 0) or (new stamp, 0),
            // both fail; the next owner acquires it through `push`.
            slot.state
                .store(u64::from(fresh) << STAMP_SHIFT, Ordering::Relaxed);
            let index = seg_start(seg) + u64::from(self.offset_of(slot, seg));
            self.push(index as u32, slot);
        }
        Reclaimed {
            ptr: obj,
            pooled: last & POOLED != 0,
        }
    }

    /// Pushes free slot `index` (which is `slot`) on the free list.
    fn push(&self, index: u32, slot: &Slot) {
        let mut head = self.free.0.load(Ordering::Relaxed);
        loop {
            slot.ptr.store(link_to_ptr(head as u32), Ordering::Relaxed);
            let tag = (head >> 32).wrapping_add(1);
            let new = (tag << 32) | u64::from(index + 1);
            // Release: the popper sees the link and the new state word.
            match self
                .free
                .0
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Pops a free slot index, if any.
    fn pop(&self) -> Option<u64> {
        let mut head = self.free.0.load(Ordering::Acquire);
        loop {
            let top = head as u32;
            if top == 0 {
                return None;
            }
            let index = u64::from(top - 1);
            // SAFETY: `index` was pushed, so its segment is published and
            // never freed while `self` is borrowed.
            let slot = unsafe { self.slot_at(index).as_ref() };
            // May be stale if another thread popped `index` meanwhile; then
            // the tag differs and the CAS below fails.
            let next = ptr_to_link(slot.ptr.load(Ordering::Relaxed));
            let tag = (head >> 32).wrapping_add(1);
            let new = (tag << 32) | u64::from(next);
            match self
                .free
                .0
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return Some(index),
                Err(now) => head = now,
            }
        }
    }

    /// Slot `index`, whose segment must be published.
    fn slot_at(&self, index: u64) -> NonNull<Slot> {
        let (seg, offset) = locate(index);
        let base = self.segments[seg].load(Ordering::Acquire);
        debug_assert!(!base.is_null());
        // SAFETY: the caller guarantees the segment is published, so `base`
        // is a live allocation of `seg_len(seg)` slots and `offset` is below
        // that by `locate`.
        unsafe { NonNull::new_unchecked(base.add(offset)) }
    }

    /// Segment `seg`, allocated and published now if needed; the layout
    /// the allocator refused if it could not be.
    fn segment(&self, seg: usize) -> Result<NonNull<Slot>, std::alloc::Layout> {
        let cur = self.segments[seg].load(Ordering::Acquire);
        if let Some(base) = NonNull::new(cur) {
            return Ok(base);
        }
        let mine = alloc_segment(seg_len(seg))?;
        match self.segments[seg].compare_exchange(
            ptr::null_mut(),
            mine.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                if seg == 0 {
                    super::register_report();
                }
                Ok(mine)
            }
            Err(theirs) => {
                // SAFETY: `mine` came from `alloc_segment` with this length
                // and was never published, so nobody else has it.
                unsafe { free_segment(mine, seg_len(seg)) };
                // SAFETY: the CAS failed, so the value is non-null.
                Ok(unsafe { NonNull::new_unchecked(theirs) })
            }
        }
    }

    /// Walks every slot ever handed out. Counts are a snapshot taken without
    /// stopping other threads, so they may be off by in-flight operations.
    pub(crate) fn census(&self) -> Census {
        let handed_out = self.fresh.0.load(Ordering::Relaxed).min(MAX_SLOTS);
        let mut c = Census {
            in_use: 0,
            free: 0,
            retired: 0,
            bytes: core::mem::size_of::<Table>(),
        };
        for seg in 0..NUM_SEGMENTS {
            let base = self.segments[seg].load(Ordering::Acquire);
            if base.is_null() {
                continue;
            }
            c.bytes += segment_bytes(seg_len(seg));
            let start = seg_start(seg);
            let used = handed_out.saturating_sub(start).min(seg_len(seg) as u64);
            for offset in 0..used as usize {
                // SAFETY: published segment, `offset < seg_len(seg)`.
                let slot = unsafe { &*base.add(offset) };
                let state = slot.state.load(Ordering::Relaxed);
                if state & COUNT_MASK != 0 {
                    c.in_use += 1;
                } else if generation_of(stamp_of(state)) == GEN_RETIRED {
                    c.retired += 1;
                } else {
                    c.free += 1;
                }
            }
        }
        c
    }

    /// Raises the generation of a live slot to `generation` (never lowers
    /// it, stays below `GEN_RETIRED`). Only for tests of generation
    /// exhaustion: raising can only make existing `Weak`s stale, never make
    /// an old one match again.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn raise_generation(&self, slot: &Slot, generation: u32) {
        let generation = generation.min(GEN_RETIRED - 1);
        let mut cur = slot.state.load(Ordering::Relaxed);
        loop {
            let stamp = stamp_of(cur);
            if generation <= generation_of(stamp) {
                return;
            }
            let new_stamp = make_stamp(generation, seg_of(stamp) as u32);
            let new = (u64::from(new_stamp) << STAMP_SHIFT) | (cur & 0xFFFF_FFFF);
            match slot
                .state
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for seg in 0..NUM_SEGMENTS {
            if let Some(base) = NonNull::new(self.segments[seg].load(Ordering::Relaxed)) {
                // SAFETY: `&mut self`: no slot reference can outlive this
                // call, and every published segment came from
                // `alloc_segment(seg_len(seg))`.
                unsafe { free_segment(base, seg_len(seg)) };
            }
        }
    }
}

/// The layout of a segment of `len` slots: what `Full::Memory` reports
/// when the segment cannot be had.
#[cfg(not(loom))]
fn segment_layout(len: usize) -> std::alloc::Layout {
    std::alloc::Layout::array::<Slot>(len).expect("segment size overflow")
}

/// Bytes a segment of `len` slots holds: where segments are mapped, its
/// slots rounded up to whole pages (segments 0 and 1, 1 and 2 KiB of
/// slots, take a page each).
#[cfg(all(unix, not(loom)))]
fn segment_bytes(len: usize) -> usize {
    let page = crate::sys::page_size();
    (len * core::mem::size_of::<Slot>() + page - 1) & !(page - 1)
}

/// Bytes a segment of `len` slots holds: its slots.
#[cfg(any(not(unix), loom))]
fn segment_bytes(len: usize) -> usize {
    len * core::mem::size_of::<Slot>()
}

/// A new segment of `len` slots, all in the "never used" state (all zero),
/// or the layout the OS refused. Mapped from the OS through `sys`, so the
/// table holds nothing of the global allocator's heap (where a large block
/// can sit at the top of glibc's heap and keep everything freed below it
/// resident), and untouched slots cost no resident memory.
#[cfg(all(unix, not(loom)))]
fn alloc_segment(len: usize) -> Result<NonNull<Slot>, std::alloc::Layout> {
    // Fresh mappings are zeroed and page-aligned (more than `Slot` needs);
    // all-zero bytes are a valid `Slot` (atomics of 0 and null).
    crate::sys::map(segment_bytes(len))
        .map(NonNull::cast)
        .ok_or_else(|| segment_layout(len))
}

/// Unmaps a segment from `alloc_segment`.
///
/// # Safety
/// `base` came from `alloc_segment(len)` and no reference into it is used
/// afterwards.
#[cfg(all(unix, not(loom)))]
unsafe fn free_segment(base: NonNull<Slot>, len: usize) {
    // SAFETY: `alloc_segment(len)` mapped exactly `segment_bytes(len)`
    // bytes at `base` (page-aligned), and nobody uses them any more (caller
    // contract).
    unsafe { crate::sys::unmap_range(base.as_ptr().cast(), segment_bytes(len)) }
}

/// A new segment of `len` slots, all in the "never used" state (all zero),
/// or the layout the allocator refused. Where `sys` cannot map memory (not
/// unix) the segment comes from the global allocator.
#[cfg(all(not(unix), not(loom)))]
fn alloc_segment(len: usize) -> Result<NonNull<Slot>, std::alloc::Layout> {
    let layout = segment_layout(len);
    // SAFETY: `layout` has non-zero size (len >= SEG0_LEN > 0). All-zero
    // bytes are a valid `Slot` (atomics of 0 and null), so the memory is
    // initialized.
    let raw = unsafe { std::alloc::alloc_zeroed(layout) };
    NonNull::new(raw.cast::<Slot>()).ok_or(layout)
}

/// Frees a segment from `alloc_segment`.
///
/// # Safety
/// `base` came from `alloc_segment(len)` and no reference into it is used
/// afterwards.
#[cfg(all(not(unix), not(loom)))]
unsafe fn free_segment(base: NonNull<Slot>, len: usize) {
    // SAFETY: same pointer and layout as the allocation (caller contract).
    unsafe { std::alloc::dealloc(base.as_ptr().cast(), segment_layout(len)) }
}

/// A new segment of `len` slots (loom atomics need their constructor).
#[cfg(loom)]
fn alloc_segment(len: usize) -> Result<NonNull<Slot>, std::alloc::Layout> {
    let slots: Box<[Slot]> = (0..len).map(|_| Slot::new()).collect();
    let raw = Box::into_raw(slots).cast::<Slot>();
    // SAFETY: `Box::into_raw` never returns null.
    Ok(unsafe { NonNull::new_unchecked(raw) })
}

/// Frees a segment from `alloc_segment`.
///
/// # Safety
/// `base` came from `alloc_segment(len)` and no reference into it is used
/// afterwards.
#[cfg(loom)]
unsafe fn free_segment(base: NonNull<Slot>, len: usize) {
    let raw = ptr::slice_from_raw_parts_mut(base.as_ptr(), len);
    // SAFETY: `raw` is the boxed slice leaked by `alloc_segment(len)`.
    drop(unsafe { Box::from_raw(raw) });
}

/// The process-wide table.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn table() -> &'static Table {
    static TABLE: Table = Table::new();
    &TABLE
}

/// The table of the current loom execution (a new one per execution).
#[cfg(loom)]
pub(crate) fn table() -> &'static Table {
    loom::lazy_static! {
        static ref TABLE: Table = Table::new();
    }
    &TABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_matches_seg_start() {
        for seg in 0..NUM_SEGMENTS {
            let start = seg_start(seg);
            assert_eq!(locate(start), (seg, 0));
            let last = start + seg_len(seg) as u64 - 1;
            assert_eq!(locate(last), (seg, seg_len(seg) - 1));
        }
        assert_eq!(seg_start(NUM_SEGMENTS), MAX_SLOTS);
    }

    #[test]
    fn free_list_is_lifo_and_reuses() {
        let t = Table::new();
        let a = t.alloc(ptr::null_mut(), false);
        let b = t.alloc(ptr::null_mut(), false);
        // SAFETY: slots of `t`, which outlives these references.
        let (sa, sb) = unsafe { (a.as_ref(), b.as_ref()) };
        assert!(t.release(sa).is_some());
        assert!(t.release(sb).is_some());
        assert_eq!(t.alloc(ptr::null_mut(), false), b);
        assert_eq!(t.alloc(ptr::null_mut(), false), a);
        let c = t.census();
        assert_eq!((c.in_use, c.free, c.retired), (2, 0, 0));
    }

    #[test]
    fn grows_across_segments_without_moving() {
        let t = Table::new();
        let n = (SEG0_LEN * 7) as usize; // segments 0, 1 and 2
        let slots: Vec<_> = (0..n).map(|_| t.alloc(ptr::null_mut(), false)).collect();
        let mut addrs: Vec<usize> = slots.iter().map(|s| s.as_ptr() as usize).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), n);
        let c = t.census();
        assert_eq!(c.in_use, n);
        let segments: usize = (0..3).map(|seg| segment_bytes(seg_len(seg))).sum();
        assert!(segments >= n * core::mem::size_of::<Slot>());
        assert_eq!(c.bytes, segments + core::mem::size_of::<Table>());
    }
}
