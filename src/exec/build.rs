//! Building one commit's kernel, or knowing it without building: reusing
//! a cached build record, predicting the kernel from a reference build
//! whose read files this commit did not change, running the build command
//! in the worktree, signing and storing what it produced, and classifying
//! a failed build as the commit's own or the machine's.
//!
//! Invariant: a build runs only under the build key's claim (one builder
//! per key across processes) and the worktree's lock, and only a
//! deterministic failure is recorded; a full disk is an error, never a
//! verdict on the commit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::environment::CommitEnv;
use super::{claim, io_err, lock_file, BuildFailure, BuildSource, CommitEvaluator, EvalError, Evaluation, Patch};
use crate::child::{self, Ending};
use crate::exec::predict::{self, Prediction, Reference};
use crate::git::{self, Repo};
use crate::kernel::inputs;
use crate::key::short;
use crate::key::{BuildInputs, BuildKey, CommitId, TreeId};
use crate::store::{BuildRecord, BuildStatus, Cache, Counter, InputSet, StoreError};

/// Lines of build output kept in a failure record.
const LOG_TAIL_LINES: usize = 40;

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

/// What a build run gave.
pub(super) enum Built {
    /// Built and stored, with what the build read (kbuild builds).
    Ok(Box<BuildRecord>, Option<InputSet>),
    /// Failed; recorded in the cache only when `failure.deterministic`.
    Failed { failure: BuildFailure, seconds: f64 },
}

impl CommitEvaluator {
    /// Builds (or reuses) one commit and signs it, no test; a kernel may be
    /// predicted instead when `may_predict` (and prediction is on).
    pub fn build_or_predict(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        may_predict: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        self.build_layered(repo, cache, commit, &[], may_predict, progress)
    }

    /// Builds (or reuses) `commit` with `patches` applied on its tree, in
    /// order (never predicted: the patches are not in any input set).
    pub fn build_with_patches(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        patches: &[Patch],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        self.build_layered(repo, cache, commit, patches, false, progress)
    }

