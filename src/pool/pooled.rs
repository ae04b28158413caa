//! [`Pooled<T>`]: an owning pointer to an object in a pool, like `Box<T>`.

use core::borrow::{Borrow, BorrowMut};
use core::cmp::Ordering;
use core::fmt;
use core::future::Future;
use core::hash::{Hash, Hasher};
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop, MaybeUninit};
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll};

use super::chunk::{ChunkHeader, Geometry};
use super::local;

/// An object owned through a [`Pool`](crate::Pool); dropping it drops the
/// value and returns its memory to the pool.
///
/// It is a drop-in for `Box<T>` where `T: Sized`: one pointer wide (the
/// pool is found from the object's address), with the same traits and
/// habits. Unsized values (`Pooled<dyn Trait>`, `Pooled<[T]>`) would need
/// the unstable `CoerceUnsized` and are not supported; use
/// `Pooled<Box<dyn Trait>>` or a concrete type.
///
/// Dropping a `Pooled` on another thread than the one that allocated it is
/// allowed and cheap: the memory goes to the dropping thread's free list.
///
/// ```
/// use hotpool::{Pool, Pooled};
/// static NAMES: Pool<String> = Pool::new();
///
/// let mut name: Pooled<String> = NAMES.alloc(String::from("amqp"));
/// name.push_str("://peer");                     // DerefMut
/// assert_eq!(&*name, "amqp://peer");            // Deref
/// assert_eq!(std::mem::size_of::<Pooled<String>>(), std::mem::size_of::<Box<String>>());
/// let copy = name.clone();                      // into the same pool
/// assert_eq!(copy, name);
/// let s: String = Pooled::into_inner(name);     // moves the value out, frees the slot
/// assert_eq!(s.len(), 11);
/// ```
pub struct Pooled<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: a Pooled<T> owns its T exactly like Box<T>; the slot it returns to
// the pool is plain memory any thread may free.
unsafe impl<T: Send> Send for Pooled<T> {}
// SAFETY: &Pooled<T> only gives &T.
unsafe impl<T: Sync> Sync for Pooled<T> {}
impl<T> Unpin for Pooled<T> {}

static_assertions::assert_eq_size!(Pooled<u64>, Box<u64>);
static_assertions::assert_eq_size!(Option<Pooled<u64>>, Box<u64>);

/// Chunk size of objects of type `T` (a compile-time constant per type).
pub(crate) struct Layout<T>(PhantomData<T>);

impl<T> Layout<T> {
    pub(crate) const GEOMETRY: Option<Geometry> =
        Geometry::of(mem::size_of::<T>(), mem::align_of::<T>());
    const CHUNK: usize = match Self::GEOMETRY {
        Some(g) => g.chunk,
        None => 0,
    };
}

/// Returns the memory of an object of type `T` (already dropped) to its pool.
///
/// # Safety
///
/// `ptr` is an object slot of a pool of `T` (or of a type with `T`'s size
/// and alignment) that nothing references.
#[inline(always)]
unsafe fn release_slot<T>(ptr: NonNull<T>) {
    if mem::size_of::<T>() == 0 {
        return;
    }
    let chunk = ChunkHeader::of(ptr.as_ptr().cast(), Layout::<T>::CHUNK);
    // SAFETY: the slot lies in a live chunk of its pool, whose header's
    // first words (owning pool and its id) were written once at creation.
    let (inner, id) = unsafe { ((*chunk).owner, (*chunk).id) };
    // SAFETY: the slot is an unreferenced object of that pool, whose id is `id`.
    unsafe { local::free(inner, id, ptr.cast()) };
}

