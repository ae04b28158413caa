//! hotpool's `Shared`/`Weak` against `Arc`/`Weak` and generational-key
//! containers.
//!
//! | group | what one iteration is |
//! |---|---|
//! | `upgrade-live` | upgrade a handle to a live object, then drop the owner it gave (containers: a `get` by key) |
//! | `upgrade-stale` | try to upgrade a handle whose object is gone (containers: `get` of a removed key) |
//! | `downgrade` | make a weak handle from an owner (and drop it: `std::sync::Weak` has a `Drop`) |
//! | `clone-drop` | clone an owner and drop the clone |
//! | `new-drop` | make a 256-byte object with one owner and drop it |
//!
//! The slotmap / generational-arena / sharded-slab rows are key lookups in
//! a container that one thread owns (sharded-slab: any thread); they do not
//! take a reference count, so they are a floor, not a peer, for
//! `upgrade-live`.
//!
//! Before criterion runs, the `memory` part (skipped when a filter that
//! does not contain "memory" is given, and in `--test`/`--list` mode) makes
//! 1 million objects of 256 bytes, keeps one weak handle to each, drops every
//! owner, and prints the resident memory still held (after glibc's
//! `malloc_trim(0)`), for `Arc` and for `Shared`.
//!
//! ```text
//! cargo bench -p hotpool-bench --bench handles                  # everything (about 30 s)
//! cargo bench -p hotpool-bench --bench handles -- upgrade       # two groups
//! cargo bench -p hotpool-bench --bench handles -- memory        # the footprint table only
//! ```

#![warn(clippy::undocumented_unsafe_blocks)]

mod common;

use std::hint::black_box;
use std::sync::Arc;

use criterion::Criterion;
use hotpool::{handle, Pool, Shared};

type Obj = [u8; 256];

static OBJS: Pool<Obj> = Pool::new();

fn upgrade_live(c: &mut Criterion) {
    let mut g = c.benchmark_group("upgrade-live");
    let s = Shared::new([1u8; 256]);
    let w = Shared::downgrade(&s);
    g.bench_function("hotpool", |b| b.iter(|| black_box(black_box(w).upgrade())));
    let a = Arc::new([1u8; 256]);
    let aw = Arc::downgrade(&a);
    g.bench_function("std-arc", |b| {
        b.iter(|| black_box(black_box(&aw).upgrade()))
    });
    let mut sm = slotmap::SlotMap::new();
    let k = sm.insert([1u8; 256]);
    g.bench_function("slotmap-get", |b| {
        b.iter(|| black_box(sm.get(*black_box(&k)).map(|v| v[0])))
    });
    let mut ar = generational_arena::Arena::new();
    let i = ar.insert([1u8; 256]);
    g.bench_function("generational-arena-get", |b| {
        b.iter(|| black_box(ar.get(*black_box(&i)).map(|v| v[0])))
    });
    let sl = sharded_slab::Slab::new();
    let sk = sl.insert([1u8; 256]).unwrap();
    g.bench_function("sharded-slab-get", |b| {
        b.iter(|| black_box(sl.get(*black_box(&sk)).map(|v| v[0])))
    });
    g.finish();
}

fn upgrade_stale(c: &mut Criterion) {
    let mut g = c.benchmark_group("upgrade-stale");
    let w = Shared::downgrade(&Shared::new([1u8; 256]));
    // The slot is reused by a live object: the generation check fails.
    let _reuser = Shared::new([2u8; 256]);
    g.bench_function("hotpool", |b| b.iter(|| black_box(black_box(w).upgrade())));
    let aw = Arc::downgrade(&Arc::new([1u8; 256]));
    g.bench_function("std-arc", |b| {
        b.iter(|| black_box(black_box(&aw).upgrade()))
    });
    let mut sm = slotmap::SlotMap::new();
    let k = sm.insert([1u8; 256]);
    sm.remove(k);
    sm.insert([2u8; 256]);
    g.bench_function("slotmap-get", |b| {
        b.iter(|| black_box(sm.get(*black_box(&k)).map(|v| v[0])))
    });
    let mut ar = generational_arena::Arena::new();
    let i = ar.insert([1u8; 256]);
    ar.remove(i);
    ar.insert([2u8; 256]);
    g.bench_function("generational-arena-get", |b| {
        b.iter(|| black_box(ar.get(*black_box(&i)).map(|v| v[0])))
    });
    let sl = sharded_slab::Slab::new();
    let sk = sl.insert([1u8; 256]).unwrap();
    sl.remove(sk);
    sl.insert([2u8; 256]).unwrap();
    g.bench_function("sharded-slab-get", |b| {
        b.iter(|| black_box(sl.get(*black_box(&sk)).map(|v| v[0])))
    });
    g.finish();
}

