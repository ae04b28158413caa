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

/// A report of any length, written a buffer at a time: text goes into a
/// [`CAP`]-byte stack buffer, which is written to stderr whenever it fills
/// and at [`Stream::flush`]. Nothing is cut; a line longer than the buffer
/// takes more than one `write(2)`. Like [`Report`], it allocates nothing
/// and takes no lock.
pub(crate) struct Stream {
    report: Report,
    /// Where full buffers go: [`sys::write_stderr`], or a test's recorder.
    sink: fn(&[u8]),
}

impl Stream {
    /// An empty stream to stderr.
    pub(crate) const fn new() -> Stream {
        Stream::to(sys::write_stderr)
    }

    /// An empty stream to `sink`.
    const fn to(sink: fn(&[u8])) -> Stream {
        Stream {
            report: Report::new(),
            sink,
        }
    }

    /// Writes what the buffer holds, if anything, and empties it.
    pub(crate) fn flush(&mut self) {
        if self.report.len > 0 {
            (self.sink)(self.report.as_bytes());
            self.report.len = 0;
        }
    }
}

impl fmt::Write for Stream {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        loop {
            let before = self.report.len;
            self.report.bytes(rest);
            rest = &rest[self.report.len - before..];
            if rest.is_empty() {
                return Ok(());
            }
            self.flush();
        }
    }
}

/// A byte count for people: `1536` shows as `1.5 KiB`, `512` as `512 B`.
/// Its `Display` allocates nothing (`core`'s float formatting), so a
/// [`Report`] or [`Stream`] may show it.
pub(crate) struct HumanBytes(pub(crate) usize);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let n = self.0;
        let mut v = n as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit < UNITS.len() - 1 {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{n} B")
        } else {
            write!(f, "{v:.1} {}", UNITS[unit])
        }
    }
}

/// [`HumanBytes`] as a `String`, for the statistics tables: it allocates,
/// so never call it on an allocation path.
pub(crate) fn human_bytes(n: usize) -> String {
    HumanBytes(n).to_string()
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

    std::thread_local! {
        static WRITTEN: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn record(bytes: &[u8]) {
        WRITTEN.with(|w| w.borrow_mut().push(bytes.to_vec()));
    }

    #[test]
    fn stream_writes_long_text_whole_a_buffer_at_a_time() {
        let mut s = Stream::to(record);
        let text = "0123456789".repeat(60);
        for chunk in text.as_bytes().chunks(7) {
            fmt::Write::write_str(&mut s, core::str::from_utf8(chunk).unwrap()).unwrap();
        }
        fmt::Write::write_str(&mut s, "\n").unwrap();
        s.flush();
        let writes = WRITTEN.with(|w| w.take());
        assert_eq!(
            writes.iter().map(Vec::len).collect::<Vec<_>>(),
            [CAP, 601 - CAP]
        );
        assert_eq!(writes.concat(), format!("{text}\n").as_bytes());
    }

    #[test]
    fn human_bytes_picks_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
