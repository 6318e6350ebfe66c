//! The Slurm executor: a step is a batch job (`sbatch`), a test step a job
//! array (one task per `runs_per_task` runs), named `kcache-<spec hash>`;
//! its state comes from `scontrol -o show job` (every task of an array,
//! finished ones included while slurmctld keeps them: `MinJobAge`), the
//! jobs still queued or running of a step from `squeue --name`.
//!
//! The job body is `kcache step run`: the spec travels inside the batch
//! script (no shared file system needed for it); the worker's cache is
//! its own (one per array index, so tasks on one node do not pool each
//! other's runs as theirs); the team store is the driver's `--remote`, the
//! credentials are the worker's environment (sbatch's `--export`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::{EngineError, Executor, JobId, JobState, StepSpec, StepWork};

/// `[slurm]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSettings {
    /// Partition of build steps (`--partition`); Slurm's default when unset.
    pub build_partition: Option<String>,
    /// Partition of test steps: the KVM nodes.
    pub test_partition: Option<String>,
    /// `--constraint` of build steps (node features).
    pub build_constraint: Option<String>,
    /// `--constraint` of test steps (`kvm`, say).
    pub test_constraint: Option<String>,
    /// The kcache binary on the workers (default: this one's path).
    pub kcache: Option<PathBuf>,
    /// The workers' cache directory (default `$KCACHE_WORKER_CACHE`, else
    /// `~/.cache/kcache-worker` on the worker); one subdirectory per task index.
    pub worker_cache_dir: Option<PathBuf>,
    /// Where job output goes (`--output`): a directory the workers can
    /// write and the driver read, for the reason a job failed.
    pub log_dir: Option<PathBuf>,
    /// sbatch's `--export` (default ALL: the driver's environment, store
    /// credentials included; NONE: the workers' own).
    pub export: Option<String>,
    /// More sbatch options for every job (`--time=60`, `--mem=8G`, ...).
    pub sbatch_args: Vec<String>,
}

/// Slurm, through its client commands (`SLURM_CONF` as the environment has it).
pub struct Slurm {
    settings: SlurmSettings,
    /// The team store workers write to (`--remote`).
    remote: String,
    kcache: PathBuf,
    log_dir: PathBuf,
}

const ENGINE: &str = "slurm";

impl Slurm {
    /// `log_dir` is used when the settings name none.
    pub fn new(settings: SlurmSettings, remote: String, default_log_dir: PathBuf) -> Result<Slurm, EngineError> {
        let kcache = match &settings.kcache {
            Some(k) => k.clone(),
            None => std::env::current_exe().map_err(|e| EngineError::Io(format!("the kcache binary's path: {e}")))?,
        };
        let log_dir = settings.log_dir.clone().unwrap_or(default_log_dir);
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| EngineError::Io(format!("slurm log directory {}: {e}", log_dir.display())))?;
        Ok(Slurm {
            settings,
            remote,
            kcache,
            log_dir,
        })
    }

    /// The batch script: the spec inline, then the job body.
    pub fn script(&self, spec: &StepSpec) -> String {
        let json = String::from_utf8(spec.canonical()).expect("JSON is UTF-8");
        let cache = match &self.settings.worker_cache_dir {
            Some(d) => quote(&d.to_string_lossy()),
            None => "\"${KCACHE_WORKER_CACHE:-$HOME/.cache/kcache-worker}\"".to_string(),
        };
        format!(
            "#!/bin/sh\n\
             # kcache step {name}: {what}\n\
             spec=$(mktemp \"${{TMPDIR:-/tmp}}/kcache-step-XXXXXX\") || exit 1\n\
             cat > \"$spec\" <<'KCACHE_STEP_SPEC_END'\n{json}\nKCACHE_STEP_SPEC_END\n\
             task=${{SLURM_ARRAY_TASK_ID:-0}}\n\
             {kcache} --cache-dir {cache}/task-\"$task\" --remote {remote} step run \"$spec\" --task \"$task\"\n\
             status=$?\n\
             rm -f \"$spec\"\n\
             exit $status\n",
            name = spec.name(),
            what = spec.describe(),
            kcache = quote(&self.kcache.to_string_lossy()),
            remote = quote(&self.remote),
        )
    }

    /// sbatch's options for a step.
    pub fn sbatch_args(&self, spec: &StepSpec) -> Vec<String> {
        let name = spec.name().job_name();
        let (partition, constraint) = match spec.work {
            StepWork::Build { .. } => (&self.settings.build_partition, &self.settings.build_constraint),
            StepWork::Test { .. } => (&self.settings.test_partition, &self.settings.test_constraint),
        };
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name={name}"),
            // A job on a failed node must come back to the driver, which
            // resubmits a bounded number of times, not to Slurm's requeue.
            "--no-requeue".to_string(),
        ];
        if let Some(p) = partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(c) = constraint {
            args.push(format!("--constraint={c}"));
        }
        if let Some(e) = &self.settings.export {
            args.push(format!("--export={e}"));
        }
        let tasks = spec.tasks();
        let output = match tasks {
            1 => format!("{name}-%A.out"),
            _ => format!("{name}-%A_%a.out"),
        };
        args.push(format!("--output={}", self.log_dir.join(output).display()));
        if tasks > 1 {
            args.push(format!("--array=0-{}", tasks - 1));
        }
        args.extend(self.settings.sbatch_args.iter().cloned());
        args
    }
}

