//! Memory footprint of a pool: live overhead and what a trim gives back.
//! One test per binary, so that no other test moves the resident set.

use hotpool::stats::resident_bytes;
use hotpool::{Pool, Pooled};

#[test]
fn four_million_objects_cost_their_payload_and_trim_returns_the_pages() {
    const N: usize = 4 << 20;
    const SIZE: usize = 64;
    static P: Pool<[u8; SIZE]> = Pool::new();

    // The handles' own vector is part of the baseline, touched up front.
    let mut live: Vec<Option<Pooled<[u8; SIZE]>>> = Vec::with_capacity(N);
    let before_vec = resident_bytes();
    live.resize_with(N, || None);
    // Keep the optimizer from skipping these stores as dead: they must
    // touch the vector's pages before the baseline is read.
    std::hint::black_box(&mut live);
    let baseline = resident_bytes();
    eprintln!("vector: {} MiB", (baseline - before_vec) >> 20);

    for (i, slot) in live.iter_mut().enumerate() {
        *slot = Some(P.alloc([i as u8; SIZE]));
    }
    let peak = resident_bytes() - baseline;
    let payload = N * SIZE;
    let overhead = peak as f64 / payload as f64 - 1.0;
    eprintln!(
        "live: {} MiB resident for {} MiB of payload ({:+.2}%)",
        peak >> 20,
        payload >> 20,
        overhead * 100.0
    );
    assert!(
        overhead <= 0.03,
        "more than 3% over payload: {:.2}%",
        overhead * 100.0
    );
    assert!(live
        .iter()
        .enumerate()
        .step_by(4099)
        .all(|(i, o)| o.as_ref().unwrap()[SIZE - 1] == i as u8));

    for slot in live.iter_mut() {
        *slot = None;
    }
    let after_free = resident_bytes().saturating_sub(baseline);
    P.trim();
    let after_trim = resident_bytes().saturating_sub(baseline);
    eprintln!(
        "after free: {} MiB, after trim: {} KiB",
        after_free >> 20,
        after_trim >> 10
    );
    assert!(
        (after_trim as f64) <= 0.01 * peak as f64,
        "after trim {after_trim} bytes stay resident, more than 1% of the peak {peak}"
    );
    let s = P.stats();
    assert_eq!((s.in_use, s.chunks), (0, 0), "{s:?}");
}
