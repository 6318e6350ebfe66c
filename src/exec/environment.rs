//! A commit's build environment on a real repository: the table
//! (`crate::buildenv`) resolved with git's reachability, the chosen
//! compiler found and identified, the config fixed up, the build fixes'
//! diffs read, and all of it folded into the build inputs.
//!
//! Invariant: a commit's environment is resolved before anything is built
//! for it, and a compiler that is not installed stops here with the
//! package to install: never a build, never a skip.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::Patch;
use crate::buildenv::{self, Compiler, Reach, Resolved, Table};
use crate::git::{GitError, Repo};
use crate::key::{self, BuildInputs, CommitId};

/// Why a commit's environment could not be had. Every one is the
/// machine's or the table's, never the commit's: the search stops.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(transparent)]
    Table(#[from] buildenv::TableError),
    #[error(transparent)]
    Resolve(#[from] buildenv::ResolveError<GitError>),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "the build environment of {commit} needs the compiler {cc} ({rule} of the build environment table {table}), \
             which is not installed: install the Debian package {package} (`apt-get install {package}`) or change \
             that entry; nothing was built"
    )]
    MissingCompiler {
        commit: CommitId,
        cc: String,
        package: String,
        rule: String,
        table: String,
    },
    #[error("the compiler {cc} ({rule}) could not be identified: {message}")]
    Identity { cc: String, rule: String, message: String },
    #[error("the config {}: {source}", path.display())]
    Config { path: PathBuf, source: std::io::Error },
}

/// What `kcache key --json`, a step's `--json` and the log show of a
/// commit's environment: the table's answer and the compiler's identity
/// as keyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub resolved: Resolved,
    /// The build key's toolchain: the compiler's and linker's version
    /// lines (or the recipe's `--identity`), then the compiler's `env`.
    pub toolchain: String,
}

/// One commit's environment, ready to build with.
#[derive(Debug, Clone)]
pub struct CommitEnv {
    pub shown: Shown,
    /// The recipe's config with the fixups applied (none without `--config`).
    pub config: Option<Vec<u8>>,
    /// The build fixes, in the table's order, applied before any other patch.
    pub patches: Vec<Patch>,
}

impl CommitEnv {
    /// The variables the build command gets: `CC` (and `KCACHE_CC`) and the
    /// compiler's `env`.
    pub fn variables(&self) -> Vec<(&str, std::ffi::OsString)> {
        let c = &self.shown.resolved.compiler;
        let mut vars: Vec<(&str, std::ffi::OsString)> =
            vec![("CC", c.cc.clone().into()), ("KCACHE_CC", c.cc.clone().into())];
        vars.extend(c.env.iter().map(|(k, v)| (k.as_str(), v.into())));
        vars
    }
}

/// The table of a recipe and what it learnt: compilers identified, each
/// commit's environment, the revisions the table names.
pub struct Environments {
    table: Arc<Table>,
    /// The recipe's command that prints its toolchain identity (kbuild's
    /// `--identity`), run with `CC` set; `None`: the compiler's and
    /// linker's version lines.
    identity_command: Option<String>,
    /// The recipe's config as given.
    config: Option<Vec<u8>>,
    identities: Mutex<HashMap<String, String>>,
    commits: Mutex<HashMap<CommitId, Arc<CommitEnv>>>,
    revisions: Mutex<HashMap<String, Option<CommitId>>>,
}

/// Prints what goes into the key for a compiler when the recipe has no
/// identity command of its own: as `kernel::toolchain_identity` does for `$CC`.
const VERSION_LINES: &str = r#""$CC" --version | head -n 1; "${LD:-ld}" --version | head -n 1"#;

impl Environments {
    pub fn new(
        table: Arc<Table>,
        identity_command: Option<String>,
        config: Option<&Path>,
    ) -> Result<Environments, EnvError> {
        let config = config
            .map(|p| {
                std::fs::read(p).map_err(|source| EnvError::Config {
                    path: p.to_path_buf(),
                    source,
                })
            })
            .transpose()?;
        Ok(Environments {
            table,
            identity_command,
            config,
            identities: Mutex::default(),
            commits: Mutex::default(),
            revisions: Mutex::default(),
        })
    }

