//! The Kubernetes engine without a cluster: the Job objects built for a
//! build step and a test step (checked against k8s-openapi's API types and
//! against the golden files in tests/data/kubernetes; regenerate them with
//! KCACHE_UPDATE_GOLDEN=1), and the state read from Job objects as an API
//! server returns them (tests/data/kubernetes/{build,test}-*.json).
//!
//! With a cluster: `KCACHE_K8S_E2E=1 cargo test --release --locked
//! --features kubernetes --test kubernetes -- --ignored` creates trivial
//! Jobs (busybox; KCACHE_K8S_E2E_IMAGE overrides) in KCACHE_K8S_NAMESPACE
//! (else the kubeconfig's), waits for them and deletes them.
#![cfg(feature = "kubernetes")]

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::batch::v1::Job;
use kcache::engine::kubernetes::{
    index_set, job, report, HostMount, JobRequest, JobState, JobTemplate, KvmAccess, Placement, StepKind,
    ANNOTATION_SPEC, SPEC_FILE,
};
use kcache::engine::kubernetes::{request_for, seam_state};
use kcache::engine::{JobState as Seam, StepRecipe, StepSpec, StepWork, STEP_SCHEMA};
use kcache::key::{BuildKey, CommitId, Key, TestKey};
use kcache::signature::KernelSignature;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/kubernetes")
        .join(name)
}

fn step() -> Key {
    Key::from_hex("5d0b2a7e1c9f4e3b8a6d2c1f0e9b8a7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a10").expect("hex")
}

/// A farm with everything set: taints, a reference clone, both Secrets.
fn farm() -> JobTemplate {
    JobTemplate {
        namespace: Some("kcache".into()),
        image: "registry.example.com/kcache-worker:1".into(),
        build_nodes: Placement {
            node_selector: BTreeMap::from([("kcache/role".into(), "build".into())]),
            tolerate: vec!["kcache/build".into()],
        },
        kvm_nodes: Placement {
            node_selector: BTreeMap::from([("kcache/role".into(), "kvm".into())]),
            tolerate: vec!["kcache/kvm".into()],
        },
        store_credentials: Some("kcache-store".into()),
        worker_config: Some("kcache-worker".into()),
        reference_clone: Some(HostMount {
            node_path: "/srv/linux.git".into(),
            mount_path: "/srv/linux.git".into(),
        }),
        active_deadline_seconds: Some(4 * 3600),
        labels: BTreeMap::from([("team".into(), "kernel".into())]),
        ..JobTemplate::default()
    }
}

fn request(template: &JobTemplate, kind: StepKind) -> JobRequest<'_> {
    JobRequest {
        step: step(),
        spec: format!("{{\"step\":\"{}\",\"kind\":\"{}\"}}", step(), kind.word()),
        argv: ["kcache", "step", "run", SPEC_FILE].map(String::from).to_vec(),
        kind,
        attempt: 0,
        template,
    }
}

const TEST: StepKind = StepKind::Test {
    completions: 20,
    parallelism: 10,
};

/// The object as JSON, read back as the API type, and the same again:
/// nothing lost or renamed on the way.
fn through_the_api_types(job: &Job) -> serde_json::Value {
    let json = serde_json::to_value(job).expect("serializes");
    let back: Job = serde_json::from_value(json.clone()).expect("deserializes as a batch/v1 Job");
    assert_eq!(&back, job);
    assert_eq!(json["apiVersion"], "batch/v1");
    assert_eq!(json["kind"], "Job");
    json
}

/// Compares with the golden file (rewrites it under KCACHE_UPDATE_GOLDEN=1);
/// the golden file itself must survive the API types unchanged (a field
/// k8s-openapi does not know would be dropped).
fn golden(name: &str, json: &serde_json::Value) {
    let path = data(name);
    let text = serde_json::to_string_pretty(json).expect("json") + "\n";
    if std::env::var_os("KCACHE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden file");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let as_api: Job = serde_json::from_str(&want).expect("golden file is a Job");
    assert_eq!(
        serde_json::to_value(&as_api).expect("json"),
        serde_json::from_str::<serde_json::Value>(&want).expect("json"),
        "{name} has fields the API types do not know"
    );
    assert_eq!(
        text, want,
        "{name} differs from the Job built now (KCACHE_UPDATE_GOLDEN=1 rewrites it)"
    );
}

