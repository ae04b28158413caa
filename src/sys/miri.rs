//! The OS memory calls of [`super`] as Miri can run them.
//!
//! Miri emulates only whole `MAP_PRIVATE | MAP_ANONYMOUS` mappings: no
//! `MAP_NORESERVE`, no partial `munmap`, no `madvise`, no `mremap`. Under
//! `cfg(miri)` a "mapping" is a zeroed block of the system allocator
//! (`std::alloc::System`, never the global allocator, which may be
//! `HotAlloc` itself) with the alignment asked for. A fixed table (no
//! allocation) remembers each block's layout and how many of its bytes are
//! still mapped: unmapping a part of a block (as the arena trims a huge
//! mapping's head and tail) only counts those bytes, and the block is freed
//! when its last byte is unmapped. Everything above `sys` runs unchanged.
//!
//! The table holds the blocks' pointers, so Miri's leak check sees mapped
//! memory as reachable, as mappings are in a real process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::{null_mut, NonNull};
use std::sync::Mutex;

/// Live blocks at most; `map` fails (as an OS out of memory would) beyond.
/// The tests run under Miri keep fewer than a hundred.
const SLOTS: usize = 1024;

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    /// Bytes not unmapped yet.
    live: usize,
}

struct Table {
    used: usize,
    blocks: [Block; SLOTS],
}

// SAFETY: the raw pointers are addresses of blocks owned by the table,
// only touched under the mutex.
unsafe impl Send for Table {}

const EMPTY: Block = Block {
    ptr: null_mut(),
    layout: Layout::new::<u8>(),
    live: 0,
};

static TABLE: Mutex<Table> = Mutex::new(Table {
    used: 0,
    blocks: [EMPTY; SLOTS],
});

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    /// The index of the block holding `p`.
    fn find(&self, p: usize) -> Option<usize> {
        self.blocks[..self.used].iter().position(|b| {
            let start = b.ptr as usize;
            p >= start && p < start + b.layout.size()
        })
    }
}

/// The largest mapping handed out. The kernel refuses a mapping it cannot
/// serve with an error; Miri instead stops the program when its host cannot
/// serve an allocation, so larger requests are refused here (no test under
/// Miri needs more).
const MAX_MAP: usize = 1 << 30;

/// `len` zeroed bytes aligned to `align` (a power of two); `None` for an
/// empty or too large request, as the kernel refuses one.
pub(super) fn map(len: usize, align: usize) -> Option<NonNull<u8>> {
    let layout = Layout::from_size_align(len, align).ok()?;
    let mut t = table();
    if t.used == SLOTS || len == 0 || len > MAX_MAP {
        return None;
    }
    // SAFETY: `layout` has a non-zero size.
    let ptr = NonNull::new(unsafe { System.alloc_zeroed(layout) })?;
    let i = t.used;
    t.blocks[i] = Block {
        ptr: ptr.as_ptr(),
        layout,
        live: len,
    };
    t.used += 1;
    Some(ptr)
}

/// Unmaps `len` bytes at `p`, inside one block; frees the block once all of
/// it is unmapped.
///
/// # Safety
///
/// The range lies inside one block of [`map`], was not unmapped before, and
/// nothing uses it any more.
pub(super) unsafe fn unmap(p: *mut u8, len: usize) {
    let mut t = table();
    let Some(i) = t.find(p as usize) else {
        panic!("sys (miri): unmap of {p:p}, not a mapping of ours");
    };
    let b = &mut t.blocks[i];
    assert!(
        p as usize + len <= b.ptr as usize + b.layout.size() && len <= b.live,
        "sys (miri): unmap of {len} bytes at {p:p} beyond its mapping"
    );
    b.live -= len;
    if b.live == 0 {
        let gone = *b;
        let last = t.used - 1;
        t.blocks[i] = t.blocks[last];
        t.blocks[last] = EMPTY;
        t.used = last;
        // SAFETY: the block came from `System.alloc_zeroed(gone.layout)` and
        // all of it was unmapped: nobody uses it.
        unsafe { System.dealloc(gone.ptr, gone.layout) };
    }
}

/// Bytes mapped and not unmapped: what a process's resident set would be
/// if it touched every page it maps.
pub(super) fn mapped_bytes() -> usize {
    let t = table();
    t.blocks[..t.used].iter().map(|b| b.live).sum()
}

/// The `u32` at `p` if it lies inside a block of ours, else `None` (a
/// real process could read more, but Miri cannot tell readable memory of
/// another allocator from unallocated memory without stopping).
pub(super) fn peek_u32(p: *const u8) -> Option<u32> {
    let t = table();
    let i = t.find(p as usize)?;
    let b = &t.blocks[i];
    if p as usize + 4 > b.ptr as usize + b.layout.size() {
        return None;
    }
    // SAFETY: the 4 bytes lie inside a live block (an unmapped part of a
    // block is not told apart: the arena never peeks there).
    Some(unsafe {
        b.ptr
            .add(p as usize - b.ptr as usize)
            .cast::<u32>()
            .read_unaligned()
    })
}
