//! Pool statistics, the pool table and the leak report. The public paths
//! are in [`crate::stats`], which re-exports them; the arena's report and
//! the exit-time leak report reach them through hooks registered by
//! [`register_reports`].

use std::fmt::{self, Write as _};

use super::central::CentralSnapshot;
use super::PoolInner;
use crate::report::{human_bytes, HumanBytes, Stream};
use crate::sync::Wait;

/// A snapshot of one pool's statistics; see the [module docs](crate::stats) for
/// the meaning of each field.
///
/// ```
/// static P: hotpool::Pool<[u8; 100]> = hotpool::Pool::new();
/// let a = P.alloc([0; 100]);
/// let s = P.stats();
/// assert_eq!((s.object_size, s.in_use, s.chunks), (100, 1, 1));
/// assert_eq!(s.capacity, s.in_use + s.local_free + s.depot_free + s.chunk_free);
/// # drop(a);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool's name: the one given with
    /// [`PoolConfig::name`](crate::PoolConfig::name), else the full path of
    /// its type. [`pools()`] appends ` #id` when two pools have one name.
    pub name: String,
    /// The pool's number, unique in the process (never reused); 0 for a
    /// pool that was never used.
    pub id: u32,
    /// The pooled type's full path (`std::any::type_name`).
    pub type_name: &'static str,
    /// `size_of` the pooled type, in bytes.
    pub object_size: usize,
    /// Bytes each object occupies: its size rounded up to its alignment.
    pub slot_size: usize,
    /// Bytes per chunk obtained from the backing allocator.
    pub chunk_size: usize,
    /// Chunks held now.
    pub chunks: usize,
    /// `chunks * chunk_size`.
    pub bytes_held: usize,
    /// Objects the held chunks can hold: objects obtained from the backing allocator.
    pub capacity: usize,
    /// Objects owned by users.
    pub in_use: usize,
    /// Free objects in threads' lists.
    pub local_free: usize,
    /// Free objects in the shared depot.
    pub depot_free: usize,
    /// Free slots inside chunks.
    pub chunk_free: usize,
    /// Threads holding a free list for this pool.
    pub threads: usize,
    /// Batches moved from threads to the depot, cumulative (a thread's full
    /// list handed over whole counts as one).
    pub batches_to_depot: u64,
    /// Batches moved from the depot to threads, cumulative.
    pub batches_from_depot: u64,
    /// Depot lock acquisitions whose first try failed, cumulative.
    pub depot_contention: u64,
    /// Chunks obtained from the backing allocator, cumulative.
    pub chunks_made: u64,
    /// Chunks given back to the backing allocator, cumulative.
    pub chunks_released: u64,
}

impl PoolStats {
    /// Figures of a pool that was never used.
    pub(crate) fn unused(
        name: Option<&'static str>,
        type_name: &'static str,
        object_size: usize,
    ) -> PoolStats {
        PoolStats {
            name: name.unwrap_or(type_name).to_owned(),
            id: 0,
            type_name,
            object_size,
            slot_size: 0,
            chunk_size: 0,
            chunks: 0,
            bytes_held: 0,
            capacity: 0,
            in_use: 0,
            local_free: 0,
            depot_free: 0,
            chunk_free: 0,
            threads: 0,
            batches_to_depot: 0,
            batches_from_depot: 0,
            depot_contention: 0,
            chunks_made: 0,
            chunks_released: 0,
        }
    }

    pub(crate) fn collect(inner: &PoolInner) -> PoolStats {
        let hot = &inner.hot.0;
        let Counts {
            central: c,
            capacity,
            local_free,
            threads,
            in_use,
        } = Counts::of(inner, Wait::Park);
        PoolStats {
            name: hot.config.name.unwrap_or(hot.type_name).to_owned(),
            id: inner.serial(),
            type_name: hot.type_name,
            object_size: hot.object_size,
            slot_size: hot.geo.slot,
            chunk_size: hot.geo.chunk,
            chunks: c.chunks,
            bytes_held: c.chunks * hot.geo.chunk,
            capacity,
            in_use,
            local_free,
            depot_free: c.depot,
            chunk_free: c.chunk_free,
            threads,
            batches_to_depot: c.batches_to_depot,
            batches_from_depot: c.batches_from_depot,
            depot_contention: c.contention,
            chunks_made: c.chunks_made,
            chunks_released: c.chunks_released,
        }
    }
}

