//! `stats::prometheus()`: the text is well-formed Prometheus text
//! exposition format 0.0.4 (checked by the strict parser below) and its
//! numbers are those of `stats::pools()`, `handle::stats()` and
//! `arena::stats()`. Also the router example's `/metrics` server.
//!
//! The parser is written here rather than taken from a crate: the Rust
//! parsers of the format on crates.io are lenient (they accept what
//! Prometheus refuses) and little maintained, and the rules fit in a page.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use hotpool::{handle, stats, Pool, PoolConfig, Shared};

#[path = "../examples/shared/metrics_server.rs"]
mod metrics_server;

/// The tests read process-wide figures: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A series: metric name and labels (sorted by name).
type Series = (String, Vec<(String, String)>);

/// What a `# HELP` / `# TYPE` pair says of a family.
#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: usize,
}

/// A parsed exposition.
#[derive(Debug, Default)]
struct Exposition {
    families: BTreeMap<String, Family>,
    samples: BTreeMap<Series, f64>,
}

impl Exposition {
    /// The value of one series; panics if it is absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        *self
            .samples
            .get(&(name.to_owned(), l))
            .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
    }

    /// The values of `name` by the value of its label `label`.
    fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| {
                let value = l.iter().find(|(k, _)| k == label).unwrap();
                (value.1.clone(), *v)
            })
            .collect()
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !s.starts_with("__")
}

/// Undoes the format's escapes: `\\` and `\n`, and `\"` where `quote`.
fn unescape(s: &str, quote: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quote => out.push('"'),
            other => return Err(format!("invalid escape \\{other:?} in {s:?}")),
        }
    }
    Ok(out)
}

/// A value as Go's `ParseFloat` reads it (with `+Inf`, `-Inf`, `NaN`).
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().map_err(|_| format!("bad value {s:?}"))
        }
        _ => Err(format!("bad value {s:?}")),
    }
}

/// Splits `name{labels} value [timestamp]` into its parts.
fn parse_sample(line: &str) -> Result<(Series, f64), String> {
    let end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=').ok_or("label without '='")?;
            let label = rest[..eq].trim_end_matches([' ', '\t']);
            if !is_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            rest = rest[eq + 1..]
                .trim_start_matches([' ', '\t'])
                .strip_prefix('"')
                .ok_or("label value without '\"'")?;
            // The value ends at the first quote not escaped.
            let mut close = None;
            let mut escaped = false;
            for (i, c) in rest.char_indices() {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        close = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let close = close.ok_or("label value not closed")?;
            let value = unescape(&rest[..close], true)?;
            if labels.iter().any(|(l, _): &(String, String)| l == label) {
                return Err(format!("label {label} twice"));
            }
            labels.push((label.to_owned(), value));
            rest = rest[close + 1..].trim_start_matches([' ', '\t']);
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' at {rest:?}"));
            }
        }
    }
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = parse_value(fields.next().ok_or("sample without a value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    labels.sort();
    Ok(((name.to_owned(), labels), value))
}

/// Parses the text format 0.0.4 as Prometheus does, and refuses what it
/// refuses: a second HELP or TYPE for a family, a TYPE after the family's
/// samples, an unknown type, a family whose lines are not one group,
/// invalid names, escapes or values, a series given twice, and text not
/// ending in a line feed.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let body = text
        .strip_suffix('\n')
        .ok_or("the text must end with a line feed")?;
    let mut current: Option<String> = None;
    let mut closed = BTreeSet::new();
    for (n, line) in body.split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        let family = if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment
                .trim_start_matches([' ', '\t'])
                .splitn(3, [' ', '\t']);
            let keyword = words.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // a plain comment
            }
            let name = words.next().unwrap_or("").to_owned();
            if !is_metric_name(&name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            let arg = words.next().unwrap_or("");
            let f = out.families.entry(name.clone()).or_default();
            if keyword == "HELP" {
                if f.help.is_some() {
                    return Err(at("second HELP".into()));
                }
                f.help = Some(unescape(arg, false).map_err(at)?);
            } else {
                if f.kind.is_some() {
                    return Err(at("second TYPE".into()));
                }
                if f.samples > 0 {
                    return Err(at("TYPE after the family's samples".into()));
                }
                let kind = arg.trim_end_matches([' ', '\t']);
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at(format!("unknown type {kind:?}")));
                }
                f.kind = Some(kind.to_owned());
            }
            name
        } else {
            let (series, value) = parse_sample(line).map_err(at)?;
            // A histogram's or summary's samples carry a suffix.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|s| series.0.strip_suffix(s))
                .find(|base| {
                    out.families
                        .get(*base)
                        .is_some_and(|f| matches!(f.kind.as_deref(), Some("histogram" | "summary")))
                })
                .unwrap_or(&series.0)
                .to_owned();
            out.families.entry(family.clone()).or_default().samples += 1;
            if out.samples.insert(series.clone(), value).is_some() {
                return Err(at(format!("series {series:?} twice")));
            }
            family
        };
        if current.as_deref() != Some(family.as_str()) {
            if closed.contains(&family) {
                return Err(at(format!("lines of {family} are not one group")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                closed.insert(previous);
            }
        }
    }
    Ok(out)
}

