//! A step: exactly one build, or one batch of test runs, as a worker
//! performs it against the team store. Content-addressed: the BLAKE3 of
//! its canonical JSON is its name, so a resubmitted or duplicated job of
//! one step has one name (the engines find it again by that name).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::key::{self, BuildKey, CommitId, Key, TestKey};
use crate::signature::KernelSignature;

use super::EngineError;

/// The schema a step spec's JSON declares.
pub const STEP_SCHEMA: &str = "kcache/step/v1";

/// What to build and how to test, as the driver's recipe has it. File
/// inputs (config, key files) are paths the workers see at the same place
/// (a shared file system); the worker recomputes the keys from them and
/// refuses a step whose keys it cannot reproduce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecipe {
    pub build: String,
    pub config: Option<PathBuf>,
    pub artifacts: Vec<String>,
    pub key_files: Vec<PathBuf>,
    pub toolchain: String,
    pub arch: String,
    pub build_timeout_seconds: Option<f64>,
    pub test: String,
    pub test_key_files: Vec<PathBuf>,
    pub test_timeout_seconds: Option<f64>,
}

/// The work of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum StepWork {
    /// Build the commit (or find it recorded: rebuild nothing) and upload
    /// the build record and its blobs.
    Build { build_key: BuildKey },
    /// Restore the kernel of `build_key` (the commit's own build, or the
    /// one it was predicted equal to) from the store, run the test `runs`
    /// times in `tasks` engine tasks (task i runs its share) and upload
    /// the run records.
    Test {
        build_key: BuildKey,
        signature: KernelSignature,
        test_key: TestKey,
        /// The run number of the first new run (runs already pooled).
        first_run: u32,
        runs: u32,
        tasks: u32,
    },
}

/// One step, self-contained: the repository a worker fetches the commit
/// from, the commit, the recipe and the work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub schema: String,
    /// Where workers `git fetch` the commit from (a URL or a path they see).
    pub repository: String,
    /// The commit whose tree is built (for a test step: the build's commit).
    pub commit: CommitId,
    pub recipe: StepRecipe,
    pub work: StepWork,
}

/// A step's name: BLAKE3 of its canonical JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepName(pub Key);

impl StepName {
    /// The name engines give the step's job: `kcache-` and 16 hex digits.
    pub fn job_name(&self) -> String {
        format!("kcache-{}", &self.0.to_hex()[..16])
    }
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl StepSpec {
    /// The canonical bytes: compact JSON, fields in declaration order.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a step spec serializes")
    }

    pub fn name(&self) -> StepName {
        StepName(key::digest(&self.canonical()))
    }

    /// Engine tasks the step is split into (1 for a build).
    pub fn tasks(&self) -> u32 {
        match self.work {
            StepWork::Build { .. } => 1,
            StepWork::Test { tasks, .. } => tasks.max(1),
        }
    }

    /// A spec from its JSON, checked: the schema, and a test step's
    /// tasks within its runs.
    pub fn parse(bytes: &[u8], origin: &Path) -> Result<StepSpec, EngineError> {
        let bad = |problem: String| EngineError::BadSpec {
            path: origin.to_path_buf(),
            problem,
        };
        let spec: StepSpec = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if spec.schema != STEP_SCHEMA {
            return Err(bad(format!(
                "schema {:?}: this kcache reads {STEP_SCHEMA}",
                spec.schema
            )));
        }
        if let StepWork::Test { runs, tasks, .. } = spec.work {
            if runs == 0 || tasks == 0 || tasks > runs {
                return Err(bad(format!(
                    "{runs} run(s) in {tasks} task(s): give 1 <= tasks <= runs"
                )));
            }
        }
        Ok(spec)
    }

    pub fn read(path: &Path) -> Result<StepSpec, EngineError> {
        let bytes = std::fs::read(path).map_err(|e| EngineError::BadSpec {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        StepSpec::parse(&bytes, path)
    }

    /// What a step is, for people: `build of 1a2b3c4d5e6f` or `5 run(s) on ...`.
    pub fn describe(&self) -> String {
        match &self.work {
            StepWork::Build { build_key } => format!("build of {} (key {})", self.commit.short(), build_key.short()),
            StepWork::Test { signature, runs, .. } => {
                format!("{runs} test run(s) on signature {}", signature.short())
            }
        }
    }
}

/// The runs task `task` of a test step of `runs` runs in `tasks` tasks
/// does: the first `runs % tasks` tasks take one more.
pub fn task_share(runs: u32, tasks: u32, task: u32) -> u32 {
    let tasks = tasks.max(1);
    runs / tasks + u32::from(task < runs % tasks)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::engine) fn spec(work: StepWork) -> StepSpec {
        StepSpec {
            schema: STEP_SCHEMA.into(),
            repository: "/src/linux".into(),
            commit: CommitId::from("a".repeat(40).as_str()),
            recipe: StepRecipe {
                build: "make".into(),
                config: None,
                artifacts: vec!["vmlinux".into()],
                key_files: vec![],
                toolchain: "gcc 12".into(),
                arch: "x86_64".into(),
                build_timeout_seconds: None,
                test: "./t.sh".into(),
                test_key_files: vec![],
                test_timeout_seconds: Some(60.0),
            },
            work,
        }
    }

    #[test]
    fn a_spec_is_named_by_its_content_and_reads_back_as_itself() {
        let a = spec(StepWork::Build {
            build_key: BuildKey(Key([1; 32])),
        });
        let mut b = a.clone();
        assert_eq!(a.name(), b.name());
        b.recipe.build = "make -j8".into();
        assert_ne!(a.name(), b.name());
        assert_eq!(StepSpec::parse(&a.canonical(), Path::new("x")).unwrap(), a);
        assert!(a.name().job_name().starts_with("kcache-") && a.name().job_name().len() == 23);
    }

    #[test]
    fn a_bad_spec_is_refused_naming_the_file_and_the_problem() {
        let mut a = spec(StepWork::Test {
            build_key: BuildKey(Key([1; 32])),
            signature: KernelSignature::parse(&"b".repeat(64)).unwrap(),
            test_key: TestKey(Key([2; 32])),
            first_run: 0,
            runs: 2,
            tasks: 3,
        });
        let e = StepSpec::parse(&a.canonical(), Path::new("/tmp/s.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/tmp/s.json") && e.contains("tasks"), "{e}");
        a.schema = "kcache/step/v9".into();
        let e = StepSpec::parse(&a.canonical(), Path::new("/tmp/s.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kcache/step/v9"), "{e}");
        let e = StepSpec::parse(b"{", Path::new("/tmp/s.json")).unwrap_err().to_string();
        assert!(e.contains("/tmp/s.json"), "{e}");
    }

    #[test]
    fn runs_are_shared_out_over_tasks_without_loss() {
        for (runs, tasks) in [(10, 3), (5, 5), (7, 1), (1, 1)] {
            let total: u32 = (0..tasks).map(|t| task_share(runs, tasks, t)).sum();
            assert_eq!(total, runs);
        }
        assert_eq!(task_share(10, 3, 0), 4);
        assert_eq!(task_share(10, 3, 2), 3);
    }
}