/// The figures of one pool that [`PoolStats`] and the leak report derive
/// from; reading them allocates nothing.
struct Counts {
    central: CentralSnapshot,
    capacity: usize,
    local_free: usize,
    threads: usize,
    in_use: usize,
}

impl Counts {
    /// Reads `inner`'s counters and its threads' lists (the thread
    /// registry's lock taken as `wait` says).
    fn of(inner: &PoolInner, wait: Wait) -> Counts {
        let hot = &inner.hot.0;
        let central = inner.snapshot();
        let (local_free, threads) = super::cached_in_threads(hot.id, inner.serial(), wait);
        let capacity = central.chunks * hot.geo.capacity;
        let in_use = capacity
            .saturating_sub(central.chunk_free)
            .saturating_sub(central.depot)
            .saturating_sub(local_free);
        Counts {
            central,
            capacity,
            local_free,
            threads,
            in_use,
        }
    }
}

/// Statistics of every live pool in the process (pools used at least once
/// and not dropped, or dropped with objects still alive), by name. Pools
/// that share a name (two unnamed pools of one type) get ` #id` appended,
/// so every name in the list is distinct.
///
/// ```
/// static ORDERS: hotpool::Pool<[u64; 4]> = hotpool::Pool::new();
/// let o = ORDERS.alloc([1, 2, 3, 4]);
/// let all = hotpool::stats::pools();
/// assert!(all.iter().any(|p| p.name == "[u64; 4]" && p.in_use >= 1));
/// # drop(o);
/// ```
pub fn pools() -> Vec<PoolStats> {
    let mut out = Vec::new();
    super::for_each_pool(Wait::Park, |inner| out.push(PoolStats::collect(inner)));
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    let shared: Vec<bool> = (0..out.len())
        .map(|i| {
            (i > 0 && out[i - 1].name == out[i].name)
                || out.get(i + 1).is_some_and(|next| next.name == out[i].name)
        })
        .collect();
    for (p, shared) in out.iter_mut().zip(shared) {
        if shared {
            let _ = write!(p.name, " #{}", p.id);
        }
    }
    out
}

/// Objects of one pool type still in use: an entry of [`leaks()`].
///
/// ```
/// static NODES: hotpool::Pool<[u32; 8]> = hotpool::Pool::new();
/// let kept = hotpool::Pooled::leak(NODES.alloc([0; 8]));
/// let leak = hotpool::stats::leaks().into_iter().find(|l| l.type_name == "[u32; 8]").unwrap();
/// assert_eq!((leak.count, leak.bytes), (1, 32));
/// # let _ = kept;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leak {
    /// The pooled type's name.
    pub type_name: &'static str,
    /// Objects in use.
    pub count: usize,
    /// Bytes they take: `count * size_of::<T>()`.
    pub bytes: usize,
    /// Where they were allocated, `(objects, stack)` with the most frequent
    /// first; empty unless `HOTPOOL_CONF=leak_backtrace:true`.
    pub sites: Vec<(usize, String)>,
    /// For a heap allocation site ([`HEAP`] as `type_name`, with
    /// `HOTPOOL_CONF=prof:true`): its return addresses, innermost first;
    /// `count` and `bytes` are then estimates scaled from the samples.
    /// Empty for a pool type.
    pub frames: Vec<usize>,
}

/// The `type_name` of a [`Leak`] that is a heap allocation site of the
/// profiler rather than a pool type.
///
/// ```
/// // Heap sites are listed only with HOTPOOL_CONF=prof:true (Linux).
/// let heap_bytes: usize = hotpool::stats::leaks()
///     .iter()
///     .filter(|l| l.type_name == hotpool::stats::HEAP)
///     .map(|l| l.bytes)
///     .sum();
/// # let _ = heap_bytes;
/// ```
pub const HEAP: &str = "heap";

