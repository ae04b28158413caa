//! `HOTPOOL_CONF`: the arena allocator's options, like jemalloc's
//! `MALLOC_CONF`, read once at start-up without allocating.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `narenas` | 1..=64 | CPUs online (at most 64) | arenas; threads are assigned round-robin |
//! | `tcache` | bool | `true` | per-thread caches in front of the arenas |
//! | `tcache_max` | 0..=65536 | 32768 | largest size class kept in thread caches |
//! | `decay_ms` | integer >= -1 | 10000 | ms before freed dirty pages are purged; 0 purges at once, -1 never |
//! | `background_thread` | bool | `false` | a thread purges expired pages even when the program is idle |
//! | `stats_print` | bool | `false` | print [`crate::arena::stats_print`] to stderr at exit |
//!
//! Items are `key:value` separated by commas, e.g.
//! `HOTPOOL_CONF="narenas:4,decay_ms:1000"`. An unknown key or a bad value
//! prints one warning naming it to stderr and keeps the default.

/// Arena allocator options; see the [module docs](self) for the table.
///
/// ```
/// let conf = hotpool::config::parse(b"narenas:2,tcache:false", &mut |_| {});
/// assert_eq!((conf.narenas, conf.tcache), (2, false));
/// assert_eq!(conf.decay_ms, hotpool::config::DEFAULT.decay_ms);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArenaConf {
    /// Number of arenas; 0 means one per CPU (at most 64).
    pub narenas: usize,
    /// Whether threads get a cache.
    pub tcache: bool,
    /// Largest size kept in thread caches, bytes.
    pub tcache_max: usize,
    /// Milliseconds before dirty pages are purged; 0 at once, negative never.
    pub decay_ms: i64,
    /// Whether a background thread purges expired pages.
    pub background_thread: bool,
    /// Whether statistics are printed to stderr at exit.
    pub stats_print: bool,
}

/// The defaults.
///
/// ```
/// assert_eq!(hotpool::config::DEFAULT.decay_ms, 10_000);
/// ```
pub const DEFAULT: ArenaConf = ArenaConf {
    narenas: 0,
    tcache: true,
    tcache_max: 32768,
    decay_ms: 10_000,
    background_thread: false,
    stats_print: false,
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
            b"decay_ms" => int.filter(|&n| n >= -1).map(|n| conf.decay_ms = n),
            b"background_thread" => parse_bool(value).map(|b| conf.background_thread = b),
            b"stats_print" => parse_bool(value).map(|b| conf.stats_print = b),
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

/// Writes one line about `problem` to stderr with `write(2)` from a fixed
/// buffer (no allocation; used during allocator start-up).
pub(crate) fn warn_stderr(problem: ConfProblem<'_>) {
    let mut buf = [0u8; 256];
    let mut len = 0;
    let mut put = |s: &[u8]| {
        let n = s.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&s[..n]);
        len += n;
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
    crate::sys::write_stderr(&buf[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn warning_line_is_written() {
        warn_stderr(ConfProblem::BadValue(b"narenas", b"0"));
    }
}
