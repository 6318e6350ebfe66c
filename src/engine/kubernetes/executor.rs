//! The Kubernetes engine behind the seam's [`Executor`]: the driver's
//! loop is synchronous, the kube client async, so the executor owns a
//! small tokio runtime and blocks on it for each call.
//!
//! Invariant: a step's attempts are Jobs named after its hash and attempt
//! number; a failed attempt is never resubmitted under its own name (the
//! next submission is the next attempt), and a submission that meets the
//! Job of its attempt (409) attaches to it.

use super::{request_for, seam_state, JobName, JobReport, JobState, JobTemplate, KubeEngine, KubernetesError};
use crate::engine::{EngineError, Executor, JobId, JobState as Seam, StepSpec};

const ENGINE: &str = "kubernetes";

/// Kubernetes Jobs in one namespace, for a driver whose team store is
/// `remote` (the pods write their results there).
pub struct KubeExecutor {
    runtime: tokio::runtime::Runtime,
    engine: KubeEngine,
    template: JobTemplate,
    remote: String,
}

impl KubeExecutor {
    /// Connects with the inferred credentials (KUBECONFIG, ~/.kube/config,
    /// in-cluster); refuses settings without a worker image before that.
    pub fn connect(template: JobTemplate, remote: String) -> Result<KubeExecutor, KubernetesError> {
        if template.image.trim().is_empty() {
            return Err(KubernetesError::InvalidRequest(
                "no worker image: set `image` in the config file's [kubernetes] section".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kcache-kube")
            .enable_all()
            .build()
            .map_err(|e| KubernetesError::Config(format!("cannot start the client's runtime: {e}")))?;
        let engine = runtime.block_on(KubeEngine::connect(template.namespace.as_deref()))?;
        Ok(KubeExecutor {
            runtime,
            engine,
            template,
            remote,
        })
    }

    /// The step's latest attempt's Job, if any is left.
    fn latest(&self, spec: &StepSpec) -> Result<Option<JobReport>, KubernetesError> {
        let mut attempts = self.runtime.block_on(self.engine.find_step(&spec.name().0))?;
        Ok(attempts.pop())
    }
}

/// The attempt a submission uses: after a failed Job the next one; else
/// the latest one's (a create then attaches to it).
fn next_attempt(latest: Option<&JobReport>) -> u32 {
    match latest {
        None => 0,
        Some(r) => {
            let attempt = r.name.attempt().unwrap_or(0);
            match r.state {
                JobState::Failed { .. } => attempt + 1,
                _ => attempt,
            }
        }
    }
}

impl Executor for KubeExecutor {
    fn name(&self) -> &'static str {
        ENGINE
    }

    /// The latest attempt unless it failed (a finished, successful one is
    /// attached to as well: its result is in the store).
    fn find(&self, spec: &StepSpec) -> Result<Option<JobId>, EngineError> {
        Ok(self
            .latest(spec)?
            .filter(|r| !matches!(r.state, JobState::Failed { .. }))
            .map(|r| JobId(r.name.to_string())))
    }

    fn submit(&self, spec: &StepSpec) -> Result<JobId, EngineError> {
        let attempt = next_attempt(self.latest(spec)?.as_ref());
        let request = request_for(spec, &self.remote, attempt, &self.template);
        let submitted = self.runtime.block_on(self.engine.submit(&request))?;
        Ok(JobId(submitted.report.name.to_string()))
    }

    fn state(&self, job: &JobId) -> Result<Seam, EngineError> {
        let name = JobName::from_api(&job.0);
        Ok(match self.runtime.block_on(self.engine.status(&name))? {
            Some(report) => seam_state(&report),
            None => Seam::Failed(format!(
                "Job {name} is gone (deleted, or removed after ttl_seconds_after_finished)"
            )),
        })
    }

    fn cancel(&self, job: &JobId) -> Result<(), EngineError> {
        let name = JobName::from_api(&job.0);
        self.runtime.block_on(self.engine.cancel(&name))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kubernetes::StepKind;
    use crate::key::Key;

    fn report(attempt: u32, state: JobState) -> JobReport {
        JobReport {
            name: JobName::new(&Key([7; 32]), StepKind::Build, attempt),
            step: Some(Key([7; 32])),
            state,
            active: 0,
            ready: 0,
            succeeded: 0,
            failed: 0,
            completed_indexes: vec![],
            failed_indexes: vec![],
        }
    }

    #[test]
    fn a_failed_attempt_is_followed_by_the_next_one_never_resubmitted_over() {
        assert_eq!(next_attempt(None), 0);
        assert_eq!(next_attempt(Some(&report(0, JobState::Running))), 0);
        assert_eq!(next_attempt(Some(&report(2, JobState::Succeeded))), 2);
        let failed = JobState::Failed {
            reason: "BackoffLimitExceeded".into(),
        };
        assert_eq!(next_attempt(Some(&report(2, failed))), 3);
    }
}
