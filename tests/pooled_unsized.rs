//! Unsized pooled values: `Pooled<dyn Trait>`, `Pooled<[T]>` and
//! `Pooled<dyn Any>::downcast`, made with `hotpool::unsize!`. Sizes are
//! small so the file also runs under Miri.

use std::any::Any;
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use hotpool::{unsize, Pool, Pooled};

trait Message: Send {
    fn kind(&self) -> &'static str;
    fn bump(&mut self);
    fn count(&self) -> u32;
}

/// A message that counts its drops in a counter the test owns.
struct Ping<'a> {
    n: u32,
    drops: &'a AtomicUsize,
}

impl Message for Ping<'_> {
    fn kind(&self) -> &'static str {
        "ping"
    }
    fn bump(&mut self) {
        self.n += 1;
    }
    fn count(&self) -> u32 {
        self.n
    }
}

impl Drop for Ping<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A second message type of another size, to mix in one queue.
struct Bulk([u64; 5]);

impl Message for Bulk {
    fn kind(&self) -> &'static str {
        "bulk"
    }
    fn bump(&mut self) {
        self.0[4] += 1;
    }
    fn count(&self) -> u32 {
        self.0[4] as u32
    }
}

#[test]
fn dyn_trait_derefs_and_drops_into_the_concrete_pool() {
    static PINGS: Pool<Ping<'static>> = Pool::new();
    static BULKS: Pool<Bulk> = Pool::new();
    static DROPS: AtomicUsize = AtomicUsize::new(0);

    let mut queue: Vec<Pooled<dyn Message + 'static>> = Vec::new();
    for i in 0..4 {
        queue.push(unsize!(
            PINGS.alloc(Ping {
                n: i,
                drops: &DROPS
            }),
            dyn Message
        ));
        queue.push(unsize!(
            BULKS.alloc(Bulk([0, 0, 0, 0, i as u64])),
            dyn Message
        ));
    }
    assert_eq!((PINGS.stats().in_use, BULKS.stats().in_use), (4, 4));
    for m in &mut queue {
        m.bump(); // DerefMut through the vtable
    }
    let kinds: Vec<_> = queue.iter().map(|m| (m.kind(), m.count())).collect();
    assert_eq!(
        kinds[..4],
        [("ping", 1), ("bulk", 1), ("ping", 2), ("bulk", 2)]
    );

    let first_ping = Pooled::as_ptr(&queue[0]).cast::<u8>();
    drop(queue);
    assert_eq!(DROPS.load(Ordering::SeqCst), 4, "Ping's drop ran for each");
    assert_eq!((PINGS.stats().in_use, BULKS.stats().in_use), (0, 0));
    // The slots are free in their pool: the next Pings reuse them.
    let again: Vec<_> = (0..4)
        .map(|n| PINGS.alloc(Ping { n, drops: &DROPS }))
        .collect();
    assert!(again
        .iter()
        .any(|p| Pooled::as_ptr(p).cast::<u8>() == first_ping));
}

#[test]
fn debug_and_display_go_through_the_vtable() {
    static P: Pool<Vec<u8>> = Pool::new();
    let d: Pooled<dyn Debug + Send> = unsize!(P.alloc(vec![1, 2]), dyn Debug + Send);
    assert_eq!(format!("{d:?}"), "[1, 2]");
    // Moves to another thread and is dropped there.
    thread::spawn(move || assert_eq!(format!("{d:?}"), "[1, 2]"))
        .join()
        .unwrap();
    assert_eq!(P.stats().in_use, 0);
    static S: Pool<u16> = Pool::new();
    let s: Pooled<dyn std::fmt::Display> = unsize!(S.alloc(42), dyn std::fmt::Display);
    assert_eq!(s.to_string(), "42");
}

#[test]
fn slices_from_arrays() {
    static ARRAYS: Pool<[String; 3]> = Pool::new();
    let mut s: Pooled<[String]> = ARRAYS.alloc(["a".into(), "b".into(), "c".into()]).into();
    assert_eq!(s.len(), 3);
    s[1].push('!');
    s.reverse();
    assert_eq!(&*s, ["c", "b!", "a"]);
    let t: Pooled<[String]> = unsize!(ARRAYS.alloc(Default::default()), [String]);
    assert!(t.iter().all(String::is_empty));
    assert_eq!(ARRAYS.stats().in_use, 2);
    drop((s, t));
    assert_eq!(ARRAYS.stats().in_use, 0);
}

