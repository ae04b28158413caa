//! The arena allocator against a shadow model: sequences of allocations,
//! frees, reallocations, zeroed and over-aligned allocations through
//! `HotAlloc` (`GlobalAlloc` and `allocator_api2::Allocator`) and through
//! the `hotpool::arena` functions that `hotpool-malloc` wraps (`try_alloc`,
//! `calloc`, `alloc_array`, `realloc`, `free`, `free_if_owned`,
//! `usable_size`, `owns`, `trim`), some of them on a second thread.
//!
//! Every live block is filled with a pattern over its usable size; the
//! model checks that the requested bytes keep their pattern (so a block
//! handed out twice, or a neighbour written past its usable size, shows),
//! that reallocation keeps `min(old, new)` bytes, that zeroed blocks read
//! zero, that alignment and `usable_size >= size` hold, that no two live
//! blocks overlap, and that `owns`/`free_if_owned` refuse foreign memory.
#![no_main]

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::ptr::NonNull;

use allocator_api2::alloc::Allocator;
use arbitrary::Arbitrary;
use hotpool::{arena, HotAlloc};
use libfuzzer_sys::fuzz_target;

/// Bounds that keep one execution in the milliseconds.
const MAX_LIVE: usize = 64;
const MAX_LIVE_BYTES: usize = 32 << 20;
const MAX_THREADS: usize = 4;
const MAX_TRIMS: usize = 2;

/// A requested size: mostly small classes, sometimes large runs, rarely
/// huge blocks (up to 4 MiB + 64 KiB).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Size(u8, u32);

impl Size {
    fn get(self) -> usize {
        let r = self.1 as usize;
        match self.0 {
            0..=159 => r % 257,                                 // tiny and small, 0 included
            160..=219 => r % (16 << 10), // small classes up to 14 KiB, first large
            220..=245 => r % (1 << 20),  // large runs
            246..=251 => r % (1 << 12) + (1 << 20) - (1 << 11), // around the huge threshold
            _ => r % (4 << 20) + (64 << 10), // huge
        }
    }
}

/// An alignment: mostly up to 64, sometimes page or beyond (the arena maps
/// alignments above 256 KiB as huge blocks).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Align(u8);

impl Align {
    fn get(self) -> usize {
        let shift = if self.0 < 200 {
            self.0 % 7
        } else {
            self.0 % 22
        };
        1 << shift
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Api {
    /// `GlobalAlloc::alloc` / `alloc_zeroed`.
    Global { zeroed: bool },
    /// `Allocator::allocate` / `allocate_zeroed` (zero size: dangling).
    Allocator { zeroed: bool },
    /// `arena::try_alloc` (C `malloc`, `aligned_alloc`, `memalign`).
    TryAlloc,
    /// `arena::calloc(n, size)`.
    Calloc { n: u8 },
    /// `arena::alloc_array(n, size)`.
    Array { n: u8 },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FreeHow {
    /// By layout if the block has one, else `arena::free`.
    Layout,
    Free,
    FreeIfOwned,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Resize {
    /// `arena::realloc` (C `realloc`).
    Arena,
    /// `GlobalAlloc::realloc` (same alignment).
    Global,
    /// `Allocator::grow` / `grow_zeroed` / `shrink`, maybe to a new alignment.
    Allocator { zeroed: bool, align: Align },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc {
        api: Api,
        size: Size,
        align: Align,
    },
    Free {
        idx: u8,
        how: FreeHow,
    },
    Realloc {
        idx: u8,
        size: Size,
        how: Resize,
    },
    /// Re-checks a block's contents, `owns` and `usable_size`.
    Check {
        idx: u8,
    },
    /// `owns` and `free_if_owned` on memory the arena never had.
    Foreign {
        what: u8,
    },
    /// Frees some blocks and allocates one on a new thread (remote frees,
    /// thread-cache flush at exit); the new block is freed later here.
    OtherThread {
        frees: Vec<u8>,
        size: Size,
        align: Align,
    },
    /// Requests that must fail without touching anything.
    Bad {
        idx: u8,
        what: u8,
    },
    Trim,
}

/// How a block may be freed and resized.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// From `HotAlloc` with this layout (size > 0).
    Layout,
    /// From the `arena` functions, or moved there by `arena::realloc`:
    /// no layout, freed by address only.
    Raw,
    /// A zero-size `Allocator` block: dangling, never passed to the arenas.
    Dangling,
}

#[derive(Debug)]
struct Block {
    ptr: *mut u8,
    /// Bytes requested; the pattern is checked over these.
    size: usize,
    /// Alignment promised.
    align: usize,
    /// Bytes usable (and written) at `ptr`.
    usable: usize,
    seed: u8,
    kind: Kind,
}

// SAFETY: a block is plain memory owned by the model; it moves to another
// thread only to be freed there.
unsafe impl Send for Block {}

fn pattern(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31)) ^ (i >> 8) as u8
}

/// Positions written and checked in `from..len`: every byte of the first
/// 64 KiB, beyond that every 509th byte and the last 64 bytes of every page
/// (a fill of every byte of a 4 MiB block would dominate the run time). The
/// set depends on the index only, so a check after a resize reads only
/// bytes that the fill before it wrote.
fn positions(from: usize, len: usize) -> impl Iterator<Item = usize> {
    const DENSE: usize = 64 << 10;
    const PAGE: usize = 4096;
    let dense = from.min(DENSE)..len.min(DENSE);
    let start = from.max(DENSE);
    let pages = start / PAGE..len.div_ceil(PAGE).max(start / PAGE);
    let sparse = pages.flat_map(move |pg| {
        let (lo, hi) = ((pg * PAGE).max(start), ((pg + 1) * PAGE).min(len));
        (lo.div_ceil(509) * 509..hi)
            .step_by(509)
            .chain(((pg + 1) * PAGE - 64).max(lo)..hi)
    });
    dense.chain(sparse)
}

impl Block {
    fn fill(&self, from: usize) {
        for i in positions(from, self.usable) {
            // SAFETY: the block is live and `usable` bytes long.
            unsafe { self.ptr.add(i).write(pattern(self.seed, i)) };
        }
    }

