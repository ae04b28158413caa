//! `Shared<T>`: the strong owner. A pointer to a table slot; the slot holds
//! the object's address and the strong count.

use core::borrow::Borrow;
use core::cmp::Ordering as CmpOrdering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::pin::Pin;
use core::ptr::NonNull;

use super::table::{table, Full, Reclaimed, Slot, COUNT_MASK, POOLED, WEAK_MADE};
use super::weak::Weak;
use crate::sync::Ordering;
use crate::{AllocError, Pool, Pooled};

/// A thread-safe reference-counting owner whose weak handles are
/// generational keys ([`Weak`]) instead of pointers.
///
/// Like [`std::sync::Arc`]: cloning adds an owner, dropping the last owner
/// drops the value. Unlike `Arc`, the value's memory is freed at that moment
/// too, even while [`Weak`] handles to it exist, because a `Weak` holds no
/// memory: it names a slot of the process-wide handle table and the
/// generation the object had there.
///
/// `Shared<T>` is one pointer wide (a pointer to its table slot) and
/// `Option<Shared<T>>` is too. Dereferencing costs two dependent loads (slot,
/// then object) where `Arc` needs one.
///
/// # Examples
///
/// ```
/// use hotpool::Shared;
///
/// let a = Shared::new(String::from("amqp://peer"));
/// let b = Shared::clone(&a);
/// assert_eq!(*b, "amqp://peer");
/// assert_eq!(Shared::strong_count(&a), 2);
///
/// let w = Shared::downgrade(&a);
/// drop((a, b)); // the String is dropped and its memory freed here
/// assert!(w.upgrade().is_none());
/// ```
pub struct Shared<T> {
    slot: NonNull<Slot>,
    /// Owns a `T` (drop check) and is covariant in it, like `Arc<T>`.
    _owns: PhantomData<T>,
}

// SAFETY: same rules as `Arc<T>`: a `Shared<T>` sent or shared across
// threads lets several threads get `&T` (needs `T: Sync`) and lets any of
// them drop the `T` (needs `T: Send`). The slot itself is all atomics.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: see `Send` above.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(Shared<u64>, *const ());
#[cfg(not(loom))]
static_assertions::assert_eq_size!(Option<Shared<u64>>, *const ());

impl<T> Shared<T> {
    /// Moves `value` into memory from the global allocator (a `Box`) and
    /// returns its first owner.
    ///
    /// # Panics
    /// If the handle table is full (2^32 - 64 slots in use or retired).
    ///
    /// # Examples
    ///
    /// ```
    /// let five = hotpool::Shared::new(5);
    /// assert_eq!(*five, 5);
    /// ```
    pub fn new(value: T) -> Self {
        let obj = Box::into_raw(Box::new(value));
        Self::from_slot(table().alloc(obj.cast(), false))
    }

    /// Moves `value` into a slot of `pool` and returns its first owner. When
    /// the last owner goes, the value is dropped and the slot goes back to
    /// `pool`.
    ///
    /// # Panics
    /// If the handle table is full (2^32 - 64 slots in use or retired), or
    /// if `pool.alloc` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::{Pool, Shared};
    ///
    /// static NAMES: Pool<String> = Pool::new();
    ///
    /// let name = Shared::new_in(String::from("b"), &NAMES);
    /// let w = Shared::downgrade(&name);
    /// assert_eq!(*w.upgrade().unwrap(), "b");
    /// drop(name); // dropped, and its slot is back in NAMES
    /// assert!(w.upgrade().is_none());
    /// ```
    pub fn new_in(value: T, pool: &Pool<T>) -> Self {
        let obj = Pooled::into_raw(pool.alloc(value));
        Self::from_slot(table().alloc(obj.cast(), true))
    }