#[test]
fn downcast_any() {
    static NUMBERS: Pool<u64> = Pool::new();
    let any: Pooled<dyn Any> = unsize!(NUMBERS.alloc(7), dyn Any);
    let any = any.downcast::<u32>().expect_err("not a u32");
    let n: Pooled<u64> = any.downcast::<u64>().unwrap();
    assert_eq!(*n, 7);
    assert_eq!(NUMBERS.stats().in_use, 1);
    assert_eq!(Pooled::into_inner(n), 7);
    assert_eq!(NUMBERS.stats().in_use, 0);

    static NAMES: Pool<String> = Pool::new();
    let any: Pooled<dyn Any + Send> = unsize!(NAMES.alloc("x".into()), dyn Any + Send);
    let any = thread::spawn(move || any).join().unwrap();
    let name = any.downcast::<String>().unwrap();
    assert_eq!(*name, "x");

    let any: Pooled<dyn Any + Send + Sync> =
        unsize!(NAMES.alloc("y".into()), dyn Any + Send + Sync);
    // Drop auto traits: also a coercion.
    let any: Pooled<dyn Any> = unsize!(any, dyn Any);
    assert!(any.is::<String>());
    drop(any);
    assert_eq!(NAMES.stats().in_use, 1, "`name` is still in use");
    drop(name);
    assert_eq!(NAMES.stats().in_use, 0);
}

#[test]
fn zero_sized_values_unsize() {
    static UNITS: Pool<()> = Pool::new();
    let u: Pooled<dyn Debug> = unsize!(UNITS.alloc(()), dyn Debug);
    assert_eq!(format!("{u:?}"), "()");
    drop(u);
    let e: Pooled<[u32]> = unsize!(Pool::<[u32; 0]>::new().alloc([]), [u32]);
    assert!(e.is_empty());
}

#[test]
fn over_aligned_values_find_their_chunk() {
    #[repr(align(256))]
    struct Line(u8);
    static LINES: Pool<Line> = Pool::new();
    let v: Vec<Pooled<dyn Any>> = (0..3)
        .map(|i| unsize!(LINES.alloc(Line(i)), dyn Any))
        .collect();
    for (i, line) in v.iter().enumerate() {
        assert_eq!(Pooled::as_ptr(line).cast::<u8>() as usize % 256, 0);
        assert_eq!(line.downcast_ref::<Line>().unwrap().0, i as u8);
    }
    assert_eq!(LINES.stats().in_use, 3);
    drop(v);
    assert_eq!(LINES.stats().in_use, 0);
}

/// Objects large enough that their chunks are bigger than the 1 MiB
/// minimum: the drop must compute the same chunk size as the pool.
#[cfg(not(miri))]
#[test]
fn large_values_find_their_chunk() {
    static BIG: Pool<[u8; 20_000]> = Pool::new();
    let s = BIG.stats();
    let p: Pooled<[u8]> = BIG.alloc([5; 20_000]).into();
    assert!(BIG.stats().chunk_size > 1 << 20, "{s:?}");
    assert_eq!(p[19_999], 5);
    drop(p);
    assert_eq!(BIG.stats().in_use, 0);
}

#[test]
fn panicking_drop_still_returns_the_slot() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom");
        }
    }
    impl Message for Bomb {
        fn kind(&self) -> &'static str {
            "bomb"
        }
        fn bump(&mut self) {}
        fn count(&self) -> u32 {
            0
        }
    }
    static BOMBS: Pool<Bomb> = Pool::new();
    let m: Pooled<dyn Message> = unsize!(BOMBS.alloc(Bomb), dyn Message);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(m))).is_err());
    assert_eq!(BOMBS.stats().in_use, 0);
}

#[test]
fn unsize_with_refuses_another_object() {
    static P: Pool<u32> = Pool::new();
    static OTHER: u32 = 9;
    let p = P.alloc(1);
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: deliberately broken contract (another address); the
        // check must panic before a `Pooled` of `OTHER` exists.
        unsafe { Pooled::unsize_with(p, |_| &OTHER as *const u32 as *mut u32 as *mut dyn Debug) }
    }));
    assert!(r.is_err());
}