/// Every pool type with objects still in use, like the router's pool
/// finalizer, then (with `HOTPOOL_CONF=prof:true`, Linux) every heap
/// allocation site with sampled objects still live, most bytes first
/// (`type_name` [`HEAP`], estimated counts, [`Leak::frames`]); with
/// `HOTPOOL_CONF=leak_report:true` both are printed to stderr at exit
/// ([`render_leaks`]). Objects cached free in threads' lists are not in
/// use. While threads allocate, counts may be off by a batch.
///
/// ```
/// static FRAMES: hotpool::Pool<[u16; 3]> = hotpool::Pool::new();
/// let f = FRAMES.alloc([1, 2, 3]);
/// assert!(hotpool::stats::leaks().iter().any(|l| l.type_name == "[u16; 3]" && l.count == 1));
/// drop(f);
/// assert!(!hotpool::stats::leaks().iter().any(|l| l.type_name == "[u16; 3]"));
/// ```
pub fn leaks() -> Vec<Leak> {
    let mut found = Vec::new();
    super::for_each_pool(Wait::Park, |inner| {
        let count = Counts::of(inner, Wait::Park).in_use;
        if count > 0 {
            let hot = &inner.hot.0;
            found.push((
                hot.type_name,
                count,
                count * hot.object_size,
                inner.serial(),
            ));
        }
    });
    // By (type name, pool number), the order of the exit-time report
    // (`next_leak`).
    found.sort_by(|a, b| (a.0, a.3).cmp(&(b.0, b.3)));
    let pools = found
        .into_iter()
        .map(|(type_name, count, bytes, serial)| Leak {
            type_name,
            count,
            bytes,
            sites: crate::debug::sites_of(serial),
            frames: Vec::new(),
        });
    #[cfg(target_os = "linux")]
    let heap = crate::arena::prof::live_sites().into_iter().map(|s| Leak {
        type_name: HEAP,
        count: s.objects as usize,
        bytes: s.bytes as usize,
        sites: Vec::new(),
        frames: s.frames,
    });
    #[cfg(not(target_os = "linux"))]
    let heap = core::iter::empty();
    pools.chain(heap).collect()
}