    /// Like [`Shared::new`], but returns an error instead of panicking or
    /// aborting: [`AllocError::HandleTableFull`] when the handle table is
    /// full, [`AllocError::OutOfMemory`] when the value's memory or a new
    /// table segment cannot be allocated. On error `value` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let five = hotpool::Shared::try_new(5).unwrap();
    /// assert_eq!(*five, 5);
    /// ```
    pub fn try_new(value: T) -> Result<Self, AllocError> {
        let layout = std::alloc::Layout::new::<T>();
        let obj: *mut T = if layout.size() == 0 {
            NonNull::dangling().as_ptr()
        } else {
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { std::alloc::alloc(layout) };
            if raw.is_null() {
                return Err(AllocError::OutOfMemory {
                    size: layout.size(),
                    align: layout.align(),
                });
            }
            raw.cast()
        };
        // SAFETY: `obj` is valid for a write of a `T` (fresh allocation of
        // its layout, or dangling and aligned for a zero-sized `T`), and,
        // so written, is what `Box::into_raw(Box::new(value))` would give.
        unsafe { obj.write(value) };
        match table().try_alloc(obj.cast(), false) {
            Ok(slot) => Ok(Self::from_slot(slot)),
            Err(e) => {
                // SAFETY: as above, `obj` is a `Box<T>` nobody else knows.
                drop(unsafe { Box::from_raw(obj) });
                Err(full_error(e))
            }
        }
    }

    /// Like [`Shared::new_in`], but returns an error instead of panicking or
    /// aborting: when `pool` cannot allocate (see [`Pool::try_alloc`]) or
    /// the handle table is full or cannot grow, as for
    /// [`Shared::try_new`]. On error `value` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// let a = hotpool::Shared::try_new_in(7, &P).unwrap();
    /// assert_eq!((*a, P.stats().in_use), (7, 1));
    /// ```
    pub fn try_new_in(value: T, pool: &Pool<T>) -> Result<Self, AllocError> {
        let obj = Pooled::into_raw(pool.try_alloc(value)?);
        match table().try_alloc(obj.cast(), true) {
            Ok(slot) => Ok(Self::from_slot(slot)),
            Err(e) => {
                // SAFETY: `obj` came from `Pooled::into_raw` just above.
                drop(unsafe { Pooled::from_raw(obj) });
                Err(full_error(e))
            }
        }
    }

    /// Builds a value that holds a [`Weak`] to itself, like
    /// [`std::sync::Arc::new_cyclic`]: `make` gets the handle the new object
    /// will have. Until `make` returns, that handle upgrades to `None`;
    /// afterwards it upgrades like any other. If `make` panics, the handle
    /// stays dead forever and the table slot is recycled.
    ///
    /// The object counts as having had a `Weak` made, so
    /// [`Shared::get_mut`] returns `None` for it.
    ///
    /// # Panics
    /// As [`Shared::new`], and if `make` panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::{Shared, Weak};
    ///
    /// struct Node { me: Weak<Node>, name: &'static str }
    ///
    /// let node = Shared::new_cyclic(|me: &Weak<Node>| {
    ///     assert!(me.upgrade().is_none()); // not built yet
    ///     Node { me: *me, name: "n1" }
    /// });
    /// assert_eq!(node.me.upgrade().unwrap().name, "n1");
    /// assert!(node.me.ptr_eq(&Shared::downgrade(&node)));
    /// ```
    pub fn new_cyclic<F>(make: F) -> Self
    where
        F: FnOnce(&Weak<T>) -> T,
    {
        /// Gives the slot back if `make` unwinds.
        struct Abandon(Option<NonNull<Slot>>);
        impl Drop for Abandon {
            fn drop(&mut self) {
                if let Some(slot) = self.0 {
                    table().abandon(slot);
                }
            }
        }
        let (slot, offset, stamp) = match table().reserve() {
            Ok(r) => r,
            Err(e) => full_panic(e),
        };
        let mut guard = Abandon(Some(slot));
        let weak = Weak::from_key(offset, stamp);
        let value = make(&weak);
        let obj = Box::into_raw(Box::new(value));
        guard.0 = None;
        table().publish_reserved(slot, obj.cast(), false);
        Self::from_slot(slot)
    }

