//! The model of a syzbot bisection log: what the reader produces and the
//! writer consumes. Knows no syntax (that is `grammar`).

use serde::Serialize;

/// Lines that held NUL bytes or bytes that are not UTF-8 (a kernel printed
/// them to the console: `Unexpected user alpha2: \0\0`, Latin-1 text).
/// They were read with each such byte as U+FFFD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Garbled {
    /// The first such line, 1-based.
    pub first_line: usize,
    pub lines: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Cause,
    Fix,
    #[default]
    Unknown,
}

/// Why a commit was tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Purpose {
    /// The commit the bisection starts from (the crash must reproduce there).
    Original,
    /// A release tag tried while looking for a good starting point.
    Release(String),
    /// A commit `git bisect` chose.
    Bisect,
    /// The culprit's parent, built after the fact to compare signatures.
    CulpritParent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "title")]
pub enum RunOutcome {
    Ok,
    Crashed(String),
    BootFailed(String),
    /// `basic kernel testing failed: ...`: the kernel is broken in another way.
    TestFailed(String),
    /// `failed: ...`: infrastructure trouble, says nothing about the kernel.
    Infra(String),
}

impl RunOutcome {
    pub fn crash_title(&self) -> Option<&str> {
        match self {
            RunOutcome::Crashed(t) => Some(t),
            _ => None,
        }
    }
}

/// The test results of a step: individual runs or the `all runs:` shorthand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runs {
    None,
    Each(Vec<Run>),
    All(RunOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    pub index: u32,
    #[serde(flatten)]
    pub outcome: RunOutcome,
    /// Continuation lines of a multi-line infrastructure error.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Bad,
    Skip,
}

impl Verdict {
    /// The word `git bisect` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Good => "good",
            Verdict::Bad => "bad",
            Verdict::Skip => "skip",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based line of the `testing commit` line.
    pub line: usize,
    pub commit: String,
    pub purpose: Purpose,
    /// Subject from git bisect's `[hash] subject` line, when shown.
    pub title: Option<String>,
    pub compiler: Option<String>,
    pub signature: Option<String>,
    pub runs: Runs,
    /// Compiler or make errors printed instead of a signature.
    pub build_errors: Vec<String>,
    /// A step-level infrastructure failure (`failed: failed to create VM pool`).
    pub infra_error: Option<String>,
    pub verdict: Option<Verdict>,
    /// git's `Bisecting: N revisions left to test after this` before this
    /// step: where the commit sits in the range (commits still candidates
    /// after its test). `None` for steps git bisect did not choose, and in
    /// logs that do not print the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<u32>,
}

impl Step {
    pub(super) fn new(line: usize, commit: &str, purpose: Purpose) -> Step {
        Step {
            line,
            commit: commit.to_string(),
            purpose,
            title: None,
            compiler: None,
            signature: None,
            runs: Runs::None,
            build_errors: Vec::new(),
            infra_error: None,
            verdict: None,
            left: None,
        }
    }

    /// Whether the reproducer was run on this step's kernel.
    pub fn tested(&self) -> bool {
        !matches!(self.runs, Runs::None)
    }

    /// Crash titles seen in this step's runs.
    pub fn crash_titles(&self) -> Vec<&str> {
        match &self.runs {
            Runs::None => Vec::new(),
            Runs::All(o) => o.crash_title().into_iter().collect(),
            Runs::Each(runs) => runs.iter().filter_map(|r| r.outcome.crash_title()).collect(),
        }
    }

    pub fn run_count(&self) -> usize {
        match &self.runs {
            Runs::None => 0,
            // The shorthand hides the count; syzbot ran 10 (older: 8) per step.
            Runs::All(_) => 1,
            Runs::Each(r) => r.len(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CulpritCommit {
    pub commit: String,
    pub author: Option<String>,
    pub date: Option<String>,
    /// Parent hashes from a `Merge:` line (merges only).
    pub merge_parents: Vec<String>,
    pub message: Vec<String>,
    /// Paths named in the diffstat.
    pub files: Vec<String>,
    pub diffstat_summary: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ending {
    FirstBad(CulpritCommit),
    Inconclusive {
        candidates: Vec<String>,
    },
    /// `the crash already happened on the oldest tested release`.
    OldestRelease {
        commit_msg: Option<String>,
    },
    Error {
        message: String,
    },
    /// The log stops before any result line (truncated or aborted).
    Unfinished,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Durations {
    pub total_seconds: f64,
    pub build_seconds: f64,
    pub test_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Trailer {
    pub first_bad_commit: Option<String>,
    pub first_bad_title: Option<String>,
    pub recipients_to: Vec<String>,
    pub recipients_cc: Vec<String>,
    pub crash_title: Option<String>,
    /// Number of report lines after `crash:` (the report itself is not kept).
    pub report_lines: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Log {
    pub direction: Direction,
    pub start_commit: Option<String>,
    pub syzkaller_commit: Option<String>,
    pub steps: Vec<Step>,
    pub ending: Ending,
    pub culprit_signature: Option<String>,
    pub parent_signature: Option<String>,
    pub revisions_tested: Option<u32>,
    pub durations: Option<Durations>,
    /// `reproducer seems to be flaky` / `Reproducer flagged being flaky`.
    pub flaky: bool,
    pub trailer: Option<Trailer>,
    /// Lines read lossily (binary bytes in console output), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garbled: Option<Garbled>,
}
