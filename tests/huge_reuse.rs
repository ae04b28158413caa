//! Huge blocks (over 1 MiB) reuse the pages of freed ones: a buffer grown
//! by `realloc`, or a new block longer than any freed one, is made of
//! resident pages the allocator kept, moved or grown over, not of fresh
//! pages that fault in one by one. Counted with the process's minor page
//! faults; the contents must survive every step.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;

use hotpool::HotAlloc;

#[path = "common/statm.rs"]
#[allow(dead_code)]
mod statm;

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

/// The tests share the process's kept mappings and fault count.
static SERIAL: Mutex<()> = Mutex::new(());

fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut u), 0);
        u.ru_minflt
    }
}

fn lay(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Writes a byte derived from `seed` and the page index to each page of
/// `p[from..to]`.
///
/// # Safety
/// `p[..to]` is a live block.
unsafe fn write_pages(p: *mut u8, from: usize, to: usize, seed: u8) {
    for off in (from..to).step_by(PAGE) {
        // SAFETY: in bounds per the contract.
        unsafe { p.add(off).write((off / PAGE) as u8 ^ seed) };
    }
}

/// Checks what [`write_pages`] wrote.
///
/// # Safety
/// As [`write_pages`].
unsafe fn check_pages(p: *mut u8, to: usize, seed: u8) {
    for off in (0..to).step_by(PAGE) {
        // SAFETY: in bounds per the contract.
        let got = unsafe { p.add(off).read() };
        assert_eq!(got, (off / PAGE) as u8 ^ seed, "page {} lost", off / PAGE);
    }
}

#[test]
#[cfg_attr(miri, ignore = "counts page faults, which Miri does not have")]
fn a_buffer_grown_by_realloc_after_a_free_faults_no_fresh_pages() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = HotAlloc;
    hotpool::arena::trim();
    // SAFETY: every block is used within its size and freed once with
    // its layout.
    unsafe {
        let big = a.alloc(lay(32 * MIB));
        assert!(!big.is_null());
        write_pages(big, 0, 32 * MIB, 1);
        a.dealloc(big, lay(32 * MIB));

        let before = minor_faults();
        let mut size = 2 * MIB;
        let mut p = a.alloc(lay(size));
        assert!(!p.is_null());
        write_pages(p, 0, size, 7);
        while size < 32 * MIB {
            p = a.realloc(p, lay(size), size * 2);
            assert!(!p.is_null());
            check_pages(p, size, 7);
            write_pages(p, size, size * 2, 7);
            size *= 2;
        }
        let faults = minor_faults() - before;
        check_pages(p, size, 7);
        a.dealloc(p, lay(size));
        if !statm::under_a_sanitizer() {
            // 8,192 pages written; before the kept mapping's tail was
            // grown over, 7,680 of them faulted in.
            assert!(faults < 256, "{faults} page faults building 32 MiB");
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "counts page faults, which Miri does not have")]
fn a_new_block_longer_than_any_freed_one_is_made_of_their_pages() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = HotAlloc;
    hotpool::arena::trim();
    // SAFETY: as above.
    unsafe {
        let x = a.alloc(lay(16 * MIB));
        let y = a.alloc(lay(16 * MIB));
        assert!(!x.is_null() && !y.is_null());
        write_pages(x, 0, 16 * MIB, 3);
        write_pages(y, 0, 16 * MIB, 5);
        a.dealloc(x, lay(16 * MIB));
        a.dealloc(y, lay(16 * MIB));

        let before = minor_faults();
        let z = a.alloc(lay(24 * MIB));
        assert!(!z.is_null());
        write_pages(z, 0, 24 * MIB, 9);
        let faults = minor_faults() - before;
        check_pages(z, 24 * MIB, 9);
        a.dealloc(z, lay(24 * MIB));
        if !statm::under_a_sanitizer() {
            // 6,144 pages written; reusing only the longest freed block
            // faulted 2,048 of them in.
            assert!(faults < 256, "{faults} page faults for a 24 MiB block");
        }
    }
}

