//! The layer rule of ARCHITECTURE.md, enforced: every `crate::` path in
//! `src/` names a module of the same layer or a lower one. Layers, lowest
//! first:
//!
//! | rank | modules |
//! |---|---|
//! | 0 | `sys`, `sync`, `list`, `error`, `testing`, `valgrind` (the OS and leaf types) |
//! | 1 | `report` (the one report writer) |
//! | 2 | `config` (the `HOTPOOL_CONF` parser) |
//! | 3 | `debug`, `checks` (debug modes; the checks every layer shares) |
//! | 4 | `arena/` |
//! | 5 | `pool/` |
//! | 6 | `handle/` |
//! | 7 | `stats` (the public statistics, over pools and arena) |
//!
//! `lib.rs` is the root and may name anything. A lower layer that must
//! call up (a report, an exit hook) exposes a registration function that
//! the upper layer calls (`arena::set_report_hook`, `debug::set_leak_report`).
//! Comments are not read, so doc links may point anywhere.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The rank of a top-level name under `crate::`; `None` for a name this
/// test does not know (a new module must be placed in a layer here).
fn rank_of(name: &str) -> Option<u8> {
    Some(match name {
        "sys" | "sync" | "list" | "error" | "testing" | "valgrind" | "AllocError" => 0,
        "report" => 1,
        "config" => 2,
        "debug" | "checks" => 3,
        "arena" | "HotAlloc" => 4,
        "pool" | "Pool" | "Pooled" | "PoolConfig" | "Backing" | "unsize" => 5,
        "handle" | "Shared" | "Weak" => 6,
        "stats" => 7,
        _ => return None,
    })
}

/// The rank of the file at `rel` (relative to `src/`); `None` for the root.
fn rank_of_file(rel: &Path) -> Option<u8> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" {
        return None;
    }
    let module = first.strip_suffix(".rs").unwrap_or(first);
    Some(rank_of(module).unwrap_or_else(|| {
        panic!(
            "src/{}: module `{module}` has no layer in tests/layers.rs",
            rel.display()
        )
    }))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with every `//` comment blanked (string literals holding `//`
/// do not occur in `src/`'s `crate::` lines), newlines kept.
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level names after each `crate::` in `code`, with their line
/// numbers (1-based): `crate::a::b` gives `a`; `crate::{a::x, b}` gives
/// `a` and `b`.
fn crate_names(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `hotpool_crate::`, not ours
        }
        let line = code[..at].matches('\n').count() + 1;
        if bytes.get(from) == Some(&b'{') {
            let mut depth = 0;
            let mut start = from + 1;
            for (j, &b) in bytes.iter().enumerate().skip(from) {
                match b {
                    b'{' => depth += 1,
                    b'}' | b',' if depth == 1 => {
                        let name = code[start..j].trim().split("::").next().unwrap_or("");
                        if !name.is_empty() {
                            out.push((line, name.to_string()));
                        }
                        start = j + 1;
                        if b == b'}' {
                            break;
                        }
                    }
                    b'}' => depth -= 1,
                    _ => {}
                }
            }
        } else {
            let name: String = code[from..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((line, name));
        }
    }
    out
}

#[test]
fn no_module_imports_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "src/ not found at {}", src.display());
    let mut bad = Vec::new();
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let Some(rank) = rank_of_file(rel) else {
            continue;
        };
        let text = fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (line, name) in crate_names(&strip_comments(&text)) {
            let ok = match rank_of(&name) {
                Some(r) => r <= rank,
                None => false,
            };
            if !ok {
                bad.push(format!(
                    "src/{}:{line}: `crate::{name}` (layer {:?}) from layer {rank}: {}",
                    rel.display(),
                    rank_of(&name),
                    lines[line - 1].trim()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layer rule (ARCHITECTURE.md):\n{}",
        bad.join("\n")
    );
}

/// The parser finds what it must, so the rule above is not vacuous.
#[test]
fn the_import_parser_sees_paths_and_groups() {
    let code = "use crate::pool::X;\n// crate::stats::y\nuse crate::{arena::{a, b}, sys};\nlet v = crate::stats::f();";
    let names = crate_names(&strip_comments(code));
    let got: BTreeMap<usize, Vec<&str>> = names.iter().fold(BTreeMap::new(), |mut m, (l, n)| {
        m.entry(*l).or_default().push(n.as_str());
        m
    });
    let want: BTreeMap<usize, Vec<&str>> = [
        (1, vec!["pool"]),
        (3, vec!["arena", "sys"]),
        (4, vec!["stats"]),
    ]
    .into();
    assert_eq!(got, want);
}
