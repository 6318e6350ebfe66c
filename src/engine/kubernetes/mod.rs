//! The Kubernetes engine: a bisection's steps as `batch/v1` Jobs.
//!
//! A build step is a plain Job (one pod); a test step is an Indexed Job,
//! `completions` = its runs (or batches), `parallelism` = the VMs it may
//! use at once; each pod learns its run from `JOB_COMPLETION_INDEX`, which
//! Kubernetes sets in Indexed Jobs. Every pod runs the engine-neutral job
//! body (`kcache step run SPEC`): it records its result in the team store
//! and exits 0 whenever it did, so a non-zero exit is an infrastructure
//! failure and the Job's retries (`backoffLimit`, per index for test steps)
//! never repeat real evidence.
//!
//! A Job is named after its step's content hash ([`JobName`]), so a driver
//! that was killed and re-run finds its Jobs again (a create that answers
//! 409 AlreadyExists attaches to the Job already there), and two drivers
//! that want one build share one Job. Labels ([`LABEL_STEP`], [`LABEL_KIND`],
//! [`LABEL_MANAGED_BY`]) find them by selector.
//!
//! The step's spec reaches the pod without a second API object: it is an
//! annotation of the pod template ([`ANNOTATION_SPEC`]) that a downward-API
//! volume turns into the file [`SPEC_FILE`] (one object to create, delete
//! and garbage-collect; an annotation holds up to 256 KiB).
//!
//! `/dev/kvm` comes from a device plugin's extended resource by default
//! ([`KvmAccess::DevicePlugin`], `devices.kubevirt.io/kvm` as KubeVirt's
//! and the generic KVM device plugins advertise it): the pod stays
//! unprivileged, the container runtime allows the device in the pod's
//! cgroup, and the scheduler places test pods only on nodes that have it.
//! A hostPath `/dev/kvm` ([`KvmAccess::HostPath`]) is for clusters without
//! a plugin: the device cgroup blocks a mounted device node unless the
//! container is privileged, so that mode runs privileged.
//!
//! The Kubernetes client (kube-rs with k8s-openapi) is behind the cargo
//! feature `kubernetes`; without it [`KubeEngine::connect`] says how to get
//! it. This module's plain types (the settings, the request, the states)
//! exist in both builds.
//!
//! Invariant: nothing here decides a step's verdict; a Job's state says
//! only whether the engine ran the body to the end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::{StepSpec, StepWork};
use crate::key::Key;

#[cfg(feature = "kubernetes")]
mod client;
#[cfg(feature = "kubernetes")]
mod executor;
#[cfg(feature = "kubernetes")]
mod manifest;
#[cfg(feature = "kubernetes")]
mod status;

#[cfg(feature = "kubernetes")]
pub use client::{KubeEngine, Submitted};
#[cfg(feature = "kubernetes")]
pub use executor::KubeExecutor;
#[cfg(feature = "kubernetes")]
pub use manifest::job;
#[cfg(feature = "kubernetes")]
pub use status::{index_set, report};