#[test]
fn the_parser_refuses_what_prometheus_refuses() {
    let ok = "# HELP a_total A \\\\ b\\n.\n# TYPE a_total counter\na_total{x=\"1\\\"\",y=\"\"} 3 1700000000\n# plain comment\nb NaN\n";
    let e = parse(ok).unwrap();
    assert_eq!(e.get("a_total", &[("x", "1\""), ("y", "")]), 3.0);
    assert_eq!(e.families["a_total"].help.as_deref(), Some("A \\ b\n."));
    assert!(e.get("b", &[]).is_nan());
    for bad in [
        "a 1",                                   // no final line feed
        "# TYPE a gauge\n# TYPE a gauge\na 1\n", // second TYPE
        "# HELP a x\n# HELP a y\na 1\n",         // second HELP
        "a 1\n# TYPE a gauge\n",                 // TYPE after samples
        "# TYPE a meter\na 1\n",                 // unknown type
        "a 1\nb 1\na{l=\"x\"} 1\n",              // not one group
        "a 1\na 2\n",                            // series twice
        "a{l=\"x\",l=\"y\"} 1\n",                // label twice
        "1a 1\n",                                // metric name
        "a{1l=\"x\"} 1\n",                       // label name
        "a{__l=\"x\"} 1\n",                      // reserved label name
        "a{l=\"x\\t\"} 1\n",                     // escape
        "a{l=\"x} 1\n",                          // unclosed value
        "a{l=x} 1\n",                            // unquoted value
        "a one\n",                               // value
        "a 1 2 3\n",                             // trailing text
        "a 1 now\n",                             // timestamp
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

/// Every family `prometheus()` writes: name and type.
fn expected_families() -> BTreeMap<&'static str, &'static str> {
    let mut f = BTreeMap::from([
        ("hotpool_pool_info", "gauge"),
        ("hotpool_pool_object_size_bytes", "gauge"),
        ("hotpool_pool_slot_size_bytes", "gauge"),
        ("hotpool_pool_chunk_size_bytes", "gauge"),
        ("hotpool_pool_chunks", "gauge"),
        ("hotpool_pool_held_bytes", "gauge"),
        ("hotpool_pool_objects_capacity", "gauge"),
        ("hotpool_pool_objects_in_use", "gauge"),
        ("hotpool_pool_objects_free", "gauge"),
        ("hotpool_pool_threads", "gauge"),
        ("hotpool_pool_batches_to_depot_total", "counter"),
        ("hotpool_pool_batches_from_depot_total", "counter"),
        ("hotpool_pool_depot_contention_total", "counter"),
        ("hotpool_pool_chunks_made_total", "counter"),
        ("hotpool_pool_chunks_released_total", "counter"),
        ("hotpool_handle_slots", "gauge"),
        ("hotpool_handle_table_bytes", "gauge"),
    ]);
    if cfg!(target_os = "linux") {
        f.extend([
            ("hotpool_arena_allocated_bytes", "gauge"),
            ("hotpool_arena_active_bytes", "gauge"),
            ("hotpool_arena_resident_bytes", "gauge"),
            ("hotpool_arena_mapped_bytes", "gauge"),
            ("hotpool_arena_metadata_bytes", "gauge"),
            ("hotpool_arena_dirty_bytes", "gauge"),
            ("hotpool_arena_tcache_bytes", "gauge"),
            ("hotpool_arena_depot_bytes", "gauge"),
            ("hotpool_arena_tcache_reclaimed_bytes_total", "counter"),
            ("hotpool_arena_purged_bytes_total", "counter"),
            ("hotpool_arena_arenas", "gauge"),
            ("hotpool_arena_arenas_open", "gauge"),
            ("hotpool_arena_huge_allocations_total", "counter"),
            ("hotpool_arena_huge_frees_total", "counter"),
            ("hotpool_arena_class_allocations_total", "counter"),
            ("hotpool_arena_class_frees_total", "counter"),
            ("hotpool_arena_class_objects", "gauge"),
            ("hotpool_arena_class_cached_objects", "gauge"),
            ("hotpool_arena_class_parked_objects", "gauge"),
            ("hotpool_process_resident_bytes", "gauge"),
        ]);
    }
    f
}

#[test]
fn every_family_is_well_formed_and_named_by_the_conventions() {
    let _serial = serial();
    static FRAMES: Pool<[u8; 40]> = Pool::with_config(PoolConfig::new().name("prom_frames"));
    let f = FRAMES.alloc([0; 40]);
    let text = stats::prometheus();
    let e = parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    let found: BTreeMap<&str, &str> = e
        .families
        .iter()
        .map(|(name, f)| (name.as_str(), f.kind.as_deref().unwrap_or("none")))
        .collect();
    assert_eq!(found, expected_families());
    for (name, family) in &e.families {
        assert!(
            family.help.as_deref().is_some_and(|h| !h.is_empty()),
            "{name}: no HELP"
        );
        assert!(family.samples > 0, "{name}: no sample");
        assert!(!name.contains(':'), "{name}: ':' is for recording rules");
        let counter = family.kind.as_deref() == Some("counter");
        assert_eq!(
            name.ends_with("_total"),
            counter,
            "{name}: `_total` iff counter"
        );
    }
    // HELP then TYPE come first in each family, before its samples.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line
            .strip_prefix("# HELP ")
            .map(|l| l.split(' ').next().unwrap())
        {
            assert!(
                lines[i + 1].starts_with(&format!("# TYPE {name} ")),
                "{line}"
            );
            assert!(lines[i + 2].starts_with(name), "{line}");
        }
    }
    // Each pool appears once per per-pool family (three times, one per
    // list, in the free objects).
    let pools = stats::pools();
    for (name, _) in expected_families()
        .iter()
        .filter(|(n, _)| n.starts_with("hotpool_pool_"))
    {
        let per_pool = if *name == "hotpool_pool_objects_free" {
            3
        } else {
            1
        };
        assert_eq!(e.families[*name].samples, pools.len() * per_pool, "{name}");
    }
    drop(f);
}

/// The exposition together with `figures()` taken just before and just
/// after it, equal. The previous test's thread may still be flushing its
/// caches at exit (after it released `SERIAL`), so a snapshot that moved
/// meanwhile is taken again.
fn consistent<T: PartialEq>(figures: impl Fn() -> T) -> (Exposition, T) {
    loop {
        let before = figures();
        let e = parse(&stats::prometheus()).unwrap();
        if figures() == before {
            return (e, before);
        }
    }
}

#[test]
fn pool_figures_match_pools_with_known_counts() {
    let _serial = serial();
    static ORDERS: Pool<[u64; 8]> = Pool::with_config(PoolConfig::new().name("prom_orders"));
    let mut orders: Vec<_> = (0..10).map(|i| ORDERS.alloc([i; 8])).collect();
    orders.truncate(7);
    // Two pools with one name; a name with every character the format escapes.
    let twin_a: Pool<[u8; 24]> = Pool::with_config(PoolConfig::new().name("prom_twin"));
    let twin_b: Pool<[u8; 24]> = Pool::with_config(PoolConfig::new().name("prom_twin"));
    static ODD: Pool<u32> = Pool::with_config(PoolConfig::new().name("prom \"odd\"\\name\nline 2"));
    let a = twin_a.alloc([1; 24]);
    let b = (twin_b.alloc([2; 24]), twin_b.alloc([3; 24]));
    let odd = ODD.alloc(5);

    let (e, pools) = consistent(stats::pools);

    let in_use = e.by_label("hotpool_pool_objects_in_use", "pool");
    assert_eq!(in_use["prom_orders"], 7.0);
    let (ida, idb) = (twin_a.stats().id, twin_b.stats().id);
    assert_eq!(in_use[&format!("prom_twin #{ida}")], 1.0);
    assert_eq!(in_use[&format!("prom_twin #{idb}")], 2.0);
    assert_eq!(in_use["prom \"odd\"\\name\nline 2"], 1.0);
    assert!(!in_use.contains_key("prom_twin"));
    assert_eq!(
        e.get("hotpool_pool_object_size_bytes", &[("pool", "prom_orders")]),
        64.0
    );
    assert_eq!(
        e.get(
            "hotpool_pool_info",
            &[
                ("pool", "prom_orders"),
                ("type", "[u64; 8]"),
                ("id", &ORDERS.stats().id.to_string())
            ]
        ),
        1.0
    );

    // Every figure of every pool, as `pools()` has it.
    assert_eq!(in_use.len(), pools.len());
    for p in &pools {
        let l = [("pool", p.name.as_str())];
        let figures = [
            ("hotpool_pool_object_size_bytes", p.object_size as u64),
            ("hotpool_pool_slot_size_bytes", p.slot_size as u64),
            ("hotpool_pool_chunk_size_bytes", p.chunk_size as u64),
            ("hotpool_pool_chunks", p.chunks as u64),
            ("hotpool_pool_held_bytes", p.bytes_held as u64),
            ("hotpool_pool_objects_capacity", p.capacity as u64),
            ("hotpool_pool_objects_in_use", p.in_use as u64),
            ("hotpool_pool_threads", p.threads as u64),
            ("hotpool_pool_batches_to_depot_total", p.batches_to_depot),
            (
                "hotpool_pool_batches_from_depot_total",
                p.batches_from_depot,
            ),
            ("hotpool_pool_depot_contention_total", p.depot_contention),
            ("hotpool_pool_chunks_made_total", p.chunks_made),
            ("hotpool_pool_chunks_released_total", p.chunks_released),
        ];
        for (name, value) in figures {
            assert_eq!(e.get(name, &l), value as f64, "{name} of {}", p.name);
        }
        for (place, value) in [
            ("local", p.local_free),
            ("depot", p.depot_free),
            ("chunk", p.chunk_free),
        ] {
            let l = [("pool", p.name.as_str()), ("where", place)];
            assert_eq!(
                e.get("hotpool_pool_objects_free", &l),
                value as f64,
                "{place} of {}",
                p.name
            );
        }
        let id = p.id.to_string();
        let info = [
            ("pool", p.name.as_str()),
            ("type", p.type_name),
            ("id", id.as_str()),
        ];
        assert_eq!(e.get("hotpool_pool_info", &info), 1.0);
    }
    drop((orders, a, b, odd));
}

#[test]
fn handle_figures_match_the_table() {
    let _serial = serial();
    let before = parse(&stats::prometheus()).unwrap();
    let held: Vec<Shared<u64>> = (0..4).map(Shared::new).collect();
    let e = parse(&stats::prometheus()).unwrap();
    let h = handle::stats();
    let slots = e.by_label("hotpool_handle_slots", "state");
    assert_eq!(slots["in_use"], h.slots_in_use as f64);
    assert_eq!(slots["free"], h.slots_free as f64);
    assert_eq!(slots["retired"], h.slots_retired as f64);
    assert_eq!(e.get("hotpool_handle_table_bytes", &[]), h.bytes as f64);
    let in_use_before = before.get("hotpool_handle_slots", &[("state", "in_use")]);
    assert_eq!(slots["in_use"], in_use_before + 4.0);
    drop(held);
}

#[cfg(target_os = "linux")]
#[test]
fn arena_figures_match_the_arena_with_known_counts() {
    let _serial = serial();
    let class = [("size", "112"), ("kind", "small")];
    let before = parse(&stats::prometheus()).unwrap();
    let blocks: Vec<_> = (0..3)
        .map(|_| hotpool::arena::try_alloc(100, 8).unwrap())
        .collect();
    let (e, s) = consistent(hotpool::arena::stats);
    let delta = |name: &str| e.get(name, &class) - before.get(name, &class);
    assert_eq!(delta("hotpool_arena_class_objects"), 3.0);
    assert_eq!(delta("hotpool_arena_class_allocations_total"), 3.0);
    assert_eq!(delta("hotpool_arena_class_frees_total"), 0.0);

    for (name, value) in [
        ("hotpool_arena_allocated_bytes", s.allocated as u64),
        ("hotpool_arena_active_bytes", s.active as u64),
        ("hotpool_arena_resident_bytes", s.resident as u64),
        ("hotpool_arena_mapped_bytes", s.mapped as u64),
        ("hotpool_arena_metadata_bytes", s.metadata as u64),
        ("hotpool_arena_dirty_bytes", s.dirty as u64),
        ("hotpool_arena_tcache_bytes", s.tcache_bytes as u64),
        ("hotpool_arena_depot_bytes", s.depot_bytes as u64),
        (
            "hotpool_arena_tcache_reclaimed_bytes_total",
            s.tcache_reclaimed,
        ),
        ("hotpool_arena_purged_bytes_total", s.purged),
        ("hotpool_arena_arenas", s.narenas as u64),
        ("hotpool_arena_arenas_open", s.arenas_open as u64),
        ("hotpool_arena_huge_allocations_total", s.huge_nmalloc),
        ("hotpool_arena_huge_frees_total", s.huge_nfree),
    ] {
        assert_eq!(e.get(name, &[]), value as f64, "{name}");
    }
    assert_eq!(
        e.families["hotpool_arena_class_objects"].samples,
        s.classes.len()
    );
    for c in &s.classes {
        let size = c.size.to_string();
        let l = [
            ("size", size.as_str()),
            ("kind", if c.small { "small" } else { "large" }),
        ];
        assert_eq!(
            e.get("hotpool_arena_class_allocations_total", &l),
            c.nmalloc as f64
        );
        assert_eq!(e.get("hotpool_arena_class_frees_total", &l), c.nfree as f64);
        assert_eq!(e.get("hotpool_arena_class_objects", &l), c.current as f64);
        assert_eq!(
            e.get("hotpool_arena_class_cached_objects", &l),
            c.cached as f64
        );
        assert_eq!(
            e.get("hotpool_arena_class_parked_objects", &l),
            c.parked as f64
        );
    }
    assert!(e.get("hotpool_process_resident_bytes", &[]) > 0.0);

    for p in blocks {
        // SAFETY: each block from `try_alloc` above, freed once.
        unsafe { hotpool::arena::free(p) };
    }
    let after = parse(&stats::prometheus()).unwrap();
    let freed = |name: &str| after.get(name, &class) - e.get(name, &class);
    assert_eq!(freed("hotpool_arena_class_frees_total"), 3.0);
    assert_eq!(freed("hotpool_arena_class_objects"), -3.0);
}

/// Sends `request` to the server at `addr` and returns the whole answer.
fn ask(addr: std::net::SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn the_router_example_serves_the_metrics_at_get_metrics_only() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    metrics_server::spawn(listener, || "# HELP x X.\n# TYPE x gauge\nx 1\n".to_owned()).unwrap();

    let ok = ask(addr, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = ok.split_once("\r\n\r\n").unwrap();
    let head: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert!(head.contains(&"Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert!(head.contains(&format!("Content-Length: {}", body.len()).as_str()));
    assert_eq!(body, "# HELP x X.\n# TYPE x gauge\nx 1\n");

    for request in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET /metricsx HTTP/1.1\r\n\r\n",
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "nonsense\r\n\r\n",
    ] {
        let answer = ask(addr, request);
        assert!(
            answer.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{request:?}: {answer}"
        );
    }
    // A query string is not part of the path.
    assert!(ask(addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn the_router_example_serves_prometheus_text_that_parses() {
    let _serial = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    metrics_server::spawn(listener, stats::prometheus).unwrap();
    let answer = ask(addr, "GET /metrics HTTP/1.1\r\n\r\n");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let e = parse(body).unwrap();
    assert_eq!(e.families.len(), expected_families().len());
}