    /// Moves `value` into a new object and pins it, like
    /// [`std::sync::Arc::pin`].
    ///
    /// Sound because a `Shared` never moves its value: the value stays at
    /// the address it was given until the last owner drops it in place.
    /// The only ways to move it out ([`Shared::try_unwrap`],
    /// [`Shared::into_inner`], [`Shared::unwrap_or_clone`]) and the only
    /// mutable access ([`Shared::get_mut`], [`Shared::make_mut`]) need the
    /// `Shared` itself by value or by `&mut`, which `Pin<Shared<T>>` does
    /// not hand out for a `T: !Unpin`.
    ///
    /// # Panics
    /// As [`Shared::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::pin::Pin;
    /// let p: Pin<hotpool::Shared<String>> = hotpool::Shared::pin(String::from("fixed"));
    /// let q = p.clone();
    /// assert_eq!(p.as_str(), "fixed");
    /// assert_eq!(&*p as *const String, &*q as *const String);
    /// ```
    pub fn pin(value: T) -> Pin<Self> {
        // SAFETY: see above: the value never moves while an owner exists,
        // and `Pin<Shared<T>>` gives no way to move it out or to mutate it.
        unsafe { Pin::new_unchecked(Shared::new(value)) }
    }

    /// An owner for a slot whose count `Weak::upgrade` just raised.
    ///
    /// # Safety
    /// The caller added one to the strong count of `slot`, whose object was
    /// created as a `T` by `new` or `new_in`.
    #[inline]
    pub(crate) unsafe fn from_upgraded(slot: NonNull<Slot>) -> Self {
        Self::from_slot(slot)
    }

    #[inline]
    fn from_slot(slot: NonNull<Slot>) -> Self {
        Shared {
            slot,
            _owns: PhantomData,
        }
    }

    /// The slot this owner keeps alive.
    #[inline]
    fn slot(&self) -> &Slot {
        // SAFETY: slots live as long as the table, which is a static (or, in
        // loom models, outlives every `Shared` of the execution).
        unsafe { self.slot.as_ref() }
    }

    /// Address of the value. Valid while `self` (or any clone) exists.
    #[inline]
    fn obj(&self) -> *mut T {
        // Relaxed: the address was stored before the state word that made
        // this owner possible was published (Release in `alloc`) and
        // acquired (by `upgrade`, or by whatever sent this `Shared`).
        self.slot().ptr.load(Ordering::Relaxed).cast()
    }

    /// Makes a [`Weak`] handle to this object: a copyable 8-byte key that
    /// upgrades while any owner exists and gives `None` forever after.
    ///
    /// The first `downgrade` of an object sets a flag (one atomic RMW) that
    /// makes [`Shared::get_mut`] return `None` from then on; later ones only
    /// load.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(1);
    /// let w = Shared::downgrade(&a);
    /// assert!(Shared::ptr_eq(&a, &w.upgrade().unwrap()));
    /// ```
    #[inline]
    #[must_use = "this returns a new weak handle; the owner is unchanged"]
    pub fn downgrade(this: &Self) -> Weak<T> {
        let (offset, stamp) = table().downgrade(this.slot());
        Weak::from_key(offset, stamp)
    }

    /// Number of `Shared` owners of this object right now. Other threads may
    /// change it at any time.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new("x");
    /// let _b = a.clone();
    /// assert_eq!(Shared::strong_count(&a), 2);
    /// ```
    #[inline]
    pub fn strong_count(this: &Self) -> usize {
        (this.slot().state.load(Ordering::Acquire) & COUNT_MASK) as usize
    }

    /// True if both are owners of the same object (not just equal values).
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(1);
    /// let b = a.clone();
    /// let c = Shared::new(1);
    /// assert!(Shared::ptr_eq(&a, &b));
    /// assert!(!Shared::ptr_eq(&a, &c));
    /// ```
    #[inline]
    pub fn ptr_eq(this: &Self, other: &Self) -> bool {
        this.slot == other.slot
    }

    /// Address of the value, as for [`std::sync::Arc::as_ptr`]. It stays
    /// valid while an owner exists.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(7);
    /// assert_eq!(Shared::as_ptr(&a), &*a as *const i32);
    /// ```
    #[inline]
    pub fn as_ptr(this: &Self) -> *const T {
        this.obj()
    }