/// Who manages kcache's Jobs (`app.kubernetes.io/managed-by`).
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The step a Job runs: the first [`NAME_HASH_DIGITS`] hex digits of its
/// hash (a label value holds at most 63 characters; the whole hash is the
/// annotation [`ANNOTATION_STEP`]).
pub const LABEL_STEP: &str = "kcache/step";
/// `build` or `test`.
pub const LABEL_KIND: &str = "kcache/kind";
/// The step's whole hash, checked when a create meets an existing Job.
pub const ANNOTATION_STEP: &str = "kcache/step";
/// The step's spec on the pod template, projected into [`SPEC_FILE`].
pub const ANNOTATION_SPEC: &str = "kcache/spec";
/// Where the pod finds its step's spec (a downward-API volume).
pub const SPEC_FILE: &str = "/etc/kcache/step/spec.json";
/// `XDG_CONFIG_HOME` in the pod when the worker's config Secret is mounted
/// (its `config.toml` and `signing.key` land in `kcache/` below it).
pub const WORKER_CONFIG_HOME: &str = "/etc/kcache/config";
/// The pod's own cache and work directory (`KCACHE_DIR`, an emptyDir).
pub const WORK_DIR: &str = "/var/lib/kcache";
/// Hex digits of the step hash in a Job's name and label: 160 bits.
pub const NAME_HASH_DIGITS: usize = 40;
/// What an annotation may hold in all (the API server's limit is 256 KiB
/// for all of an object's annotations; the rest is left to the others).
pub const MAX_SPEC_BYTES: usize = 200 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error(
        "this kcache was built without Kubernetes support: rebuild it with \
         `cargo build --release --locked --features kubernetes` \
         (or `cargo install --path . --features kubernetes`)"
    )]
    NotBuilt,
    #[error("no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Config(String),
    #[error("kubernetes step request: {0}")]
    InvalidRequest(String),
    #[error("step spec is {bytes} bytes: a Kubernetes Job carries at most {MAX_SPEC_BYTES}")]
    SpecTooLarge { bytes: usize },
    #[error("Job {name} exists but runs step {found}, not {step}")]
    NameClash { name: JobName, step: String, found: String },
    #[error("Job {name} has no status the engine can read: {problem}")]
    Unreadable { name: JobName, problem: String },
    #[cfg(feature = "kubernetes")]
    #[error("Kubernetes API: {action} {name}: {source}")]
    Api {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What a step does, as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// One build on a build node.
    Build,
    /// `completions` runs (or batches) on KVM nodes, at most `parallelism`
    /// at once: an Indexed Job.
    Test { completions: u32, parallelism: u32 },
}

impl StepKind {
    /// The word in Job names and the [`LABEL_KIND`] label.
    pub fn word(self) -> &'static str {
        match self {
            StepKind::Build => "build",
            StepKind::Test { .. } => "test",
        }
    }
}

/// A Job's name: `kcache-<kind>-<40 hex of the step hash>-<attempt>`, a
/// DNS-1123 label of at most 63 characters (Kubernetes copies it into the
/// pods' `job-name` label), the same for every driver that submits the
/// step's attempt.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobName(String);

impl JobName {
    pub fn new(step: &Key, kind: StepKind, attempt: u32) -> JobName {
        JobName(format!("kcache-{}-{}-{attempt}", kind.word(), step_label(step)))
    }

    /// A name read back from the API server (a listed Job's).
    pub fn from_api(name: &str) -> JobName {
        JobName(name.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The attempt a kcache Job name ends with (None: not one of kcache's
    /// names): a restarted driver attaches to a step's latest attempt.
    pub fn attempt(&self) -> Option<u32> {
        let (_, n) = self.0.rsplit_once('-')?;
        n.parse().ok()
    }
}

impl std::fmt::Display for JobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for JobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The [`LABEL_STEP`] value of a step: what `list` selects on.
pub fn step_label(step: &Key) -> String {
    step.to_hex()[..NAME_HASH_DIGITS].to_string()
}

/// Which nodes a kind of step goes to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Placement {
    /// Node labels the pod requires (`nodeSelector`).
    pub node_selector: BTreeMap<String, String>,
    /// Taint keys the pod tolerates (any value, any effect): nodes kept
    /// for builds or VMs are often tainted so nothing else lands there.
    pub tolerate: Vec<String>,
}

impl Placement {
    fn role(role: &str) -> Placement {
        Placement {
            node_selector: BTreeMap::from([("kcache/role".to_string(), role.to_string())]),
            tolerate: Vec::new(),
        }
    }
}

/// How a test pod gets `/dev/kvm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum KvmAccess {
    /// One unit of a device plugin's extended resource (the pod stays
    /// unprivileged; the scheduler knows which nodes have KVM).
    DevicePlugin { resource: String },
    /// The node's `/dev/kvm` as a hostPath, in a privileged container.
    HostPath,
    /// No KVM: QEMU runs TCG (slow; for clusters without virtualization).
    None,
}

impl Default for KvmAccess {
    fn default() -> KvmAccess {
        KvmAccess::DevicePlugin {
            resource: "devices.kubevirt.io/kvm".to_string(),
        }
    }
}

/// What one pod asks the scheduler for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Thousandths of a CPU.
    pub millicpu: u32,
    pub memory_mib: u32,
}

