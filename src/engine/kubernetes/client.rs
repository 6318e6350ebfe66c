//! The Kubernetes API for the engine: create a step's Job (or attach to
//! the one already there), read its state, delete it, find kcache's Jobs
//! by label.
//!
//! Credentials the standard way: `kube::Config::infer` (KUBECONFIG or
//! ~/.kube/config, else the pod's service account in-cluster).
//!
//! Invariant: a create that meets an existing Job of the same name attaches
//! to it only when it runs the same step (its annotation holds the same
//! whole hash); a step is never submitted twice under one name.

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Config};

use super::{job, report, step_label, JobName, JobReport, JobRequest, KubernetesError, LABEL_MANAGED_BY, LABEL_STEP};
use crate::key::Key;

/// A connection to one namespace's Jobs.
#[derive(Clone)]
pub struct KubeEngine {
    jobs: Api<Job>,
    namespace: String,
}

/// What a submission found.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub report: JobReport,
    /// The Job was there already (an earlier driver's, or another
    /// driver's submission of the same step): attached, not created.
    pub attached: bool,
}

impl KubeEngine {
    /// Connects with the inferred configuration; `namespace` overrides the
    /// kubeconfig context's (else `default`).
    pub async fn connect(namespace: Option<&str>) -> Result<KubeEngine, KubernetesError> {
        let config = Config::infer()
            .await
            .map_err(|e| KubernetesError::Config(e.to_string()))?;
        let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_string);
        let client = Client::try_from(config).map_err(|e| KubernetesError::Config(e.to_string()))?;
        Ok(KubeEngine {
            jobs: Api::namespaced(client, &namespace),
            namespace,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Creates the step's Job; when it exists (409 AlreadyExists), attaches
    /// to it after checking it runs this step.
    pub async fn submit(&self, request: &JobRequest<'_>) -> Result<Submitted, KubernetesError> {
        let object = job(request)?;
        let name = request.name();
        match self.jobs.create(&PostParams::default(), &object).await {
            Ok(created) => Ok(Submitted {
                report: report(&created)?,
                attached: false,
            }),
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                let existing = self.jobs.get(name.as_str()).await.map_err(api("get", &name))?;
                let found = report(&existing)?;
                if found.step != Some(request.step) {
                    return Err(KubernetesError::NameClash {
                        name,
                        step: request.step.to_hex(),
                        found: found.step.map_or_else(|| "no kcache step".to_string(), |k| k.to_hex()),
                    });
                }
                Ok(Submitted {
                    report: found,
                    attached: true,
                })
            }
            Err(e) => Err(api("create", &name)(e)),
        }
    }

    /// The Job's state; None when it is gone (deleted, or removed by its
    /// TTL after finishing).
    pub async fn status(&self, name: &JobName) -> Result<Option<JobReport>, KubernetesError> {
        match self.jobs.get_opt(name.as_str()).await.map_err(api("get", name))? {
            Some(job) => report(&job).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the Job and, in the background, its pods (a cancelled step).
    /// False when it was gone already.
    pub async fn cancel(&self, name: &JobName) -> Result<bool, KubernetesError> {
        match self.jobs.delete(name.as_str(), &DeleteParams::background()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
            Err(e) => Err(api("delete", name)(e)),
        }
    }

    /// Every attempt's Job of one step, the latest last (a restarted
    /// driver re-attaches to it).
    pub async fn find_step(&self, step: &Key) -> Result<Vec<JobReport>, KubernetesError> {
        let found = self.list(&format!("{LABEL_STEP}={}", step_label(step))).await?;
        let mut ours: Vec<JobReport> = found.into_iter().filter(|r| r.step == Some(*step)).collect();
        ours.sort_by_key(|r| r.name.attempt());
        Ok(ours)
    }

    /// kcache's Jobs matching a further label selector (`""`: all of them).
    pub async fn list(&self, selector: &str) -> Result<Vec<JobReport>, KubernetesError> {
        let ours = format!("{LABEL_MANAGED_BY}=kcache");
        let selector = if selector.is_empty() {
            ours
        } else {
            format!("{ours},{selector}")
        };
        let jobs = self
            .jobs
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| KubernetesError::Api {
                action: "list",
                name: format!("jobs ({selector})"),
                source: e,
            })?;
        jobs.items.iter().map(report).collect()
    }
}

fn api(action: &'static str, name: &JobName) -> impl FnOnce(kube::Error) -> KubernetesError {
    let name = format!("Job {name}");
    move |source| KubernetesError::Api { action, name, source }
}
