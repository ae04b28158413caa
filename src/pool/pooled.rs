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

use core::any::Any;

use super::chunk::{ChunkHeader, Geometry};
use super::local;

/// An object owned through a [`Pool`](crate::Pool); dropping it drops the
/// value and returns its memory to the pool.
///
/// It is a drop-in for `Box<T>`: one pointer wide for a sized `T` (the
/// pool is found from the object's address), with the same traits and
/// habits. Unsized values, `Pooled<dyn Trait>` and `Pooled<[T]>`, are made
/// from a sized one with the [`unsize!`](crate::unsize) macro (the implicit
/// coercion of `Box` needs the unstable `CoerceUnsized`); their memory
/// still goes back to the concrete type's pool. See [`Pooled::unsize_with`].
///
/// Dropping a `Pooled` on another thread than the one that allocated it is
/// allowed and cheap: the memory goes to the dropping thread's free list.
///
/// `Pooled<T>` is `Send` exactly when `T` is, like `Box<T>`: a pooled `Rc`
/// cannot cross threads.
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
/// static RCS: hotpool::Pool<Rc<u32>> = hotpool::Pool::new();
/// let p = RCS.alloc(Rc::new(1));
/// // error[E0277]: `Rc<u32>` cannot be sent between threads safely
/// std::thread::spawn(move || **p);
/// ```
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
pub struct Pooled<T: ?Sized> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: a Pooled<T> owns its T exactly like Box<T>; the slot it returns to
// the pool is plain memory any thread may free.
unsafe impl<T: ?Sized + Send> Send for Pooled<T> {}
// SAFETY: &Pooled<T> only gives &T.
unsafe impl<T: ?Sized + Sync> Sync for Pooled<T> {}
impl<T: ?Sized> Unpin for Pooled<T> {}

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
    // SAFETY: forwarded; `CHUNK` is the chunk size of `T`'s pools.
    unsafe { release_slot_in(ptr.cast(), Layout::<T>::CHUNK) }
}

/// Returns the memory of an object (already dropped) to its pool, whose
/// chunks are `chunk` bytes.
///
/// # Safety
///
/// `ptr` is an unreferenced object slot of a pool whose chunk size is
/// `chunk` (not zero-sized).
#[inline(always)]
unsafe fn release_slot_in(ptr: NonNull<u8>, chunk: usize) {
    let chunk = ChunkHeader::of(ptr.as_ptr(), chunk);
    // SAFETY: the slot is an unreferenced object of the live chunk `chunk`.
    unsafe { local::free(chunk, ptr) };
}