/// A host directory mounted read-only into every pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMount {
    /// The directory on the node.
    pub node_path: String,
    /// Where the pod sees it.
    pub mount_path: String,
}

/// A farm's settings for every Job (the config file's `[kubernetes]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobTemplate {
    /// The namespace of kcache's Jobs (None: the kubeconfig's, else
    /// `default`).
    pub namespace: Option<String>,
    /// The worker image: kcache, the toolchain, QEMU, git.
    pub image: String,
    pub build_nodes: Placement,
    pub kvm_nodes: Placement,
    pub kvm: KvmAccess,
    pub build_resources: Resources,
    /// Per test pod: one VM.
    pub test_resources: Resources,
    /// Infrastructure retries: of the build's pod; of each test index.
    pub backoff_limit: u32,
    /// How long a finished Job stays for a restarted driver to find.
    pub ttl_seconds_after_finished: u32,
    /// A step's longest life before Kubernetes stops it (DeadlineExceeded).
    pub active_deadline_seconds: Option<u32>,
    /// A Secret whose keys become the pod's environment: the store's
    /// credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).
    pub store_credentials: Option<String>,
    /// A Secret holding the worker's `config.toml` and `signing.key`,
    /// mounted as `$XDG_CONFIG_HOME/kcache` ([`WORKER_CONFIG_HOME`]).
    pub worker_config: Option<String>,
    /// The per-node reference clone of the kernel a build worker fetches
    /// one commit into (sources are never uploaded); build pods only.
    pub reference_clone: Option<HostMount>,
    /// Labels added to every Job and pod (a team's cost labels, say).
    pub labels: BTreeMap<String, String>,
}

impl Default for JobTemplate {
    fn default() -> JobTemplate {
        JobTemplate {
            namespace: None,
            image: String::new(),
            build_nodes: Placement::role("build"),
            kvm_nodes: Placement::role("kvm"),
            kvm: KvmAccess::default(),
            build_resources: Resources {
                millicpu: 8000,
                memory_mib: 16 * 1024,
            },
            test_resources: Resources {
                millicpu: 2000,
                memory_mib: 4 * 1024,
            },
            backoff_limit: 2,
            ttl_seconds_after_finished: 24 * 3600,
            active_deadline_seconds: None,
            store_credentials: None,
            worker_config: None,
            reference_clone: None,
            labels: BTreeMap::new(),
        }
    }
}

/// One step to run: its content hash, its spec, the job body's command
/// line, and which attempt this is (a failed Job is resubmitted under the
/// next attempt's name, never over the failed one).
#[derive(Debug, Clone)]
pub struct JobRequest<'t> {
    pub step: Key,
    /// The step's spec as the job body reads it (from [`SPEC_FILE`]).
    pub spec: String,
    /// `kcache step run /etc/kcache/step/spec.json` (or the like).
    pub argv: Vec<String>,
    pub kind: StepKind,
    pub attempt: u32,
    pub template: &'t JobTemplate,
}

impl JobRequest<'_> {
    pub fn name(&self) -> JobName {
        JobName::new(&self.step, self.kind, self.attempt)
    }

    /// The request's problems, before anything reaches the API server.
    pub fn check(&self) -> Result<(), KubernetesError> {
        let bad = |m: &str| Err(KubernetesError::InvalidRequest(m.to_string()));
        if self.template.image.trim().is_empty() {
            return bad("no worker image (the config file's kubernetes.image)");
        }
        if self.argv.first().is_none_or(|a| a.is_empty()) {
            return bad("no command line for the job body");
        }
        if let StepKind::Test {
            completions,
            parallelism,
        } = self.kind
        {
            if completions == 0 || parallelism == 0 {
                return bad("a test step needs at least one run and one VM");
            }
        }
        if self.spec.len() > MAX_SPEC_BYTES {
            return Err(KubernetesError::SpecTooLarge { bytes: self.spec.len() });
        }
        Ok(())
    }
}

