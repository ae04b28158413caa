//! The statistics in Prometheus's text exposition format, version 0.0.4:
//! one `# HELP` and one `# TYPE` line per metric family, then its samples.

use std::fmt::Write as _;

use super::PoolStats;

/// A metric family's type: gauges go up and down, counters only grow
/// (their names end in `_total`).
#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// One figure of every pool: its family name, type, help text and value.
type PoolFigure = (&'static str, Kind, &'static str, fn(&PoolStats) -> u64);

/// The per-pool families after `hotpool_pool_info` and before
/// `hotpool_pool_objects_free` (which has a label of its own), in output
/// order.
const POOL_FIGURES: [PoolFigure; 7] = [
    (
        "hotpool_pool_object_size_bytes",
        Kind::Gauge,
        "Size of the pooled type (size_of), in bytes.",
        |p| p.object_size as u64,
    ),
    (
        "hotpool_pool_slot_size_bytes",
        Kind::Gauge,
        "Bytes each object occupies: its size rounded up to its alignment.",
        |p| p.slot_size as u64,
    ),
    (
        "hotpool_pool_chunk_size_bytes",
        Kind::Gauge,
        "Bytes per chunk obtained from the backing allocator.",
        |p| p.chunk_size as u64,
    ),
    (
        "hotpool_pool_chunks",
        Kind::Gauge,
        "Chunks the pool holds.",
        |p| p.chunks as u64,
    ),
    (
        "hotpool_pool_held_bytes",
        Kind::Gauge,
        "Memory the pool holds: chunks times chunk size, in bytes.",
        |p| p.bytes_held as u64,
    ),
    (
        "hotpool_pool_objects_capacity",
        Kind::Gauge,
        "Objects the held chunks can hold.",
        |p| p.capacity as u64,
    ),
    (
        "hotpool_pool_objects_in_use",
        Kind::Gauge,
        "Objects owned by users.",
        |p| p.in_use as u64,
    ),
];

/// The per-pool families after `hotpool_pool_objects_free`.
const POOL_ACTIVITY: [PoolFigure; 6] = [
    (
        "hotpool_pool_threads",
        Kind::Gauge,
        "Threads holding a free list for the pool.",
        |p| p.threads as u64,
    ),
    (
        "hotpool_pool_batches_to_depot_total",
        Kind::Counter,
        "Batches of free objects moved from threads to the shared depot.",
        |p| p.batches_to_depot,
    ),
    (
        "hotpool_pool_batches_from_depot_total",
        Kind::Counter,
        "Batches of free objects moved from the shared depot to threads.",
        |p| p.batches_from_depot,
    ),
    (
        "hotpool_pool_depot_contention_total",
        Kind::Counter,
        "Depot lock acquisitions whose first try failed.",
        |p| p.depot_contention,
    ),
    (
        "hotpool_pool_chunks_made_total",
        Kind::Counter,
        "Chunks obtained from the backing allocator.",
        |p| p.chunks_made,
    ),
    (
        "hotpool_pool_chunks_released_total",
        Kind::Counter,
        "Chunks given back to the backing allocator.",
        |p| p.chunks_released,
    ),
];