impl<T: ?Sized> Pooled<T> {
    /// Wraps a slot; `ptr` must be an owned, initialized object of a pool of
    /// `T` (or dangling for a zero-sized `T`; for an unsized `T`, of a pool
    /// of the value's concrete type).
    #[inline(always)]
    pub(crate) unsafe fn from_non_null(ptr: NonNull<T>) -> Pooled<T> {
        Pooled {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Gives up ownership, returning the raw pointer; the object stays in
    /// its pool's memory until [`Pooled::from_raw`] takes it back (for a
    /// sized `T`) or it is leaked.
    ///
    /// ```
    /// static P: hotpool::Pool<u32> = hotpool::Pool::new();
    /// let raw = hotpool::Pooled::into_raw(P.alloc(5));
    /// // SAFETY: `raw` came from into_raw and is used once.
    /// let back = unsafe { hotpool::Pooled::from_raw(raw) };
    /// assert_eq!(*back, 5);
    /// ```
    ///
    /// The `Pooled` is consumed: using it afterwards does not compile.
    ///
    /// ```compile_fail,E0382
    /// static P: hotpool::Pool<u32> = hotpool::Pool::new();
    /// let p = P.alloc(5);
    /// let raw = hotpool::Pooled::into_raw(p);
    /// assert_eq!(*p, 5); // error[E0382]: borrow of moved value: `p`
    /// # let _ = raw;
    /// ```
    pub fn into_raw(this: Self) -> *mut T {
        ManuallyDrop::new(this).ptr.as_ptr()
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

    /// Turns a `Pooled<T>` into a `Pooled<U>` by `coerce`, which must be an
    /// unsizing coercion of the pointer (to `dyn Trait` or from an array
    /// to a slice). Use the safe [`unsize!`](crate::unsize) macro, which
    /// writes that closure for you; this is its building block.
    ///
    /// The memory still belongs to the concrete type's pool: dropping the
    /// result runs the concrete type's drop (through the vtable) and
    /// returns the slot to that pool, which is found from the address and
    /// the value's dynamic size and alignment.
    ///
    /// # Safety
    ///
    /// `coerce` must return its argument with only pointer metadata added
    /// (what `p as *mut dyn Trait` or an implicit coercion does): the same
    /// address and a pointee type under which the object has the same
    /// size, alignment and validity, so that `U`'s drop is the object's.
    ///
    /// # Panics
    ///
    /// If the returned pointer has another address, size or alignment (a
    /// check that catches some contract violations, not all).
    ///
    /// ```
    /// use std::fmt::Debug;
    /// use hotpool::{Pool, Pooled};
    ///
    /// static P: Pool<u32> = Pool::new();
    /// // SAFETY: the closure is a plain unsizing coercion.
    /// let d: Pooled<dyn Debug> = unsafe { Pooled::unsize_with(P.alloc(7), |p| p as *mut dyn Debug) };
    /// assert_eq!(format!("{d:?}"), "7");
    /// ```
    pub unsafe fn unsize_with<U: ?Sized>(
        this: Self,
        coerce: impl FnOnce(*mut T) -> *mut U,
    ) -> Pooled<U> {
        // SAFETY: a Pooled owns an initialized value.
        let (size, align) = unsafe {
            (
                mem::size_of_val(this.ptr.as_ref()),
                mem::align_of_val(this.ptr.as_ref()),
            )
        };
        let raw = Pooled::into_raw(this);
        let new = coerce(raw);
        let same = new.cast::<u8>() == raw.cast::<u8>()
            // SAFETY: per the contract, `new` points at the same initialized
            // object; if the address differs we do not get here.
            && unsafe { (mem::size_of_val(&*new), mem::align_of_val(&*new)) } == (size, align);
        if !same {
            // The original is kept alive (leaked) rather than freed twice.
            panic!("hotpool: Pooled::unsize_with: the closure did not return the same object");
        }
        // SAFETY: `new` is the object we owned, with metadata describing
        // it (caller contract, address and layout checked above); non-null
        // because `raw` was.
        unsafe { Pooled::from_non_null(NonNull::new_unchecked(new)) }
    }
}

impl<T> Pooled<T> {
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

impl<T: ?Sized> Drop for Pooled<T> {
    #[inline]
    fn drop(&mut self) {
        /// Returns the slot (to the pool with chunks of `.1` bytes; none
        /// for 0, a zero-sized value) even if the value's drop panics.
        struct Release(NonNull<u8>, usize);
        impl Drop for Release {
            #[inline(always)]
            fn drop(&mut self) {
                if self.1 != 0 {
                    // SAFETY: the value was dropped (or its drop unwound);
                    // the slot is ours and unreferenced, in a pool whose
                    // chunks are `self.1` bytes.
                    unsafe { release_slot_in(self.0, self.1) };
                }
            }
        }
        // The size and alignment are the concrete type's (for a sized `T`
        // constants, so the chunk size folds to one; for `dyn Trait` from
        // the vtable, for a slice from its length), and they alone decide
        // the chunk size of that type's pools.
        // SAFETY: we own an initialized value.
        let value = unsafe { self.ptr.as_ref() };
        let chunk = Geometry::chunk_of(mem::size_of_val(value), mem::align_of_val(value));
        let release = Release(self.ptr.cast(), chunk);
        // SAFETY: we own an initialized value that is never used again.
        unsafe { ptr::drop_in_place(self.ptr.as_ptr()) };
        drop(release);
    }
}

impl<T: ?Sized> Deref for Pooled<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: a Pooled owns an initialized T.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for Pooled<T> {
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
        match unsafe { local::alloc((*inner).hot.0.entry, || Ok(inner)) } {
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

impl<T: ?Sized> AsRef<T> for Pooled<T> {
    fn as_ref(&self) -> &T {
        self
    }
}
impl<T: ?Sized> AsMut<T> for Pooled<T> {
    fn as_mut(&mut self) -> &mut T {
        self
    }
}
impl<T: ?Sized> Borrow<T> for Pooled<T> {
    fn borrow(&self) -> &T {
        self
    }
}
impl<T: ?Sized> BorrowMut<T> for Pooled<T> {
    fn borrow_mut(&mut self) -> &mut T {
        self
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
impl<T: ?Sized + fmt::Display> fmt::Display for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
impl<T: ?Sized> fmt::Pointer for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&self.ptr, f)
    }
}

impl<T: ?Sized + PartialEq> PartialEq for Pooled<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}
impl<T: ?Sized + Eq> Eq for Pooled<T> {}
impl<T: ?Sized + PartialOrd> PartialOrd for Pooled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (**self).partial_cmp(&**other)
    }
}
impl<T: ?Sized + Ord> Ord for Pooled<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (**self).cmp(&**other)
    }
}
impl<T: ?Sized + Hash> Hash for Pooled<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}
impl<T: ?Sized + Hasher> Hasher for Pooled<T> {
    fn finish(&self) -> u64 {
        (**self).finish()
    }
    fn write(&mut self, bytes: &[u8]) {
        (**self).write(bytes)
    }
}

