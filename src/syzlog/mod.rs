//! syzbot bisection logs: the format's one owner. Read (`parse`), write
//! (`write`, kcache's own `--log`), analyze, replay a corpus.
//!
//! # Accepted grammar
//!
//! A log is text; console output inside it may hold any bytes (NUL bytes
//! and Latin-1 that kernels print), which are read as U+FFFD and counted in
//! [`Log::garbled`] so the caller can warn once. Lines are matched by prefix; any
//! other line (kernel console output, crash reports, git's chatter) is
//! skipped, so logs from 2019 to today parse with one grammar:
//!
//! ```text
//! header   := ["ci" N? " starts bisection " time]
//!             "bisecting " ("cause"|"fixing") (" commit starting from "|" commit since ") H
//!             ["building syzkaller on " H]
//!             ["ensuring issue is reproducible on original commit " H]
//! step     := ["Bisecting: " N " revision" ...]   (git's count: Step::left)
//!             [purpose] "testing commit " H [" with " COMPILER | " " FAMILY]
//!             ["compiler: " COMPILER]          (either format, or none)
//!             ["kernel signature: " HEX40|HEX64]
//!             { build-error-line }             (": error: ", "failed to run [\"make\"...")
//!             { "run #" N ": " outcome { continuation } }  | "all runs: " outcome
//!             ["failed: " infra-error]
//!             ["# git bisect " ("good"|"bad"|"skip") " " H]
//! purpose  := "testing release " TAG | "parent commit " H " wasn't tested"
//! outcome  := "OK" | "crashed: " TITLE | "boot failed: " TEXT
//!           | "basic kernel testing failed: " TEXT | "failed: " TEXT
//! ending   := H " is the first bad commit" git-show-stat-block
//!           | "bisection is inconclusive, the first " ("bad"|"good") " commit could be any of:" {H}
//!           | "the crash already happened on the oldest tested release" ["commit msg: " T]
//!           | "error: " TEXT
//! summary  := ["culprit signature: " HEX] ["parent  signature: " HEX]
//!             | ["kernel signature: " HEX] ["previous signature: " HEX]   (2019-2020)
//!             "revisions tested: " N ", total time: " D " (build: " D ", test: " D ")"
//! trailer  := ["first " ("bad"|"good") " commit: " H " " TITLE] ["recipients (to): " LIST]
//!             ["recipients (cc): " LIST] ["crash: " TITLE report-lines...]
//! ```
//!
//! A fix bisection's log says it as syzkaller's do: syzkaller drives git
//! with the crashing (old) side as "good", so `# git bisect good H` marks a
//! commit that still crashes, git's `H is the first bad commit` names the
//! first fixed one, and the trailer says `first good commit: H TITLE`.
//!
//! A run's continuation lines (multi-line infrastructure errors) run to the
//! next blank line or step-level line. `git bisect`'s `[H] subject` line
//! names the next step's title. A log without any ending is `Unfinished`
//! (truncated or aborted), not an error; only input that cannot be a
//! bisection log (no bisection line at all) is an error. The reader streams
//! ([`parse_reader`]): memory stays bounded whatever the input's size.
//!
//! # `revisions tested`
//!
//! syzbot's count leaves out two kinds of `testing commit` step: the one
//! that builds the culprit's parent after the result is known (`parent
//! commit H wasn't tested`; it only signs the kernel), and, since syzbot
//! prints signatures, every step whose kernel failed to build (no
//! signature, no run). Logs from before signatures count failed builds,
//! and so do a few early signature-era logs. [`Log::counted_steps`] applies
//! the rule; [`Log::reconciles`] accepts either era's count.

mod analyze;
mod grammar;
mod model;
mod parse;
mod replay;
mod write;

