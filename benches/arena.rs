//! `HotAlloc` against the system allocator, mimalloc and jemalloc, each used
//! directly through its `GlobalAlloc` impl (nothing is installed globally).
//!
//! * `churn`: random sizes 8..4096, a window of 1024 live blocks, one thread.
//! * `larson`: 2 threads, each replaces random slots of its array of blocks;
//!   every 64 rounds the arrays are swapped between threads (remote frees).
//! * `xmalloc`: a producer allocates, a consumer thread frees (channel).
//! * `scratch`: 2 threads each alloc/write/free a 64 B object in a loop
//!   (false sharing would show here).
//! * `realloc`: a string builder doubling from 16 B to 1 MiB.

#[path = "common/alloc_kernels.rs"]
mod kernels;

use std::alloc::System;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use kernels::{churn, larson, realloc_builder, scratch, xmalloc};

static HOT: hotpool::HotAlloc = hotpool::HotAlloc;
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JE: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

macro_rules! each {
    ($c:expr, $group:literal, |$a:ident| $body:expr) => {{
        let mut g = $c.benchmark_group($group);
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        g.sample_size(10);
        {
            let $a = &HOT;
            g.bench_function("hotpool", $body);
        }
        {
            let $a = &MI;
            g.bench_function("mimalloc", $body);
        }
        {
            let $a = &JE;
            g.bench_function("jemalloc", $body);
        }
        {
            let $a: &'static System = &System;
            g.bench_function("system", $body);
        }
        g.finish();
    }};
}

fn benches(c: &mut Criterion) {
    each!(c, "arena/churn", |a| |b| b.iter(|| churn(
        a,
        1000,
        1024,
        |r| 8 + (r >> 16) as usize % 4088
    )));
    each!(c, "arena/larson", |a| |b| b
        .iter_custom(|n| larson(a, 2, n, 256)));
    each!(c, "arena/xmalloc", |a| |b| b.iter_custom(|n| xmalloc(a, n)));
    each!(c, "arena/scratch", |a| |b| b
        .iter_custom(|n| scratch(a, 2, n)));
    each!(c, "arena/realloc", |a| |b| b.iter(|| realloc_builder(
        a,
        1 << 20,
        false
    )));
}

criterion_group!(arena, benches);
criterion_main!(arena);
