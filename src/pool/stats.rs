//! Pool statistics, the pool table and the leak report. The public paths
//! are in [`crate::stats`], which re-exports them; the arena's report and
//! the exit-time leak report reach them through hooks registered by
//! [`register_reports`].

use std::fmt::Write as _;

use super::PoolInner;
use crate::report::human_bytes;

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
    /// Batches moved from threads to the depot, cumulative.
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
        let c = inner.snapshot();
        let (local_free, threads) = super::cached_in_threads(hot.id, inner.serial());
        let capacity = c.chunks * hot.geo.capacity;
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
            in_use: capacity
                .saturating_sub(c.chunk_free)
                .saturating_sub(c.depot)
                .saturating_sub(local_free),
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
    super::for_each_pool(|inner| out.push(PoolStats::collect(inner)));
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
}

/// Every pool type with objects still in use, like the router's pool
/// finalizer; with `HOTPOOL_CONF=leak_report:true` it is printed to stderr
/// at exit ([`render_leaks`]). Objects cached free in threads' lists are not
/// in use. While threads allocate, counts may be off by a batch.
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
    super::for_each_pool(|inner| {
        let s = PoolStats::collect(inner);
        if s.in_use > 0 {
            found.push((s, inner.serial()));
        }
    });
    let mut out: Vec<Leak> = found
        .into_iter()
        .map(|(s, serial)| Leak {
            type_name: s.type_name,
            count: s.in_use,
            bytes: s.in_use * s.object_size,
            sites: crate::debug::sites_of(serial),
        })
        .collect();
    out.sort_by(|a, b| a.type_name.cmp(b.type_name));
    out
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
        let _ = writeln!(
            out,
            "hotpool: leak: {} objects of type `{}` ({}) still in use",
            l.count,
            l.type_name,
            human_bytes(l.bytes)
        );
        for (n, stack) in &l.sites {
            let _ = writeln!(out, "  {n} allocated at:");
            for line in stack.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    out
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
        crate::arena::start_signal_report();
    }
    crate::debug::set_leak_report(print_leaks);
}

/// The pool table, for the arena's statistics report.
#[cfg(target_os = "linux")]
fn write_report(out: &mut String) {
    out.push_str(&report());
}

/// The leak report, written to stderr (at exit).
fn print_leaks() {
    crate::sys::write_stderr(render_leaks(&leaks()).as_bytes());
}
