//! `HOTPOOL_CONF`: the arena allocator's and the debug options, like jemalloc's
//! `MALLOC_CONF`, read once at start-up without allocating.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `narenas` | 1..=64 | 4 per CPU online (at most 64) | arenas; a new thread joins the open one with the fewest threads. By default only the first is open at the start, and a thread that shares its arena and finds its bin locks held 4 times between two GC events moves to a less used one, opening one more if needed; set, every arena is open from the start |
//! | `tcache` | bool | `true` | per-thread caches in front of the arenas |
//! | `tcache_max` | 0..=65536 | 65536 | largest size class kept in thread caches |
//! | `tcache_bytes` | 0..=67108864 | 4194304 (4 MiB) | bytes of free objects one thread's arena cache may hold, all classes together; 0 caches nothing |
//! | `pool_thread_bytes` | 0..=1073741824 | 8388608 (8 MiB) | bytes of free objects one thread may hold in the free lists of all pools together; 0 caches nothing |
//! | `decay_ms` | integer >= -1 | 10000 | ms before freed dirty pages are purged; 0 purges at once, -1 never |
//! | `background_thread` | bool | `true` | a thread of the allocator's own, started at the first frees, purges expired pages (and idle pools) even when the program is idle; with `false` threads purge on their own allocator calls only |
//! | `stats_print` | bool | `false` | print [`crate::arena::stats_print`] to stderr at exit |
//! | `stats_signal` | signal name (`SIGUSR2`, `USR2`) or number | none | Linux, once the arena has started: print [`crate::arena::stats_print`] (arena, pools, handles) and a line `___ end of hotpool statistics ___` to stderr each time the process gets this signal. A signal the program already handles or ignores is left alone (one warning); `SIGKILL`, `SIGSTOP` and fault signals are refused. Printed by a thread of hotpool's; a fork child's signal prints nothing |
//! | `leak_report` | bool or `debug` | `false` | print [`crate::stats::leaks`] to stderr at exit, one line per leaking pool type, without allocating (with `leak_backtrace`, the stacks' symbols allocate); `debug`: only in debug builds |
//! | `leak_backtrace` | bool | `false` | record where each pool object was allocated, shown by the leak report (slow: pools bypass their thread caches) |
//! | `junk` | bool | `false` | needs the `checks` cfg: fill freed pool objects and arena blocks with a poison pattern, check it when a pool object is reused |
//! | `checks` | bool | `false` | needs the `checks` cfg: detect double and foreign frees through the raw APIs, tell valgrind about blocks |
//! | `prof` | bool | `false` | Linux: sample arena allocations with their stacks for heap profiles ([`crate::prof`]) |
//! | `lg_prof_sample` | 0..=40 | 19 | mean bytes between samples, as a power of two (2^19 = 512 KiB) |
//! | `prof_prefix` | 1 to 64 bytes | `hotpool` | start of the names of numbered dumps: `<prefix>.<pid>.<seq>.heap` (may hold a directory) |
//! | `prof_final` | bool | `false` | with `prof`: write a numbered dump at exit |
//! | `prof_signal` | signal, as `stats_signal` | none | with `prof`: write a numbered dump each time the process gets this signal (written by the `stats_signal` thread) |
//!
//! The `checks` cfg is the `checks` cargo feature or a debug build; without
//! it `junk` and `checks` are ignored with a warning. See the README's
//! "Debug checks" section.
//!
//! Items are `key:value` separated by commas, e.g.
//! `HOTPOOL_CONF="narenas:4,decay_ms:1000"`. An unknown key or a bad value
//! prints one warning naming it to stderr and keeps the default.

