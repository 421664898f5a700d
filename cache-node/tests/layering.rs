//! The dependency arrows between the node's source files point one way.
//!
//! Reads every file under `src/`, collects the crate-internal paths it
//! names (`crate::…`, `self::…`, `super::…`, a child module by name, in
//! `use` trees with their `{…}` groups and in code) and resolves each to the
//! file that defines it. The resulting file graph must have no cycle: the
//! layering is commands → state → keyspace, with replication and migration
//! taking the narrow handles they need, and a file that both uses and is
//! used by another is where that layering breaks.
//!
//! One kind of edge is left out: a file naming one of its ancestors
//! (`cmd/strings.rs` using `crate::cmd::Reply`, anything using the crate
//! root). A module's children are its parts, and Rust's privacy makes
//! "the part uses the whole's items" the ordinary direction; the parent
//! using its children is what the graph keeps.
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
        "crate" => {
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

fn display(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// Edges of the file graph, each with one path that made it.
type Graph = BTreeMap<ModPath, BTreeMap<ModPath, String>>;

fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    // main.rs is the binary, a crate of its own.
    files.retain(|f| {
        f.strip_prefix(root)
            .is_ok_and(|r| r != Path::new("main.rs"))
    });
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(root, f)).collect();
    let mut g = Graph::new();
    for file in &files {
        let from = module_of(root, file);
        let src = std::fs::read_to_string(file).expect("read source");
        let edges = g.entry(from.clone()).or_default();
        for path in paths_in(&src, &from, &modules) {
            let to = owner(&path, &modules);
            // Itself, or an ancestor (see the top of this file).
            if from.starts_with(&to) {
                continue;
            }
            edges.entry(to).or_insert_with(|| path.join("::"));
        }
    }
    g
}

/// One cycle of the graph, if there is any, as the files along it.
fn find_cycle(g: &Graph) -> Option<Vec<ModPath>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &ModPath,
        g: &Graph,
        marks: &mut BTreeMap<ModPath, Mark>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|m| m == n).expect("on the stack");
                let mut cycle = stack[at..].to_vec();
                cycle.push(n.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for next in g.get(n).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, g, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut marks, &mut Vec::new()))
}

/// The graph's strongly connected components of more than one file: every
/// file on some cycle, grouped by the files it cycles with.
fn tangles(g: &Graph) -> Vec<Vec<ModPath>> {
    let reach = |from: &ModPath| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in g.get(&n).into_iter().flat_map(|e| e.keys()) {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&ModPath, BTreeSet<ModPath>> = g.keys().map(|n| (n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in g.keys() {
        if done.contains(n) || !reaches[n].contains(n) {
            continue;
        }
        let scc: Vec<ModPath> = reaches[n]
            .iter()
            .filter(|m| reaches.get(m).is_some_and(|r| r.contains(n)))
            .cloned()
            .collect();
        done.extend(scc.iter().cloned());
        out.push(scc);
    }
    out
}

fn describe(g: &Graph, cycle: &[ModPath]) -> String {
    cycle
        .windows(2)
        .map(|w| {
            format!(
                "  {} -> {}   (names {})\n",
                display(&w[0]),
                display(&w[1]),
                g[&w[0]][&w[1]]
            )
        })
        .collect()
}

#[test]
fn source_files_have_no_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&root);
    assert!(
        g.len() > 30,
        "expected the node's source files, found {}",
        g.len()
    );
    if let Some(cycle) = find_cycle(&g) {
        let all: String = tangles(&g)
            .iter()
            .map(|scc| {
                let names: Vec<String> = scc.iter().map(display).collect();
                format!("  {}\n", names.join(", "))
            })
            .collect();
        panic!(
            "cache-node/src has an import cycle through {} files:\n{}\
             every file on a cycle, by the files it cycles with:\n{all}",
            cycle.len() - 1,
            describe(&g, &cycle)
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