fn downgrade(c: &mut Criterion) {
    let mut g = c.benchmark_group("downgrade");
    let s = Shared::new([1u8; 256]);
    g.bench_function("hotpool", |b| {
        b.iter(|| black_box(Shared::downgrade(black_box(&s))))
    });
    let a = Arc::new([1u8; 256]);
    g.bench_function("std-arc", |b| {
        b.iter(|| black_box(Arc::downgrade(black_box(&a))))
    });
    g.finish();
}

fn clone_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone-drop");
    let s = Shared::new([1u8; 256]);
    g.bench_function("hotpool", |b| b.iter(|| black_box(black_box(&s).clone())));
    let a = Arc::new([1u8; 256]);
    g.bench_function("std-arc", |b| b.iter(|| black_box(black_box(&a).clone())));
    g.finish();
}

fn new_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("new-drop");
    g.bench_function("hotpool-box", |b| {
        b.iter(|| black_box(Shared::new(black_box([1u8; 256]))))
    });
    g.bench_function("hotpool-pool", |b| {
        b.iter(|| black_box(Shared::new_in(black_box([1u8; 256]), &OBJS)))
    });
    g.bench_function("std-arc", |b| {
        b.iter(|| black_box(Arc::new(black_box([1u8; 256]))))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    upgrade_live(c);
    upgrade_stale(c);
    downgrade(c);
    clone_drop(c);
    new_drop(c);
}

mod memory {
    use super::*;

    const COUNT: usize = 1_000_000;

    fn trim() {
        // SAFETY: malloc_trim has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    fn rss() -> isize {
        hotpool::stats::resident_bytes() as isize
    }

    fn mib(bytes: isize) -> f64 {
        bytes as f64 / (1024.0 * 1024.0)
    }

    /// Makes `COUNT` objects with `make`, keeps one weak handle per object
    /// and drops the owners. Returns (live RSS, held RSS) above baseline,
    /// not counting the vector of weak handles itself.
    fn measure<S, W>(make: impl Fn(usize) -> S, down: impl Fn(&S) -> W) -> (isize, isize) {
        trim();
        let weaks_bytes = (COUNT * std::mem::size_of::<W>()) as isize;
        let base = rss();
        let mut weaks = Vec::with_capacity(COUNT);
        let owners: Vec<S> = (0..COUNT).map(&make).collect();
        for o in &owners {
            weaks.push(down(o));
        }
        // Touch the vector so its pages count in both measurements.
        black_box(&mut weaks);
        let live = rss() - base - weaks_bytes;
        drop(owners);
        trim();
        let held = rss() - base - weaks_bytes;
        black_box(&weaks);
        drop(weaks);
        (live, held)
    }

    pub(super) fn run() {
        println!(
            "memory: {COUNT} objects of {} bytes, one weak handle each, owners dropped",
            std::mem::size_of::<Obj>()
        );
        let table_before = handle::stats().bytes;
        let (h_live, h_held) = measure(|i| Shared::new([i as u8; 256]), Shared::downgrade);
        let table = handle::stats();
        let (a_live, a_held) = measure(|i| Arc::new([i as u8; 256]), Arc::downgrade);
        println!("| kind | RSS while live | RSS held after drop | held per dead object |");
        println!("|---|---|---|---|");
        for (name, live, held) in [
            ("hotpool Shared/Weak", h_live, h_held),
            ("std Arc/Weak", a_live, a_held),
        ] {
            println!(
                "| {name} | {:.1} MiB | {:.1} MiB | {:.1} B |",
                mib(live),
                mib(held),
                held as f64 / COUNT as f64
            );
        }
        println!(
            "handle table: {} bytes for {} slots ({} grown by this run) = {:.1} B per slot",
            table.bytes,
            table.slots_in_use + table.slots_free + table.slots_retired,
            table.bytes - table_before,
            table.bytes as f64
                / (table.slots_in_use + table.slots_free + table.slots_retired) as f64
        );
    }
}

fn main() {
    if common::memory_wanted() {
        memory::run();
    }
    let mut c = common::criterion().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