/// Every figure of [`pools()`](super::pools), the handle table
/// ([`handle::stats`](crate::handle::stats)) and, on Linux, the arena
/// allocator ([`arena::stats`](crate::arena::stats)) and the process's
/// resident set, in the [Prometheus text exposition format] version 0.0.4,
/// for an HTTP endpoint's `/metrics` (served with
/// `Content-Type: text/plain; version=0.0.4`).
///
/// Each metric family has one `# HELP` and one `# TYPE` line before its
/// samples. Counters (cumulative figures) end in `_total`; everything else
/// is a gauge. Label values are escaped as the format requires (`\\`,
/// `\"`, `\n`).
///
/// | family | type | labels | figure |
/// |---|---|---|---|
/// | `hotpool_pool_info` | gauge (1) | `pool`, `type`, `id` | a pool's type and id |
/// | `hotpool_pool_object_size_bytes` | gauge | `pool` | `object_size` |
/// | `hotpool_pool_slot_size_bytes` | gauge | `pool` | `slot_size` |
/// | `hotpool_pool_chunk_size_bytes` | gauge | `pool` | `chunk_size` |
/// | `hotpool_pool_chunks` | gauge | `pool` | `chunks` |
/// | `hotpool_pool_held_bytes` | gauge | `pool` | `bytes_held` |
/// | `hotpool_pool_objects_capacity` | gauge | `pool` | `capacity` |
/// | `hotpool_pool_objects_in_use` | gauge | `pool` | `in_use` |
/// | `hotpool_pool_objects_free` | gauge | `pool`, `where` (`local`, `depot`, `chunk`) | `local_free`, `depot_free`, `chunk_free` |
/// | `hotpool_pool_threads` | gauge | `pool` | `threads` |
/// | `hotpool_pool_batches_to_depot_total` | counter | `pool` | `batches_to_depot` |
/// | `hotpool_pool_batches_from_depot_total` | counter | `pool` | `batches_from_depot` |
/// | `hotpool_pool_depot_contention_total` | counter | `pool` | `depot_contention` |
/// | `hotpool_pool_chunks_made_total` | counter | `pool` | `chunks_made` |
/// | `hotpool_pool_chunks_released_total` | counter | `pool` | `chunks_released` |
/// | `hotpool_handle_slots` | gauge | `state` (`in_use`, `free`, `retired`) | `slots_in_use`, `slots_free`, `slots_retired` |
/// | `hotpool_handle_table_bytes` | gauge | | `bytes` |
/// | `hotpool_arena_{allocated,active,resident,mapped,metadata,dirty}_bytes` | gauge | | the arena totals |
/// | `hotpool_arena_tcache_bytes`, `hotpool_arena_depot_bytes` | gauge | | `tcache_bytes`, `depot_bytes` |
/// | `hotpool_arena_tcache_reclaimed_bytes_total` | counter | | `tcache_reclaimed` |
/// | `hotpool_arena_purged_bytes_total` | counter | | `purged` |
/// | `hotpool_arena_arenas` | gauge | | `narenas` |
/// | `hotpool_arena_arenas_open` | gauge | | `arenas_open` |
/// | `hotpool_arena_huge_allocations_total` | counter | | `huge_nmalloc` |
/// | `hotpool_arena_huge_frees_total` | counter | | `huge_nfree` |
/// | `hotpool_arena_class_allocations_total` | counter | `size` (bytes), `kind` (`small`, `large`) | a class's `nmalloc` |
/// | `hotpool_arena_class_frees_total` | counter | `size`, `kind` | a class's `nfree` |
/// | `hotpool_arena_class_objects` | gauge | `size`, `kind` | a class's `current` |
/// | `hotpool_arena_class_cached_objects` | gauge | `size`, `kind` | a class's `cached` |
/// | `hotpool_arena_class_parked_objects` | gauge | `size`, `kind` | a class's `parked` |
/// | `hotpool_process_resident_bytes` | gauge | | [`resident_bytes()`](super::resident_bytes) |
///
/// The `pool` label is the name [`pools()`](super::pools) gives, so it is
/// distinct for every pool (two pools that share a name get ` #id`
/// appended) and stable across restarts for named pools; the pool's id,
/// which depends on the order pools are first used, is only in
/// `hotpool_pool_info`. Every size class is listed, used or not, so the
/// set of series does not change while the process runs. The arena
/// families and the resident set exist on Linux only; reading the arena's
/// figures starts the arena, as [`arena::stats`](crate::arena::stats)
/// does.
///
/// Cost: one [`pools()`](super::pools) (each pool's lock briefly, the
/// thread registry), one walk of the handle table and one read of the
/// arena counters; it allocates the returned text, so it is not for the
/// allocator's own paths (or a signal handler).
///
/// [Prometheus text exposition format]: https://prometheus.io/docs/instrumenting/exposition_formats/
///
/// ```
/// use hotpool::{Pool, PoolConfig};
///
/// static ORDERS: Pool<[u64; 4]> = Pool::with_config(PoolConfig::new().name("orders"));
/// let (a, b) = (ORDERS.alloc([1; 4]), ORDERS.alloc([2; 4]));
///
/// let text = hotpool::stats::prometheus();
/// assert!(text.contains("# TYPE hotpool_pool_objects_in_use gauge\n"));
/// assert!(text.lines().any(|l| l == r#"hotpool_pool_objects_in_use{pool="orders"} 2"#));
/// assert!(text.lines().any(|l| l == r#"hotpool_pool_object_size_bytes{pool="orders"} 32"#));
/// drop((a, b));
/// ```
pub fn prometheus() -> String {
    let mut out = Text(String::new());
    pool_families(&mut out, &super::pools());
    handle_families(&mut out, &crate::handle::stats());
    #[cfg(target_os = "linux")]
    arena_families(&mut out, &crate::arena::stats());
    #[cfg(target_os = "linux")]
    {
        out.family(
            "hotpool_process_resident_bytes",
            Kind::Gauge,
            "Resident set size of the process (from /proc/self/statm), in bytes.",
        );
        out.sample(
            "hotpool_process_resident_bytes",
            &[],
            super::resident_bytes() as u64,
        );
    }
    out.0
}

