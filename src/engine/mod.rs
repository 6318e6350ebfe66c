//! Engines that run a bisection's steps on other machines: the seam
//! between the evaluator's build and run slots and a distributed engine a
//! team already operates (Slurm, Kubernetes). The job body every engine runs
//! (`kcache step run`) is `exec::step`: it is the evaluator's.
//!
//! A step ([`StepSpec`]) is one build or one batch of test runs. The
//! driver submits it through an [`Executor`], waits for the engine to say
//! it ended, and then reads its result from the team store exactly as it
//! reads another member's: the search, the claims, the pooling, the trust
//! policy and the records do not change. `local` (no executor) is today's
//! slots in this process.
//!
//! Invariant: a step's job is found by its name (the spec's hash): a
//! driver that was killed and runs again attaches to the job still queued
//! or running instead of submitting it again; a job the engine reports
//! failed is resubmitted at most [`EngineSettings::retries`] times, then the
//! step could not be done, with the engine's reason.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod kubernetes;
pub mod slurm;
pub mod spec;

pub use spec::{StepName, StepRecipe, StepSpec, StepWork, STEP_SCHEMA};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("step spec {}: {problem}", path.display())]
    BadSpec { path: PathBuf, problem: String },
    #[error("{engine}: `{command}` failed: {problem}")]
    Command {
        engine: &'static str,
        command: String,
        problem: String,
    },
    #[error("{engine}: cannot parse `{command}`'s answer {answer:?}")]
    Answer {
        engine: &'static str,
        command: String,
        answer: String,
    },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Kubernetes(#[from] kubernetes::KubernetesError),
}

/// Which executor runs a bisection's builds and test runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// This process's build and run slots (the default).
    #[default]
    Local,
    /// Slurm jobs (`sbatch`), test steps as job arrays.
    Slurm,
    /// Kubernetes Jobs, test steps as Indexed Jobs (needs the cargo
    /// feature `kubernetes`).
    Kubernetes,
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ExecutorKind, String> {
        crate::from_word(s).ok_or_else(|| {
            format!(
                "unknown executor {s:?}: use {}",
                crate::words_of(&[ExecutorKind::Local, ExecutorKind::Slurm, ExecutorKind::Kubernetes])
            )
        })
    }
}

/// An engine's job for one step: its id(s) as the engine names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobId(pub String);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a step's job is, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued or running (for an array: some task still is).
    Active,
    /// Every task ended and exited 0: the result is in the store.
    Done,
    /// The engine ended it otherwise (a non-zero exit, cancelled, node
    /// failure, time limit): the reason, as the engine says it.
    Failed(String),
}

/// A distributed engine the driver hands steps to.
pub trait Executor: Send + Sync {
    /// The engine's name (`slurm`).
    fn name(&self) -> &'static str;
    /// The job of a step still queued or running, found by the step's
    /// name (a driver killed earlier submitted it).
    fn find(&self, spec: &StepSpec) -> Result<Option<JobId>, EngineError>;
    /// Submits a step's job.
    fn submit(&self, spec: &StepSpec) -> Result<JobId, EngineError>;
    /// Where a job is.
    fn state(&self, job: &JobId) -> Result<JobState, EngineError>;
    /// Cancels a job (a step the search no longer needs).
    fn cancel(&self, job: &JobId) -> Result<(), EngineError>;
}

/// How the driver waits on an engine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// A job the engine reports failed is submitted again this many times.
    pub retries: u32,
    /// Seconds between state polls (the first polls come sooner).
    pub poll_seconds: f64,
    /// Test runs per engine task (array element) of a test step.
    pub runs_per_task: u32,
    /// The repository URL workers fetch commits from, when not the
    /// driver's repository path.
    pub repository: Option<String>,
}

impl Default for EngineSettings {
    fn default() -> EngineSettings {
        EngineSettings {
            retries: 2,
            poll_seconds: 1.0,
            runs_per_task: 1,
            repository: None,
        }
    }
}

/// How a step ended for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEnd {
    /// The engine ran it to the end: read its result from the store.
    Done { job: JobId, submitted: u32 },
    /// Every attempt failed: the step could not be done, for this reason.
    Failed { reason: String, submitted: u32 },
}