fn container(json: &serde_json::Value) -> &serde_json::Value {
    &json["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn a_build_step_is_a_plain_job_on_a_build_node() {
    let template = farm();
    let r = request(&template, StepKind::Build);
    let json = through_the_api_types(&job(&r).expect("job"));
    let name = r.name();
    assert_eq!(json["metadata"]["name"], name.as_str());
    assert!(name.as_str().len() <= 63);
    assert_eq!(json["metadata"]["annotations"]["kcache/step"], step().to_hex());
    assert_eq!(json["metadata"]["labels"]["kcache/kind"], "build");
    assert_eq!(json["metadata"]["labels"]["team"], "kernel");
    let spec = &json["spec"];
    assert_eq!(spec["backoffLimit"], 2);
    assert_eq!(spec["ttlSecondsAfterFinished"], 86400);
    assert_eq!(spec["activeDeadlineSeconds"], 4 * 3600);
    assert!(spec.get("completionMode").is_none() && spec.get("completions").is_none());
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["nodeSelector"]["kcache/role"], "build");
    assert_eq!(pod["tolerations"][0]["key"], "kcache/build");
    let c = container(&json);
    assert_eq!(c["command"][3], SPEC_FILE);
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "kcache-store");
    assert_eq!(c["resources"]["requests"]["cpu"], "8000m");
    assert!(c["resources"]["limits"].get("devices.kubevirt.io/kvm").is_none());
    assert!(c.get("securityContext").is_none(), "builds run unprivileged");
    let clone = pod["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == "reference"));
    assert_eq!(
        clone.map(|v| &v["hostPath"]["path"]),
        Some(&serde_json::json!("/srv/linux.git"))
    );
    // The spec reaches the pod as a file, from the template's annotation.
    assert_eq!(spec["template"]["metadata"]["annotations"][ANNOTATION_SPEC], r.spec);
    let spec_volume = &pod["volumes"][0]["downwardAPI"]["items"][0];
    assert_eq!(
        spec_volume["fieldRef"]["fieldPath"],
        "metadata.annotations['kcache/spec']"
    );
    assert_eq!(spec_volume["path"], "spec.json");
    golden("build-job.json", &json);
}

#[test]
fn a_test_step_is_an_indexed_job_on_kvm_nodes() {
    let template = farm();
    let json = through_the_api_types(&job(&request(&template, TEST)).expect("job"));
    let spec = &json["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(
        (spec["completions"].as_i64(), spec["parallelism"].as_i64()),
        (Some(20), Some(10))
    );
    assert_eq!(spec["backoffLimitPerIndex"], 2);
    assert!(spec.get("backoffLimit").is_none(), "the per-index limit decides");
    assert_eq!(spec["podFailurePolicy"]["rules"][0]["action"], "Ignore");
    assert_eq!(json["metadata"]["labels"]["kcache/kind"], "test");
    assert_eq!(spec["template"]["spec"]["nodeSelector"]["kcache/role"], "kvm");
    let c = container(&json);
    assert_eq!(c["resources"]["limits"]["devices.kubevirt.io/kvm"], "1");
    assert!(
        c.get("securityContext").is_none(),
        "the device plugin needs no privilege"
    );
    let volumes = spec["template"]["spec"]["volumes"].as_array().expect("volumes");
    assert!(
        volumes.iter().all(|v| v["name"] != "reference"),
        "tests need no kernel clone"
    );
    golden("test-job.json", &json);
}

/// A bisection's step as the driver writes it (`Engine::spec`).
fn step_spec(work: StepWork) -> StepSpec {
    StepSpec {
        schema: STEP_SCHEMA.into(),
        repository: "https://git.example.com/linux.git".into(),
        commit: CommitId::from("0123456789abcdef0123456789abcdef01234567"),
        recipe: StepRecipe {
            build: "make -s vmlinux".into(),
            config: Some("/shared/kernel.config".into()),
            artifacts: vec!["vmlinux".into()],
            key_files: vec![],
            toolchain: "gcc (Debian 12.2.0-14) 12.2.0".into(),
            arch: "x86_64".into(),
            build_timeout_seconds: Some(3600.0),
            test: "/shared/repro.sh".into(),
            test_key_files: vec![],
            test_timeout_seconds: Some(300.0),
        },
        work,
    }
}

const REMOTE: &str = "s3://team-kernels/kcache";