/// A pool with objects in use, as [`next_leak`] finds it.
struct NextLeak {
    /// Type name and pool number ([`PoolStats::id`]): the order of the
    /// leak report.
    key: (&'static str, u32),
    count: usize,
    bytes: usize,
}

/// The pool with objects in use whose `(type name, pool number)` comes first
/// after `after` (from the start with `None`), taking the registries'
/// locks as `wait` says. One pass over the pools, allocating nothing: the
/// exit-time leak report, which must not allocate, sorts by calling it
/// once per entry, which costs a pass over the pools per leaking pool (a
/// pool made or dropped meanwhile is listed or not; none is listed twice).
fn next_leak(after: Option<(&'static str, u32)>, wait: Wait) -> Option<NextLeak> {
    let mut best: Option<NextLeak> = None;
    super::for_each_pool(wait, |inner| {
        let hot = &inner.hot.0;
        let key = (hot.type_name, inner.serial());
        if after.is_some_and(|a| key <= a) || best.as_ref().is_some_and(|b| b.key <= key) {
            return;
        }
        let count = Counts::of(inner, wait).in_use;
        if count > 0 {
            best = Some(NextLeak {
                key,
                count,
                bytes: count * hot.object_size,
            });
        }
    });
    best
}

/// Renders leaks as text: one line per type, then its allocation sites
/// (if recorded) indented.
///
/// ```
/// assert_eq!(hotpool::stats::render_leaks(&[]), "");
/// ```
pub fn render_leaks(leaks: &[Leak]) -> String {
    let mut out = String::new();
    for l in leaks {
        #[cfg(target_os = "linux")]
        if !l.frames.is_empty() {
            let _ =
                crate::arena::prof::write_site(&mut out, l.count as u64, l.bytes as u64, &l.frames);
            continue;
        }
        let _ = write_leak(&mut out, l.type_name, l.count, l.bytes, &l.sites);
    }
    out
}

/// One entry of the leak report: its line, then its allocation sites
/// indented. Allocates nothing itself (the text goes to `out`).
fn write_leak(
    out: &mut impl fmt::Write,
    type_name: &str,
    count: usize,
    bytes: usize,
    sites: &[(usize, String)],
) -> fmt::Result {
    writeln!(
        out,
        "hotpool: leak: {count} objects of type `{type_name}` ({}) still in use",
        HumanBytes(bytes)
    )?;
    for (n, stack) in sites {
        writeln!(out, "  {n} allocated at:")?;
        for line in stack.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}

/// Renders [`pools()`] as an aligned text table, one line per pool.
///
/// ```
/// static P: hotpool::Pool<u128> = hotpool::Pool::new();
/// let x = P.alloc(1);
/// let table = hotpool::stats::report();
/// assert!(table.lines().next().unwrap().starts_with("pool"));
/// assert!(table.contains("u128"));
/// # drop(x);
/// ```
pub fn report() -> String {
    render(&pools())
}

/// Renders the given pool statistics as an aligned text table.
///
/// ```
/// let table = hotpool::stats::render(&[]);
/// assert_eq!(table.lines().count(), 1); // the header only
/// ```
pub fn render(pools: &[PoolStats]) -> String {
    const HEADERS: [&str; 11] = [
        "pool",
        "size",
        "in-use",
        "local",
        "depot",
        "chunk-free",
        "chunks",
        "held",
        "to-depot",
        "from-depot",
        "contention",
    ];
    let rows: Vec<[String; 11]> = pools
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.object_size.to_string(),
                p.in_use.to_string(),
                p.local_free.to_string(),
                p.depot_free.to_string(),
                p.chunk_free.to_string(),
                p.chunks.to_string(),
                human_bytes(p.bytes_held),
                p.batches_to_depot.to_string(),
                p.batches_from_depot.to_string(),
                p.depot_contention.to_string(),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        for (i, (cell, w)) in cells.zip(widths).enumerate() {
            if i == 0 {
                let _ = write!(out, "{cell:<w$}");
            } else {
                let _ = write!(out, "  {cell:>w$}");
            }
        }
        out.push('\n');
    };
    line(&mut HEADERS.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Registers this layer's reports with the layers below, which cannot
/// name it: the pool table in [`crate::arena::stats_print`] and the leak
/// report that `HOTPOOL_CONF=leak_report` prints at exit. Called when a
/// pool is created; a process without pools has neither table. Also
/// starts the report on `HOTPOOL_CONF=stats_signal` (once), which the
/// arena starts only if it is used.
pub(crate) fn register_reports() {
    #[cfg(target_os = "linux")]
    {
        crate::arena::set_report_hook(write_report);
        crate::arena::set_idle_hook(super::registry::trim_idle);
        crate::arena::start_signal_report();
    }
    crate::debug::set_leak_report(print_leaks);
}

/// The pool table, for the arena's statistics report.
#[cfg(target_os = "linux")]
fn write_report(out: &mut String) {
    out.push_str(&report());
}

/// The leak report that `HOTPOOL_CONF=leak_report` prints at exit: the
/// text of [`render_leaks`]`(&`[`leaks()`]`)`, written to stderr a line at
/// a time. Without `leak_backtrace` it allocates nothing: under
/// `LD_PRELOAD`, or with [`HotAlloc`](crate::arena::HotAlloc) as the global
/// allocator, the allocator it would allocate through is the one being
/// reported on, and a heap in a bad state must not stop the report. With
/// `leak_backtrace` the recorded stacks are symbolised by the standard
/// library, which allocates (through the global allocator); the mode
/// already allocates a stack per pool allocation.
fn print_leaks() {
    let mut out = Stream::new();
    let mut after = None;
    while let Some(next) = next_leak(after, Wait::Yield) {
        after = Some(next.key);
        let sites = if crate::debug::records_sites() {
            crate::debug::sites_of(next.key.1)
        } else {
            Vec::new()
        };
        // A `Stream` never fails.
        let _ = write_leak(&mut out, next.key.0, next.count, next.bytes, &sites);
        out.flush();
    }
}