    /// Returns the value if `this` is its only owner, else gives `this`
    /// back. On success the slot is recycled: every `Weak` to the object
    /// stops upgrading.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(3);
    /// assert_eq!(Shared::try_unwrap(a), Ok(3));
    ///
    /// let a = Shared::new(4);
    /// let b = a.clone();
    /// let a = Shared::try_unwrap(a).unwrap_err();
    /// drop(b);
    /// assert_eq!(Shared::try_unwrap(a), Ok(4));
    /// ```
    pub fn try_unwrap(this: Self) -> Result<T, Self> {
        match table().release_if_unique(this.slot()) {
            Some(r) => {
                core::mem::forget(this);
                // SAFETY: we moved the count from 1 to 0, so no owner is
                // left and no upgrade can succeed: the object is ours.
                Ok(unsafe { take::<T>(r) })
            }
            None => Err(this),
        }
    }

    /// Gives up this owner; returns the value if it was the last one
    /// (atomically, like [`std::sync::Arc::into_inner`]: of several threads
    /// calling this on clones of one object, exactly one gets `Some`).
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(String::from("x"));
    /// let b = a.clone();
    /// assert_eq!(Shared::into_inner(a), None);
    /// assert_eq!(Shared::into_inner(b).as_deref(), Some("x"));
    /// ```
    pub fn into_inner(this: Self) -> Option<T> {
        let this = ManuallyDrop::new(this);
        let r = table().release(this.slot())?;
        // SAFETY: we moved the count from 1 to 0: the object is ours.
        Some(unsafe { take::<T>(r) })
    }

    /// A mutable reference to the value, if that is sound right now: `this`
    /// is the only owner **and** no [`Weak`] was ever made from this object.
    ///
    /// Weak handles are `Copy` keys that nobody counts, so once one exists
    /// an upgrade could race the borrow at any time; hence the second rule
    /// (stricter than `Arc::get_mut`, which only looks at live `Weak`s).
    /// Use it to finish building an object before publishing weak handles.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let mut a = Shared::new(vec![1]);
    /// Shared::get_mut(&mut a).unwrap().push(2);
    /// let b = a.clone();
    /// assert!(Shared::get_mut(&mut a).is_none()); // two owners
    /// drop(b);
    /// assert!(Shared::get_mut(&mut a).is_some());
    /// let _w = Shared::downgrade(&a);
    /// assert!(Shared::get_mut(&mut a).is_none()); // a Weak was made
    /// ```
    pub fn get_mut(this: &mut Self) -> Option<&mut T> {
        // Acquire: pairs with the AcqRel decrement of every other owner that
        // existed, so their uses of the value happen before our borrow.
        let state = this.slot().state.load(Ordering::Acquire);
        if state & COUNT_MASK == 1 && state & WEAK_MADE == 0 {
            // SAFETY: count 1 means `this` is the only owner, and we hold it
            // mutably; no `Weak` exists, so no upgrade can add an owner while
            // the borrow lasts (`downgrade` would need `&this`).
            Some(unsafe { &mut *this.obj() })
        } else {
            None
        }
    }

