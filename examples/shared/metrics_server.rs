//! The router example's `/metrics` endpoint, shared by `examples/router.rs`
//! (`--metrics PORT`) and `tests/prometheus.rs`.
//!
//! A few lines over std's `TcpListener` rather than an HTTP crate: one
//! request at a time is all a Prometheus scraper needs, and the demo's
//! first build stays as fast as it was.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// The content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers every connection to `listener` from a thread of its own:
/// `GET /metrics` with 200 and `body()` as [`CONTENT_TYPE`], anything else
/// with 404. The thread is never joined: it waits in `accept` and ends
/// with the process, so it never holds up the program's exit.
pub fn spawn(listener: TcpListener, body: fn() -> String) -> io::Result<()> {
    thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            // A failed accept, or a client that goes away mid-request,
            // only loses that client its answer.
            for mut stream in listener.incoming().flatten() {
                let _ = answer(&mut stream, body);
            }
        })?;
    Ok(())
}

/// Reads one request (its head, at most 8 KiB) and writes the answer; the
/// connection closes when `stream` is dropped.
fn answer(stream: &mut TcpStream, body: fn() -> String) -> io::Result<()> {
    // A client that sends nothing cannot keep the endpoint from others.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (request_line.next(), request_line.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    let (status, content_type, text) = if method == Some("GET") && path == Some("/metrics") {
        ("200 OK", CONTENT_TYPE, body())
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: the metrics are at GET /metrics\n".to_owned(),
        )
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}
