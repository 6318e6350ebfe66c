//! A step as a `batch/v1` Job object (k8s-openapi's types).
//!
//! Invariant: a function of the request alone (no clock, no randomness):
//! the same step gives the same object, byte for byte, which the golden
//! files in tests/data/kubernetes hold.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    HostPathVolumeSource, ObjectFieldSelector, PodSpec, PodTemplateSpec, ResourceRequirements, SecretEnvSource,
    SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    step_label, JobRequest, KubernetesError, KvmAccess, Placement, Resources, StepKind, ANNOTATION_SPEC,
    ANNOTATION_STEP, LABEL_KIND, LABEL_MANAGED_BY, LABEL_STEP, SPEC_FILE, WORKER_CONFIG_HOME, WORK_DIR,
};

const CONTAINER: &str = "step";
const KVM_DEVICE: &str = "/dev/kvm";

/// The Job that runs `request`'s step.
pub fn job(request: &JobRequest) -> Result<Job, KubernetesError> {
    request.check()?;
    let labels = labels(request);
    let spec = match request.kind {
        StepKind::Build => JobSpec {
            backoff_limit: Some(to_i32(request.template.backoff_limit)),
            ..common_spec(request, labels.clone())
        },
        StepKind::Test {
            completions,
            parallelism,
        } => JobSpec {
            completion_mode: Some("Indexed".to_string()),
            completions: Some(to_i32(completions)),
            parallelism: Some(to_i32(parallelism.min(completions))),
            // Each run retried on its own: one flaky VM host does not
            // fail the other runs, and `failedIndexes` says which ran out.
            backoff_limit_per_index: Some(to_i32(request.template.backoff_limit)),
            ..common_spec(request, labels.clone())
        },
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(request.name().as_str().to_string()),
            namespace: request.template.namespace.clone(),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(ANNOTATION_STEP.to_string(), request.step.to_hex())])),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

fn labels(request: &JobRequest) -> BTreeMap<String, String> {
    let mut labels = request.template.labels.clone();
    labels.insert(LABEL_MANAGED_BY.to_string(), "kcache".to_string());
    labels.insert(LABEL_STEP.to_string(), step_label(&request.step));
    labels.insert(LABEL_KIND.to_string(), request.kind.word().to_string());
    labels
}

/// What build and test Jobs share: the pod, the TTL, the deadline, and
/// the rule that a disrupted pod (drained node, preemption) is retried
/// without counting against the backoff limit.
fn common_spec(request: &JobRequest, labels: BTreeMap<String, String>) -> JobSpec {
    JobSpec {
        active_deadline_seconds: request.template.active_deadline_seconds.map(i64::from),
        ttl_seconds_after_finished: Some(to_i32(request.template.ttl_seconds_after_finished)),
        pod_failure_policy: Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "Ignore".to_string(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".to_string(),
                    status: "True".to_string(),
                }]),
                on_exit_codes: None,
            }],
        }),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(ANNOTATION_SPEC.to_string(), request.spec.clone())])),
                ..ObjectMeta::default()
            }),
            spec: Some(pod(request)),
        },
        ..JobSpec::default()
    }
}

fn pod(request: &JobRequest) -> PodSpec {
    let t = request.template;
    let (placement, resources) = match request.kind {
        StepKind::Build => (&t.build_nodes, t.build_resources),
        StepKind::Test { .. } => (&t.kvm_nodes, t.test_resources),
    };
    let kvm = match request.kind {
        StepKind::Build => &KvmAccess::None,
        StepKind::Test { .. } => &t.kvm,
    };
    let mut volumes = vec![
        Volume {
            name: "spec".to_string(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    path: file_name(SPEC_FILE).to_string(),
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{ANNOTATION_SPEC}']"),
                        api_version: None,
                    }),
                    ..DownwardAPIVolumeFile::default()
                }]),
                ..DownwardAPIVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "work".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        mount("spec", parent_dir(SPEC_FILE), true),
        mount("work", WORK_DIR, false),
    ];
    // Only a build reads the kernel's sources; test nodes need no clone.
    if let (StepKind::Build, Some(clone)) = (request.kind, &t.reference_clone) {
        volumes.push(host_path("reference", &clone.node_path, "Directory"));
        mounts.push(mount("reference", &clone.mount_path, true));
    }
    if let Some(secret) = &t.worker_config {
        volumes.push(Volume {
            name: "worker-config".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                // The signing key is read by the body alone.
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(mount("worker-config", &format!("{WORKER_CONFIG_HOME}/kcache"), true));
    }
    if *kvm == KvmAccess::HostPath {
        volumes.push(host_path("kvm", KVM_DEVICE, "CharDevice"));
        mounts.push(mount("kvm", KVM_DEVICE, false));
    }
    PodSpec {
        restart_policy: Some("Never".to_string()),
        node_selector: (!placement.node_selector.is_empty()).then(|| placement.node_selector.clone()),
        tolerations: tolerations(placement),
        volumes: Some(volumes),
        containers: vec![Container {
            name: CONTAINER.to_string(),
            image: Some(t.image.clone()),
            command: Some(request.argv.clone()),
            env: Some(env(request)),
            env_from: t.store_credentials.as_ref().map(|secret| {
                vec![EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: secret.clone(),
                        optional: Some(false),
                    }),
                    ..EnvFromSource::default()
                }]
            }),
            resources: Some(requirements(resources, kvm)),
            security_context: (*kvm == KvmAccess::HostPath).then(|| SecurityContext {
                privileged: Some(true),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(mounts),
            ..Container::default()
        }],
        ..PodSpec::default()
    }
}

fn env(request: &JobRequest) -> Vec<EnvVar> {
    let var = |name: &str, value: String| EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    };
    let mut env = vec![
        var("KCACHE_STEP", request.step.to_hex()),
        var("KCACHE_DIR", WORK_DIR.to_string()),
    ];
    if request.template.worker_config.is_some() {
        env.push(var("XDG_CONFIG_HOME", WORKER_CONFIG_HOME.to_string()));
    }
    env
}

/// CPU and memory requested (memory also the limit: a build that outgrows
/// it is killed as OOM, not left to slow the node); the KVM device, an
/// extended resource, must be a limit (its request follows).
fn requirements(resources: Resources, kvm: &KvmAccess) -> ResourceRequirements {
    let memory = Quantity(format!("{}Mi", resources.memory_mib));
    let requests = BTreeMap::from([
        ("cpu".to_string(), Quantity(format!("{}m", resources.millicpu))),
        ("memory".to_string(), memory.clone()),
    ]);
    let mut limits = BTreeMap::from([("memory".to_string(), memory)]);
    if let KvmAccess::DevicePlugin { resource } = kvm {
        limits.insert(resource.clone(), Quantity("1".to_string()));
    }
    ResourceRequirements {
        requests: Some(requests),
        limits: Some(limits),
        claims: None,
    }
}

fn tolerations(placement: &Placement) -> Option<Vec<Toleration>> {
    if placement.tolerate.is_empty() {
        return None;
    }
    Some(
        placement
            .tolerate
            .iter()
            .map(|key| Toleration {
                key: Some(key.clone()),
                operator: Some("Exists".to_string()),
                ..Toleration::default()
            })
            .collect(),
    )
}

fn host_path(name: &str, path: &str, kind: &str) -> Volume {
    Volume {
        name: name.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string(),
            type_: Some(kind.to_string()),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(dir, _)| dir)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, file)| file)
}

/// Counts in the API are int32; kcache's settings never come near the
/// limit, and a larger one is clamped rather than wrapped.
fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
