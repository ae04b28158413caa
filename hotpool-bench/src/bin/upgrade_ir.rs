//! A probe for counting the instructions of one weak-handle upgrade under
//! callgrind (issue 16, item 5): `N` upgrades of one handle, each followed
//! by the drop of the owner it gave, for `hotpool::Weak` or
//! `std::sync::Weak`, to a live object or a dead one.
//!
//! Instructions per upgrade are `(Ir(N) - Ir(0)) / N`: everything but the
//! loop cancels out.
//!
//! ```text
//! cargo build --release -p hotpool-bench --bin upgrade_ir
//! for n in 0 1000000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/upgrade_ir hotpool live $n 2>&1 | grep refs
//! done
//! ```

use std::hint::black_box;
use std::sync::Arc;

use hotpool::Shared;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: upgrade_ir hotpool|arc live|stale N";
    let [kind, state, n] = &args[..] else {
        panic!("{usage}")
    };
    let n: u64 = n.parse().expect(usage);
    let live = match state.as_str() {
        "live" => true,
        "stale" => false,
        _ => panic!("{usage}"),
    };
    let mut got = 0u64;
    match kind.as_str() {
        "hotpool" => {
            let s = Shared::new(1u64);
            let w = Shared::downgrade(&s);
            // The slot is reused by another object: the generation check
            // fails, as in the `upgrade-stale` bench.
            let _owner = if live {
                s
            } else {
                drop(s);
                Shared::new(2u64)
            };
            for _ in 0..n {
                got += u64::from(black_box(black_box(w).upgrade()).is_some());
            }
        }
        "arc" => {
            let a = Arc::new(1u64);
            let w = Arc::downgrade(&a);
            let _owner = live.then_some(a);
            for _ in 0..n {
                got += u64::from(black_box(black_box(&w).upgrade()).is_some());
            }
        }
        _ => panic!("{usage}"),
    }
    assert_eq!(got, if live { n } else { 0 });
}