    /// A mutable reference to the value, cloning it first if that is
    /// needed to get one (clone-on-write), like
    /// [`std::sync::Arc::make_mut`].
    ///
    /// - If `this` is the only owner and no [`Weak`] was ever made, the
    ///   value is borrowed in place.
    /// - If `this` is the only owner but a `Weak` was made, the value stays
    ///   where it is but gets a new table slot: every existing `Weak` to it
    ///   is disassociated (upgrades to `None` from now on), as `Arc::make_mut`
    ///   does. Nothing is cloned.
    /// - If other owners exist, the value is cloned into a new object (in
    ///   the same pool for an object made by [`Shared::new_in`], else in a
    ///   `Box`) that `this` then owns; the others keep the old one, and the
    ///   `Weak`s stay with it.
    ///
    /// `Weak`s are never counted, so "was made" is a flag set by the first
    /// [`Shared::downgrade`] (and by [`Shared::new_cyclic`]).
    ///
    /// # Panics
    /// As [`Shared::new`] (the handle table full); aborts if memory for the
    /// clone runs out.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let mut a = Shared::new(vec![1]);
    /// Shared::make_mut(&mut a).push(2);     // only owner: in place
    /// let b = a.clone();
    /// Shared::make_mut(&mut a).push(3);     // shared: `a` gets a copy
    /// assert_eq!((&a[..], &b[..]), (&[1, 2, 3][..], &[1, 2][..]));
    ///
    /// let w = Shared::downgrade(&b);
    /// drop(a);
    /// let mut b = b;
    /// Shared::make_mut(&mut b).push(4);     // a Weak was made: disassociated
    /// assert!(w.upgrade().is_none());
    /// assert_eq!(*b, [1, 2, 4]);
    /// ```
    pub fn make_mut(this: &mut Self) -> &mut T
    where
        T: Clone,
    {
        // Acquire: as in `get_mut`.
        let state = this.slot().state.load(Ordering::Acquire);
        if state & COUNT_MASK == 1 {
            if state & WEAK_MADE != 0 {
                // Only owner: retire this slot (count 1 -> 0, generation
                // bumped, so every `Weak` goes stale) and give the same
                // memory a fresh slot. Fails only if an upgrade won the
                // race, and then there are other owners: clone below.
                if let Some(r) = table().release_if_unique(this.slot()) {
                    let slot = table().alloc(r.ptr, r.pooled);
                    // The old owner's count is already gone with the slot.
                    mem_forget_replace(this, Self::from_slot(slot));
                }
            }
            if Shared::get_mut(this).is_some() {
                return Shared::get_mut(this)
                    .expect("checked just above, `this` is borrowed mutably");
            }
        }
        // Other owners (or an upgrade raced the re-slotting): clone.
        let copy = if this.slot().state.load(Ordering::Relaxed) & POOLED != 0 {
            // SAFETY: a pooled object's memory came from `Pooled::into_raw`
            // in `new_in` and is alive while `this` owns it. The temporary
            // `Pooled` is never dropped; it only reads the value to clone
            // it into a new slot of the same pool.
            let pooled = ManuallyDrop::new(unsafe { Pooled::from_raw(this.obj()) });
            let obj = Pooled::into_raw(Pooled::clone(&pooled));
            Self::from_slot(table().alloc(obj.cast(), true))
        } else {
            Shared::new(T::clone(this))
        };
        *this = copy;
        Shared::get_mut(this).expect("a fresh object has one owner and no Weak")
    }

    /// The value: moved out if `this` is its only owner, else cloned, like
    /// [`std::sync::Arc::unwrap_or_clone`].
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(String::from("x"));
    /// let b = a.clone();
    /// assert_eq!(Shared::unwrap_or_clone(a), "x"); // cloned: `b` remains
    /// assert_eq!(Shared::unwrap_or_clone(b), "x"); // moved out
    /// ```
    pub fn unwrap_or_clone(this: Self) -> T
    where
        T: Clone,
    {
        Shared::try_unwrap(this).unwrap_or_else(|s| T::clone(&s))
    }

    /// Test hook: raises the generation of this object's slot to
    /// `generation` (clamped below the retirement value; never lowers it).
    /// Existing `Weak`s of the object become stale. Lets tests reach
    /// generation exhaustion without 2^27 reuses.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn __raise_generation(this: &Self, generation: u32) {
        table().raise_generation(this.slot(), generation);
    }
}

/// Replaces `*this` with `new` without dropping the old owner, whose count
/// the caller has already given up.
fn mem_forget_replace<T>(this: &mut Shared<T>, new: Shared<T>) {
    core::mem::forget(core::mem::replace(this, new));
}

/// The error for a table that could not give a slot.
fn full_error(e: Full) -> AllocError {
    match e {
        Full::Slots => AllocError::HandleTableFull,
        Full::Memory(layout) => AllocError::OutOfMemory {
            size: layout.size(),
            align: layout.align(),
        },
    }
}

/// Panics (table full) or aborts (no memory) as the infallible
/// constructors do.
#[cold]
fn full_panic(e: Full) -> ! {
    match e {
        Full::Slots => panic!("hotpool: handle table full"),
        Full::Memory(layout) => std::alloc::handle_alloc_error(layout),
    }
}

