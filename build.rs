//! Build script: one cfg, `hotpool_tsan`, set when the crate is compiled
//! for ThreadSanitizer (`-Zsanitizer=thread`, which makes cargo report
//! `sanitize="thread"` to build scripts). ThreadSanitizer cannot see the
//! process-wide barrier (`membarrier`) with which the background purger
//! reclaims quiet threads' caches, and would report the reclaim's reads as
//! races; under it that reclaim is off (`sys::membarrier` says the barrier
//! is missing) and everything else is checked as usual.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hotpool_tsan)");
    println!("cargo::rerun-if-changed=build.rs");
    let tsan = std::env::var("CARGO_CFG_SANITIZE")
        .is_ok_and(|list| list.split(',').any(|s| s == "thread"));
    if tsan {
        println!("cargo::rustc-cfg=hotpool_tsan");
    }
}