/// A Job's state in the engine-neutral words of the seam.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum JobState {
    /// Accepted; no pod has started the body yet.
    Queued,
    Running,
    /// Every pod (every index) ran the body to the end.
    Succeeded,
    /// The engine gave up: `reason` is its word and message
    /// (`BackoffLimitExceeded: ...`, `DeadlineExceeded: ...`).
    Failed {
        reason: String,
    },
}

/// What the engine says about one Job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobReport {
    pub name: JobName,
    /// The whole step hash from the Job's annotation (None: not kcache's).
    pub step: Option<Key>,
    pub state: JobState,
    /// Pods pending or running.
    pub active: u32,
    /// Pods running and ready.
    pub ready: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Indexed Jobs: the indexes (runs or batches) done, and those whose
    /// retries ran out.
    pub completed_indexes: Vec<u32>,
    pub failed_indexes: Vec<u32>,
}

/// The build without the `kubernetes` feature: no engine can exist, and
/// [`KubeEngine::connect`] says how to build one.
#[cfg(not(feature = "kubernetes"))]
pub enum KubeEngine {}

#[cfg(not(feature = "kubernetes"))]
impl KubeEngine {
    pub async fn connect(_namespace: Option<&str>) -> Result<KubeEngine, KubernetesError> {
        Err(KubernetesError::NotBuilt)
    }
}

/// The job body's command line in the pod: the driver's team store, then
/// `step run` on the projected spec; a test step's pod takes its task
/// from `JOB_COMPLETION_INDEX` (`--task` is not given).
pub fn body_argv(remote: &str) -> Vec<String> {
    ["kcache", "--remote", remote, "step", "run", SPEC_FILE]
        .map(str::to_string)
        .to_vec()
}

/// A step's kind on the engine: a build, or a test step of one Indexed
/// Job completion per task (its runs / `runs_per_task`), all at once (the
/// scheduler holds back what the KVM nodes cannot take).
pub fn step_kind(spec: &StepSpec) -> StepKind {
    match spec.work {
        StepWork::Build { .. } => StepKind::Build,
        StepWork::Test { .. } => StepKind::Test {
            completions: spec.tasks(),
            parallelism: spec.tasks(),
        },
    }
}

/// The Job request of a step's `attempt`.
pub fn request_for<'t>(spec: &StepSpec, remote: &str, attempt: u32, template: &'t JobTemplate) -> JobRequest<'t> {
    JobRequest {
        step: spec.name().0,
        spec: String::from_utf8(spec.canonical()).expect("JSON is UTF-8"),
        argv: body_argv(remote),
        kind: step_kind(spec),
        attempt,
        template,
    }
}

