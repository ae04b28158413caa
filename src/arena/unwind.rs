//! Stack capture for the heap profiler ([`super::prof`]), without frame
//! pointers: the system unwinder (`_Unwind_Backtrace` from libgcc_s, which
//! reads the DWARF call-frame information), made cheap on x86-64 by a
//! cache of what it found.
//!
//! libgcc's walk costs about 2 000 instructions per frame (finding the
//! frame description, running its CFA program). On x86-64 the result for
//! one return address is almost always a fixed rule: the caller's frame
//! address (CFA) is `rsp + n`, or `rbp + 16` in a function with a frame
//! pointer; the return address is at `CFA - 8`; the caller's `rbp` is the
//! callee's, or was saved at `CFA - k`. Each slow walk learns these rules
//! from the registers libgcc reports frame by frame and stores them in a
//! direct-mapped table keyed by return address; later walks whose every
//! frame hits the table run in a few instructions per frame.
//!
//! Safety of the fast walk: it reads only words inside this thread's stack,
//! between the current stack pointer and the highest frame address a slow
//! walk of this thread saw (the outermost frame, live as long as the
//! thread), and gives up (for a slow walk) at the first return address it
//! does not know. A rule learned wrongly can only misname frames, never
//! read outside the stack; in debug builds every fast walk is checked
//! against a slow one.

#[cfg(target_arch = "x86_64")]
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use super::prof::MAX_DEPTH;

#[repr(C)]
struct UnwindContext {
    _private: [u8; 0],
}

/// `_URC_NO_REASON`: go on walking.
const URC_NO_REASON: i32 = 0;
/// `_URC_END_OF_STACK`: stop.
const URC_END_OF_STACK: i32 = 5;

extern "C" {
    // libgcc_s's unwinder (the Itanium C++ ABI's), which std links on Linux.
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut UnwindContext, *mut libc::c_void) -> i32,
        arg: *mut libc::c_void,
    ) -> i32;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    fn _Unwind_GetCFA(ctx: *mut UnwindContext) -> usize;
    #[cfg(target_arch = "x86_64")]
    fn _Unwind_GetGR(ctx: *mut UnwindContext, index: i32) -> usize;
}

/// DWARF register number of `rbp` on x86-64.
#[cfg(target_arch = "x86_64")]
const DWARF_RBP: i32 = 6;

/// Frames a slow walk looks at: the recorded ones and the skipped ones.
const WALK: usize = MAX_DEPTH + 5;

/// Contexts of a slow walk before the first recorded return address:
/// those of `_Unwind_Backtrace`, [`slow`], [`capture`], `prof::sample`
/// (context `i` gives the return address into function `i + 1`).
const SKIP_SLOW: usize = 4;

/// A slow walk: per frame, its return address, frame address and `rbp`.
struct Walk {
    ip: [usize; WALK],
    cfa: [usize; WALK],
    #[cfg(target_arch = "x86_64")]
    rbp: [usize; WALK],
    n: usize,
    /// Whether the unwinder reached the outermost frame.
    ended: bool,
}

extern "C" fn walk_frame(ctx: *mut UnwindContext, arg: *mut libc::c_void) -> i32 {
    // SAFETY: `arg` is the `Walk` that `slow` passed, alive during the walk.
    let w = unsafe { &mut *arg.cast::<Walk>() };
    // SAFETY: `ctx` is the unwinder's context for this frame.
    let (ip, cfa) = unsafe { (_Unwind_GetIP(ctx), _Unwind_GetCFA(ctx)) };
    if ip == 0 {
        w.ended = true;
        return URC_END_OF_STACK;
    }
    w.ip[w.n] = ip;
    w.cfa[w.n] = cfa;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as above; `rbp` always has a location (libgcc saves
        // every callee-saved register on entry).
        w.rbp[w.n] = unsafe { _Unwind_GetGR(ctx, DWARF_RBP) };
    }
    w.n += 1;
    if w.n == WALK {
        URC_END_OF_STACK
    } else {
        URC_NO_REASON
    }
}

/// Return addresses of the stack of `prof::due`'s caller, innermost first;
/// returns how many. `stack_hi` is this thread's highest frame address seen
/// so far (0: none), raised by slow walks.
#[inline(never)]
pub(super) fn capture(frames: &mut [usize; MAX_DEPTH], stack_hi: &mut usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let (sp, bp) = registers();
        if let Some(n) = fast(frames, sp, bp, *stack_hi) {
            #[cfg(debug_assertions)]
            check_fast(&frames[..n]);
            return n;
        }
        slow(frames, stack_hi, Some((sp, bp)), SKIP_SLOW)
    }
    #[cfg(not(target_arch = "x86_64"))]
    slow(frames, stack_hi, None, SKIP_SLOW)
}