    /// The build of `commit` with `patches` on its tree: reused, predicted
    /// (no patches and `may_predict` only) or run under its key's claim.
    fn build_layered(
        &mut self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        patches: &[Patch],
        may_predict: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, EvalError> {
        // The environment's build fixes go first, then the caller's layers.
        let env = self.environment_of(repo, commit)?;
        let patches: Vec<Patch> = env
            .iter()
            .flat_map(|e| e.patches.iter().cloned())
            .chain(patches.iter().cloned())
            .collect();
        let inputs = self
            .inputs_of(repo, commit)?
            .with_patches(patches.iter().map(Patch::digest).collect());
        let build_key = inputs.key();
        let mut eval = Evaluation::empty(build_key);
        eval.build_env = env.as_ref().map(|e| e.shown.clone());
        if let Some(e) = &env {
            progress(&format!("  build environment: {}", e.shown.resolved.summary()));
        }
        if let Some(r) = self.known_build(cache, &build_key, progress)? {
            self.reuse(cache, r, &mut eval, progress)?;
            return Ok(eval);
        }
        if may_predict && self.predict && patches.is_empty() {
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
        let built = match self.engine.clone() {
            // A patched build (a revert check, a patch test) runs here: a
            // step spec carries no patch layer, nor a build environment.
            Some(engine) if patches.is_empty() && env.is_none() => {
                self.build_on_engine(&engine, cache, commit, &inputs, progress)?
            }
            _ => self.build(repo, cache, commit, &inputs, &patches, env.as_deref(), progress)?,
        };
        drop(claim);
        Ok(self.built_now(cache, eval, built))
    }

    /// `eval` completed with what a build run now gave.
    fn built_now(&mut self, cache: &Cache, mut eval: Evaluation, built: Built) -> Evaluation {
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
        eval
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
        commit: &CommitId,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<&Reference>, EvalError> {
        match predict::predict(repo, &self.references, commit)? {
            // A kernel built with another compiler or config is not this one's.
            Prediction::Same { reference, .. } if !self.same_environment(repo, commit, &reference.commit)? => {
                progress(&format!(
                    "  not predictable from {}: its build environment differs",
                    short(&reference.commit)
                ));
                Ok(None)
            }
            Prediction::Same { reference, changed } => {
                progress(&format!(
                    "  predicted: same kernel as {} ({changed} file(s) changed, none read by its build), signature {}",
                    short(&reference.commit),
                    short(&reference.signature)
                ));
                Ok(Some(reference))
            }
            Prediction::Unknown { blocker } => {
                if let Some((reference, b)) = blocker {
                    progress(&format!(
                        "  not predictable from {}: {} ({})",
                        short(&reference.commit),
                        b.path,
                        b.why
                    ));
                }
                Ok(None)
            }
        }
    }

    /// Whether two commits get the same build environment (always, without a table).
    fn same_environment(&self, repo: &Repo, a: &CommitId, b: &CommitId) -> Result<bool, EvalError> {
        let shown = |c| Ok::<_, EvalError>(self.environment_of(repo, c)?.map(|e| e.shown.clone()));
        Ok(shown(a)? == shown(b)?)
    }

    /// Whether no-op prediction is on (see [`Self::set_prediction`]).
    pub fn predicting(&self) -> bool {
        self.predict
    }

    /// Makes a cached build (found without `build_or_predict`: a search's
    /// look-up of its whole range) a reference for predicting other commits.
    pub fn learn_reference(&mut self, cache: &Cache, record: &BuildRecord) -> Result<(), EvalError> {
        if self.predict && record.status == BuildStatus::Ok {
            self.remember_reference(cache, record)?;
        }
        Ok(())
    }

    /// The build keys of the references prediction may use now.
    pub fn reference_keys(&self) -> Vec<BuildKey> {
        self.references.iter().map(|r| r.build_key).collect()
    }

    /// Whether a reference not in `checked` predicts `commit`'s kernel
    /// (quietly: the search asks this of every commit it may choose, to
    /// know which cost no build); the predicting reference's build key.
    pub fn predictable(
        &self,
        repo: &Repo,
        commit: &CommitId,
        checked: &std::collections::HashSet<BuildKey>,
    ) -> Result<Option<BuildKey>, EvalError> {
        if !self.predict {
            return Ok(None);
        }
        for reference in self.references.iter().filter(|r| !checked.contains(&r.build_key)) {
            if reference
                .blocker(&repo.changed_files(&reference.commit, commit)?)
                .is_none()
                && self.same_environment(repo, commit, &reference.commit)?
            {
                return Ok(Some(reference.build_key));
            }
        }
        Ok(None)
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

    /// Runs the build command for `commit` with `patches` applied, in
    /// `env` when the recipe has a build environment table.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn build(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        inputs: &BuildInputs,
        patches: &[Patch],
        env: Option<&CommitEnv>,
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
        let patched_tree = self.apply_patches(&state, commit, patches, progress)?;
        let mut vars = vec![
            ("KCACHE_COMMIT", commit.as_str().into()),
            ("KCACHE_CACHE_DIR", cache.dir().as_os_str().to_owned()),
        ];
        if let Some(cfg) = &self.recipe.config {
            let copy = state.join("config");
            let written = match env.and_then(|e| e.config.as_deref()) {
                // The config with the environment's fixups: what the key digests.
                Some(fixed) => std::fs::write(&copy, fixed),
                None => std::fs::copy(cfg, &copy).map(|_| ()),
            };
            written.map_err(io_err(format!("config {}", cfg.display())))?;
            vars.push(("KCACHE_CONFIG", copy.into_os_string()));
        }
        if let Some(e) = env {
            vars.extend(e.variables());
        }
        progress("  building...");
        let start = Instant::now();
        let log_path = state.join("build.log");
        let ending = child::run(
            &child::Spec {
                script: &self.recipe.build,
                dir: &self.worktree,
                env: vars,
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
            let record = cache.put_build(commit, inputs, patched_tree, &signature.into(), &artifacts, seconds)?;
            // A patched kernel is no commit's: never a reference to predict from.
            let set = match patches.is_empty() {
                true => self.record_input_set(cache, &record)?,
                false => None,
            };
            progress(&format!(
                "  built in {seconds:.1}s, signature {}",
                short(record.signature.as_deref().unwrap_or(""))
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
                commit: commit.clone(),
                path,
                free,
                log_tail: tail,
            });
        }
        let (deterministic, mut reason) = classify_failure(ending, &tail);
        if let Some(e) = env {
            // The commit's failure is its failure in this environment (the key holds it).
            reason.push_str(&format!(" with {}", e.shown.resolved.compiler.cc));
        }
        // Kept apart from build.log, which the next build overwrites.
        let kept = state.join(format!("build-failed-{}.log", short(commit)));
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

    /// Applies `patches` in order on the checkout (and its index, so the
    /// next checkout undoes them); the tree they produced, if any.
    fn apply_patches(
        &self,
        state: &Path,
        commit: &CommitId,
        patches: &[Patch],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<TreeId>, EvalError> {
        if patches.is_empty() {
            return Ok(None);
        }
        for p in patches {
            let file = state.join(format!("patch-{}.diff", p.digest().short()));
            std::fs::write(&file, &p.diff).map_err(io_err(format!("patch file {}", file.display())))?;
            let applied = git::apply_patch(&self.worktree, &file)?;
            let _ = std::fs::remove_file(&file);
            if let Err(failure) = applied {
                // Leave the tree as the commit has it for the next build.
                git::checkout(&self.worktree, commit)?;
                return Err(EvalError::PatchDoesNotApply {
                    commit: commit.clone(),
                    patch: p.name.clone(),
                    message: failure.message.clone(),
                    failure,
                });
            }
            progress(&format!("  applied {} ({})", p.name, p.digest().short()));
        }
        Ok(Some(git::index_tree(&self.worktree)?))
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
}

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

fn tail_of(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