fn pool_families(out: &mut Text, pools: &[PoolStats]) {
    out.family(
        "hotpool_pool_info",
        Kind::Gauge,
        "A pool's pooled type and id (unique in the process); always 1.",
    );
    for p in pools {
        let id = p.id.to_string();
        out.sample(
            "hotpool_pool_info",
            &[("pool", &p.name), ("type", p.type_name), ("id", &id)],
            1,
        );
    }
    let figure = |out: &mut Text, &(name, kind, help, value): &PoolFigure| {
        out.family(name, kind, help);
        for p in pools {
            out.sample(name, &[("pool", &p.name)], value(p));
        }
    };
    POOL_FIGURES.iter().for_each(|f| figure(out, f));
    const FREE: &str = "hotpool_pool_objects_free";
    out.family(
        FREE,
        Kind::Gauge,
        "Free objects: in threads' own lists (local), in the shared depot, \
         and never handed out or given back in chunks (chunk).",
    );
    for p in pools {
        for (place, n) in [
            ("local", p.local_free),
            ("depot", p.depot_free),
            ("chunk", p.chunk_free),
        ] {
            out.sample(FREE, &[("pool", &p.name), ("where", place)], n as u64);
        }
    }
    POOL_ACTIVITY.iter().for_each(|f| figure(out, f));
}

fn handle_families(out: &mut Text, h: &crate::handle::HandleStats) {
    const SLOTS: &str = "hotpool_handle_slots";
    out.family(
        SLOTS,
        Kind::Gauge,
        "Slots of the handle table: holding a live object (in_use), free for \
         reuse (free), retired because their generation ran out (retired).",
    );
    for (state, n) in [
        ("in_use", h.slots_in_use),
        ("free", h.slots_free),
        ("retired", h.slots_retired),
    ] {
        out.sample(SLOTS, &[("state", state)], n as u64);
    }
    const BYTES: &str = "hotpool_handle_table_bytes";
    out.family(
        BYTES,
        Kind::Gauge,
        "Memory the handle table holds (segments plus header), in bytes.",
    );
    out.sample(BYTES, &[], h.bytes as u64);
}

