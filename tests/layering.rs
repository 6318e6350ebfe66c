//! The layering rules of docs/architecture.md, checked on the source: every
//! `crate::X` / `super::…` path (and `kcache::X` in the binary) of
//! `src/**/*.rs` is resolved to the top-level module it names, and each
//! such dependency must be in [`ALLOWED`]; the search model uses no module
//! that does I/O; there is no import circle among the top-level modules,
//! nor among the files of `src/bisect/`.
//!
//! Comments and string literals are skipped; `use` groups (`{a, b::c}`)
//! and inline `mod x { … }` blocks are followed. A new top-level module
//! needs a row here: where it sits is a decision, not an accident.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the modules it may use. `vm::workdir` is the
/// harness's work-file names, a leaf of `vm` that `store`'s gc and verify
/// use: it is its own node so that `store` does not depend on the rest of
/// `vm` (which uses `kernel`, which uses `store`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("signature", &[]),
    ("key", &[]),
    ("syzlog", &[]),
    ("dirs", &[]),
    ("child", &[]),
    ("title", &[]),
    ("vm::workdir", &[]),
    ("trust", &["dirs"]),
    ("git", &["key"]),
    // `buildenv`: the build environment table and its rules; pure, the
    // repository's answers come through an oracle (`exec::environment`).
    ("buildenv", &[]),
    ("store", &["key", "signature", "trust", "vm::workdir"]),
    // `engine`: step specs, the Executor seam and Slurm; it knows keys and
    // kernels, never the evaluator (the job body is `exec::step`).
    ("engine", &["key", "signature"]),
    ("config", &["dirs", "engine", "store", "trust"]),
    ("kernel", &["key", "store"]),
    // `store`'s plain value types only: the run outcome and record a run class is read from.
    ("crash", &["store", "title"]),
    ("vm", &["kernel", "key", "title", "vm::workdir"]),
    ("search", &["crash", "key", "signature"]),
    (
        "exec",
        &[
            "buildenv",
            "child",
            "crash",
            "engine",
            "git",
            "kernel",
            "key",
            "signature",
            "store",
            "syzlog",
            "title",
            "vm",
        ],
    ),
    (
        "bisect",
        &[
            "crash",
            "exec",
            "git",
            "key",
            "search",
            "signature",
            "store",
            "syzlog",
            "title",
        ],
    ),
    ("prebuild", &["exec", "git", "key", "store"]),
    ("import", &["key", "signature", "store", "syzlog"]),
    ("judge", &["crash", "search", "signature", "syzlog"]),
    (
        "report",
        &[
            "bisect",
            "config",
            "exec",
            "import",
            "key",
            "search",
            "signature",
            "store",
            "syzlog",
            "title",
            "trust",
            "vm",
        ],
    ),
];

/// Modules that read or write files, run commands or touch the cache.
const IO: &[&str] = &["store", "git", "child", "vm", "kernel", "exec", "bisect"];

/// Submodules that count as their own node (see [`ALLOWED`]).
const LEAVES: &[&str] = &["vm::workdir"];

