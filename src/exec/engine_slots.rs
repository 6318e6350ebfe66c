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
            StepEnd::Done { job, .. } => {
                match read_result(engine, cache, &job, progress, |c| Ok(c.build(&build_key)?))? {
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
                }
            }
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
                let known: HashSet<&RunId> = pooled.iter().map(|r| &r.run_id).collect();
                let new: Vec<RunRecord> = read_result(engine, cache, &job, progress, |c| {
                    c.pull_runs(signature, Some(&self.test_key))?;
                    Ok(c.runs(signature, &self.test_key)?)
                })?
                .into_iter()
                .filter(|r| !known.contains(&r.run_id))
                .collect();
                if (new.len() as u32) < want {
                    // Said, because the search will ask for these runs
                    // again: the same step, submitted again by its name.
                    progress(&format!(
                        "  {} job {job} ended; the store shows {} of the {want} run(s) it was asked for \
                         (the others timed out or were not recorded)",
                        engine.name(),
                        new.len()
                    ));
                }
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

/// Reads a finished job's result from the store. The team store is the
/// only way a worker's result reaches the driver, so an outage remembered
/// earlier (by this process or a recent one) is not believed here: the
/// store is asked again, and if it still does not answer the step is the
/// machine's failure, never an empty result (which the search would ask
/// for again, submitting the same step twice).
fn read_result<T>(
    engine: &Engine,
    cache: &Cache,
    job: &crate::engine::JobId,
    progress: &mut dyn FnMut(&str),
    read: impl Fn(&Cache) -> Result<T, EvalError>,
) -> Result<T, EvalError> {
    let Some(remote) = cache.remote() else {
        return read(cache);
    };
    if remote.is_down() {
        progress(&format!(
            "  the team store {} was found unavailable earlier: asking it again for job {job}'s result",
            remote.url()
        ));
        remote.reset_down();
    }
    let result = read(cache)?;
    match remote.is_down() {
        false => Ok(result),
        true => Err(EvalError::Engine {
            engine: engine.name(),
            reason: format!(
                "job {job} ended, but the team store {} did not answer: its result cannot be read",
                remote.url()
            ),
        }),
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