impl<I: ?Sized + Iterator> Iterator for Pooled<I> {
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
impl<I: ?Sized + DoubleEndedIterator> DoubleEndedIterator for Pooled<I> {
    fn next_back(&mut self) -> Option<I::Item> {
        (**self).next_back()
    }
}
impl<I: ?Sized + ExactSizeIterator> ExactSizeIterator for Pooled<I> {
    fn len(&self) -> usize {
        (**self).len()
    }
}
impl<I: ?Sized + FusedIterator> FusedIterator for Pooled<I> {}

impl<F: ?Sized + Future + Unpin> Future for Pooled<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        F::poll(Pin::new(&mut **self), cx)
    }
}

impl<T: ?Sized> From<Pooled<T>> for Pin<Pooled<T>> {
    fn from(p: Pooled<T>) -> Self {
        Pooled::into_pin(p)
    }
}

impl<T: ?Sized + std::error::Error> std::error::Error for Pooled<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        (**self).source()
    }
}

impl<R: ?Sized + std::io::Read> std::io::Read for Pooled<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (**self).read(buf)
    }
}
impl<W: ?Sized + std::io::Write> std::io::Write for Pooled<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (**self).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (**self).flush()
    }
}
impl<S: ?Sized + std::io::Seek> std::io::Seek for Pooled<S> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        (**self).seek(pos)
    }
}
impl<B: ?Sized + std::io::BufRead> std::io::BufRead for Pooled<B> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        (**self).fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        (**self).consume(amt)
    }
}

impl<T, const N: usize> From<Pooled<[T; N]>> for Pooled<[T]> {
    /// The array as a slice, in the same slot of the array's pool.
    ///
    /// ```
    /// static P: hotpool::Pool<[u16; 4]> = hotpool::Pool::new();
    /// let s: hotpool::Pooled<[u16]> = P.alloc([1, 2, 3, 4]).into();
    /// assert_eq!((s.len(), s[3]), (4, 4));
    /// ```
    fn from(array: Pooled<[T; N]>) -> Self {
        crate::unsize!(array, [T])
    }
}

