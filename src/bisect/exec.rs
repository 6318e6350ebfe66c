//! Evaluating one commit through the cache: reuse what is known, build and
//! test what is not, record everything as it completes.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use super::evidence::{Evidence, Verdict};
use super::predict::{self, Prediction, Reference};
use crate::git::{self, GitError, Repo};
use crate::kernel::inputs;
use crate::key::{self, BuildInputs, Key, TestInputs};
use crate::store::{self, counters, BuildRecord, BuildStatus, Cache, Outcome, RunRecord, StoreError};

/// Lines of build output kept in a failure record.
const LOG_TAIL_LINES: usize = 40;

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
    /// Not built: no file an already-built commit's build read differs,
    /// so this commit has that build's kernel (see `predict`).
    Predicted,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub build_key: Key,
    pub build: BuildSource,
    pub signature: Option<String>,
    pub verdict: Verdict,
    pub evidence: Evidence,
    pub runs_done: u32,
    pub runs_reused: u32,
    pub build_seconds: f64,
    pub test_seconds: f64,
    pub saved_build_seconds: f64,
    pub saved_test_seconds: f64,
    /// The commit whose build this one's was predicted equal to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_from: Option<String>,
    /// The build record holding this kernel's artifacts when it is not
    /// `build_key`'s own (a predicted build).
    #[serde(skip)]
    pub reference_key: Option<Key>,
    /// The runs behind the verdict, oldest first (for the log).
    #[serde(skip)]
    pub runs: Vec<RunRecord>,
    #[serde(skip)]
    pub log_tail: Option<String>,
}

