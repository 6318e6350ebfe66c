//! `--log FILE`: a bisection's steps and result handed to the syzkaller-log
//! writer (`syzlog::LogWriter`, which owns the format). A fix bisection's
//! verdicts are put in git's terms as syzkaller drives git for one: the
//! crashing (old) side is "good", a fixed commit "bad".
//!
//! Invariant: no log syntax here; only the mapping from a bisection's
//! evaluations and outcome to the format's model.

use std::path::Path;

use crate::key::CommitId;

use super::{BisectError, ConfirmChange, ConfirmVerdict, Confirmation, Outcome, Purpose, Step};
use crate::exec::BuildSource;
use crate::exec::{Evaluation, Verdict};
use crate::git::Repo;
use crate::search::graph::Direction;
use crate::store::Outcome as RunOutcome;
use crate::syzlog::{self, CulpritEntry, EndingEntry, LogWriter, StepEntry, Totals};

/// What this step took from the cache instead of doing it now, so a warm
/// run's log says so rather than reading like the cold one.
fn reuse_notes(eval: &Evaluation) -> Vec<String> {
    let mut notes: Vec<String> = eval
        .predicted_from
        .iter()
        .map(|r| format!("predicted, not built: no file read by the build of {r} differs"))
        .collect();
    if eval.build == BuildSource::Reused {
        notes.push("build reused from the cache: not built now".to_string());
    }
    let (reused, done) = (eval.effort.runs_reused, eval.effort.runs_done);
    if reused > 0 {
        notes.push(format!(
            "{reused} of these runs reused from the cache (pooled on this kernel), {done} run now"
        ));
    }
    notes
}

/// The build environment a table gave the step's commit.
fn env_notes(eval: &Evaluation) -> Option<String> {
    let env = eval.build_env.as_ref()?;
    Some(format!(
        "build environment: {} from {}",
        env.resolved.summary(),
        env.resolved.table
    ))
}

/// How many lines of a failed build's output the log quotes.
const BUILD_ERROR_LINES: usize = 5;

pub struct LogFile(LogWriter, Direction);

impl LogFile {
    /// A log of a bisection from `bad` in `direction` (`bad` is a fix
    /// bisection's older, crashing end).
    pub fn new(path: Option<&Path>, bad: &CommitId, direction: Direction) -> LogFile {
        let words = match direction {
            Direction::Cause => syzlog::Direction::Cause,
            Direction::Fix => syzlog::Direction::Fix,
        };
        LogFile(LogWriter::new(path, bad, words), direction)
    }

    /// A step's verdict (bad: it crashes) in git's terms for this direction.
    fn git_verdict(&self, verdict: Verdict) -> Verdict {
        match (self.1, verdict) {
            (Direction::Fix, Verdict::Bad) => Verdict::Good,
            (Direction::Fix, Verdict::Good) => Verdict::Bad,
            (_, v) => v,
        }
    }

    fn saved(&self, written: std::io::Result<()>) -> Result<(), BisectError> {
        written.map_err(|source| BisectError::Log {
            path: self.0.path().map(Path::to_path_buf).unwrap_or_default(),
            source,
        })
    }

    pub fn step(&mut self, commit: &CommitId, eval: &Evaluation, purpose: Purpose) -> Result<(), BisectError> {
        let entry = StepEntry {
            commit,
            purpose: match purpose {
                Purpose::Bisect => syzlog::Purpose::Bisect,
                Purpose::SignatureCheck => syzlog::Purpose::CulpritParent,
            },
            notes: env_notes(eval).into_iter().chain(reuse_notes(eval)).collect(),
            compiler: eval.build_env.as_ref().map(|e| e.toolchain.as_str()),
            signature: eval.signature.as_deref(),
            build_errors: build_errors(eval),
            runs: eval
                .runs
                .iter()
                .map(|r| run_outcome(r.outcome, r.title.as_deref()))
                .collect(),
            verdict: (purpose == Purpose::Bisect).then(|| self.git_verdict(eval.verdict)),
        };
        let written = self.0.step(&entry);
        self.saved(written)
    }

    /// A `# kcache:` comment line (syzkaller's parsers skip it).
    pub fn note(&mut self, line: &str) -> Result<(), BisectError> {
        let written = self.0.note(line);
        self.saved(written)
    }

