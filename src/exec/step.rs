//! The job body every engine runs: `kcache step run SPEC` performs exactly
//! one step against the team store and exits 0 whenever it recorded a
//! result (a built kernel, a build failure that is the commit's, runs that
//! crashed or not). It fails (non-zero) only for the machine's reasons (no
//! store, no credentials, a store that does not answer or take uploads, a
//! build that failed for a reason not the commit's), so an engine's retry
//! never repeats real evidence.
//!
//! The commit's tree comes from a per-node clone of the spec's repository
//! under the worker's cache (optionally borrowing objects from a reference
//! clone), into which only the one commit is fetched; no source is ever
//! uploaded. The build and the runs go through the evaluator as a local
//! bisection's do: one builder per key (a retried or duplicated job of a
//! recorded key rebuilds nothing), runs recorded as they complete.

use std::path::Path;
use std::time::Duration;

use super::{BuildSource, CommitEvaluator, EvalError, Recipe};
use crate::engine::spec::task_share;
use crate::engine::{StepSpec, StepWork};
use crate::git::{GitError, Repo};
use crate::store::{Cache, StoreError};

/// Why a step could not be done on this worker: the machine's reason,
/// never the commit's.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("no team store: a step runs against one (give --remote or KCACHE_REMOTE on the worker)")]
    NoRemote,
    #[error("the team store's credentials are missing on this worker: {0}")]
    NoCredentials(String),
    #[error("the team store {0} is unreachable from this worker")]
    Unreachable(String),
    #[error("the team store {0} is read-only here: a worker must upload its results")]
    ReadOnly(String),
    #[error("the worker computes {what} {here} from the step's inputs, the step says {spec}: the worker's files differ (config, key files, test files must be the driver's)")]
    KeyMismatch {
        what: &'static str,
        here: String,
        spec: String,
    },
    #[error("the build failed for a reason not the commit's: {0}")]
    Transient(String),
    #[error("results not uploaded to the team store: {0}")]
    Upload(String),
    #[error("fetching commit {commit} from {repository}: {source}")]
    Fetch {
        commit: String,
        repository: String,
        source: GitError,
    },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
}

/// What a step recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepReport {
    pub step: String,
    /// What the step was (`build of <commit> (key <key>)`, ...).
    pub what: String,
    /// `built`, `reused`, `failed` (the commit's own, recorded), or `tested`.
    pub result: String,
    pub runs: u32,
    pub uploaded: usize,
}