/// A Job's report in the seam's words: queued or running is active; a
/// failure says the Job, the controller's reason and the indexes (test
/// tasks) that ran out of retries.
pub fn seam_state(report: &JobReport) -> crate::engine::JobState {
    use crate::engine::JobState as Seam;
    match &report.state {
        JobState::Queued | JobState::Running => Seam::Active,
        JobState::Succeeded => Seam::Done,
        JobState::Failed { reason } if report.failed_indexes.is_empty() => {
            Seam::Failed(format!("Job {} failed: {reason}", report.name))
        }
        JobState::Failed { reason } => Seam::Failed(format!(
            "Job {} failed: {reason} (tasks out of retries: {})",
            report.name,
            report
                .failed_indexes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Whether this build has the Kubernetes client: a driver checks it
/// before any work (without it, [`KubernetesError::NotBuilt`]).
pub fn ensure_built() -> Result<(), KubernetesError> {
    if cfg!(feature = "kubernetes") {
        Ok(())
    } else {
        Err(KubernetesError::NotBuilt)
    }
}

/// The build without the `kubernetes` feature: `--executor kubernetes`
/// fails at [`KubeExecutor::connect`] with [`KubernetesError::NotBuilt`].
#[cfg(not(feature = "kubernetes"))]
pub enum KubeExecutor {}

#[cfg(not(feature = "kubernetes"))]
impl KubeExecutor {
    pub fn connect(_template: JobTemplate, _remote: String) -> Result<KubeExecutor, KubernetesError> {
        Err(KubernetesError::NotBuilt)
    }
}

#[cfg(not(feature = "kubernetes"))]
impl crate::engine::Executor for KubeExecutor {
    fn name(&self) -> &'static str {
        match *self {}
    }
    fn find(&self, _: &StepSpec) -> Result<Option<crate::engine::JobId>, crate::engine::EngineError> {
        match *self {}
    }
    fn submit(&self, _: &StepSpec) -> Result<crate::engine::JobId, crate::engine::EngineError> {
        match *self {}
    }
    fn state(&self, _: &crate::engine::JobId) -> Result<crate::engine::JobState, crate::engine::EngineError> {
        match *self {}
    }
    fn cancel(&self, _: &crate::engine::JobId) -> Result<(), crate::engine::EngineError> {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step() -> Key {
        Key(*blake3::hash(b"a step").as_bytes())
    }

    #[test]
    fn job_names_are_dns_labels_from_the_step_hash() {
        for kind in [
            StepKind::Build,
            StepKind::Test {
                completions: 20,
                parallelism: 10,
            },
        ] {
            let name = JobName::new(&step(), kind, 12);
            let s = name.as_str();
            assert!(s.len() <= 63, "{s}");
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            assert!(s.starts_with(&format!("kcache-{}-", kind.word())));
            assert!(s.contains(&step_label(&step())));
            assert_eq!(name.attempt(), Some(12));
        }
        assert_ne!(
            JobName::new(&step(), StepKind::Build, 0),
            JobName::new(&step(), StepKind::Build, 1)
        );
    }

    #[test]
    fn a_request_without_image_command_or_runs_is_refused() {
        let template = JobTemplate {
            image: "registry.example/kcache:1".into(),
            ..JobTemplate::default()
        };
        let good = JobRequest {
            step: step(),
            spec: "{}".into(),
            argv: vec!["kcache".into()],
            kind: StepKind::Build,
            attempt: 0,
            template: &template,
        };
        assert!(good.check().is_ok());
        let empty = JobTemplate::default();
        let no_image = JobRequest {
            template: &empty,
            ..good.clone()
        };
        assert!(no_image.check().unwrap_err().to_string().contains("image"));
        let no_argv = JobRequest {
            argv: vec![],
            ..good.clone()
        };
        assert!(no_argv.check().unwrap_err().to_string().contains("command line"));
        let no_runs = JobRequest {
            kind: StepKind::Test {
                completions: 0,
                parallelism: 4,
            },
            ..good.clone()
        };
        assert!(no_runs.check().is_err());
        let huge = JobRequest {
            spec: "x".repeat(MAX_SPEC_BYTES + 1),
            ..good
        };
        assert!(matches!(huge.check(), Err(KubernetesError::SpecTooLarge { .. })));
    }

    #[test]
    fn the_build_without_the_feature_says_how_to_get_it() {
        let message = KubernetesError::NotBuilt.to_string();
        assert!(message.contains("--features kubernetes"), "{message}");
    }

    #[test]
    fn the_config_file_section_reads_with_defaults_and_refuses_typos() {
        let t: JobTemplate = toml::from_str(
            r#"
            image = "registry.example/kcache:1"
            kvm = "host-path"
            [kvm_nodes.node_selector]
            "example.com/kvm" = "true"
            "#,
        )
        .expect("parses");
        assert_eq!(t.kvm, KvmAccess::HostPath);
        assert_eq!(t.build_nodes, Placement::role("build"));
        assert_eq!(
            t.kvm_nodes.node_selector.get("example.com/kvm").map(String::as_str),
            Some("true")
        );
        let typo = toml::from_str::<JobTemplate>("imgae = \"x\"");
        assert!(typo.unwrap_err().to_string().contains("imgae"));
    }

    #[cfg(not(feature = "kubernetes"))]
    #[test]
    fn connecting_without_the_feature_is_the_not_built_error() {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let err = rt.block_on(KubeEngine::connect(None)).map(|_| ()).unwrap_err();
        assert!(matches!(err, KubernetesError::NotBuilt));
    }
}