    pub fn finish(&mut self, outcome: &Outcome, steps: &[Step], repo: &Repo, wall: f64) -> Result<(), BisectError> {
        let totals = Totals {
            tested: steps.iter().filter(|s| s.purpose == Purpose::Bisect).count(),
            wall_seconds: wall,
            build_seconds: steps.iter().map(|s| s.eval.effort.build_seconds).sum(),
            test_seconds: steps.iter().map(|s| s.eval.effort.test_seconds).sum(),
        };
        let show;
        let reason;
        let listed: Vec<String>;
        let ending = match outcome {
            Outcome::Culprit {
                commit,
                subject,
                signature,
                ..
            } => {
                show = repo.show_stat(commit).unwrap_or_default();
                EndingEntry::Culprit(CulpritEntry {
                    commit,
                    subject,
                    show: &show,
                    signature: signature.as_deref(),
                    parent_signature: outcome.parent_signature(),
                })
            }
            Outcome::Inconclusive { candidates } => {
                listed = candidates.iter().map(|c| c.to_string()).collect();
                EndingEntry::Inconclusive(&listed)
            }
            Outcome::NoBoundary { reason: why } => {
                reason = why.to_string();
                EndingEntry::Error(&reason)
            }
            Outcome::Stopped { reason: why } => {
                reason = why.clone();
                EndingEntry::Error(&reason)
            }
        };
        let written = self.0.finish(&ending, totals);
        self.saved(written)
    }
}

/// The culprit's check, as `# kcache:` lines added after the log's
/// ending (`path`: the `--log` file the bisection wrote).
pub fn append_confirmation(path: &Path, c: &Confirmation) -> Result<(), BisectError> {
    LogWriter::append_notes(path, &confirmation_lines(c)).map_err(|source| BisectError::Log {
        path: path.to_path_buf(),
        source,
    })
}

/// What the check did and found, one fact a line, each line saying which
/// check it belongs to.
fn confirmation_lines(c: &Confirmation) -> Vec<String> {
    let (check, change) = match c.change {
        ConfirmChange::Revert => ("revert check", "reverted"),
        ConfirmChange::ApplyFix => ("fix check", "applied"),
    };
    let rate = c.crash_rate.map_or("the crash's rate unknown".to_string(), |p| {
        format!("the crash's measured rate {p:.2}")
    });
    let mut lines = vec![format!(
        "{check}: {} {change} on {} (patch blake3 {}): {} run(s) wanted ({rate})",
        c.culprit,
        c.on,
        c.patch_blake3.short(),
        c.runs_wanted
    )];
    if let Some(key) = &c.build_key {
        let source = c.build.map_or("-", BuildSource::as_str);
        let signature = c.signature.as_ref().map_or("none".to_string(), |s| s.to_string());
        lines.push(format!(
            "{check}: build key {key} ({source}), kernel signature {signature}"
        ));
    }
    if c.runs.total() > 0 {
        lines.push(format!(
            "{check}: {} of {} run(s) crashed with the bug: {} ({} run now, {} reused)",
            c.runs.matched,
            c.runs.total(),
            c.runs.describe(),
            c.runs_done,
            c.runs_reused
        ));
    }
    lines.push(match c.verdict {
        ConfirmVerdict::Confirmed => format!("{check}: culprit confirmed: the crash is gone"),
        ConfirmVerdict::NotConfirmed => format!("{check}: culprit NOT confirmed: the kernel still crashes"),
        ConfirmVerdict::CannotRevert => format!("{check}: cannot revert: conflicts in {}", c.conflicts.join(", ")),
        ConfirmVerdict::NoOp => format!("{check}: no-op: the culprit does not change the kernel"),
        ConfirmVerdict::Untested => format!(
            "{check}: untested: {}",
            c.reason.as_deref().unwrap_or("the patched kernel was not tested")
        ),
    });
    lines
}

/// The last lines of a failed build's output.
fn build_errors(eval: &Evaluation) -> Vec<&str> {
    if !matches!(
        eval.build,
        BuildSource::Failed | BuildSource::KnownBroken | BuildSource::TransientFailure
    ) {
        return Vec::new();
    }
    let lines: Vec<&str> = eval.log_tail.as_deref().unwrap_or("").lines().collect();
    lines[lines.len().saturating_sub(BUILD_ERROR_LINES)..].to_vec()
}

/// A stored run's outcome in the log's terms.
fn run_outcome(outcome: RunOutcome, title: Option<&str>) -> syzlog::RunOutcome {
    match outcome {
        RunOutcome::Ok => syzlog::RunOutcome::Ok,
        RunOutcome::Crash => syzlog::RunOutcome::Crashed(title.unwrap_or("crash").to_string()),
        RunOutcome::Infra => syzlog::RunOutcome::Infra("could not test".into()),
        RunOutcome::BootFailed => syzlog::RunOutcome::BootFailed("boot failed".into()),
        RunOutcome::Skip => syzlog::RunOutcome::Infra("skipped".into()),
    }
}