/// The options of `HOTPOOL_CONF` (arena allocator and debug modes); see
/// the [module docs](self) for the table.
///
/// ```
/// let conf = hotpool::config::parse(b"narenas:2,tcache:false", &mut |_| {});
/// assert_eq!((conf.narenas, conf.tcache), (2, false));
/// assert_eq!(conf.decay_ms, hotpool::config::DEFAULT.decay_ms);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaConf {
    /// Number of arenas; 0 means four per CPU (at most 64).
    pub narenas: usize,
    /// Whether threads get a cache.
    pub tcache: bool,
    /// Largest size kept in thread caches, bytes.
    pub tcache_max: usize,
    /// Bytes of free objects one thread's arena cache may hold.
    pub tcache_bytes: usize,
    /// Bytes of free objects one thread may hold in all pools' free lists.
    pub pool_thread_bytes: usize,
    /// Milliseconds before dirty pages are purged; 0 at once, negative never.
    pub decay_ms: i64,
    /// Whether a background thread purges expired pages (started lazily;
    /// off under Miri and loom, whose models run no threads of ours).
    pub background_thread: bool,
    /// Whether statistics are printed to stderr at exit.
    pub stats_print: bool,
    /// The signal that prints the statistics to stderr; 0 for none.
    pub stats_signal: i32,
    /// Whether the pool leak report is printed to stderr at exit.
    pub leak_report: bool,
    /// Whether pool allocation sites are recorded for the leak report.
    pub leak_backtrace: bool,
    /// Whether freed memory is poisoned (needs the `checks` cfg).
    pub junk: bool,
    /// Whether frees through raw APIs are validated (needs the `checks` cfg).
    pub checks: bool,
    /// Whether allocations are sampled for heap profiles.
    pub prof: bool,
    /// Mean bytes between samples, as a power of two.
    pub lg_prof_sample: u8,
    /// The start of numbered dumps' names.
    pub prof_prefix: ProfPrefix,
    /// Whether a numbered dump is written at exit.
    pub prof_final: bool,
    /// The signal that writes a numbered dump; 0 for none.
    pub prof_signal: i32,
}

/// The `prof_prefix` option: at most [`ProfPrefix::CAP`] bytes, kept
/// inline so that the configuration stays `Copy` and allocation-free.
///
/// ```
/// let conf = hotpool::config::parse(b"prof_prefix:/tmp/app", &mut |_| {});
/// assert_eq!(conf.prof_prefix.as_bytes(), b"/tmp/app");
/// assert_eq!(hotpool::config::DEFAULT.prof_prefix.as_bytes(), b"hotpool");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfPrefix {
    bytes: [u8; ProfPrefix::CAP],
    len: u8,
}

impl ProfPrefix {
    /// The longest prefix, in bytes.
    pub const CAP: usize = 64;

    /// A prefix of 1 to [`ProfPrefix::CAP`] bytes without a NUL byte.
    const fn new(text: &[u8]) -> Option<ProfPrefix> {
        if text.is_empty() || text.len() > Self::CAP {
            return None;
        }
        let mut bytes = [0; Self::CAP];
        let mut i = 0;
        while i < text.len() {
            if text[i] == 0 {
                return None;
            }
            bytes[i] = text[i];
            i += 1;
        }
        Some(ProfPrefix {
            bytes,
            len: text.len() as u8,
        })
    }