/// Performs task `task` of a step against `cache`'s remote. `reference`:
/// a clone whose objects the per-node clone borrows (git alternates).
pub fn run_step(
    spec: &StepSpec,
    task: u32,
    cache: &Cache,
    reference: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<StepReport, StepError> {
    check_store(cache)?;
    let repo = node_clone(cache, spec, reference)?;
    let mut evaluator = evaluator_for(spec, &repo)?;
    let build_key = evaluator.key_of(&repo, &spec.commit)?;
    let (result, runs) = match &spec.work {
        StepWork::Build { build_key: wanted } => {
            same("build key", build_key, *wanted)?;
            let eval = evaluator.build_or_predict(&repo, cache, &spec.commit, false, progress)?;
            // Known here already (this worker built it for another store,
            // or its upload failed): the store must have it too.
            cache.publish_build(&build_key)?;
            let result = match eval.build {
                BuildSource::Built => "built",
                BuildSource::Reused | BuildSource::Predicted => "reused",
                BuildSource::Failed | BuildSource::KnownBroken => "failed",
                BuildSource::TransientFailure => {
                    let why = eval.failure.map(|f| f.reason).unwrap_or_default();
                    return Err(StepError::Transient(why));
                }
            };
            (result, 0)
        }
        StepWork::Test {
            build_key: wanted,
            signature,
            test_key,
            runs,
            tasks,
            ..
        } => {
            same("build key", build_key, *wanted)?;
            same("test key", evaluator.test_key(), *test_key)?;
            let want = task_share(*runs, *tasks, task);
            let done = match want {
                0 => Vec::new(),
                n => evaluator.test_batch(
                    &repo,
                    cache,
                    &spec.commit,
                    signature,
                    n,
                    &|_: &crate::store::RunRecord| false,
                    progress,
                )?,
            };
            ("tested", done.len() as u32)
        }
    };
    let synced = cache.sync()?;
    if !synced.failed.is_empty() || synced.still_pending > 0 {
        return Err(StepError::Upload(format!(
            "{} upload(s) failed, {} still pending: {}",
            synced.failed.len(),
            synced.still_pending,
            synced.failed.join("; ")
        )));
    }
    Ok(StepReport {
        step: spec.name().to_string(),
        what: spec.describe(),
        result: result.to_string(),
        runs,
        uploaded: synced.uploaded,
    })
}

fn same<K: PartialEq + std::fmt::Display>(what: &'static str, here: K, spec: K) -> Result<(), StepError> {
    match here == spec {
        true => Ok(()),
        false => Err(StepError::KeyMismatch {
            what,
            here: here.to_string(),
            spec: spec.to_string(),
        }),
    }
}

/// The store must be there, with credentials, answering and writable,
/// before any work: a step whose results cannot be uploaded is wasted.
fn check_store(cache: &Cache) -> Result<(), StepError> {
    let remote = cache.remote().ok_or(StepError::NoRemote)?;
    if remote.url().starts_with("s3://") {
        let missing: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
            .into_iter()
            .filter(|v| std::env::var_os(v).is_none_or(|s| s.is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(StepError::NoCredentials(format!("{} not set", missing.join(" and "))));
        }
    }
    if !remote.writable() {
        return Err(StepError::ReadOnly(remote.url().to_string()));
    }
    // An outage another process of this cache remembered is not this one's.
    remote.reset_down();
    if !remote.probe() {
        return Err(StepError::Unreachable(remote.url().to_string()));
    }
    remote.clear_outage();
    Ok(())
}

/// The node's clone of the spec's repository, holding the step's commit:
/// a bare repository under the cache, objects borrowed from `reference`
/// when given, and `git fetch` of the one commit when it lacks it.
fn node_clone(cache: &Cache, spec: &StepSpec, reference: Option<&Path>) -> Result<Repo, StepError> {
    let tag = crate::key::digest(spec.repository.as_bytes()).to_hex()[..16].to_string();
    let dir = cache.dir().join("engine").join("clones").join(tag);
    let io = |what: String| move |source| StepError::Io { what, source };
    std::fs::create_dir_all(dir.parent().expect("under the cache"))
        .map_err(io(format!("clone directory {}", dir.display())))?;
    // Tasks on one node share the clone: one fetches at a time.
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).map_err(io(format!("lock {}", lock_path.display())))?;
    lock.lock().map_err(io(format!("lock {}", lock_path.display())))?;
    let fetch_err = |source| StepError::Fetch {
        commit: spec.commit.to_string(),
        repository: spec.repository.clone(),
        source,
    };
    if !dir.join("HEAD").is_file() {
        let init = std::process::Command::new("git")
            .args(["init", "-q", "--bare"])
            .arg(&dir)
            .output()
            .map_err(io(format!("git init {}", dir.display())))?;
        if !init.status.success() {
            return Err(StepError::Io {
                what: format!("git init {}", dir.display()),
                source: std::io::Error::other(String::from_utf8_lossy(&init.stderr).trim().to_string()),
            });
        }
        if let Some(r) = reference {
            let objects = r.join(".git/objects");
            let objects = if objects.is_dir() { objects } else { r.join("objects") };
            std::fs::write(dir.join("objects/info/alternates"), format!("{}\n", objects.display()))
                .map_err(io(format!("alternates of {}", dir.display())))?;
        }
    }
    let repo = Repo::open(&dir)?;
    let commit = format!("{}^{{commit}}", spec.commit);
    if repo.run(&["cat-file", "-e", &commit]).is_err() {
        // Under a ref: a fetched commit no ref names is garbage to `git gc`.
        let refspec = format!("+{0}:refs/kcache/{0}", spec.commit);
        repo.run(&["fetch", "-q", "--no-tags", &spec.repository, &refspec])
            .map_err(fetch_err)?;
    }
    Ok(repo)
}

/// The evaluator of a step: the driver's recipe, one run slot per run of
/// this task, building in the node clone's worktree under the cache.
fn evaluator_for(spec: &StepSpec, repo: &Repo) -> Result<CommitEvaluator, StepError> {
    let r = &spec.recipe;
    let seconds = |s: Option<f64>| s.filter(|s| s.is_finite() && *s > 0.0).map(Duration::from_secs_f64);
    let recipe = Recipe {
        config: r.config.clone(),
        artifacts: r.artifacts.clone(),
        test_key_files: r.test_key_files.clone(),
        key_files: r.key_files.clone(),
        arch: r.arch.clone(),
        build_timeout: seconds(r.build_timeout_seconds),
        test_timeout: seconds(r.test_timeout_seconds),
        jobs: match spec.work {
            StepWork::Test { runs, tasks, .. } => task_share(runs, tasks, 0).max(1),
            StepWork::Build { .. } => 1,
        },
        ..Recipe::new(r.build.clone(), r.test.clone(), r.toolchain.clone())
    };
    // Beside the node's clone: `<clone>.worktree` builds, `<clone>.state`
    // holds the build log and the config copy.
    let (tree, state) = (
        repo.dir().with_extension("worktree"),
        repo.dir().with_extension("state"),
    );
    let mut evaluator = CommitEvaluator::new(recipe, tree, state, false)?;
    evaluator.set_prediction(false);
    Ok(evaluator)
}