/// What the seam hands the executor becomes the Job: named after the
/// spec's hash, the spec itself projected into the pod, the body's argv
/// with the driver's store and no `--task` (the pod's task is the
/// `JOB_COMPLETION_INDEX` Kubernetes sets in an Indexed Job).
#[test]
fn a_bisections_steps_become_their_jobs() {
    let template = farm();
    let build = step_spec(StepWork::Build {
        build_key: BuildKey(Key([3; 32])),
    });
    let r = request_for(&build, REMOTE, 0, &template);
    assert_eq!(r.step, build.name().0);
    assert_eq!(r.kind, StepKind::Build);
    let json = through_the_api_types(&job(&r).expect("job"));
    assert_eq!(
        json["metadata"]["name"],
        format!("kcache-build-{}-0", &build.name().to_string()[..40])
    );
    assert_eq!(json["metadata"]["annotations"]["kcache/step"], build.name().to_string());
    assert_eq!(json["spec"]["backoffLimit"], 2);
    assert!(json["spec"].get("completionMode").is_none());
    let argv = ["kcache", "--remote", REMOTE, "step", "run", SPEC_FILE];
    assert_eq!(container(&json)["command"], serde_json::json!(argv));
    let projected = json["spec"]["template"]["metadata"]["annotations"][ANNOTATION_SPEC]
        .as_str()
        .expect("spec annotation");
    let read = StepSpec::parse(projected.as_bytes(), std::path::Path::new(SPEC_FILE)).expect("the body reads it");
    assert_eq!(read, build);

    // 10 runs, 3 per task: 4 tasks, one Indexed Job completion each.
    let test = step_spec(StepWork::Test {
        build_key: BuildKey(Key([3; 32])),
        signature: KernelSignature::parse(&"c".repeat(64)).expect("signature"),
        test_key: TestKey(Key([4; 32])),
        first_run: 2,
        runs: 10,
        tasks: 4,
    });
    let r = request_for(&test, REMOTE, 1, &template);
    assert_eq!(
        r.kind,
        StepKind::Test {
            completions: 4,
            parallelism: 4
        }
    );
    let json = through_the_api_types(&job(&r).expect("job"));
    assert_eq!(
        json["metadata"]["name"],
        format!("kcache-test-{}-1", &test.name().to_string()[..40])
    );
    let spec = &json["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(
        (spec["completions"].as_i64(), spec["parallelism"].as_i64()),
        (Some(4), Some(4))
    );
    let c = container(&json);
    assert_eq!(c["command"], serde_json::json!(argv));
    assert!(
        !c["command"].as_array().unwrap().iter().any(|a| a == "--task"),
        "the task comes from JOB_COMPLETION_INDEX"
    );
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        !env.contains(&"JOB_COMPLETION_INDEX"),
        "Kubernetes sets the index; the Job must not override it: {env:?}"
    );
    assert!(env.contains(&"KCACHE_DIR"), "{env:?}");
    golden("test-step-job.json", &json);
}

/// The engine's words for a Job, as the driver's loop reads them.
#[test]
fn job_states_become_the_seams_states() {
    assert_eq!(seam_state(&recorded("build-pending.json")), Seam::Active);
    assert_eq!(seam_state(&recorded("build-running.json")), Seam::Active);
    assert_eq!(seam_state(&recorded("build-succeeded.json")), Seam::Done);
    let Seam::Failed(why) = seam_state(&recorded("build-failed-backoff.json")) else {
        panic!("a failed Job is a failure")
    };
    assert!(why.contains("BackoffLimitExceeded"), "{why}");
    let Seam::Failed(why) = seam_state(&recorded("test-failed-indexes.json")) else {
        panic!("a failed Job is a failure")
    };
    assert!(why.contains("tasks out of retries: 3, 7"), "{why}");
}

#[test]
fn kvm_from_a_host_path_runs_privileged() {
    let template = JobTemplate {
        kvm: KvmAccess::HostPath,
        ..farm()
    };
    let json = through_the_api_types(&job(&request(&template, TEST)).expect("job"));
    let c = container(&json);
    assert_eq!(c["securityContext"]["privileged"], true);
    assert!(c["resources"]["limits"].get("devices.kubevirt.io/kvm").is_none());
    let volumes = json["spec"]["template"]["spec"]["volumes"].as_array().expect("volumes");
    let kvm = volumes.iter().find(|v| v["name"] == "kvm").expect("a kvm volume");
    assert_eq!(kvm["hostPath"]["type"], "CharDevice");
    // More VMs than runs: the Job asks for no more pods than it has runs.
    let few = StepKind::Test {
        completions: 3,
        parallelism: 16,
    };
    let json = through_the_api_types(&job(&request(&template, few)).expect("job"));
    assert_eq!(json["spec"]["parallelism"], 3);
}

