//! The dependency arrows between the node's modules point one way.
//!
//! Reads every file under `src/`, collects the crate-internal paths it
//! names (`crate::…`, `self::…`, `super::…`, a child module by name, in
//! `use` trees with their `{…}` groups and in code) and resolves each to the
//! file that defines it, then to that file's top-level module (`cmd/keys.rs`
//! → `cmd`; `lib.rs` → the crate root, `crate`; `main.rs`, the binary, →
//! `main`, its `cache_node::` paths read as `crate::`). Each top-level
//! module has a rank in [`RANKS`], and every edge between two of them must
//! go from a higher rank to a strictly lower one: commands → state →
//! keyspace, with replication and migration below the state they are
//! handed. Items in the crate root count as the root module, which sits
//! near the top (it re-exports `Node`), so nothing below may use them.
//!
//! Comments and literals are skipped, so intra-doc links do not count;
//! `#[cfg(test)]` modules do, being part of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root, e.g. `["db", "capture"]`.
type ModPath = Vec<String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// Splits Rust source into the few tokens path collection needs, skipping
/// comments, strings, chars and numbers.
fn tokenize(src: &str) -> Vec<Tok> {
    let s: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && s.get(i + 1) == Some(&'/') {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && s.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&s, i + 1);
            out.push(Tok::Other);
        } else if (c == 'r' || c == 'b') && raw_string_start(&s, i).is_some() {
            let (hashes, body) = raw_string_start(&s, i).expect("checked");
            i = body;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < s.len() && !s[i..].starts_with(&closing) {
                i += 1;
            }
            i += closing.len();
            out.push(Tok::Other);
        } else if c == 'b' && s.get(i + 1) == Some(&'"') {
            i = skip_string(&s, i + 2);
            out.push(Tok::Other);
        } else if c == 'b' && s.get(i + 1) == Some(&'\'') {
            i = skip_char(&s, i + 2);
            out.push(Tok::Other);
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if s.get(i + 1) == Some(&'\\') || s.get(i + 2) == Some(&'\'') {
                i = skip_char(&s, i + 1);
            } else {
                i += 1;
                while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                    i += 1;
                }
            }
            out.push(Tok::Other);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            out.push(Tok::Ident(
                word.strip_prefix("r#").unwrap_or(&word).to_string(),
            ));
        } else if c.is_ascii_digit() {
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
            out.push(Tok::Other);
        } else if c == ':' && s.get(i + 1) == Some(&':') {
            out.push(Tok::Sep);
            i += 2;
        } else {
            out.push(match c {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                ';' => Tok::Semi,
                '*' => Tok::Star,
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    out
}

/// Past the closing quote of a string whose body starts at `i`.
fn skip_string(s: &[char], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Past the closing quote of a char literal whose body starts at `i`.
fn skip_char(s: &[char], mut i: usize) -> usize {
    while i < s.len() {
        match s[i] {
            '\\' => i += 2,
            '\'' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// For `r"`, `r#"`, `br#"`…: the number of hashes and where the body starts.
fn raw_string_start(s: &[char], mut i: usize) -> Option<(usize, usize)> {
    if s[i] == 'b' {
        i += 1;
    }
    if s.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let mut hashes = 0;
    while s.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    (s.get(i) == Some(&'"')).then_some((hashes, i + 1))
}

/// The paths of a `use` tree starting at `toks[i]`, each with its prefix;
/// returns where the tree ends.
fn use_tree(toks: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(w)) => {
                path.push(w.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::Sep) {
                    i += 1;
                    continue;
                }
                // `as name` or the end of this branch.
                if toks.get(i) == Some(&Tok::Ident("as".into())) {
                    i += 2;
                }
                out.push(path);
                return i;
            }
            Some(Tok::Star) => {
                out.push(path);
                return i + 1;
            }
            Some(Tok::Open) => {
                i += 1;
                while i < toks.len() && toks[i] != Tok::Close {
                    if toks[i] == Tok::Comma {
                        i += 1;
                        continue;
                    }
                    i = use_tree(toks, i, &path, out);
                }
                return i + 1;
            }
            Some(Tok::Sep) => i += 1,
            _ => {
                if !path.is_empty() {
                    out.push(path);
                }
                return i;
            }
        }
    }
}

/// Every path a file names, made absolute (from the crate root), paired
/// with the module it was named in.
fn paths_in(src: &str, file_mod: &ModPath, modules: &BTreeSet<ModPath>) -> Vec<Vec<String>> {
    let toks = tokenize(src);
    // Inline modules (`mod tests { … }`) shift what `self`/`super` mean.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut found = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let here: ModPath = file_mod
            .iter()
            .cloned()
            .chain(stack.iter().map(|(m, _)| m.clone()))
            .collect();
        match &toks[i] {
            Tok::Open => {
                depth += 1;
                i += 1;
            }
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if stack.last().is_some_and(|&(_, d)| d == depth) {
                    stack.pop();
                }
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    stack.push((name.clone(), depth));
                }
                i += 1;
            }
            Tok::Ident(w) if w == "use" => {
                let mut raw = Vec::new();
                i = use_tree(&toks, i + 1, &[], &mut raw);
                found.extend(raw.iter().filter_map(|p| absolute(p, &here, modules)));
            }
            Tok::Ident(_) if i == 0 || toks[i - 1] != Tok::Sep => {
                let mut path = Vec::new();
                while let Some(Tok::Ident(w)) = toks.get(i) {
                    path.push(w.clone());
                    i += 1;
                    match (toks.get(i), toks.get(i + 1)) {
                        (Some(Tok::Sep), Some(Tok::Ident(_))) => i += 1,
                        _ => break,
                    }
                }
                if path.len() > 1 {
                    found.extend(absolute(&path, &here, modules));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// `path` as named in module `here`, from the crate root; `None` for paths
/// outside the crate (std, dependencies, locals).
fn absolute(path: &[String], here: &ModPath, modules: &BTreeSet<ModPath>) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base: Vec<String>;
    let mut rest = path;
    match first.as_str() {
        // `cache_node::` is how the binary (`main.rs`) names the library.
        "crate" | "cache_node" => {
            base = Vec::new();
            rest = &path[1..];
        }
        "self" => {
            base = here.clone();
            rest = &path[1..];
        }
        "super" => {
            base = here.clone();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => {
            // A child module named without a prefix (`capture::Capture` in
            // `db/mod.rs`).
            let mut child = here.clone();
            child.push(first.clone());
            if !modules.contains(&child) {
                return None;
            }
            base = here.clone();
        }
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The file module that defines `path`: its longest prefix that is a file.
fn owner(path: &[String], modules: &BTreeSet<ModPath>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `db/mod.rs` → `["db"]`, `db/capture.rs` → `["db", "capture"]`, `lib.rs` → `[]`.
fn module_of(root: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(root).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    let root_file = parts.is_empty() && stem == "lib";
    if stem != "mod" && !root_file {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level module a file module belongs to; `crate` for the root.
fn top(m: &ModPath) -> &str {
    m.first().map_or("crate", String::as_str)
}

/// Each top-level module's rank, lowest first, and why it sits there.
/// Every edge between two modules goes from a higher rank to a strictly
/// lower one; modules of one rank do not use each other.
const RANKS: &[(u32, &[&str], &str)] = &[
    (
        0,
        &[
            "background",
            "clock",
            "cluster",
            "cpu",
            "evict",
            "frame",
            "glob",
            "hll",
            "ident",
            "memory",
            "parse",
            "slowlog",
            "types",
        ],
        "leaves: values, encodings, pure rules, the bulk thread; they name nothing else here",
    ),
    (
        1,
        &["config", "db"],
        "config names evict's policies; the keyspace holds types' values, applies evict, reads clock and memory",
    ),
    (
        2,
        &["client", "tls", "replication", "migration", "rdb"],
        "a connection's state (db's wake signals, frame, parse); tls loads config's files; \
         replication and migration, whose tasks get the keyspace and topology cells (Handles), not the state; \
         rdb encodes and decodes the keyspace's values",
    ),
    (
        3,
        &["pubsub", "snapshot"],
        "subscriptions deliver to clients' handles; snapshots capture the keyspace into rdb on background's threads",
    ),
    (
        4,
        &["state"],
        "the node's state holds the keyspace, topology, clients, pub/sub, replication's and migrations' cells",
    ),
    (
        5,
        &["cmd"],
        "the command table and its handlers, on the state",
    ),
    (
        6,
        &["server", "http"],
        "the connection loop runs commands; HTTP reads the state",
    ),
    (
        7,
        &["node"],
        "a running node starts the loops and replication's tick on one state",
    ),
    (
        8,
        &["crate"],
        "lib.rs: module declarations and the re-export of Node, no items of its own",
    ),
    (
        9,
        &["main"],
        "the binary: flags, allocator, a Node until a signal",
    ),
];

/// Edges between top-level modules, each with one file and one path that
/// made it.
type Graph = BTreeMap<String, BTreeMap<String, (String, String)>>;

fn display(m: &ModPath) -> String {
    if m.is_empty() {
        "lib".to_string()
    } else {
        m.join("/")
    }
}

/// The module graph of the files under `root`, and every top-level module
/// found (with or without edges).
fn graph(root: &Path) -> (Graph, BTreeSet<String>) {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(root, f)).collect();
    let tops = modules.iter().map(|m| top(m).to_string()).collect();
    let mut g = Graph::new();
    for file in &files {
        let from = module_of(root, file);
        let src = std::fs::read_to_string(file).expect("read source");
        let edges = g.entry(top(&from).to_string()).or_default();
        for path in paths_in(&src, &from, &modules) {
            let to = owner(&path, &modules);
            if top(&to) == top(&from) {
                continue;
            }
            edges
                .entry(top(&to).to_string())
                .or_insert_with(|| (display(&from), path.join("::")));
        }
    }
    (g, tops)
}

#[test]
fn modules_depend_only_on_lower_ranks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (g, tops) = graph(&root);
    let rank: BTreeMap<&str, u32> = RANKS
        .iter()
        .flat_map(|(r, ms, _)| ms.iter().map(move |m| (*m, *r)))
        .collect();
    let unranked: Vec<&String> = tops
        .iter()
        .filter(|m| !rank.contains_key(m.as_str()))
        .collect();
    let stale: Vec<&&str> = rank.keys().filter(|m| !tops.contains(**m)).collect();
    assert!(
        unranked.is_empty() && stale.is_empty(),
        "modules missing from RANKS: {unranked:?}; in RANKS but not in src/: {stale:?}"
    );
    let mut wrong = String::new();
    for (from, edges) in &g {
        for (to, (file, path)) in edges {
            if rank[from.as_str()] <= rank[to.as_str()] {
                wrong += &format!(
                    "  {from} ({}) -> {to} ({})   ({file} names {path})\n",
                    rank[from.as_str()],
                    rank[to.as_str()]
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "edges that do not go from a higher rank to a strictly lower one:\n{wrong}"
    );
    // Known edges: the scan sees the code at all.
    for (from, to) in [
        ("main", "crate"),
        ("crate", "node"),
        ("node", "server"),
        ("server", "cmd"),
        ("cmd", "state"),
        ("state", "db"),
        ("db", "types"),
        ("replication", "db"),
        ("migration", "db"),
    ] {
        assert!(
            g.get(from).is_some_and(|e| e.contains_key(to)),
            "expected {from} -> {to} among the edges found: {g:#?}"
        );
    }
}

/// The scanner itself: the forms of path it must see.
#[test]
fn scanner_sees_groups_super_children_and_skips_comments() {
    let modules: BTreeSet<ModPath> = [
        vec![],
        vec!["a".to_string()],
        vec!["a".to_string(), "b".to_string()],
        vec!["a".to_string(), "c".to_string()],
        vec!["d".to_string()],
    ]
    .into_iter()
    .collect();
    let here = vec!["a".to_string(), "b".to_string()];
    let src = r#"
        //! See [`crate::d::Nope`].
        use crate::{d::{X, Y as Z}, a::c};
        use super::c::helper;
        fn f() { let s = "crate::d::InString"; crate::d::g(); }
        mod tests { use super::*; }
    "#;
    let found: BTreeSet<String> = paths_in(src, &here, &modules)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    let want: BTreeSet<String> = ["d::X", "d::Y", "a::c", "a::c::helper", "d::g", "a::b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, want);
    let parent = vec!["a".to_string()];
    let found = paths_in("use b::Thing; c::go();", &parent, &modules);
    assert_eq!(
        found,
        vec![
            vec!["a".to_string(), "b".to_string(), "Thing".to_string()],
            vec!["a".to_string(), "c".to_string(), "go".to_string()],
        ]
    );
    assert_eq!(
        owner(&found[0], &modules),
        vec!["a".to_string(), "b".to_string()]
    );
}