/// In debug builds: a fast walk must give what a slow one gives.
#[cfg(all(debug_assertions, target_arch = "x86_64"))]
#[inline(never)]
fn check_fast(fast: &[usize]) {
    let mut frames = [0; MAX_DEPTH];
    let mut hi = 0;
    // One frame more than a slow walk from `capture`: this one.
    let n = slow(&mut frames, &mut hi, None, SKIP_SLOW + 1);
    if frames[..n] != *fast {
        crate::report::abort_with(format_args!(
            "hotpool: prof: the cached unwinder gave {fast:x?}, libgcc {:x?}",
            &frames[..n]
        ));
    }
}

/// The walk through libgcc; learns rules from it when `at_capture` gives
/// `capture`'s stack pointer and `rbp` (read where it read them).
#[inline(never)]
fn slow(
    frames: &mut [usize; MAX_DEPTH],
    stack_hi: &mut usize,
    at_capture: Option<(usize, usize)>,
    skip: usize,
) -> usize {
    let mut w = Walk {
        ip: [0; WALK],
        cfa: [0; WALK],
        #[cfg(target_arch = "x86_64")]
        rbp: [0; WALK],
        n: 0,
        ended: false,
    };
    // SAFETY: `walk_frame` matches the callback type and only touches `w`,
    // which outlives the call.
    let rc = unsafe { _Unwind_Backtrace(walk_frame, (&raw mut w).cast()) };
    w.ended |= rc == URC_END_OF_STACK && w.n < WALK;
    if w.n > 0 {
        *stack_hi = (*stack_hi).max(w.cfa[w.n - 1]);
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(at) = at_capture {
        learn(&w, at);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at_capture;
    let n = w.n.saturating_sub(skip).min(MAX_DEPTH);
    frames[..n].copy_from_slice(&w.ip[skip..skip + n]);
    n
}

// ---- the rule cache (x86-64) ----------------------------------------------

/// Slots of the rule table (direct-mapped by return address).
#[cfg(target_arch = "x86_64")]
const RULES: usize = 1 << 12;

// A rule in 32 bits: the flags below, the distance from the CFA down to
// the saved `rbp` in words (bits 20..28), and the CFA's offset from the
// stack pointer (bits 0..20, under 1 MiB).
#[cfg(target_arch = "x86_64")]
const VALID: u32 = 1 << 31;
/// The CFA is `rbp + 16` (a frame-pointer function; `rbp` saved at CFA - 16).
#[cfg(target_arch = "x86_64")]
const RBP_BASE: u32 = 1 << 30;
/// The caller's `rbp` was saved in this frame (distance in bits 20..28).
#[cfg(target_arch = "x86_64")]
const RBP_SAVED: u32 = 1 << 29;
/// The outermost frame: the walk ends here.
#[cfg(target_arch = "x86_64")]
const END: u32 = 1 << 28;
#[cfg(target_arch = "x86_64")]
const OFFSET_MASK: u32 = (1 << 20) - 1;

/// Per slot, the low 32 bits of a return address and its rule, in one
/// word so that a reader never pairs one address with another's rule.
#[cfg(target_arch = "x86_64")]
static RULES_TABLE: [AtomicU64; RULES] = [const { AtomicU64::new(0) }; RULES];

/// The rule for `capture`'s own frame: `capture` has one frame layout
/// wherever in it the registers are read.
#[cfg(target_arch = "x86_64")]
static CAPTURE_RULE: AtomicU32 = AtomicU32::new(0);

#[cfg(target_arch = "x86_64")]
fn rule_slot(ip: usize) -> usize {
    ((ip as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as usize & (RULES - 1)
}

#[cfg(target_arch = "x86_64")]
fn rule_of(ip: usize) -> Option<u32> {
    let e = RULES_TABLE[rule_slot(ip)].load(Relaxed);
    (e >> 32 == ip as u64 & 0xffff_ffff && e as u32 & VALID != 0).then_some(e as u32)
}

#[cfg(target_arch = "x86_64")]
fn set_rule(ip: usize, r: u32) {
    let e = (ip as u64) << 32 | r as u64;
    let slot = &RULES_TABLE[rule_slot(ip)];
    if slot.load(Relaxed) != e {
        slot.store(e, Relaxed);
    }
}

/// `capture`'s stack pointer and `rbp` where it reads them.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn registers() -> (usize, usize) {
    let (sp, bp): (usize, usize);
    // SAFETY: each reads one register, touches nothing. Two statements:
    // within one, the compiler may give `rbp` itself to the first output.
    unsafe {
        core::arch::asm!("mov {}, rbp", out(reg) bp, options(nomem, nostack, preserves_flags));
        core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    (sp, bp)
}

/// The rule that takes a frame with stack pointer `sp` and `rbp` `bp`,
/// whose frame address is `cfa`, to its caller whose `rbp` is `caller_bp`;
/// `None` when the registers do not tell.
#[cfg(target_arch = "x86_64")]
fn rule_for(sp: usize, bp: usize, cfa: usize, caller_bp: usize) -> Option<u32> {
    if cfa <= sp || cfa - sp > OFFSET_MASK as usize || cfa % 8 != 0 {
        return None;
    }
    // SAFETY: `cfa - 16` lies in this frame or the live ones below it.
    if bp == cfa - 16 && unsafe { *((cfa - 16) as *const usize) } == caller_bp {
        return Some(VALID | RBP_BASE);
    }
    let mut r = VALID | (cfa - sp) as u32;
    if caller_bp != bp {
        // The caller's rbp was saved in this frame: find the slot among the
        // callee-saved pushes right below the return address.
        let words = (2..=8)
            .filter(|&k| cfa - 8 * k >= sp)
            // SAFETY: `sp <= cfa - 8k < cfa`: inside the live frame.
            .find(|&k| unsafe { *((cfa - 8 * k) as *const usize) } == caller_bp)?;
        r |= RBP_SAVED | (words as u32) << 20;
    }
    Some(r)
}

/// Learns the rules of a slow walk made from `capture`, whose stack
/// pointer and `rbp` were `at`.
///
/// libgcc's context `i` holds the state of function `i + 1` stopped at
/// the call into function `i`: the return address `ip[i]`, the stack
/// pointer `cfa[i]` (function `i`'s frame address) and `rbp[i]`. So the
/// rule keyed by `ip[i]` takes that state to context `i + 1`'s. Contexts 0
/// to 2 are `_Unwind_Backtrace`'s, [`slow`]'s and [`capture`]'s.
#[cfg(target_arch = "x86_64")]
fn learn(w: &Walk, at: (usize, usize)) {
    // Where `capture` reads its registers is up to the compiler (maybe
    // before its prologue), so its rule is only the distance from that
    // stack pointer to its frame address, the same in every call; and it
    // must not have changed its caller's `rbp` by then.
    if w.n < 3 || w.rbp[2] != at.1 {
        return;
    }
    match w.cfa[2].checked_sub(at.0) {
        Some(d) if d <= OFFSET_MASK as usize && w.cfa[2] % 8 == 0 => {
            CAPTURE_RULE.store(VALID | d as u32, Relaxed)
        }
        _ => return,
    }
    for i in 2..w.n {
        if i + 1 == w.n {
            if w.ended {
                set_rule(w.ip[i], VALID | END);
            }
            break;
        }
        if let Some(r) = rule_for(w.cfa[i], w.rbp[i], w.cfa[i + 1], w.rbp[i + 1]) {
            set_rule(w.ip[i], r);
        }
    }
}

/// Applies rule `r` to a frame: its frame address and the caller's `rbp`,
/// or `None` if a read would leave `[sp, hi]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn step(r: u32, sp: usize, bp: usize, hi: usize) -> Option<(usize, usize)> {
    let cfa = if r & RBP_BASE != 0 {
        bp.checked_add(16)?
    } else {
        sp + (r & OFFSET_MASK) as usize
    };
    if cfa <= sp || cfa > hi || cfa % 8 != 0 {
        return None;
    }
    let slot = if r & RBP_BASE != 0 {
        cfa - 16
    } else if r & RBP_SAVED != 0 {
        cfa.checked_sub(8 * (r >> 20 & 0xff) as usize)?
    } else {
        return Some((cfa, bp));
    };
    if slot < sp {
        return None;
    }
    // SAFETY: `sp <= slot < cfa <= hi`: inside this thread's stack.
    Some((cfa, unsafe { *(slot as *const usize) }))
}

/// The walk through cached rules from `capture`'s frame (stack pointer
/// `sp`, `rbp` `bp`); `None` at the first unknown frame or unsafe read.
#[cfg(target_arch = "x86_64")]
fn fast(frames: &mut [usize; MAX_DEPTH], sp: usize, bp: usize, hi: usize) -> Option<usize> {
    let r = CAPTURE_RULE.load(Relaxed);
    // A stack pointer far below the highest frame seen: another stack (a
    // coroutine's), whose frames `hi` does not bound.
    if r & VALID == 0 || hi <= sp || hi - sp > 1 << 26 {
        return None;
    }
    // `capture`'s frame: its return address is in its own frame, so the
    // read is safe whatever the stack pointer now.
    let cfa = sp + (r & OFFSET_MASK) as usize;
    if cfa > hi {
        return None;
    }
    // SAFETY: `cfa - 8` holds `capture`'s return address.
    let mut ip = unsafe { *((cfa - 8) as *const usize) };
    let (mut sp, mut bp) = (cfa, bp);
    // The return addresses into `sample` and `due` are skipped.
    let mut skip = 2;
    let mut n = 0;
    loop {
        if ip == 0 {
            return None;
        }
        if skip > 0 {
            skip -= 1;
        } else {
            frames[n] = ip;
            n += 1;
            if n == MAX_DEPTH {
                return Some(n);
            }
        }
        let rule = rule_of(ip)?;
        if rule & END != 0 {
            return (skip == 0).then_some(n);
        }
        let (cfa, caller_bp) = step(rule, sp, bp, hi)?;
        // SAFETY: `step` checked `sp < cfa <= hi`, so `cfa - 8` is in the stack.
        ip = unsafe { *((cfa - 8) as *const usize) };
        (sp, bp) = (cfa, caller_bp);
    }
}
