//! Evaluating one commit through the cache: reuse what is known, build and
//! test what is not, record everything as it completes.

use crate::signature::KernelSignature;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::evidence::{Evidence, Verdict};
use super::predict::{self, Prediction, Reference};
use crate::child::{self, Ending};
use crate::git::{self, GitError, Repo};
use crate::kernel::inputs;
use crate::key::{self, BuildInputs, BuildKey, CommitId, RecipeInputs, TestInputs, TestKey, TreeId};
use crate::store::{self, BuildRecord, BuildStatus, Cache, Counter, InputSet, Outcome, RunRecord, StoreError};

/// Lines of build output kept in a failure record.
const LOG_TAIL_LINES: usize = 40;

/// How long completed runs may wait to be written. Runs are written in one
/// batch per kernel when they are quick (an index open costs milliseconds,
/// a toy run less), and each on its own when a run takes longer than this:
/// a killed bisection loses at most this much testing.
const RUN_SAVE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("test command aborted on commit {commit} (run {run}): {how}; a test must exit 0 (ok), 125 (cannot test) or 1-124 (crash)")]
    TestAborted { commit: String, run: u32, how: String },
    #[error("reproducer harness on commit {commit}: {how}")]
    Repro { commit: String, how: String },
    /// A build that failed while its disk was full: the machine's failure,
    /// never the commit's (nothing is recorded), and nothing later would
    /// build either, so the bisection stops.
    #[error("the build of {commit} failed on a full disk ({} has {free} bytes free): not the commit's failure, \
             nothing was recorded; free some space (`kcache gc --max-size SIZE` for the cache) and run again{}",
        path.display(), match log_tail.trim() { "" => String::new(), t => format!("\nthe build log's last lines:\n{t}") })]
    DiskFull {
        commit: String,
        path: PathBuf,
        free: u64,
        log_tail: String,
    },
}

/// Less free space than this where a build writes is a full disk.
const DISK_FULL_BELOW: u64 = 1 << 20;

