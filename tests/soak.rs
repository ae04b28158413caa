//! A bounded soak test: the router example's workload for a few minutes,
//! under a thread count that changes every round, with a trim between
//! rounds. Ignored by default; run it with
//!
//! ```sh
//! cargo test --release -- --ignored soak          # about 2.5 minutes
//! SOAK_SECONDS=600 cargo test --release -- --ignored soak
//! ```
//!
//! After every round it asserts that the counts balance (no message,
//! buffer or link is left in use: nothing was lost) and that memory stays
//! bounded: the pools hold no more than the messages that can be in flight
//! allow, a trim gives every chunk back, and the resident set after a trim
//! does not grow from round to round.

#[path = "../examples/shared/router_workload.rs"]
mod workload;

use std::time::Duration;

use hotpool::stats::{resident_bytes, PoolStats};
use workload::{run, Heap, Options, Pools, BUFFERS, BUFFER_SIZE, LINKS, MESSAGES};

/// Worker threads in each round, and the message size.
const ROUNDS: [(usize, usize); 10] = [
    (2, 2048),
    (4, 512),
    (8, 8192),
    (3, 2048),
    (6, 700),
    (2, 8192),
    (5, 2048),
    (8, 512),
    (2, 4096),
    (4, 2048),
];

fn pools() -> [PoolStats; 3] {
    [MESSAGES.stats(), BUFFERS.stats(), LINKS.stats()]
}

#[test]
#[ignore = "minutes long: cargo test --release -- --ignored soak"]
fn soak_router_workload_with_changing_threads_and_trims() {
    let total: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let round = Duration::from_secs_f64(total as f64 / ROUNDS.len() as f64);
    let mut trimmed_resident: Option<usize> = None;
    let mut messages = 0;
    for (i, &(threads, size)) in ROUNDS.iter().enumerate() {
        let r = run::<Pools>(&Options {
            threads,
            duration: round,
            size,
        });
        messages += r.messages;
        assert!(
            r.messages > 0 && r.bytes >= r.messages,
            "round {i} moved nothing"
        );
        assert!(r.links_opened >= threads as u64 && r.link_closed <= r.messages);

        // Counts balance: every worker has exited (its lists went to the
        // depot) and the main thread dropped its links.
        for s in pools() {
            assert_eq!(s.in_use, 0, "round {i}: objects lost in {}", s.type_name);
            assert_eq!(s.capacity, s.local_free + s.depot_free + s.chunk_free);
            assert_eq!(s.chunks as u64, s.chunks_made - s.chunks_released);
        }
        // Bounded: at most ten batches per worker are in flight (eight
        // queued, one being built, one being drained); the pools may hold
        // four times that, plus a chunk per thread of caches.
        let buffers = threads * 10 * 64 * size.div_ceil(BUFFER_SIZE);
        let b = BUFFERS.stats();
        let bound = 4 * buffers * b.slot_size + (threads + 1) * b.chunk_size;
        assert!(
            b.bytes_held <= bound,
            "round {i}: buffers hold {} bytes, more than {bound}",
            b.bytes_held
        );
        let before_trim = resident_bytes();

        MESSAGES.trim();
        BUFFERS.trim();
        LINKS.trim();
        for s in pools() {
            assert_eq!(
                (s.chunks, s.bytes_held),
                (0, 0),
                "round {i}: trim left memory in {}",
                s.type_name
            );
        }
        let after_trim = resident_bytes();
        eprintln!(
            "round {i}: {threads} threads, {size}-byte messages: {} messages in {:.1} s, \
             {} after a closed link; buffers held {} MiB; resident {} MiB -> {} MiB after trim",
            r.messages,
            r.elapsed.as_secs_f64(),
            r.link_closed,
            b.bytes_held >> 20,
            before_trim >> 20,
            after_trim >> 20
        );
        // The resident set after a trim does not creep up: within 16 MiB
        // of what it was after the first round (allocator caches, stacks).
        let first = *trimmed_resident.get_or_insert(after_trim);
        assert!(
            after_trim <= first + (16 << 20),
            "round {i}: resident after trim grew from {first} to {after_trim} bytes"
        );
    }
    eprintln!(
        "soak ({}): {messages} messages in {} rounds",
        Pools::NAME,
        ROUNDS.len()
    );
}