/// Evaluates commits with one recipe; owns the worktree it builds in.
pub struct CommitEvaluator {
    recipe: Recipe,
    config_digest: Key,
    recipe_digest: Key,
    test_key: Key,
    worktree: PathBuf,
    /// Where the build log and the config copy go (never inside the user's tree).
    state: PathBuf,
    /// Build in `worktree` as is (no checkout): `kcache exec` under `git bisect run`.
    in_place: bool,
    /// Off when the user says so or after a contradicted prediction.
    predict: bool,
    /// Builds of this bisection with an input set, newest first.
    references: Vec<Reference>,
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
        let config_digest = match &recipe.config {
            Some(p) => key::file_digest(p).map_err(io_err(format!("config {}", p.display())))?,
            None => key::digest(b""),
        };
        let recipe_digest = key::Recipe {
            command: recipe.build.clone(),
            make_vars: Vec::new(),
            key_files: digests(&recipe.key_files)?,
        }
        .digest();
        let test_key = TestInputs {
            command: recipe.test.clone(),
            files: digests(&recipe.test_key_files)?,
            settings: Vec::new(),
        }
        .key();
        Ok(CommitEvaluator {
            recipe,
            config_digest,
            recipe_digest,
            test_key,
            worktree,
            state,
            in_place,
            predict: true,
            references: Vec::new(),
        })
    }

    /// Turns no-op prediction on or off (it starts on).
    pub fn set_prediction(&mut self, on: bool) {
        self.predict = on;
    }

    pub fn inputs_for_tree(&self, tree: &str) -> BuildInputs {
        BuildInputs {
            tree: tree.to_string(),
            config_digest: self.config_digest,
            toolchain: self.recipe.toolchain.clone(),
            arch: self.recipe.arch.clone(),
            recipe_digest: self.recipe_digest,
        }
    }

    /// How much of each commit's work the cache already has: -1 known
    /// broken, 0 nothing, 1 the build, 2 the build and enough test runs.
    pub fn cache_scores(&self, repo: &Repo, cache: &Cache, commits: &[String]) -> Result<Vec<i8>, EvalError> {
        let trees = repo.tree_ids(commits)?;
        let wanted = self.recipe.runs;
        let scores = cache.view(|v| {
            let mut out = Vec::with_capacity(commits.len());
            for c in commits {
                let Some((_, tree)) = trees.iter().find(|(cc, _)| cc == c) else {
                    out.push(0);
                    continue;
                };
                let score = match v.build(&self.inputs_for_tree(tree).key())? {
                    None => 0,
                    Some(b) if b.status == BuildStatus::Failed => -1,
                    Some(b) => {
                        let runs = v.runs(&b.signature.unwrap_or_default(), &self.test_key)?;
                        if Evidence::of(&runs).needs_more(wanted) {
                            1
                        } else {
                            2
                        }
                    }
                };
                out.push(score);
            }
            Ok(out)
        })?;
        Ok(scores)
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
        let mut runs = cache.runs_shared(&signature, &self.test_key, self.recipe.runs)?;
        let before = Evidence::of(&runs);
        let reused = before.total();
        eval.saved_test_seconds = runs.iter().map(|r| r.seconds).sum();
        if before.needs_more(self.recipe.runs) {
            let record_key = eval.reference_key.unwrap_or(eval.build_key);
            let record = cache.build(&record_key)?.ok_or_else(|| EvalError::Io {
                what: format!("build record {record_key}"),
                source: std::io::Error::other("vanished from the cache while testing"),
            })?;
            let new_runs = self.test(repo, cache, commit, &record, &signature, reused, progress)?;
            eval.runs_done = new_runs.len() as u32;
            eval.test_seconds = new_runs.iter().map(|r| r.seconds).sum();
            runs.extend(new_runs);
        } else {
            progress(&format!(
                "  reused {reused} test run(s) of signature {}",
                &signature[..signature.len().min(12)]
            ));
        }
        eval.runs_reused = reused;
        eval.evidence = Evidence::of(&runs);
        eval.verdict = eval.evidence.verdict().unwrap_or(Verdict::Skip);
        eval.runs = runs;
        cache.count(&[
            (
                if eval.runs_done == 0 {
                    counters::TEST_HITS
                } else {
                    counters::TEST_MISSES
                },
                1,
            ),
            (counters::SAVED_TEST_MS, (eval.saved_test_seconds * 1000.0) as i64),
        ])?;
        progress(&format!("  {} ({})", eval.verdict.as_str(), describe(&eval.evidence)));
        Ok(eval)
    }

    /// Builds (or reuses) one commit and signs it; no test, no prediction.
    pub fn build_only(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        self.build_or_predict(repo, cache, commit, false, progress)
    }

    fn build_or_predict(
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
        let mut eval = Evaluation {
            build_key,
            build: BuildSource::Reused,
            signature: None,
            verdict: Verdict::Skip,
            evidence: Evidence::default(),
            runs_done: 0,
            runs_reused: 0,
            build_seconds: 0.0,
            test_seconds: 0.0,
            saved_build_seconds: 0.0,
            saved_test_seconds: 0.0,
            predicted_from: None,
            reference_key: None,
            runs: Vec::new(),
            log_tail: None,
        };
        let record = match cache.build(&build_key)? {
            Some(r) => {
                eval.saved_build_seconds = r.build_seconds;
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
                        "known to fail"
                    },
                    &build_key.to_hex()[..12]
                ));
                cache.count(&[
                    (counters::BUILD_HITS, 1),
                    (counters::SAVED_BUILD_MS, (r.build_seconds * 1000.0) as i64),
                ])?;
                if self.predict && r.status == BuildStatus::Ok {
                    self.remember_reference(cache, &r)?;
                }
                r
            }
            None if may_predict && self.predict => match self.predict_from_references(repo, commit, progress)? {
                Some(reference) => {
                    eval.build = BuildSource::Predicted;
                    eval.signature = Some(reference.signature.clone());
                    eval.predicted_from = Some(reference.commit.clone());
                    eval.reference_key = Some(reference.build_key);
                    cache.count(&[(counters::BUILDS_PREDICTED, 1)])?;
                    return Ok(eval);
                }
                None => self.build_and_count(repo, cache, commit, &inputs, &mut eval, progress)?,
            },
            None => self.build_and_count(repo, cache, commit, &inputs, &mut eval, progress)?,
        };
        eval.signature = record.signature.clone();
        eval.log_tail = record.log_tail.clone();
        Ok(eval)
    }

    fn build_and_count(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        inputs: &BuildInputs,
        eval: &mut Evaluation,
        progress: &mut dyn FnMut(&str),
    ) -> Result<BuildRecord, EvalError> {
        let r = self.build(repo, cache, commit, inputs, progress)?;
        eval.build_seconds = r.build_seconds;
        eval.build = if r.status == BuildStatus::Ok {
            BuildSource::Built
        } else {
            BuildSource::Failed
        };
        cache.count(&[(counters::BUILD_MISSES, 1)])?;
        if r.status == BuildStatus::Ok {
            self.remember_reference(cache, &r)?;
        }
        Ok(r)
    }

    /// Makes a successful build with a recorded input set available for
    /// predicting other commits, newest first.
    fn remember_reference(&mut self, cache: &Cache, record: &BuildRecord) -> Result<(), EvalError> {
        if self.references.iter().any(|r| r.build_key == record.build_key) {
            return Ok(());
        }
        let (Some(signature), Some(set)) = (&record.signature, cache.input_set(&record.build_key)?) else {
            return Ok(());
        };
        let reference = Reference::new(record.commit.clone(), signature.clone(), &set);
        self.references.insert(0, reference);
        Ok(())
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

    fn build(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        inputs: &BuildInputs,
        progress: &mut dyn FnMut(&str),
    ) -> Result<BuildRecord, EvalError> {
        let state = self.state.clone();
        std::fs::create_dir_all(&state).map_err(io_err(format!("state dir {}", state.display())))?;
        // Held from checkout to input-set record: another bisection of the
        // same repository shares the worktree and must not switch commits
        // under this build.
        let _worktree_lock = lock_worktree(&state, progress)?;
        if !self.in_place {
            repo.ensure_worktree(&self.worktree, commit)?;
            git::checkout(&self.worktree, commit)?;
        }
        let mut cmd = shell(&self.recipe.build);
        cmd.current_dir(&self.worktree)
            .env("KCACHE_COMMIT", commit)
            .env("KCACHE_CACHE_DIR", cache.dir());
        if let Some(cfg) = &self.recipe.config {
            let copy = state.join("config");
            std::fs::copy(cfg, &copy).map_err(io_err(format!("config {}", cfg.display())))?;
            cmd.env("KCACHE_CONFIG", &copy);
        }
        progress("  building...");
        let start = Instant::now();
        let log_path = state.join("build.log");
        let log = std::fs::File::create(&log_path).map_err(io_err(format!("build log {}", log_path.display())))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("build log"))?)
            .stderr(log)
            .status()
            .map_err(io_err(format!("build command `{}`", self.recipe.build)))?;
        let seconds = start.elapsed().as_secs_f64();
        let missing = self.artifact_paths().into_iter().find(|(_, p)| !p.is_file());
        if !status.success() || missing.is_some() {
            let mut tail = tail_of(&log_path);
            if let (true, Some((name, _))) = (status.success(), &missing) {
                tail.push_str(&format!("\nkcache: the build exited 0 but produced no {name}"));
            }
            progress(&format!("  build FAILED in {seconds:.1}s ({status})"));
            return Ok(cache.put_build_failure(commit, inputs, &tail, seconds)?);
        }
        let record = cache.put_build(commit, inputs, &self.artifact_paths(), seconds)?;
        self.record_input_set(cache, &record)?;
        progress(&format!(
            "  built in {seconds:.1}s, signature {}",
            &record.signature.as_deref().unwrap_or("")[..12]
        ));
        Ok(record)
    }

    /// Keeps what a kbuild build read, for predicting other commits.
    fn record_input_set(&self, cache: &Cache, record: &BuildRecord) -> Result<(), EvalError> {
        let set = inputs::record(&self.worktree, record.build_key, &record.commit).map_err(|e| EvalError::Io {
            what: format!("input set of {}", e.path.display()),
            source: e.source,
        })?;
        if let Some(set) = set {
            cache.put_input_set(&set)?;
        }
        Ok(())
    }

    fn artifact_paths(&self) -> Vec<(String, PathBuf)> {
        let names = if self.recipe.artifacts.is_empty() {
            vec!["vmlinux".to_string()]
        } else {
            self.recipe.artifacts.clone()
        };
        names.into_iter().map(|n| (n.clone(), self.worktree.join(&n))).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn test(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &str,
        record: &BuildRecord,
        signature: &str,
        already: u32,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let artifacts_dir = tempfile::Builder::new()
            .prefix("artifacts-")
            .tempdir_in(cache.dir())
            .map_err(io_err("artifacts dir"))?;
        let restored = cache.restore(&record.artifacts, artifacts_dir.path());
        if let Err(StoreError::Evicted(_)) = restored {
            // Artifacts gone: build again to test.
            progress("  artifacts were evicted: rebuilding to test");
            // The record's own commit: a predicted kernel's artifacts are its reference's.
            let inputs = self.inputs_for_tree(&record.tree);
            let fresh = self.build(repo, cache, &record.commit, &inputs, progress)?;
            cache.restore(&fresh.artifacts, artifacts_dir.path())?;
        } else {
            restored?;
        }
        let mut out = Vec::new();
        let wanted = self.recipe.runs;
        progress(&format!("  testing {} run(s)...", wanted - already));
        for run in already..wanted {
            let r = self.run_test(commit, signature, artifacts_dir.path(), run)?;
            cache.record_run(&r)?;
            let crashed = r.outcome == Outcome::Crash;
            out.push(r);
            if crashed {
                // A crash decides the verdict; more runs cannot change it.
                break;
            }
        }
        Ok(out)
    }

    fn run_test(&self, commit: &str, signature: &str, artifacts: &Path, run: u32) -> Result<RunRecord, EvalError> {
        let start = Instant::now();
        // The artifacts directory exists whether the kernel was built here,
        // restored from the local cache or fetched from the remote.
        let mut child = shell(&self.recipe.test)
            .current_dir(artifacts)
            .env("KCACHE_ARTIFACTS", artifacts)
            .env("KCACHE_SIGNATURE", signature)
            .env("KCACHE_COMMIT", commit)
            .env("KCACHE_RUN", run.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io_err(format!("test command `{}`", self.recipe.test)))?;
        let mut title = None;
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(t) = line.strip_prefix("crash: ") {
                    title = Some(t.trim().to_string());
                }
            }
        }
        let status = child.wait().map_err(io_err("test command"))?;
        let outcome = match status.code() {
            Some(0) => Outcome::Ok,
            Some(125) => Outcome::Infra,
            // sh's "cannot execute" and "not found": a broken test setup
            // (a relative path, say: tests run in the artifacts directory),
            // never a crash of the kernel.
            Some(c @ (126 | 127)) => {
                return Err(EvalError::TestAborted {
                    commit: commit.to_string(),
                    run,
                    how: format!(
                        "exit status {c}: the shell could not run `{}` (tests run in the artifacts directory {}; \
                         give the test command as an absolute path)",
                        self.recipe.test,
                        artifacts.display()
                    ),
                })
            }
            Some(c) if (1..128).contains(&c) => Outcome::Crash,
            other => {
                return Err(EvalError::TestAborted {
                    commit: commit.to_string(),
                    run,
                    how: other.map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status {c}")),
                })
            }
        };
        if outcome == Outcome::Crash && title.is_none() {
            title = Some(format!("crash (exit status {})", status.code().unwrap_or(0)));
        }
        Ok(RunRecord {
            schema: store::RUN_SCHEMA.into(),
            signature: signature.to_string(),
            test_key: self.test_key,
            run_id: store::new_run_id(),
            outcome,
            title: if outcome == Outcome::Crash { title } else { None },
            seconds: start.elapsed().as_secs_f64(),
            host: store::host(),
            time: store::now(),
            commit: Some(commit.to_string()),
            log_blob: None,
            source: None,
        })
    }
}

/// An exclusive lock on a repository's worktree, waited for (builds are
/// long) and reported when another process holds it.
fn lock_worktree(state: &Path, progress: &mut dyn FnMut(&str)) -> Result<std::fs::File, EvalError> {
    let path = state.join("worktree.lock");
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("worktree lock {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            progress("  waiting for the worktree: another kcache process is building in it");
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(format!("worktree lock {}", path.display()))(e)),
    }
    file.lock()
        .map_err(io_err(format!("worktree lock {}", path.display())))?;
    Ok(file)
}

fn shell(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn digests(files: &[PathBuf]) -> Result<Vec<(String, Key)>, EvalError> {
    files
        .iter()
        .map(|f| {
            let d = key::file_digest(f).map_err(io_err(format!("{}", f.display())))?;
            Ok((f.to_string_lossy().into_owned(), d))
        })
        .collect()
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