    fn check(&self, upto: usize) {
        for i in positions(0, upto.min(self.size)) {
            // SAFETY: as in `fill`.
            let got = unsafe { self.ptr.add(i).read() };
            assert_eq!(
                got,
                pattern(self.seed, i),
                "byte {i} of {self:?} lost its pattern"
            );
        }
    }

    fn check_zero(&self) {
        // SAFETY: the block is live and `size` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.size) };
        if let Some(i) = bytes.iter().position(|&b| b != 0) {
            panic!("zeroed block {self:?} has byte {i} = {}", bytes[i]);
        }
    }

    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).unwrap()
    }

    fn addr_range(&self) -> (usize, usize) {
        (self.ptr as usize, self.ptr as usize + self.usable.max(1))
    }
}

struct Model {
    blocks: Vec<Block>,
    /// Start address -> end address of the live arena blocks.
    ranges: BTreeMap<usize, usize>,
    live_bytes: usize,
    seed: u8,
    threads: usize,
    trims: usize,
}

/// Usable size as the arena reports it, checked against the request.
///
/// # Safety
/// `ptr` is a live arena block.
unsafe fn usable(ptr: *mut u8, size: usize) -> usize {
    // SAFETY: the caller's contract.
    let u = unsafe { arena::usable_size(NonNull::new(ptr).unwrap()) };
    assert!(u >= size.max(1), "usable_size {u} < requested {size}");
    u
}

fn check_owned(b: &Block) {
    if b.kind != Kind::Dangling {
        // SAFETY: the block is live and ours.
        assert!(unsafe { arena::owns(b.ptr) }, "owns() refuses {b:?}");
        // SAFETY: as above.
        let u = unsafe { arena::usable_size(NonNull::new(b.ptr).unwrap()) };
        assert!(
            u >= b.usable.min(b.size.max(1)),
            "usable_size shrank: {u}, {b:?}"
        );
    }
}

impl Model {
    fn new() -> Model {
        Model {
            blocks: Vec::new(),
            ranges: BTreeMap::new(),
            live_bytes: 0,
            seed: 0,
            threads: 0,
            trims: 0,
        }
    }

    fn next_seed(&mut self) -> u8 {
        self.seed = self.seed.wrapping_add(1);
        self.seed
    }

