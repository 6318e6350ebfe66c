//! Build environments: which compiler, config fixups and build-fix
//! backports a commit is built with, chosen from a table by the release
//! tags the commit contains (`scripts/kernel/build-env.toml` is the shipped
//! table and documents the format; docs/build-environments.md the rest).
//!
//! This module parses and checks a table and resolves it for one commit
//! given an oracle that says whether a revision (a tag, a commit id) is
//! contained in the commit (is it or one of its ancestors). The oracle on
//! a real repository, the compiler's identity and the patches' bytes are
//! `exec::environment`'s.
//!
//! Invariant: pure: no file but the table read in [`Table::load`], no
//! process, no git; a table that loads is valid (every rule checked), and
//! the same table and oracle answers give the same environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The table kcache ships (`--build-env default`): Debian 12's compilers
/// for x86_64, syzkaller's boundaries.
pub const DEFAULT_TABLE: &str = include_str!("../../scripts/kernel/build-env.toml");

/// What `--build-env default` names.
pub const DEFAULT_NAME: &str = "default";

/// A table that cannot be used: the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("build environment table {}: {problem}", path.display())]
pub struct TableError {
    pub path: PathBuf,
    pub problem: String,
}

/// A table that could not be resolved for a commit: a tag it names is not
/// in the repository, a backport's fix commit is missing, or the oracle
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError<E: std::error::Error + 'static> {
    #[error("build environment table {}: {rule} names {rev}, which is not in the repository: \
             fetch it (`git fetch --tags` for a release tag) or change the entry", table.display())]
    Unknown { table: PathBuf, rule: String, rev: String },
    #[error(transparent)]
    Oracle(E),
}

/// Whether a revision is contained in a commit (the commit or an ancestor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Contained,
    NotContained,
    /// The repository has no such revision.
    Unknown,
}

/// The file as written: `version`, then `[[compiler]]`, `[[config]]` and
/// `[[backport]]` rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    version: u32,
    #[serde(default)]
    compiler: Vec<CompilerRule>,
    #[serde(default)]
    config: Vec<ConfigRule>,
    #[serde(default)]
    backport: Vec<BackportRule>,
}

/// When a rule applies: the commit contains `since` (a tag), and does not
/// contain `before`. Neither: always.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct When {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

