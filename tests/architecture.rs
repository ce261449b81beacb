//! The shape of the library, checked on every test run (docs/architecture.md describes it):
//!
//! - no import cycle between sibling modules, at any level of the module tree;
//! - no module of a lower layer imports one of a higher layer (disk never imports profile);
//! - the library neither prints nor reads the environment nor ends the process: that is
//!   the binary's work, and `src/edge.rs`'s.
//!
//! The sources are read as text (`src/**/*.rs`): comments, string literals and
//! `#[cfg(test)]` items are left out, `use crate::…`/`super::…`/`self::…` trees are expanded
//! and every `crate::a::b`/`super::…` path in the code counts as an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module imports only modules of its own layer (without
/// cycles) or of lower layers.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "input", "digest", "entropy", "edge", "progress", "guard", "cleanup", "invoker", "ui",
        ],
    ),
    ("storage", &["disk", "bootfs", "rootfs", "osinfo", "image"]),
    (
        "sources and outputs",
        &[
            "fetch",
            "catalog",
            "cache",
            "sink",
            "device",
            "remote",
            "kubeconfig",
            "status",
        ],
    ),
    ("stacks", &["engine", "ci"]),
    ("profile", &["profile"]),
    ("plan", &["plan"]),
    ("render", &["render"]),
    ("pipeline", &["pipeline"]),
    ("wizard", &["wizard"]),
];

/// Files of the binary (relative to `src/`): they may print, read the environment and exit.
fn is_binary(rel: &Path) -> bool {
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy());
    matches!(
        first.as_deref(),
        Some("main.rs" | "cli.rs" | "error.rs" | "commands" | "term" | "bin")
    )
}

/// Where a file of the library may use what the rest of it must not.
const EDGE: &str = "edge.rs";

/// What the library must not contain (outside [`EDGE`]).
const FORBIDDEN: &[&str] = &[
    "println!",
    "eprintln!",
    "print!",
    "eprint!",
    "dbg!",
    // std::env::var, var_os, vars, vars_os, whether written in full or after `use std::env`.
    "env::var",
    "env::args",
    "env::home_dir",
    "env::temp_dir",
    "process::exit",
    "process::abort",
];

type ModPath = Vec<String>;

struct Source {
    /// Relative to `src/`.
    rel: PathBuf,
    module: ModPath,
    /// The code with comments, literals and `#[cfg(test)]` items blanked out.
    code: String,
}

