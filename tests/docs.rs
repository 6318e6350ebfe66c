//! The documentation is checked like code: every relative link in
//! `README.md` and `docs/*.md` resolves (the file exists; a `#anchor` into a
//! Markdown file names one of its headings), every `scripts/...` and
//! `src/...` path they name exists (and every `tests/...` and
//! `cache-schema/...` one), and every `kcache ...` example in the
//! README's shell blocks parses with the current CLI (the built binary, the
//! example's arguments and `--help`: clap rejects an unknown flag or a bad
//! value it meets before `--help`). A moved file, a renamed flag or a stale
//! path fails here, naming the document and what is wrong.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use regex::Regex;

/// Links to documents another branch is writing now. Each entry must still be
/// missing: once the file exists the entry fails the test until removed.
const PENDING_FILES: &[(&str, &str)] = &[];

/// README examples of flags being built now: (a text the example holds,
/// clap's complaint it must still draw, why). Once the example parses, the
/// entry fails the test until removed, so it cannot outlive the flag's arrival.
const PENDING_EXAMPLES: &[(&str, &str, &str)] = &[];

/// What a shell variable or `$(...)` in an example stands for: any path.
const PLACEHOLDER: &str = "/tmp/kcache-docs-example";

/// A Markdown document: its path from the repository root and its text.
struct Doc {
    rel: String,
    text: String,
}

