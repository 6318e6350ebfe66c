//! The evaluator's build and run slots on an engine ([`crate::engine`]):
//! a build or a batch of runs becomes a step the engine runs, and its
//! result is read from the team store as another member's would be.
//!
//! Invariant: nothing is recorded here; the worker recorded (and uploaded)
//! the result, and a step the engine could not do is the machine's
//! failure: a transient build failure (not cached) or an error naming the
//! engine's reason, never a verdict.

use std::collections::HashSet;

use super::build::Built;
use super::{BuildFailure, CommitEvaluator, EvalError};
use crate::engine::{Engine, StepEnd, StepRecipe, StepWork};
use crate::git::Repo;
use crate::key::{BuildInputs, CommitId};
use crate::signature::KernelSignature;
use crate::store::{BuildRecord, BuildStatus, Cache, RunId, RunRecord};

impl CommitEvaluator {
    /// Hands build and test work to `engine` instead of this process's slots.
    pub fn set_engine(&mut self, engine: Option<std::sync::Arc<Engine>>) {
        self.engine = engine;
    }

    /// The engine this evaluator hands its work to, if any.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_deref()
    }

    fn step_recipe(&self) -> StepRecipe {
        let r = &self.recipe;
        StepRecipe {
            build: r.build.clone(),
            config: r.config.clone(),
            artifacts: r.artifacts.clone(),
            key_files: r.key_files.clone(),
            toolchain: r.toolchain.clone(),
            arch: r.arch.clone(),
            build_timeout_seconds: r.build_timeout.map(|d| d.as_secs_f64()),
            test: r.test.clone(),
            test_key_files: r.test_key_files.clone(),
            test_timeout_seconds: r.test_timeout.map(|d| d.as_secs_f64()),
        }
    }

    /// Builds a commit on the engine; the record comes from the store.
    pub(super) fn build_on_engine(
        &self,
        engine: &Engine,
        cache: &Cache,
        commit: &CommitId,
        inputs: &BuildInputs,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Built, EvalError> {
        if self.recipe.repro.is_some() {
            return Err(EvalError::Engine {
                engine: engine.name(),
                reason: "--repro tests run on the driver only (give --executor local)".into(),
            });
        }
        let build_key = inputs.key();
        let spec = engine.spec(self.step_recipe(), commit, StepWork::Build { build_key });
        let failed = |reason: String| Built::Failed {
            failure: BuildFailure {
                deterministic: false,
                reason,
                log: std::path::PathBuf::new(),
                tail: String::new(),
            },
            seconds: 0.0,
        };
        let start = std::time::Instant::now();
        match engine.run(&spec, progress).map_err(|e| engine_error(engine, e))? {
            StepEnd::Failed { reason, submitted } => {
                progress(&format!(
                    "  could not build on {} after {submitted} job(s): {reason}",
                    engine.name()
                ));
                Ok(failed(format!("could not build on {}: {reason}", engine.name())))
            }
            StepEnd::Done { job, .. } => match cache.build(&build_key)? {
                Some(r) if r.status == BuildStatus::Ok => {
                    progress(&format!(
                        "  built on {} (job {job}): step {:.2}s, build {:.2}s, signature {}",
                        engine.name(),
                        start.elapsed().as_secs_f64(),
                        r.build_seconds,
                        crate::key::short(r.signature.as_deref().unwrap_or(""))
                    ));
                    Ok(Built::Ok(Box::new(r), None))
                }
                Some(r) => Ok(recorded_failure(r, engine, progress)),
                None => Ok(failed(format!(
                    "{} job {job} ended but the store has no build record of key {}",
                    engine.name(),
                    build_key.short()
                ))),
            },
        }
    }

    /// Runs `want` runs on the engine; the new runs come from the store.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn test_on_engine(
        &self,
        engine: &Engine,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        record: &BuildRecord,
        signature: &KernelSignature,
        first_run: u32,
        want: u32,
        pooled: &[RunRecord],
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let per_task = engine.settings().runs_per_task.max(1);
        let work = StepWork::Test {
            build_key: record.build_key,
            signature: signature.clone(),
            test_key: self.test_key,
            first_run,
            runs: want,
            tasks: want.div_ceil(per_task),
        };
        // The worker fetches a commit whose tree has the kernel's build
        // key: the tested one, unless its kernel was predicted equal to a
        // reference build's (then that build's). The record's own commit
        // may be another repository's with the same tree.
        let source = match self.key_of(repo, commit)? == record.build_key {
            true => commit,
            false => &record.commit,
        };
        let spec = engine.spec(self.step_recipe(), source, work);
        let start = std::time::Instant::now();
        match engine.run(&spec, progress).map_err(|e| engine_error(engine, e))? {
            StepEnd::Failed { reason, submitted } => Err(EvalError::Engine {
                engine: engine.name(),
                reason: format!(
                    "could not test signature {} after {submitted} job(s): {reason}",
                    signature.short()
                ),
            }),
            StepEnd::Done { job, .. } => {
                cache.pull_runs(signature, Some(&self.test_key))?;
                let known: HashSet<&RunId> = pooled.iter().map(|r| &r.run_id).collect();
                let new: Vec<RunRecord> = cache
                    .runs(signature, &self.test_key)?
                    .into_iter()
                    .filter(|r| !known.contains(&r.run_id))
                    .collect();
                progress(&format!(
                    "  {} run(s) done on {} (job {job}): step {:.2}s, runs {:.2}s",
                    new.len(),
                    engine.name(),
                    start.elapsed().as_secs_f64(),
                    new.iter().map(|r| r.seconds).sum::<f64>()
                ));
                Ok(new)
            }
        }
    }
}

/// A build failure a worker recorded as the commit's own.
fn recorded_failure(r: BuildRecord, engine: &Engine, progress: &mut dyn FnMut(&str)) -> Built {
    let tail = r.log_tail.clone().unwrap_or_default();
    progress(&format!(
        "  the build failed on {} (the commit's failure, recorded)",
        engine.name()
    ));
    Built::Failed {
        failure: BuildFailure {
            deterministic: true,
            reason: "the build failed on a worker".into(),
            log: std::path::PathBuf::new(),
            tail,
        },
        seconds: r.build_seconds,
    }
}

fn engine_error(engine: &Engine, e: crate::engine::EngineError) -> EvalError {
    EvalError::Engine {
        engine: engine.name(),
        reason: e.to_string(),
    }
}