    /// The prefix.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// The defaults.
///
/// ```
/// assert_eq!(hotpool::config::DEFAULT.decay_ms, 10_000);
/// ```
pub const DEFAULT: ArenaConf = ArenaConf {
    narenas: 0,
    tcache: true,
    tcache_max: 65536,
    tcache_bytes: 4 << 20,
    pool_thread_bytes: 8 << 20,
    decay_ms: 10_000,
    background_thread: !cfg!(any(miri, loom)),
    stats_print: false,
    stats_signal: 0,
    leak_report: false,
    leak_backtrace: false,
    junk: false,
    checks: false,
    prof: false,
    lg_prof_sample: 19,
    prof_prefix: match ProfPrefix::new(b"hotpool") {
        Some(p) => p,
        None => panic!("the default prefix is valid"),
    },
    prof_final: false,
    prof_signal: 0,
};

/// What was wrong with one item of the configuration string.
///
/// ```
/// use hotpool::config::{parse, ConfProblem};
/// let mut seen = None;
/// parse(b"colour:red", &mut |p| seen = Some(p));
/// assert_eq!(seen, Some(ConfProblem::UnknownKey(b"colour")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfProblem<'a> {
    /// A key hotpool does not know.
    UnknownKey(&'a [u8]),
    /// A known key with a value that is not valid for it: `(key, value)`.
    BadValue(&'a [u8], &'a [u8]),
    /// An item without `:`.
    Malformed(&'a [u8]),
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"true" | b"1" => Some(true),
        b"false" | b"0" => Some(false),
        _ => None,
    }
}

fn parse_int(v: &[u8]) -> Option<i64> {
    let (neg, digits) = match v {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as i64;
    }
    Some(if neg { -n } else { n })
}

/// A signal a report may be printed on, by name (with or without `SIG`)
/// or number. Refused: signals that cannot be caught (`SIGKILL`,
/// `SIGSTOP`), those of faults (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`,
/// `SIGTRAP`, `SIGSYS`, `SIGABRT`), the C library's own real-time signals
/// and numbers that name no signal. Linux only: elsewhere there is no
/// arena to print the report.
#[cfg(target_os = "linux")]
fn parse_signal(v: &[u8]) -> Option<i32> {
    const NAMES: [(&[u8], i32); 21] = [
        (b"HUP", libc::SIGHUP),
        (b"INT", libc::SIGINT),
        (b"QUIT", libc::SIGQUIT),
        (b"USR1", libc::SIGUSR1),
        (b"USR2", libc::SIGUSR2),
        (b"PIPE", libc::SIGPIPE),
        (b"ALRM", libc::SIGALRM),
        (b"TERM", libc::SIGTERM),
        (b"CHLD", libc::SIGCHLD),
        (b"CONT", libc::SIGCONT),
        (b"TSTP", libc::SIGTSTP),
        (b"TTIN", libc::SIGTTIN),
        (b"TTOU", libc::SIGTTOU),
        (b"URG", libc::SIGURG),
        (b"XCPU", libc::SIGXCPU),
        (b"XFSZ", libc::SIGXFSZ),
        (b"VTALRM", libc::SIGVTALRM),
        (b"PROF", libc::SIGPROF),
        (b"WINCH", libc::SIGWINCH),
        (b"IO", libc::SIGIO),
        (b"PWR", libc::SIGPWR),
    ];
    if let Some(n) = parse_int(v) {
        let n = i32::try_from(n).ok()?;
        let named = NAMES.iter().any(|&(_, s)| s == n);
        return (named || (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n)).then_some(n);
    }
    let name = v.strip_prefix(b"SIG").unwrap_or(v);
    NAMES.iter().find(|&&(s, _)| s == name).map(|&(_, n)| n)
}

/// No arena, so no report on a signal: every value is refused.
#[cfg(not(target_os = "linux"))]
fn parse_signal(_: &[u8]) -> Option<i32> {
    None
}

/// Parses a configuration string; every problem is reported to `warn` and
/// leaves that option at its default. Pure and allocation-free.
///
/// ```
/// use hotpool::config::{parse, ConfProblem};
/// let mut problems = 0;
/// let conf = parse(b"decay_ms:soon,tcache_max:4096", &mut |p| {
///     assert_eq!(p, ConfProblem::BadValue(b"decay_ms", b"soon"));
///     problems += 1;
/// });
/// assert_eq!((problems, conf.decay_ms, conf.tcache_max), (1, 10_000, 4096));
/// ```
pub fn parse<'a>(text: &'a [u8], warn: &mut dyn FnMut(ConfProblem<'a>)) -> ArenaConf {
    let mut conf = DEFAULT;
    for item in text.split(|&b| b == b',') {
        let item = trim(item);
        if item.is_empty() {
            continue;
        }
        let Some(colon) = item.iter().position(|&b| b == b':') else {
            warn(ConfProblem::Malformed(item));
            continue;
        };
        let (key, value) = (trim(&item[..colon]), trim(&item[colon + 1..]));
        let int = parse_int(value);
        let ok = match key {
            b"narenas" => int
                .filter(|n| (1..=64).contains(n))
                .map(|n| conf.narenas = n as usize),
            b"tcache" => parse_bool(value).map(|b| conf.tcache = b),
            b"tcache_max" => int
                .filter(|n| (0..=65536).contains(n))
                .map(|n| conf.tcache_max = n as usize),
            b"tcache_bytes" => int
                .filter(|n| (0..=64 << 20).contains(n))
                .map(|n| conf.tcache_bytes = n as usize),
            b"pool_thread_bytes" => int
                .filter(|n| (0..=1 << 30).contains(n))
                .map(|n| conf.pool_thread_bytes = n as usize),
            b"decay_ms" => int.filter(|&n| n >= -1).map(|n| conf.decay_ms = n),
            b"background_thread" => parse_bool(value).map(|b| conf.background_thread = b),
            b"stats_print" => parse_bool(value).map(|b| conf.stats_print = b),
            b"stats_signal" => parse_signal(value).map(|n| conf.stats_signal = n),
            b"leak_report" => match value {
                b"debug" => {
                    conf.leak_report = cfg!(debug_assertions);
                    Some(())
                }
                _ => parse_bool(value).map(|b| conf.leak_report = b),
            },
            b"leak_backtrace" => parse_bool(value).map(|b| conf.leak_backtrace = b),
            b"junk" => parse_bool(value).map(|b| conf.junk = b),
            b"checks" => parse_bool(value).map(|b| conf.checks = b),
            b"prof" => parse_bool(value).map(|b| conf.prof = b),
            b"lg_prof_sample" => int
                .filter(|n| (0..=40).contains(n))
                .map(|n| conf.lg_prof_sample = n as u8),
            b"prof_prefix" => ProfPrefix::new(value).map(|p| conf.prof_prefix = p),
            b"prof_final" => parse_bool(value).map(|b| conf.prof_final = b),
            b"prof_signal" => parse_signal(value).map(|n| conf.prof_signal = n),
            _ => {
                warn(ConfProblem::UnknownKey(key));
                continue;
            }
        };
        if ok.is_none() {
            warn(ConfProblem::BadValue(key, value));
        }
    }
    conf
}

/// [`from_env`]'s progress: nothing read yet, a thread parsing, [`PARSED`]
/// ready.
static ENV_STATE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(NONE);
const NONE: u8 = 0;
const PARSING: u8 = 1;
const READY: u8 = 2;

/// [`from_env`]'s result, once [`ENV_STATE`] is [`READY`].
struct Parsed(core::cell::UnsafeCell<ArenaConf>);
// SAFETY: written once, by the thread that moved ENV_STATE from NONE to
// PARSING, before it publishes READY (Release); read only after READY is
// seen (Acquire).
unsafe impl Sync for Parsed {}
static PARSED: Parsed = Parsed(core::cell::UnsafeCell::new(DEFAULT));

/// The options of the `HOTPOOL_CONF` environment variable, parsed once
/// (warnings go to stderr then); later calls return the same values.
/// Allocation-free, so the arena allocator may call it while starting.
///
/// Never waits: a caller that finds another thread parsing parses the
/// variable again itself, without warnings. A `OnceLock` here hung fork
/// children: a thread of the parent caught inside its initialisation left
/// it "running" for ever in the child, whose first allocator or pool call
/// then waited on it (tests/fork.rs lost about one child in 200).
pub(crate) fn from_env() -> ArenaConf {
    use core::sync::atomic::Ordering::{Acquire, Release};

    fn read(warn: &mut dyn FnMut(ConfProblem<'_>)) -> ArenaConf {
        let mut conf = DEFAULT;
        crate::sys::with_env(c"HOTPOOL_CONF", |text| conf = parse(text, warn));
        conf
    }

    match ENV_STATE.compare_exchange(NONE, PARSING, Acquire, Acquire) {
        Ok(_) => {
            let conf = read(&mut warn_stderr);
            // SAFETY: this thread alone moved ENV_STATE to PARSING; no reader
            // looks before READY.
            unsafe { *PARSED.0.get() = conf };
            ENV_STATE.store(READY, Release);
            conf
        }
        // SAFETY: READY was published after the value was written.
        Err(READY) => unsafe { *PARSED.0.get() },
        Err(_) => read(&mut |_| {}),
    }
}

/// Writes one line about `problem` to stderr with `write(2)` from a fixed
/// buffer (no allocation; used during allocator start-up).
pub(crate) fn warn_stderr(problem: ConfProblem<'_>) {
    let mut r = crate::report::Report::new();
    let mut put = |s: &[u8]| {
        r.bytes(s);
    };
    put(b"hotpool: HOTPOOL_CONF: ");
    match problem {
        ConfProblem::UnknownKey(k) => {
            put(b"unknown key '");
            put(k);
            put(b"' ignored");
        }
        ConfProblem::BadValue(k, v) => {
            put(b"bad value '");
            put(v);
            put(b"' for '");
            put(k);
            put(b"', keeping the default");
        }
        ConfProblem::Malformed(item) => {
            put(b"item '");
            put(item);
            put(b"' is not key:value, ignored");
        }
    }
    put(b"\n");
    r.emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parse that a vanished thread left running (a fork child's view
    /// of a parent thread caught inside it) does not make callers wait:
    /// they parse again, to the same values.
    #[test]
    fn a_parse_left_running_does_not_block_callers() {
        use core::sync::atomic::Ordering::AcqRel;
        let ready = from_env();
        let saved = ENV_STATE.swap(PARSING, AcqRel);
        let again = from_env();
        ENV_STATE.store(saved, core::sync::atomic::Ordering::Release);
        assert_eq!(again, ready);
    }

    #[test]
    fn full_string_parses() {
        let c = parse(
            b"narenas:4,tcache:true,tcache_max:32768,decay_ms:10000,background_thread:false,stats_print:true",
            &mut |p| panic!("{p:?}"),
        );
        assert_eq!(c.narenas, 4);
        assert!(c.stats_print);
    }

    #[test]
    fn debug_keys_parse_and_bad_values_warn() {
        let c = parse(
            b"leak_report:true,leak_backtrace:1,junk:true,checks:true",
            &mut |p| panic!("{p:?}"),
        );
        assert!(c.leak_report && c.leak_backtrace && c.junk && c.checks);
        let c = parse(b"leak_report:debug", &mut |p| panic!("{p:?}"));
        assert_eq!(c.leak_report, cfg!(debug_assertions));
        let mut bad = Vec::new();
        let c = parse(b"junk:yes,checks:2,leak_report:always", &mut |p| {
            bad.push(p)
        });
        assert_eq!(
            bad,
            [
                ConfProblem::BadValue(b"junk", b"yes"),
                ConfProblem::BadValue(b"checks", b"2"),
                ConfProblem::BadValue(b"leak_report", b"always"),
            ]
        );
        assert!(!c.junk && !c.checks && !c.leak_report);
    }

    #[test]
    fn thread_budgets_parse_and_bad_values_warn() {
        let c = parse(b"tcache_bytes:0,pool_thread_bytes: 1048576 ", &mut |p| {
            panic!("{p:?}")
        });
        assert_eq!((c.tcache_bytes, c.pool_thread_bytes), (0, 1 << 20));
        let c = parse(
            b"tcache_bytes:67108864,pool_thread_bytes:1073741824",
            &mut |p| panic!("{p:?}"),
        );
        assert_eq!((c.tcache_bytes, c.pool_thread_bytes), (64 << 20, 1 << 30));
        let mut bad = Vec::new();
        let c = parse(
            b"tcache_bytes:67108865,pool_thread_bytes:-1,tcache_bytes:96k,pool_thread_bytes:",
            &mut |p| bad.push(p),
        );
        assert_eq!(
            bad,
            [
                ConfProblem::BadValue(b"tcache_bytes", b"67108865"),
                ConfProblem::BadValue(b"pool_thread_bytes", b"-1"),
                ConfProblem::BadValue(b"tcache_bytes", b"96k"),
                ConfProblem::BadValue(b"pool_thread_bytes", b""),
            ]
        );
        assert_eq!(
            (c.tcache_bytes, c.pool_thread_bytes),
            (DEFAULT.tcache_bytes, DEFAULT.pool_thread_bytes)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stats_signal_takes_names_and_numbers_and_refuses_the_rest() {
        for (text, n) in [
            (&b"stats_signal:SIGUSR2"[..], libc::SIGUSR2),
            (b"stats_signal:USR1", libc::SIGUSR1),
            (b"stats_signal:12", 12),
            (b"stats_signal: SIGWINCH ", libc::SIGWINCH),
        ] {
            assert_eq!(parse(text, &mut |p| panic!("{p:?}")).stats_signal, n);
        }
        let rt = libc::SIGRTMIN().to_string();
        let text = format!("stats_signal:{rt}");
        let c = parse(text.as_bytes(), &mut |p| panic!("{p:?}"));
        assert_eq!(c.stats_signal, libc::SIGRTMIN());
        for bad in [
            "SIGKILL", "KILL", "SIGSTOP", "SIGSEGV", "SEGV", "SIGBUS", "SIGILL", "SIGFPE",
            "SIGABRT", "SIGTRAP", "SIGSYS", "9", "11", "0", "-10", "32", "65", "SIGFOO", "usr2",
            "",
        ] {
            let text = format!("stats_signal:{bad}");
            let mut seen = Vec::new();
            let c = parse(text.as_bytes(), &mut |p| {
                seen.push(format!("{p:?}"));
            });
            assert_eq!(c.stats_signal, 0, "{bad}");
            assert_eq!(seen.len(), 1, "{bad}: one warning");
            assert!(seen[0].starts_with("BadValue"), "{bad}: {seen:?}");
        }
    }

    #[test]
    fn prof_keys_parse_and_bad_values_warn_once_each() {
        let c = parse(
            b"prof:true,lg_prof_sample:14,prof_prefix:/tmp/x,prof_final:1",
            &mut |p| panic!("{p:?}"),
        );
        assert!(c.prof && c.prof_final);
        assert_eq!(c.lg_prof_sample, 14);
        assert_eq!(c.prof_prefix.as_bytes(), b"/tmp/x");
        let long = format!("prof_prefix:{}", "p".repeat(ProfPrefix::CAP + 1));
        let text = format!(
            "prof:maybe,lg_prof_sample:41,lg_prof_sample:-1,{long},prof_prefix:,prof_final:yes"
        );
        let mut bad = Vec::new();
        let c = parse(text.as_bytes(), &mut |p| bad.push(format!("{p:?}")));
        assert_eq!(bad.len(), 6, "{bad:?}");
        assert!(bad.iter().all(|b| b.starts_with("BadValue")), "{bad:?}");
        assert_eq!(c, DEFAULT);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn prof_signal_refuses_what_stats_signal_refuses() {
        let c = parse(b"prof_signal:USR1", &mut |p| panic!("{p:?}"));
        assert_eq!(c.prof_signal, libc::SIGUSR1);
        for bad in ["SIGKILL", "SIGSEGV", "SIGFOO", "0"] {
            let text = format!("prof_signal:{bad}");
            let mut n = 0;
            let c = parse(text.as_bytes(), &mut |p| {
                assert!(matches!(p, ConfProblem::BadValue(b"prof_signal", _)));
                n += 1;
            });
            assert_eq!((c.prof_signal, n), (0, 1), "{bad}");
        }
    }

    #[test]
    fn warning_line_is_written() {
        warn_stderr(ConfProblem::BadValue(b"narenas", b"0"));
    }
}