/// Runs one step on the engine: attaches to its job if one is queued or
/// running, else submits it; waits for it to end; resubmits a failed job
/// at most `settings.retries` times.
pub fn drive_step(
    executor: &dyn Executor,
    settings: &EngineSettings,
    spec: &StepSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<StepEnd, EngineError> {
    let name = spec.name().job_name();
    let mut submitted = 0;
    let mut job = match executor.find(spec)? {
        Some(job) => {
            progress(&format!(
                "  {}: attached to job {job} ({name}, still queued or running): {}",
                executor.name(),
                spec.describe()
            ));
            job
        }
        None => submit(executor, spec, &mut submitted, progress)?,
    };
    loop {
        match wait(executor, &job, settings)? {
            JobState::Done => return Ok(StepEnd::Done { job, submitted }),
            JobState::Failed(reason) if submitted > settings.retries => {
                return Ok(StepEnd::Failed { reason, submitted });
            }
            JobState::Failed(reason) => {
                progress(&format!(
                    "  {}: job {job} failed ({reason}): submitting again",
                    executor.name()
                ));
                job = submit(executor, spec, &mut submitted, progress)?;
            }
            JobState::Active => unreachable!("wait returns only an ended job"),
        }
    }
}

fn submit(
    executor: &dyn Executor,
    spec: &StepSpec,
    submitted: &mut u32,
    progress: &mut dyn FnMut(&str),
) -> Result<JobId, EngineError> {
    let job = executor.submit(spec)?;
    *submitted += 1;
    progress(&format!(
        "  {}: submitted job {job} ({}): {}",
        executor.name(),
        spec.name().job_name(),
        spec.describe()
    ));
    Ok(job)
}

/// Polls until the job ended: quickly at first (a short step's result is
/// seen soon), then every `poll_seconds`.
fn wait(executor: &dyn Executor, job: &JobId, settings: &EngineSettings) -> Result<JobState, EngineError> {
    let start = Instant::now();
    let most = Duration::from_secs_f64(settings.poll_seconds.max(0.05));
    let mut pause = Duration::from_millis(50).min(most);
    loop {
        match executor.state(job)? {
            JobState::Active => {}
            ended => return Ok(ended),
        }
        std::thread::sleep(pause);
        if start.elapsed() > Duration::from_secs(2) {
            pause = (pause * 2).min(most);
        }
    }
}

/// A bisection's engine, driver side: the executor, how to wait on it,
/// the repository workers fetch from, and how many jobs it submitted.
pub struct Engine {
    executor: Box<dyn Executor>,
    settings: EngineSettings,
    repository: String,
    submitted: std::sync::atomic::AtomicU32,
    /// Steps whose job ended done in this process, by name: the job and
    /// how many times. A step asked for again after that is one whose
    /// result did not (all) reach the store.
    ended: std::sync::Mutex<std::collections::HashMap<String, (JobId, u32)>>,
}

impl Engine {
    /// `repository`: the driver's repository (a path), unless the settings
    /// name the URL workers fetch from.
    pub fn new(executor: Box<dyn Executor>, settings: EngineSettings, repository: &std::path::Path) -> Engine {
        let repository = settings.repository.clone().unwrap_or_else(|| {
            let canonical = repository.canonicalize().unwrap_or_else(|_| repository.to_path_buf());
            canonical.to_string_lossy().into_owned()
        });
        Engine {
            executor,
            settings,
            repository,
            submitted: Default::default(),
            ended: Default::default(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.executor.name()
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Jobs this engine submitted in this process (re-attached ones not counted).
    pub fn submitted(&self) -> u32 {
        self.submitted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A step of this bisection.
    pub fn spec(&self, recipe: StepRecipe, commit: &crate::key::CommitId, work: StepWork) -> StepSpec {
        StepSpec {
            schema: STEP_SCHEMA.to_string(),
            repository: self.repository.clone(),
            commit: commit.clone(),
            recipe,
            work,
        }
    }

    /// Runs a step to its end on the engine ([`drive_step`]). A step whose
    /// job already ended done in this process is asked for again only when
    /// its result did not reach the store: that is said, and bounded like
    /// a failed job's resubmissions.
    pub fn run(&self, spec: &StepSpec, progress: &mut dyn FnMut(&str)) -> Result<StepEnd, EngineError> {
        let name = spec.name().job_name();
        if let Some((job, times)) = self.ended_before(&name) {
            if times > self.settings.retries {
                return Ok(StepEnd::Failed {
                    reason: format!("job {job} ({name}) ended {times} time(s), but its result did not reach the store"),
                    submitted: 0,
                });
            }
            progress(&format!(
                "  {}: asked again for {name}: job {job} ended, but not all of its result reached the store",
                self.name()
            ));
        }
        let end = drive_step(&*self.executor, &self.settings, spec, progress)?;
        let n = match &end {
            StepEnd::Done { submitted, .. } | StepEnd::Failed { submitted, .. } => *submitted,
        };
        self.submitted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if let StepEnd::Done { job, .. } = &end {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            let entry = ended.entry(name).or_insert((job.clone(), 0));
            *entry = (job.clone(), entry.1 + 1);
        }
        Ok(end)
    }

    fn ended_before(&self, name: &str) -> Option<(JobId, u32)> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{BuildKey, Key};
    use std::sync::Mutex;

    /// An engine whose jobs end as scripted, one state a job: what the
    /// driver does with each answer, not how an engine gives it.
    struct Scripted {
        ends: Mutex<Vec<JobState>>,
        submitted: Mutex<u32>,
    }

    impl Executor for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn find(&self, _: &StepSpec) -> Result<Option<JobId>, EngineError> {
            Ok(None)
        }
        fn submit(&self, _: &StepSpec) -> Result<JobId, EngineError> {
            let mut n = self.submitted.lock().unwrap();
            *n += 1;
            Ok(JobId(n.to_string()))
        }
        fn state(&self, _: &JobId) -> Result<JobState, EngineError> {
            Ok(self.ends.lock().unwrap().remove(0))
        }
        fn cancel(&self, _: &JobId) -> Result<(), EngineError> {
            Ok(())
        }
    }

    fn engine(ends: Vec<JobState>) -> Engine {
        let executor = Scripted {
            ends: Mutex::new(ends),
            submitted: Mutex::new(0),
        };
        let settings = EngineSettings {
            poll_seconds: 0.05,
            ..Default::default()
        };
        Engine::new(Box::new(executor), settings, std::path::Path::new("/nonexistent/repo"))
    }

    fn build_step() -> StepSpec {
        spec::tests::spec(StepWork::Build {
            build_key: BuildKey(Key([7; 32])),
        })
    }

    #[test]
    fn a_failed_job_is_submitted_again_at_most_retries_times_then_the_step_fails_with_the_reason() {
        let failed = |why: &str| JobState::Failed(why.to_string());
        let e = engine(vec![failed("node down"), failed("node down"), failed("time limit")]);
        let mut said = Vec::new();
        let end = e.run(&build_step(), &mut |l| said.push(l.to_string())).unwrap();
        assert_eq!(
            end,
            StepEnd::Failed {
                reason: "time limit".into(),
                submitted: 3
            }
        );
        assert_eq!(
            said.iter().filter(|l| l.contains("submitting again")).count(),
            2,
            "{said:?}"
        );
    }

    #[test]
    fn a_step_asked_again_after_its_job_ended_is_said_and_bounded() {
        let e = engine(vec![JobState::Done, JobState::Done, JobState::Done, JobState::Done]);
        let step = build_step();
        let mut said = Vec::new();
        for _ in 0..3 {
            let end = e.run(&step, &mut |l| said.push(l.to_string())).unwrap();
            assert!(matches!(end, StepEnd::Done { .. }), "{end:?}");
        }
        let again = said.iter().filter(|l| l.contains("asked again")).count();
        assert_eq!(again, 2, "each ask after the first says why: {said:?}");
        // The default retries (2) spent: the step is given up, naming the job.
        match e.run(&step, &mut |_| {}).unwrap() {
            StepEnd::Failed { reason, submitted: 0 } => {
                assert!(reason.contains("did not reach the store"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.submitted(), 3);
    }
}
