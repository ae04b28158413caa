//! `Weak<T>`: an 8-byte generational key into the handle table.

use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::num::NonZeroU32;

use super::shared::Shared;
use super::table::{generation_of, make_stamp, seg_of, table, valid_key, DANGLING_SEG};

/// A weak handle: a copyable key naming a [`Shared`] object without keeping
/// it, or its memory, alive.
///
/// It is the slot's offset in its table segment and the slot's *stamp*
/// (generation and segment number) when the handle was made; 8 bytes, and
/// `Option<Weak<T>>` is 8 bytes too. [`Weak::upgrade`] succeeds only while
/// the slot still holds that generation with at least one owner. The
/// generation changes when the object dies, so a stale `Weak` never upgrades
/// to whatever reuses the slot or the memory later.
///
/// `Weak` has no `Drop` and makes no count changes when copied: keep as many
/// as you like, anywhere (in maps, or in an `AtomicU64` through
/// [`Weak::to_bits`] and [`Weak::from_bits`]).
///
/// # Examples
///
/// ```
/// use hotpool::{Shared, Weak};
///
/// let link = Shared::new(String::from("amqp://peer"));
/// let w: Weak<String> = Shared::downgrade(&link);
/// let copy = w; // `Copy`
/// assert_eq!(*copy.upgrade().unwrap(), "amqp://peer");
/// drop(link);
/// assert!(w.upgrade().is_none());
/// ```
pub struct Weak<T> {
    /// Offset of the slot inside its segment.
    offset: u32,
    /// Generation and segment of the slot when the handle was made. Never 0
    /// (live generations start at 1; `Weak::new` uses a non-zero segment).
    stamp: NonZeroU32,
    /// Upgrading yields a `Shared<T>`, so `Weak<T>` is `Send`/`Sync` exactly
    /// when `Shared<T>` is.
    _marker: PhantomData<Shared<T>>,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(Weak<u64>, u64);
#[cfg(not(loom))]
static_assertions::assert_eq_size!(Option<Weak<u64>>, u64);

impl<T> Weak<T> {
    /// A handle that never upgrades (no table access needed to make it).
    ///
    /// # Examples
    ///
    /// ```
    /// let w = hotpool::Weak::<u32>::new();
    /// assert!(w.upgrade().is_none());
    /// assert_eq!(w, hotpool::Weak::default());
    /// ```
    pub const fn new() -> Self {
        let stamp = match NonZeroU32::new(make_stamp(0, DANGLING_SEG)) {
            Some(s) => s,
            None => panic!("dangling stamp must be non-zero"),
        };
        Weak {
            offset: 0,
            stamp,
            _marker: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn from_key(offset: u32, stamp: u32) -> Self {
        Weak {
            offset,
            // Stamps of live objects have a generation >= 1.
            stamp: NonZeroU32::new(stamp).expect("live stamp is non-zero"),
            _marker: PhantomData,
        }
    }

    /// A new owner of the object, or `None` if it is gone (or this is
    /// [`Weak::new`]). Never returns an owner of a different object, even if
    /// the slot or the memory has been reused.
    ///
    /// Cost: a stale handle fails after two loads and a compare; a live one
    /// adds one CAS on the slot's state word.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::Shared;
    ///
    /// let a = Shared::new(10);
    /// let w = Shared::downgrade(&a);
    /// let b = w.upgrade().expect("alive");
    /// assert_eq!(Shared::strong_count(&a), 2);
    /// drop((a, b));
    /// assert!(w.upgrade().is_none());
    /// ```
    #[inline(always)]
    #[must_use = "this returns a new owner, or None; the handle is unchanged"]
    pub fn upgrade(&self) -> Option<Shared<T>> {
        let slot = table().upgrade(self.offset, self.stamp.get())?;
        // SAFETY: the upgrade added an owner of the object this handle was
        // made from (stamp matched with a non-zero count), which was created
        // as a `T` by `Shared::new`/`new_in`.
        Some(unsafe { Shared::from_upgraded(slot) })
    }

    /// Whether the object is alive right now. Only a hint: another thread
    /// may drop the last owner right after this returns `true`; use
    /// [`Weak::upgrade`] to act on the object.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = hotpool::Shared::new(());
    /// let w = hotpool::Shared::downgrade(&a);
    /// assert!(w.is_alive());
    /// drop(a);
    /// assert!(!w.is_alive());
    /// ```
    #[inline]
    pub fn is_alive(&self) -> bool {
        table().is_alive(self.offset, self.stamp.get())
    }

    /// Number of owners of the object right now, 0 if it is gone. A hint,
    /// like [`Weak::is_alive`].
    ///
    /// # Examples
    ///
    /// ```
    /// let a = hotpool::Shared::new(());
    /// let w = hotpool::Shared::downgrade(&a);
    /// let _b = a.clone();
    /// assert_eq!(w.strong_count(), 2);
    /// ```
    #[inline]
    pub fn strong_count(&self) -> usize {
        table().strong_count(self.offset, self.stamp.get())
    }

    /// The handle as a `u64`, to keep it in an [`AtomicU64`] or send it
    /// through an integer channel; [`Weak::from_bits`] turns it back.
    ///
    /// A `Weak` holds no count and owns nothing (it is a `Copy` key), so,
    /// unlike [`std::sync::Weak::into_raw`], this neither consumes the
    /// handle nor keeps anything alive: the bits may be turned back into
    /// any number of handles, or dropped, at no cost. A handle rebuilt from
    /// them behaves exactly like the original: it upgrades while the object
    /// lives and is stale forever after.
    ///
    /// The bits are the slot's offset (low 32 bits) and stamp (high 32
    /// bits); they are never 0, so 0 can mean "no handle" in an atomic.
    ///
    /// [`AtomicU64`]: std::sync::atomic::AtomicU64
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use hotpool::{Shared, Weak};
    ///
    /// static CURRENT: AtomicU64 = AtomicU64::new(0); // 0: none
    ///
    /// let peer = Shared::new(String::from("amqp://peer"));
    /// CURRENT.store(Shared::downgrade(&peer).to_bits(), Ordering::Release);
    ///
    /// let bits = CURRENT.load(Ordering::Acquire);
    /// // SAFETY: only `Weak<String>` bits are stored in CURRENT.
    /// let w = unsafe { Weak::<String>::from_bits(bits) };
    /// assert_eq!(*w.upgrade().unwrap(), "amqp://peer");
    /// drop(peer);
    /// assert!(w.upgrade().is_none());
    /// ```
    #[inline]
    #[must_use]
    pub fn to_bits(self) -> u64 {
        u64::from(self.stamp.get()) << 32 | u64::from(self.offset)
    }

    /// A handle from the bits of [`Weak::to_bits`].
    ///
    /// Bits that name no slot the table could ever have (0, an offset past
    /// its segment, a segment number that does not exist) are caught here
    /// with a panic, so [`Weak::upgrade`] keeps its unchecked fast path.
    /// What cannot be checked is the type: the table does not know it.
    ///
    /// # Safety
    ///
    /// `bits` must come from [`Weak::to_bits`] of a `Weak<T>` of this same
    /// `T`, made in this process (any time earlier: a handle whose object
    /// is gone just stays stale). Bits of a `Weak<U>` could upgrade to a
    /// `Shared<T>` pointing at a `U`.
    ///
    /// # Panics
    ///
    /// If `bits` is not the value of any `Weak`.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::{Shared, Weak};
    ///
    /// let a = Shared::new(5u32);
    /// let w = Shared::downgrade(&a);
    /// // SAFETY: the bits come from a `Weak<u32>`.
    /// let back = unsafe { Weak::<u32>::from_bits(w.to_bits()) };
    /// assert!(back.ptr_eq(&w));
    /// assert_eq!(*back.upgrade().unwrap(), 5);
    /// ```
    #[inline]
    pub unsafe fn from_bits(bits: u64) -> Weak<T> {
        let (offset, stamp) = (bits as u32, (bits >> 32) as u32);
        match NonZeroU32::new(stamp) {
            Some(stamp) if valid_key(offset, stamp.get()) => Weak {
                offset,
                stamp,
                _marker: PhantomData,
            },
            _ => panic!("hotpool: Weak::from_bits: {bits:#x} is not the value of a Weak"),
        }
    }

    /// True if both name the same object (alive or not), like
    /// [`std::sync::Weak::ptr_eq`]; the same as `==`. All [`Weak::new`]
    /// handles are equal to each other.
    ///
    /// # Examples
    ///
    /// ```
    /// use hotpool::{Shared, Weak};
    ///
    /// let a = Shared::new(1);
    /// let b = Shared::new(1);
    /// let wa = Shared::downgrade(&a);
    /// assert!(wa.ptr_eq(&Shared::downgrade(&a)));
    /// assert!(!wa.ptr_eq(&Shared::downgrade(&b))); // equal values, other object
    /// assert!(Weak::<i32>::new().ptr_eq(&Weak::new()));
    /// ```
    #[inline]
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.offset == other.offset && self.stamp == other.stamp
    }

    /// Test hook: the table slot this handle names, as a number unique among
    /// slots (stable across reuse of the slot).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn __slot_id(&self) -> u64 {
        (seg_of(self.stamp.get()) as u64) << 32 | u64::from(self.offset)
    }

    /// Test hook: the generation this handle expects.
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn __generation(&self) -> u32 {
        generation_of(self.stamp.get())
    }
}

impl<T> Clone for Weak<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Weak<T> {}

impl<T> Default for Weak<T> {
    /// Same as [`Weak::new`].
    fn default() -> Self {
        Weak::new()
    }
}

impl<T> PartialEq for Weak<T> {
    /// Equal when both name the same slot and generation (the same object,
    /// alive or not). All [`Weak::new`] handles are equal.
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other)
    }
}

impl<T> Eq for Weak<T> {}

impl<T> Hash for Weak<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.to_bits().hash(state)
    }
}

impl<T> fmt::Debug for Weak<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if seg_of(self.stamp.get()) == DANGLING_SEG as usize {
            return f.write_str("Weak(dangling)");
        }
        f.debug_struct("Weak")
            .field("segment", &seg_of(self.stamp.get()))
            .field("offset", &self.offset)
            .field("generation", &generation_of(self.stamp.get()))
            .finish()
    }
}