/// A file's path as the repository names it (`src/...`).
fn shown(file: &Path) -> String {
    file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `src/bisect/oracle/at_once.rs` is
/// `bisect::oracle::at_once`, `src/exec/mod.rs` is `exec`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The source without comments and without the contents of string and
/// char literals (a path named in a message is no dependency).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if matches!(b.get(i + 1), Some('#') | Some('"')) && (i == 0 || !is_ident(b[i - 1])) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                while j < b.len() && !(b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#'))) {
                    j += 1;
                }
                out.push_str("\"\"");
                i = j + 1 + hashes;
            }
            '"' => {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    i += if b[i] == '\\' { 2 } else { 1 };
                }
                out.push_str("\"\"");
                i += 1;
            }
            '\'' if b.get(i + 1) == Some(&'\\') => {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                out.push_str("' '");
                i += 1;
            }
            '\'' if b.get(i + 2) == Some(&'\'') => {
                out.push_str("' '");
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident_at(b: &[char], i: usize) -> (String, usize) {
    let mut j = i;
    while j < b.len() && is_ident(b[j]) {
        j += 1;
    }
    (b[i..j].iter().collect(), j)
}

/// The leading names of a path's continuation after `prefix::`: one name,
/// or each item's first name in a `{…}` group (nested groups included).
fn continuations(b: &[char], i: usize) -> Vec<Vec<String>> {
    let mut i = i;
    while i < b.len() && b[i].is_whitespace() {
        i += 1;
    }
    if b.get(i) != Some(&'{') {
        let (first, j) = ident_at(b, i);
        let mut path = vec![first];
        if b.get(j) == Some(&':') && b.get(j + 1) == Some(&':') {
            let (second, _) = ident_at(b, j + 2);
            if !second.is_empty() {
                path.push(second);
            }
        }
        return vec![path];
    }
    let (mut depth, mut j, mut item_start) = (0, i, i + 1);
    let mut out = Vec::new();
    while j < b.len() {
        match b[j] {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                out.extend(continuations(b, item_start).into_iter().filter(|p| !p[0].is_empty()));
                item_start = j + 1;
                if b[j] == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
        j += 1;
    }
    out
}

/// Every crate path a file names, resolved to an absolute module path (its
/// first two names at most), e.g. `["exec", "speculate"]`.
fn resolved_paths(file: &Path) -> Vec<Vec<String>> {
    resolve(&std::fs::read_to_string(file).unwrap(), &module_path(file))
}

/// [`resolved_paths`] of source `text` in the module `base`.
fn resolve(text: &str, base: &[String]) -> Vec<Vec<String>> {
    let text = code_only(text);
    let b: Vec<char> = text.chars().collect();
    let binary = matches!(base.first().map(String::as_str), Some("main") | Some("cli"));
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '{' {
            depth += 1;
        } else if b[i] == '}' {
            depth -= 1;
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
        }
        if !is_ident(b[i]) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let (word, j) = ident_at(&b, i);
        if word == "mod" {
            let mut k = j;
            while k < b.len() && b[k].is_whitespace() {
                k += 1;
            }
            let (name, k) = ident_at(&b, k);
            let rest: String = b[k..].iter().take_while(|c| !matches!(c, ';' | '{')).collect();
            if !name.is_empty() && rest.trim().is_empty() && b.get(k + rest.len()) == Some(&'{') {
                inline.push((name, depth));
            }
        }
        let here: Vec<String> = base
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        let (mut at, mut prefix) = (j, None);
        if (word == "crate" || (binary && word == "kcache")) && b.get(j) == Some(&':') {
            prefix = Some(Vec::new());
        } else if word == "super" && b.get(j) == Some(&':') {
            let mut up = 1;
            while b[at..].starts_with(&[':', ':', 's', 'u', 'p', 'e', 'r'])
                && !b.get(at + 7).is_some_and(|c| is_ident(*c))
            {
                up += 1;
                at += 7;
            }
            prefix = here.len().checked_sub(up).map(|n| here[..n].to_vec());
        }
        if let Some(prefix) = prefix.filter(|_| b.get(at) == Some(&':') && b.get(at + 1) == Some(&':')) {
            for tail in continuations(&b, at + 2) {
                let full: Vec<String> = prefix.iter().cloned().chain(tail).collect();
                if !full.is_empty() {
                    out.push(full.into_iter().take(2).collect());
                }
            }
        }
        i = j;
    }
    out
}

fn top_level_modules() -> BTreeSet<String> {
    let mut mods = BTreeSet::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "lib" | "main" | "cli" | "build") {
            continue;
        }
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            mods.insert(name);
        }
    }
    mods.extend(LEAVES.iter().map(|l| l.to_string()));
    mods
}

/// A module path's node: its top-level module, or a leaf of [`LEAVES`].
fn node(path: &[String]) -> String {
    let two = path.iter().take(2).cloned().collect::<Vec<_>>().join("::");
    if LEAVES.contains(&two.as_str()) {
        two
    } else {
        path[0].clone()
    }
}

/// (from, to) -> the first file that makes the edge.
fn top_level_edges() -> BTreeMap<(String, String), PathBuf> {
    let mods = top_level_modules();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let from = module_path(&file);
        if !mods.contains(&from[0]) {
            continue; // lib.rs, main.rs and cli/: the crate root and the binary may use anything
        }
        let from = node(&from);
        for path in resolved_paths(&file) {
            if mods.contains(&path[0]) && node(&path) != from {
                edges.entry((from.clone(), node(&path))).or_insert_with(|| file.clone());
            }
        }
    }
    edges
}

fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeSet<(String, String)>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == n) {
            return Some(stack[at..].iter().cloned().chain([n.to_string()]).collect());
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for (_, to) in edges.iter().filter(|(from, _)| from == n) {
            if let Some(cycle) = visit(to, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    let nodes: BTreeSet<&String> = edges.iter().map(|(from, _)| from).collect();
    nodes
        .into_iter()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn every_top_level_module_has_a_row_and_uses_only_what_its_row_allows() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mods = top_level_modules();
    let missing: Vec<&String> = mods.iter().filter(|m| !allowed.contains_key(m.as_str())).collect();
    assert!(
        missing.is_empty(),
        "modules without a row in tests/layering.rs's ALLOWED: {missing:?}"
    );
    let mut violations = Vec::new();
    for ((from, to), file) in top_level_edges() {
        if !allowed[from.as_str()].contains(&to.as_str()) {
            violations.push(format!(
                "{} uses {to}: {from} may use only {:?}",
                shown(&file),
                allowed[from.as_str()]
            ));
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_search_model_depends_on_nothing_that_does_io() {
    let (_, search) = ALLOWED.iter().find(|(m, _)| *m == "search").unwrap();
    let io: Vec<&&str> = search.iter().filter(|m| IO.contains(m)).collect();
    assert!(io.is_empty(), "search may not use I/O modules: {io:?}");
    for ((from, to), file) in top_level_edges() {
        assert!(
            from != "search" || !IO.contains(&to.as_str()),
            "{} (search) uses {to}, which does I/O",
            shown(&file)
        );
    }
}

#[test]
fn no_circle_among_top_level_modules() {
    let edges: BTreeSet<(String, String)> = top_level_edges().into_keys().collect();
    assert_eq!(find_cycle(&edges), None, "an import circle among top-level modules");
    let allowed: BTreeSet<(String, String)> = ALLOWED
        .iter()
        .flat_map(|(from, tos)| tos.iter().map(move |to| (from.to_string(), to.to_string())))
        .collect();
    assert_eq!(find_cycle(&allowed), None, "ALLOWED itself holds a circle");
}

#[test]
fn no_circle_among_the_files_of_bisect() {
    let dir = src().join("bisect");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    // A file's node is its name under bisect (children of `oracle/` are
    // `oracle`); `mod.rs`, the shared vocabulary, is `bisect`.
    let file_node = |path: &[String]| path.get(1).cloned().unwrap_or_else(|| "bisect".to_string());
    let nodes: BTreeSet<String> = files.iter().map(|f| file_node(&module_path(f))).collect();
    let mut edges = BTreeSet::new();
    for file in &files {
        let from = file_node(&module_path(file));
        for path in resolved_paths(file).into_iter().filter(|p| p[0] == "bisect") {
            let to = path
                .get(1)
                .filter(|n| nodes.contains(*n))
                .cloned()
                .unwrap_or_else(|| "bisect".to_string());
            if to != from {
                edges.insert((from.clone(), to));
            }
        }
    }
    assert!(
        edges.contains(&("noisy".to_string(), "oracle".to_string())),
        "the scan sees bisect's files: {edges:?}"
    );
    assert_eq!(
        find_cycle(&edges),
        None,
        "an import circle among the files of src/bisect/"
    );
}

/// The checks above see what they must: a `super::` path, a `use` group and
/// an inline module are resolved, and comments and strings are not read.
#[test]
fn the_scanner_resolves_paths_as_rustc_does() {
    let text = "use super::{logfile, oracle::GitOracle};\n// crate::store\nconst S: &str = \"crate::vm\";\n\
                mod tests {\n    use super::super::session;\n    use crate::{exec::{self, Verdict}, key};\n}\n\
                fn f() -> char { '{' }\nuse super::history;\n";
    let base = ["bisect".to_string(), "probe".to_string()];
    let paths: BTreeSet<String> = resolve(text, &base).into_iter().map(|p| p.join("::")).collect();
    let want = [
        "bisect::logfile",
        "bisect::oracle",
        "bisect::session",
        "exec",
        "key",
        "bisect::history",
    ];
    assert_eq!(paths, want.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
}
