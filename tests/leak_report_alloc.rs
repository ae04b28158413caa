//! The leak report that `HOTPOOL_CONF=leak_report:true` prints at exit
//! allocates nothing: under `LD_PRELOAD` the allocator it would allocate
//! through is the one it reports on.
//!
//! The test runs this binary again as a child with the report on. The
//! child leaks objects of three pool types in four pools (two of one type;
//! one type's name is longer than the report's buffer), frees the objects
//! of a fifth pool, prints `render_leaks(&leaks())` to stdout and returns
//! from `main`. Its counting global allocator is armed by an exit handler
//! that runs just before hotpool's (exit handlers run in reverse order of
//! registration) and read by one that runs just after it. The parent checks
//! the child's whole stderr: the report's exact lines, then the count; and
//! that stdout, what `leaks()` returned, has the same lines.
//!
//! Own binary without libtest's harness (`harness = false`): the global
//! allocator counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use hotpool::{Pool, Pooled};

/// Counts allocations while armed.
struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static DURING: AtomicUsize = AtomicUsize::new(0);

fn count() {
    if ARMED.load(SeqCst) {
        DURING.fetch_add(1, SeqCst);
    }
}

// SAFETY: every call is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[allow(dead_code)]
struct Packet([u64; 4]);
#[allow(dead_code)]
struct Conn(u32);
#[allow(dead_code)]
struct Freed(u64);
#[allow(dead_code)]
struct Deep<T>(T);

/// A type whose name (25 nested `Deep<`) is longer than the report
/// writer's 512-byte buffer.
type D5 = Deep<Deep<Deep<Deep<Deep<[u8; 16]>>>>>;
type D10 = Deep<Deep<Deep<Deep<Deep<D5>>>>>;
type D15 = Deep<Deep<Deep<Deep<Deep<D10>>>>>;
type D20 = Deep<Deep<Deep<Deep<Deep<D15>>>>>;
type Long = Deep<Deep<Deep<Deep<Deep<D20>>>>>;

static PACKETS: Pool<Packet> = Pool::new();
/// A second pool of `Packet`s, used after the first: listed after it.
static MORE_PACKETS: Pool<Packet> = Pool::new();
static CONNS: Pool<Conn> = Pool::new();
static FREED: Pool<Freed> = Pool::new();
static LONG: Pool<Long> = Pool::new();

/// The line the report prints for a type.
fn line(type_name: &str, count: usize, bytes: &str) -> String {
    format!("hotpool: leak: {count} objects of type `{type_name}` ({bytes}) still in use\n")
}

extern "C" fn arm() {
    ARMED.store(true, SeqCst);
}

extern "C" fn check() {
    ARMED.store(false, SeqCst);
    // Formatted into a stack buffer: a `String` here would be counted by
    // nothing, but the message must not depend on the allocator either.
    let n = DURING.load(SeqCst);
    let mut msg = *b"allocations during the leak report: 0000000000\n";
    let digits = msg.len() - 11..msg.len() - 1;
    let mut v = n;
    for d in msg[digits].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // SAFETY: `msg` is a valid buffer of `msg.len()` bytes.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// The child: leaks, registers the exit handlers around hotpool's, returns.
fn child() {
    // First: runs after every handler registered later, hotpool's too.
    // SAFETY: `check` is a valid `extern "C" fn()` for the process's life.
    assert_eq!(unsafe { libc::atexit(check) }, 0);
    for i in 0..3 {
        let _ = Pooled::leak(PACKETS.alloc(Packet([i; 4])));
    }
    for i in 0..2 {
        let _ = Pooled::leak(CONNS.alloc(Conn(i)));
    }
    let _ = Pooled::leak(MORE_PACKETS.alloc(Packet([9; 4])));
    drop(FREED.alloc(Freed(7)));
    let _ = Pooled::leak(LONG.alloc(Deep(Deep(Deep(Deep(Deep(nest20())))))));
    print!("{}", hotpool::stats::render_leaks(&hotpool::stats::leaks()));
    // hotpool registered its exit handler at its first pool operation
    // above; this one runs before it.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::atexit(arm) }, 0);
}

fn nest20() -> D20 {
    fn nest5<T>(t: T) -> Deep<Deep<Deep<Deep<Deep<T>>>>> {
        Deep(Deep(Deep(Deep(Deep(t)))))
    }
    nest5(nest5(nest5(nest5([0u8; 16]))))
}

fn main() {
    if std::env::var_os("LEAK_REPORT_ALLOC_CHILD").is_some() {
        child();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .env("LEAK_REPORT_ALLOC_CHILD", "1")
        .env("HOTPOOL_CONF", "leak_report:true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {:?}\n{err}",
        out.status
    );
    let long = std::any::type_name::<Long>();
    assert!(long.len() > 512, "type name too short to test: {long}");
    // By type name ("Conn" < "Deep<" < "Packet"), then pool by pool in
    // the order they were first used.
    let report = line("leak_report_alloc::Conn", 2, "8 B")
        + &line(long, 1, "16 B")
        + &line("leak_report_alloc::Packet", 3, "96 B")
        + &line("leak_report_alloc::Packet", 1, "32 B");
    assert_eq!(
        err,
        report.clone() + "allocations during the leak report: 0000000000\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), report, "leaks()");
    println!("leak_report_alloc: ok (the exit-time leak report made no allocation)");
}
