//! The one writer of hotpool's error reports: a line built in a stack
//! buffer and written to stderr with `write(2)` ([`crate::sys::write_stderr`]).
//! The invalid-free and debug-check reports of every layer, which abort,
//! and the `HOTPOOL_CONF` warnings go through it.
//!
//! Nothing here allocates or takes a lock, so the arena allocator's paths,
//! a child after `fork` and exit handlers may all report. A line longer
//! than [`CAP`] bytes is cut.

use core::fmt;

use crate::sys;

/// Bytes one report holds.
pub(crate) const CAP: usize = 512;

/// A report being built; [`Report::emit`] writes it, [`Report::abort`]
/// writes it and aborts.
pub(crate) struct Report {
    buf: [u8; CAP],
    len: usize,
}

impl Report {
    /// An empty report.
    pub(crate) const fn new() -> Report {
        Report {
            buf: [0; CAP],
            len: 0,
        }
    }

    /// Appends `bytes` (as much as fits).
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Report {
        let n = bytes.len().min(CAP - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// Appends `v` as `0x` and 16 hex digits (for the arena's reports).
    #[cfg(target_os = "linux")]
    pub(crate) fn hex(&mut self, v: usize) -> &mut Report {
        let mut hex = [0u8; 18];
        hex[..2].copy_from_slice(b"0x");
        for (i, d) in hex[2..].iter_mut().enumerate() {
            *d = b"0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
        }
        self.bytes(&hex)
    }

    /// The text so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the report to stderr.
    pub(crate) fn emit(&self) {
        sys::write_stderr(self.as_bytes());
    }

    /// Ends the report with `; aborting`, writes it and aborts the process.
    #[cold]
    pub(crate) fn abort(&mut self) -> ! {
        self.bytes(b"; aborting\n").emit();
        std::process::abort()
    }
}

impl fmt::Write for Report {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes `args` as one report and aborts (formatting allocates nothing).
#[cold]
pub(crate) fn abort_with(args: fmt::Arguments<'_>) -> ! {
    let mut r = Report::new();
    // `Report`'s `write_str` never fails.
    let _ = fmt::Write::write_fmt(&mut r, args);
    r.abort()
}

/// `1536` -> `1.5 KiB`, for the statistics tables. Unlike the rest of
/// this module it allocates (a `String`): never call it on an allocation
/// path.
pub(crate) fn human_bytes(n: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_sixteen_digits() {
        let mut r = Report::new();
        r.bytes(b"at ").hex(0xabc);
        assert_eq!(r.as_bytes(), b"at 0x0000000000000abc");
    }

    #[test]
    fn long_reports_are_cut() {
        let mut r = Report::new();
        for _ in 0..100 {
            r.bytes(b"0123456789");
        }
        assert_eq!(r.as_bytes().len(), CAP);
        fmt::Write::write_str(&mut r, "more").unwrap();
        assert_eq!(r.as_bytes().len(), CAP);
    }

    #[test]
    fn human_bytes_picks_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