impl When {
    fn words(&self) -> String {
        match (&self.since, &self.before) {
            (None, None) => "always".into(),
            (Some(s), None) => format!("since {s}"),
            (None, Some(b)) => format!("before {b}"),
            (Some(s), Some(b)) => format!("since {s}, before {b}"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompilerRule {
    since: Option<String>,
    before: Option<String>,
    cc: String,
    package: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigRule {
    since: Option<String>,
    before: Option<String>,
    #[serde(default)]
    on: Vec<String>,
    #[serde(default)]
    off: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackportRule {
    name: String,
    fixes: Option<String>,
    fix: String,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

/// A compiler the table can choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compiler {
    /// The program (`$CC` of the build): `gcc-11`, `clang-15`.
    pub cc: String,
    /// The Debian package that installs it.
    pub package: String,
    /// More variables for the build (`LLVM=1`, `LD=ld.lld-15`); keyed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Which rule chose it, for people: `[[compiler]] #1 (since v5.16)`.
    pub rule: String,
}

/// A build fix the table can cherry-pick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backport {
    pub name: String,
    /// The commit whose build the fix repairs (`None`: every commit without the fix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixes: Option<String>,
    /// The fix, a full commit id: its diff against its first parent is applied.
    pub fix: String,
    pub rule: String,
}

#[derive(Debug, Clone)]
struct Rule<T> {
    when: When,
    what: T,
}

/// A checked table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file it was read from (`default` for the shipped one).
    pub path: PathBuf,
    compilers: Vec<Rule<Compiler>>,
    configs: Vec<Rule<BTreeMap<String, bool>>>,
    backports: Vec<Backport>,
}

/// What a table gives one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The table's file (`default`: the shipped one).
    pub table: String,
    pub compiler: Compiler,
    /// Config options forced on (`true`) or off (`false`), by name
    /// without `CONFIG_`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, bool>,
    /// The build fixes cherry-picked, in the table's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backports: Vec<Backport>,
}

impl Resolved {
    /// One line for people: `gcc-11 ([[compiler]] #2 (always)); config -DEBUG_INFO_BTF +X; backports: a, b`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} ({})", self.compiler.cc, self.compiler.rule);
        for (k, v) in &self.compiler.env {
            s.push_str(&format!(" {k}={v}"));
        }
        if !self.config.is_empty() {
            let opts: Vec<String> = self
                .config
                .iter()
                .map(|(o, on)| format!("{}{o}", if *on { '+' } else { '-' }))
                .collect();
            s.push_str(&format!("; config {}", opts.join(" ")));
        }
        if !self.backports.is_empty() {
            let names: Vec<&str> = self.backports.iter().map(|b| b.name.as_str()).collect();
            s.push_str(&format!("; backports: {}", names.join(", ")));
        }
        s
    }
}

impl Table {
    /// `default` (the shipped table) or a file.
    pub fn load(name: &Path) -> Result<Table, TableError> {
        if name == Path::new(DEFAULT_NAME) {
            return Table::parse(DEFAULT_TABLE, name);
        }
        let text = std::fs::read_to_string(name).map_err(|e| TableError {
            path: name.to_path_buf(),
            problem: e.to_string(),
        })?;
        Table::parse(&text, name)
    }

    /// Parses and checks a table read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Table, TableError> {
        let fail = |problem: String| TableError {
            path: path.to_path_buf(),
            problem,
        };
        let file: TableFile = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        if file.version != 1 {
            return Err(fail(format!("version {}: this kcache reads version 1", file.version)));
        }
        let compilers = numbered(file.compiler, compiler_rule).map_err(&fail)?;
        match compilers.last() {
            None => {
                return Err(fail(
                    "no [[compiler]]: name at least the compiler for every commit".into(),
                ))
            }
            Some(last) if last.when != When::default() => {
                return Err(fail(format!(
                    "the last [[compiler]] (#{}) has a condition ({}): the last one is the compiler for \
                     every other commit and has neither `since` nor `before`",
                    compilers.len(),
                    last.when.words()
                )))
            }
            Some(_) => {}
        }
        let configs = numbered(file.config, config_rule).map_err(&fail)?;
        let backports = numbered(file.backport, backport_rule).map_err(&fail)?;
        Ok(Table {
            path: path.to_path_buf(),
            compilers,
            configs,
            backports,
        })
    }

    /// Every compiler the table can choose, in its order.
    pub fn compilers(&self) -> impl Iterator<Item = &Compiler> {
        self.compilers.iter().map(|r| &r.what)
    }

    /// The environment of the commit `contains` answers for: the first
    /// compiler rule that applies, every config rule that applies in
    /// order (a later one wins for an option), and every backport whose
    /// fixed commit is contained and whose fix is not.
    pub fn resolve<E: std::error::Error + 'static>(
        &self,
        contains: &mut dyn FnMut(&str) -> Result<Reach, E>,
    ) -> Result<Resolved, ResolveError<E>> {
        let mut compiler = None;
        for r in &self.compilers {
            if self.applies(&r.when, &r.what.rule, contains)? {
                compiler = Some(r.what.clone());
                break;
            }
        }
        let compiler = compiler.expect("the last compiler rule is unconditional (checked in parse)");
        let mut config = BTreeMap::new();
        for (i, r) in self.configs.iter().enumerate() {
            if self.applies(&r.when, &format!("[[config]] #{}", i + 1), contains)? {
                config.extend(r.what.iter().map(|(k, v)| (k.clone(), *v)));
            }
        }
        let mut backports = Vec::new();
        for b in &self.backports {
            let broken = match &b.fixes {
                // A repository without the fixed commit cannot contain it.
                Some(fixes) => contains(fixes).map_err(ResolveError::Oracle)? == Reach::Contained,
                None => true,
            };
            if broken && self.reach(&b.fix, &b.rule, contains)? == Reach::NotContained {
                backports.push(b.clone());
            }
        }
        Ok(Resolved {
            table: self.path.display().to_string(),
            compiler,
            config,
            backports,
        })
    }