impl<T> Pooled<T> {
    /// Wraps a slot; `ptr` must be an owned, initialized object of a pool of
    /// `T` (or dangling for a zero-sized `T`).
    #[inline(always)]
    pub(crate) unsafe fn from_non_null(ptr: NonNull<T>) -> Pooled<T> {
        Pooled {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Moves the value out and returns the memory to the pool.
    ///
    /// ```
    /// static P: hotpool::Pool<Vec<u8>> = hotpool::Pool::new();
    /// let v = hotpool::Pooled::into_inner(P.alloc(vec![1, 2]));
    /// assert_eq!(v, [1, 2]);
    /// ```
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: we own an initialized T and never touch it again.
        let value = unsafe { ptr::read(this.ptr.as_ptr()) };
        // SAFETY: the slot is ours and now unreferenced.
        unsafe { release_slot(this.ptr) };
        value
    }

    /// Gives up ownership, returning the raw pointer; the object stays in
    /// its pool's memory until [`Pooled::from_raw`] takes it back.
    ///
    /// ```
    /// static P: hotpool::Pool<u32> = hotpool::Pool::new();
    /// let raw = hotpool::Pooled::into_raw(P.alloc(5));
    /// // SAFETY: `raw` came from into_raw and is used once.
    /// let back = unsafe { hotpool::Pooled::from_raw(raw) };
    /// assert_eq!(*back, 5);
    /// ```
    pub fn into_raw(this: Self) -> *mut T {
        ManuallyDrop::new(this).ptr.as_ptr()
    }

    /// Takes back ownership of a pointer from [`Pooled::into_raw`].
    ///
    /// # Safety
    ///
    /// `raw` must come from `Pooled::<T>::into_raw` and be passed here once;
    /// the object must not be used through other pointers afterwards.
    ///
    /// With the debug checks on (`HOTPOOL_CONF=checks:true`, see the
    /// README), a pointer that is not a live object of a pool of `T`'s
    /// layout (a foreign pointer, or an object already freed) is reported
    /// with its type and address and the process aborts.
    pub unsafe fn from_raw(raw: *mut T) -> Self {
        #[cfg(any(feature = "checks", debug_assertions))]
        if mem::size_of::<T>() != 0 {
            super::checks::pool_from_raw(
                raw.cast(),
                Layout::<T>::GEOMETRY,
                core::any::type_name::<T>(),
            );
        }
        // SAFETY: per the contract, `raw` came from a Pooled, so non-null.
        unsafe { Pooled::from_non_null(NonNull::new_unchecked(raw)) }
    }

    /// Gives up ownership for the rest of the program: the object is never
    /// dropped and its slot never reused.
    ///
    /// ```
    /// static P: hotpool::Pool<u64> = hotpool::Pool::new();
    /// let forever: &'static mut u64 = hotpool::Pooled::leak(P.alloc(1));
    /// *forever += 1;
    /// assert_eq!(*forever, 2);
    /// ```
    pub fn leak<'a>(this: Self) -> &'a mut T
    where
        T: 'a,
    {
        // SAFETY: the object is initialized and, leaked, owned by nobody else.
        unsafe { &mut *Pooled::into_raw(this) }
    }

    /// Pins the object in place, like `Box::into_pin`.
    ///
    /// ```
    /// static P: hotpool::Pool<u8> = hotpool::Pool::new();
    /// let pinned = hotpool::Pooled::into_pin(P.alloc(3));
    /// assert_eq!(*pinned, 3);
    /// ```
    pub fn into_pin(this: Self) -> Pin<Self> {
        // SAFETY: the object never moves while the Pooled lives: a Pooled is
        // a pointer, and the slot is only reused after the drop.
        unsafe { Pin::new_unchecked(this) }
    }

    /// A raw pointer to the object, keeping ownership.
    ///
    /// ```
    /// static P: hotpool::Pool<u8> = hotpool::Pool::new();
    /// let b = P.alloc(1);
    /// assert_eq!(hotpool::Pooled::as_ptr(&b), &*b as *const u8);
    /// ```
    pub fn as_ptr(this: &Self) -> *const T {
        this.ptr.as_ptr()
    }
}

impl<T> Pooled<MaybeUninit<T>> {
    /// Writes the value into the uninitialized slot.
    ///
    /// ```
    /// static P: hotpool::Pool<[u64; 512]> = hotpool::Pool::new();
    /// let slot = P.alloc_uninit();
    /// let full = hotpool::Pooled::write(slot, [9; 512]);
    /// assert_eq!(full[511], 9);
    /// ```
    pub fn write(this: Self, value: T) -> Pooled<T> {
        let raw = Pooled::into_raw(this);
        // SAFETY: the slot is ours and sized and aligned for T.
        unsafe {
            (*raw).write(value);
            Pooled::from_non_null(NonNull::new_unchecked(raw.cast()))
        }
    }