/// A word for sh, in single quotes.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs a Slurm client command; its stdout.
fn client(program: &str, args: &[String], stdin: Option<&str>) -> Result<String, EngineError> {
    let command = format!("{program} {}", args.join(" "));
    let failed = |problem: String| EngineError::Command {
        engine: ENGINE,
        command: command.clone(),
        problem,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("{e} (is slurm-client installed and SLURM_CONF set?)")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| failed(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Job states in which a job (or array task) has not ended yet.
const ACTIVE: &[&str] = &[
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
];

/// One job (or array task) as `scontrol -o show job` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub job: String,
    pub state: String,
    pub reason: String,
    pub exit_code: String,
    pub stdout: Option<String>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// The tasks of `scontrol -o show job` output, one per line.
pub fn parse_show_job(text: &str) -> Vec<TaskState> {
    text.lines()
        .filter(|l| l.contains("JobState="))
        .map(|l| TaskState {
            job: match (field(l, "ArrayJobId"), field(l, "ArrayTaskId")) {
                (Some(a), Some(t)) => format!("{a}_{t}"),
                _ => field(l, "JobId").unwrap_or("?").to_string(),
            },
            state: field(l, "JobState").unwrap_or("UNKNOWN").to_string(),
            reason: field(l, "Reason").unwrap_or("None").to_string(),
            exit_code: field(l, "ExitCode").unwrap_or("").to_string(),
            stdout: field(l, "StdOut").map(str::to_string),
        })
        .collect()
}

/// A step's job state from its tasks: active while any task is, done when
/// every one completed, else failed with the first failed task's reason.
pub fn job_state(tasks: &[TaskState]) -> JobState {
    if tasks.iter().any(|t| ACTIVE.contains(&t.state.as_str())) {
        return JobState::Active;
    }
    match tasks.iter().find(|t| t.state != "COMPLETED") {
        None if !tasks.is_empty() => JobState::Done,
        None => JobState::Failed("slurmctld no longer knows the job".into()),
        Some(t) => JobState::Failed(failure_reason(t)),
    }
}

/// `job 12_1 FAILED (NonZeroExitCode, exit 2:0): <the job's last line>`.
fn failure_reason(t: &TaskState) -> String {
    let mut why = format!("job {} {}", t.job, t.state);
    let mut details = Vec::new();
    if t.reason != "None" {
        details.push(t.reason.clone());
    }
    if !t.exit_code.is_empty() && t.exit_code != "0:0" {
        details.push(format!("exit {}", t.exit_code));
    }
    if !details.is_empty() {
        why.push_str(&format!(" ({})", details.join(", ")));
    }
    let said = t
        .stdout
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| text.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string));
    if let Some(line) = said {
        why.push_str(&format!(": {}", line.trim()));
    }
    why
}

impl Executor for Slurm {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn find(&self, spec: &StepSpec) -> Result<Option<JobId>, EngineError> {
        let name = spec.name().job_name();
        // Without -t: only jobs queued or running (and completing).
        let out = client(
            "squeue",
            &["-h".into(), format!("--name={name}"), "-o".into(), "%F %T".into()],
            None,
        )?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(_, state)| ACTIVE.contains(state))
            .map(|(id, _)| JobId(id.to_string())))
    }

    fn submit(&self, spec: &StepSpec) -> Result<JobId, EngineError> {
        let args = self.sbatch_args(spec);
        let out = client("sbatch", &args, Some(&self.script(spec)))?;
        // --parsable: `jobid` or `jobid;cluster`.
        let id = out.trim().split(';').next().unwrap_or("");
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(EngineError::Answer {
                engine: ENGINE,
                command: "sbatch".into(),
                answer: out,
            });
        }
        Ok(JobId(id.to_string()))
    }

    fn state(&self, job: &JobId) -> Result<JobState, EngineError> {
        match client(
            "scontrol",
            &["-o".into(), "show".into(), "job".into(), job.0.clone()],
            None,
        ) {
            Ok(text) => Ok(job_state(&parse_show_job(&text))),
            Err(EngineError::Command { problem, .. }) if problem.contains("Invalid job id") => {
                Ok(JobState::Failed(format!("job {job}: slurmctld no longer knows it")))
            }
            Err(e) => Err(e),
        }
    }

    fn cancel(&self, job: &JobId) -> Result<(), EngineError> {
        client("scancel", std::slice::from_ref(&job.0), None).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from `scontrol -o show job` of Slurm 22.05 (trimmed).
    const ARRAY: &str = "JobId=2 ArrayJobId=1 ArrayTaskId=0 JobName=kc JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 StdOut=/nonexistent/a\n\
JobId=3 ArrayJobId=1 ArrayTaskId=1 JobName=kc JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=2:0 StdOut=/nonexistent/b\n\
JobId=1 ArrayJobId=1 ArrayTaskId=2 JobName=kc JobState=RUNNING Reason=None Dependency=(null) ExitCode=0:0\n";

    #[test]
    fn an_array_is_active_while_a_task_runs_then_failed_with_the_failed_tasks_reason() {
        let tasks = parse_show_job(ARRAY);
        assert_eq!(tasks.len(), 3);
        assert_eq!(job_state(&tasks), JobState::Active);
        let ended: Vec<TaskState> = tasks
            .into_iter()
            .map(|t| match t.state.as_str() {
                "RUNNING" => TaskState {
                    state: "COMPLETED".into(),
                    ..t
                },
                _ => t,
            })
            .collect();
        assert_eq!(
            job_state(&ended),
            JobState::Failed("job 1_1 FAILED (NonZeroExitCode, exit 2:0)".into())
        );
        let all_done: Vec<TaskState> = ended
            .into_iter()
            .map(|t| TaskState {
                state: "COMPLETED".into(),
                ..t
            })
            .collect();
        assert_eq!(job_state(&all_done), JobState::Done);
        assert!(matches!(job_state(&[]), JobState::Failed(_)));
    }

    #[test]
    fn a_node_failure_is_a_failure_with_slurms_reason() {
        let t = parse_show_job("JobId=7 JobName=kc JobState=NODE_FAIL Reason=NodeDown ExitCode=0:0\n");
        assert_eq!(job_state(&t), JobState::Failed("job 7 NODE_FAIL (NodeDown)".into()));
    }

    #[test]
    fn scripts_quote_what_they_pass_to_the_shell() {
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