    /// The environment `commit` is built in (resolved once per commit).
    pub fn of(&self, repo: &Repo, commit: &CommitId) -> Result<Arc<CommitEnv>, EnvError> {
        if let Some(env) = lock(&self.commits).get(commit) {
            return Ok(env.clone());
        }
        let resolved = self.table.resolve(&mut |rev| self.reach(repo, commit, rev))?;
        let toolchain = self.identity(commit, &resolved.compiler)?;
        let config = self.config.as_ref().map(|c| {
            let text = String::from_utf8_lossy(c);
            buildenv::fix_config(&text, &resolved.config).into_bytes()
        });
        let patches = resolved
            .backports
            .iter()
            .map(|b| backport_patch(repo, b))
            .collect::<Result<Vec<_>, _>>()?;
        let env = Arc::new(CommitEnv {
            shown: Shown { resolved, toolchain },
            config,
            patches,
        });
        lock(&self.commits).insert(commit.clone(), env.clone());
        Ok(env)
    }

    /// `base` (the recipe's inputs for the commit's tree) in this environment.
    pub fn inputs(base: BuildInputs, env: &CommitEnv) -> BuildInputs {
        BuildInputs {
            toolchain: env.shown.toolchain.clone(),
            config_digest: env.config.as_deref().map_or(base.config_digest, key::digest),
            patches: env.patches.iter().map(Patch::digest).collect(),
            ..base
        }
    }

    /// Whether the commit contains `rev` (a tag or a commit id).
    fn reach(&self, repo: &Repo, commit: &CommitId, rev: &str) -> Result<Reach, GitError> {
        let known = lock(&self.revisions).get(rev).cloned();
        let id = match known {
            Some(id) => id,
            None => {
                let id = repo.commit_id(rev).ok();
                lock(&self.revisions).insert(rev.to_string(), id.clone());
                id
            }
        };
        Ok(match id {
            None => Reach::Unknown,
            Some(id) if repo.is_ancestor(&id, commit)? => Reach::Contained,
            Some(_) => Reach::NotContained,
        })
    }

    /// The compiler's identity as keyed, found once per compiler.
    fn identity(&self, commit: &CommitId, c: &Compiler) -> Result<String, EnvError> {
        let name = format!("{}\0{:?}", c.cc, c.env);
        if let Some(id) = lock(&self.identities).get(&name) {
            return Ok(id.clone());
        }
        if crate::kernel::find_program(&c.cc).is_none() {
            return Err(EnvError::MissingCompiler {
                commit: commit.clone(),
                cc: c.cc.clone(),
                package: c.package.clone(),
                rule: c.rule.clone(),
                table: self.table.path.display().to_string(),
            });
        }
        let mut vars: Vec<(String, String)> = vec![("CC".into(), c.cc.clone())];
        vars.extend(c.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let command = self.identity_command.as_deref().unwrap_or(VERSION_LINES);
        let mut id = crate::kernel::toolchain_from_command_with(command, &vars).map_err(|e| EnvError::Identity {
            cc: c.cc.clone(),
            rule: c.rule.clone(),
            message: e.to_string(),
        })?;
        for (k, v) in &c.env {
            id.push_str(&format!(", {k}={v}"));
        }
        lock(&self.identities).insert(name, id.clone());
        Ok(id)
    }
}

/// The fix's diff against its first parent, as a patch layer.
fn backport_patch(repo: &Repo, b: &buildenv::Backport) -> Result<Patch, GitError> {
    let fix = CommitId::from(b.fix.as_str());
    let parent = repo.parents(&fix)?.into_iter().next().unwrap_or_else(|| fix.clone());
    Ok(Patch {
        name: format!("backport {} ({}, {})", b.name, fix.short(), b.rule),
        diff: repo.diff(&parent, &fix)?.into_bytes(),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