/// From an empty cache: an 8 MiB block written and freed, then a 2 MiB
/// block served from its mapping (asserted: at the same address), whose
/// unused 6 MiB stay kept behind it. Returns the 2 MiB block.
fn a_block_cut_from_a_freed_mapping(a: &HotAlloc) -> *mut u8 {
    hotpool::arena::trim();
    // SAFETY: the 8 MiB block is written within its size and freed once;
    // the 2 MiB block is the caller's, with layout `lay(2 * MIB)`.
    unsafe {
        let x = a.alloc(lay(8 * MIB));
        assert!(!x.is_null());
        write_pages(x, 0, 8 * MIB, 2);
        a.dealloc(x, lay(8 * MIB));
        let p = a.alloc(lay(2 * MIB));
        assert_eq!(p, x, "the freed mapping is reused");
        p
    }
}

#[test]
fn a_block_grows_over_its_own_kept_tail_without_moving() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = HotAlloc;
    let p = a_block_cut_from_a_freed_mapping(&a);
    // SAFETY: as above.
    unsafe {
        write_pages(p, 0, 2 * MIB, 4);
        let q = a.realloc(p, lay(2 * MIB), 4 * MIB);
        assert_eq!(q, p, "grown in place over the kept tail");
        check_pages(q, 2 * MIB, 4);
        write_pages(q, 2 * MIB, 4 * MIB, 4);
        check_pages(q, 4 * MIB, 4);
        a.dealloc(q, lay(4 * MIB));
    }
}

#[test]
fn a_freed_block_joins_its_kept_tail_and_serves_the_whole_length_again() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let a = HotAlloc;
    let p = a_block_cut_from_a_freed_mapping(&a);
    // SAFETY: as above.
    unsafe {
        a.dealloc(p, lay(2 * MIB));
        // Freed, it is one kept entry with its tail again: the whole
        // length is served where it was, not assembled elsewhere.
        let q = a.alloc(lay(8 * MIB));
        assert_eq!(q, p, "the block and its tail were kept as one");
        write_pages(q, 0, 8 * MIB, 8);
        check_pages(q, 8 * MIB, 8);
        a.dealloc(q, lay(8 * MIB));
    }
}

/// Four threads allocate, grow, shrink and free huge blocks of 1-25 MiB
/// at random, sharing the kept mappings; every page of every block keeps
/// what its owner wrote until the owner frees it.
#[test]
#[cfg_attr(miri, ignore = "hundreds of MiB of blocks")]
fn threads_sharing_kept_mappings_never_see_each_others_pages() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            std::thread::spawn(move || {
                let a = HotAlloc;
                let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(t + 1);
                let mut rng = move || {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s as usize
                };
                let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
                for i in 0..600usize {
                    let seed = (i as u8) ^ t.wrapping_mul(64);
                    // SAFETY: every block is used within its size and
                    // freed once with its layout.
                    unsafe {
                        match rng() % 3 {
                            _ if live.len() < 4 => {
                                let size = MIB + rng() % (24 * MIB);
                                let p = a.alloc(lay(size));
                                assert!(!p.is_null());
                                write_pages(p, 0, size, seed);
                                live.push((p, size, seed));
                            }
                            0 => {
                                let (p, size, seed) = live.swap_remove(rng() % live.len());
                                check_pages(p, size, seed);
                                a.dealloc(p, lay(size));
                            }
                            _ => {
                                let k = rng() % live.len();
                                let (p, size, seed) = live[k];
                                let new = if rng() % 4 == 0 {
                                    size / 2 + PAGE
                                } else {
                                    size + rng() % (8 * MIB)
                                };
                                let q = a.realloc(p, lay(size), new);
                                assert!(!q.is_null());
                                let kept = size.min(new);
                                check_pages(q, kept, seed);
                                write_pages(q, kept.next_multiple_of(PAGE), new, seed);
                                live[k] = (q, new, seed);
                            }
                        }
                        if live.len() > 10 {
                            let (p, size, seed) = live.swap_remove(0);
                            check_pages(p, size, seed);
                            a.dealloc(p, lay(size));
                        }
                    }
                }
                for (p, size, seed) in live {
                    // SAFETY: as above.
                    unsafe {
                        check_pages(p, size, seed);
                        a.dealloc(p, lay(size));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
