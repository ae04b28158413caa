//! `HOTPOOL_CONF` parser: `hotpool::config::parse` on arbitrary bytes.
//!
//! Checks, for every input:
//! * it returns (no panic, no overflow in debug-assertion builds);
//! * the result is within the documented ranges;
//! * every reported problem is a slice of the input, trimmed, inside one
//!   item, and of the right kind (`UnknownKey` not a known key, `BadValue`
//!   a known key, `Malformed` without `:`);
//! * an accepted configuration round-trips: rendering it and parsing the
//!   text gives it back without warnings;
//! * later items override earlier ones: parsing `input,tail` equals parsing
//!   `render(parse(input)),tail` for a tail cut from the same input, and
//!   the warnings of `input,tail` are those of `input` then `tail`.
#![no_main]

use hotpool::config::{parse, ArenaConf, ConfProblem, DEFAULT};
use libfuzzer_sys::fuzz_target;

const KEYS: [&[u8]; 10] = [
    b"narenas",
    b"tcache",
    b"tcache_max",
    b"decay_ms",
    b"background_thread",
    b"stats_print",
    b"leak_report",
    b"leak_backtrace",
    b"junk",
    b"checks",
];

fn parse_collect(text: &[u8]) -> (ArenaConf, Vec<ConfProblem<'_>>) {
    let mut problems = Vec::new();
    let conf = parse(text, &mut |p| problems.push(p));
    (conf, problems)
}

fn check_ranges(c: &ArenaConf) {
    assert!(c.narenas <= 64, "narenas {} out of range", c.narenas);
    assert!(c.tcache_max <= 65536, "tcache_max {}", c.tcache_max);
    assert!(c.decay_ms >= -1, "decay_ms {}", c.decay_ms);
}

fn is_trimmed(s: &[u8]) -> bool {
    !matches!(s.first(), Some(b' ' | b'\t')) && !matches!(s.last(), Some(b' ' | b'\t'))
}

/// `part` lies inside `whole` (same allocation, in bounds).
fn is_within(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
    p >= w && p + part.len() <= w + whole.len()
}

fn check_problem(p: &ConfProblem<'_>, text: &[u8]) {
    let parts: Vec<&[u8]> = match *p {
        ConfProblem::UnknownKey(k) => {
            assert!(!KEYS.contains(&k), "known key reported unknown: {p:?}");
            vec![k]
        }
        ConfProblem::BadValue(k, v) => {
            assert!(KEYS.contains(&k), "bad value for an unknown key: {p:?}");
            vec![k, v]
        }
        ConfProblem::Malformed(item) => {
            assert!(!item.contains(&b':'), "malformed item has a colon: {p:?}");
            assert!(!item.is_empty(), "empty item reported");
            vec![item]
        }
        // `ConfProblem` is non-exhaustive: a new kind needs its checks here.
        _ => panic!("conf_parse does not know this kind of problem: {p:?}"),
    };
    for s in parts {
        assert!(is_within(s, text), "problem slice outside the input: {p:?}");
        assert!(is_trimmed(s), "problem slice not trimmed: {p:?}");
        assert!(!s.contains(&b','), "problem slice spans items: {p:?}");
    }
}

fn render(c: &ArenaConf) -> Vec<u8> {
    let mut s = String::new();
    if c.narenas != 0 {
        s += &format!("narenas:{},", c.narenas);
    }
    s += &format!(
        "tcache:{},tcache_max:{},decay_ms:{},background_thread:{},stats_print:{},\
         leak_report:{},leak_backtrace:{},junk:{},checks:{}",
        c.tcache,
        c.tcache_max,
        c.decay_ms,
        c.background_thread,
        c.stats_print,
        c.leak_report,
        c.leak_backtrace,
        c.junk,
        c.checks
    );
    s.into_bytes()
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    v.push(b',');
    v.extend_from_slice(b);
    v
}

fuzz_target!(|text: &[u8]| {
    let (conf, problems) = parse_collect(text);
    check_ranges(&conf);
    for p in &problems {
        check_problem(p, text);
    }
    if text.iter().all(|&b| matches!(b, b' ' | b'\t' | b',')) {
        assert!(problems.is_empty());
        assert_eq!(conf, DEFAULT);
    }

    // Round trip.
    let rendered = render(&conf);
    let (again, problems_again) = parse_collect(&rendered);
    assert!(problems_again.is_empty(), "{problems_again:?}");
    assert_eq!(again, conf);

    // Later items override earlier ones; warnings concatenate.
    let tail = &text[text.len() / 2..];
    let (joined_text, via_render_text) = (join(text, tail), join(&rendered, tail));
    let (joined, joined_problems) = parse_collect(&joined_text);
    let (via_render, via_render_problems) = parse_collect(&via_render_text);
    assert_eq!(joined, via_render);
    let (_, tail_problems) = parse_collect(tail);
    assert_eq!(joined_problems.len(), problems.len() + tail_problems.len());
    assert_eq!(joined_problems[..problems.len()], problems[..]);
    assert_eq!(joined_problems[problems.len()..], tail_problems[..]);
    assert_eq!(via_render_problems, tail_problems);
});