/// `downcast` for the `dyn Any` flavours.
macro_rules! downcast_impl {
    ($($any:tt)*) => {
        impl Pooled<$($any)*> {
            /// The value as its concrete type `T`, in the same slot, or
            /// `self` back if it is not a `T`; like `Box::downcast`.
            ///
            /// ```
            /// use std::any::Any;
            /// use hotpool::{Pool, Pooled};
            ///
            /// static NUMBERS: Pool<u64> = Pool::new();
            /// let any: Pooled<dyn Any + Send + Sync> = hotpool::unsize!(NUMBERS.alloc(7), dyn Any + Send + Sync);
            /// let any = any.downcast::<String>().unwrap_err(); // not a String
            /// let n: Pooled<u64> = any.downcast::<u64>().unwrap();
            /// assert_eq!(*n, 7);
            /// ```
            pub fn downcast<T: Any>(self) -> Result<Pooled<T>, Self> {
                if self.is::<T>() {
                    let raw = Pooled::into_raw(self);
                    // SAFETY: the object is a `T` (checked above) and ours.
                    Ok(unsafe { Pooled::from_non_null(NonNull::new_unchecked(raw.cast::<T>())) })
                } else {
                    Err(self)
                }
            }
        }
    };
}
downcast_impl!(dyn Any);
downcast_impl!(dyn Any + Send);
downcast_impl!(dyn Any + Send + Sync);

/// Turns a [`Pooled<T>`](crate::Pooled) into a `Pooled` of an unsized type
/// it coerces to: `dyn Trait` (for a `T: Trait`) or `[E]` (for `T = [E;
/// N]`), as `Box` does implicitly (which needs the unstable
/// `CoerceUnsized`).
///
/// `unsize!(pooled, Type)` evaluates to a `Pooled<Type>` owning the same
/// object in the same slot. It only compiles when `T` coerces to `Type`, so
/// it is safe. Dropping the result runs `T`'s drop and returns the memory
/// to `T`'s pool.
///
/// ```
/// use std::fmt::Display;
/// use hotpool::{Pool, Pooled};
///
/// trait Message: Send { fn kind(&self) -> &'static str; }
/// struct Ping(u32);
/// impl Message for Ping { fn kind(&self) -> &'static str { "ping" } }
///
/// static PINGS: Pool<Ping> = Pool::new();
///
/// let queue: Vec<Pooled<dyn Message>> = (0..3)
///     .map(|i| hotpool::unsize!(PINGS.alloc(Ping(i)), dyn Message))
///     .collect();
/// assert!(queue.iter().all(|m| m.kind() == "ping"));
/// assert_eq!(PINGS.stats().in_use, 3);
/// drop(queue); // Ping's drop runs, the slots go back to PINGS
/// assert_eq!(PINGS.stats().in_use, 0);
///
/// static WORDS: Pool<[u8; 3]> = Pool::new();
/// let s: Pooled<[u8]> = hotpool::unsize!(WORDS.alloc(*b"abc"), [u8]);
/// assert_eq!(&*s, b"abc");
/// ```
///
/// A type the value does not coerce to is a compile error:
///
/// ```compile_fail
/// use std::fmt::Display;
/// static P: hotpool::Pool<Vec<u8>> = hotpool::Pool::new();
/// let d = hotpool::unsize!(P.alloc(vec![1]), dyn Display); // Vec is not Display
/// ```
#[macro_export]
macro_rules! unsize {
    ($pooled:expr, $target:ty $(,)?) => {{
        let pooled = $pooled;
        // SAFETY: the closure is an implicit coercion of `*mut T` to
        // `*mut $target` (its body is the argument itself, coerced at the
        // return), which only adds pointer metadata for the same object.
        unsafe { $crate::Pooled::unsize_with(pooled, |p| -> *mut $target { p }) }
    }};
}

#[cfg(test)]
mod tests {
    use super::Geometry;

    /// The drop of an unsized `Pooled` finds its chunk with
    /// `Geometry::chunk_of`; it must agree with the pool's geometry for
    /// every layout.
    #[test]
    fn chunk_of_agrees_with_geometry() {
        for align in [1, 2, 4, 8, 16, 64, 128, 4096, 1 << 16] {
            let mut size = align;
            while size <= 1 << 22 {
                for s in [size - 1, size, size + 1, size + align] {
                    if let Some(g) = Geometry::of(s, align) {
                        assert_eq!(Geometry::chunk_of(s, align), g.chunk, "{s} {align}");
                    }
                }
                size = size * 3 / 2 + align;
            }
        }
        assert_eq!(Geometry::chunk_of(0, 8), 0);
    }
}