    fn applies<E: std::error::Error + 'static>(
        &self,
        when: &When,
        rule: &str,
        contains: &mut dyn FnMut(&str) -> Result<Reach, E>,
    ) -> Result<bool, ResolveError<E>> {
        if let Some(since) = &when.since {
            if self.reach(since, rule, contains)? != Reach::Contained {
                return Ok(false);
            }
        }
        if let Some(before) = &when.before {
            if self.reach(before, rule, contains)? == Reach::Contained {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A revision the table names must exist: a missing tag would silently
    /// choose another environment for every commit.
    fn reach<E: std::error::Error + 'static>(
        &self,
        rev: &str,
        rule: &str,
        contains: &mut dyn FnMut(&str) -> Result<Reach, E>,
    ) -> Result<Reach, ResolveError<E>> {
        match contains(rev).map_err(ResolveError::Oracle)? {
            Reach::Unknown => Err(ResolveError::Unknown {
                table: self.path.clone(),
                rule: rule.to_string(),
                rev: rev.to_string(),
            }),
            known => Ok(known),
        }
    }
}

/// Each rule of a kind checked with its 1-based number (how messages name it).
fn numbered<R, T>(rules: Vec<R>, check: fn(usize, R) -> Result<T, String>) -> Result<Vec<T>, String> {
    rules.into_iter().enumerate().map(|(i, r)| check(i + 1, r)).collect()
}

fn when(rule: &str, since: Option<String>, before: Option<String>) -> Result<When, String> {
    for (field, v) in [("since", &since), ("before", &before)] {
        if v.as_deref()
            .is_some_and(|t| t.trim().is_empty() || t.contains(char::is_whitespace))
        {
            return Err(format!("{rule}: `{field}` must name one tag"));
        }
    }
    Ok(When { since, before })
}

fn compiler_rule(n: usize, r: CompilerRule) -> Result<Rule<Compiler>, String> {
    let name = format!("[[compiler]] #{n}");
    let when = when(&name, r.since, r.before)?;
    if r.cc.is_empty() || r.cc.contains(char::is_whitespace) {
        return Err(format!(
            "{name}: `cc` must name one program (`gcc-11`, `/usr/bin/clang-15`), not {:?}",
            r.cc
        ));
    }
    for key in r.env.keys() {
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_uppercase() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!("{name}: env {key:?} is not a variable name (A-Z, 0-9, _)"));
        }
        if key == "CC" || key.starts_with("KCACHE_") {
            return Err(format!("{name}: env {key} is set by kcache (`cc` names the compiler)"));
        }
    }
    // Debian names a compiler's package after the program: gcc-11, clang-15.
    let program = Path::new(&r.cc)
        .file_name()
        .map_or(r.cc.clone(), |f| f.to_string_lossy().into_owned());
    let rule = format!("{name} ({})", when.words());
    Ok(Rule {
        what: Compiler {
            cc: r.cc,
            package: r.package.unwrap_or(program),
            env: r.env,
            rule,
        },
        when,
    })
}

fn config_rule(n: usize, r: ConfigRule) -> Result<Rule<BTreeMap<String, bool>>, String> {
    let name = format!("[[config]] #{n}");
    let when = when(&name, r.since, r.before)?;
    if r.on.is_empty() && r.off.is_empty() {
        return Err(format!("{name}: neither `on` nor `off` names an option"));
    }
    let mut options = BTreeMap::new();
    for (list, value) in [(&r.on, true), (&r.off, false)] {
        for o in list {
            if o.starts_with("CONFIG_") {
                return Err(format!("{name}: write {o} without CONFIG_"));
            }
            if o.is_empty()
                || !o
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(format!("{name}: {o:?} is not a config option name (A-Z, 0-9, _)"));
            }
            if options.insert(o.clone(), value).is_some() {
                return Err(format!("{name}: {o} is named twice"));
            }
        }
    }
    Ok(Rule { when, what: options })
}

fn backport_rule(n: usize, r: BackportRule) -> Result<Backport, String> {
    let rule = format!("[[backport]] #{n}");
    if r.name.trim().is_empty() {
        return Err(format!("{rule}: `name` is empty"));
    }
    let full_id = |field: &str, v: &str| match v.len() == 40 && v.chars().all(|c| c.is_ascii_hexdigit()) {
        true => Ok(v.to_ascii_lowercase()),
        false => Err(format!(
            "{rule} ({}): `{field}` {v:?} is not a full 40-hex commit id",
            r.name
        )),
    };
    let fix = full_id("fix", &r.fix)?;
    let fixes = r.fixes.as_deref().map(|f| full_id("fixes", f)).transpose()?;
    Ok(Backport {
        rule: format!("{rule} ({})", r.name),
        name: r.name,
        fixes,
        fix,
    })
}

/// `config` with `fixups` applied: each option's lines removed and its
/// forced value appended (`CONFIG_X=y`, `# CONFIG_X is not set`), so the
/// build's `olddefconfig` starts from them; options not named stay as
/// they are, in place.
pub fn fix_config(config: &str, fixups: &BTreeMap<String, bool>) -> String {
    let named = |line: &str| {
        let option = line
            .strip_prefix("# CONFIG_")
            .and_then(|l| l.strip_suffix(" is not set"))
            .or_else(|| line.strip_prefix("CONFIG_").and_then(|l| l.split('=').next()));
        option.is_some_and(|o| fixups.contains_key(o.trim()))
    };
    let mut out: String = config.lines().filter(|l| !named(l)).flat_map(|l| [l, "\n"]).collect();
    for (option, on) in fixups {
        match on {
            true => out.push_str(&format!("CONFIG_{option}=y\n")),
            false => out.push_str(&format!("# CONFIG_{option} is not set\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