pub use analyze::{
    analyze, Analysis, Confidence, FileAnalysis, Finding, ResultVerdict, RunCounts, Severity, VerdictDoubt,
    WEAK_EVIDENCE,
};
pub use model::{
    CulpritCommit, Direction, Durations, Ending, Garbled, Log, Purpose, Run, RunOutcome, Runs, Step, Trailer, Verdict,
};
pub use parse::{parse, parse_reader, ParseError, ReadError, MAX_DETAIL, MAX_ITEMS, MAX_LINE};
pub use replay::{
    corpus_files, flagged, replay, replay_labelled, replay_with, Calibration, EvidenceSummary, FlagScore, Label,
    Labels, LabelsError, ReliabilityBin, ReplayReport,
};
pub use write::{CulpritEntry, EndingEntry, LogWriter, StepEntry, Totals};

use std::path::Path;

/// A log file that could not be read or parsed, with the reason. The
/// problem is part of this error's own message, not a `source`: error
/// chains printed in full would otherwise say it twice.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct LogFileError {
    pub path: std::path::PathBuf,
    pub problem: LogFileProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum LogFileProblem {
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Parse(ParseError),
}

/// Reads and parses one log file, streaming: memory stays bounded
/// whatever the file's size (see [`parse_reader`]).
pub fn parse_file(path: &Path) -> Result<Log, LogFileError> {
    let wrap = |problem: LogFileProblem| LogFileError {
        path: path.to_path_buf(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| wrap(LogFileProblem::Io(e)))?;
    parse_reader(std::io::BufReader::with_capacity(64 * 1024, file)).map_err(|e| {
        wrap(match e {
            ReadError::Io(e) => LogFileProblem::Io(e),
            ReadError::Parse(e) => LogFileProblem::Parse(e),
        })
    })
}

/// The one warning for a log read lossily, naming the file and first line.
pub fn garbled_warning(path: &Path, log: &Log) -> Option<String> {
    log.garbled.map(|g| {
        format!(
            "{}:{}: {} line(s) with NUL or non-UTF-8 bytes (console output), read with U+FFFD in their place",
            path.display(),
            g.first_line,
            g.lines
        )
    })
}

impl Log {
    /// The steps syzbot's `revisions tested` counts (see the module docs).
    pub fn counted_steps(&self) -> usize {
        let signed_era = self.steps.iter().any(|s| s.signature.is_some());
        self.bisection_steps()
            .filter(|s| !signed_era || s.signature.is_some() || s.tested())
            .count()
    }

    /// Steps other than the after-the-fact build of the culprit's parent.
    fn bisection_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.purpose != Purpose::CulpritParent)
    }

    /// Whether the log's own `revisions tested` agrees with its steps under
    /// either era's rule (`None` when the log has no such line).
    pub fn reconciles(&self) -> Option<bool> {
        let n = self.revisions_tested? as usize;
        Some(n == self.counted_steps() || n == self.bisection_steps().count())
    }

    /// The culprit commit, when the bisection named one.
    pub fn culprit(&self) -> Option<&str> {
        match &self.ending {
            Ending::FirstBad(c) => Some(&c.commit),
            _ => None,
        }
    }

    /// The verdict a step got: its `# git bisect` line, or for steps that
    /// have none (the original commit, releases) what syzkaller derives
    /// from the runs: any crash is bad, all OK is good.
    pub fn effective_verdict(step: &Step) -> Option<Verdict> {
        step.verdict.or_else(|| match &step.runs {
            Runs::None => None,
            Runs::All(RunOutcome::Ok) => Some(Verdict::Good),
            Runs::All(RunOutcome::Crashed(_)) => Some(Verdict::Bad),
            Runs::All(_) => Some(Verdict::Skip),
            Runs::Each(runs) => {
                if runs.iter().any(|r| matches!(r.outcome, RunOutcome::Crashed(_))) {
                    Some(Verdict::Bad)
                } else if runs.iter().any(|r| r.outcome == RunOutcome::Ok) {
                    Some(Verdict::Good)
                } else {
                    Some(Verdict::Skip)
                }
            }
        })
    }

    /// The original crash title: the trailer's, else the first crash seen.
    pub fn original_crash(&self) -> Option<&str> {
        self.trailer
            .as_ref()
            .and_then(|t| t.crash_title.as_deref())
            .or_else(|| self.steps.first().and_then(|s| s.crash_titles().first().copied()))
    }
}