#[cfg(target_os = "linux")]
fn arena_families(out: &mut Text, s: &crate::arena::ArenaStats) {
    let totals: [(&str, Kind, &str, u64); 14] = [
        (
            "hotpool_arena_allocated_bytes",
            Kind::Gauge,
            "Bytes in objects users hold (class sizes; huge objects page-rounded).",
            s.allocated as u64,
        ),
        (
            "hotpool_arena_active_bytes",
            Kind::Gauge,
            "Bytes of pages in slabs and large runs, plus huge objects.",
            s.active as u64,
        ),
        (
            "hotpool_arena_resident_bytes",
            Kind::Gauge,
            "Upper estimate of the arena's resident bytes: active + dirty + metadata.",
            s.resident as u64,
        ),
        (
            "hotpool_arena_mapped_bytes",
            Kind::Gauge,
            "Bytes mapped: chunks, huge mappings, metadata.",
            s.mapped as u64,
        ),
        (
            "hotpool_arena_metadata_bytes",
            Kind::Gauge,
            "Bytes of metadata: base blocks and chunk headers.",
            s.metadata as u64,
        ),
        (
            "hotpool_arena_dirty_bytes",
            Kind::Gauge,
            "Bytes of free pages not yet purged, kept huge mappings included.",
            s.dirty as u64,
        ),
        (
            "hotpool_arena_tcache_bytes",
            Kind::Gauge,
            "Bytes of free objects in threads' caches (class sizes).",
            s.tcache_bytes as u64,
        ),
        (
            "hotpool_arena_depot_bytes",
            Kind::Gauge,
            "Bytes of free objects parked in the arenas' depots (class sizes).",
            s.depot_bytes as u64,
        ),
        (
            "hotpool_arena_tcache_reclaimed_bytes_total",
            Kind::Counter,
            "Bytes of free objects taken back from quiet threads' caches.",
            s.tcache_reclaimed,
        ),
        (
            "hotpool_arena_purged_bytes_total",
            Kind::Counter,
            "Bytes of pages purged (given back to the OS).",
            s.purged,
        ),
        (
            "hotpool_arena_arenas",
            Kind::Gauge,
            "Arenas in use.",
            s.narenas as u64,
        ),
        (
            "hotpool_arena_arenas_open",
            Kind::Gauge,
            "Arenas open to threads (one at first by default; more as threads contend).",
            s.arenas_open as u64,
        ),
        (
            "hotpool_arena_huge_allocations_total",
            Kind::Counter,
            "Huge allocations (over 1 MiB, or alignment over 256 KiB) made.",
            s.huge_nmalloc,
        ),
        (
            "hotpool_arena_huge_frees_total",
            Kind::Counter,
            "Huge allocations freed.",
            s.huge_nfree,
        ),
    ];
    for (name, kind, help, value) in totals {
        out.family(name, kind, help);
        out.sample(name, &[], value);
    }
    type ClassFigure = fn(&crate::arena::ClassStats) -> u64;
    let classes: [(&str, Kind, &str, ClassFigure); 5] = [
        (
            "hotpool_arena_class_allocations_total",
            Kind::Counter,
            "Objects of a size class handed to users.",
            |c| c.nmalloc,
        ),
        (
            "hotpool_arena_class_frees_total",
            Kind::Counter,
            "Objects of a size class given back by users.",
            |c| c.nfree,
        ),
        (
            "hotpool_arena_class_objects",
            Kind::Gauge,
            "Objects of a size class users hold now.",
            |c| c.current,
        ),
        (
            "hotpool_arena_class_cached_objects",
            Kind::Gauge,
            "Free objects of a size class in threads' caches.",
            |c| c.cached,
        ),
        (
            "hotpool_arena_class_parked_objects",
            Kind::Gauge,
            "Free objects of a size class parked in the arenas' depots.",
            |c| c.parked,
        ),
    ];
    for (name, kind, help, value) in classes {
        out.family(name, kind, help);
        for c in &s.classes {
            let size = c.size.to_string();
            let class = if c.small { "small" } else { "large" };
            out.sample(name, &[("size", &size), ("kind", class)], value(c));
        }
    }
}

/// The text being written.
struct Text(String);

impl Text {
    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = write!(self.0, "# HELP {name} ");
        escape(&mut self.0, help, false);
        let _ = writeln!(self.0, "\n# TYPE {name} {kind}");
    }

    /// One sample line of the family started last.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        for (i, (label, v)) in labels.iter().enumerate() {
            self.0.push(if i == 0 { '{' } else { ',' });
            let _ = write!(self.0, "{label}=\"");
            escape(&mut self.0, v, true);
            self.0.push('"');
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Appends `text` escaped as the format requires: a backslash and a line
/// feed in help text, and also a double quote in a label value.
fn escape(out: &mut String, text: &str, quote: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut t = Text(String::new());
        t.family("m_total", Kind::Counter, "a \\ b\nc \"d\"");
        t.sample("m_total", &[("l", "x\\y\"z\nw"), ("k", "")], 7);
        assert_eq!(
            t.0,
            "# HELP m_total a \\\\ b\\nc \"d\"\n# TYPE m_total counter\nm_total{l=\"x\\\\y\\\"z\\nw\",k=\"\"} 7\n"
        );
    }

    #[test]
    fn a_sample_without_labels_has_no_braces() {
        let mut t = Text(String::new());
        t.sample("hotpool_x", &[], 0);
        assert_eq!(t.0, "hotpool_x 0\n");
    }
}