fn src_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The library's files, with their test-only modules in other files left out.
fn library() -> Vec<Source> {
    let root = src_dir();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut sources = Vec::new();
    let mut test_files = BTreeSet::new();
    for path in files {
        let rel = path.strip_prefix(&root).unwrap().to_path_buf();
        if is_binary(&rel) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (code, test_modules) = without_tests(&code_only(&text));
        // `#[cfg(test)] mod tests;` in a/b/mod.rs (or a/b.rs) is a/b/tests.rs.
        let dir = if rel
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            rel.parent().unwrap().to_path_buf()
        } else {
            rel.with_extension("")
        };
        for name in test_modules {
            test_files.insert(dir.join(format!("{name}.rs")));
            test_files.insert(dir.join(&name).join("mod.rs"));
        }
        sources.push(Source {
            module: module_of(&rel),
            rel,
            code,
        });
    }
    sources.retain(|s| !test_files.contains(&s.rel));
    sources
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `text` with comments and the contents of string and character literals replaced by
/// spaces (line breaks kept, so that line numbers stay true).
fn code_only(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && is_ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if !prev_ident && (c[i] == 'r' || (c[i] == 'b' && c.get(i + 1) == Some(&'r'))) && {
            let mut j = i + if c[i] == 'b' { 2 } else { 1 };
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            c.get(j) == Some(&'"')
        } {
            // A raw string: r"…", r#"…"#, br"…".
            while c[i] != '#' && c[i] != '"' {
                out.push(c[i]);
                i += 1;
            }
            let mut hashes = 0;
            while c[i] == '#' {
                hashes += 1;
                out.push(' ');
                i += 1;
            }
            out.push('"');
            i += 1;
            while i < c.len() {
                if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                    out.push('"');
                    for _ in 0..hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '"' {
            out.push('"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c[i] == '\'' && (c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '\u{…}'), not a lifetime.
            out.push('\'');
            i += 1;
            while i < c.len() && c[i] != '\'' {
                if c[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < c.len() {
                    out.push(' ');
                    i += 1;
                }
            }
            out.push('\'');
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// `code` with every `#[cfg(test)]` item blanked, and the names of the test modules kept
/// in other files (`#[cfg(test)] mod tests;`).
fn without_tests(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut c: Vec<char> = code.chars().collect();
    let mut external = Vec::new();
    let text: String = c.iter().collect();
    let starts: Vec<usize> = text
        .match_indices(ATTR)
        .map(|(byte, _)| text[..byte].chars().count())
        .collect();
    for start in starts.into_iter().rev() {
        let mut i = start + ATTR.chars().count();
        let item: String = c[i..].iter().take(200).collect();
        let words: Vec<&str> = item.split_whitespace().take(3).collect();
        let is_mod = words.first() == Some(&"mod")
            || (words.first().is_some_and(|w| w.starts_with("pub"))
                && words.get(1) == Some(&"mod"));
        // The item ends at its first `;` outside braces, or at the brace closing its body.
        let mut depth = 0usize;
        let mut braced = false;
        while i < c.len() {
            match c[i] {
                '{' => {
                    depth += 1;
                    braced = true;
                }
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 && braced {
                        break;
                    }
                }
                ';' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        if is_mod && !braced {
            let name_word = if words[0] == "mod" {
                words.get(1)
            } else {
                words.get(2)
            };
            if let Some(name) = name_word {
                external.push(name.trim_end_matches(';').to_string());
            }
        }
        let end = (i + 1).min(c.len());
        for ch in &mut c[start..end] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    }
    (c.into_iter().collect(), external)
}

/// The paths a `use` tree names: `a::{b, c::{d, e as f}}` gives a::b, a::c::d, a::c::e.
fn expand_use(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    let split = |s: &str| -> Vec<String> {
        s.split("::")
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    if let (Some(open), Some(close)) = (tree.find('{'), tree.rfind('}')) {
        let mut head = prefix.to_vec();
        head.extend(split(tree[..open].trim_end_matches(':')));
        let mut depth = 0;
        let mut cur = String::new();
        for ch in tree[open + 1..close].chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if ch == ',' && depth == 0 {
                expand_use(&head, &cur, out);
                cur.clear();
            } else {
                cur.push(ch);
            }
        }
        expand_use(&head, &cur, out);
    } else {
        let name = tree.split(" as ").next().unwrap_or(tree);
        let mut path = prefix.to_vec();
        path.extend(split(name));
        out.push(path);
    }
}

/// `path` (crate::…, super::…, self::…) as a path from the crate root, seen from `module`.
fn absolute(module: &ModPath, path: &[String]) -> Option<ModPath> {
    match path.first().map(String::as_str) {
        Some("crate") => Some(path[1..].to_vec()),
        Some("super" | "self") => {
            let mut cur = module.clone();
            let mut rest = path;
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        cur.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            cur.extend(rest.iter().cloned());
            Some(cur)
        }
        _ => None,
    }
}

/// The line of `code` at char offset `at`.
fn line_at(code: &str, byte: usize) -> usize {
    code[..byte].matches('\n').count() + 1
}

/// Every path to another part of the crate named in `code`, with its line.
fn references(module: &ModPath, code: &str) -> Vec<(ModPath, usize)> {
    let mut refs = Vec::new();
    // use trees
    for (at, _) in code.match_indices("use") {
        let before = code[..at].chars().next_back();
        let after = code[at + 3..].chars().next();
        if before.is_some_and(is_ident) || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        let rest = code[at + 3..].trim_start();
        if !["crate", "super", "self"]
            .iter()
            .any(|k| rest.starts_with(k) && !rest[k.len()..].starts_with(is_ident))
        {
            continue;
        }
        let Some(end) = rest.find(';') else { continue };
        let mut paths = Vec::new();
        expand_use(&[], &rest[..end], &mut paths);
        for path in paths {
            if let Some(abs) = absolute(module, &path) {
                refs.push((abs, line_at(code, at)));
            }
        }
    }
    // paths in the code: crate::a::b, super::c
    for key in ["crate::", "super::"] {
        for (at, _) in code.match_indices(key) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let mut path = Vec::new();
            let mut rest = &code[at..];
            loop {
                let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                if len == 0 {
                    break;
                }
                path.push(rest[..len].to_string());
                rest = &rest[len..];
                match rest.strip_prefix("::") {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            if let Some(abs) = absolute(module, &path) {
                refs.push((abs, line_at(code, at)));
            }
        }
    }
    refs
}

/// An import between sibling modules, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: ModPath,
    to: ModPath,
}

/// The sibling edges of the library, each with the places (file:line) that make it.
fn graph(sources: &[Source]) -> BTreeMap<Edge, BTreeSet<String>> {
    let known: BTreeSet<ModPath> = sources.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<Edge, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let m = &s.module;
        for (r, line) in references(m, &s.code) {
            let Some(t) = (1..=r.len())
                .rev()
                .map(|k| r[..k].to_vec())
                .find(|p| known.contains(p))
            else {
                continue;
            };
            let common = m.iter().zip(&t).take_while(|(a, b)| a == b).count();
            if common == m.len() || common == t.len() {
                continue; // a module and its own parent or child
            }
            edges
                .entry(Edge {
                    from: m[..=common].to_vec(),
                    to: t[..=common].to_vec(),
                })
                .or_default()
                .insert(format!("src/{}:{line}", s.rel.display()));
        }
    }
    edges
}

fn name(m: &ModPath) -> String {
    m.join("::")
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Edge, BTreeSet<String>>) -> Vec<Vec<ModPath>> {
    let mut next: BTreeMap<&ModPath, Vec<&ModPath>> = BTreeMap::new();
    for e in edges.keys() {
        next.entry(&e.from).or_default().push(&e.to);
        next.entry(&e.to).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(
        v: &'a ModPath,
        next: &BTreeMap<&'a ModPath, Vec<&'a ModPath>>,
        s: &mut State<'a>,
    ) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &next[v] {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in next.keys() {
        if !state.index.contains_key(v) {
            visit(v, &next, &mut state);
        }
    }
    state.found
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&top))
}

fn places(at: &BTreeSet<String>) -> String {
    let list: Vec<&str> = at.iter().map(String::as_str).take(3).collect();
    let more = at.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", list.join(", "))
    } else {
        list.join(", ")
    }
}

#[test]
fn no_import_cycle_between_sibling_modules() {
    let edges = graph(&library());
    let mut problems = Vec::new();
    for component in cycles(&edges) {
        let members: BTreeSet<&ModPath> = component.iter().collect();
        let mut text = format!(
            "cycle between {}:",
            component.iter().map(name).collect::<Vec<_>>().join(", ")
        );
        for (e, at) in &edges {
            if members.contains(&e.from) && members.contains(&e.to) {
                text.push_str(&format!(
                    "\n    {} -> {} ({})",
                    name(&e.from),
                    name(&e.to),
                    places(at)
                ));
            }
        }
        problems.push(text);
    }
    assert!(
        problems.is_empty(),
        "import cycles:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn no_lower_layer_imports_a_higher_one() {
    let sources = library();
    let mut problems = Vec::new();
    let tops: BTreeSet<&str> = sources
        .iter()
        .filter_map(|s| s.module.first().map(String::as_str))
        .collect();
    for top in tops {
        if layer_of(top).is_none() {
            problems.push(format!(
                "module {top} has no layer: move it into one (or add it to LAYERS in tests/architecture.rs and docs/architecture.md)"
            ));
        }
    }
    for (e, at) in graph(&sources) {
        if e.from.len() != 1 {
            continue;
        }
        let (Some(from), Some(to)) = (layer_of(&e.from[0]), layer_of(&e.to[0])) else {
            continue;
        };
        if from < to {
            problems.push(format!(
                "{} ({}) imports {} ({}) at {}",
                name(&e.from),
                LAYERS[from].0,
                name(&e.to),
                LAYERS[to].0,
                places(&at)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "layering:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_library_neither_prints_nor_reads_the_environment_nor_exits() {
    let mut problems = Vec::new();
    for s in library() {
        if s.rel == Path::new(EDGE) {
            continue;
        }
        // Each place once: `std::env::var_os` is not also reported as `env::var_os`.
        let mut found: BTreeMap<usize, (usize, &str)> = BTreeMap::new();
        for pattern in FORBIDDEN {
            for (at, _) in s.code.match_indices(pattern) {
                let before = s.code[..at].chars().next_back();
                // `print!` is not inside `eprint!`.
                if before.is_some_and(is_ident) {
                    continue;
                }
                let end = at + pattern.len();
                if found.iter().any(|(&a, &(e, _))| a < end && at < e) {
                    continue;
                }
                found.insert(at, (end, pattern));
            }
        }
        for (at, (_, pattern)) in found {
            problems.push(format!(
                "src/{}:{}: {pattern}",
                s.rel.display(),
                line_at(&s.code, at)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the library prints, reads the environment or exits outside src/edge.rs (the binary or \
         pinode::edge does that):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_reader_sees_code_not_comments_strings_or_tests() {
    let code = code_only(
        "let a = \"crate::x println!\"; // crate::y\n/* eprintln! /* nested */ */ let b = 'c';\nlet r = r#\"dbg!\"#; fn f<'a>() {}\n#[cfg(test)]\nmod tests { use crate::z; }\n",
    );
    assert!(
        !code.contains("crate::x") && !code.contains("crate::y"),
        "{code}"
    );
    assert!(!code.contains("println") && !code.contains("eprintln") && !code.contains("dbg"));
    assert!(code.contains("fn f<'a>()"), "{code}");
    let (code, external) = without_tests(&code);
    assert!(!code.contains("crate::z"), "{code}");
    assert!(external.is_empty());
    let (_, external) = without_tests("#[cfg(test)]\nmod tests;\n");
    assert_eq!(external, ["tests"]);
    let mut out = Vec::new();
    expand_use(&[], "crate::a::{b, c::{d, e as f}}", &mut out);
    assert_eq!(
        out,
        [
            vec!["crate", "a", "b"],
            vec!["crate", "a", "c", "d"],
            vec!["crate", "a", "c", "e"]
        ]
    );
}
