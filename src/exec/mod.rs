//! The evaluation of commits: one commit through the cache, reusing what
//! is known, building and testing what is not, recording everything as it
//! completes.
//!
//! This file holds what the parts share: the recipe, the results
//! ([`Evaluation`], [`BuildSource`], [`Effort`], [`BuildFailure`],
//! [`CacheState`]), the errors, the cross-process claims, and the
//! [`CommitEvaluator`] itself with its constructor, its read-only queries
//! of the cache and [`CommitEvaluator::evaluate`], which builds (see
//! `build.rs`) and then tests (`test.rs`). Beside them: [`predict`]
//! (no-op prediction), `repro.rs` (the VM harness as a test),
//! [`evidence`] (runs to a verdict) and [`lookup`] (`kcache lookup`).
//!
//! Where builds and runs are dispatched: the run slots are
//! [`parallel`] (a batch's runs, from `test.rs`), the build slots the
//! foreground build in `build.rs` and the background ones in
//! [`speculate`]. Another executor (a batch scheduler, a cluster) goes
//! beside them in this module, behind the same evaluator.
//!
//! Invariant: the only place a build or a test command is run for a
//! bisection or a prebuild, each only under its claim, by its own file;
//! never decides which commit to evaluate (that is `search`'s and
//! `bisect`'s).

use crate::signature::KernelSignature;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::git::{GitError, Repo};
use crate::key::{self, BuildInputs, BuildKey, CommitId, RecipeInputs, TestInputs, TestKey};
use crate::store::{BuildRecord, BuildStatus, Cache, Counter, Outcome, RunRecord, StoreError};
pub use evidence::{Evidence, Verdict};
use predict::Reference;

mod build;
mod engine_slots;
pub mod environment;
pub mod evidence;
pub mod lookup;
pub mod parallel;
pub mod patch_test;
pub mod predict;
mod repro;
pub mod speculate;
pub mod step;
mod test;

pub use build::classify_failure;
pub use test::ARTIFACTS_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    /// A commit's build environment could not be had (a compiler not
    /// installed, a tag or fix the table names missing): nothing was built.
    #[error(transparent)]
    BuildEnv(Box<environment::EnvError>),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("test command aborted on commit {commit} (run {run}): {how}; a test must exit 0 (ok), 125 (cannot test) or 1-124 (crash)")]
    TestAborted { commit: CommitId, run: u32, how: String },
    /// A step the engine could not do (its jobs failed, or the engine
    /// did not answer): the machine's failure, never a verdict.
    #[error("{engine}: {reason}")]
    Engine { engine: &'static str, reason: String },
    #[error("reproducer harness on commit {commit}: {how}")]
    Repro { commit: CommitId, how: String },
    /// A patch layer that does not apply on the commit: nothing was built
    /// or recorded.
    #[error("patch {patch} does not apply on {commit}: {}\n{message}", hunks_words(&failure.hunks))]
    PatchDoesNotApply {
        commit: CommitId,
        patch: String,
        failure: crate::git::ApplyFailure,
        message: String,
    },
    /// A build that failed while its disk was full: the machine's failure,
    /// never the commit's (nothing is recorded), and nothing later would
    /// build either, so the bisection stops.
    #[error("the build of {commit} failed on a full disk ({} has {free} bytes free): not the commit's failure, \
             nothing was recorded; free some space (`kcache gc --max-size SIZE` for the cache) and run again{}",
        path.display(), match log_tail.trim() { "" => String::new(), t => format!("\nthe build log's last lines:\n{t}") })]
    DiskFull {
        commit: CommitId,
        path: PathBuf,
        free: u64,
        log_tail: String,
    },
}

/// Boxed: the environment's errors carry several names, and every
/// evaluation returns this type.
impl From<environment::EnvError> for EvalError {
    fn from(e: environment::EnvError) -> EvalError {
        EvalError::BuildEnv(Box::new(e))
    }
}

fn hunks_words(hunks: &[String]) -> String {
    match hunks {
        [] => "git names no hunk".into(),
        h => format!("the hunk(s) at {} failed", h.join(", ")),
    }
}