    fn insert_range(&mut self, b: &Block) {
        if b.kind == Kind::Dangling {
            return;
        }
        let (start, end) = b.addr_range();
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= start, "{b:?} overlaps live block {s:#x}..{e:#x}");
        }
        self.ranges.insert(start, end);
    }

    fn remove_range(&mut self, b: &Block) {
        if b.kind != Kind::Dangling {
            assert!(self.ranges.remove(&(b.ptr as usize)).is_some());
        }
    }

    /// Checks a new block, fills it and records it.
    fn add(&mut self, b: Block, zeroed: bool) {
        assert_eq!(b.ptr as usize % b.align, 0, "misaligned {b:?}");
        if zeroed {
            b.check_zero();
        }
        self.insert_range(&b);
        b.fill(0);
        self.live_bytes += b.usable;
        self.blocks.push(b);
    }

    fn alloc(&mut self, api: Api, size: usize, align: usize) {
        if self.blocks.len() >= MAX_LIVE || self.live_bytes + size > MAX_LIVE_BYTES {
            return;
        }
        let seed = self.next_seed();
        let (ptr, size, align, usable, kind, zeroed) = match api {
            Api::Global { zeroed } => {
                let size = size.max(1);
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: the layout's size is non-zero.
                let p = unsafe {
                    if zeroed {
                        HotAlloc.alloc_zeroed(layout)
                    } else {
                        HotAlloc.alloc(layout)
                    }
                };
                assert!(!p.is_null(), "HotAlloc failed for {layout:?}");
                // SAFETY: a live block.
                let u = unsafe { usable(p, size) };
                (p, size, align, u, Kind::Layout, zeroed)
            }
            Api::Allocator { zeroed } => {
                let layout = Layout::from_size_align(size, align).unwrap();
                let s = if zeroed {
                    HotAlloc.allocate_zeroed(layout)
                } else {
                    HotAlloc.allocate(layout)
                }
                .expect("Allocator::allocate failed");
                assert!(s.len() >= size);
                let p = s.cast::<u8>().as_ptr();
                if size == 0 {
                    (p, 0, align, 0, Kind::Dangling, false)
                } else {
                    // SAFETY: a live block.
                    let u = unsafe { usable(p, size) };
                    assert!(u >= s.len(), "slice {} longer than usable {u}", s.len());
                    (p, size, align, s.len(), Kind::Layout, zeroed)
                }
            }
            Api::TryAlloc => {
                let p = arena::try_alloc(size, align).expect("try_alloc failed");
                // SAFETY: a live block.
                let u = unsafe { usable(p.as_ptr(), size) };
                (p.as_ptr(), size, align, u, Kind::Raw, false)
            }
            Api::Calloc { n } | Api::Array { n } => {
                let n = n as usize % 9;
                let elem = size / 8;
                let zeroed = matches!(api, Api::Calloc { .. });
                let p = if zeroed {
                    arena::calloc(n, elem)
                } else {
                    arena::alloc_array(n, elem)
                }
                .expect("calloc/alloc_array failed");
                // SAFETY: a live block.
                let u = unsafe { usable(p.as_ptr(), n * elem) };
                (p.as_ptr(), n * elem, 16, u, Kind::Raw, zeroed)
            }
        };
        self.add(
            Block {
                ptr,
                size,
                align,
                usable,
                seed,
                kind,
            },
            zeroed,
        );
    }

    fn take(&mut self, idx: u8) -> Option<Block> {
        if self.blocks.is_empty() {
            return None;
        }
        let b = self.blocks.swap_remove(idx as usize % self.blocks.len());
        b.check(b.size);
        self.remove_range(&b);
        self.live_bytes -= b.usable;
        Some(b)
    }

    fn free(&mut self, idx: u8, how: FreeHow) {
        if let Some(b) = self.take(idx) {
            free_block(b, how);
        }
    }

    fn realloc(&mut self, idx: u8, new_size: usize, how: Resize) {
        let Some(b) = self.take(idx) else { return };
        if self.live_bytes + new_size > MAX_LIVE_BYTES {
            free_block(b, FreeHow::Layout);
            return;
        }
        let keep = b.size.min(new_size);
        // A dangling block can only grow through the trait; a raw block
        // only through `arena::realloc`.
        let how = match (b.kind, how) {
            (Kind::Dangling, Resize::Allocator { .. }) | (Kind::Layout, _) => how,
            (Kind::Dangling, _) => Resize::Allocator {
                zeroed: false,
                align: Align(b.align.trailing_zeros() as u8),
            },
            (Kind::Raw, _) => Resize::Arena,
        };
        let (ptr, size, align, usable, kind, zero_from) = match how {
            Resize::Allocator { zeroed, align } => {
                let new = Layout::from_size_align(new_size, align.get()).unwrap();
                let old = b.layout();
                let nn = NonNull::new(b.ptr).unwrap();
                // SAFETY: `b` is live with layout `old` (or dangling with
                // size 0); grow gets a size at least the old one, shrink at
                // most.
                let r = unsafe {
                    if new_size >= b.size {
                        if zeroed {
                            HotAlloc.grow_zeroed(nn, old, new)
                        } else {
                            HotAlloc.grow(nn, old, new)
                        }
                    } else {
                        HotAlloc.shrink(nn, old, new)
                    }
                }
                .expect("grow/shrink failed");
                assert!(r.len() >= new_size);
                let p = r.cast::<u8>().as_ptr();
                let zero_from = (zeroed && new_size >= b.size).then_some(b.size);
                if new_size == 0 {
                    (p, 0, new.align(), 0, Kind::Dangling, None)
                } else {
                    // SAFETY: a live block.
                    let u = unsafe { usable(p, new_size) };
                    assert!(u >= r.len(), "slice {} longer than usable {u}", r.len());
                    (p, new_size, new.align(), r.len(), Kind::Layout, zero_from)
                }
            }
            Resize::Global if new_size > 0 => {
                // SAFETY: `b` is live with its layout (kind `Layout`); the
                // new size is non-zero and small.
                let p = unsafe { HotAlloc.realloc(b.ptr, b.layout(), new_size) };
                assert!(!p.is_null(), "GlobalAlloc::realloc failed");
                // SAFETY: a live block.
                let u = unsafe { usable(p, new_size) };
                (p, new_size, b.align, u, Kind::Layout, None)
            }
            Resize::Global | Resize::Arena => {
                // C realloc: any arena block, by address.
                // SAFETY: `b` is a live arena block (kind `Layout` or `Raw`).
                let p = unsafe { arena::realloc(NonNull::new(b.ptr).unwrap(), new_size) }
                    .expect("arena::realloc failed");
                // SAFETY: a live block.
                let u = unsafe { usable(p.as_ptr(), new_size) };
                // In place the block keeps its alignment; moved, it has 16.
                let align = if p.as_ptr() == b.ptr { b.align } else { 16 };
                (p.as_ptr(), new_size, align, u, Kind::Raw, None)
            }
        };
        let nb = Block {
            ptr,
            size,
            align,
            usable,
            seed: b.seed,
            kind,
        };
        assert_eq!(ptr as usize % align, 0, "misaligned after realloc {nb:?}");
        nb.check(keep);
        if let Some(from) = zero_from {
            for i in positions(from, size) {
                // SAFETY: the block is live, `size` bytes long.
                assert_eq!(unsafe { ptr.add(i).read() }, 0, "grow_zeroed byte {i}");
            }
        }
        self.insert_range(&nb);
        nb.fill(keep);
        self.live_bytes += nb.usable;
        self.blocks.push(nb);
    }

    fn foreign(&self, what: u8, input: &[u8]) {
        let on_stack = [what; 64];
        let boxed = Box::new([what; 256]);
        let ptrs: [*const u8; 4] = [
            on_stack.as_ptr(),
            boxed.as_ptr(),
            input.as_ptr(),
            std::ptr::dangling::<u64>().cast(),
        ];
        let p = ptrs[what as usize % ptrs.len()];
        // SAFETY: `p` is memory the arena never had (the stack, the system
        // allocator's heap, libFuzzer's input, a dangling address), so no
        // arena block is freed concurrently in its region.
        unsafe {
            assert!(!arena::owns(p), "owns() accepts foreign {p:?}");
            assert!(
                !arena::free_if_owned(p.cast_mut()),
                "free_if_owned() frees foreign {p:?}"
            );
        }
        std::hint::black_box(&on_stack);
        drop(boxed);
    }

    fn other_thread(&mut self, frees: &[u8], size: usize, align: usize) {
        if self.threads >= MAX_THREADS {
            return;
        }
        self.threads += 1;
        let mut sent = Vec::new();
        for &i in frees.iter().take(8) {
            if let Some(b) = self.take(i) {
                sent.push(b);
            }
        }
        let seed = self.next_seed();
        let size = if self.live_bytes + size > MAX_LIVE_BYTES {
            1
        } else {
            size
        };
        let b = std::thread::spawn(move || {
            for (k, b) in sent.into_iter().enumerate() {
                let how = [FreeHow::Layout, FreeHow::Free, FreeHow::FreeIfOwned][k % 3];
                free_block(b, how);
            }
            let p = arena::try_alloc(size, align).expect("try_alloc on a thread failed");
            // SAFETY: a live block.
            let u = unsafe { usable(p.as_ptr(), size) };
            let b = Block {
                ptr: p.as_ptr(),
                size,
                align,
                usable: u,
                seed,
                kind: Kind::Raw,
            };
            b.fill(0);
            b
        })
        .join()
        .unwrap();
        b.check(b.size);
        self.insert_range(&b);
        self.live_bytes += b.usable;
        self.blocks.push(b);
    }

    fn bad(&mut self, idx: u8, what: u8) {
        match what % 4 {
            0 => assert!(arena::try_alloc(8, 3 << (what % 8)).is_err()),
            1 => assert!(arena::alloc_array(usize::MAX / 2 + what as usize, 3).is_err()),
            2 => assert!(arena::calloc(3, usize::MAX / 2 - what as usize).is_err()),
            _ => {
                if let Some(b) = self.blocks.get(idx as usize % self.blocks.len().max(1)) {
                    if b.kind != Kind::Dangling {
                        let big = isize::MAX as usize - what as usize;
                        // SAFETY: `b` is a live arena block; on error it stays ours.
                        let r = unsafe { arena::realloc(NonNull::new(b.ptr).unwrap(), big) };
                        assert!(r.is_err(), "realloc to {big} succeeded");
                        b.check(b.size);
                    }
                }
            }
        }
    }

    fn check(&self, idx: u8) {
        if !self.blocks.is_empty() {
            let b = &self.blocks[idx as usize % self.blocks.len()];
            b.check(b.size);
            check_owned(b);
        }
    }
}