/// Moves the value out of reclaimed memory and frees the memory.
///
/// # Safety
/// `r` came from the table for an object of type `T` whose count the caller
/// moved to 0, and nothing else uses the object.
unsafe fn take<T>(r: Reclaimed) -> T {
    let obj = r.ptr.cast::<T>();
    if r.pooled {
        // SAFETY: pooled objects were stored by `new_in` from
        // `Pooled::into_raw`; we own it exclusively (caller contract).
        let p = unsafe { Pooled::from_raw(obj) };
        Pooled::into_inner(p)
    } else {
        // SAFETY: non-pooled objects were stored by `new` from
        // `Box::into_raw`; we own it exclusively (caller contract).
        *unsafe { Box::from_raw(obj) }
    }
}

/// Drops the value in reclaimed memory and frees the memory. Out of line
/// so that the common `Shared::drop` (not the last owner) stays small
/// enough to inline.
///
/// # Safety
/// As for [`take`].
#[inline(never)]
unsafe fn destroy<T>(r: Reclaimed) {
    let obj = r.ptr.cast::<T>();
    if r.pooled {
        // SAFETY: as in `take`.
        drop(unsafe { Pooled::from_raw(obj) });
    } else {
        // SAFETY: as in `take`.
        drop(unsafe { Box::from_raw(obj) });
    }
}

impl<T> Drop for Shared<T> {
    #[inline]
    fn drop(&mut self) {
        if let Some(r) = table().release(self.slot()) {
            // SAFETY: we moved the count from 1 to 0 and the slot is already
            // recycled under a new generation: nobody can reach the object.
            unsafe { destroy::<T>(r) }
        }
    }
}

impl<T> Clone for Shared<T> {
    /// Adds an owner (one atomic increment).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = hotpool::Shared::new(1);
    /// let b = a.clone();
    /// assert!(hotpool::Shared::ptr_eq(&a, &b));
    /// ```
    #[inline]
    fn clone(&self) -> Self {
        table().retain(self.slot());
        Self::from_slot(self.slot)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `self` is an owner, so the object is alive and only ever
        // shared immutably (`get_mut` needs the only owner, mutably).
        unsafe { &*self.obj() }
    }
}

impl<T> AsRef<T> for Shared<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T> Borrow<T> for Shared<T> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T> Unpin for Shared<T> {}

impl<T> From<T> for Shared<T> {
    /// Same as [`Shared::new`].
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T> From<Box<T>> for Shared<T> {
    /// Takes over the `Box`'s memory (no copy of the value): the last
    /// owner's drop frees it as the `Box` would have.
    ///
    /// # Panics
    /// As [`Shared::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let b = Box::new([7u8; 64]);
    /// let addr = &*b as *const [u8; 64];
    /// let s = hotpool::Shared::from(b);
    /// assert_eq!(hotpool::Shared::as_ptr(&s), addr);
    /// ```
    fn from(b: Box<T>) -> Self {
        Self::from_slot(table().alloc(Box::into_raw(b).cast(), false))
    }
}

impl<T> From<Pooled<T>> for Shared<T> {
    /// Takes over the pooled object (no copy of the value): when the last
    /// owner goes, the value is dropped and its slot returns to its pool,
    /// as for [`Shared::new_in`].
    ///
    /// # Panics
    /// As [`Shared::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// let s = hotpool::Shared::from(P.alloc(9));
    /// assert_eq!((*s, P.stats().in_use), (9, 1));
    /// drop(s);
    /// assert_eq!(P.stats().in_use, 0);
    /// ```
    fn from(p: Pooled<T>) -> Self {
        Self::from_slot(table().alloc(Pooled::into_raw(p).cast(), true))
    }
}

impl<T: Default> Default for Shared<T> {
    /// `Shared::new(T::default())`.
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T> fmt::Pointer for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&Shared::as_ptr(self), f)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    /// Compares the values, like `Arc`.
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: PartialOrd> PartialOrd for Shared<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Ord> Ord for Shared<T> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (**self).cmp(&**other)
    }
}

impl<T: Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}