/// A patch applied on a commit's tree before it is built (a revert, a fix
/// under test, a backport): keyed by the BLAKE3 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// What it is, for people (a file name, "revert of <commit>").
    pub name: String,
    pub diff: Vec<u8>,
}

impl Patch {
    pub fn digest(&self) -> key::Key {
        key::digest(&self.diff)
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EvalError {
    let what = what.into();
    move |source| EvalError::Io { what, source }
}

/// What the user's build and test look like.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub build: String,
    pub test: String,
    pub config: Option<PathBuf>,
    /// Paths relative to the tree; the first is the vmlinux to sign.
    pub artifacts: Vec<String>,
    pub runs: u32,
    pub test_key_files: Vec<PathBuf>,
    pub key_files: Vec<PathBuf>,
    pub toolchain: String,
    pub arch: String,
    /// A build running longer is killed (with everything it started) and
    /// counts as a transient failure: not cached.
    pub build_timeout: Option<Duration>,
    /// A test run running longer is killed and gives no information.
    pub test_timeout: Option<Duration>,
    /// Build commits whose inputs are recorded as failing, instead of
    /// skipping them.
    pub retry_failed: bool,
    /// `--repro`: the test is kcache's reproducer harness on the boot
    /// image (`test` only describes it); its test key is the harness's.
    pub repro: Option<std::sync::Arc<crate::vm::ReproTest>>,
    /// `--jobs`: test runs at once (processes, or VMs with `repro`),
    /// shared by every batch this recipe's evaluator runs.
    pub jobs: u32,
    /// `--build-jobs`: builds at once: the one the search waits for and
    /// `build_jobs - 1` speculative ones in the background (1: none).
    pub build_jobs: u32,
    /// `--build-env`: each commit's compiler, config fixups and build
    /// fixes from this table (its compiler's identity replaces
    /// `toolchain` in the key). `None`: `toolchain` for every commit.
    pub build_env: Option<std::sync::Arc<crate::buildenv::Table>>,
    /// Prints the recipe's toolchain identity for a `$CC` (kbuild's
    /// `--identity`); `None`: the compiler's and linker's version lines.
    pub identity_command: Option<String>,
}

impl Recipe {
    /// A recipe of a build and a test command with the CLI's defaults
    /// otherwise (one artifact `vmlinux`, 10 runs, no config, no key or
    /// test-key files, no timeouts, one run and one build at a time); set
    /// the rest with struct update syntax. `toolchain` is part of the
    /// build key: name the compiler the build uses.
    pub fn new(build: impl Into<String>, test: impl Into<String>, toolchain: impl Into<String>) -> Recipe {
        Recipe {
            build: build.into(),
            test: test.into(),
            config: None,
            artifacts: vec!["vmlinux".into()],
            runs: 10,
            test_key_files: Vec::new(),
            key_files: Vec::new(),
            toolchain: toolchain.into(),
            arch: crate::kernel::host_arch(),
            build_timeout: None,
            test_timeout: None,
            retry_failed: false,
            repro: None,
            jobs: 1,
            build_jobs: 1,
            build_env: None,
            identity_command: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuildSource {
    /// Built now.
    Built,
    /// Build key known: signature and artifacts from the cache.
    Reused,
    /// Failed to build now.
    Failed,
    /// Known to fail to build: skipped without building.
    KnownBroken,
    /// Failed now for a reason that is not the commit's (a missing tool,
    /// a signal, a timeout, a missing artifact): reported, not cached.
    TransientFailure,
    /// Not built: no file an already-built commit's build read differs,
    /// so this commit has that build's kernel (see `predict`).
    Predicted,
}

impl BuildSource {
    /// As in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildSource::Built => "built",
            BuildSource::Reused => "reused",
            BuildSource::Failed => "failed",
            BuildSource::KnownBroken => "known-broken",
            BuildSource::TransientFailure => "transient-failure",
            BuildSource::Predicted => "predicted",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub build_key: BuildKey,
    pub build: BuildSource,
    pub signature: Option<KernelSignature>,
    pub verdict: Verdict,
    pub evidence: Evidence,
    #[serde(flatten)]
    pub effort: Effort,
    /// The commit whose build this one's was predicted equal to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_from: Option<CommitId>,
    /// The build record holding this kernel's artifacts when it is not
    /// `build_key`'s own (a predicted build).
    #[serde(skip)]
    pub reference_key: Option<BuildKey>,
    /// The runs behind the verdict, oldest first (for the log).
    #[serde(skip)]
    pub runs: Vec<RunRecord>,
    #[serde(skip)]
    pub log_tail: Option<String>,
    /// Why the build failed, when it did now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<BuildFailure>,
    /// The build environment the table gave this commit (`--build-env`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_env: Option<environment::Shown>,
}

impl Evaluation {
    /// Nothing known yet of the build with this key: no signature, no runs.
    pub fn empty(build_key: BuildKey) -> Evaluation {
        Evaluation {
            build_key,
            build: BuildSource::Reused,
            signature: None,
            verdict: Verdict::Skip,
            evidence: Evidence::default(),
            effort: Effort::default(),
            predicted_from: None,
            reference_key: None,
            runs: Vec::new(),
            log_tail: None,
            failure: None,
            build_env: None,
        }
    }
}

/// What a step (or a whole bisection) cost, and what the cache saved.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Effort {
    pub runs_done: u32,
    pub runs_reused: u32,
    pub build_seconds: f64,
    pub test_seconds: f64,
    pub saved_build_seconds: f64,
    pub saved_test_seconds: f64,
}

impl std::ops::AddAssign for Effort {
    fn add_assign(&mut self, o: Effort) {
        self.runs_done += o.runs_done;
        self.runs_reused += o.runs_reused;
        self.build_seconds += o.build_seconds;
        self.test_seconds += o.test_seconds;
        self.saved_build_seconds += o.saved_build_seconds;
        self.saved_test_seconds += o.saved_test_seconds;
    }
}

/// A build that failed in this process: why, and where its log is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BuildFailure {
    /// Cached as the commit's own failure (compiler output, exit 1-125),
    /// or transient (anything else; not cached, tried again next time).
    pub deterministic: bool,
    pub reason: String,
    pub log: PathBuf,
    /// The last lines of the log.
    pub tail: String,
}

impl BuildFailure {
    /// The last few non-empty lines, with commit ids and numbers blurred, so
    /// that failures of different commits for one cause compare equal.
    pub fn signature_tail(&self) -> String {
        let lines: Vec<&str> = self.tail.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..]
            .iter()
            .map(|l| {
                l.split(|c: char| c.is_whitespace() || c == ':')
                    .map(|w| if w.chars().any(|c| c.is_ascii_digit()) { "#" } else { w })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// What the cache knows of a commit under a recipe and test, worst to best
/// for picking the next commit to test: a known build failure is avoided,
/// a kernel with enough runs costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheState {
    BuildFails,
    Unknown,
    Built,
    Tested,
}

/// Evaluates commits with one recipe; owns the worktree it builds in.
pub struct CommitEvaluator {
    recipe: Recipe,
    inputs: RecipeInputs,
    test_key: TestKey,
    worktree: PathBuf,
    /// Where the build log and the config copy go (never inside the user's tree).
    state: PathBuf,
    /// Build in `worktree` as is (no checkout): `kcache exec` under `git bisect run`.
    in_place: bool,
    /// Off when the user says so or after a contradicted prediction.
    predict: bool,
    /// Builds of this bisection with an input set, newest first.
    references: Vec<Reference>,
    /// Builds run to test a kernel whose artifacts were gone (evicted or
    /// quarantined), and their seconds: real builds, counted as such.
    rebuilt_to_test: std::sync::Mutex<(u32, f64)>,
    /// Test runs that timed out (attempts, not recorded): a batch makes up
    /// to twice its runs in attempts, so its short count undercounts them.
    timed_out: std::sync::atomic::AtomicU32,
    /// The run slots (`Recipe::jobs`) every batch of this evaluator shares.
    slots: std::sync::Arc<parallel::Slots>,
    /// Where builds and runs happen when not in this process's slots.
    engine: Option<std::sync::Arc<crate::engine::Engine>>,
    /// Each commit's build environment, when the recipe has a table.
    environments: Option<environment::Environments>,
}

impl CommitEvaluator {
    /// `worktree` is where builds run; `state` holds the build log and the
    /// config copy; `in_place` builds whatever is checked out in `worktree`.
    pub fn new(
        recipe: Recipe,
        worktree: PathBuf,
        state: PathBuf,
        in_place: bool,
    ) -> Result<CommitEvaluator, EvalError> {
        let inputs = RecipeInputs::resolve(
            &recipe.build,
            recipe.config.as_deref(),
            &recipe.key_files,
            recipe.toolchain.clone(),
            recipe.arch.clone(),
        )
        .map_err(file_error)?;
        let test_key = match &recipe.repro {
            Some(r) => r.harness.test_inputs().key(),
            None => TestInputs::from_files(recipe.test.clone(), &recipe.test_key_files, Vec::new())
                .map_err(file_error)?
                .key(),
        };
        let recipe_jobs = recipe.jobs;
        let environments = match &recipe.build_env {
            Some(table) => Some(environment::Environments::new(
                table.clone(),
                recipe.identity_command.clone(),
                recipe.config.as_deref(),
            )?),
            None => None,
        };
        Ok(CommitEvaluator {
            recipe,
            inputs,
            test_key,
            worktree,
            state,
            in_place,
            predict: true,
            references: Vec::new(),
            rebuilt_to_test: std::sync::Mutex::new((0, 0.0)),
            timed_out: Default::default(),
            slots: parallel::Slots::new(recipe_jobs),
            engine: None,
            environments,
        })
    }

    /// Turns no-op prediction on or off (it starts on).
    pub fn set_prediction(&mut self, on: bool) {
        self.predict = on;
    }

    /// The build inputs of a commit: the recipe's for its tree, in the
    /// commit's build environment when the recipe has a table.
    pub fn inputs_of(&self, repo: &Repo, commit: &CommitId) -> Result<BuildInputs, EvalError> {
        let base = self.inputs.for_tree(&repo.tree_id(commit)?);
        Ok(match self.environment_of(repo, commit)? {
            Some(env) => environment::Environments::inputs(base, &env),
            None => base,
        })
    }

    /// Whether commits are built in environments from a table (`--build-env`).
    pub fn has_build_env(&self) -> bool {
        self.environments.is_some()
    }

    /// Resolves the build environments of `commits` (the ends of a
    /// bisection, a prebuild's range) before anything is built: a compiler
    /// one of them needs that is not installed stops here.
    pub fn check_environments(&self, repo: &Repo, commits: &[CommitId]) -> Result<(), EvalError> {
        for c in commits {
            self.environment_of(repo, c)?;
        }
        Ok(())
    }

    /// The commit's build environment (`None` without a table).
    pub fn environment_of(
        &self,
        repo: &Repo,
        commit: &CommitId,
    ) -> Result<Option<std::sync::Arc<environment::CommitEnv>>, EvalError> {
        match &self.environments {
            Some(envs) => Ok(Some(envs.of(repo, commit)?)),
            None => Ok(None),
        }
    }

    /// How much of each commit's work the cache already has.
    pub fn cache_states(&self, repo: &Repo, cache: &Cache, commits: &[CommitId]) -> Result<Vec<CacheState>, EvalError> {
        // One read of git for every tree, then each commit's key.
        repo.tree_ids(commits)?;
        let keys = commits
            .iter()
            .map(|c| Ok(self.inputs_of(repo, c)?.key()))
            .collect::<Result<Vec<BuildKey>, EvalError>>()?;
        let wanted = self.recipe.runs;
        let scores = cache.view(|v| {
            let mut out = Vec::with_capacity(commits.len());
            for key in &keys {
                let score = match v.build(key)? {
                    None => CacheState::Unknown,
                    Some(b) if b.status == BuildStatus::Failed => CacheState::BuildFails,
                    Some(b) => {
                        let runs = match &b.signature {
                            Some(signature) => v.runs(signature, &self.test_key)?,
                            None => Vec::new(),
                        };
                        if Evidence::of(&runs).needs_more(wanted) {
                            CacheState::Built
                        } else {
                            CacheState::Tested
                        }
                    }
                };
                out.push(score);
            }
            Ok(out)
        })?;
        Ok(scores)
    }

    /// What the cache already says of a commit's kernel under this test,
    /// without building or testing: its signature and pooled runs.
    pub fn cached_evidence(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
    ) -> Result<Option<(KernelSignature, Evidence)>, EvalError> {
        let Some(signature) = cache.build(&self.key_of(repo, commit)?)?.and_then(|b| b.signature) else {
            return Ok(None);
        };
        let evidence = Evidence::of(&cache.runs(&signature, &self.test_key)?);
        // Too few runs to call it good yet: a bisection would test more.
        if evidence.needs_more(self.recipe.runs) {
            return Ok(None);
        }
        Ok(Some((signature, evidence)))
    }

    /// Builds (or reuses) and tests (or reuses) one commit.
    pub fn evaluate(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        let eval = self.build_or_predict(repo, cache, commit, true, progress)?;
        let wanted = self.recipe.runs;
        self.test_evaluation(repo, cache, commit, eval, wanted, progress)
    }

    /// Builds (or reuses) `commit` with `patches` applied in order, and
    /// tests (or reuses runs of) its kernel until it has `runs` runs or
    /// one crashes. A patch that does not apply is
    /// [`EvalError::PatchDoesNotApply`].
    pub fn evaluate_patched(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        patches: &[Patch],
        runs: u32,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        let eval = self.build_with_patches(repo, cache, commit, patches, progress)?;
        self.test_evaluation(repo, cache, commit, eval, runs, progress)
    }

    /// Tests a built (or reused) kernel up to `wanted` runs, pooled.
    fn test_evaluation(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        mut eval: Evaluation,
        wanted: u32,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        let Some(signature) = eval.signature.clone() else {
            return Ok(eval);
        };
        // A kernel this process just built has no local runs unless another
        // commit had it too; the claimed read below finds those, so only a
        // remote is worth a look first.
        let fresh = eval.build == BuildSource::Built && cache.remote().is_none();
        let mut runs = if fresh {
            Vec::new()
        } else {
            cache.runs_shared(&signature, &self.test_key, wanted)?
        };
        let mut reused = Evidence::of(&runs).total();
        if Evidence::of(&runs).needs_more(wanted) {
            let record_key = eval.reference_key.unwrap_or(eval.build_key);
            let more = |pooled: &[RunRecord]| {
                let e = Evidence::of(pooled);
                if e.needs_more(wanted) {
                    wanted - e.total()
                } else {
                    0
                }
            };
            // A crash decides the old rule's verdict; more runs cannot change it.
            let crashed = |r: &RunRecord| r.outcome == Outcome::Crash;
            let rebuilt_before = self.rebuilds_to_test();
            let (pooled, new_runs) =
                self.test_claimed(repo, cache, commit, record_key, &signature, &more, &crashed, progress)?;
            let rebuilt = self.rebuilds_to_test();
            if rebuilt.0 > rebuilt_before.0 {
                // Its artifacts were gone: the kernel was built again here.
                eval.build = BuildSource::Built;
                eval.effort.build_seconds += rebuilt.1 - rebuilt_before.1;
                eval.effort.saved_build_seconds = 0.0;
            }
            reused = pooled.len() as u32;
            eval.effort.runs_done = new_runs.len() as u32;
            eval.effort.test_seconds = new_runs.iter().map(|r| r.seconds).sum();
            runs = pooled;
            runs.extend(new_runs);
        }
        if eval.effort.runs_done == 0 {
            progress(&format!(
                "  reused {reused} test run(s) of signature {}",
                key::short(&signature)
            ));
        }
        eval.effort.saved_test_seconds = runs.iter().take(reused as usize).map(|r| r.seconds).sum();
        eval.effort.runs_reused = reused;
        eval.evidence = Evidence::of(&runs);
        eval.verdict = eval.evidence.verdict().unwrap_or(Verdict::Skip);
        eval.runs = runs;
        cache.count(&[
            (
                if eval.effort.runs_done == 0 {
                    Counter::TestHits
                } else {
                    Counter::TestMisses
                },
                1,
            ),
            (Counter::SavedTestMs, (eval.effort.saved_test_seconds * 1000.0) as i64),
        ]);
        progress(&format!("  {} ({})", eval.verdict.as_str(), describe(&eval.evidence)));
        Ok(eval)
    }

    /// How many builds (and their seconds) this evaluator ran to test a
    /// kernel whose artifacts were gone: a driver that counts builds by
    /// step adds them (the classic `evaluate` marks its step built).
    pub fn rebuilds_to_test(&self) -> (u32, f64) {
        *self.rebuilt_to_test.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Test runs of this evaluator that timed out so far (each attempt).
    pub fn runs_timed_out(&self) -> u32 {
        self.timed_out.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Test runs this evaluator does at once (`--jobs`).
    pub fn jobs(&self) -> u32 {
        self.slots.total()
    }

    /// The build key of a commit under this recipe.
    pub fn key_of(&self, repo: &Repo, commit: &CommitId) -> Result<BuildKey, EvalError> {
        Ok(self.inputs_of(repo, commit)?.key())
    }

    /// The test key runs are pooled under.
    pub fn test_key(&self) -> TestKey {
        self.test_key
    }

    /// The recipe this evaluator builds and tests with.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Test runs per kernel the user asked for.
    pub fn runs_wanted(&self) -> u32 {
        self.recipe.runs
    }

    /// The local tier's build record for a commit (no remote request).
    pub fn cached_build_local(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
    ) -> Result<Option<BuildRecord>, EvalError> {
        let key = self.key_of(repo, commit)?;
        Ok(cache.view(|v| v.build(&key))?)
    }
}

/// Waits for a claim (a lock under `<cache>/locks/`) that another kcache
/// process may hold; the OS releases it when its holder dies.
fn claim(cache: &Cache, name: &str, progress: &mut dyn FnMut(&str)) -> Result<std::fs::File, EvalError> {
    let dir = cache.dir().join("locks");
    std::fs::create_dir_all(&dir).map_err(io_err(format!("lock directory {}", dir.display())))?;
    lock_file(
        &dir.join(format!("{name}.lock")),
        "another kcache process is doing the same work; its result will be reused",
        progress,
    )
}

/// An exclusive lock on a file, waited for (builds are long) and reported
/// when another process holds it.
fn lock_file(path: &Path, waiting_for: &str, progress: &mut dyn FnMut(&str)) -> Result<std::fs::File, EvalError> {
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(format!("lock {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => progress(&format!("  waiting: {waiting_for}")),
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(format!("lock {}", path.display()))(e)),
    }
    file.lock().map_err(io_err(format!("lock {}", path.display())))?;
    Ok(file)
}

fn file_error(e: key::FileError) -> EvalError {
    EvalError::Io {
        what: e.path.display().to_string(),
        source: e.source,
    }
}

pub fn describe(e: &Evidence) -> String {
    let mut parts = vec![format!("{} ok", e.ok)];
    if e.crash > 0 {
        parts.push(format!("{} crashed", e.crash));
    }
    if e.infra > 0 {
        parts.push(format!("{} could not test", e.infra));
    }
    if e.boot_failed > 0 {
        parts.push(format!("{} boot failed", e.boot_failed));
    }
    if let Some(t) = e.titles.first() {
        parts.push(format!("\"{t}\""));
    }
    parts.join(", ")
}