fn free_block(b: Block, how: FreeHow) {
    let nn = NonNull::new(b.ptr).unwrap();
    match (b.kind, how) {
        // SAFETY (all arms): `b` is live, ours, and freed exactly once,
        // by a function that accepts blocks of its kind.
        (Kind::Dangling, _) => unsafe { HotAlloc.deallocate(nn, b.layout()) },
        (Kind::Layout, FreeHow::Layout) => unsafe { HotAlloc.dealloc(b.ptr, b.layout()) },
        (_, FreeHow::FreeIfOwned) => {
            assert!(
                unsafe { arena::free_if_owned(b.ptr) },
                "free_if_owned refused {b:?}"
            )
        }
        _ => unsafe { arena::free(nn) },
    }
}

/// Whether to print each operation (set `FUZZ_TRACE=1` when replaying a
/// finding).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

fuzz_target!(|input: &[u8]| {
    let mut u = arbitrary::Unstructured::new(input);
    let Ok(ops) = u.arbitrary_iter::<Op>() else {
        return;
    };
    let mut m = Model::new();
    for op in ops.take(256) {
        let Ok(op) = op else { break };
        if trace() {
            eprintln!("{op:?}");
        }
        match op {
            Op::Alloc { api, size, align } => m.alloc(api, size.get(), align.get()),
            Op::Free { idx, how } => m.free(idx, how),
            Op::Realloc { idx, size, how } => m.realloc(idx, size.get(), how),
            Op::Check { idx } => m.check(idx),
            Op::Foreign { what } => m.foreign(what, input),
            Op::OtherThread { frees, size, align } => {
                m.other_thread(&frees, size.get(), align.get())
            }
            Op::Bad { idx, what } => m.bad(idx, what),
            Op::Trim => {
                if m.trims < MAX_TRIMS {
                    m.trims += 1;
                    arena::trim();
                }
            }
        }
    }
    for b in &m.blocks {
        b.check(b.size);
        check_owned(b);
    }
    while let Some(b) = m.take(0) {
        free_block(b, FreeHow::Layout);
    }
});