fn docs() -> Vec<Doc> {
    let root = common::root();
    let mut rels = vec!["README.md".to_string()];
    let mut inside: Vec<String> = fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("a docs/ entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    inside.sort();
    rels.extend(inside);
    rels.into_iter()
        .map(|rel| {
            let text = fs::read_to_string(root.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            Doc { rel, text }
        })
        .collect()
}

/// A fenced block: its info string (`sh`, `toml`, ...), its first line's
/// number and its lines.
struct Fence {
    info: String,
    line: usize,
    body: Vec<String>,
}

/// Splits a document into its prose lines (numbered; fenced lines left out,
/// so a `# comment` in a shell block is no heading) and its fenced blocks.
fn split_fences(text: &str) -> (Vec<(usize, &str)>, Vec<Fence>) {
    let mut prose = Vec::new();
    let mut fences = Vec::new();
    let mut open: Option<Fence> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let fence_mark = line.trim_start().starts_with("```");
        match (&mut open, fence_mark) {
            (None, true) => {
                let info = line.trim_start().trim_start_matches('`').trim().to_string();
                open = Some(Fence {
                    info,
                    line: number + 1,
                    body: Vec::new(),
                });
            }
            (Some(_), true) => fences.extend(open.take()),
            (Some(fence), false) => fence.body.push(line.to_string()),
            (None, false) => prose.push((number, line)),
        }
    }
    (prose, fences)
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_`
/// dropped, spaces as `-`; a repeated heading gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let heading = Regex::new(r"^#{1,6} +(.*?)\s*$").unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in split_fences(text).0 {
        let Some(m) = heading.captures(line) else { continue };
        let slug: String = m[1]
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 { slug.clone() } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

/// Every relative link target of a document's prose: (line, target).
fn links(text: &str) -> Vec<(usize, String)> {
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let scheme = Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").unwrap();
    split_fences(text)
        .0
        .into_iter()
        .flat_map(|(number, line)| {
            link.captures_iter(line)
                .map(|m| (number, m[1].to_string()))
                .collect::<Vec<_>>()
        })
        .filter(|(_, target)| !scheme.is_match(target))
        .collect()
}

fn pending_file(resolved: &Path) -> Option<&'static str> {
    let root = common::root();
    PENDING_FILES
        .iter()
        .find(|(rel, _)| root.join(rel) == resolved)
        .map(|(_, why)| *why)
}

/// Removes `.` and `..` components without touching the file system, so a
/// missing file is reported by its own path.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What is wrong with one link of `doc`, if anything.
fn check_link(doc: &Doc, target: &str, all: &HashMap<PathBuf, BTreeSet<String>>) -> Option<String> {
    let root = common::root();
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let here = root.join(&doc.rel);
    let resolved = if path.is_empty() {
        here
    } else {
        normalize(&here.parent().expect("a document's directory").join(path))
    };
    if let Some(why) = pending_file(&resolved) {
        return resolved
            .exists()
            .then(|| format!("{target} exists now: remove it from PENDING_FILES ({why})"));
    }
    if !resolved.exists() {
        return Some(format!("{target}: no such file ({})", resolved.display()));
    }
    if anchor.is_empty() || !target_is_markdown(&resolved) {
        return None;
    }
    let known = all.get(&resolved)?;
    (!known.contains(anchor)).then(|| format!("{target}: no heading makes the anchor #{anchor}"))
}

fn target_is_markdown(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "md")
}

#[test]
fn every_relative_link_resolves() {
    let root = common::root();
    let docs = docs();
    let all: HashMap<PathBuf, BTreeSet<String>> = docs.iter().map(|d| (root.join(&d.rel), anchors(&d.text))).collect();
    let mut problems = Vec::new();
    for doc in &docs {
        for (line, target) in links(&doc.text) {
            if let Some(problem) = check_link(doc, &target, &all) {
                problems.push(format!("{}:{line}: {problem}", doc.rel));
            }
        }
    }
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

/// Does a path the docs name exist? A `*` in it matches any text within
/// one file name (`scripts/bench-*.sh`).
fn named_path_exists(rel: &str) -> bool {
    let root = common::root();
    let Some((dir, pattern)) = rel.rsplit_once('/') else {
        return root.join(rel).exists();
    };
    let Some((prefix, suffix)) = pattern.split_once('*') else {
        return root.join(rel).exists();
    };
    fs::read_dir(root.join(dir)).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
        })
    })
}

#[test]
fn every_scripts_src_tests_and_schema_path_named_exists() {
    // A path of this repository as the docs write it: starting a word (not
    // `linux/scripts/...`, a kernel tree's, nor `../shared/...`).
    let path = Regex::new(r"(?:^|[^\w./$-])((?:scripts|src|tests|cache-schema)/[\w./*-]*[\w*])").unwrap();
    let mut problems = Vec::new();
    for doc in docs() {
        for (i, line) in doc.text.lines().enumerate() {
            for m in path.captures_iter(line) {
                let rel = &m[1];
                if !named_path_exists(rel) {
                    problems.push(format!("{}:{}: {rel} does not exist", doc.rel, i + 1));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "paths the docs name that are not in the repository:\n{}",
        problems.join("\n")
    );
}

/// The `kcache ...` commands of a shell block: each with its first line's
/// number, continuation lines joined.
fn kcache_commands(fence: &Fence) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in fence.body.iter().enumerate() {
        let number = fence.line + i;
        match current.as_mut() {
            Some((_, text)) => {
                text.push('\n');
                text.push_str(line);
            }
            None if line.trim_start().starts_with("kcache ") => current = Some((number, line.clone())),
            None => continue,
        }
        if !line.trim_end().ends_with('\\') {
            out.extend(current.take());
        }
    }
    out.extend(current);
    out
}

/// An example's arguments after `kcache`, as the shell would split them,
/// with `$VAR`, `${VAR}` and `$(...)` words standing for a path.
fn arguments(command: &str) -> Result<Vec<String>, String> {
    // A line continuation is whitespace to the shell (shlex would make it an empty word).
    let joined = command.replace("\\\n", " ");
    let words = shlex::split(&joined).ok_or("the shell could not split it (an unclosed quote?)")?;
    let variable = Regex::new(r"\$(\{[^}]*\}|\([^)]*\)|[A-Za-z_][A-Za-z0-9_]*)").unwrap();
    Ok(words
        .into_iter()
        .skip(1)
        .map(|w| variable.replace_all(&w, PLACEHOLDER).into_owned())
        .collect())
}

/// clap's complaint about an example (`None`: it parses).
/// The example runs in a directory where the files it names exist (empty):
/// arguments such as `--config syzbot.config` are checked to be files when
/// parsed, and the example's own files are the user's, not ours.
fn parse_error(args: &[String]) -> Option<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for word in args.iter().filter(|w| is_plain_file_name(w)) {
        // Best effort: a word that only looks like a file name stays one.
        let _ = std::fs::write(dir.path().join(word), b"");
    }
    let out = common::kcache()
        .current_dir(dir.path())
        .args(args)
        .arg("--help")
        .output()
        .expect("run the kcache binary");
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// `syzbot.config`, `repro.c`: a file name in the current directory.
fn is_plain_file_name(word: &str) -> bool {
    let plain = !word.starts_with('-') && !word.contains(['/', '=']) && !word.contains("..");
    plain && word.contains('.') && word.chars().any(|c| c != '.')
}

/// What is wrong with one README example, if anything.
fn check_example(command: &str) -> Option<String> {
    let args = match arguments(command) {
        Ok(args) => args,
        Err(e) => return Some(e),
    };
    let error = parse_error(&args);
    let pending = PENDING_EXAMPLES.iter().find(|(text, _, _)| command.contains(text));
    match (pending, error) {
        (None, None) => None,
        (None, Some(error)) => Some(error),
        (Some((text, _, why)), None) => Some(format!("parses now: remove \"{text}\" from PENDING_EXAMPLES ({why})")),
        (Some((_, expected, _)), Some(error)) if error.contains(expected) => None,
        (Some((_, expected, _)), Some(error)) => Some(format!(
            "pending example fails for another reason than {expected:?}: {error}"
        )),
    }
}

/// The `kcache ...` examples of a document's shell blocks: (line, command).
fn shell_examples(doc: &Doc) -> Vec<(usize, String)> {
    let shell = ["sh", "bash", "shell", "console"];
    split_fences(&doc.text)
        .1
        .iter()
        .filter(|f| shell.contains(&f.info.as_str()))
        .flat_map(kcache_commands)
        .collect()
}

/// Does an example stand for many (`...`, `<key>`, `[--json]`, `a | b`)?
/// Then it is a pattern, not a command, and only the README's must be whole.
fn is_pattern(command: &str) -> bool {
    ["...", "<", "[", " | "].iter().any(|p| command.contains(p))
}

/// Every problem of the given examples, each naming the document and line.
fn example_problems(rel: &str, examples: &[(usize, String)]) -> Vec<String> {
    examples
        .iter()
        .filter_map(|(line, command)| {
            check_example(command).map(|e| format!("{rel}:{line}: {command}\n  {}", e.replace('\n', "\n  ")))
        })
        .collect()
}

#[test]
fn every_kcache_example_in_the_readme_parses() {
    let readme = docs().into_iter().next().expect("README.md");
    let examples = shell_examples(&readme);
    assert!(
        examples.len() >= 10,
        "found only {} kcache examples in README.md's shell blocks: is the extraction broken?",
        examples.len()
    );
    let problems = example_problems(&readme.rel, &examples);
    assert!(
        problems.is_empty(),
        "README examples the CLI rejects:\n{}",
        problems.join("\n")
    );
}

/// The guides' examples that are whole commands (no `...` or `<placeholder>`)
/// parse too.
#[test]
fn every_whole_kcache_example_in_the_guides_parses() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for doc in docs().iter().skip(1) {
        let whole: Vec<(usize, String)> = shell_examples(doc)
            .into_iter()
            .filter(|(_, c)| !is_pattern(c))
            .collect();
        checked += whole.len();
        problems.extend(example_problems(&doc.rel, &whole));
    }
    assert!(
        checked >= 10,
        "found only {checked} whole kcache examples in docs/: is the extraction broken?"
    );
    assert!(
        problems.is_empty(),
        "examples in docs/ the CLI rejects:\n{}",
        problems.join("\n")
    );
}

/// The check itself: a wrong flag, a bad value and an unknown subcommand are
/// each caught and named by clap; a good example passes.
#[test]
fn the_example_check_catches_a_wrong_flag() {
    let wrong_flag = check_example("kcache bisect --repo . --bad HEAD --no-such-flag --test ./t.sh")
        .expect("an unknown flag is rejected");
    assert!(wrong_flag.contains("--no-such-flag"), "{wrong_flag}");
    let bad_value =
        check_example("kcache bisect --repo . --bad HEAD --runs 0 --test ./t.sh").expect("--runs 0 is rejected");
    assert!(bad_value.contains("--runs"), "{bad_value}");
    let bad_command = check_example("kcache bisekt --repo .").expect("a misspelt subcommand is rejected");
    assert!(bad_command.contains("bisekt"), "{bad_command}");
    assert_eq!(
        check_example(
            "kcache bisect --repo \"$PWD/linux\" --good v6.1 --bad HEAD \\\n    --test \"$PWD/t.sh\" --jobs 2"
        ),
        None
    );
}

/// `kcache help PATH...` as the binary prints it.
fn help_text(path: &[String]) -> String {
    let out = common::kcache()
        .arg("help")
        .args(path)
        .env_remove("COLUMNS")
        .output()
        .expect("run kcache help");
    assert!(
        out.status.success(),
        "kcache help {}: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// docs/commands.md as the current CLI makes it: every command's help,
/// depth first in the order `kcache help` lists them.
fn commands_md() -> String {
    let mut out = String::from(
        "# Command reference\n\n\
         Generated from the CLI's own help (`kcache help COMMAND`, also `man kcache-COMMAND`);\n\
         do not edit: after changing a help text, regenerate it with\n\
         `KCACHE_BLESS=1 cargo test --release --locked --test docs commands_reference`.\n\
         Examples are in the [guides](README.md).\n",
    );
    let mut stack: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = stack.pop() {
        let help = help_text(&path);
        let title = ["kcache".to_string()]
            .iter()
            .chain(&path)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        out.push_str(&format!("\n## {title}\n\n```text\n{}\n```\n", help.trim_end()));
        for sub in subcommands(&help).into_iter().rev() {
            stack.push(path.iter().cloned().chain([sub]).collect());
        }
    }
    out
}

/// docs/commands.md is the current CLI's help, so the browsable reference
/// never drifts from `kcache help`; `KCACHE_BLESS=1` rewrites it.
#[test]
fn commands_reference_is_current() {
    let path = common::root().join("docs/commands.md");
    let want = commands_md();
    if std::env::var_os("KCACHE_BLESS").is_some() {
        fs::write(&path, &want).expect("write docs/commands.md");
    }
    let have = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/commands.md is not the current CLI's help: regenerate it with \
         KCACHE_BLESS=1 cargo test --release --locked --test docs commands_reference"
    );
}

/// Every crate Cargo.toml names (dependencies and dev-dependencies) has its
/// reason in docs/dependencies.md, written as `name` in a table row.
#[test]
fn every_dependency_says_why() {
    let root = common::root();
    let manifest: toml::Table = fs::read_to_string(root.join("Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("Cargo.toml parses");
    let why = fs::read_to_string(root.join("docs/dependencies.md")).expect("docs/dependencies.md");
    let rows: Vec<&str> = why.lines().filter(|l| l.starts_with("| `")).collect();
    let missing: Vec<String> = ["dependencies", "dev-dependencies"]
        .iter()
        .filter_map(|section| manifest.get(*section).and_then(|s| s.as_table()))
        .flat_map(|table| table.keys().cloned())
        .filter(|name| !rows.iter().any(|row| row.contains(&format!("`{name}`"))))
        .collect();
    assert!(
        missing.is_empty(),
        "crates without a reason in docs/dependencies.md: {}",
        missing.join(", ")
    );
}