fn recorded(name: &str) -> kcache::engine::kubernetes::JobReport {
    let path = data(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let job: Job = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    report(&job).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn states_from_recorded_api_responses() {
    let pending = recorded("build-pending.json");
    assert_eq!(pending.state, JobState::Queued);
    assert_eq!((pending.active, pending.ready), (1, 0));
    assert_eq!(pending.step, Some(step()));
    assert_eq!(recorded("build-running.json").state, JobState::Running);
    assert_eq!(recorded("build-succeeded.json").state, JobState::Succeeded);
    let backoff = recorded("build-failed-backoff.json");
    assert_eq!(
        backoff.state,
        JobState::Failed {
            reason: "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        }
    );
    assert_eq!(backoff.failed, 3);
    let deadline = recorded("build-failed-deadline.json");
    assert!(
        matches!(&deadline.state, JobState::Failed { reason } if reason.starts_with("DeadlineExceeded:")),
        "{deadline:?}"
    );
}

#[test]
fn indexed_states_say_which_runs_finished_and_which_ran_out_of_retries() {
    let running = recorded("test-running.json");
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.completed_indexes, vec![0, 1, 2, 3]);
    assert!(running.failed_indexes.is_empty());
    let failed = recorded("test-failed-indexes.json");
    assert!(matches!(&failed.state, JobState::Failed { reason } if reason.starts_with("FailedIndexes:")));
    assert_eq!(failed.completed_indexes, vec![0, 1, 2, 4, 5, 6, 8, 9]);
    assert_eq!(failed.failed_indexes, vec![3, 7]);
    assert_eq!(index_set("0-2,4-6,8-9").map(|v| v.len()), Ok(8));
}

#[test]
fn a_job_that_is_not_kcaches_or_is_garbled_is_said_so() {
    let text = std::fs::read_to_string(data("build-running.json")).expect("read");
    let mut job: Job = serde_json::from_str(&text).expect("job");
    job.metadata.annotations = None;
    assert_eq!(report(&job).expect("report").step, None);
    let mut garbled = job.clone();
    garbled.status.as_mut().expect("status").completed_indexes = Some("2-x".into());
    let err = report(&garbled).expect_err("garbled indexes").to_string();
    assert!(
        err.contains("completedIndexes") && err.contains(job.metadata.name.as_deref().unwrap_or("?")),
        "{err}"
    );
    // A Job just created has no status yet: queued.
    job.status = None;
    assert_eq!(report(&job).expect("report").state, JobState::Queued);
}

/// Against a real cluster: a build-shaped Job that succeeds, an Indexed
/// Job whose index 1 fails (no retries), re-attaching by name, and delete.
#[test]
#[ignore = "needs a Kubernetes cluster: KCACHE_K8S_E2E=1"]
fn end_to_end_on_a_cluster() {
    if std::env::var("KCACHE_K8S_E2E").as_deref() != Ok("1") {
        eprintln!("KCACHE_K8S_E2E is not 1: skipped");
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use kcache::engine::kubernetes::KubeEngine;
        let namespace = std::env::var("KCACHE_K8S_NAMESPACE").ok();
        let engine = KubeEngine::connect(namespace.as_deref())
            .await
            .expect("cluster reachable");
        let template = JobTemplate {
            namespace: Some(engine.namespace().to_string()),
            image: std::env::var("KCACHE_K8S_E2E_IMAGE").unwrap_or_else(|_| "busybox:1.36".into()),
            build_nodes: Placement::default(),
            kvm_nodes: Placement::default(),
            kvm: KvmAccess::None,
            backoff_limit: 0,
            build_resources: kcache::engine::kubernetes::Resources {
                millicpu: 100,
                memory_mib: 64,
            },
            test_resources: kcache::engine::kubernetes::Resources {
                millicpu: 100,
                memory_mib: 64,
            },
            ..JobTemplate::default()
        };
        let unique = Key(*blake3::hash(format!("e2e {:?}", std::time::SystemTime::now()).as_bytes()).as_bytes());
        let sh = |script: &str| ["sh", "-c", script].map(String::from).to_vec();
        let build = JobRequest {
            step: unique,
            spec: "{}".into(),
            argv: sh(&format!("test \"$(cat {SPEC_FILE})\" = '{{}}'")),
            kind: StepKind::Build,
            attempt: 0,
            template: &template,
        };
        let test = JobRequest {
            argv: sh("test \"$JOB_COMPLETION_INDEX\" != 1"),
            kind: StepKind::Test {
                completions: 3,
                parallelism: 2,
            },
            ..build.clone()
        };
        for r in [&build, &test] {
            assert!(!engine.submit(r).await.expect("create").attached);
            assert!(
                engine.submit(r).await.expect("re-attach").attached,
                "a second submit attaches"
            );
        }
        let until_done = |name| {
            let engine = engine.clone();
            async move {
                for _ in 0..300 {
                    let r = engine.status(&name).await.expect("status").expect("exists");
                    if matches!(r.state, JobState::Succeeded | JobState::Failed { .. }) {
                        return r;
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                panic!("{name} did not finish in 5 minutes");
            }
        };
        assert_eq!(until_done(build.name()).await.state, JobState::Succeeded);
        let t = until_done(test.name()).await;
        assert!(matches!(t.state, JobState::Failed { .. }), "{t:?}");
        assert_eq!((t.completed_indexes, t.failed_indexes), (vec![0, 2], vec![1]));
        assert_eq!(engine.find_step(&unique).await.expect("list").len(), 2);
        for r in [&build, &test] {
            assert!(engine.cancel(&r.name()).await.expect("delete"));
        }
    });
}