/// Bytes available to unprivileged writers on the file system of `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statvfs.
    match unsafe { libc::statvfs(c.as_ptr(), &mut st) } {
        0 => Some(st.f_bavail as u64 * st.f_frsize as u64),
        _ => None,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// What a build run gave.
enum Built {
    /// Built and stored, with what the build read (kbuild builds).
    Ok(Box<BuildRecord>, Option<InputSet>),
    /// Failed; recorded in the cache only when `failure.deterministic`.
    Failed { failure: BuildFailure, seconds: f64 },
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
    rebuilt_to_test: std::cell::Cell<(u32, f64)>,
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
        Ok(CommitEvaluator {
            recipe,
            inputs,
            test_key,
            worktree,
            state,
            in_place,
            predict: true,
            references: Vec::new(),
            rebuilt_to_test: std::cell::Cell::new((0, 0.0)),
        })
    }

    /// Turns no-op prediction on or off (it starts on).
    pub fn set_prediction(&mut self, on: bool) {
        self.predict = on;
    }

    pub fn inputs_for_tree(&self, tree: &TreeId) -> BuildInputs {
        self.inputs.for_tree(tree)
    }

    /// How much of each commit's work the cache already has.
    pub fn cache_states(&self, repo: &Repo, cache: &Cache, commits: &[String]) -> Result<Vec<CacheState>, EvalError> {
        let trees = repo.tree_ids(commits)?;
        let wanted = self.recipe.runs;
        let scores = cache.view(|v| {
            let mut out = Vec::with_capacity(commits.len());
            for c in commits {
                let Some((_, tree)) = trees.iter().find(|(cc, _)| cc == c) else {
                    out.push(CacheState::Unknown);
                    continue;
                };
                let score = match v.build(&self.inputs_for_tree(tree).key())? {
                    None => CacheState::Unknown,
                    Some(b) if b.status == BuildStatus::Failed => CacheState::BuildFails,
                    Some(b) => {
                        let runs = v.runs(b.signature.as_deref().unwrap_or_default(), &self.test_key)?;
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
        commit: &str,
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
        commit: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        let mut eval = self.build_or_predict(repo, cache, commit, true, progress)?;
        let Some(signature) = eval.signature.clone() else {
            return Ok(eval);
        };
        let wanted = self.recipe.runs;
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
                super::short(&signature)
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

    /// Builds (or reuses) one commit and signs it, no test; a kernel may be
    /// predicted instead when `may_predict` (and prediction is on).
    pub fn build_or_predict(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        may_predict: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        let tree = repo.tree_id(commit)?;
        let inputs = self.inputs_for_tree(&tree);
        let build_key = inputs.key();
        let mut eval = Evaluation::empty(build_key);
        if let Some(r) = self.known_build(cache, &build_key, progress)? {
            self.reuse(cache, r, &mut eval, progress)?;
            return Ok(eval);
        }
        if may_predict && self.predict {
            if let Some(reference) = self.predict_from_references(repo, commit, progress)? {
                eval.build = BuildSource::Predicted;
                eval.signature = Some(reference.signature.clone());
                eval.predicted_from = Some(reference.commit.clone());
                eval.reference_key = Some(reference.build_key);
                cache.count(&[(Counter::BuildsPredicted, 1)]);
                return Ok(eval);
            }
        }
        // One builder per build key across processes and clones: whoever
        // waited here finds the other's record and reuses it. The claim is
        // a lock, so a builder that dies releases it.
        let claim = claim(cache, &format!("build-{}", build_key.to_hex()), progress)?;
        if let Some(r) = self.known_build(cache, &build_key, progress)? {
            self.reuse(cache, r, &mut eval, progress)?;
            return Ok(eval);
        }
        let built = self.build(repo, cache, commit, &inputs, progress)?;
        drop(claim);
        cache.count(&[(Counter::BuildMisses, 1)]);
        match built {
            Built::Ok(r, set) => {
                eval.effort.build_seconds = r.build_seconds;
                if let Some(set) = set {
                    self.add_reference(&r, &set);
                }
                eval.build = BuildSource::Built;
                eval.signature = r.signature.clone();
            }
            Built::Failed { failure, seconds } => {
                eval.effort.build_seconds = seconds;
                eval.build = if failure.deterministic {
                    BuildSource::Failed
                } else {
                    BuildSource::TransientFailure
                };
                eval.log_tail = Some(failure.tail.clone());
                eval.failure = Some(failure);
            }
        }
        Ok(eval)
    }

    /// The cache's build record for a key, unless it is a failure the user
    /// asked to retry.
    fn known_build(
        &self,
        cache: &Cache,
        key: &BuildKey,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<BuildRecord>, EvalError> {
        match cache.build(key)? {
            Some(r) if r.status != BuildStatus::Ok && self.recipe.retry_failed => {
                progress(&format!(
                    "  retrying a recorded build failure (--retry-failed, key {})",
                    key.short()
                ));
                Ok(None)
            }
            other => Ok(other),
        }
    }

    fn reuse(
        &mut self,
        cache: &Cache,
        r: BuildRecord,
        eval: &mut Evaluation,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), EvalError> {
        eval.effort.saved_build_seconds = r.build_seconds;
        eval.build = if r.status == BuildStatus::Ok {
            BuildSource::Reused
        } else {
            BuildSource::KnownBroken
        };
        progress(&format!(
            "  build reused ({}, key {})",
            if r.status == BuildStatus::Ok {
                "signature known"
            } else {
                "known to fail; --retry-failed builds it again"
            },
            r.build_key.short()
        ));
        cache.count(&[
            (Counter::BuildHits, 1),
            (Counter::SavedBuildMs, (r.build_seconds * 1000.0) as i64),
        ]);
        if self.predict && r.status == BuildStatus::Ok {
            self.remember_reference(cache, &r)?;
        }
        eval.signature = r.signature.clone();
        eval.log_tail = r.log_tail.clone();
        Ok(())
    }

    /// Makes a successful build with a recorded input set available for
    /// predicting other commits, newest first.
    fn remember_reference(&mut self, cache: &Cache, record: &BuildRecord) -> Result<(), EvalError> {
        if self.references.iter().any(|r| r.build_key == record.build_key) {
            return Ok(());
        }
        if let Some(set) = cache.input_set(&record.build_key)? {
            self.add_reference(record, &set);
        }
        Ok(())
    }

    fn add_reference(&mut self, record: &BuildRecord, set: &InputSet) {
        let Some(signature) = &record.signature else { return };
        if self.references.iter().all(|r| r.build_key != record.build_key) {
            let reference = Reference::new(record.commit.clone(), signature.clone(), set);
            self.references.insert(0, reference);
        }
    }

    /// The first reference build whose kernel this commit provably shares.
    fn predict_from_references(
        &self,
        repo: &Repo,
        commit: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<&Reference>, EvalError> {
        match predict::predict(repo, &self.references, commit)? {
            Prediction::Same { reference, changed } => {
                progress(&format!(
                    "  predicted: same kernel as {} ({changed} file(s) changed, none read by its build), signature {}",
                    super::short(&reference.commit),
                    super::short(&reference.signature)
                ));
                Ok(Some(reference))
            }
            Prediction::Unknown { blocker } => {
                if let Some((reference, b)) = blocker {
                    progress(&format!(
                        "  not predictable from {}: {} ({})",
                        super::short(&reference.commit),
                        b.path,
                        b.why
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Keeps what a kbuild build read, for predicting other commits.
    fn record_input_set(&self, cache: &Cache, record: &BuildRecord) -> Result<Option<InputSet>, EvalError> {
        let set = inputs::record(&self.worktree, record.build_key, &record.commit).map_err(|e| EvalError::Io {
            what: format!("input set of {}", e.path.display()),
            source: e.source,
        })?;
        if let Some(set) = &set {
            cache.put_input_set(set)?;
        }
        Ok(set)
    }

    fn artifact_paths(&self) -> Vec<(String, PathBuf)> {
        let names = if self.recipe.artifacts.is_empty() {
            vec!["vmlinux".to_string()]
        } else {
            self.recipe.artifacts.clone()
        };
        names.into_iter().map(|n| (n.clone(), self.worktree.join(&n))).collect()
    }

    fn build(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        inputs: &BuildInputs,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Built, EvalError> {
        let state = self.state.clone();
        std::fs::create_dir_all(&state).map_err(io_err(format!("state dir {}", state.display())))?;
        // Held from checkout to input-set record: another bisection of the
        // same repository shares the worktree and must not switch commits
        // under this build.
        let _worktree_lock = lock_file(
            &state.join("worktree.lock"),
            "the worktree: another kcache process is building in it",
            progress,
        )?;
        if !self.in_place {
            repo.ensure_build_tree(&self.worktree)?;
            git::checkout(&self.worktree, commit)?;
        }
        let mut env = vec![
            ("KCACHE_COMMIT", commit.into()),
            ("KCACHE_CACHE_DIR", cache.dir().as_os_str().to_owned()),
        ];
        if let Some(cfg) = &self.recipe.config {
            let copy = state.join("config");
            std::fs::copy(cfg, &copy).map_err(io_err(format!("config {}", cfg.display())))?;
            env.push(("KCACHE_CONFIG", copy.into_os_string()));
        }
        progress("  building...");
        let start = Instant::now();
        let log_path = state.join("build.log");
        let ending = child::run(
            &child::Spec {
                script: &self.recipe.build,
                dir: &self.worktree,
                env,
                timeout: self.recipe.build_timeout,
                log: Some(log_path.clone()),
            },
            |_| {},
        )
        .map_err(io_err(format!("build command `{}`", self.recipe.build)))?;
        let seconds = start.elapsed().as_secs_f64();
        let missing = self.artifact_paths().into_iter().find(|(_, p)| !p.is_file());
        if ending == Ending::Exited(0) && missing.is_none() {
            let artifacts = self.artifact_paths();
            let signature = crate::signature::sign_file(&artifacts[0].1).map_err(StoreError::from)?;
            let record = cache.put_build(commit, inputs, &signature.into(), &artifacts, seconds)?;
            let set = self.record_input_set(cache, &record)?;
            progress(&format!(
                "  built in {seconds:.1}s, signature {}",
                super::short(record.signature.as_deref().unwrap_or(""))
            ));
            return Ok(Built::Ok(Box::new(record), set));
        }
        let mut tail = tail_of(&log_path);
        if let (Ending::Exited(0), Some((name, path))) = (ending, &missing) {
            tail.push_str(&format!(
                "\nkcache: the build exited 0 but produced no {name} ({})",
                path.display()
            ));
        }
        if let Some((path, free)) = self.full_disk(cache, &tail) {
            return Err(EvalError::DiskFull {
                commit: commit.to_string(),
                path,
                free,
                log_tail: tail,
            });
        }
        let (deterministic, reason) = classify_failure(ending, &tail);
        // Kept apart from build.log, which the next build overwrites.
        let kept = state.join(format!("build-failed-{}.log", super::short(commit)));
        let log = match std::fs::copy(&log_path, &kept) {
            Ok(_) => kept,
            Err(_) => log_path,
        };
        let failure = BuildFailure {
            deterministic,
            reason,
            log,
            tail,
        };
        progress(&failure_report(&failure, seconds));
        if deterministic {
            cache.put_build_failure(commit, inputs, &failure.tail, seconds)?;
        }
        Ok(Built::Failed { failure, seconds })
    }

    /// Where a failed build ran out of disk: the build tree's or the
    /// cache's file system with (nearly) nothing free, or a log that says
    /// so (the space may be free again once the build's files are gone).
    fn full_disk(&self, cache: &Cache, tail: &str) -> Option<(PathBuf, u64)> {
        let places = [self.worktree.as_path(), cache.dir()];
        let free = |p: &Path| free_bytes(p).map(|f| (p.to_path_buf(), f));
        places
            .iter()
            .filter_map(|p| free(p))
            .find(|(_, f)| *f < DISK_FULL_BELOW)
            .or_else(|| {
                tail.contains("No space left on device")
                    .then(|| free(&self.worktree))
                    .flatten()
            })
    }

    /// Runs the test up to `want` times (run numbers from `first_run`),
    /// stopping after a run for which `stop` is true. The caller holds the
    /// kernel's test claim.
    #[allow(clippy::too_many_arguments)]
    fn test(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        record: &BuildRecord,
        signature: &KernelSignature,
        first_run: u32,
        want: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let artifacts_dir = tempfile::Builder::new()
            .prefix(ARTIFACTS_PREFIX)
            .tempdir_in(cache.dir())
            .map_err(io_err("artifacts dir"))?;
        // Held while testing: `Cache::clean_stale` leaves a locked directory alone.
        let in_use = artifacts_dir.path().join(store::ARTIFACTS_LOCK);
        let _in_use = std::fs::File::create(&in_use)
            .and_then(|f| f.try_lock().map_err(std::io::Error::other).map(|_| f))
            .map_err(io_err(format!("artifacts lock {}", in_use.display())))?;
        let restored = cache.restore_build(record, artifacts_dir.path());
        if restored.as_ref().is_err_and(StoreError::is_gone) {
            // Artifacts gone (evicted, or quarantined as corrupt): build again to test.
            progress("  artifacts were evicted: rebuilding to test");
            // The record's own commit: a predicted kernel's artifacts are its reference's.
            let inputs = self.inputs_for_tree(&record.tree);
            let built = self.build(repo, cache, &record.commit, &inputs, progress)?;
            cache.count(&[(Counter::BuildMisses, 1)]);
            let (n, seconds) = self.rebuilt_to_test.get();
            let took = match &built {
                Built::Ok(r, _) => r.build_seconds,
                Built::Failed { seconds, .. } => *seconds,
            };
            self.rebuilt_to_test.set((n + 1, seconds + took));
            match built {
                Built::Ok(fresh, _) => {
                    cache.restore(&fresh.artifacts, artifacts_dir.path())?;
                }
                _ => {
                    progress("  the rebuild failed: no test");
                    return Ok(Vec::new());
                }
            }
        } else {
            restored?;
        }
        let mut out = Vec::new();
        let mut unsaved = 0;
        let mut saved_at = Instant::now();
        progress(&format!("  testing {want} run(s)..."));
        // Timed-out runs are not recorded: bound the attempts on a hung kernel.
        let attempts = want.saturating_mul(2).max(want + 2);
        for run in first_run..first_run + attempts {
            if out.len() as u32 >= want {
                break;
            }
            let ran = self.run_test(cache, commit, signature, artifacts_dir.path(), run);
            let Some(r) = ran.inspect_err(|_| self.save_runs(cache, &out[out.len() - unsaved..]))? else {
                let after = (self.recipe.test_timeout)
                    .map(|t| format!(" after {}s", t.as_secs_f64()))
                    .unwrap_or_default();
                progress(&format!("  run {run} timed out{after}: no information (not recorded)"));
                continue;
            };
            let done = stop(&r);
            out.push(r);
            unsaved += 1;
            if saved_at.elapsed() >= RUN_SAVE_INTERVAL {
                cache.record_runs(&out[out.len() - unsaved..])?;
                (unsaved, saved_at) = (0, Instant::now());
            }
            if done {
                break;
            }
        }
        cache.record_runs(&out[out.len() - unsaved..])?;
        Ok(out)
    }

    /// Best effort on the way out of a failed test batch: the runs that
    /// did complete are evidence worth keeping.
    fn save_runs(&self, cache: &Cache, runs: &[RunRecord]) {
        if let Err(e) = cache.record_runs(runs) {
            crate::warn(&format!("{} completed run(s) not recorded: {e}", runs.len()));
        }
    }

    /// Runs the test on a built kernel up to `want` times, stopping after a
    /// run for which `stop` is true; every run is recorded as it completes.
    /// Runs another process did on the kernel while this one waited for
    /// its test claim count as the batch's (returned first): a concurrent
    /// search of the range does not run a full batch again (issue 27).
    #[allow(clippy::too_many_arguments)]
    pub fn test_batch(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        signature: &KernelSignature,
        want: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let key = self.key_of(repo, commit)?;
        let before: std::collections::HashSet<String> = cache
            .view(|v| v.runs(signature, &self.test_key))?
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        let landed = |pooled: &[RunRecord]| -> Vec<RunRecord> {
            pooled.iter().filter(|r| !before.contains(&r.run_id)).cloned().collect()
        };
        let more = |pooled: &[RunRecord]| {
            let landed = landed(pooled);
            match landed.iter().any(stop) {
                true => 0,
                false => want.saturating_sub(landed.len() as u32),
            }
        };
        let (pooled, new_runs) = self.test_claimed(repo, cache, commit, key, signature, &more, stop, progress)?;
        let mut runs = landed(&pooled);
        if !runs.is_empty() {
            progress(&format!(
                "  {} run(s) another kcache process did on this kernel meanwhile: counted",
                runs.len()
            ));
        }
        runs.extend(new_runs);
        Ok(runs)
    }

    /// Under the kernel's test claim (one tester per kernel and test across
    /// processes: a concurrent bisection testing it finishes first, and its
    /// runs are pooled here): the pooled runs, then `more(pooled)` new runs
    /// on the artifacts of build `record_key`, stopping after a run for
    /// which `stop` is true.
    #[allow(clippy::too_many_arguments)]
    fn test_claimed(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        record_key: BuildKey,
        signature: &KernelSignature,
        more: &dyn Fn(&[RunRecord]) -> u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(Vec<RunRecord>, Vec<RunRecord>), EvalError> {
        let _claim = claim(cache, &format!("test-{signature}-{}", self.test_key.to_hex()), progress)?;
        let (pooled, local) = cache.view(|v| Ok((v.runs(signature, &self.test_key)?, v.build(&record_key)?)))?;
        let want = more(&pooled);
        if want == 0 {
            return Ok((pooled, Vec::new()));
        }
        let record = match local {
            Some(r) => Some(r),
            None => cache.build(&record_key)?,
        };
        let record = record.ok_or_else(|| EvalError::Io {
            what: format!("build record {record_key} of {commit}"),
            source: std::io::Error::other("not in the cache: the kernel must be built before it is tested"),
        })?;
        let first = pooled.len() as u32;
        let new_runs = self.test(repo, cache, commit, &record, signature, first, want, stop, progress)?;
        Ok((pooled, new_runs))
    }

    /// How many builds (and their seconds) this evaluator ran to test a
    /// kernel whose artifacts were gone: a driver that counts builds by
    /// step adds them (the classic `evaluate` marks its step built).
    pub fn rebuilds_to_test(&self) -> (u32, f64) {
        self.rebuilt_to_test.get()
    }

    /// The build key of a commit under this recipe.
    fn key_of(&self, repo: &Repo, commit: &str) -> Result<BuildKey, EvalError> {
        Ok(self.inputs_for_tree(&repo.tree_id(commit)?).key())
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
        commit: &str,
    ) -> Result<Option<BuildRecord>, EvalError> {
        let key = self.key_of(repo, commit)?;
        Ok(cache.view(|v| v.build(&key))?)
    }

    /// One run of the test; `None` when it timed out (no information).
    /// The test's stdout and stderr go to a file; its console is the file
    /// it leaves at `KCACHE_CONSOLE`, or else that output. A crash's title
    /// is the last `crash: TITLE` line it printed, or else the console's
    /// ([`crate::title`]); the console is kept in the cache (bounded).
    fn run_test(
        &self,
        cache: &Cache,
        commit: &str,
        signature: &KernelSignature,
        artifacts: &Path,
        run: u32,
    ) -> Result<Option<RunRecord>, EvalError> {
        if let Some(repro) = &self.recipe.repro {
            return super::repro::run(repro, cache, self.test_key, commit, signature, artifacts, run);
        }
        let start = Instant::now();
        let scratch = tempfile::Builder::new()
            .prefix("kcache-run-")
            .tempdir()
            .map_err(io_err("test run scratch directory"))?;
        let output = scratch.path().join("output.log");
        let console_file = scratch.path().join("console.log");
        // The artifacts directory exists whether the kernel was built here,
        // restored from the local cache or fetched from the remote.
        let ending = child::run(
            &child::Spec {
                script: &self.recipe.test,
                dir: artifacts,
                env: vec![
                    ("KCACHE_ARTIFACTS", artifacts.as_os_str().to_owned()),
                    ("KCACHE_SIGNATURE", signature.as_str().into()),
                    ("KCACHE_COMMIT", commit.into()),
                    ("KCACHE_RUN", run.to_string().into()),
                    ("KCACHE_CONSOLE", console_file.as_os_str().to_owned()),
                ],
                timeout: self.recipe.test_timeout,
                log: Some(output.clone()),
            },
            |_| {},
        )
        .map_err(io_err(format!("test command `{}`", self.recipe.test)))?;
        let mut title = crate::title::console::printed_title(&output);
        let code = match ending {
            Ending::TimedOut(_) => return Ok(None),
            Ending::Exited(code) => code,
        };
        let outcome = match code {
            0 => Outcome::Ok,
            125 => Outcome::Infra,
            // sh's "cannot execute" and "not found": a broken test setup
            // (a relative path, say: tests run in the artifacts directory),
            // never a crash of the kernel.
            c @ (126 | 127) => {
                return Err(EvalError::TestAborted {
                    commit: commit.to_string(),
                    run,
                    how: format!(
                        "exit status {c}: the shell could not run `{}`: {}",
                        self.recipe.test,
                        child::why_not_run(&self.recipe.test, artifacts)
                    ),
                })
            }
            c if (1..128).contains(&c) => Outcome::Crash,
            c => {
                return Err(EvalError::TestAborted {
                    commit: commit.to_string(),
                    run,
                    how: format!("exit status {c} (killed by signal {})", c - 128),
                })
            }
        };
        let console = crate::title::console::tail(if console_file.is_file() { &console_file } else { &output });
        if outcome == Outcome::Crash && title.is_none() {
            title = crate::title::title(&console).map(|r| r.title);
        }
        if outcome == Outcome::Crash && title.is_none() {
            title = Some(format!("crash (exit status {code})"));
        }
        let title = if outcome == Outcome::Crash { title } else { None };
        let seconds = start.elapsed().as_secs_f64();
        let mut run = RunRecord::new(signature, self.test_key, outcome, title, seconds, Some(commit));
        if !console.is_empty() {
            match cache.put_console(&console) {
                Ok(key) => run.log_blob = Some(key),
                Err(e) => crate::warn(&format!(
                    "the console of run {run} on {commit} was not kept: {e}",
                    run = run.run_id
                )),
            }
        }
        Ok(Some(run))
    }
}

/// Prefix of the directories tests run in under the cache: removed when a
/// killed kcache left them behind (`store::Cache::clean_stale`).
pub const ARTIFACTS_PREFIX: &str = crate::store::ARTIFACTS_PREFIX;

/// Whether a failed build is the commit's own failure, and why. Only a
/// build command that exited 1-125 on its own after compiler or linker
/// diagnostics is; a signal, a timeout, a missing tool (126/127, `not
/// found`), running out of memory or disk, or a missing artifact is the
/// machine's, and is not cached.
pub fn classify_failure(ending: Ending, tail: &str) -> (bool, String) {
    const MACHINE: &[(&str, &str)] = &[
        ("command not found", "a command was not found"),
        (": not found", "a command was not found"),
        ("Error 127", "a command was not found"),
        ("Error 126", "a command could not be executed"),
        ("Killed", "a process was killed (out of memory?)"),
        ("Error 137", "a process was killed (out of memory?)"),
        ("internal compiler error", "the compiler crashed"),
        ("Cannot allocate memory", "out of memory"),
        ("virtual memory exhausted", "out of memory"),
        ("No space left on device", "out of disk space"),
        ("produced no ", "an artifact was not produced (check --artifact)"),
    ];
    const COMPILER: &[&str] = &["error:", "undefined reference", "multiple definition of", "ERROR:"];
    match ending {
        Ending::TimedOut(limit) => (
            false,
            format!("timed out after {}s (--build-timeout)", limit.as_secs_f64()),
        ),
        Ending::Exited(c @ (126 | 127)) => (false, format!("exit status {c}: the build command could not be run")),
        Ending::Exited(c) if c >= 128 => (false, format!("killed by signal {}", c - 128)),
        Ending::Exited(c) => {
            if let Some((_, why)) = MACHINE.iter().find(|(pat, _)| tail.contains(pat)) {
                (false, format!("exit status {c}: {why}"))
            } else if COMPILER.iter().any(|pat| tail.contains(pat)) {
                (true, format!("exit status {c} with compiler errors"))
            } else {
                (false, format!("exit status {c} without compiler errors"))
            }
        }
    }
}

/// What the user sees of a failed build: why, the log's last lines, where it is.
fn failure_report(f: &BuildFailure, seconds: f64) -> String {
    let lines: Vec<&str> = f.tail.lines().collect();
    let last = &lines[lines.len().saturating_sub(5)..];
    format!(
        "  build FAILED in {seconds:.1}s: {} ({})\n{}\n  full log: {}",
        f.reason,
        if f.deterministic {
            "recorded: this commit fails to build"
        } else {
            "not the commit's fault: not recorded, tried again next time"
        },
        last.iter().map(|l| format!("    | {l}")).collect::<Vec<_>>().join("\n"),
        f.log.display()
    )
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

fn tail_of(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
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