    /// Declares the slot initialized.
    ///
    /// # Safety
    ///
    /// The value must be fully initialized, as for `MaybeUninit::assume_init`.
    ///
    /// ```
    /// static P: hotpool::Pool<[u8; 4096]> = hotpool::Pool::new();
    /// let mut slot = P.alloc_uninit();
    /// // Built in place: the 4 KiB array never sits on the stack.
    /// unsafe { slot.as_mut_ptr().cast::<u8>().write_bytes(0xAB, 4096) };
    /// // SAFETY: every byte was written above.
    /// let buf = unsafe { hotpool::Pooled::assume_init(slot) };
    /// assert!(buf.iter().all(|&b| b == 0xAB));
    /// ```
    pub unsafe fn assume_init(this: Self) -> Pooled<T> {
        // SAFETY: MaybeUninit<T> has T's layout; the caller vouches for init.
        unsafe { Pooled::from_non_null(NonNull::new_unchecked(Pooled::into_raw(this).cast())) }
    }
}

impl<T> Drop for Pooled<T> {
    #[inline]
    fn drop(&mut self) {
        /// Returns the slot even if `T::drop` panics.
        struct Release<T>(NonNull<T>);
        impl<T> Drop for Release<T> {
            #[inline(always)]
            fn drop(&mut self) {
                // SAFETY: the value was dropped (or its drop unwound); the
                // slot is ours and unreferenced.
                unsafe { release_slot(self.0) };
            }
        }
        let release = Release(self.ptr);
        // SAFETY: we own an initialized T that is never used again.
        unsafe { ptr::drop_in_place(self.ptr.as_ptr()) };
        drop(release);
    }
}

impl<T> Deref for Pooled<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: a Pooled owns an initialized T.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for Pooled<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a Pooled owns an initialized T, uniquely.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Clone> Clone for Pooled<T> {
    /// Clones the value into a new object of the same pool.
    fn clone(&self) -> Self {
        let value = T::clone(self);
        if mem::size_of::<T>() == 0 {
            mem::forget(value);
            // SAFETY: zero-sized values need no memory.
            return unsafe { Pooled::from_non_null(NonNull::dangling()) };
        }
        let chunk = ChunkHeader::of(self.ptr.as_ptr().cast(), Layout::<T>::CHUNK);
        // SAFETY: our object keeps its chunk and pool alive.
        let inner = unsafe { (*chunk).owner };
        // SAFETY: as above.
        match unsafe { local::alloc(inner) } {
            Ok(slot) => {
                let slot = slot.cast::<T>();
                // SAFETY: a fresh slot of this pool, sized and aligned for T.
                unsafe {
                    slot.as_ptr().write(value);
                    Pooled::from_non_null(slot)
                }
            }
            Err(_) => std::alloc::handle_alloc_error(core::alloc::Layout::new::<T>()),
        }
    }
}

impl<T> AsRef<T> for Pooled<T> {
    fn as_ref(&self) -> &T {
        self
    }
}
impl<T> AsMut<T> for Pooled<T> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}
impl<T> Borrow<T> for Pooled<T> {
    fn borrow(&self) -> &T {
        self
    }
}
impl<T> BorrowMut<T> for Pooled<T> {
    fn borrow_mut(&mut self) -> &mut T {
        self
    }
}

impl<T: fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
impl<T: fmt::Display> fmt::Display for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
impl<T> fmt::Pointer for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&self.ptr, f)
    }
}

impl<T: PartialEq> PartialEq for Pooled<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl<T: Eq> Eq for Pooled<T> {}
impl<T: PartialOrd> PartialOrd for Pooled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (**self).partial_cmp(&**other)
    }
}
impl<T: Ord> Ord for Pooled<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (**self).cmp(&**other)
    }
}
impl<T: Hash> Hash for Pooled<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}
impl<T: Hasher> Hasher for Pooled<T> {
    fn finish(&self) -> u64 {
        (**self).finish()
    }
    fn write(&mut self, bytes: &[u8]) {
        (**self).write(bytes)
    }
}

impl<I: Iterator> Iterator for Pooled<I> {
    type Item = I::Item;
    fn next(&mut self) -> Option<I::Item> {
        (**self).next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (**self).size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<I::Item> {
        (**self).nth(n)
    }
}
impl<I: DoubleEndedIterator> DoubleEndedIterator for Pooled<I> {
    fn next_back(&mut self) -> Option<I::Item> {
        (**self).next_back()
    }
}
impl<I: ExactSizeIterator> ExactSizeIterator for Pooled<I> {
    fn len(&self) -> usize {
        (**self).len()
    }
}
impl<I: FusedIterator> FusedIterator for Pooled<I> {}

impl<F: Future + Unpin> Future for Pooled<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        F::poll(Pin::new(&mut **self), cx)
    }
}

impl<T> From<Pooled<T>> for Pin<Pooled<T>> {
    fn from(p: Pooled<T>) -> Self {
        Pooled::into_pin(p)
    }
}

impl<T: std::error::Error> std::error::Error for Pooled<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        (**self).source()
    }
}

impl<R: std::io::Read> std::io::Read for Pooled<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (**self).read(buf)
    }
}
impl<W: std::io::Write> std::io::Write for Pooled<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (**self).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (**self).flush()
    }
}
impl<S: std::io::Seek> std::io::Seek for Pooled<S> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        (**self).seek(pos)
    }
}
impl<B: std::io::BufRead> std::io::BufRead for Pooled<B> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        (**self).fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        (**self).consume(amt)
    }
}
